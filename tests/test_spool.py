"""The on-disk spool (SQLite, WAL): order, ack removal, the bound, crash recovery, restart
persistence, the fsync -> synchronous mapping, the legacy spool.log migration.

The disk-full behaviour (memory backlog, written once space returns) is tested on a real
512 KiB tmpfs in test_spool_diskfull.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import zlib

import pytest

from streamer.errors import ConfigError
from streamer.sinks.spool import DB_NAME, LEGACY_LOG, Spool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rec(i: int) -> bytes:
    return b'{"n":%d}' % i


def payloads(sp: Spool) -> list[bytes]:
    return [d for _, d in sp.after(0, 10**6)]


def test_records_come_back_in_append_order(tmp_path):
    sp = Spool(tmp_path)
    seqs = [sp.append(rec(i)) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert payloads(sp) == [rec(i) for i in range(5)]
    assert [d for _, d in sp.after(seqs[1], 2)] == [rec(2), rec(3)]
    sp.close()


def test_ack_removes_only_the_acked_in_any_order(tmp_path):
    sp = Spool(tmp_path)
    seqs = [sp.append(rec(i)) for i in range(6)]
    assert sp.ack([seqs[3], seqs[0], 999]) == 2  # unknown seq ignored
    assert payloads(sp) == [rec(1), rec(2), rec(4), rec(5)]
    assert sp.acked == 2 and len(sp) == 4
    sp.close()
    sp = Spool(tmp_path)
    assert payloads(sp) == [rec(1), rec(2), rec(4), rec(5)]
    sp.close()


def test_restart_keeps_unacked_and_continues_the_sequence(tmp_path):
    sp = Spool(tmp_path)
    for i in range(3):
        sp.append(rec(i))
    sp.ack([1])
    sp.close()
    sp = Spool(tmp_path)
    assert sp.recovered == 2
    s = sp.append(rec(3))
    assert s > 3
    assert payloads(sp) == [rec(1), rec(2), rec(3)]
    sp.close()


@pytest.mark.parametrize("bound, n, expect_dropped", [(3, 2, 0), (3, 3, 0), (3, 5, 2), (1, 4, 3)])
def test_bound_drops_oldest_and_counts_them(tmp_path, caplog, bound, n, expect_dropped):
    sp = Spool(tmp_path, max_events=bound)
    with caplog.at_level(logging.WARNING, logger="streamer.sinks.spool"):
        for i in range(n):
            sp.append(rec(i))
    assert sp.dropped == expect_dropped
    assert payloads(sp) == [rec(i) for i in range(n - min(n, bound), n)]
    assert ("dropped the oldest" in caplog.text) == (expect_dropped > 0)
    sp.close()
    sp = Spool(tmp_path, max_events=bound)  # drops are durable: no resurrection on restart
    assert payloads(sp) == [rec(i) for i in range(n - min(n, bound), n)]
    sp.close()


def test_lowering_the_bound_between_runs_drops_and_counts(tmp_path):
    sp = Spool(tmp_path, max_events=10)
    for i in range(6):
        sp.append(rec(i))
    sp.close()
    sp = Spool(tmp_path, max_events=4)
    assert sp.dropped == 2 and payloads(sp) == [rec(i) for i in range(2, 6)]
    sp.close()


def _crash_after_appending(directory, n: int) -> None:
    """A real process appends ``n`` records and dies by SIGKILL: no close, no flush."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {ROOT!r})
        from streamer.sinks.spool import Spool
        sp = Spool({str(directory)!r}, fsync="never")
        for i in range({n}):
            sp.append(b'{{"n":%d}}' % i)
        sp.ack([1])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert r.returncode == -9


def test_everything_appended_survives_a_sigkill(tmp_path):
    _crash_after_appending(tmp_path, 4)
    assert (tmp_path / (DB_NAME + "-wal")).exists()  # the kill left the WAL un-checkpointed
    sp = Spool(tmp_path)
    assert sp.recovered == 3 and sp.corrupt == 0
    assert payloads(sp) == [rec(1), rec(2), rec(3)]
    sp.close()


def test_a_torn_wal_frame_after_a_crash_is_ignored(tmp_path):
    _crash_after_appending(tmp_path, 4)
    with open(tmp_path / (DB_NAME + "-wal"), "ab") as f:  # the crash hit the middle of a write
        f.write(b'\x00\x00\x00\x02half a frame {"n":4, "half a rec')
    sp = Spool(tmp_path)
    assert sp.recovered == 3
    assert payloads(sp) == [rec(1), rec(2), rec(3)]
    sp.append(rec(9))  # nothing is glued to the torn bytes
    sp.close()
    sp = Spool(tmp_path)
    assert payloads(sp) == [rec(1), rec(2), rec(3), rec(9)] and sp.corrupt == 0
    sp.close()


