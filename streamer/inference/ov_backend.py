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
- Compiled models are kept in a cache folder (``inference.cache_dir``, default
  ``~/.cache/streamer/openvino``) as exported blobs keyed by the model file, input shape,
  pixel conversion, threads and OpenVINO version. A warm start imports a blob (~0.03 s for
  YuNet) instead of reading, reshaping, adding the pre-processing and compiling (~0.25 s), and
  never loads the ONNX reader. OpenVINO's own ``CACHE_DIR`` was measured too: it still reads
  and hashes the model every start and saved little here. The folder is bounded
  (``CACHE_MAX_MB``): a blob used is touched, and after each new blob the least recently used
  ones go, so a box that runs for months through model refreshes and OpenVINO upgrades (each
  a new key) does not fill its disk.
- The warm path loads only OpenVINO's extension module (``openvino._pyopenvino``), not the
  ``openvino`` package: the package's init pulls in its Python API, frontends and telemetry,
  ~17 MB of RSS per process (measured: +29 MB vs +12 MB over numpy and cv2) that a stream
  importing cached blobs never uses. The full package is imported only to compile (a cache
  miss), and registers the same extension module, so both paths share one Core.
- Classifier batches are cut into chunks of at most ``MAX_BATCH`` images: the CPU plugin keeps
  the activation memory of the largest batch it has seen (~2 MB per age-net image), so a crowd
  of 16 faces, flipped, would otherwise pin ~60 MB for the life of the process.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from streamer.errors import ModelError, one_line
from streamer.hashes import sha256
from streamer.inference.backend import InputSpec

log = logging.getLogger(__name__)

STATIC_SIZES = 2
MAX_BATCH = 8
PRECISION = "f32"  # also in the blob cache key: blobs compiled at bf16 by an older build are not reused
CACHE_MAX_MB = 512  # ~35 sizes of every net; the default config's blobs take ~9 MB
_core = None
_compile_core = None
_ext = None
# One inference at a time per process. Two web analyzer threads inferring at once (each on its
# own request) hung for good inside OpenVINO's Python data dispatch on a fresh clone's warm-up;
# each call already uses every thread it is given, so serialising costs little on this box.
_INFER_LOCK = threading.Lock()
_core_lock = threading.Lock()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamer" / "openvino"


def runtime():
    """OpenVINO's extension module, loaded by itself (see the module docstring); raises what
    the import raises when OpenVINO is absent or broken."""
    global _ext
    with _core_lock:
        if _ext is None:
            mod = sys.modules.get("openvino._pyopenvino")
            if mod is None:
                try:
                    base = Path(importlib.util.find_spec("openvino").origin).parent
                    path = next(p for p in base.glob("_pyopenvino*")
                                if p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)))
                    spec = importlib.util.spec_from_file_location("openvino._pyopenvino", path)
                    mod = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(mod)
                    # The package's own import later finds this module instead of loading the
                    # extension twice (pybind11 types must be registered once).
                    sys.modules["openvino._pyopenvino"] = mod
                except (AttributeError, StopIteration, TypeError):  # an unexpected layout
                    import openvino  # noqa: F401 - the documented import
                    mod = sys.modules["openvino._pyopenvino"]
            _ext = mod
        return _ext


def compile_core():
    """The ``openvino`` package's Core, for reading and compiling ONNX files (cache misses
    only): its pre-processing builder needs the package's Python ``Model``."""
    global _compile_core
    runtime()
    with _core_lock:
        if _compile_core is None:
            import openvino as ov
            _compile_core = ov.Core()
        return _compile_core


def core():
    global _core
    ext = runtime()
    with _core_lock:
        if _core is None:
            _core = ext.Core()
        return _core


_said_no_cache: set[str] = set()


def _cache_file(cache_dir: Optional[str], key: str, stem: str) -> Optional[Path]:
    d = Path(cache_dir) if cache_dir else default_cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only home only costs start-up time
        if str(d) not in _said_no_cache:
            _said_no_cache.add(str(d))
            log.info("inference: no OpenVINO model cache (%s: %s)", d, e.strerror)
        return None
    return d / f"{stem}-{sha256(key.encode()).hexdigest()[:20]}.blob"


