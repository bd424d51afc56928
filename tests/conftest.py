"""Shared test fixtures, and the one rule for a missing real resource.

Real data comes from one configurable folder: $STREAMER_DATA (the Makefile sets it to
../shared/data when that exists). The real parts the tests drive (the shared data, mosquitto,
GStreamer's RTSP server, Xvfb, Chromium, ffmpeg...) are asked for through ``require`` /
``require_binary`` only:

- locally, a missing resource SKIPS the test with the reason (a laptop without Chromium can
  still run the rest);
- with ``CI=true`` (as .ci/run is run), a missing resource FAILS the test, naming it (the
  folder path, the binary and the Debian package), so CI can never turn green by skipping
  what it claims to test. `make test` installs everything CI needs (`make system`).

Version-specific skips (OpenCV 5 has no Caffe importer) are not missing resources and stay
plain skips.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# `auto` follows this machine's backend measurement (`run.py models --tune`, which the set-up's
# model step runs; streamer/inference/choice.py). The suite switches measurements off, so `auto`
# means OpenVINO on every machine, a test's backend does not depend on the box it runs on, and
# no site test measures; tests/test_backend_choice.py drives the measured path itself.
os.environ["STREAMER_BACKEND_CHOICE"] = "off"

# Where binaries live on Debian besides $PATH: mosquitto installs to /usr/sbin, which a
# non-root PATH often lacks.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(reason: str) -> None:
    """A required real resource is missing: skip locally, fail under CI=true. Never returns."""
    if in_ci():
        pytest.fail(f"CI=true requires it: {reason}", pytrace=False)
    pytest.skip(reason)


def require(available, reason: str):
    """``available`` when it is truthy, else ``missing(reason)``; e.g.
    ``require(shutil.which("ffmpeg"), "ffmpeg not found (Debian package ffmpeg)")``."""
    if not available:
        missing(reason)
    return available


def find_binary(*names: str) -> str | None:
    """The first of ``names`` found on $PATH, then in the sbin folders, or None."""
    for name in names:
        path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
        if path:
            return path
    return None


def require_binary(*names: str, package: str) -> str:
    """Path of the first of ``names`` found (on $PATH, then /usr/sbin etc.), else missing()."""
    path = find_binary(*names)
    if path is None:
        missing(f"binary {' / '.join(names)} not found on PATH or in {', '.join(_SBIN)} "
                f"(Debian package {package}; `make system` installs it)")
    return path


# ---- shared data --------------------------------------------------------------------------

def data_folder() -> Path:
    """Where the shared data is expected: $STREAMER_DATA, else ../shared/data."""
    env = os.environ.get("STREAMER_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def data_root() -> Path | None:
    p = data_folder()
    return p if p.is_dir() else None


def data_path(*parts: str) -> Path:
    """Path of a shared data file or folder; missing() naming the path when it is absent."""
    root = data_folder()
    if not root.is_dir():
        missing(f"shared test data folder {root} not found (set STREAMER_DATA to the shared data "
                "folder, ../shared/data)")
    p = root.joinpath(*parts)
    if not p.exists():
        missing(f"shared test data {p} not found")
    return p


@pytest.fixture
def data_dir() -> Path:
    return data_path()


@pytest.fixture
def shared_data() -> Path:
    return data_path()


def video_path(name: str) -> Path:
    return data_path("video", name)


def count_events(evs: list[dict], type_: str) -> int:
    return sum(1 for e in evs if e["type"] == type_)


# ---- real binaries ------------------------------------------------------------------------

@pytest.fixture
def mosquitto_bin() -> str:
    return require_binary("mosquitto", package="mosquitto")


@pytest.fixture
def xvfb_bin() -> str:
    return require_binary("Xvfb", package="xvfb")


@pytest.fixture
def chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths."""
    browser = require_binary("chromium", "chromium-browser", "google-chrome", package="chromium")
    driver = require_binary("chromedriver", package="chromium-driver")
    return browser, driver


def require_gstreamer_rtsp() -> None:
    from helpers import rtsp_server

    reason = rtsp_server.unavailable_reason()
    if reason:
        missing(reason)


@pytest.fixture(scope="module")
def rtsp_clip(tmp_path_factory) -> Path:
    """The sample clip as raw H.264 for tests/helpers/rtsp_server.py; needs GStreamer's RTSP
    server (missing() otherwise)."""
    from helpers import rtsp_server

    require_gstreamer_rtsp()
    return rtsp_server.extract_h264(video_path("face_recognition__short_hamilton_clip.mp4"),
                                    tmp_path_factory.mktemp("rtsp"))
