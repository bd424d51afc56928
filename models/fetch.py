#!/usr/bin/env python3
"""Fetch and verify every model listed in models/manifest.json.

Usage: python models/fetch.py [--mirror DIR] [--dir DIR]
The mirror defaults to $STREAMER_MODEL_MIRROR; without it, files come from their public sources.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamer.media import modelstore  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=os.environ.get("STREAMER_MODEL_MIRROR") or None)
    ap.add_argument("--dir", default=None, help="models folder (default: models/)")
    a = ap.parse_args()
    mirror = Path(a.mirror) if a.mirror and Path(a.mirror).is_dir() else None
    failed = modelstore.fetch(Path(a.dir) if a.dir else None, mirror)
    if failed:
        print(f"error: could not fetch {', '.join(failed)}", file=sys.stderr)
        return 1
    print("models: all files present and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