def _touch(blob: Path) -> None:
    """Mark a blob used now (the pruning keeps recently used ones); a read-only cache is fine."""
    try:
        os.utime(blob)
    except OSError:
        pass


_BLOB = re.compile(r"^.+-[0-9a-f]{20}\.blob$")  # only our own blobs are ever removed


def prune_cache(folder: Path, max_bytes: int, keep: Optional[Path] = None) -> int:
    """Remove this cache's least recently used blobs (by mtime, which a hit refreshes) until
    the rest fit in ``max_bytes``; ``keep`` (the blob just written) always stays. Other
    processes may prune or write at the same time: a file already gone is skipped. Returns
    how many were removed."""
    blobs = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        if _BLOB.match(e.name) and (keep is None or e.name != keep.name):
            try:
                st = e.stat()
            except OSError:
                continue
            blobs.append((st.st_mtime, st.st_size, e.path))
    total = sum(b[1] for b in blobs)
    if keep is not None:
        try:
            total += keep.stat().st_size
        except OSError:
            pass
    removed = 0
    for _mtime, size, path in sorted(blobs):
        if total <= max_bytes:
            break
        try:
            os.remove(path)
            removed += 1
        except OSError:
            pass
        total -= size
    if removed:
        log.info("inference: removed %d old compiled model(s) from %s (cache kept under %d MB)",
                 removed, folder, max_bytes >> 20)
    return removed


