"""Shared test fixtures. Real data comes from one configurable folder: $STREAMER_DATA
(the Makefile sets it to ../shared/data when that exists); tests that need it skip with the
reason when it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def data_root() -> Path | None:
    env = os.environ.get("STREAMER_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


def data_path(*parts: str) -> Path:
    """Path of a shared data file or folder, or skip the test naming what is missing."""
    root = data_root()
    if root is None:
        pytest.skip("real test data not found: set STREAMER_DATA to the shared data folder "
                    "(../shared/data)")
    p = root.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data {p} not found")
    return p


@pytest.fixture
def data_dir() -> Path:
    return data_path()


def video_path(name: str) -> Path:
    return data_path("video", name)


def count_events(evs: list[dict], type_: str) -> int:
    return sum(1 for e in evs if e["type"] == type_)


@pytest.fixture(scope="module")
def rtsp_clip(tmp_path_factory) -> Path:
    """The sample clip as raw H.264 for tests/helpers/rtsp_server.py, or skip when GStreamer's RTSP
    server is not installed."""
    from helpers import rtsp_server

    reason = rtsp_server.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return rtsp_server.extract_h264(video_path("face_recognition__short_hamilton_clip.mp4"),
                                    tmp_path_factory.mktemp("rtsp"))
