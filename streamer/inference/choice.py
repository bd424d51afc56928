"""Which backend ``inference.backend: auto`` stands for on this machine: measured, not guessed.

OpenVINO is the default where it imports. Which runtime runs these small nets fastest depends
on the CPU, though: at float32, YuNet 640x352 on one thread cost 3.07 ms on ONNX Runtime
against 3.54 ms on OpenVINO on a Zen 5 (AVX-512, VNNI) box, and 6.5 against 8.6 ms on an AVX2
box (README, "Inference backends"). So ``run.py models --tune`` (part of the set-up's model
step) times a stream's nets on every installed backend the way a stream runs them (one thread
per net on this box's stream budget, YuNet at 640x352, the attribute nets on a chip and its
mirror) and stores the costs and the cheapest backend in ``backend.json`` beside the compiled
models' cache, for this CPU and these package and model versions: measured once, reused (as
FFTW's wisdom or cuDNN's benchmark mode are). ``auto`` reads it and falls back to OpenVINO when
there is no measurement for this machine (one log line says how to make one).

A backend other than OpenVINO is chosen only when it is at least ``MARGIN`` cheaper per frame:
the VM this was written on moves by 10-30 % within minutes, and a default should not flip on
noise. A frame's cost is YuNet's plus ``ATTRIBUTE_CALLS_PER_FRAME`` attribute calls (0.19
faces classified per frame on the sample clip, each one call of both nets).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from streamer.hashes import sha1

log = logging.getLogger(__name__)

MARGIN = 0.05
ATTRIBUTE_CALLS_PER_FRAME = 0.2
DEFAULT = "openvino"
CANDIDATES = ("openvino", "onnxruntime", "opencv")


def choice_path() -> Optional[Path]:
    """``$STREAMER_BACKEND_CHOICE``, else ``backend.json`` in streamer's cache folder; None when
    that variable is ``off`` (no measurement is read or made: ``auto`` is OpenVINO)."""
    env = os.environ.get("STREAMER_BACKEND_CHOICE")
    if env == "off":
        return None
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "streamer" / "backend.json"


def _cpu() -> str:
    """CPU model and instruction-set flags (what decides which kernels a runtime picks)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            info.setdefault(key.strip(), val.strip())  # the first core's lines
    except OSError:
        pass
    name, flags = info.get("model name") or platform.machine(), info.get("flags", "")
    return f"{name} [{sha1(flags.encode()).hexdigest()[:10]}]"


def _version(module: str) -> Optional[str]:
    """The installed version, from the package's ``*.dist-info`` folder name beside it: no
    import of the package (ONNX Runtime would cost an OpenVINO process ~0.1 s and its memory)
    nor of ``importlib.metadata`` (+4 MB RSS in every stream, for its ``email`` parser)."""
    import importlib.util
    if module == "cv2":
        import cv2
        return cv2.__version__
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    site = Path(spec.origin).resolve().parent.parent
    found = sorted(site.glob(f"{module}-*.dist-info"))
    return found[-1].name[len(module) + 1:-len(".dist-info")] if found else "unknown"


def available(backend: str) -> bool:
    from streamer.inference import backend as be
    if backend == "openvino":
        return be.openvino_available()
    if backend == "onnxruntime":
        from streamer.inference.ort_backend import available as ort
        return ort()
    return backend == "opencv"


def machine_key(models_dir: Optional[Path] = None) -> dict:
    """What a measurement holds for: the CPU, cores (which set a stream's threads per net), the
    runtimes' versions and the net files (by name and size; modelstore verifies checksums)."""
    from streamer.core.attribute_nets import AGE_ONNX, GENDER_ONNX
    from streamer.core.detectors import yunet
    from streamer.inference.backend import cores
    from streamer.media import modelstore

    files = {}
    for name in (yunet.MODEL, AGE_ONNX, GENDER_ONNX):
        try:
            files[name] = modelstore.path_of(name, models_dir).stat().st_size
        except OSError:
            files[name] = None
    return {"cpu": _cpu(), "cores": cores(),
            "versions": {m: _version(m) for m in ("openvino", "onnxruntime", "cv2")},
            "models": files}


