"""batch: folder -> faces.csv / errors.csv / annotated copies.

Two halves: orchestration (discovery, path safety, CSV writing, retries, worker crashes) with a
fake analyzer in real worker processes, and the real path (real models on real face photos,
through ``run.py`` in a subprocess for exit codes and SIGINT/--resume).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, data_path
from streamer import batch
from streamer import config
from streamer.errors import StreamerError

from helpers import batch_fakes

HEADER = ",".join(batch.FACE_COLUMNS)


# ---- helpers ----------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def faces_by_path(out: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in read_csv(out / "faces.csv"):
        rows.setdefault(r["path"], []).append(r)
    return rows


def errors_by_path(out: Path) -> dict[str, str]:
    rows = read_csv(out / "errors.csv")
    result = {r["path"]: r["error"] for r in rows}
    assert len(result) == len(rows), "an image appears twice in errors.csv"
    return result


def error_codes(out: Path) -> dict[str, str]:
    return {p: e.split(":", 1)[0] for p, e in errors_by_path(out).items()}


def assert_valid_faces_csv(out: Path) -> dict[str, list[dict]]:
    """Header exact, 12 cells per row, face indices 0..n-1 per image, no image doubled."""
    text = (out / "faces.csv").read_text()
    assert text.startswith(HEADER + "\n") and text.endswith("\n")
    raw = list(csv.reader(io.StringIO(text)))
    assert all(len(r) == 12 for r in raw), [r for r in raw if len(r) != 12]
    by_path = faces_by_path(out)
    for p, rows in by_path.items():
        idx = [r["face"] for r in rows]
        assert idx == [""] or idx == [str(i) for i in range(len(rows))], (p, idx)
    return by_path


def fake_cfg():
    return config.from_dict({})


def options(inp: Path, out: Path, **kw) -> batch.Options:
    base = dict(conf=0.5, workers=2, recursive=False, annotate=True, resume=False, max_side=5000,
                max_pixels=100_000_000, jpeg_quality=90)
    base.update(kw)
    return batch.Options(inp, out, **base)


def solid(path: Path, bgr=(90, 120, 150), size=(64, 48)) -> Path:
    img = np.full((size[1], size[0], 3), bgr, np.uint8)
    img[1:, 1:] = (90, 120, 150)  # pixel (0, 0) carries the fake's command
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


# ---- discovery and path safety ----------------------------------------------------------

def test_discover_sorted_by_extension_recursive_and_refusals(tmp_path):
    inp, outside = tmp_path / "in", tmp_path / "outside"
    for rel in ("b.jpg", "a.PNG", "c.txt", "sub/d.jpeg", "sub/deeper/e.webp", "dots..name.jpg"):
        (inp / rel).parent.mkdir(parents=True, exist_ok=True)
        (inp / rel).write_bytes(b"x")
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    os.symlink(outside / "secret.jpg", inp / "abs_link.jpg")
    os.symlink("../outside/secret.jpg", inp / "rel_out_link.jpg")
    os.symlink("sub/d.jpeg", inp / "rel_in_link.jpg")
    os.symlink("missing.jpg", inp / "broken_link.jpg")
    os.symlink("../outside", inp / "dir_link")
    os.symlink("sub", inp / "dir_in_link")
    os.symlink("/etc/passwd", inp / "not_an_image_name.txt")
    os.mkfifo(inp / "fifo.jpg")  # never opened: reading it would block

    flat = {it.rel: it for it in batch.discover(inp, recursive=False)}
    assert sorted(flat) == ["a.PNG", "abs_link.jpg", "b.jpg", "broken_link.jpg", "dots..name.jpg",
                            "rel_in_link.jpg", "rel_out_link.jpg"]
    assert flat["rel_in_link.jpg"].src == os.path.realpath(inp / "sub/d.jpeg")
    refused = {r: it.refusal for r, it in flat.items() if it.src is None}
    assert set(refused) == {"abs_link.jpg", "rel_out_link.jpg", "broken_link.jpg"}
    assert "absolute symlink" in refused["abs_link.jpg"]
    assert "outside the input folder" in refused["rel_out_link.jpg"]
    assert all(r.startswith("refused: ") for r in refused.values())

    deep = {it.rel: it for it in batch.discover(inp, recursive=True)}
    assert {"sub/d.jpeg", "sub/deeper/e.webp"} <= set(deep)
    assert "outside the input folder" in deep["dir_link"].refusal
    assert "symlinked folder" in deep["dir_in_link"].refusal
    assert [it.rel for it in batch.discover(inp, True)] == sorted(deep)


@pytest.mark.parametrize("case,message", [
    ("missing input", "no such folder"),
    ("input is a file", "not a folder"),
    ("output is input", "inside --input"),
    ("output inside input", "inside --input"),
    ("output is a file", "not a folder"),
    ("faces.csv exists", "--resume"),
])
def test_usage_errors(tmp_path, case, message):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    if case == "missing input":
        inp = tmp_path / "nope"
    elif case == "input is a file":
        inp = tmp_path / "file.jpg"
        inp.write_bytes(b"x")
    elif case == "output is input":
        out = inp
    elif case == "output inside input":
        out = inp / "results"
    elif case == "output is a file":
        out.write_text("x")
    elif case == "faces.csv exists":
        out.mkdir()
        (out / "faces.csv").write_text(HEADER + "\n")
    with pytest.raises(StreamerError) as ei:
        batch.check_paths(options(inp, out))
    assert message in str(ei.value) and "\n" not in str(ei.value)


def test_read_done_cuts_a_partial_last_line_and_rejects_foreign_csv(tmp_path):
    p = tmp_path / "faces.csv"
    p.write_text(HEADER + "\n" + "a.jpg,0,1,2,3,4,0.9,male,0.8,30.0,25.0,35.0\nb.jpg,,,,,,,,,,,\nc.jp")
    assert batch.read_done(p) == {"a.jpg", "b.jpg"}
    assert p.read_text().endswith("b.jpg,,,,,,,,,,,\n")
    p.write_text("name,x\n")
    with pytest.raises(StreamerError, match="not written by batch"):
        batch.read_done(p)


def test_csv_log_appends_whole_images(tmp_path):
    log = batch.CsvLog(tmp_path / "x.csv", ("path", "error"), fresh=True)
    log.append([["a, with comma.jpg", 'quote " and\nnewline'], ["b.jpg", "x"]])
    log.close()
    log = batch.CsvLog(tmp_path / "x.csv", ("path", "error"), fresh=False)  # no second header
    log.append([["c.jpg", "y"]])
    log.close()
    rows = read_csv(tmp_path / "x.csv")
    assert [r["path"] for r in rows] == ["a, with comma.jpg", "b.jpg", "c.jpg"]
    assert rows[0]["error"] == 'quote " and\nnewline'


# ---- orchestration through real worker processes, fake analyzer --------------------------

def test_retries_crash_isolation_and_annotation_with_fake_analyzer(tmp_path):
    inp, out, state = tmp_path / "in", tmp_path / "out", tmp_path / "state"
    state.mkdir()
    for i in range(6):
        solid(inp / f"ok{i}.jpg")
    solid(inp / "crash.png", batch_fakes.CRASH)
    solid(inp / "fail.png", batch_fakes.FAIL)
    solid(inp / "flaky.png", batch_fakes.FLAKY)
    solid(inp / "noface.png", batch_fakes.NO_FACE)
    (inp / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    summary = batch.run(options(inp, out), fake_cfg(), batch_fakes.FakeFactory(str(state)),
                        progress=False)

    by_path = assert_valid_faces_csv(out)
    assert sorted(by_path) == sorted([f"ok{i}.jpg" for i in range(6)] + ["flaky.png", "noface.png"])
    assert [r["face"] for r in by_path["noface.png"]] == [""]
    r = by_path["ok0.jpg"][0]
    assert (r["x1"], r["y1"], r["x2"], r["y2"]) == ("16.0", "12.0", "32.0", "36.0")
    assert (r["gender"], r["age"], r["age_low"], r["age_high"]) == ("female", "30.0", "25.0", "35.0")
    assert error_codes(out) == {"crash.png": "crashed", "fail.png": "failed", "broken.jpg": "truncated"}
    calls = {p.name: len(p.read_text().splitlines()) for p in state.iterdir()}
    # Run twice each; a crash may also cut short another worker's image, which is then re-run
    # without being charged, hence >= for the two that are not to blame.
    assert calls["calls_" + "_".join(map(str, batch_fakes.CRASH))] == 2  # alone a second time
    assert calls["calls_" + "_".join(map(str, batch_fakes.FAIL))] >= 2  # retried once
    assert calls["calls_" + "_".join(map(str, batch_fakes.FLAKY))] >= 2
    assert (summary.images, summary.analysed, summary.faces, summary.errors) == (11, 8, 7, 3)
    assert not summary.interrupted
    # Annotated copies: same relative path and format, boxes drawn in pure green.
    ann = cv2.imread(str(out / "ok0.jpg"))
    assert ann.shape == (48, 64, 3)
    assert (out / "noface.png").exists() and not (out / "crash.png").exists()
    png = cv2.imread(str(out / "flaky.png"))
    assert tuple(png[36, 24]) == (0, 255, 0)  # bottom edge of the box (label is at the top)


def test_stop_event_leaves_whole_images_and_resume_completes(tmp_path, monkeypatch):
    inp, out, state = tmp_path / "in", tmp_path / "out", tmp_path / "state"
    state.mkdir()
    for i in range(30):
        solid(inp / f"img{i:02d}.png", batch_fakes.NO_FACE if i % 3 == 0 else (1, 2, 3))
    stop = threading.Event()
    written = []
    append = batch.CsvLog.append

    def append_then_stop_after_six(self, rows):  # as if SIGINT arrived after six images
        append(self, rows)
        if rows[0][0] != "path":
            written.append(rows[0][0])
            if len(written) == 6:
                stop.set()

    monkeypatch.setattr(batch.CsvLog, "append", append_then_stop_after_six)
    factory = batch_fakes.FakeFactory(str(state))
    first = batch.run(options(inp, out, annotate=False), fake_cfg(), factory, stop=stop,
                      progress=False)
    monkeypatch.undo()
    assert first.interrupted and 6 <= first.analysed < 30
    partial = (out / "faces.csv").read_text()
    assert len(assert_valid_faces_csv(out)) == first.analysed

    second = batch.run(options(inp, out, annotate=False, resume=True), fake_cfg(), factory,
                       progress=False)
    assert (out / "faces.csv").read_text().startswith(partial)
    by_path = assert_valid_faces_csv(out)
    assert sorted(by_path) == [f"img{i:02d}.png" for i in range(30)]
    assert second.skipped == first.analysed and second.analysed == 30 - first.analysed
    assert not second.interrupted


@pytest.mark.parametrize("min_face_px,kept", [(300, True), (600, False)])
def test_worker_maps_boxes_to_original_and_filters_faces_there(tmp_path, min_face_px, kept):
    """A 2000x1000 JPEG is decoded at 1000x500 (DCT 1/2); the fake's face is 250 px wide there,
    500 px in the original: detector.min_face_px is judged on the 500."""
    src = solid(tmp_path / "wide.jpg", size=(2000, 1000))
    opts = options(tmp_path, tmp_path / "out", annotate=False, min_side=960,
                   min_face_px=min_face_px)
    res = batch.Worker(batch_fakes.FakeAnalyzer(tmp_path), opts).process(batch.Item("wide.jpg", str(src)))
    assert res.ok
    if kept:
        assert [f.box for f in res.faces] == [(500.0, 250.0, 1000.0, 750.0)]
    else:
        assert res.faces == ()


@pytest.mark.parametrize("die,message", [
    (False, "worker cannot start: RuntimeError: model file vanished"),
    (True, "died 5 times in a row"),
])
def test_workers_that_cannot_start_stop_the_run_with_one_error(tmp_path, die, message):
    inp, out = tmp_path / "in", tmp_path / "out"
    for i in range(4):
        solid(inp / f"img{i}.png")
    with pytest.raises(StreamerError, match=message):
        batch.run(options(inp, out, workers=1), fake_cfg(),
                  batch_fakes.BrokenInWorkers(os.getpid(), exit=die), progress=False)
    assert (out / "faces.csv").read_text() == HEADER + "\n"


def test_output_symlink_planted_in_output_is_not_followed(tmp_path):
    inp, out, elsewhere, state = (tmp_path / n for n in ("in", "out", "elsewhere", "state"))
    solid(inp / "sub" / "a.jpg")
    solid(inp / "b.jpg")
    elsewhere.mkdir()
    state.mkdir()
    out.mkdir()
    os.symlink(elsewhere, out / "sub")
    batch.run(options(inp, out, recursive=True), fake_cfg(), batch_fakes.FakeFactory(str(state)),
              progress=False)
    assert list(elsewhere.iterdir()) == []
    assert "leave the output folder" in errors_by_path(out)["sub/a.jpg"]
    assert (out / "b.jpg").is_file()


# ---- the real path: real models, real photos --------------------------------------------

def _need_real_models():
    from streamer.media import modelstore
    modelstore.verify()  # a missing model is a failure naming `make models`, not a skip


def utk_crops(n: int) -> list[np.ndarray]:
    return [img for img, _ in utk_labelled(n)]


def utk_labelled(n: int) -> list[tuple[np.ndarray, str]]:
    """The first n adult UTKFace crops with their labelled gender."""
    root = data_path("agegender", "utkface_dev")
    rows = [r for r in read_csv(root / "labels.csv") if 20 <= int(r["age"]) <= 60]
    return [(cv2.imread(str(root / r["path"])), r["gender"]) for r in rows[:n]]


def on_canvas(face: np.ndarray, size=(480, 360), at=(140, 80), scale=1.0) -> np.ndarray:
    """A tight face crop placed on a grey canvas, as a camera would frame it."""
    canvas = np.full((size[1], size[0], 3), 128, np.uint8)
    if scale != 1.0:
        face = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    h, w = face.shape[:2]
    canvas[at[1]:at[1] + h, at[0]:at[0] + w] = face
    return canvas


def save(img_bgr: np.ndarray, path: Path, fmt: str = "JPEG", mode: str = "RGB", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img_bgr[:, :, ::-1])
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, fmt, **kw)
    return path


def run_py(*args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "batch", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT, **kw)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder of real faces in every container variant, broken files and unsafe links."""
    _need_real_models()
    root = tmp_path_factory.mktemp("mixed")
    inp, outside = root / "in", root / "outside"
    labelled = utk_labelled(8)
    crops = [img for img, _ in labelled]
    photo = data_path("facebox", "dlib_faces", "images", "2008_001009.jpg")
    inp.mkdir()
    outside.mkdir()
    (inp / "photos").mkdir()
    (inp / "photos" / "dlib.jpg").write_bytes(photo.read_bytes())
    save(on_canvas(crops[0]), inp / "face.jpg")
    upright = on_canvas(crops[1], size=(640, 400), at=(60, 40))
    save(upright, inp / "upright.jpg")
    ex = Image.Exif()
    ex[0x0112] = 6  # stored turned 90 degrees counter-clockwise; viewers turn it back
    save(np.ascontiguousarray(np.rot90(upright, 1)), inp / "rotated6.jpg", exif=ex.tobytes())
    ex[0x0112] = 3
    save(np.ascontiguousarray(upright[::-1, ::-1]), inp / "rotated3.jpg", exif=ex.tobytes())
    rgba = np.dstack([on_canvas(crops[2]), np.full((360, 480), 255, np.uint8)])
    rgba[:, :100, 3] = 0  # transparent left band
    Image.fromarray(rgba[:, :, [2, 1, 0, 3]], "RGBA").save(inp / "alpha.png")
    deep = on_canvas(crops[3]).astype(np.uint16) * 257
    assert cv2.imwrite(str(inp / "deep16.png"), deep)
    save(on_canvas(crops[4]), inp / "gray.jpg", mode="L")
    save(on_canvas(crops[5]), inp / "cmyk.jpg", mode="CMYK")
    save(on_canvas(crops[6]), inp / "anim.gif", "GIF", save_all=True,
         append_images=[Image.new("RGB", (480, 360))])
    # larger than web.max_side (set to 800 in the config below): analysed downscaled
    save(on_canvas(crops[7], size=(1600, 1200), at=(700, 400), scale=2.0), inp / "big.jpg")
    save(np.full((300, 400, 3), 128, np.uint8), inp / "blank.png", "PNG")
    save(on_canvas(crops[0]), inp / "nested" / "sub" / "inner.jpg")
    whole = (inp / "face.jpg").read_bytes()
    (inp / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
    (inp / "empty.jpg").write_bytes(b"")
    (inp / "notes.jpg").write_text("this is a text file named .jpg\n")
    (inp / "readme.txt").write_text("not an image name: ignored\n")
    (outside / "secret.jpg").write_bytes(whole)
    os.symlink(outside / "secret.jpg", inp / "abs_link.jpg")
    os.symlink("../outside/secret.jpg", inp / "escape_link.jpg")
    os.symlink("face.jpg", inp / "inside_link.jpg")
    cfg = root / "batch.yaml"
    cfg.write_text("web:\n  max_side: 800\nbatch:\n  workers: 2\n")
    genders = {name: labelled[i][1] for i, name in enumerate(
        ["face.jpg", "upright.jpg", "alpha.png", "deep16.png", "gray.jpg", "cmyk.jpg", "anim.gif",
         "big.jpg"])}
    return root, inp, cfg, genders


EXPECTED_FACES = {"photos/dlib.jpg", "face.jpg", "upright.jpg", "rotated6.jpg", "rotated3.jpg",
                  "alpha.png", "deep16.png", "gray.jpg", "cmyk.jpg", "anim.gif", "big.jpg",
                  "inside_link.jpg"}
EXPECTED_ERRORS = {"truncated.jpg": "truncated", "empty.jpg": "empty", "notes.jpg": "not_an_image",
                   "abs_link.jpg": "refused", "escape_link.jpg": "refused"}


@pytest.fixture(scope="module")
def mixed_run(mixed):
    root, inp, cfg, _ = mixed
    out = root / "out_recursive"
    res = run_py("--input", inp, "--output", out, "--recursive", "--config", cfg)
    return res, out


def test_real_mixed_folder_rows_errors_and_exit_code_2(mixed, mixed_run):
    genders = mixed[3]
    res, out = mixed_run
    assert res.returncode == 2, res.stderr
    assert "5 image(s) failed" in res.stderr
    assert "14 analysed" in res.stdout and "5 errors" in res.stdout and "images/s" in res.stdout
    by_path = assert_valid_faces_csv(out)
    assert set(by_path) == EXPECTED_FACES | {"blank.png", "nested/sub/inner.jpg"}
    with_faces = {p for p, rows in by_path.items() if rows[0]["face"] != ""}
    assert with_faces == EXPECTED_FACES | {"nested/sub/inner.jpg"}
    assert error_codes(out) == EXPECTED_ERRORS
    assert len(by_path["photos/dlib.jpg"]) >= 2
    for p in with_faces - {"photos/dlib.jpg"}:
        assert len(by_path[p]) == 1, p
    for rows in by_path.values():
        for r in rows:
            if r["face"] and r["gender"]:
                assert r["gender"] in ("male", "female")
                assert 0 <= float(r["age_low"]) <= float(r["age"]) <= float(r["age_high"]) <= 120
                assert 0.5 <= float(r["gender_confidence"]) <= 1
                assert float(r["score"]) >= 0.5
    # Every container variant (gray, CMYK, 16-bit, alpha, GIF, downscaled) reaches the nets
    # with the right colours: the labelled gender comes out.
    assert {p: by_path[p][0]["gender"] for p in genders} == genders
    # annotated copies, same relative path and format, nothing for errors or refusals
    assert cv2.imread(str(out / "nested" / "sub" / "inner.jpg")) is not None
    assert Image.open(out / "deep16.png").format == "PNG"
    assert not (out / "abs_link.jpg").exists() and not (out / "truncated.jpg").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix == ".csv") == [
        "errors.csv", "faces.csv"]


