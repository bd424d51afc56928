"""Fuzzing ``POST /analyze``: random and mutated payloads never get a 5xx, never crash the
server, and do not grow its memory.

A few thousand cases in well under a minute: most go through the real decoder
(``streamer.media.images``) and a fake analyzer (the decoder is where hostile bytes bite); a subset
of small mutated images also runs through the real models. Hypothesis runs derandomized so
CI sees the same cases every time; set ``STREAMER_FUZZ_SEED`` to explore new ones locally.

``web.max_pixels`` is lowered to 4 Mpx here: a mutated header may legitimately declare up to
that many pixels, and decoding 100 Mpx of garbage (allowed by the default) costs seconds per
case. The bomb guard at the default limit is tested in test_web.py.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import random

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conftest import data_root
from streamer.web import server as web
from helpers.web_fixtures import (FakeAnalyzer, cfg_with, encode, face_jpeg,
                      gif_two_frames, multipart, real_decode)

FUZZ_SEED = int(os.environ.get("STREAMER_FUZZ_SEED", "0"))
CONTENT_TYPES = ["application/json", "image/jpeg", "image/png", "application/octet-stream",
                 "text/plain", "", "multipart/form-data", "application/x-www-form-urlencoded"]


def fuzz_settings(n: int):
    return settings(max_examples=n, deadline=None, database=None, derandomize=FUZZ_SEED == 0,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def _maybe_seed(f):
    return seed(FUZZ_SEED)(f) if FUZZ_SEED else f


# ---- seed files ------------------------------------------------------------------------

def _seeds() -> tuple[list[bytes], int | None]:
    """Small real files of every decoded kind, and the index of the real face photo (if any)."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 255, (48, 64, 3), np.uint8)
    gray = cv2.cvtColor(noise, cv2.COLOR_BGR2GRAY)
    rgba = np.dstack([noise, np.full((48, 64), 128, np.uint8)])
    out = [encode(noise), encode(noise, ".png"), encode(gray, ".png"), encode(rgba, ".png"),
           encode((noise.astype(np.uint16) * 257), ".png"), encode(noise, ".bmp"),
           encode(noise, ".webp"), gif_two_frames()]
    ok, prog = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    out.append(prog.tobytes())
    face = None
    if data_root() is not None:  # a real face photo, when the shared data is there
        face = len(out)
        out.append(face_jpeg((240, 180)))
    from PIL import Image

    for mode, fmt in (("CMYK", "JPEG"), ("RGB", "TIFF"), ("P", "GIF")):
        b = io.BytesIO()
        Image.fromarray(noise[:, :, ::-1].copy()).convert(mode).save(b, format=fmt)
        out.append(b.getvalue())
    return out, face


