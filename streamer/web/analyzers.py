"""The analyzers behind ``POST /analyze``: a bounded thread pool, one Analyzer per thread.

cv2 nets are not thread-safe, so an Analyzer serves one image at a time. The work runs on a
``concurrent.futures.ThreadPoolExecutor`` whose threads each own one Analyzer (thread-local,
made on the thread's first job) rather than in the WSGI server's request threads, because
OpenCV pays a set-up on the first call in every new thread (``cv2.putText`` alone ~50 ms):
the executor's threads live as long as the pool, so that cost is paid once, at warm-up.
More workers than cores only adds memory and contention: on 2 cores, 2 workers overlap one
request's parsing/decoding with another's inference.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout, wait
from dataclasses import dataclass
from typing import Callable, Optional, Union

import cv2
import numpy as np

from streamer.config import Config
from streamer.core.analyze import Analysis
from streamer.media.overlay import draw_faces
from streamer.web.errors import ApiError

POOL_WAIT_S = 30.0  # a request waits this long for a free Analyzer before 503 busy
WARM_TIMEOUT_S = 120.0  # loading and first inference of every worker's nets


@dataclass(frozen=True)
class Outcome:
    """One analysed upload: the faces (left to right), the annotated JPEG (when asked) and
    where time went."""

    analysis: Analysis
    jpeg: Optional[bytes]
    queue_ms: float
    annotate_ms: float


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def left_to_right(analysis: Analysis) -> Analysis:
    """The faces sorted by box x (then y), so "face 0" is the leftmost in the JSON list, the
    page's table and the numbers drawn on the image alike."""
    faces = tuple(sorted(analysis.faces, key=lambda f: (f.box[0], f.box[1])))
    return Analysis(faces, analysis.timing_ms)


class AnalyzerPool:
    """At most ``size`` worker threads, each with its own Analyzer.

    ``analyzers`` is either a list (one per thread, handed out in order: tests pass fakes) or
    a factory called once in each new worker thread. ``run`` is thread-safe.
    """

    def __init__(self, analyzers: Union[list, Callable[[], object]], size: int = 0):
        if isinstance(analyzers, (list, tuple)):
            if not analyzers:
                raise ValueError("AnalyzerPool needs at least one analyzer")
            spare = iter(list(analyzers))
            self.size = len(analyzers)
            self._make = lambda: next(spare)
        else:
            if size < 1:
                raise ValueError("AnalyzerPool with a factory needs size >= 1")
            self.size = size
            self._make = analyzers
        self._lock = threading.Lock()  # the factory / the list's iterator is not thread-safe
        self._local = threading.local()
        self._pending: set[Future] = set()
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="analyzer")

    @classmethod
    def build(cls, cfg: Config, size: int = 0) -> "AnalyzerPool":
        """``size`` (0 = ``web.workers`` if configured, else min(2, cores)) threads with their
        nets loaded and run once, so a broken model fails here, not on a request."""
        from streamer.core.analyze import Analyzer

        size = size or cfg.web.workers or min(2, os.cpu_count() or 1)
        pool = cls(lambda: Analyzer(cfg), size)
        pool.warm()
        return pool

    def warm(self) -> None:
        """Run one blank frame on every thread: the barrier keeps each job on its own thread,
        so all ``size`` threads exist and have paid their nets' and putText's first call."""
        barrier = threading.Barrier(self.size)
        blank = np.full((480, 640, 3), 128, np.uint8)

        def job():
            barrier.wait(WARM_TIMEOUT_S)
            return self._process(blank.copy(), 80, time.perf_counter())

        futures = [self._executor.submit(job) for _ in range(self.size)]
        for f in futures:
            f.result(WARM_TIMEOUT_S)  # re-raises a model error

    def _analyzer(self):
        a = getattr(self._local, "analyzer", None)
        if a is None:
            with self._lock:
                a = self._local.analyzer = self._make()
        return a

    def run(self, image: np.ndarray, jpeg_quality: Optional[int], timeout: float = POOL_WAIT_S,
            view_width: Optional[int] = None) -> Outcome:
        """Analyse ``image`` (and annotate + encode it when ``jpeg_quality`` is given) on a
        worker; 503 ``busy`` if no worker got to it within ``timeout`` seconds. ``view_width``:
        the width the page shows the image at (labels are sized to be readable there)."""
        try:
            fut = self._executor.submit(self._process, image, jpeg_quality, time.perf_counter(), view_width)
        except RuntimeError:  # submit after close(): the server is stopping
            raise ApiError(503, "busy", "the server is shutting down") from None
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._forget)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()  # dropped unless a worker already started it
            raise ApiError(503, "busy", f"all {self.size} analyzers stayed busy for {timeout:.0f} s; "
                                        "retry later") from None

    def _forget(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)

    def close(self, timeout: float = 2.0) -> None:
        """Cancel queued jobs, let running ones finish for up to ``timeout`` s, stop the threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._pending)
        wait(running, timeout)

    def _process(self, image: np.ndarray, quality: Optional[int], queued_at: float,
                 view_width: Optional[int] = None) -> Outcome:
        t0 = time.perf_counter()
        analysis = left_to_right(self._analyzer().analyze(image))
        t1 = time.perf_counter()
        jpeg = None
        if quality is not None:
            if not image.flags.writeable:  # e.g. a decoder that returned a view of its buffer
                image = image.copy()
            # the request's own decoded copy: in place is fine; numbers = the JSON list index
            draw_faces(image, analysis.faces, view_width=view_width)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise RuntimeError("JPEG encoding of the annotated image failed")
            jpeg = buf.tobytes()
        return Outcome(analysis, jpeg, ms(t0 - queued_at), ms(time.perf_counter() - t1))