def _box(rows: list[dict]) -> np.ndarray:
    assert len(rows) == 1
    return np.array([float(rows[0][k]) for k in ("x1", "y1", "x2", "y2")])


def test_real_boxes_are_upright_and_at_original_resolution(mixed_run):
    _, out = mixed_run
    by_path = faces_by_path(out)
    upright = _box(by_path["upright.jpg"])
    assert 60 - 20 <= upright[0] and upright[2] <= 260 + 20 and 40 - 20 <= upright[1]
    for name in ("rotated6.jpg", "rotated3.jpg"):  # same picture, turned by EXIF
        # Same pixels up to JPEG re-encoding: boxes agree within 8% of the face (CenterFace's box
        # edges move a few px with compression noise); a wrong orientation misses by the face.
        tol = 0.08 * max(upright[2] - upright[0], upright[3] - upright[1])
        assert np.abs(_box(by_path[name]) - upright).max() <= tol, (name, _box(by_path[name]), upright)
        assert cv2.imread(str(out / name)).shape == (400, 640, 3)  # annotated upright
    big = _box(by_path["big.jpg"])  # analysed at 800 px, reported in the 1600 px original
    cx, cy = (big[0] + big[2]) / 2, (big[1] + big[3]) / 2
    assert 700 < cx < 1100 and 400 < cy < 800 and big[2] - big[0] > 200
    assert cv2.imread(str(out / "big.jpg")).shape == (600, 800, 3)


