"""The site's one store writer: a bounded queue in front of the event store and one thread that
writes it in batches.

Why a thread: the site's reader thread receives every event of every camera and must never wait
on the disk (a slow disk would back up into the cameras' channels). ``add`` only enqueues; the
writer drains up to ``batch`` events (or whatever arrived within ``flush_s``) into one
transaction. The store itself (``streamer.store``) is plain and single-writer: only this thread
calls its ``add`` / ``prune``; reads go straight to it from any thread (WAL).

Loss is never silent: a full queue waits at most ``put_timeout_s`` and then counts the event in
``dropped`` (the camera's own JSONL / MQTT sinks still have it); a failing write (disk full)
keeps its batch and retries every second, so nothing accepted is lost while the queue lasts.
Retention: ``prune(retention_days)`` runs on the writer thread at start and every
``prune_every_s``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Optional, Sequence

log = logging.getLogger(__name__)


class StoreWriter:
    """Implements ``EventStore``: writes are queued, reads delegate to ``store``."""

    def __init__(self, store, retention_days: float = 0.0, max_pending: int = 50_000,
                 batch: int = 500, flush_s: float = 0.2, put_timeout_s: float = 0.5,
                 prune_every_s: float = 3600.0):
        self.store = store
        self.retention_days = retention_days
        self.max_pending = max_pending
        self.batch = batch
        self.flush_s = flush_s
        self.put_timeout_s = put_timeout_s
        self.prune_every_s = prune_every_s
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        self.pruned = 0
        self._q: collections.deque = collections.deque()  # (event, crop or None)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._busy = 0  # events taken off the queue, not yet committed
        self._prune_req: Optional[tuple[float, list]] = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    # ---- EventStore ------------------------------------------------------------------------
    def add(self, events: Sequence[dict], crops: Optional[dict[str, bytes]] = None) -> None:
        crops = crops or {}
        deadline = time.monotonic() + self.put_timeout_s
        with self._cond:
            for ev in events:
                while len(self._q) >= self.max_pending and not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(min(left, 0.1))
                if len(self._q) >= self.max_pending:
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        log.error("event store queue full: %d events not stored (still in the "
                                  "cameras' own sinks)", self.dropped)
                    continue
                self._q.append((ev, crops.get(ev.get("id")) if crops else None))
            self._cond.notify_all()

    def events(self, *a, **k):
        return self.store.events(*a, **k)

    def counts(self, *a, **k):
        return self.store.counts(*a, **k)

    def crop_path(self, event_id: str):
        return self.store.crop_path(event_id)

    def prune(self, retention_days: float, timeout: float = 10.0) -> int:
        """Run a prune on the writer thread; returns rows deleted (0 on timeout)."""
        done: list = []
        with self._cond:
            self._prune_req = (retention_days, done)
            self._cond.notify_all()
            self._cond.wait_for(lambda: bool(done) or not self._thread.is_alive(), timeout)
        return done[0] if done else 0

    # ---- control ---------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._q) + self._busy

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is committed (True) or ``timeout`` passes."""
        with self._cond:
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self.pending == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (within ``timeout``), then close the store."""
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(max(0.1, timeout / 2))
        if self._q:
            log.error("event store: %d events not written at shutdown", len(self._q))
        self.store.close()

    def health(self) -> dict:
        return {"written": self.written, "pending": self.pending, "dropped": self.dropped,
                "write_errors": self.write_errors, "rejected": getattr(self.store, "rejected", 0)}

    # ---- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        next_prune = time.monotonic()  # once at start, then every prune_every_s
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._q or self._stop.is_set()
                                    or self._prune_req is not None, self.flush_s)
                if self._stop.is_set() and not self._q:
                    return
                req, self._prune_req = self._prune_req, None
            if req is not None:
                n = self._do_prune(req[0])
                with self._cond:
                    req[1].append(n)
                    self._cond.notify_all()
            if self.retention_days > 0 and time.monotonic() >= next_prune:
                self._do_prune(self.retention_days)
                next_prune = time.monotonic() + self.prune_every_s
            self._write_some()

    def _write_some(self) -> None:
        with self._cond:
            items = [self._q.popleft() for _ in range(min(self.batch, len(self._q)))]
            self._busy = len(items)
            self._cond.notify_all()
        if not items:
            return
        crops = {ev["id"]: c for ev, c in items if c}
        ok = False
        while not ok:
            try:
                self.store.add([ev for ev, _ in items], crops or None)
                ok = True
            except Exception as e:  # disk full, locked, I/O error: keep the batch, retry
                self.write_errors += 1
                if self.write_errors == 1 or self.write_errors % 60 == 0:
                    log.error("event store write failed (%d so far), retrying: %s",
                              self.write_errors, e)
                if self._stop.wait(1.0):
                    log.error("event store: %d events lost at shutdown after write errors",
                              len(items))
                    self.dropped += len(items)
                    break
        with self._cond:
            self.written += len(items) if ok else 0
            self._busy = 0
            self._cond.notify_all()

    def _do_prune(self, days: float) -> int:
        try:
            n = self.store.prune(days)
        except Exception as e:
            log.error("event store prune failed: %s", e)
            return 0
        if n:
            self.pruned += n
            log.info("event store: pruned %d events older than %g days", n, days)
        return n
