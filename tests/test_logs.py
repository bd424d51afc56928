"""The site log: rotation (forced, with the rollover clock moved by hand), gzip of rotated
files, ``keep`` honoured, credentials redacted, and the camera lines the supervisor writes."""

from __future__ import annotations

import gzip
import logging
import time

import pytest

from streamer.config.site import LogConfig
from streamer.runtime import site_logs


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        if h not in saved:
            h.close()
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize("rotate,pattern", [("hourly", "site.log.????-??-??_??.gz"),
                                            ("daily", "site.log.????-??-??.gz")])
def test_rotation_gzips_and_keeps(tmp_path, restore_root, rotate, pattern):
    path = tmp_path / "logs" / "site.log"
    fh = site_logs.setup(LogConfig(file=str(path), rotate=rotate, keep=3), "info",
                         stream=open("/dev/null", "w"))
    log = logging.getLogger("streamer.site")
    step = 3600 if rotate == "hourly" else 86400
    t = time.time() - 10 * step
    for i in range(6):
        log.info("period %d: camera door: running -> restarting (rtsp://admin:hunter2@10.0.0.5/s)", i)
        fh.rolloverAt = t + i * step + step  # the name is the period that just ended
        fh.doRollover()
    log.info("current period")
    fh.flush()
    rotated = sorted(path.parent.glob(pattern))
    assert len(rotated) == 3, [p.name for p in path.parent.iterdir()]  # keep: 3
    assert not list(path.parent.glob("*.tmp"))
    texts = [gzip.decompress(p.read_bytes()).decode() for p in rotated]  # valid gzip
    # The newest three periods survived, each with its own line, credentials redacted.
    for i, text in zip((3, 4, 5), texts):
        assert f"period {i}:" in text
        assert "hunter2" not in text and "rtsp://***@10.0.0.5/s" in text
    assert "current period" in path.read_text()
    assert all("period" not in line for line in path.read_text().splitlines()
               if "current" not in line)


def test_redaction_of_arguments_and_stderr_stream(tmp_path, restore_root):
    import io

    err = io.StringIO()
    site_logs.setup(LogConfig(file=str(tmp_path / "s.log")), "info", stream=err)
    logging.getLogger("streamer.camera.door").warning("source %s lost", "rtsp://u:p%40ss@cam/1")
    for text in (err.getvalue(), (tmp_path / "s.log").read_text()):
        assert "p%40ss" not in text and "rtsp://***@cam/1" in text
        assert "WARNING streamer.camera.door: source" in text


def test_unwritable_log_file_is_one_config_error(tmp_path, restore_root):
    from streamer.errors import ConfigError

    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "logs").write_text("a file where a folder should be")
    with pytest.raises(ConfigError, match="log.file"):
        site_logs.setup(LogConfig(file=str(ro / "logs" / "site.log")), "info",
                        stream=open("/dev/null", "w"))
