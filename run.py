#!/usr/bin/env python3
"""streamer entry point: ``python run.py [stream|batch|serve|bench|models] ...``"""

import os
import sys

from streamer.cli import main

if __name__ == "__main__":
    code = main()
    # Everything is flushed and closed by now (events, video, spool, summary). Skipping the
    # interpreter's teardown of cv2 and the nets saves ~0.4 s on every shutdown, and a capture
    # thread stuck inside FFmpeg cannot delay the exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
