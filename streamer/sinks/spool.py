"""A bounded, crash-safe on-disk queue of records not yet acknowledged: SQLite in WAL mode.

Contract: ``append(data)`` stores one record and returns its sequence number; records stay
until ``ack(seqs)`` (the consumer confirmed them) or until a bound drops them. ``after(seq,
n)`` returns the next pending records in append order. A new ``Spool`` on the same directory
recovers every record that was stored and neither acked nor dropped, in order.

On disk: ``<directory>/spool.sqlite`` (plus ``-wal`` while open), one table
``records(seq INTEGER PRIMARY KEY, ts REAL, data BLOB)``. Every append, ack and drop is one
SQLite transaction, so a crash or a power cut leaves whole records or none: no torn record, no
misaligned offset, nothing to re-parse. Why SQLite rather than a hand-written log: under ENOSPC a
buffered append-only file keeps and re-writes the failed bytes at the next flush, so every
later offset is wrong; SQLite rolls a failed transaction back and the file stays consistent.

Why these pragmas:
- ``journal_mode=WAL`` with ``locking_mode=EXCLUSIVE``: appends are sequential writes to the
  WAL; exclusive locking keeps the WAL index in process memory (no ``-shm`` file mapped from a
  full disk, which could otherwise SIGBUS) and, with a ``flock`` on ``spool.lock``, makes a
  second opener fail with a clear error (not safe for two processes by design).
- ``wal_autocheckpoint`` (``checkpoint_pages``, 256 pages = 1 MiB) and ``journal_size_limit``:
  the WAL is folded back into the database and stays small. A checkpoint fsyncs, so a smaller
  WAL costs more per event (measured: 32 pages ~0.5 ms per append, 256 pages ~0.1 ms). On a
  filesystem smaller than the WAL, a write that fails is retried once right after a
  checkpoint, which makes SQLite reuse the WAL from its start (the disk-full test runs the
  spool on a 512 KiB tmpfs).
- ``auto_vacuum=INCREMENTAL``: ``maybe_compact`` gives freed pages back to the filesystem once
  at least ``compact_min`` records finished and at least as many finished as are pending.

fsync policy (``fsync``, config ``mqtt.fsync``) maps to ``PRAGMA synchronous``:
- ``always`` -> ``FULL``: every commit fsyncs the WAL before ``append`` returns. Nothing
  ``append`` stored on disk is lost even on power loss; costs one fsync per event.
- ``batch`` (default) -> ``NORMAL``: commits are not fsynced; ``sync()`` (called by the
  sender) checkpoints, which fsyncs, at most every ``batch_interval_s`` (0.5 s). A crash of the
  process loses nothing; a power cut may lose the last ``batch_interval_s`` of events.
- ``never`` -> ``OFF``: left to the OS writeback; process crashes still lose nothing.

Disk full (or any write error): the record is kept in memory instead, in order after the ones
on disk, and ``after`` serves it from there (the broker may still be reachable). Every append
and every ``sync()`` (the sender calls it at least every ``batch_interval_s``) retries writing
the memory backlog, at most every ``retry_s``; once space returns it is written in one
transaction, oldest first. Acks and drops that cannot be written are remembered and retried the
same way (a record acked but not yet deleted is never served again). ``memory_backlog`` counts
what waits in memory; it is bounded by ``memory_max_events`` (oldest dropped first, counted in
``dropped`` and ``memory_dropped``). What still waits in memory at ``close()`` with the disk
still full is lost: logged and counted in ``dropped``. Memory records do not survive a crash.

Bound: at most ``max_events`` pending records (disk and memory together). Appending beyond it
drops the oldest pending record, counts it in ``dropped`` and logs (the first drop, then every
1000th): a long outage loses the oldest events, never silently and never the newest. Lowering
``max_events`` between runs drops the oldest at open, counted.

Corruption: a database SQLite cannot read is moved aside (``spool.sqlite.corrupt-<time>``,
kept for inspection), counted in ``corrupt``, and a new one is started; the rows still
readable are copied over. A legacy ``spool.log`` (the earlier hand-written format, read by
``streamer.sinks.spool_legacy``) is migrated once at open: its pending records, CRC-checked,
are imported in order (corrupt lines counted) and the file is renamed ``spool.log.migrated``.

Memory: pending sequence numbers are indexed in memory (about 100 bytes each), payloads stay
on disk. Thread-safety: every method takes the spool's lock; the MQTT sink appends from the
event thread and reads/acks/syncs from its sender thread (one connection, shared under it).
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

from streamer.errors import ConfigError
from streamer.sinks import spool_legacy

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("always", "batch", "never")
SYNCHRONOUS = {"always": "FULL", "batch": "NORMAL", "never": "OFF"}
DB_NAME = "spool.sqlite"
LEGACY_LOG = "spool.log"
_SCHEMA = "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, data BLOB NOT NULL)"
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class Spool:
    def __init__(self, directory: str | Path, max_events: int = 100_000, fsync: str = "batch",
                 batch_interval_s: float = 0.5, compact_min: int = 1000,
                 memory_max_events: int = 10_000, retry_s: float = 0.5, checkpoint_pages: int = 256):
        if fsync not in FSYNC_POLICIES:
            raise ConfigError(f"spool fsync: expected always, batch or never, got {fsync!r}")
        if max_events < 1:
            raise ConfigError(f"spool max_events: expected int >= 1, got {max_events}")
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"spool directory {self.dir} cannot be created: {e.strerror}") from None
        self.path = self.dir / DB_NAME
        self.max_events = max_events
        self.memory_max_events = max(1, memory_max_events)
        self.fsync = fsync
        self.batch_interval_s = batch_interval_s
        self.compact_min = compact_min
        self.retry_s = retry_s
        self.checkpoint_pages = checkpoint_pages
        self._lock = threading.RLock()
        self._db: Optional[sqlite3.Connection] = None
        self._disk: collections.OrderedDict[int, None] = collections.OrderedDict()  # pending on disk
        self._mem: collections.OrderedDict[int, tuple[float, bytes]] = collections.OrderedDict()
        self._gone: set[int] = set()  # acked/dropped, still to be deleted from disk
        self._next_seq = 1
        self._failing: Optional[str] = None  # the last write error while one persists
        self._retry_at = 0.0
        self._dirty = False
        self._last_sync = time.monotonic()
        self._finished_since_compact = 0
        self._closed = False
        self.appended = 0
        self.acked = 0
        self.dropped = 0
        self.memory_dropped = 0
        self.corrupt = 0
        self.recovered = 0
        self.migrated = 0
        self.compactions = 0
        self.syncs = 0  # fsyncing checkpoints done by sync() (batch policy)
        self.write_errors = 0
        self._lockf = open(self.dir / "spool.lock", "a")
        try:
            fcntl.flock(self._lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockf.close()
            raise ConfigError(f"spool directory {self.dir} is in use by another process; give each "
                              "camera process its own spool_dir") from None
        try:
            self._open()
        except BaseException:
            self._lockf.close()
            raise

    # ---- opening and recovery ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes on a new database
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL (journal_mode={mode})")
            db.execute(f"PRAGMA synchronous={SYNCHRONOUS[self.fsync]}")
            db.execute(f"PRAGMA wal_autocheckpoint={self.checkpoint_pages}")
            page = db.execute("PRAGMA page_size").fetchone()[0]
            db.execute(f"PRAGMA journal_size_limit={self.checkpoint_pages * page * 2}")
            db.execute(_SCHEMA)
            return db
        except BaseException:
            db.close()
            raise

    def _open(self) -> None:
        db = None
        try:
            db = self._connect()
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            seqs = [s for (s,) in db.execute("SELECT seq FROM records ORDER BY seq")]
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            if isinstance(e, sqlite3.OperationalError) and getattr(e, "sqlite_errorname", "") not in _CORRUPT:
                # Disk full while creating a new database, an I/O error: run from memory, retry.
                self._note_failure(e)
                self._migrate_legacy()
                return
            self._set_aside(e)
        else:
            self._db = db
            self._disk.update((s, None) for s in seqs)
            self._next_seq = (seqs[-1] + 1) if seqs else 1
        self._migrate_legacy()
        # Records beyond the bound (max_events lowered between runs) are dropped now, counted.
        while len(self._disk) > self.max_events:
            self._gone.add(self._disk.popitem(last=False)[0])
            self.dropped += 1
        self._flush()
        self.recovered = len(self._disk) + len(self._mem)
        if self.recovered:
            log.info("spool %s: %d unsent record(s) recovered", self.path, self.recovered)

    def _set_aside(self, e: Exception) -> None:
        """Move an unreadable database aside; its readable rows go to the new one (via memory)."""
        salvaged = self._salvage()
        self.corrupt += 1
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                os.replace(p, Path(str(aside) + suffix))
        log.error("spool %s: unreadable (%s); kept as %s, %d record(s) salvaged",
                  self.path, e, aside.name, len(salvaged))
        for s, ts, d in salvaged:
            self._mem[s] = (ts, d)
        self._next_seq = (salvaged[-1][0] + 1) if salvaged else 1

    def _salvage(self) -> list[tuple[int, float, bytes]]:
        """The rows of a damaged database that can still be read, in order (best effort)."""
        rows: list[tuple[int, float, bytes]] = []
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error:
            return rows
        try:
            for s, ts, d in db.execute("SELECT seq, ts, data FROM records ORDER BY seq"):
                rows.append((s, ts, bytes(d)))
        except sqlite3.Error:
            pass
        finally:
            db.close()
        return rows

    def _migrate_legacy(self) -> None:
        """Import the pending records of a legacy ``spool.log`` once (see module docstring)."""
        legacy = self.dir / LEGACY_LOG
        try:
            data = legacy.read_bytes()
        except FileNotFoundError:
            return
        pending, corrupt = spool_legacy.read_pending(data)
        self.corrupt += corrupt
        now = time.time()
        for payload in pending:
            seq = self._next_seq
            self._next_seq += 1
            self._mem[seq] = (now, payload)
        self.migrated = len(pending)
        self._flush()
        if self._mem:  # not written (disk full): keep the legacy file for the next run
            log.error("spool %s: could not migrate %s yet (%s)", self.path, legacy.name, self._failing)
            return
        os.replace(legacy, legacy.with_name(LEGACY_LOG + ".migrated"))
        log.warning("spool %s: migrated %d pending record(s) from the legacy %s (%d corrupt line(s))",
                    self.path, self.migrated, legacy.name, self.corrupt)

    # ---- writing -----------------------------------------------------------------------------
    def _write_rows(self, rows: list[tuple[int, float, bytes]]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO records (seq, ts, data) VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        self._dirty = True

    def _flush(self) -> bool:
        """Write pending deletes, then the memory backlog; False (state kept) on a write error.

        A write that fails once is retried after a checkpoint: the WAL may only have reached the
        end of the free space, and after a checkpoint SQLite writes it from its start again."""
        err = self._write_pending()
        if err is not None and self._db is not None:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                err = self._write_pending()
            except sqlite3.Error:
                pass
        if err is not None:
            self._note_failure(err)
            return False
        self._failing = None
        return True

    def _write_pending(self) -> Optional[Exception]:
        """One attempt; the error, or None once nothing is left to write."""
        try:
            if self._db is None:
                self._open_late()
            if self._gone:
                gone = sorted(self._gone)
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s in gone])
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.rollback()
                    raise
                self._gone.difference_update(gone)
                self._finished_since_compact += len(gone)
                self._dirty = True
            if self._mem:
                self._write_rows([(s, ts, d) for s, (ts, d) in self._mem.items()])
                moved = len(self._mem)
                self._disk.update((s, None) for s in self._mem)
                self._mem.clear()
                if self._failing:
                    log.warning("spool %s: writable again; %d event(s) moved from memory to disk",
                                self.path, moved)
        except (sqlite3.Error, OSError) as e:
            return e
        return None

    def _open_late(self) -> None:
        # The database could not be opened before (disk full at start, set aside): memory
        # records keep their sequence numbers and the new database is empty, so order holds.
        db = self._connect()
        try:
            seqs = [s for (s,) in db.execute("SELECT seq FROM records ORDER BY seq")]
            if seqs and self._mem and seqs[-1] >= next(iter(self._mem)):
                raise sqlite3.OperationalError(f"{self.path} appeared with records after ours")
        except BaseException:
            db.close()
            raise
        self._db = db
        self._disk.update((s, None) for s in seqs)
        if seqs:
            self._next_seq = max(self._next_seq, seqs[-1] + 1)

    def _note_failure(self, e: BaseException) -> None:
        self.write_errors += 1
        first = self._failing is None
        self._failing = str(e) or type(e).__name__
        self._retry_at = time.monotonic() + self.retry_s
        if first or self.write_errors % 1000 == 0:
            log.error("spool %s: cannot write (%s); %d event(s) wait in memory (at most %d), "
                      "retrying every %.1f s", self.path, self._failing, len(self._mem),
                      self.memory_max_events, self.retry_s)

    def _retry(self, force: bool = False) -> None:
        if (self._mem or self._gone or self._db is None) and (
                force or self._failing is None or time.monotonic() >= self._retry_at):
            self._flush()

    def append(self, data: bytes) -> int:
        # Records are single-line (compact JSON), so a spool can be dumped as JSONL.
        if b"\n" in data:
            raise ValueError("spool records must not contain a newline")
        with self._lock:
            if self._closed:
                raise RuntimeError("spool is closed")
            if len(self._disk) + len(self._mem) >= self.max_events:
                self._drop_oldest()
            if len(self._mem) >= self.memory_max_events:
                self._mem.popitem(last=False)
                self.memory_dropped += 1
                self._count_drop(f"memory backlog full ({self.memory_max_events} events, disk not writable)")
            seq = self._next_seq
            self._next_seq += 1
            self._mem[seq] = (time.time(), data)
            self.appended += 1
            self._retry()
            return seq

    def _drop_oldest(self) -> None:
        if self._disk:
            self._gone.add(self._disk.popitem(last=False)[0])
        else:
            self._mem.popitem(last=False)
        self._count_drop(f"full ({self.max_events} events)")

    def _count_drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("spool %s %s: dropped the oldest, %d dropped so far", self.path, why, self.dropped)

    def ack(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged records; unknown (already dropped) sequence numbers are ignored."""
        with self._lock:
            n = 0
            for s in seqs:
                if s in self._disk:
                    del self._disk[s]
                    self._gone.add(s)
                    n += 1
                elif self._mem.pop(s, None) is not None:
                    n += 1
            self.acked += n
            if n:
                self._retry()
            return n

    # ---- reading -----------------------------------------------------------------------------
    def after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` pending records with a sequence number above ``seq``, in order."""
        out: list[tuple[int, bytes]] = []
        with self._lock:
            if self._disk and self._db is not None and (not self._mem or seq < next(iter(self._mem))):
                rows = self._db.execute("SELECT seq, data FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                                        (seq, limit + len(self._gone)))
                for s, d in rows:
                    if s in self._disk:
                        out.append((s, bytes(d)))
                        if len(out) >= limit:
                            return out
            for s, (_, d) in self._mem.items():
                if s > seq:
                    out.append((s, d))
                    if len(out) >= limit:
                        break
        return out

    def __len__(self) -> int:
        return len(self._disk) + len(self._mem)

    @property
    def pending(self) -> int:
        return len(self)

    @property
    def on_disk(self) -> int:
        """Pending records stored in the database."""
        return len(self._disk)

    @property
    def memory_backlog(self) -> int:
        """Pending records waiting in memory because the disk could not be written."""
        return len(self._mem)

    @property
    def write_error(self) -> Optional[str]:
        """The write error that persists right now (e.g. disk full), None when writes succeed."""
        return self._failing

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest record ever appended (0 if none); lock-free read."""
        return self._next_seq - 1

    # ---- durability and size -----------------------------------------------------------------
    def sync(self, force: bool = False) -> None:
        """Retry a pending memory backlog; apply the fsync policy (``batch``: a checkpoint,
        which fsyncs, when ``batch_interval_s`` has passed since the last one)."""
        with self._lock:
            if self._closed:
                return
            self._retry()
            if self._db is None or not self._dirty:
                return
            if force or (self.fsync == "batch"
                         and time.monotonic() - self._last_sync >= self.batch_interval_s):
                try:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:
                    self._note_failure(e)
                    return
                self._dirty = False
                self._last_sync = time.monotonic()
                self.syncs += 1

    def maybe_compact(self) -> bool:
        """Give freed pages back to the filesystem once enough records finished."""
        with self._lock:
            done = self._finished_since_compact
            if self._db is None or done < self.compact_min or done < len(self):
                return False
            return self._compact()

    def _compact(self) -> bool:
        try:
            # executescript steps the pragma to the end (execute would free one page per step).
            self._db.executescript("PRAGMA incremental_vacuum;")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:
            log.debug("spool %s: compaction skipped: %s", self.path, e)
            return False
        self._finished_since_compact = 0
        self._dirty = False
        self.compactions += 1
        return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._retry(force=True)
                if self._mem:
                    lost = len(self._mem)
                    self._mem.clear()
                    self.dropped += lost
                    log.error("spool %s: %d event(s) lost: still not writable at close (%s)",
                              self.path, lost, self._failing)
                if self._db is not None:
                    if not self._failing:
                        self._compact()
                    self._db.close()
            except sqlite3.Error as e:
                log.error("spool %s: closing failed: %s", self.path, e)
            finally:
                self._lockf.close()  # releases the flock
