"""The one error shape of the HTTP layer: ``{"error": "<one line>", "code": "<machine code>"}``.

Any module of the web package raises ``ApiError`` for a refused request; ``app.py``'s error
handlers turn it (and werkzeug's own HTTP errors) into that JSON with the status.
"""

from __future__ import annotations

# ImageError codes (streamer.media.images' contract) and the status each gets; unknown codes get 400.
IMAGE_STATUS = {"empty": 400, "not_an_image": 400, "truncated": 400, "unsupported": 415,
                "too_many_pixels": 413}
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 415: "unsupported", 429: "busy",
              503: "busy"}


class ApiError(Exception):
    """A refused request: becomes ``{"error": message, "code": code}`` with ``status``.

    ``extra`` adds fields to the body (e.g. ``{"param": "since"}`` for a bad query value)."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra
