"""``POST /analyze``: one uploaded photo through the single-image path (``core.analyze``).

Body: JSON ``{"image": "<base64>", "filename": "..."}``, a multipart upload (field ``image`` or
``file``) or a raw image/* body; ``?annotate=0`` leaves out the annotated JPEG;
``?view_width=N`` (64..8192, the page sends its figure's width in device pixels) sizes the
labels to be readable when the image is shown N pixels wide. Answer:
``{"faces": [...], "width", "height", "image" (base64 JPEG), "timing_ms"}`` with the faces
numbered left to right (list index = the number drawn on the image).

Admission: at most ``2 x pool size`` requests decode at once (the rest wait, then 503), so
memory stays bounded under a flood. Image decoding (EXIF, alpha, 16-bit, bombs, downscaling
to ``web.max_side``) is ``media.images.decode_image``'s job; its ``ImageError.code`` maps to
a status here.
"""

from __future__ import annotations

import base64
import logging
import time

from flask import Flask, g, jsonify, request

from streamer.core.events import attributes_payload
from streamer.errors import ImageError
from streamer.types import FaceResult
from streamer.web.analyzers import POOL_WAIT_S, ms
from streamer.web.errors import IMAGE_STATUS, ApiError
from streamer.web.uploads import flag, read_upload

log = logging.getLogger(__name__)


def face_json(f: FaceResult) -> dict:
    p = attributes_payload(f.attributes)
    gender, age = p["gender"], p["age"]
    return {"box": [int(round(v)) for v in f.box], "score": round(float(f.score), 3),
            "gender": gender["label"] if gender else None,
            "gender_confidence": gender["confidence"] if gender else None,
            "age": age["years"] if age else None, "age_range": age["range"] if age else None,
            "attributes_reason": p["attributes_reason"]}


def _view_width():
    v = request.args.get("view_width")
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        n = -1
    if not 64 <= n <= 8192:
        raise ApiError(400, "bad_param", f"view_width: expected an integer 64..8192 (pixels), "
                                         f"got {v[:20]!r}", param="view_width")
    return n


def register(app: Flask, st) -> None:
    cfg = st.cfg

    @app.post("/analyze")
    def analyze():
        st.metrics.analyze_requests.inc()
        annotate = flag("annotate", True)
        view_width = _view_width()
        if not st.in_flight.acquire(timeout=POOL_WAIT_S):
            raise ApiError(503, "busy", "too many requests in flight; retry later")
        try:
            return _analyze(annotate, view_width)
        finally:
            st.in_flight.release()

    def _analyze(annotate: bool, view_width):
        t0 = time.perf_counter()
        data, _name = read_upload()
        if not data:
            raise ApiError(400, "empty", "the uploaded file is empty (0 bytes)")
        t1 = time.perf_counter()
        try:
            image = st.decode(data, max_side=cfg.web.max_side, max_pixels=cfg.web.max_pixels)
        except ImageError as e:
            raise ApiError(IMAGE_STATUS.get(e.code, 400), e.code, str(e)) from None
        except MemoryError:
            raise ApiError(413, "too_many_pixels", "image too large to decode in memory") from None
        except Exception as e:  # a decoder bug must not become a 500 for the client
            log.exception("decoder failed on %d bytes", len(data))
            raise ApiError(400, "undecodable", f"image could not be decoded ({type(e).__name__})") from None
        del data
        t2 = time.perf_counter()
        done = st.pool.run(image, cfg.web.jpeg_quality if annotate else None, view_width=view_width)
        faces = [face_json(f) for f in done.analysis.faces]
        out = {"faces": faces, "width": int(image.shape[1]), "height": int(image.shape[0])}
        if done.jpeg is not None:
            out["image"] = base64.b64encode(done.jpeg).decode("ascii")
        t3 = time.perf_counter()
        out["timing_ms"] = {"read": ms(t1 - t0), "decode": ms(t2 - t1), "queue": done.queue_ms,
                            **done.analysis.timing_ms, "annotate": done.annotate_ms,
                            "total": ms(t3 - t0)}
        st.metrics.analyze_seconds.observe(t3 - t0)
        g.faces = len(faces)
        st.metrics.analyze_faces.inc(len(faces))
        return jsonify(out)
