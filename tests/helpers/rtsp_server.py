"""A real RTSP server for the tests: GstRtspServer serving a clip in a loop on loopback.

Two halves in one file:
- ``main()`` is the server, run by the *system* ``/usr/bin/python3`` (PyGObject and
  GstRtspServer come from Debian packages, not from the venv):
      /usr/bin/python3 tests/helpers/rtsp_server.py PORT CLIP.h264 FPS [USER PASSWORD]
  It serves ``rtsp://127.0.0.1:PORT/cam`` and prints ``ready`` once it listens. The clip is a
  raw H.264 byte stream (``extract_h264`` makes it from an mp4 with ``ffmpeg -c copy``): raw
  Annex-B bytes can be concatenated, so ``multifilesrc loop=true`` plays it forever; it is
  decoded and re-encoded (x264 zerolatency, 1 s GOP) so that timestamps run on across loops
  and the stream looks like a camera's. With USER and PASSWORD, Basic auth is required, so a
  test proves that credentials in the URL are really sent (and never shown).
- ``RtspServer`` is the test-side handle (venv python): start, kill, restart on the same port.
- ``StreamerProcess`` runs the real CLI (``run.py stream``) against it, as a user would, with
  its output in files (a pipe nobody drains would block a long run) and the events file read as
  it grows. The real-process tests (``test_rtsp``, ``test_signals``) share it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

SYSTEM_PY = "/usr/bin/python3"
MOUNT = "/cam"
ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    port, clip, fps, cred = argv[0], argv[1], argv[2], argv[3:5]
    Gst.init(None)
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=port)
    factory = GstRtspServer.RTSPMediaFactory()
    # h264parse alone leaves PTS unset on a raw stream and FFmpeg's probe then runs its full
    # 5 s; decoding gives PTS, and zerolatency x264 with a short GOP keeps the stream live-like.
    factory.set_launch(
        f'( multifilesrc location="{clip}" loop=true '
        f'caps="video/x-h264,stream-format=byte-stream,framerate={fps}" ! h264parse ! avdec_h264 '
        "! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    if cred:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(*cred), token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.from_string(
            "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


# ---- test side ------------------------------------------------------------------------------

def unavailable_reason() -> str | None:
    """Why the real server cannot run here, or None when it can."""
    if not os.path.exists(SYSTEM_PY):
        return f"{SYSTEM_PY} not found (the GStreamer RTSP server needs the system python)"
    if shutil.which("ffmpeg") is None:
        return "ffmpeg not found (needed to extract the H.264 stream of the clip)"
    elements = ("multifilesrc", "h264parse", "avdec_h264", "videoconvert", "x264enc", "rtph264pay")
    probe = ("import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             f"missing = [e for e in {elements!r} if not Gst.ElementFactory.find(e)];"
             "assert not missing, f'GStreamer elements missing: {missing}'")
    r = subprocess.run([SYSTEM_PY, "-c", probe], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return ("GStreamer RTSP server unavailable (install python3-gi gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-plugins-good/-bad): " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def extract_h264(mp4: Path, out_dir: Path) -> tuple[Path, str]:
    """The clip's video as a raw Annex-B H.264 stream (stream copy: fast) and its frame rate
    (``30000/1001``), which a raw stream does not carry."""
    out = out_dir / (mp4.stem + ".h264")
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-an", "-c:v", "copy",
                        "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(out)],
                       check=True, timeout=60)
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                        "stream=r_frame_rate", "-of", "csv=p=0", str(mp4)],
                       capture_output=True, text=True, check=True, timeout=60)
    return out, r.stdout.strip() or "25/1"


class RtspServer:
    """Start / kill / restart the server process on one fixed port."""

    def __init__(self, clip: tuple[Path, str], port: int | None = None, user: str = "",
                 password: str = ""):
        self.clip, self.fps = clip
        self.port = port or free_port()
        self.cred = [user, password] if user else []
        self.proc: subprocess.Popen | None = None

    def url(self, userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{MOUNT}"

    def start(self, timeout: float = 15.0) -> None:
        # The port may still be held by connections of the previous instance: retry the bind.
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(
                [SYSTEM_PY, __file__, str(self.port), str(self.clip), self.fps, *self.cred],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline()
            if line.strip() == "ready":
                return
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.kill()
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start on port {self.port}: {err.strip()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-stream, as a crashed camera would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: the TCP connection stays open but no byte arrives (a hung camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> "RtspServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
        self.kill()


class StreamerProcess:
    """``run.py stream --source SOURCE --events events.jsonl`` in a subprocess."""

    def __init__(self, tmp: Path, source: str, config: dict | None = None, *extra: str):
        self.tmp = tmp
        self.events_path = tmp / "events.jsonl"
        self.summary_path = tmp / "summary.json"
        self.stdout_path, self.stderr_path = tmp / "stdout.txt", tmp / "stderr.txt"
        args = [sys.executable, str(ROOT / "run.py"), "stream", "--source", source, "--headless",
                "--events", str(self.events_path), "--summary-json", str(self.summary_path), *extra]
        if config:
            cfg = tmp / "config.yaml"
            cfg.write_text(json.dumps(config))  # JSON is YAML
            args[3:3] = ["--config", str(cfg)]
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT)

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text().splitlines(keepends=True)
        return [json.loads(l) for l in lines if l.endswith("\n")]  # skip a half-written last line

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def wait_for(self, what: str, cond: Callable[[list[dict]], bool], timeout: float) -> list[dict]:
        """Poll the events file until ``cond(events)``; fail if the process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if cond(evs):
                return evs
            if self.proc.poll() is not None:
                raise AssertionError(f"streamer exited ({self.proc.returncode}) while waiting for "
                                     f"{what}:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g} s; events "
                                     f"{[e['type'] for e in evs]}\n{self.stderr()[-3000:]}")
            time.sleep(0.05)

    def signal_and_wait(self, sig: int, timeout: float = 10.0) -> float:
        """Send ``sig``; seconds until the process exited."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def summary(self) -> dict:
        return json.loads(self.summary_path.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