def test_real_non_recursive_hd_reduction_and_exit_0(mixed, tmp_path):
    """Default config: 1080p JPEGs are analysed from a half-size decode, except the one whose
    face is too narrow to judge at half size (64 px wide -> 32 < 36), analysed again in full."""
    _, inp, _, _ = mixed
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("face.jpg", "cmyk.jpg", "blank.png"):
        (clean / name).write_bytes((inp / name).read_bytes())
    (clean / "sub").mkdir()
    (clean / "sub" / "x.jpg").write_bytes((inp / "face.jpg").read_bytes())
    (small, small_gender), (large, _) = utk_labelled(1)[0], utk_labelled(6)[5]
    save(on_canvas(small, size=(1920, 1080), at=(700, 300), scale=0.42), clean / "hd_small.jpg")
    save(on_canvas(large, size=(1920, 1080), at=(1200, 500), scale=1.5), clean / "hd_large.jpg")
    out = tmp_path / "out"
    res = run_py("--input", clean, "--output", out, "--workers", "1", "--conf", "0.6")
    assert res.returncode == 0, res.stderr
    by_path = faces_by_path(out)
    assert set(by_path) == {"face.jpg", "cmyk.jpg", "blank.png", "hd_small.jpg", "hd_large.jpg"}
    assert errors_by_path(out) == {}
    assert not (out / "sub").exists()
    x1, _, x2, _ = _box(by_path["hd_small.jpg"])
    assert 36 <= x2 - x1 < 72 and 690 < x1 < 800
    assert by_path["hd_small.jpg"][0]["gender"] == small_gender
    assert cv2.imread(str(out / "hd_small.jpg")).shape == (1080, 1920, 3)  # re-analysed in full
    x1, _, x2, _ = _box(by_path["hd_large.jpg"])
    assert x2 - x1 > 200 and 1150 < x1 < 1300  # original pixels, though analysed at half size
    assert cv2.imread(str(out / "hd_large.jpg")).shape == (540, 960, 3)


