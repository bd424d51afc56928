"""The benchmark's input: H.264 copies of the sample clip at fixed resolutions (ffmpeg)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

from bench.common import CLIP, RESOLUTIONS, data_root, say


class Clips:
    """H.264 copies of the sample clip, cached in ``cache`` (made once with ffmpeg)."""

    def __init__(self, cache: Path, quick: bool):
        self.cache = cache
        self.quick = quick
        root = data_root()
        self.src = (root / "video" / CLIP) if root else None
        if self.src is None or not self.src.is_file():
            raise SystemExit(f"bench: the sample clip {CLIP} was not found; set STREAMER_DATA "
                             "to the shared data folder")

    def get(self, res: str, fps: Optional[int] = None) -> Path:
        w, h = RESOLUTIONS[res]
        tag = f"{res}" + (f"_{fps}fps" if fps else "") + ("_q" if self.quick else "") + "_v2"
        out = self.cache / f"hamilton_{tag}.mp4"
        if out.is_file() and out.stat().st_size > 0:
            return out
        if shutil.which("ffmpeg") is None:
            raise SystemExit("bench: ffmpeg is needed to make the benchmark clips (apt-get install ffmpeg)")
        self.cache.mkdir(parents=True, exist_ok=True)
        vf = f"scale={w}:{h}:flags=bicubic" + (f",fps={fps}" if fps else "")
        # passthrough: keep the source's 275 frames (the default constant-rate muxing pads the
        # clip to its audio's length with duplicated frames); the fps filter sets its own rate.
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(self.src), "-an",
               "-vf", vf] + ([] if fps else ["-fps_mode", "passthrough"]) + [
               "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p"]
        if self.quick:
            cmd += ["-frames:v", "60"]
        tmp = out.with_suffix(".part.mp4")
        say(f"encoding {out.name}")
        r = subprocess.run(cmd + [str(tmp)], timeout=600)
        if r.returncode != 0 and "-fps_mode" in cmd:  # ffmpeg < 5.1 spells it -vsync
            cmd[cmd.index("-fps_mode")] = "-vsync"
            r = subprocess.run(cmd + [str(tmp)], timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({r.returncode}) making {out.name}")
        tmp.replace(out)
        return out

    def shifted(self, res: str, fps: int, n: int) -> list[Path]:
        """``n`` copies of the ``res``/``fps`` clip for ``n`` simultaneous streams, each starting
        at its own point of the clip (then wrapping round to its start), phases spread evenly
        over ``PHASES`` fixed offsets: cameras of one site do not show the same scene in
        lockstep, and the same clip started together would line up every burst of work
        (people appearing, the loop's scene cut) in every stream at once. Same encoder and
        settings as ``get``, so decoding costs the same."""
        base = self.get(res, fps)
        if self.quick:  # a smoke run: no extra encodes
            return [base] * n
        frames = self._frames(base)
        out = []
        for i in range(n):
            k = (i * self.PHASES // n) % self.PHASES if n <= self.PHASES else i % self.PHASES
            out.append(self._rotated(base, frames * k // self.PHASES))  # all re-encoded alike
        return out

    PHASES = 8

    @staticmethod
    def _frames(clip: Path) -> int:
        import cv2
        cap = cv2.VideoCapture(str(clip))
        try:
            return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()

    def _rotated(self, clip: Path, start: int) -> Path:
        out = clip.with_name(f"{clip.stem}_from{start}.mp4")
        if out.is_file() and out.stat().st_size > 0:
            return out
        frames = self._frames(clip)
        tmp = out.with_suffix(".part.mp4")
        say(f"encoding {out.name}")
        # The clip twice over, cut to its own length from frame `start`.
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "1", "-i", str(clip),
               "-an", "-vf", f"trim=start_frame={start}:end_frame={start + frames},setpts=PTS-STARTPTS",
               "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p", str(tmp)]
        r = subprocess.run(cmd, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({r.returncode}) making {out.name}")
        tmp.replace(out)
        return out