class OpenVinoModel:
    backend = "openvino"

    def __init__(self, path: Path, spec: InputSpec, outputs: Sequence[str], threads: int,
                 cache_dir: Optional[str] = None):
        self.path = Path(path)
        self.spec = spec
        self.threads = threads
        self.outputs = tuple(outputs)
        self.cache_dir = cache_dir
        self._core = core()
        self._model = None  # read only when a size must be compiled (a cache miss)
        self._out_idx: Optional[list[int]] = None
        self._static: dict[tuple[int, int], object] = {}  # (h, w) -> compiled model
        self._dynamic = None  # compiled with dynamic sizes (classifiers: dynamic batch)
        self._mapped: list = []  # the blob mappings the compiled models' weights live in
        # One infer request per thread and compiled model: a request's output buffers are the
        # views ``infer`` returns, so each thread keeps its own until its next call.
        self._local = threading.local()
        self._ext = runtime()
        st = self.path.stat()
        # What a compiled blob depends on; the file is sha256-verified by modelstore already.
        self._key = (f"{self.path.name}|{st.st_size}|{st.st_mtime_ns}|{spec}|{threads}|"
                     f"{PRECISION}|{runtime().get_version()}")
        if spec.batch:
            self._dynamic = self._compile(None)

    def _read(self):
        if self._model is None:
            try:
                self._model = compile_core().read_model(str(self.path))
            except Exception as e:  # noqa: BLE001 - OpenVINO raises plain RuntimeErrors
                raise ModelError(f"cannot load {self.path} with OpenVINO: {one_line(e)}") from None
        return self._model

    def _compile(self, nchw: Optional[list[int]]):
        """An infer request for input shape ``nchw`` (None: the classifier's own H x W with a
        dynamic batch), from the blob cache or compiled now. Output names are checked here,
        on the first compile (at load for classifiers, at the first frame for detectors)."""
        config = {"INFERENCE_NUM_THREADS": self.threads,
                  # One request at a time per model: the latency hint keeps one CPU stream and
                  # lets both threads work on the same frame.
                  "PERFORMANCE_HINT": "LATENCY",
                  # OpenVINO pins its inference threads to cores by default, and every process
                  # of a box picks the same ones: two one-thread streams then share one core
                  # (measured: YuNet 640x352 9.0 ms alone, 19.5 ms each for two processes
                  # pinned, 9.1 / 10.3 ms unpinned). The kernel's scheduler spreads them.
                  "ENABLE_CPU_PINNING": False,
                  # On CPUs with AVX-512 BF16 or AMX the CPU plugin runs in bfloat16 unless told
                  # otherwise (seen on a Zen 5: YuNet outputs on a 1/256 grid, boxes 5 px and age
                  # probabilities 0.025 off OpenCV's float32). The backends must agree within
                  # 2 px and 0.02 (tests/test_inference.py, test_detectors.py), so float32.
                  "INFERENCE_PRECISION_HINT": PRECISION}
        blob = _cache_file(self.cache_dir, f"{self._key}|{nchw}", self.path.stem)
        compiled = None
        if blob is not None and blob.is_file():
            try:
                # Mapped, not read: the CPU plugin keeps its weights in the mapping (zero-copy),
                # so they are file pages every process of the box shares (the age net's 10.5 MB
                # counted once, not per stream) instead of each process's own memory. Private
                # (copy-on-write) and never written in place: a blob is only ever replaced or
                # removed, which leaves an existing mapping intact.
                data = np.memmap(blob, dtype=np.uint8, mode="c")
                compiled = self._core.import_model(self._ext.Tensor(data, shared_memory=True), "CPU", config)
                self._mapped.append(data)  # the mapping lives as long as the model
                _touch(blob)
            except Exception as e:  # noqa: BLE001 - a stale or torn blob: compile afresh
                log.info("inference: ignoring cached %s (%s)", blob.name, one_line(e))
        if compiled is None:
            compiled = self._build(nchw, config)
            if blob is not None:
                try:
                    data = compiled.export_model()
                    tmp = blob.with_suffix(f".{os.getpid()}.part")
                    tmp.write_bytes(data.getvalue() if hasattr(data, "getvalue") else bytes(data))
                    os.replace(tmp, blob)
                    prune_cache(blob.parent, CACHE_MAX_MB << 20, keep=blob)
                except (OSError, RuntimeError) as e:
                    log.info("inference: cannot cache %s: %s", blob.name, e)
        if self._out_idx is None:
            # A compiled output keeps every name its tensor had; get_any_name may pick another.
            names = [set(o.get_names()) for o in compiled.outputs]
            missing = [n for n in self.outputs if not any(n in ns for ns in names)]
            if missing:
                shown = ", ".join(sorted(n for ns in names for n in ns))
                raise ModelError(f"{self.path.name} has no output {missing[0]!r} (outputs: {shown})")
            self._out_idx = ([next(i for i, ns in enumerate(names) if n in ns) for n in self.outputs]
                             if self.outputs else list(range(len(names))))
        return compiled

    def _build(self, nchw: list[int], config: dict):
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        model = self._read().clone()
        if nchw is None:
            ps = model.inputs[0].partial_shape
            nchw = [-1, 3] + [ps[i].get_length() if ps[i].is_static else -1 for i in (2, 3)]
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
            return compile_core().compile_model(ppp.build(), "CPU", config)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"cannot compile {self.path.name} with OpenVINO: {one_line(e)}") from None

    def _request(self, h: int, w: int):
        """This thread's request for an input of h x w (compiling the size if new)."""
        if self._dynamic is not None and (self.spec.batch or (h, w) not in self._static):
            compiled = self._dynamic
        else:
            compiled = self._static.get((h, w))
            if compiled is None:
                if len(self._static) < STATIC_SIZES:
                    compiled = self._static[(h, w)] = self._compile([1, 3, h, w])
                else:
                    self._dynamic = compiled = self._compile([1, 3, -1, -1])
        reqs = self._local.__dict__.setdefault("requests", {})
        req = reqs.get(id(compiled))
        if req is None:
            req = reqs[id(compiled)] = compiled.create_infer_request()
        return req

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        if not images.flags.c_contiguous:
            images = np.ascontiguousarray(images)
        if self.spec.batch and len(images) > MAX_BATCH:
            # Copies: each chunk's outputs are views the next chunk overwrites.
            parts = [[o.copy() for o in self.infer(images[i:i + MAX_BATCH])]
                     for i in range(0, len(images), MAX_BATCH)]
            return [np.concatenate(outs) for outs in zip(*parts)]
        ext = self._ext
        with _INFER_LOCK:
            req = self._request(images.shape[1], images.shape[2])
            # The extension's own call: no Python data dispatch, the array shared, not copied.
            ext.InferRequest.infer(req, ext.Tensor(images, shared_memory=True), True, False)
            return [req.get_output_tensor(i).data for i in self._out_idx]
