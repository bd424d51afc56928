"""Decoder threads (``source.decoder_threads``): real files and a real RTSP stream opened
through ``VideoSource``, the thread count read back from FFmpeg.

Auto (0) decodes on one thread up to 1080p (a stream's inference has the other cores; the
README's density figures are measured this way) and on FFmpeg's own count above; a set value
is used as is. What each choice costs is measured in the bench (``density_backends``).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from conftest import video_path
from helpers.rtsp_server import RtspServer
from streamer.config import SourceConfig
from streamer.media.sources import VideoSource

CLIP = "face_recognition__short_hamilton_clip.mp4"


def opened(uri: str, **cfg) -> VideoSource:
    src = VideoSource(uri, SourceConfig(uri=uri, **cfg))
    src.open()
    return src


def ffmpeg_default_threads(path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_N_THREADS))
    finally:
        cap.release()


def big_clip(tmp_path, size=(2560, 1440)):
    path = tmp_path / "qhd.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    assert w.isOpened()
    for i in range(5):
        w.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    w.release()
    return path


def test_auto_decodes_a_720p_file_on_one_thread_and_reads_it():
    src = opened(str(video_path(CLIP)))
    try:
        assert src.size[1] <= 1080
        assert src.decoder_threads == 1
        frame = src.read()
        assert frame.image.shape[:2] == (src.size[1], src.size[0])
    finally:
        src.close()


def test_auto_leaves_a_picture_over_1080p_to_ffmpegs_threads(tmp_path):
    path = big_clip(tmp_path)
    if (os.cpu_count() or 1) < 2 or ffmpeg_default_threads(path) < 2:
        pytest.skip("FFmpeg picks one thread on this machine: nothing to tell apart")
    src = opened(str(path))
    try:
        assert src.size == (2560, 1440)
        assert src.decoder_threads == ffmpeg_default_threads(path)
        assert src.read().image.shape == (1440, 2560, 3)
        src.open()  # a reopen (as after an outage) keeps FFmpeg's threads without asking again
        assert src.decoder_threads == ffmpeg_default_threads(path)
    finally:
        src.close()


def test_a_set_count_is_used_for_any_size(tmp_path):
    for path in (video_path(CLIP), big_clip(tmp_path)):
        src = opened(str(path), decoder_threads=3)
        try:
            assert src.decoder_threads == 3
        finally:
            src.close()


def test_a_network_stream_decodes_on_one_thread(rtsp_clip):
    server = RtspServer(rtsp_clip)
    server.start()
    try:
        src = opened(server.url(), open_timeout_s=10.0)
        try:
            assert src.decoder_threads == 1
            assert src.read().image.ndim == 3
        finally:
            src.close()
    finally:
        server.kill()
