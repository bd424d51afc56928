#!/usr/bin/env python3
"""`make demo`: run the stream processor headless on the embedded default clip.

The clip (face_recognition's short_hamilton_clip.mp4: a performer, scene cuts, an audience of
up to 7 faces) is read from $STREAMER_DATA/video when present, otherwise downloaded once from
its public source into .data/ and checked by sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIP = "face_recognition__short_hamilton_clip.mp4"
SHA256 = "0b5ff4c55a4cd69f79956f312681730881fe1e2a9e6146e75c31636dffcc7e28"
URL = ("https://raw.githubusercontent.com/ageitgey/face_recognition/"
       "2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1/examples/short_hamilton_clip.mp4")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def sample_clip() -> Path:
    data = os.environ.get("STREAMER_DATA")
    for base in ([Path(data) / "video"] if data else []) + [ROOT.parent / "shared" / "data" / "video",
                                                            ROOT / ".data"]:
        p = base / CLIP
        if p.is_file() and _sha(p) == SHA256:
            return p
    dest = ROOT / ".data" / CLIP
    dest.parent.mkdir(exist_ok=True)
    print(f"demo: downloading the sample clip from {URL}")
    tmp = dest.with_suffix(".part")
    with urllib.request.urlopen(URL, timeout=60) as r:
        tmp.write_bytes(r.read())
    if _sha(tmp) != SHA256:
        tmp.unlink()
        raise SystemExit(f"error: downloaded clip has the wrong sha256 (expected {SHA256})")
    tmp.replace(dest)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    video, events = out / "annotated.mp4", out / "events.jsonl"
    for p in (video, events):
        p.unlink(missing_ok=True)
    from streamer.cli import main as cli_main
    rc = cli_main(["stream", "--source", str(sample_clip()), "--headless", "--camera", "demo",
                   "--output", str(video), "--events", str(events),
                   "--summary-json", str(out / "summary.json")])
    if rc == 0:
        print(f"\ndemo outputs:\n  annotated video  {video.resolve()}\n  events (JSONL)   {events.resolve()}"
              f"\n  summary          {(out / 'summary.json').resolve()}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
