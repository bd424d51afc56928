"""Web test helpers: configs, a fake analyzer, encoded images, a server on a free port."""

from __future__ import annotations
import base64
import csv
import dataclasses
import functools
import http.client
import io
import json
import logging
import socket
import struct
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Optional
import cv2
import numpy as np
import pytest
from streamer import config as config_mod
from streamer.web import server as web
from streamer.core.analyze import Analysis
from streamer.errors import ImageError
from streamer.web.metrics import parse as parse_metrics, value as metric
from streamer.media.output import LatestJpeg
from streamer.runtime.meters import LatencyHistogram
from streamer.types import Attributes, FaceResult, Stats
from conftest import ROOT, data_path



# ---- helpers (also used by test_web_fuzz, test_web_browser, scripts/bench_web) -----------

def cfg_with(**web_keys) -> config_mod.Config:
    cfg = config_mod.load()
    return dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, **web_keys))


class FakeAnalyzer:
    """One face at a fixed box; fails the test if two requests ever use it at once."""

    def __init__(self, faces: int = 1, delay: float = 0.0):
        self.faces = faces
        self.delay = delay
        self.calls = 0
        self.overlaps = 0
        self.threads: set[int] = set()
        self._busy = threading.Lock()

    def analyze(self, image, conf=None) -> Analysis:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()
        try:
            self.calls += 1
            self.threads.add(threading.get_ident())
            if self.delay:
                time.sleep(self.delay)  # stands for inference time, not for a thread wait
            h, w = image.shape[:2]
            a = Attributes("female", 0.91, 31.2, 25.0, 38.0, 0.4, 1)
            face = FaceResult((w * 0.25, h * 0.25, w * 0.5, h * 0.5), 0.93, a)
            return Analysis((face,) * self.faces, {"detect": 0.1, "attributes": 0.1})
        finally:
            self._busy.release()


def simple_decode(data: bytes, max_side: int = 5000, max_pixels: int = 100_000_000) -> np.ndarray:
    """Test stand-in for imageio.decode_image in parsing tests (which never reach the pixels)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError("not an image", "not_an_image")
    return img


def real_decode():
    from streamer.media.images import decode_image
    return decode_image


def encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def face_crop_path() -> Path:
    """A real UTKFace crop (adult male) that YuNet finds on a grey canvas."""
    root = data_path("agegender", "utkface_dev")
    with open(root / "labels.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["gender"] == "male" and 25 <= int(r["age"]) <= 35]
    return root / rows[2]["path"]


def face_image(size=(640, 480)) -> np.ndarray:
    """A 200 px real face on a grey canvas (the crops are too tight for a full-frame detector)."""
    w, h = size
    crop = cv2.imread(str(face_crop_path()))
    side = min(crop.shape[0], int(0.8 * min(w, h)))
    if side != crop.shape[0]:
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((h, w, 3), 118, np.uint8)
    y, x = (h - crop.shape[0]) // 2, (w - crop.shape[1]) // 2
    canvas[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    return canvas


def assert_box_on_the_crop(box, size=(640, 480)) -> None:
    """The face box of ``face_image(size)``: centred on the 200 px crop, about its size."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert abs(cx - size[0] / 2) < 40 and abs(cy - size[1] / 2) < 50, box
    assert 80 <= x2 - x1 <= 240 and 80 <= y2 - y1 <= 260, box


def face_jpeg(size=(640, 480)) -> bytes:
    return encode(face_image(size))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=2)
def bomb_png(side: int = 30000) -> bytes:
    """A valid 1-bit ``side`` x ``side`` PNG of zeros: ~110 KB that inflates to 900 Mpx."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def gif_two_frames() -> bytes:
    """An animated GIF: frame 0 red, frame 1 blue."""
    from PIL import Image

    frames = [Image.new("RGB", (64, 48), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def multipart(field: str, filename: str, data: bytes, ctype: str = "image/jpeg") -> tuple[bytes, str]:
    boundary = "----streamertest7MA4YWxkTrZu0gW"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def make_app(cfg=None, analyzer=None, decode=None, **kw):
    cfg = cfg or config_mod.load()
    pool = web.AnalyzerPool(analyzer if isinstance(analyzer, list) else [analyzer or FakeAnalyzer()])
    return web.create_app(cfg, pool, decode=decode or simple_decode, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app):
    server = web.Server(app, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.shutdown()


def request_to(server, method: str, path: str, body: Optional[bytes] = None, headers=None,
         timeout: float = 30.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def fake_pipeline(**over):
    lat = LatencyHistogram()
    for ms in (12, 30, 30, 80, 400):
        lat.add(ms)
    stats = Stats(frames_in=100, frames_processed=90, fps=24.5, faces=2, tracks=1,
                  counts={"door": {"in": 3, "out": 1}})
    p = SimpleNamespace(frames_in=100, frames_processed=90, frames=SimpleNamespace(dropped=4),
                        results=SimpleNamespace(dropped=1), frames_stale=5, frames_dropped=4 + 5,
                        reconnects=2,
                        thread_restarts=0, stage_errors=1, latency=lat, stats=stats,
                        last_frame_mono=time.monotonic(), source_up=True,
                        sinks=SimpleNamespace(by_type={"start": 3, "end": 2}, errors={"jsonl": 0, "mqtt": 7}),
                        stop_event=threading.Event(), started=time.monotonic())
    for k, v in over.items():
        setattr(p, k, v)
    return p