def pick(costs: dict[str, float], margin: float = MARGIN) -> str:
    """The backend to use from per-frame costs (ms; only the backends measured here): the
    cheapest, unless OpenVINO was measured and the cheapest does not beat it by ``margin``."""
    if not costs:
        return DEFAULT
    best = min(costs, key=costs.get)
    if DEFAULT in costs and costs[best] > costs[DEFAULT] * (1 - margin):
        return DEFAULT
    return best


def measure(models_dir: Optional[Path] = None, backends=CANDIDATES, rounds: int = 3,
            calls: int = 15, progress: Callable[[str], None] = lambda s: None) -> dict[str, dict]:
    """CPU ms per call of YuNet 640x352 and of the age and gender nets on a pair of chips, per
    installed backend (median over ``rounds`` rounds that interleave the backends, each the
    median of ``calls`` calls on this thread), and the per-frame cost the choice compares."""
    from streamer import inference
    from streamer.core.attribute_nets import AGE_ONNX, GENDER_ONNX, DlibNets
    from streamer.core.detectors import yunet
    from streamer.media import modelstore

    rng = np.random.default_rng(0)
    nets = {"yunet": (yunet.MODEL, yunet.SPEC, yunet.OUTPUTS, (1, 352, 640, 3)),
            "age": (AGE_ONNX, DlibNets.SPEC, (), (2, 64, 64, 3)),
            "gender": (GENDER_ONNX, DlibNets.SPEC, (), (2, 32, 32, 3))}
    models: dict[str, dict] = {}
    for b in backends:
        if not available(b):
            continue
        progress(f"loading the nets on {b}")
        got = {}
        try:
            for net, (name, spec, outs, shape) in nets.items():
                m = inference.load(modelstore.path_of(name, models_dir), spec, outs, backend=b)
                if m.backend != b:
                    break
                x = rng.integers(0, 256, shape, dtype=np.uint8)
                for _ in range(3):  # first calls: allocation, a dynamic batch's first shape
                    m.infer(x)
                got[net] = (m, x)
            else:
                models[b] = got
        except Exception as e:  # noqa: BLE001 - a backend that cannot run here is no candidate
            progress(f"{b} left out: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    samples: dict[str, dict[str, list[float]]] = {b: {n: [] for n in nets} for b in models}
    for r in range(rounds):
        progress(f"round {r + 1} of {rounds}")
        for b, got in models.items():
            for net, (m, x) in got.items():
                ts = []
                for _ in range(calls):
                    t = time.thread_time()
                    m.infer(x)
                    ts.append((time.thread_time() - t) * 1000)
                samples[b][net].append(statistics.median(ts))
    out = {}
    for b, per in samples.items():
        ms = {f"{n}_ms": round(statistics.median(v), 3) for n, v in per.items()}
        ms["frame_ms"] = round(ms["yunet_ms"] + ATTRIBUTE_CALLS_PER_FRAME * (ms["age_ms"] + ms["gender_ms"]), 3)
        out[b] = ms
    return out


def tune(models_dir: Optional[Path] = None, path: Optional[Path] = None,
         progress: Callable[[str], None] = lambda s: None) -> dict:
    """Measure, choose, write the choice file (atomically); returns what it wrote."""
    from streamer import inference
    from streamer.inference.backend import stream_threads

    threads = stream_threads()  # as a stream runs its nets
    inference.configure(threads=threads)
    costs = measure(models_dir, progress=progress)
    record = {"key": machine_key(models_dir), "threads": threads, "costs": costs,
              "chosen": pick({b: c["frame_ms"] for b, c in costs.items()}),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "margin": MARGIN}
    path = path or choice_path()
    if path is None:
        raise ValueError("STREAMER_BACKEND_CHOICE is off: no backend measurement is stored")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.part")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    return record


def measured(models_dir: Optional[Path] = None, path: Optional[Path] = None) -> Optional[dict]:
    """The stored record when it was measured on this machine as it is now, else None (no
    file, unreadable, or another CPU, core count, runtime or model version)."""
    path = path or choice_path()
    if path is None:
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("chosen") not in CANDIDATES:
        return None
    key = record.get("key") or {}
    now = machine_key(models_dir)
    if key != now:
        log.info("inference: %s was measured on another machine or set-up (%s); "
                 "`run.py models --tune` measures this one", path,
                 ", ".join(k for k in now if key.get(k) != now[k]) or "unreadable key")
        return None
    return record
