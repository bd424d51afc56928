"""ONNX Runtime backend: ONNX nets on ONNX Runtime's CPU execution provider (MLAS kernels).

Why a third backend: on the AVX2 development CPU (AMD EPYC, no VNNI/AVX-512) ONNX Runtime runs
YuNet at 640x352 for ~30 % less CPU than OpenVINO (6.4 vs 9.2 ms, one thread, interleaved
rounds; the age and gender nets cost the same on both), and YuNet is most of a stream's work.
On CPUs with wider vector units OpenVINO is the faster one (the shared models README measured
YuNet at 3.0 ms there), which is why ``auto`` stays OpenVINO; ``inference.backend:
onnxruntime`` is the choice for boxes like this one (``run.py bench --only backends`` tells).

- Nets whose file fixes the input size (CenterFace) run on OpenVINO (else OpenCV) instead,
  with one log line: ONNX Runtime cannot run them at another size.
- One session per net and process, shared by every thread (``InferenceSession.run`` is
  thread-safe); ONNX Runtime takes any input size and batch without a compile step, keeping
  its buffers in its own arena.
- Pixels: the float blob the OpenCV backend builds (``cv_backend.float_blob``).
- ``threads`` go to ``intra_op_num_threads``; inter-op parallelism is off (these nets are
  chains with no parallel branches worth a second pool), and spinning is off so an idle pool
  does not burn a core another stream could use.
- Memory (issue 13, <= 150 MB per stream): every session draws its activations from one arena
  registered for the process (``session.use_env_allocators``) instead of an arena each, and
  without the memory pattern (a per-shape block planned on top of the arena). Measured on the
  three nets of a stream (YuNet at 640x352 and 640x384, batches 1-8): 24.5 MB held after
  running -> 12.7 MB, outputs identical, CPU per call within +-2 % (paired runs). Switching the
  arena off altogether held 1 MB but cost YuNet 14 % more CPU.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from streamer.errors import ModelError, one_line
from streamer.inference.backend import InputSpec
from streamer.inference.cv_backend import float_blob


class FixedShape(Exception):
    """The net's file fixes the input size a caller varies (CenterFace ships as 10x3x32x32):
    ONNX Runtime, unlike OpenVINO and OpenCV, cannot run it at another size."""


_env_lock = threading.Lock()
_env_arena = False


def _shared_arena(ort) -> None:
    """Register the process's one CPU arena (once; sessions opt in with use_env_allocators)."""
    global _env_arena
    with _env_lock:
        if not _env_arena:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                     ort.OrtMemType.DEFAULT)
            # 0, 0, -1, -1: ONNX Runtime's defaults (no size cap, next-power-of-two growth);
            # kSameAsRequested growth held more here (15.6 vs 12.7 MB).
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 0, -1, -1))
            _env_arena = True


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 - an import that fails in any way means "not here"
        return False


class OnnxRuntimeModel:
    backend = "onnxruntime"

    def __init__(self, path: Path, spec: InputSpec, outputs: Sequence[str], threads: int):
        import onnxruntime as ort

        self.path = Path(path)
        self.spec = spec
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # warnings about unused initializers are noise to a user
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        _shared_arena(ort)
        so.add_session_config_entry("session.use_env_allocators", "1")
        so.enable_mem_pattern = False
        try:
            self._sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise ModelError(f"cannot load {self.path} with ONNX Runtime: {one_line(e)}") from None
        inp = self._sess.get_inputs()[0]
        varying = (0,) if spec.batch else (2, 3)
        if any(isinstance(inp.shape[i], int) for i in varying if i < len(inp.shape)):
            raise FixedShape(f"{self.path.name} fixes its input at {inp.shape}")
        self._input = inp.name
        names = [o.name for o in self._sess.get_outputs()]
        missing = [n for n in outputs if n not in names]
        if missing:
            raise ModelError(f"{self.path.name} has no output {missing[0]!r} (outputs: {', '.join(names)})")
        self._outputs = list(outputs) if outputs else names

    def infer(self, images: np.ndarray) -> list[np.ndarray]:
        return self._sess.run(self._outputs, {self._input: float_blob(images, self.spec)})
