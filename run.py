#!/usr/bin/env python3
"""streamer entry point: ``python run.py [stream|batch|serve|bench|models] ...``"""

import sys

from streamer.cli import main

if __name__ == "__main__":
    sys.exit(main())
