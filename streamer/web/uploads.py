"""Reading an uploaded image out of a request: JSON with base64, multipart, or a raw body.

Contract: ``read_upload() -> (bytes, filename or None)`` or ``ApiError`` 4xx naming what is
wrong with the body; ``flag(name, default)`` reads a 0/1 query parameter. No decoding here:
pixels are ``streamer.media.images.decode_image``'s job.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Optional

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from streamer.web.errors import ApiError

TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, with or without padding, line breaks or a data: URL prefix."""
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ApiError(400, "bad_base64", "image: a data: URL must be ';base64,' encoded")
    s = "".join(text.split())
    if "-" in s or "_" in s:
        s = s.replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, "bad_base64", f"image: not valid base64 ({e})") from None


def _check_not_cut() -> None:
    """A chunked body (no Content-Length) is cut at MAX_CONTENT_LENGTH by werkzeug without an
    error; reaching the cap means the body was (or may have been) larger: refuse it as 413."""
    if request.content_length is None and getattr(request.stream, "is_exhausted", False):
        raise RequestEntityTooLarge()


def read_upload() -> tuple[bytes, Optional[str]]:
    """The uploaded image bytes and file name from a JSON, multipart or raw image body."""
    mime = request.mimetype
    if mime == "multipart/form-data":
        f = request.files.get("image") or request.files.get("file")
        _check_not_cut()
        if f is None:
            raise ApiError(400, "missing_image",
                           "multipart upload needs a file field named 'image' or 'file'")
        return f.read(), f.filename
    body = request.get_data(cache=False)
    _check_not_cut()
    if mime.startswith("image/") or mime == "application/octet-stream":
        return body, None
    if not body.strip():
        raise ApiError(400, "empty", "request body is empty: send JSON {\"image\": \"<base64>\"} "
                                     "or a multipart upload with a field named 'image'")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested arrays
        raise ApiError(400, "not_json", "request body is not JSON: send {\"image\": \"<base64>\"}, "
                                        "a multipart upload or an image/* body") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_json", f"expected a JSON object {{\"image\": \"<base64>\"}}, "
                                        f"got a JSON {type(doc).__name__}")
    img, name = doc.get("image"), doc.get("filename")
    if img is None:
        raise ApiError(400, "missing_image", "JSON body has no 'image' (base64 of the file)")
    if not isinstance(img, str):
        raise ApiError(400, "bad_json", f"image: expected a base64 string, got {type(img).__name__}")
    if name is not None and not isinstance(name, str):
        raise ApiError(400, "bad_json", f"filename: expected a string, got {type(name).__name__}")
    return b64decode(img), name


def flag(name: str, default: bool) -> bool:
    v = request.args.get(name)
    if v is None:
        return default
    if v.lower() in TRUE:
        return True
    if v.lower() in FALSE:
        return False
    raise ApiError(400, "bad_param", f"{name}: expected 0 or 1, got {v[:20]!r}", param=name)
