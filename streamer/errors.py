"""User-facing errors.

Every error a user can cause (bad config, bad source, missing model, bad image) is raised as a
``StreamerError`` whose message is one line naming the bad value and what would be right. The CLI
prints it as ``error: <message>`` and exits non-zero; no traceback reaches the user.
"""


class StreamerError(Exception):
    """An error caused by input the user controls. ``str(e)`` is a complete one-line message."""

    exit_code = 1


class ConfigError(StreamerError):
    """A config file or option is invalid; the message names the key path."""


class ModelError(StreamerError):
    """A model file is missing, truncated, altered or unloadable on this OpenCV."""


class SourceError(StreamerError):
    """A video source cannot be opened (missing file, bad URL, no such webcam)."""


class ImageError(StreamerError):
    """An image cannot be decoded or is refused (too large, bomb, not an image)."""

    def __init__(self, message: str, code: str = "bad_image"):
        super().__init__(message)
        self.code = code


def one_line(e: Exception, last: bool = False) -> str:
    """One line of a library's multi-line exception text for a user message: the first
    (OpenVINO, ONNX Runtime put the point there) or the ``last`` (OpenCV ends with it)."""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[-1] if last else lines[0]) if lines else type(e).__name__
