"""Backend choice, per-process settings and ``load``.

Threads: a process runs one stream (or one batch worker), so the thread budget is per process.
``threads: 0`` (auto) follows the process's OpenCV budget: every core it may run on by
default (right for one stream per box), ``cores // workers`` in a batch worker (the batch
runner sets it). With N streams on a box, give each ``max(1, cores // N)``
(``inference.threads``). The same number goes to OpenVINO (``INFERENCE_NUM_THREADS`` per
compiled model) and to OpenCV (``cv2.setNumThreads``, process-wide; it also drives resize and
the other cv2 calls).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from streamer.errors import ModelError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "openvino", "opencv", "onnxruntime")


@dataclass(frozen=True)
class InputSpec:
    """How a net wants its pixels. Callers always pass uint8 BGR images (N x H x W x 3).

    ``rgb``: the net wants RGB; ``mean`` is subtracted per channel in the net's channel order,
    then the result is multiplied by ``scale``. ``batch``: the first dimension varies from
    call to call (classifier batches); otherwise the net runs one image at a time and is
    compiled per input size (detectors).
    """

    rgb: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    batch: bool = False


class Model(Protocol):
    backend: str  # "openvino" | "opencv" | "onnxruntime"

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        """uint8 BGR N x H x W x 3 -> the outputs asked for at load, in that order.

        OpenVINO outputs are views into the calling thread's own request buffers (no copy on
        the hot path), valid until that thread's next ``infer`` on the same model: copy what
        you keep. An OpenVINO model is safe to call from any thread (``load`` hands every
        caller in the process the same one); an OpenCV model belongs to one thread."""
        ...


@dataclass(frozen=True)
class Settings:
    backend: str = "auto"
    threads: int = 0  # 0 = every core this process may use
    cache_dir: Optional[str] = None  # compiled OpenVINO models; None = ~/.cache/streamer/openvino


_lock = threading.Lock()
_settings = Settings()
_resolved: Optional[str] = None


def configure(backend: Optional[str] = None, threads: Optional[int] = None,
              cache_dir: Optional[str] = None) -> Settings:
    """Set the process's inference settings (only the arguments given change)."""
    global _settings, _resolved
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"inference.backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if threads is not None and threads < 0:
        raise ValueError(f"inference.threads: expected int >= 0 (0 = auto), got {threads}")
    with _lock:
        new = Settings(backend if backend is not None else _settings.backend,
                       threads if threads is not None else _settings.threads,
                       cache_dir if cache_dir is not None else _settings.cache_dir)
        if new.backend != _settings.backend:
            _resolved = None
        _settings = new
    if threads is not None:
        import cv2
        cv2.setNumThreads(threads or cores())
    return _settings


def settings() -> Settings:
    return _settings


def thread_count() -> int:
    """Threads for a net compiled now: ``inference.threads``, or with 0 (auto) the process's
    OpenCV budget (``cv2.getNumThreads()``: every core by default, a batch worker's share of
    the cores once the batch runner has set it, ``OPENCV_FOR_THREADS_NUM`` if given)."""
    if _settings.threads:
        return _settings.threads
    import cv2
    return max(1, cv2.getNumThreads())


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def stream_threads() -> int:
    """A stream's inference threads with ``inference.threads: 0``: every core but one, which its
    capture thread keeps busy decoding and preparing frames (runtime/wiring.py says what was
    measured)."""
    return max(1, cores() - 1)


def openvino_available() -> bool:
    try:
        from streamer.inference.ov_backend import runtime
        runtime()  # the extension alone: what a warm start needs (see ov_backend)
        return True
    except Exception:  # noqa: BLE001 - an import that fails in any way means "not here"
        return False


def active_backend() -> str:
    """The backend ``auto`` stands for in this process (decided once, logged once)."""
    global _resolved
    with _lock:
        if _resolved is None:
            want = _settings.backend
            if want == "opencv":
                _resolved = "opencv"
            elif want == "onnxruntime":
                from streamer.inference.ort_backend import available
                if not available():
                    raise ModelError("inference.backend onnxruntime: the onnxruntime package does not "
                                     "import here; pip install -r requirements.txt, or set "
                                     "inference.backend: auto")
                _resolved = "onnxruntime"
            elif want == "auto" and (chosen := _measured_choice()) is not None:
                _resolved = chosen
            elif openvino_available():
                _resolved = "openvino"
            elif want == "openvino":
                raise ModelError("inference.backend openvino: the openvino package does not import "
                                 "here; pip install -r requirements.txt, or set inference.backend: opencv")
            else:
                log.info("inference: OpenVINO is not installed; running every net on OpenCV DNN")
                _resolved = "opencv"
        return _resolved


