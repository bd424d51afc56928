"""imageio: every kind of outside bytes -> BGR uint8 upright image, or ImageError with a code.

Inputs are made at test time with Pillow/OpenCV from a synthetic picture with structure (so
orientation and colour errors show); the real-photo paths are covered in test_batch.
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from streamer.media import images as imageio
from streamer.errors import ImageError


def picture(w: int = 120, h: int = 80) -> np.ndarray:
    """RGB uint8 with a gradient and an off-centre block, so any flip or rotation shows."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1),
                    (x + y) * 255 // max(1, w + h - 2)], axis=2).astype(np.uint8)
    img[h // 8:h // 3, w // 10:w // 3] = (250, 20, 20)
    return img


def pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def jpeg(w=120, h=80, **kw) -> bytes:
    return pil_bytes(Image.fromarray(picture(w, h)), "JPEG", quality=95, **kw)


def png(im: Image.Image, **kw) -> bytes:
    return pil_bytes(im, "PNG", **kw)


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_bomb(w=30000, h=30000) -> bytes:
    """A valid-looking PNG of a few hundred bytes that declares w x h pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return imageio._PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_declaring(w: int, h: int) -> bytes:
    """A real small JPEG whose frame header is patched to declare w x h."""
    data = bytearray(jpeg())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def gif_declaring(w: int, h: int) -> bytes:
    data = bytearray(pil_bytes(Image.fromarray(picture()), "GIF"))
    data[6:10] = struct.pack("<HH", w, h)
    return bytes(data)


def jpeg_with_thumbnail_then_cut() -> bytes:
    """APP1 carrying an embedded JPEG (its own EOI) before the scan; then the scan is cut."""
    data = jpeg()
    thumb = jpeg(16, 16)
    app1 = b"Exif\x00\x00" + thumb
    seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    full = data[:2] + seg + data[2:]
    return full[:len(full) - 200]


def png_with_bad_crc() -> bytes:
    data = bytearray(png(Image.fromarray(picture())))
    i = data.index(b"IDAT") + 10
    data[i] ^= 0xFF
    return bytes(data)


ERRORS = [
    # (name, bytes, expected code)
    ("zero bytes", b"", "empty"),
    ("text named .jpg", b"hello, this is not a picture\n", "not_an_image"),
    ("html", b"<!doctype html><html></html>", "not_an_image"),
    ("text starting BM", b"BM is a text file pretending to be a bitmap header.", "not_an_image"),
    ("JPEG cut in half", jpeg()[:len(jpeg()) // 2], "truncated"),
    ("JPEG cut before its EOI only", jpeg()[:-2], "truncated"),
    ("JPEG cut inside header", jpeg()[:40], "truncated"),
    ("JPEG magic only", b"\xff\xd8\xff", "truncated"),
    ("JPEG thumbnail EOI does not hide a cut", jpeg_with_thumbnail_then_cut(), "truncated"),
    ("JPEG garbage after magic", b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x12" * 50, "not_an_image"),
    ("PNG cut in half", png(Image.fromarray(picture()))[:300], "truncated"),
    ("PNG without IEND", png(Image.fromarray(picture()))[:-12], "truncated"),
    ("PNG with CRC error", png_with_bad_crc(), "truncated"),
    ("PNG signature only", imageio._PNG_SIG, "truncated"),
    ("PNG bomb 30000x30000", png_bomb(), "too_many_pixels"),
    ("JPEG bomb 30000x30000", jpeg_declaring(30000, 30000), "too_many_pixels"),
    ("GIF bomb 30000x30000", gif_declaring(30000, 30000), "too_many_pixels"),
    ("GIF cut in its colour table", pil_bytes(Image.fromarray(picture()), "GIF")[:200], "truncated"),
    ("GIF cut in its pixels", pil_bytes(Image.fromarray(picture()), "GIF")[:-200], "truncated"),
    ("BMP cut in half", pil_bytes(Image.fromarray(picture()), "BMP")[:10000], "truncated"),
    ("WebP cut in half", pil_bytes(Image.fromarray(picture()), "WEBP")[:300], "truncated"),
    ("HEIC", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "unsupported"),
    ("JPEG 2000", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64, "unsupported"),
    ("float TIFF", pil_bytes(Image.fromarray(np.ones((8, 8), np.float32)), "TIFF"), "unsupported"),
]


@pytest.mark.parametrize("name,data,code", ERRORS, ids=[e[0] for e in ERRORS])
def test_refused_with_code(name, data, code):
    with pytest.raises(ImageError) as ei:
        imageio.decode_image(data)
    assert ei.value.code == code, str(ei.value)
    assert "\n" not in str(ei.value)


def test_bomb_is_refused_before_decoding_and_limit_is_a_parameter():
    # 5000 x 5000 = 25 M pixels: refused at 20 M, accepted by header at 30 M (then decoded).
    data = png_bomb(5000, 5000)
    with pytest.raises(ImageError) as ei:
        imageio.decode_image(data, max_pixels=20_000_000)
    assert ei.value.code == "too_many_pixels" and "5000x5000" in str(ei.value)
    with pytest.raises(ImageError) as ei:  # the fake IDAT is too short: a decode error, not a bomb
        imageio.decode_image(data, max_pixels=30_000_000)
    assert ei.value.code != "too_many_pixels"


def test_jpeg_decodes_exactly_like_opencv():
    data = jpeg(640, 480)
    ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    d = imageio.decode(data)
    assert d.image.dtype == np.uint8 and d.image.shape == (480, 640, 3)
    assert np.array_equal(d.image, ref)
    assert (d.width, d.height, d.format, d.scale) == (640, 480, "jpeg", (1.0, 1.0))


def test_jpeg_with_bytes_after_eoi_is_accepted():
    data = jpeg() + b"camera maker trailer \x00\x01"
    assert imageio.decode_image(data).shape == (80, 120, 3)


def test_progressive_and_grayscale_jpeg():
    prog = jpeg(progressive=True)
    assert imageio.decode_image(prog).shape == (80, 120, 3)
    gray = pil_bytes(Image.fromarray(picture()).convert("L"), "JPEG", quality=95)
    img = imageio.decode_image(gray)
    assert img.shape == (80, 120, 3)
    assert np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 1], img[:, :, 2])


def test_cmyk_jpeg_colours_match_the_rgb_source():
    rgb = picture(200, 150)
    data = pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    img = imageio.decode_image(data)
    assert img.shape == (150, 200, 3)
    assert np.abs(img[:, :, ::-1].astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_matches_pillow_exif_transpose(fmt, orientation):
    im = Image.fromarray(picture(120, 80))
    ex = Image.Exif()
    ex[0x0112] = orientation
    data = pil_bytes(im, fmt, exif=ex.tobytes(), **({"quality": 95} if fmt != "PNG" else {}))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    d = imageio.decode(data)
    assert d.image.shape == expected.shape[:2] + (3,)
    assert (d.width, d.height) == (expected.shape[1], expected.shape[0])
    assert np.abs(d.image[:, :, ::-1].astype(int) - expected).mean() < 2


def test_png_alpha_is_composited_on_neutral_grey():
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = (0, 0, 0)  # what hides under transparent pixels is arbitrary: black here
    rgba[:, :30, 3] = 0
    rgba[:, 30:, :3] = (255, 0, 0)
    rgba[:, 30:, 3] = 255
    rgba[0, 45] = (255, 255, 255, 128)  # half transparent white over grey
    img = imageio.decode_image(png(Image.fromarray(rgba, "RGBA")))
    assert img.shape == (40, 60, 3)
    assert tuple(img[10, 10]) == imageio.BACKGROUND
    assert tuple(img[10, 40]) == (0, 0, 255)  # BGR
    assert all(abs(int(v) - 192) <= 1 for v in img[0, 45])


@pytest.mark.parametrize("mode", ["LA", "P+tRNS", "P"])
def test_gray_alpha_and_palette_png(mode):
    base = Image.fromarray(picture())
    if mode == "LA":
        im = base.convert("LA")
        kw = {}
    else:
        im = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
        kw = {"transparency": 0} if mode == "P+tRNS" else {}
        im.info.update(kw)
    img = imageio.decode_image(png(im, **kw))
    assert img.shape == (80, 120, 3) and img.dtype == np.uint8
    ref = np.asarray(im.convert("RGB"))[:, :, ::-1].astype(int)
    opaque = np.asarray(im.convert("RGBA"))[:, :, 3] == 255
    assert np.abs(img.astype(int) - ref)[opaque].max() <= 1


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_is_scaled_with_rounding(channels):
    values = np.array([0, 128, 257, 32767, 32896, 65535], np.uint16)
    expected8 = np.array([0, 0, 1, 127, 128, 255], np.uint8)
    a = np.tile(values, (4, 1))
    if channels > 1:
        a = np.stack([a] * channels, axis=2)
        if channels == 4:
            a[..., 3] = 65535
    ok, enc = cv2.imencode(".png", a)
    assert ok
    img = imageio.decode_image(enc.tobytes())
    assert img.dtype == np.uint8 and img.shape == (4, 6, 3)
    assert np.array_equal(img[0, :, 0], expected8)


def test_16bit_tiff_via_pillow():
    a = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024)
    img = imageio.decode_image(pil_bytes(Image.fromarray(a), "TIFF"))
    assert img.shape == (8, 8, 3) and img[7, 7, 0] == round(63 * 1024 * 255 / 65535)


def test_animated_gif_gives_the_first_frame():
    red = Image.new("RGB", (50, 40), (255, 0, 0))
    blue = Image.new("RGB", (50, 40), (0, 0, 255))
    data = pil_bytes(red, "GIF", save_all=True, append_images=[blue, blue], duration=100, loop=0)
    img = imageio.decode_image(data)
    assert img.shape == (40, 50, 3)
    assert tuple(img[20, 25]) == (0, 0, 255)  # BGR red


@pytest.mark.parametrize("fmt", ["BMP", "WEBP", "TIFF"])
def test_other_formats(fmt):
    data = pil_bytes(Image.fromarray(picture()), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    img = imageio.decode_image(data)
    assert img.shape == (80, 120, 3)
    assert np.abs(img[:, :, ::-1].astype(int) - picture()).max() <= 1


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_long_side_capped_with_mapping_back(fmt):
    im = Image.fromarray(picture(1000, 600))
    data = pil_bytes(im, fmt)
    d = imageio.decode(data, max_side=300)
    assert d.image.shape == (180, 300, 3)
    assert (d.width, d.height) == (1000, 600)
    assert d.to_original((30, 18, 300, 180)) == pytest.approx((100, 60, 1000, 600))
    # INTER_AREA: the block edge stays where it was, no aliasing of the gradient
    ref = cv2.resize(cv2.cvtColor(picture(1000, 600), cv2.COLOR_RGB2BGR), (300, 180),
                     interpolation=cv2.INTER_AREA)
    assert np.abs(d.image.astype(int) - ref).mean() < 3


def test_jpeg_dct_reduction_with_min_side_keeps_original_coordinates():
    data = jpeg(1920, 1080)
    d = imageio.decode(data, 5000, min_side=960)
    assert d.image.shape == (540, 960, 3)
    assert (d.width, d.height) == (1920, 1080) and d.scale == (2.0, 2.0)
    full = imageio.decode(data)
    assert full.image.shape == (1080, 1920, 3)
    small = cv2.resize(full.image, (960, 540), interpolation=cv2.INTER_AREA)
    assert np.abs(d.image.astype(int) - small).mean() < 3


def test_load_image_reads_files_and_reports_unreadable(tmp_path):
    p = tmp_path / "a.jpg"
    p.write_bytes(jpeg())
    assert imageio.load_image(p).shape == (80, 120, 3)
    for bad in (tmp_path / "missing.jpg", tmp_path):
        with pytest.raises(ImageError) as ei:
            imageio.load_image(bad)
        assert ei.value.code == "unreadable"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_only_raise_image_error(data):
    try:
        img = imageio.decode_image(data, max_side=512, max_pixels=4_000_000)
    except ImageError as e:
        assert e.code in {"empty", "not_an_image", "truncated", "too_many_pixels", "unsupported"}
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


_SEEDS = {"jpeg": jpeg(64, 48), "png": png(Image.fromarray(picture(64, 48))),
          "gif": pil_bytes(Image.fromarray(picture(64, 48)), "GIF")}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_SEEDS)), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                max_size=8), st.integers(0, 10_000))
def test_fuzz_mutated_images_only_raise_image_error(kind, flips, cut):
    data = bytearray(_SEEDS[kind])
    for pos, val in flips:
        data[pos % len(data)] = val
    data = bytes(data[:max(1, len(data) - cut % 64)])
    try:
        img = imageio.decode_image(data, max_side=512, max_pixels=4_000_000)
    except ImageError:
        pass
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.c_contiguous
