"""Image input: the one place where outside bytes or files become a BGR uint8 image.

Shared by ``batch`` and the web API (``/analyze``). Contract:

``decode(data, max_side, max_pixels) -> DecodedImage`` (and ``decode_image(...)``, which returns
just the array) gives a C-contiguous ``H x W x 3`` BGR ``uint8`` image that is

- upright: EXIF orientation (JPEG APP1, PNG eXIf, TIFF/WebP via Pillow) is applied, so boxes
  found on it are in the upright picture a person would see;
- opaque: alpha (RGBA, gray+alpha, palette with tRNS, transparent GIF) is composited on a
  neutral grey (``BACKGROUND``), because what sits under transparent pixels is arbitrary (often
  black), and a black hole around a cut-out face moves the detector's score;
- 8-bit: 16-bit PNG/TIFF samples are scaled by 255/65535 with rounding (not truncated);
  grayscale and palette images are expanded to three channels; CMYK/YCCK JPEGs are converted by
  Pillow (which honours the Adobe inverted-CMYK marker; OpenCV's conversion is a little off);
- the first frame of an animated GIF/WebP/multi-page TIFF;
- in the file's own RGB values: ICC profiles are not applied (sRGB is assumed, as OpenCV does);
- at most ``max_side`` pixels on its long side: larger images are reduced with INTER_AREA
  (for JPEG, first by libjpeg's DCT scaling, 1/2, 1/4 or 1/8, which is both fast and a good
  low-pass filter, then INTER_AREA for the remainder). ``DecodedImage.width/height`` keep the
  upright size at original resolution and ``to_original(box)`` maps a box back to it.

Anything else raises ``ImageError(message, code)`` with ``code`` one of:

``empty``           zero bytes;
``not_an_image``    not recognised as an image, or its data is corrupt beyond truncation;
``truncated``       a JPEG with no EOI marker after its scan data, a PNG whose chunks stop early,
                    lack IEND or fail their CRC, or any file Pillow finds cut short (OpenCV would
                    decode a truncated JPEG silently with grey fill, so this is checked first);
``too_many_pixels`` the width x height declared in the header exceeds ``max_pixels`` (checked
                    BEFORE any pixel is decoded: a 30000 x 30000 PNG of a few KB is refused
                    without allocating 2.7 GB);
``unsupported``     a real image in a format or variant this module does not decode (HEIC/AVIF,
                    JPEG 2000, JPEG XL, PSD, ICO, floating-point TIFF, ...);
``unreadable``      (``load``/``read_file`` only) the file cannot be read (missing, permission,
                    a folder).

Formats decoded: JPEG, PNG, GIF, BMP, WebP, TIFF. Per-format choice, for speed on the common
case: baseline/progressive JPEG (1 or 3 components) and PNG go through ``cv2.imdecode`` (a
640x480 JPEG costs ~1.5 ms here); header checks for both are a few microseconds of marker and
chunk walking in Python. CMYK JPEG, GIF, BMP, WebP, TIFF and anything OpenCV refuses go through
Pillow. Thread-safe (no global state is changed), so web server threads may call it concurrently.
Limits: every PNG chunk's CRC is checked (zlib, about 1 ms per MB); Pillow-decoded formats are
also subject to Pillow's own bomb guard, which refuses more than 2 x ``Image.MAX_IMAGE_PIXELS``
(~179 M) even if ``max_pixels`` is set higher (reported as ``too_many_pixels`` too).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from streamer.errors import ImageError
from streamer.types import Box

BACKGROUND = (128, 128, 128)  # BGR grey under transparent pixels
DEFAULT_MAX_SIDE = 5000
DEFAULT_MAX_PIXELS = 100_000_000

_PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_BMP_INFO_SIZES = {struct.pack("<I", n) for n in (12, 16, 40, 52, 56, 64, 108, 124)}


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded image and the upright size it had at original resolution.

    ``image`` may be smaller than ``width x height`` (long side capped by ``max_side``);
    ``to_original`` maps a box found on ``image`` back to original upright pixels.
    """

    image: np.ndarray = field(repr=False)
    width: int  # upright (orientation applied), original resolution
    height: int
    format: str  # jpeg | png | gif | bmp | webp | tiff

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): original pixels per pixel of ``image``; (1.0, 1.0) when not reduced."""
        h, w = self.image.shape[:2]
        return self.width / w, self.height / h

    def to_original(self, box: Box) -> Box:
        sx, sy = self.scale
        x1, y1, x2, y2 = box
        return (min(x1 * sx, self.width), min(y1 * sy, self.height),
                min(x2 * sx, self.width), min(y2 * sy, self.height))


def decode_image(data: bytes, max_side: int = DEFAULT_MAX_SIDE,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes -> upright BGR uint8 image with long side <= ``max_side`` (see module doc)."""
    return decode(data, max_side, max_pixels).image


