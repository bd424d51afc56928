"""Batch over a folder with nothing to read at its top level (issue 11): one line and exit 1,
never a quiet "0 images" run that exits 0. Real images, the real CLI in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import data_path
from streamer.batch.discover import discover
from streamer.errors import StreamerError

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ("facebox", "dlib_faces", "images", "2008_001009.jpg")


def nested(tmp_path: Path) -> Path:
    """input/ with three real photos in two subfolders and none at the top."""
    inp = tmp_path / "input"
    for rel in ("2024/a.jpg", "2024/b.jpg", "2025/deep/c.jpg"):
        (inp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_path(*PHOTO), inp / rel)
    (inp / "notes.txt").write_text("not an image")
    return inp


def batch(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "batch", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_images_only_in_subfolders_are_counted_and_recursive_is_suggested(tmp_path):
    inp = nested(tmp_path)
    with pytest.raises(StreamerError, match=r"no images at its top level, but 3 in subfolders "
                                            r"below it; add --recursive"):
        discover(inp, recursive=False)
    assert sorted(it.rel for it in discover(inp, recursive=True)) == [
        "2024/a.jpg", "2024/b.jpg", "2025/deep/c.jpg"]


@pytest.mark.parametrize("recursive", [False, True])
def test_a_folder_without_images_is_refused(tmp_path, recursive):
    inp = tmp_path / "empty"
    (inp / "sub").mkdir(parents=True)
    (inp / "sub" / "readme.md").write_text("x")
    with pytest.raises(StreamerError, match=r"no images in it"):
        discover(inp, recursive=recursive)


@pytest.mark.timeout(180)
def test_cli_says_how_many_are_below_and_exits_1(tmp_path):
    inp = nested(tmp_path)
    r = batch("--input", str(inp), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert errors == [f"error: --input {inp}: no images at its top level, but 3 in subfolders "
                      f"below it; add --recursive to read them"], r.stderr
    assert "Traceback" not in r.stderr
    # ... and --recursive reads them.
    r = batch("--input", str(inp), "--output", str(tmp_path / "out"), "--recursive")
    assert r.returncode == 0, r.stderr
    faces = (tmp_path / "out" / "faces.csv").read_text().splitlines()
    assert {l.split(",")[0] for l in faces[1:]} == {"2024/a.jpg", "2024/b.jpg", "2025/deep/c.jpg"}


@pytest.mark.timeout(120)
def test_cli_on_an_empty_folder_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "empty").mkdir()
    r = batch("--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and "no images in it" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