SEEDS, FACE_SEED = _seeds()


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """Byte-level mutations of a real image: flips, overwrites, cuts, splices, header fields."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randrange(8)
        if not b:
            b = bytearray(rnd.randbytes(rnd.randint(1, 64)))
        i = rnd.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b[i] = rnd.choice([0, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
        elif op == 2:
            del b[i:]
        elif op == 3:
            del b[i:i + rnd.randint(1, 256)]
        elif op == 4:
            b[i:i] = rnd.randbytes(rnd.randint(1, 64))
        elif op == 5:
            j = rnd.randrange(len(b))
            b[i:i] = b[j:j + rnd.randint(1, 512)]
        elif op == 6 and len(b) > 32:  # header numbers (sizes, lengths) near the start
            k = rnd.randrange(min(len(b) - 4, 64))
            b[k:k + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff",
                                     rnd.randbytes(4)])
        else:
            b = b[:i] + b[i:][::-1] if rnd.random() < 0.1 else b
    return bytes(b)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


# ---- the app under test ----------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_client():
    app = web.create_app(cfg_with(max_pixels=4_000_000, max_body_mb=2.0),
                         web.AnalyzerPool([FakeAnalyzer()]), decode=real_decode())
    return app.test_client()


@pytest.fixture(scope="module")
def real_model_client():
    cfg = cfg_with(max_pixels=4_000_000, max_body_mb=2.0)
    return web.create_app(cfg, web.AnalyzerPool.build(cfg, 1), decode=real_decode()).test_client()


def check(resp) -> dict:
    """The invariant: a 2xx or 4xx, always JSON; a 4xx always names a code."""
    assert resp.status_code < 500, (resp.status_code, resp.get_data()[:300])
    assert resp.is_json, resp.get_data()[:300]
    body = resp.get_json()
    if resp.status_code >= 400:
        assert isinstance(body.get("code"), str) and isinstance(body.get("error"), str), body
        assert body["code"] != "undecodable", f"decoder raised a non-ImageError: {body}"
    else:
        assert isinstance(body["faces"], list)
    return body


def post_raw(c, data: bytes, ctype: str):
    if ctype == "multipart/form-data":
        body, ctype = multipart("image", "f", data, "application/octet-stream")
        return c.post("/analyze", data=body, content_type=ctype)
    return c.post("/analyze", data=data, content_type=ctype or None)


# ---- hypothesis fuzzers ----------------------------------------------------------------

@_maybe_seed
@fuzz_settings(600)
@given(data=st.binary(max_size=4096), ctype=st.sampled_from(CONTENT_TYPES))
def test_random_bytes(fuzz_client, data, ctype):
    check(post_raw(fuzz_client, data, ctype))


@_maybe_seed
@fuzz_settings(1200)
@given(which=st.integers(0, len(SEEDS) - 1), rseed=st.integers(0, 2**32 - 1),
       how=st.sampled_from(["multipart", "json", "raw"]))
def test_mutated_images(fuzz_client, which, rseed, how):
    data = mutate(SEEDS[which], random.Random(rseed))
    if how == "json":
        check(fuzz_client.post("/analyze?annotate=0", json={"image": base64.b64encode(data).decode()}))
    else:
        check(post_raw(fuzz_client, data, "multipart/form-data" if how == "multipart" else "image/png"))


@_maybe_seed
@fuzz_settings(400)
@given(doc=json_values, image=st.one_of(json_values, st.binary(max_size=200).map(
    lambda b: base64.b64encode(b).decode())), with_image=st.booleans())
def test_random_json_shapes(fuzz_client, doc, image, with_image):
    if with_image and isinstance(doc, dict):
        doc = {**doc, "image": image}
    check(fuzz_client.post("/analyze", data=json.dumps(doc), content_type="application/json"))


@_maybe_seed
@fuzz_settings(400)
@given(payload=st.binary(max_size=600), junk=st.text(alphabet="=-_+/ \n\t.:;,!%é\x00", max_size=6),
       where=st.integers(0, 2000), prefix=st.sampled_from(["", "data:image/png;base64,", "data:,",
                                                           "data:image/jpeg;base64"]),
       from_seed=st.booleans())
def test_random_base64(fuzz_client, payload, junk, where, prefix, from_seed):
    if from_seed:
        payload = SEEDS[where % len(SEEDS)][: 50 + where]
    text = base64.b64encode(payload).decode()
    text = text[:where] + junk + text[where:]
    check(fuzz_client.post("/analyze", json={"image": prefix + text, "filename": junk}))


@_maybe_seed
@fuzz_settings(300)
@given(which=st.integers(0, len(SEEDS) - 1), rseed=st.integers(0, 2**32 - 1),
       face=st.booleans())
def test_mutated_images_through_real_models(real_model_client, which, rseed, face):
    """Damaged photos that still decode reach the detector, the chips and the nets."""
    base = SEEDS[FACE_SEED] if face and FACE_SEED is not None else SEEDS[which]
    check(post_raw(real_model_client, mutate(base, random.Random(rseed)), "image/jpeg"))


# ---- memory ----------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _payloads(rnd: random.Random, n: int):
    for i in range(n):
        kind = i % 4
        if kind == 0:
            yield mutate(rnd.choice(SEEDS), rnd), "image/jpeg"
        elif kind == 1:
            yield rnd.choice(SEEDS), "multipart/form-data"
        elif kind == 2:
            yield rnd.randbytes(rnd.randint(0, 3000)), rnd.choice(CONTENT_TYPES)
        else:
            doc = {"image": base64.b64encode(mutate(rnd.choice(SEEDS), rnd)).decode()}
            yield json.dumps(doc).encode(), "application/json"


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc (Linux)")
def test_memory_stays_flat(request):
    """RSS after 2000 mixed requests through the real models stays within a few MB of RSS
    after a warm-up of the same mix."""
    from streamer.core.analyze import Analyzer

    cfg = cfg_with(max_pixels=4_000_000, max_body_mb=2.0)
    analyzers = [Analyzer(cfg)]
    c = web.create_app(cfg, web.AnalyzerPool(analyzers), decode=real_decode()).test_client()
    rnd = random.Random(1234)
    small = [s for s in SEEDS if len(s) < 40_000]

    def run(n):
        for data, ctype in _payloads(rnd, n):
            check(post_raw(c, data, ctype))
        for s in small:  # valid images reach the analyzer every round
            check(post_raw(c, s, "image/png"))

    run(400)
    gc.collect()
    before = rss_mb()
    for _ in range(4):
        run(400)
    gc.collect()
    after = rss_mb()
    print(f"RSS {before:.0f} -> {after:.0f} MB over 1600 requests")
    assert after - before < 25, f"RSS grew {after - before:.1f} MB over 1600 requests " \
                                f"({before:.0f} -> {after:.0f} MB)"
    assert c.get("/healthz").status_code == 200
    request.node.user_properties.append(("rss_growth_mb", round(after - before, 1)))