def _measured_choice() -> Optional[str]:
    """What ``run.py models --tune`` measured fastest on this machine (inference/choice.py),
    if it still imports here; None without a measurement for this machine."""
    from streamer.inference import choice
    record = choice.measured()
    if record is None:
        if choice.choice_path() is None:  # measurements switched off (the test suite)
            return None
        log.info("inference: auto is OpenVINO where it imports (no backend measurement for this "
                 "machine; `run.py models --tune` measures which one is fastest here)")
        return None
    chosen = record["chosen"]
    if not choice.available(chosen):
        return None
    costs = ", ".join(f"{b} {c['frame_ms']:.2f}" for b, c in
                      sorted(record["costs"].items(), key=lambda kv: kv[1]["frame_ms"]))
    log.info("inference: auto is %s, the fastest measured on this machine (ms per frame: %s; "
             "%s, `run.py models --tune` re-measures)", chosen, costs, record.get("measured_at"))
    return chosen


# Formats only OpenCV DNN reads: OpenVINO 2026 has no Caffe frontend and cannot convert the
# uint8-quantised res10 TensorFlow graph (its Dequantize consts have no conversion rule).
_OPENCV_ONLY = (".caffemodel", ".pb")
_said_fallback: set[str] = set()
_shared: dict = {}  # OpenVINO and ONNX Runtime models by backend, file, spec, outputs, threads, cache


def _one_per_process(backend: str, path: Path, spec: InputSpec, outputs: tuple, make,
                     remember: tuple = ()):
    """The process's one copy of this net on ``backend`` (``make()`` builds it the first time).
    Both runtimes serve every thread from one copy (OpenVINO a request per thread, ONNX
    Runtime's ``run`` is thread-safe), so a second copy (web analyzer workers, several cameras
    in one process) would cost its memory (~40 MB for the age net on OpenVINO) for nothing.
    An exception of a ``remember`` type (a net that can never run on ``backend``) is kept and
    raised again, so the net is not rebuilt on every load; any other propagates as it is."""
    st = path.stat()
    key = (backend, str(path.resolve()), st.st_size, st.st_mtime_ns, spec, outputs, thread_count(),
           _settings.cache_dir)
    with _lock:
        model = _shared.get(key)
        if model is None:
            try:
                model = make()
            except remember as e:
                model = e
            _shared[key] = model
    if isinstance(model, Exception):
        raise model
    return model


def load(path: Path, spec: InputSpec, outputs: Sequence[str] = (), *, config: Optional[Path] = None,
         backend: Optional[str] = None) -> Model:
    """Load one net on the chosen backend (default: the process's).

    ``outputs``: output names in the order ``infer`` returns them (empty: the net's own
    outputs, in order). ``config``: the second file of a two-file format (.pbtxt, .prototxt).
    A format OpenVINO or ONNX Runtime cannot read runs on OpenCV, and a net whose file fixes
    its input size leaves ONNX Runtime for OpenVINO (else OpenCV), each with one log line per
    file.
    """
    path = Path(path)
    outputs = tuple(outputs)
    chosen = backend or active_backend()
    if chosen in ("openvino", "onnxruntime") and path.suffix in _OPENCV_ONLY:
        if path.name not in _said_fallback:
            _said_fallback.add(path.name)
            log.info("inference: %s runs on OpenCV DNN (%s cannot read this format)", path.name,
                     "OpenVINO" if chosen == "openvino" else "ONNX Runtime")
        chosen = "opencv"
    if chosen == "onnxruntime":
        from streamer.inference.ort_backend import FixedShape, OnnxRuntimeModel
        try:
            return _one_per_process(chosen, path, spec, outputs,
                                    lambda: OnnxRuntimeModel(path, spec, outputs, thread_count()),
                                    remember=(FixedShape,))
        except FixedShape as e:
            chosen = "openvino" if openvino_available() else "opencv"
            if path.name not in _said_fallback:
                _said_fallback.add(path.name)
                log.info("inference: %s runs on %s (%s; ONNX Runtime cannot run it at other sizes)",
                         path.name, "OpenVINO" if chosen == "openvino" else "OpenCV DNN", e)
    if chosen == "openvino":
        from streamer.inference.ov_backend import OpenVinoModel
        return _one_per_process(chosen, path, spec, outputs,
                                lambda: OpenVinoModel(path, spec, outputs, thread_count(), _settings.cache_dir))
    from streamer.inference.cv_backend import OpenCvModel
    return OpenCvModel.from_files(path, spec, outputs, config)