def test_an_unreadable_database_is_set_aside_and_a_new_one_started(tmp_path, caplog):
    sp = Spool(tmp_path)
    for i in range(3):
        sp.append(rec(i))
    sp.close()
    (tmp_path / DB_NAME).write_bytes(b"\x00garbage, not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="streamer.sinks.spool"):
        sp = Spool(tmp_path)
    assert sp.corrupt == 1 and "unreadable" in caplog.text
    assert list(tmp_path.glob(DB_NAME + ".corrupt-*"))  # kept for inspection
    sp.append(rec(7))
    sp.close()
    sp = Spool(tmp_path)
    assert payloads(sp) == [rec(7)] and sp.corrupt == 0
    sp.close()


def legacy_line(seq: int, data: bytes) -> bytes:
    return b"E %d %08x %s\n" % (seq, zlib.crc32(data), data)


def test_a_legacy_spool_log_is_migrated_once_in_order(tmp_path):
    (tmp_path / LEGACY_LOG).write_bytes(
        legacy_line(1, rec(0)) + legacy_line(2, rec(1)) + legacy_line(3, rec(2)) + b"A 1\n"
        + b'E 4 0badc0de {"n":3, "half a rec')  # a torn last line: a crash mid-write
    sp = Spool(tmp_path)
    assert sp.migrated == 2 and sp.recovered == 2 and sp.corrupt == 0
    assert payloads(sp) == [rec(1), rec(2)]
    assert not (tmp_path / LEGACY_LOG).exists() and (tmp_path / (LEGACY_LOG + ".migrated")).exists()
    sp.append(rec(9))
    sp.close()
    sp = Spool(tmp_path)  # migrated once: not imported again
    assert payloads(sp) == [rec(1), rec(2), rec(9)] and sp.migrated == 0
    sp.close()


def test_corrupt_legacy_lines_are_skipped_and_counted(tmp_path):
    lines = legacy_line(1, rec(0)) + legacy_line(2, rec(1)) + legacy_line(3, rec(2))
    data = lines.replace(b'{"n":1}', b'{"n":7}')  # CRC now wrong
    (tmp_path / LEGACY_LOG).write_bytes(data + b"\x00\x00garbage\n")
    sp = Spool(tmp_path)
    assert sp.corrupt == 2
    assert payloads(sp) == [rec(0), rec(2)]
    sp.close()


def disk_bytes(d) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.name.startswith(DB_NAME))


def test_compaction_gives_the_acked_space_back(tmp_path):
    sp = Spool(tmp_path, compact_min=10)
    seqs = [sp.append(rec(i) + b" " + b"x" * 2000) for i in range(50)]
    sp.sync(force=True)
    big = disk_bytes(tmp_path)
    sp.ack(seqs[:45])
    assert sp.maybe_compact()
    assert disk_bytes(tmp_path) < big / 3
    assert [d.split(b" ")[0] for d in payloads(sp)] == [rec(i) for i in range(45, 50)]
    sp.append(rec(99))
    sp.close()
    sp = Spool(tmp_path)
    assert [d.split(b" ")[0] for d in payloads(sp)] == [rec(i) for i in range(45, 50)] + [rec(99)]
    sp.close()


def test_compaction_waits_until_enough_is_acked(tmp_path):
    sp = Spool(tmp_path, compact_min=10)
    seqs = [sp.append(rec(i)) for i in range(30)]
    sp.ack(seqs[:12])
    assert not sp.maybe_compact()  # 12 acked < 18 pending: a rewrite would cost more than it saves
    sp.ack(seqs[12:16])
    assert sp.maybe_compact()
    sp.close()


@pytest.mark.parametrize("policy, synchronous, after_sync", [
    ("always", 2, 0),  # FULL: every commit fsyncs the WAL
    ("batch", 1, 1),  # NORMAL: sync() checkpoints (fsync) every batch_interval_s
    ("never", 0, 0),  # OFF: left to the OS
])
def test_fsync_policy_maps_to_sqlite_synchronous(tmp_path, policy, synchronous, after_sync):
    sp = Spool(tmp_path, fsync=policy, batch_interval_s=0.0)
    assert sp._db.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    assert sp._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for i in range(3):
        sp.append(rec(i))
    sp.sync()
    assert sp.syncs == after_sync
    sp.sync()  # nothing new written since: no second checkpoint
    assert sp.syncs == after_sync
    sp.close()


def test_a_second_process_cannot_share_the_spool(tmp_path):
    sp = Spool(tmp_path)
    with pytest.raises(ConfigError, match="in use by another process"):
        Spool(tmp_path)
    sp.close()
    Spool(tmp_path).close()  # released on close


@pytest.mark.parametrize("kwargs, error", [
    ({"fsync": "sometimes"}, "expected always, batch or never"),
    ({"max_events": 0}, "expected int >= 1"),
])
def test_bad_settings_are_refused(tmp_path, kwargs, error):
    with pytest.raises(ConfigError, match=error):
        Spool(tmp_path, **kwargs)


def test_records_with_a_newline_are_refused(tmp_path):
    sp = Spool(tmp_path)
    with pytest.raises(ValueError):
        sp.append(b"a\nb")
    sp.close()
