"""OpenVINO backend: ONNX nets compiled for the CPU, pixel conversion inside the graph.

- The uint8 BGR NHWC images go straight into the compiled model: a ``PrePostProcessor``
  compiles the cast, channel swap, mean and scale into the graph, so Python never builds a
  float blob.
- Detectors (fixed batch 1) are compiled once per input size with static shapes (the fastest
  kernels) and each compiled model keeps one infer request, reused every frame. A stream sees
  one size for its whole life; the single-image path (web, batch) sees many, so after
  ``STATIC_SIZES`` distinct sizes the net is compiled once more with dynamic height and width
  and serves every further size from that (a new size then costs a shape change, ~30 ms,
  instead of a compile, ~200 ms).
- Classifiers are compiled once with a dynamic batch dimension.
- One ``ov.Core`` per process, with ``CACHE_DIR`` so later starts import compiled blobs.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from streamer.errors import ModelError
from streamer.inference.backend import InputSpec

log = logging.getLogger(__name__)

STATIC_SIZES = 2
_core = None
_core_lock = threading.Lock()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamer" / "openvino"


def core(cache_dir: Optional[str] = None):
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov
            c = ov.Core()
            d = Path(cache_dir) if cache_dir else default_cache_dir()
            try:
                d.mkdir(parents=True, exist_ok=True)
                c.set_property({"CACHE_DIR": str(d)})
            except OSError as e:  # a read-only home only costs start-up time
                log.info("inference: no OpenVINO model cache (%s: %s)", d, e.strerror)
            _core = c
        return _core


class OpenVinoModel:
    backend = "openvino"

    def __init__(self, path: Path, spec: InputSpec, outputs: Sequence[str], threads: int,
                 cache_dir: Optional[str] = None):
        self.path = Path(path)
        self.spec = spec
        self.threads = threads
        self._core = core(cache_dir)
        try:
            model = self._core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises plain RuntimeErrors
            raise ModelError(f"cannot load {self.path} with OpenVINO: {str(e).strip().splitlines()[0]}") from None
        names = [o.get_any_name() for o in model.outputs]
        missing = [n for n in outputs if n not in names]
        if missing:
            raise ModelError(f"{self.path.name} has no output {missing[0]!r} (outputs: {', '.join(names)})")
        self._out_idx = [names.index(n) for n in outputs] if outputs else list(range(len(names)))
        self._static: dict[tuple[int, int], object] = {}  # (h, w) -> infer request
        self._dynamic = None
        if spec.batch:
            ps = model.inputs[0].partial_shape
            h, w = (ps[i].get_length() if ps[i].is_static else -1 for i in (2, 3))
            self._dynamic = self._compile(model, [-1, 3, h, w])
        self._model = model if not spec.batch else None  # kept to compile further sizes

    def _compile(self, model, nchw: list[int]):
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        model = model.clone()
        model.reshape({model.inputs[0].get_any_name(): ov.PartialShape(nchw)})
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
            .set_color_format(ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        pre = ppp.input().preprocess().convert_element_type(ov.Type.f32)
        if self.spec.rgb:
            pre.convert_color(ColorFormat.RGB)
        if any(self.spec.mean):
            pre.mean(list(self.spec.mean))
        if self.spec.scale != 1.0:
            pre.scale(1.0 / self.spec.scale)
        try:
            compiled = self._core.compile_model(ppp.build(), "CPU", {
                "INFERENCE_NUM_THREADS": self.threads,
                # One request at a time per model: the latency hint keeps one CPU stream and
                # lets both threads work on the same frame.
                "PERFORMANCE_HINT": "LATENCY"})
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"cannot compile {self.path.name} with OpenVINO: {str(e).strip().splitlines()[0]}") from None
        return compiled.create_infer_request()

    def _request(self, h: int, w: int):
        if self._dynamic is not None and (self.spec.batch or (h, w) not in self._static):
            return self._dynamic
        req = self._static.get((h, w))
        if req is None:
            if len(self._static) < STATIC_SIZES:
                req = self._static[(h, w)] = self._compile(self._model, [1, 3, h, w])
            else:
                self._dynamic = req = self._compile(self._model, [1, 3, -1, -1])
        return req

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        if not images.flags.c_contiguous:
            images = np.ascontiguousarray(images)
        req = self._request(images.shape[1], images.shape[2])
        req.infer({0: images}, share_inputs=True)
        return [req.get_output_tensor(i).data for i in self._out_idx]