def load_image(path: Union[str, os.PathLike], max_side: int = DEFAULT_MAX_SIDE,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """File -> upright BGR uint8 image; as ``decode_image``, plus code ``unreadable``."""
    return load(path, max_side, max_pixels).image


def load(path: Union[str, os.PathLike], max_side: int = DEFAULT_MAX_SIDE,
         max_pixels: int = DEFAULT_MAX_PIXELS, *, min_side: int = 0) -> DecodedImage:
    return decode(read_file(path), max_side, max_pixels, min_side=min_side)


def read_file(path: Union[str, os.PathLike]) -> bytes:
    """The file's bytes, or ``ImageError(code="unreadable")`` naming the path and the reason."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file", "unreadable") from None
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}", "unreadable") from None


def decode(data: bytes, max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
           *, min_side: int = 0) -> DecodedImage:
    """Bytes -> ``DecodedImage`` (see module doc for the contract and error codes).

    ``min_side`` (JPEG only, default off) lets the decoder go below ``max_side``: libjpeg's
    DCT scaling (1/2, 1/4, 1/8) is used as long as the long side stays >= ``min_side``. It makes
    a 1080p decode ~2.5x cheaper for callers that only need ~1000 px (batch), at the price of
    detail in small faces; ``width``/``height``/``to_original`` still refer to the original.
    """
    if max_side < 1 or max_pixels < 1:
        raise ValueError("max_side and max_pixels must be >= 1")
    if not data:
        raise ImageError("the image has zero bytes (empty file or upload)", "empty")
    data = bytes(data) if not isinstance(data, bytes) else data
    fmt = sniff(data)
    if fmt == "jpeg":
        return _decode_jpeg(data, max_side, max_pixels, min_side)
    if fmt == "png":
        return _decode_png(data, max_side, max_pixels)
    if fmt in ("gif", "bmp", "webp", "tiff"):
        _check_container_length(data, fmt)
        return _finish(_decode_pillow(data, fmt, max_pixels), fmt, max_side)
    other = _unsupported_kind(data)
    if other:
        raise ImageError(f"{other} images are not supported (use JPEG, PNG, GIF, BMP, WebP or "
                         "TIFF)", "unsupported")
    raise ImageError("the data is not an image (not JPEG, PNG, GIF, BMP, WebP or TIFF)",
                     "not_an_image")


def sniff(data: bytes) -> Optional[str]:
    """The format named by the file's magic bytes, or None (the file name is never trusted)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == _PNG_SIG:
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM" and len(data) >= 26 and data[14:18] in _BMP_INFO_SIZES:
        return "bmp"
    return None


def _unsupported_kind(data: bytes) -> Optional[str]:
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIF/HEIC"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "JPEG 2000"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if data[:4] == b"8BPS":
        return "Photoshop (PSD)"
    if data[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00"):
        return "ICO/CUR"
    if data[:4] == b"II\xbc\x01":
        return "JPEG XR"
    return None


# ---- JPEG -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _JpegHeader:
    width: int
    height: int
    components: int


def _jpeg_header(data: bytes) -> _JpegHeader:
    """Walk the marker segments up to the first SOS; check for truncation.

    A JPEG is complete when an EOI marker (FF D9) follows the first scan: inside entropy-coded
    data every FF is stuffed, so FF D9 cannot appear by chance, and an EXIF thumbnail's own EOI
    sits inside APP1, before the scan. Bytes after EOI (some cameras append data) are allowed.
    """
    n = len(data)
    i = 2
    sof: Optional[_JpegHeader] = None
    while True:
        if i >= n:
            raise ImageError("truncated JPEG: the file ends inside its header", "truncated")
        if data[i] != 0xFF:
            raise ImageError("corrupt JPEG: bad marker in the header", "not_an_image")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise ImageError("truncated JPEG: the file ends inside its header", "truncated")
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD8, 0xD9):
            raise ImageError("corrupt JPEG: no image data before the end marker", "not_an_image")
        if i + 2 > n:
            raise ImageError("truncated JPEG: the file ends inside its header", "truncated")
        length = (data[i] << 8) | data[i + 1]
        if length < 2:
            raise ImageError("corrupt JPEG: bad segment length", "not_an_image")
        if i + length > n:
            raise ImageError("truncated JPEG: the file ends inside its header", "truncated")
        if marker in _JPEG_SOF and sof is None:
            if length < 8:
                raise ImageError("corrupt JPEG: short frame header", "not_an_image")
            h, w = struct.unpack(">HH", data[i + 3:i + 7])
            sof = _JpegHeader(w, h, data[i + 7])
        if marker == 0xDA:  # SOS: entropy-coded data follows
            if sof is None:
                raise ImageError("corrupt JPEG: scan before frame header", "not_an_image")
            if data.rfind(b"\xff\xd9", i + length) < 0:
                raise ImageError("truncated JPEG: the file ends before the end-of-image marker "
                                 "(incomplete upload or copy)", "truncated")
            return sof
        i += length


def _decode_jpeg(data: bytes, max_side: int, max_pixels: int, min_side: int) -> DecodedImage:
    hdr = _jpeg_header(data)
    if hdr.width == 0 or hdr.height == 0:
        raise ImageError("unsupported JPEG: height defined after the scan (DNL)", "unsupported")
    _check_pixels(hdr.width, hdr.height, max_pixels)
    if hdr.components not in (1, 3):  # CMYK / YCCK: Pillow knows the Adobe inversion
        return _finish(_decode_pillow(data, "jpeg", max_pixels), "jpeg", max_side)
    long_side = max(hdr.width, hdr.height)
    floor = min(min_side, max_side) if min_side else max_side
    flags, r = cv2.IMREAD_COLOR, 1
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if -(-long_side // factor) >= floor:  # the largest reduction that keeps `floor` pixels
            flags, r = flag, factor
            break
    # imdecode applies the EXIF orientation (all 8 cases, also when reduced).
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:  # e.g. a variant this libjpeg build refuses; Pillow may still read it
        return _finish(_decode_pillow(data, "jpeg", max_pixels), "jpeg", max_side)
    h, w = img.shape[:2]
    turned = (w, h) != (-(-hdr.width // r), -(-hdr.height // r))  # orientation 5..8
    upright = (hdr.height, hdr.width) if turned else (hdr.width, hdr.height)
    return _finish(img, "jpeg", max_side, upright)


# ---- PNG --------------------------------------------------------------------------------

def _png_check(data: bytes) -> tuple[int, int, int]:
    """Walk the chunks: (width, height, EXIF orientation). Raises on truncation/CRC errors."""
    n = len(data)
    i = 8
    width = height = 0
    orientation = 1
    first = True
    while True:
        if i + 8 > n:
            raise ImageError("truncated PNG: the file ends before the IEND chunk "
                             "(incomplete upload or copy)", "truncated")
        length, ctype = struct.unpack(">I4s", data[i:i + 8])
        end = i + 12 + length
        if end > n:
            raise ImageError(f"truncated PNG: chunk {ctype.decode('latin-1')!r} is cut short "
                             "(incomplete upload or copy)", "truncated")
        if first:
            if ctype != b"IHDR" or length < 13:
                raise ImageError("corrupt PNG: the first chunk is not IHDR", "not_an_image")
            width, height = struct.unpack(">II", data[i + 8:i + 16])
            first = False
        body = data[i + 8:i + 8 + length]
        crc = struct.unpack(">I", data[i + 8 + length:end])[0]
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise ImageError(f"truncated or corrupt PNG: chunk {ctype.decode('latin-1')!r} fails "
                             "its CRC", "truncated")
        if ctype == b"eXIf":
            orientation = _exif_orientation(body)
        if ctype == b"IEND":
            return width, height, orientation
        i = end


def _decode_png(data: bytes, max_side: int, max_pixels: int) -> DecodedImage:
    width, height, orientation = _png_check(data)
    _check_pixels(width, height, max_pixels)
    # UNCHANGED keeps alpha and 16 bits so they are converted properly below; it also skips
    # OpenCV's own orientation handling, applied here from the eXIf chunk instead.
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return _finish(_decode_pillow(data, "png", max_pixels), "png", max_side)
    img = _to_bgr8(img)
    img = _orient(img, orientation)
    return _finish(img, "png", max_side)


# ---- Pillow (CMYK JPEG, GIF, BMP, WebP, TIFF, fallbacks) --------------------------------

def _check_container_length(data: bytes, fmt: str) -> None:
    """A header that announces more bytes than arrived is a cut file, not a corrupt one."""
    n = len(data)
    need = 0
    if fmt == "gif":
        need = 13 + (3 * 2 ** ((data[10] & 7) + 1) if n > 10 and data[10] & 0x80 else 0)
    elif fmt == "bmp":
        need = struct.unpack("<I", data[2:6])[0]
    elif fmt == "webp":
        need = 8 + struct.unpack("<I", data[4:8])[0]
    if n < need:
        raise ImageError(f"truncated {fmt.upper()}: the header announces {need} bytes, the file "
                         f"has {n} (incomplete upload or copy)", "truncated")


def _decode_pillow(data: bytes, fmt: str, max_pixels: int) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = fmt.upper()
    try:
        im = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(f"{name} declares more than {max_pixels} pixels (decompression bomb "
                         "guard)", "too_many_pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"corrupt {name}: the header cannot be read", "not_an_image") from None
    except Exception as e:  # Pillow raises many types on hostile headers
        raise _pillow_error(e, name) from None
    with im:
        _check_pixels(im.width, im.height, max_pixels)
        try:
            im.seek(0)  # first frame of an animation / first page
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # noqa: BLE001 - a malformed EXIF block is no reason to refuse
                pass
            return _pil_to_bgr8(im)
        except ImageError:
            raise
        except MemoryError:
            raise
        except Exception as e:
            raise _pillow_error(e, name) from None


def _pillow_error(e: Exception, name: str) -> ImageError:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "truncated" in msg.lower() or isinstance(e, EOFError):
        return ImageError(f"truncated {name}: {msg}", "truncated")
    if "not supported" in msg.lower() or "unsupported" in msg.lower() or "unknown" in msg.lower():
        return ImageError(f"unsupported {name} variant: {msg}", "unsupported")
    return ImageError(f"corrupt {name}: {msg}", "not_an_image")


def _pil_to_bgr8(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im)
        if a.ndim != 2:
            raise ImageError(f"unsupported image mode {mode}", "unsupported")
        return _to_bgr8(np.clip(a, 0, 65535).astype(np.uint16))
    if mode == "F":
        raise ImageError("floating-point images are not supported", "unsupported")
    if mode in ("1", "L"):
        return cv2.cvtColor(np.asarray(im.convert("L")), cv2.COLOR_GRAY2BGR)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        return _to_bgr8(np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]]))
    rgb = np.asarray(im.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


# ---- shared helpers ---------------------------------------------------------------------

def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(f"image declares {width}x{height} = {width * height} pixels, more than "
                         f"the limit of {max_pixels} (decompression bomb guard)", "too_many_pixels")
    if width == 0 or height == 0:
        raise ImageError(f"image declares an empty size {width}x{height}", "not_an_image")


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any OpenCV-layout array (gray, BGR, BGRA; 8 or 16 bit) -> BGR uint8, alpha composited."""
    if img.dtype == np.uint16:
        # 65535 -> 255 with rounding; >> 8 would darken every value by up to one level.
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(f"unsupported sample type {img.dtype}", "unsupported")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    ch = img.shape[2]
    if ch == 3:
        return img
    if ch == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if ch == 2:  # gray + alpha
        img = cv2.merge([img[:, :, 0]] * 3 + [img[:, :, 1]])
    if img.shape[2] == 4:
        return _composite(img)
    raise ImageError(f"unsupported channel count {ch}", "unsupported")


def _composite(bgra: np.ndarray) -> np.ndarray:
    alpha = bgra[:, :, 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(bgra[:, :, :3])
    a = alpha.astype(np.uint16)[:, :, None]
    bg = np.array(BACKGROUND, np.uint16)
    out = (bgra[:, :, :3].astype(np.uint16) * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _exif_orientation(tiff: bytes) -> int:
    """Orientation (1..8) from a TIFF-structured EXIF block; 1 when absent or unreadable."""
    if tiff[:6] == b"Exif\x00\x00":
        tiff = tiff[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd = struct.unpack(e + "I", tiff[4:8])[0]
        count = struct.unpack(e + "H", tiff[ifd:ifd + 2])[0]
        for k in range(count):
            p = ifd + 2 + 12 * k
            tag, typ = struct.unpack(e + "HH", tiff[p:p + 4])
            if tag == 0x0112 and typ == 3:
                v = struct.unpack(e + "H", tiff[p + 8:p + 10])[0]
                return v if 1 <= v <= 8 else 1
    except struct.error:
        return 1
    return 1


def _orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation so the result is upright (same mapping as Pillow's)."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def _finish(img: np.ndarray, fmt: str, max_side: int,
            upright: Optional[tuple[int, int]] = None) -> DecodedImage:
    """Cap the long side at ``max_side`` (INTER_AREA) and record the original upright size."""
    h, w = img.shape[:2]
    width, height = upright or (w, h)
    long_side = max(w, h)
    if long_side > max_side:
        s = max_side / long_side
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return DecodedImage(np.ascontiguousarray(img), int(width), int(height), fmt)
