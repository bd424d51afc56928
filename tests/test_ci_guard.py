"""The CI rule of tests/conftest.py, through real pytest runs in a subprocess: a missing real
resource skips with its reason locally and FAILS, naming it, under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

TESTS = ROOT / "tests"

PROBE = '''
import sys
sys.path.insert(0, {tests!r})
from conftest import data_path, require, require_binary

def test_binary():
    require_binary("streamer-no-such-binary", package="streamer-nothing")

def test_data():
    data_path("no", "such", "file.mp4")

def test_require():
    require(None, "the frobnicator is not plugged in")

def test_present():
    assert require_binary("sh", package="dash").endswith("/sh")
'''


def pytest_run(args: list[str], ci: bool, cwd: Path, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "CI"}
    e.update(env)
    if ci:
        e["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=e)


@pytest.fixture
def probe(tmp_path) -> Path:
    (tmp_path / "test_probe.py").write_text(PROBE.format(tests=str(TESTS)))
    return tmp_path


def test_locally_a_missing_resource_skips_with_its_reason(probe):
    r = pytest_run(["test_probe.py"], ci=False, cwd=probe, STREAMER_DATA=str(probe / "nodata"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 3 skipped" in r.stdout, r.stdout
    assert "streamer-no-such-binary not found on PATH" in r.stdout
    assert "(Debian package streamer-nothing" in r.stdout
    assert f"shared test data folder {probe / 'nodata'} not found" in r.stdout
    assert "the frobnicator is not plugged in" in r.stdout


def test_under_ci_a_missing_resource_fails_naming_it(probe):
    r = pytest_run(["test_probe.py"], ci=True, cwd=probe, STREAMER_DATA=str(probe / "nodata"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "3 failed, 1 passed" in r.stdout, r.stdout
    assert "CI=true requires it: binary streamer-no-such-binary not found" in r.stdout
    assert f"CI=true requires it: shared test data folder {probe / 'nodata'} not found" in r.stdout
    assert "CI=true requires it: the frobnicator is not plugged in" in r.stdout
    assert "skipped" not in r.stdout.splitlines()[-1]


def test_ci_is_only_the_exact_value_true(probe):
    """CI=false or CI=1 is not the CI run (.ci/run is run with CI=true): local rules apply."""
    for value in ("false", "1", ""):
        r = pytest_run(["test_probe.py", "-k", "binary"], ci=False, cwd=probe, CI=value)
        assert r.returncode == 0 and "1 skipped" in r.stdout, (value, r.stdout)


def test_under_ci_the_real_data_tests_fail_naming_the_folder(tmp_path):
    """A real test that reads the shared data (the scene-cut labels on a real clip), with
    STREAMER_DATA pointing nowhere: skipped locally, failed under CI=true naming the folder."""
    missing = tmp_path / "nonexistent"
    args = [str(TESTS / "test_scenecut.py"), "-k", "finds_the_hard_cuts", "--rootdir", str(ROOT)]
    local = pytest_run(args, ci=False, cwd=ROOT, STREAMER_DATA=str(missing))
    assert local.returncode == 0 and "2 skipped" in local.stdout, local.stdout
    ci = pytest_run(args, ci=True, cwd=ROOT, STREAMER_DATA=str(missing))
    assert ci.returncode == 1 and "2 failed" in ci.stdout, ci.stdout
    assert f"shared test data folder {missing} not found" in ci.stdout