@pytest.mark.parametrize("args,message", [
    (lambda i, o: ["--input", i / "missing", "--output", o], "no such folder"),
    (lambda i, o: ["--input", i, "--output", i / "out"], "inside --input"),
    (lambda i, o: ["--input", i, "--output", o, "--conf", "1.5"], "batch.conf"),
    (lambda i, o: ["--input", i, "--output", o, "--workers", "-1"], "batch.workers"),
    (lambda i, o: ["--input", i, "--output", o, "--config", i / "missing.yaml"], "does not exist"),
    (lambda i, o: ["--input", i], "--output"),
    (lambda i, o: ["--input", i, "--output", o, "--conf", "high"], "invalid float value"),
], ids=["missing input", "output inside input", "conf", "workers", "config", "no output",
        "conf not a number"])
def test_cli_usage_errors_exit_1_with_one_line(tmp_path, args, message):
    inp = tmp_path / "in"
    inp.mkdir()
    res = run_py(*args(inp, tmp_path / "out"))
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr


def test_real_sigint_midway_then_resume_loses_and_doubles_nothing(tmp_path):
    _need_real_models()
    inp, out = tmp_path / "in", tmp_path / "out"
    crops = utk_crops(12)
    names = []
    for i in range(60):
        img = on_canvas(crops[i % len(crops)], size=(640, 480), at=(40 + 5 * i, 60 + 2 * i))
        names.append(f"{'sub/' if i % 4 == 0 else ''}img{i:02d}.jpg")
        save(img, inp / names[-1])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "run.py"), "batch", "--input", str(inp), "--output", str(out),
           "--recursive", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    faces = out / "faces.csv"
    # Poll the file the run writes (a subprocess cannot signal an Event) with a deadline.
    while time.monotonic() < deadline and proc.poll() is None:
        if faces.exists() and faces.read_text().count("\n") >= 8:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "--resume" in stderr
    first = assert_valid_faces_csv(out)
    assert 7 <= len(first) < 60
    before = faces.read_text()

    res = run_py("--input", inp, "--output", out, "--recursive", "--workers", "2", "--resume")
    assert res.returncode == 0, res.stderr
    assert f"({len(first)} already done)" in res.stdout
    assert faces.read_text().startswith(before)
    by_path = assert_valid_faces_csv(out)
    assert sorted(by_path) == sorted(names)
    assert all(len(rows) == 1 and rows[0]["face"] == "0" for rows in by_path.values())
    assert errors_by_path(out) == {}
