"""Scheduling a batch on a process pool: bounded in flight, results in input order, retries,
and the blame when a worker process dies.

A failed image is retried once (``MAX_ATTEMPTS``) when its result says ``retryable``. When a
worker process dies, every image it might have been running is retried one at a time, so only
the image that kills a worker is blamed (``crashed`` after its second death). Pools that die
``MAX_DEAD_POOLS`` times in a row before any result end the run: the workers cannot run.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from streamer.batch.records import ImageResult, Item, Options, one_line
from streamer.batch.worker import init_worker, run_item
from streamer.errors import StreamerError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a failed image is retried once


class Scheduler:
    """Runs items on a process pool and yields results in input order.

    At most ``2 * workers`` images are in flight and at most ``8 * workers`` results wait for a
    slow predecessor, so memory stays bounded and the CSV is sorted. Retry policy: see the
    module doc. ``stop`` ends the run after the images in flight (their results are dropped).
    """

    MAX_DEAD_POOLS = 5  # pools in a row that die before finishing any image: workers can't run

    def __init__(self, make_pool: Callable[[], ProcessPoolExecutor], workers: int,
                 stop: threading.Event):
        self.make_pool = make_pool
        self.workers = workers
        self.stop = stop

    def run(self, items: list[Item]) -> Iterator[ImageResult]:
        position = {it.rel: p for p, it in enumerate(items)}
        pending = deque(it for it in items if it.src is not None)
        ready = {position[it.rel]: ImageResult(it.rel, error=it.refusal)
                 for it in items if it.src is None}
        attempts: dict[str, int] = {}
        suspects: set[str] = set()
        inflight: dict = {}
        next_pos = 0
        pool = None
        pool_results = dead_pools = 0
        try:
            while next_pos < len(items):
                while next_pos in ready:
                    yield ready.pop(next_pos)
                    next_pos += 1
                if next_pos >= len(items) or self.stop.is_set():
                    return
                if pool is None:
                    pool = self.make_pool()
                    pool_results = 0
                while pending:
                    it = pending[0]
                    if suspects:
                        if inflight:
                            break  # isolation: one image at a time until suspects are cleared
                    elif (len(inflight) >= 2 * self.workers
                          or position[it.rel] >= next_pos + 8 * self.workers):
                        break
                    pending.popleft()
                    attempts[it.rel] = attempts.get(it.rel, 0) + 1
                    inflight[pool.submit(run_item, it)] = it
                done, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    if self.stop.is_set():
                        return
                    # Every future of a broken pool fails; let them settle, keep the results
                    # that made it, then judge the crash and start a fresh pool.
                    wait(list(inflight), timeout=10)
                    lost = []
                    for fut, it in list(inflight.items()):
                        if fut.done() and not isinstance(fut.exception(), BrokenProcessPool):
                            self._settle(it, fut, attempts, suspects, pending, ready, position)
                            pool_results += 1
                        else:
                            lost.append(it)
                    inflight.clear()
                    dead_pools = 0 if pool_results else dead_pools + 1
                    if dead_pools >= self.MAX_DEAD_POOLS:
                        raise StreamerError(
                            f"worker processes died {dead_pools} times in a row before finishing "
                            "any image; see the messages above")
                    self._crashed(lost, attempts, suspects, pending, ready, position)
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
                    continue
                for fut in done:
                    self._settle(inflight.pop(fut), fut, attempts, suspects, pending, ready, position)
                    pool_results += 1
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _settle(it: Item, fut, attempts, suspects, pending, ready, position) -> None:
        exc = fut.exception()
        res = fut.result() if exc is None else ImageResult(
            it.rel, error=f"failed: {type(exc).__name__}: {one_line(exc)}", retryable=True)
        if res.fatal:
            raise StreamerError(res.error)
        suspects.discard(it.rel)
        if res.retryable and attempts[it.rel] < MAX_ATTEMPTS:
            log.info("retrying %s after: %s", it.rel, res.error)
            pending.appendleft(it)
        else:
            ready[position[it.rel]] = res

    @staticmethod
    def _crashed(lost: list[Item], attempts, suspects, pending, ready, position) -> None:
        """A worker died with ``lost`` in flight. Alone, the image is to blame (a second time:
        recorded); shared, nobody is charged and each is re-run alone."""
        if len(lost) == 1:
            it = lost[0]
            if it.rel in suspects or attempts[it.rel] >= MAX_ATTEMPTS:
                suspects.discard(it.rel)
                ready[position[it.rel]] = ImageResult(
                    it.rel, error="crashed: the worker process died while analysing this image (twice)")
                return
        for it in reversed(lost):
            if len(lost) > 1:
                attempts[it.rel] -= 1
            log.warning("a worker process died; re-running %s on its own", it.rel)
            suspects.add(it.rel)
            pending.appendleft(it)


def make_pool_factory(make_analyzer: Callable, cfg, opts: Options, workers: int,
                      threads: int) -> Callable[[], ProcessPoolExecutor]:
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Workers fork from a server that has already imported these (about 0.5 s each per
        # worker otherwise); no effect once the server runs, e.g. on a second run in a process.
        ctx.set_forkserver_preload(["numpy", "cv2", "streamer.batch.worker", "streamer.core.analyze",
                                    "streamer.core.attributes", "streamer.runtime.wiring"])

    def make() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                                   initargs=(make_analyzer, cfg, opts, threads))
    return make
