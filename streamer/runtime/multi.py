"""Several cameras in one process: each its own ``Pipeline`` (threads, queues, clock, sinks),
all sharing one compiled copy of every net (``inference.load`` hands the same OpenVINO model
to every caller in a process).

The trade-off against the site's one process per camera: a dense box saves the runtime each
process would load (Python, OpenCV, OpenVINO and the nets: ~180 MB of a stream's ~212 MB
RSS; each extra camera costs ~29 MB), and a crash of the process (a fault in native code, out
of memory) takes every camera down with it; an exception in one pipeline stops only that one. Use it for many similar
cameras on one small box; use the site (``run.py site``) where isolation and one dashboard
matter more.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from streamer.runtime.pipeline import Pipeline

log = logging.getLogger(__name__)


def run_all(pipelines: Sequence[Pipeline], stop: threading.Event) -> list[dict]:
    """Run every pipeline until each ends (its source ends, ``max_frames``) or ``stop`` is set;
    the summaries, in the order given.

    Each pipeline's output stage runs on a thread of its own here (``Pipeline.run`` is the
    output stage). ``stop`` stops them all; a pipeline that fails to start or crashes is
    logged and the others go on (its summary is its state at that moment)."""
    summaries: list = [None] * len(pipelines)

    def one(i: int, p: Pipeline) -> None:
        try:
            summaries[i] = p.run()
        except Exception:  # noqa: BLE001 - one camera's crash must not end the others
            log.exception("camera %d's pipeline crashed", i + 1)
            summaries[i] = p.summary()

    threads = [threading.Thread(target=one, args=(i, p), name=f"camera-{i + 1}", daemon=True)
               for i, p in enumerate(pipelines)]
    for t in threads:
        t.start()
    stopped = False
    while any(t.is_alive() for t in threads):
        if stop.wait(0.1) and not stopped:
            stopped = True
            for p in pipelines:
                p.stop()
        if stopped:
            # Each run() returns within its own shutdown budget once stopped (they run at
            # once, so one budget for all); a thread that does not is left behind (a daemon).
            deadline = time.monotonic() + Pipeline.SHUTDOWN_S + 0.2
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            break
    return [s if s is not None else p.summary() for s, p in zip(summaries, pipelines)]
