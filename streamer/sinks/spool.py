"""A bounded, crash-safe, append-only on-disk queue of records not yet acknowledged.

Contract: ``append(data)`` writes one record and returns its sequence number; records stay
until ``ack(seqs)`` (the consumer confirmed them) or until the bound drops them. ``after(seq,
n)`` returns the next pending records in append order. A new ``Spool`` on the same directory
recovers every record that was appended and neither acked nor dropped, in order.

On disk (``<directory>/spool.log``), one line per record, appended with a single write:

    E <seq> <crc32 hex> <payload>     a record (payload: bytes without a newline, e.g. JSON)
    A <seq> [<seq> ...]               acknowledged: gone
    X <seq> [<seq> ...]               dropped by the bound: gone, and counted

Recovery replays the lines. A torn last line (a crash in the middle of a write: no final
newline) is ignored and cut off; a complete line that does not parse or whose CRC does not
match (garbage after a power cut) is skipped and counted in ``corrupt``. Acks are never
fsynced: losing one only means that record is sent again (at-least-once anyway).

Compaction rewrites the file with only the pending records (temp file, fsync, ``os.replace``)
once the file holds at least ``compact_min`` finished records and at least as many finished as
pending ones, so the file stays O(pending) and a rewrite costs O(pending) -- tiny while the
broker keeps up. It also runs at open and at close.

Bound: at most ``max_events`` pending records. Appending beyond it drops the oldest pending
record, counts it in ``dropped`` and logs (the first drop, then every 1000th): a long outage
loses the oldest events, never silently and never the newest.

fsync policy (``fsync``), the price of durability against power loss:
- ``always``: every append is fsynced before ``append`` returns. Nothing acknowledged by
  ``append`` is lost even on power loss; costs one fsync per event (about 1-10 ms on SSD,
  much more on SD cards) in the caller's thread.
- ``batch`` (default): ``sync()`` fsyncs at most every ``batch_interval_s`` (0.5 s); the
  sender calls it. A crash of the process loses nothing (written data is in the OS page
  cache); a power cut may lose the last ``batch_interval_s`` of events.
- ``never``: left to the OS writeback (typically up to 30 s on power loss); process crashes
  still lose nothing.

Memory: pending records are indexed by ``(offset, length)`` in the file, not held in memory,
so ``max_events`` costs about 100 bytes each whatever the event size. Not safe for two
processes: a lock file (``flock``) makes a second opener fail with a clear error.

Thread-safety: every method takes the spool's lock; the MQTT sink appends from the event
thread and reads/acks/syncs from its sender thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import zlib
from pathlib import Path
from typing import Iterable

from streamer.errors import ConfigError

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "batch", "never")
LOG_NAME = "spool.log"


class Spool:
    def __init__(self, directory: str | Path, max_events: int = 100_000, fsync: str = "batch",
                 batch_interval_s: float = 0.5, compact_min: int = 1000):
        if fsync not in FSYNC_POLICIES:
            raise ConfigError(f"spool fsync: expected always, batch or never, got {fsync!r}")
        if max_events < 1:
            raise ConfigError(f"spool max_events: expected int >= 1, got {max_events}")
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"spool directory {self.dir} cannot be created: {e.strerror}") from None
        self.path = self.dir / LOG_NAME
        self.max_events = max_events
        self.fsync = fsync
        self.batch_interval_s = batch_interval_s
        self.compact_min = compact_min
        self._lock = threading.RLock()
        self._pending: dict[int, tuple[int, int]] = {}  # seq -> (offset, length) of its line
        self._done_in_file = 0  # acked or dropped records still occupying the file
        self._next_seq = 1
        self._size = 0
        self._dirty = False
        self._last_sync = time.monotonic()
        self.appended = 0
        self.acked = 0
        self.dropped = 0
        self.corrupt = 0
        self.recovered = 0
        self.torn_bytes = 0
        self.compactions = 0
        self._lockf = open(self.dir / "spool.lock", "a")
        try:
            fcntl.flock(self._lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockf.close()
            raise ConfigError(f"spool directory {self.dir} is in use by another process; give each "
                              "camera process its own spool_dir") from None
        self._recover()
        self._w = open(self.path, "ab")
        self._r = os.open(self.path, os.O_RDONLY)
        if self._done_in_file or self.torn_bytes:
            self._compact()

    # ---- recovery --------------------------------------------------------------------------
    def _recover(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.torn_bytes = len(data) - end
            log.warning("spool %s: ignoring a torn last record (%d bytes, crash mid-write)",
                        self.path, self.torn_bytes)
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        pos, max_seq, done = 0, 0, 0
        while pos < end:
            nl = data.index(b"\n", pos)
            line = data[pos:nl]
            try:
                kind = line[:2]
                if kind == b"E ":
                    _, seq_b, crc_b, payload = line.split(b" ", 3)
                    seq = int(seq_b)
                    if int(crc_b, 16) != zlib.crc32(payload):
                        raise ValueError("crc mismatch")
                    self._pending[seq] = (pos, nl + 1 - pos)
                    max_seq = max(max_seq, seq)
                elif kind in (b"A ", b"X "):
                    for s in line[2:].split():
                        if self._pending.pop(int(s), None) is not None:
                            done += 1
                else:
                    raise ValueError("unknown record kind")
            except ValueError:
                self.corrupt += 1
            pos = nl + 1
        if self.corrupt:
            log.warning("spool %s: skipped %d corrupt record(s)", self.path, self.corrupt)
        self._size = end
        self._next_seq = max_seq + 1
        self._done_in_file = done + self.corrupt
        # Records beyond the bound (max_events lowered between runs) are dropped now, counted.
        while len(self._pending) > self.max_events:
            self._pending.pop(next(iter(self._pending)))
            self.dropped += 1
            self._done_in_file += 1
        self.recovered = len(self._pending)
        if self.recovered:
            log.info("spool %s: %d unsent record(s) recovered", self.path, self.recovered)

    # ---- writing ---------------------------------------------------------------------------
    def _write(self, line: bytes) -> int:
        off = self._size
        self._w.write(line)
        self._w.flush()  # one write(2) per line: a crash tears at most the last line
        self._size += len(line)
        self._dirty = True
        return off

    def append(self, data: bytes) -> int:
        if b"\n" in data:
            raise ValueError("spool records must not contain a newline")
        with self._lock:
            if len(self._pending) >= self.max_events:
                self._drop_oldest()
            seq = self._next_seq
            self._next_seq += 1
            line = b"E %d %08x %s\n" % (seq, zlib.crc32(data), data)
            off = self._write(line)
            self._pending[seq] = (off, len(line))
            self.appended += 1
            if self.fsync == "always":
                self._sync()
            return seq

    def _drop_oldest(self) -> None:
        seq = next(iter(self._pending))
        self._pending.pop(seq)
        self._write(b"X %d\n" % seq)
        self._done_in_file += 1
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("spool %s full (%d events): dropped the oldest, %d dropped so far",
                        self.path, self.max_events, self.dropped)

    def ack(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged records; unknown (already dropped) sequence numbers are ignored."""
        with self._lock:
            gone = [s for s in seqs if self._pending.pop(s, None) is not None]
            if gone:
                self._write(b"A " + b" ".join(b"%d" % s for s in gone) + b"\n")
                self._done_in_file += len(gone)
                self.acked += len(gone)
            return len(gone)

    # ---- reading ---------------------------------------------------------------------------
    def after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` pending records with a sequence number above ``seq``, in order."""
        out: list[tuple[int, bytes]] = []
        with self._lock:
            for s, (off, n) in self._pending.items():
                if s <= seq:
                    continue
                line = os.pread(self._r, n, off)
                out.append((s, line.split(b" ", 3)[3][:-1]))
                if len(out) >= limit:
                    break
        return out

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest record ever appended (0 if none); lock-free read."""
        return self._next_seq - 1

    # ---- durability and size ---------------------------------------------------------------
    def _sync(self) -> None:
        if self._dirty:
            os.fsync(self._w.fileno())
            self._dirty = False
        self._last_sync = time.monotonic()

    def sync(self, force: bool = False) -> None:
        """Apply the fsync policy: ``batch`` syncs when ``batch_interval_s`` has passed."""
        with self._lock:
            if force or (self.fsync == "batch" and self._dirty
                         and time.monotonic() - self._last_sync >= self.batch_interval_s):
                self._sync()

    def maybe_compact(self) -> bool:
        with self._lock:
            if self._done_in_file >= self.compact_min and self._done_in_file >= len(self._pending):
                self._compact()
                return True
            return False

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        new: dict[int, tuple[int, int]] = {}
        with open(tmp, "wb") as f:
            off = 0
            for s, (o, n) in self._pending.items():
                f.write(os.pread(self._r, n, o))
                new[s] = (off, n)
                off += n
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.dir)
        self._w.close()
        os.close(self._r)
        self._w = open(self.path, "ab")
        self._r = os.open(self.path, os.O_RDONLY)
        self._pending = new
        self._size = off
        self._done_in_file = 0
        self._dirty = False
        self.compactions += 1

    def close(self) -> None:
        with self._lock:
            if self._w.closed:
                return
            try:
                self._compact()
            except OSError as e:  # disk full: the uncompacted log is still a valid spool
                log.error("spool %s: compaction at close failed: %s", self.path, e)
                self._sync()
            self._w.close()
            os.close(self._r)
            self._lockf.close()  # releases the flock


def _fsync_dir(d: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
