"""The on-disk spool: order, ack removal, the bound, crash recovery, restart persistence."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from streamer.errors import ConfigError
from streamer.sinks.spool import LOG_NAME, Spool

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


def test_torn_last_line_is_ignored_after_a_crash(tmp_path):
    _crash_after_appending(tmp_path, 4)
    with open(tmp_path / LOG_NAME, "ab") as f:  # the crash hit the middle of a write
        f.write(b'E 5 0badc0de {"n":4, "half a rec')
    sp = Spool(tmp_path)
    assert sp.torn_bytes > 0 and sp.recovered == 3
    assert payloads(sp) == [rec(1), rec(2), rec(3)]
    sp.append(rec(9))  # the torn bytes were cut off: nothing is glued to them
    sp.close()
    sp = Spool(tmp_path)
    assert payloads(sp) == [rec(1), rec(2), rec(3), rec(9)] and sp.corrupt == 0
    sp.close()


def test_corrupt_complete_line_is_skipped_and_counted(tmp_path):
    sp = Spool(tmp_path)
    for i in range(3):
        sp.append(rec(i))
    sp.close()
    data = (tmp_path / LOG_NAME).read_bytes().replace(b'{"n":1}', b'{"n":7}')  # CRC now wrong
    (tmp_path / LOG_NAME).write_bytes(data + b"\x00\x00garbage\n")
    sp = Spool(tmp_path)
    assert sp.corrupt == 2
    assert payloads(sp) == [rec(0), rec(2)]
    sp.close()


def test_compaction_removes_the_acked_prefix(tmp_path):
    sp = Spool(tmp_path, compact_min=10)
    seqs = [sp.append(rec(i) + b" " + b"x" * 200) for i in range(50)]
    big = (tmp_path / LOG_NAME).stat().st_size
    sp.ack(seqs[:45])
    assert sp.maybe_compact()
    assert (tmp_path / LOG_NAME).stat().st_size < big / 5
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


@pytest.mark.parametrize("policy, per_append, after_sync", [
    ("always", 1, 0),
    ("batch", 0, 1),
    ("never", 0, 0),
])
def test_fsync_policy(tmp_path, monkeypatch, policy, per_append, after_sync):
    sp = Spool(tmp_path, fsync=policy, batch_interval_s=0.0)
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    for i in range(3):
        sp.append(rec(i))
    assert len(calls) == 3 * per_append
    calls.clear()
    sp.sync()
    assert len(calls) == after_sync
    monkeypatch.undo()
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
