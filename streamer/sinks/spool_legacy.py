"""Reads the earlier hand-written spool format (``spool.log``) so its pending events survive
the upgrade to the SQLite spool (``streamer.sinks.spool`` imports them once, then renames it).

The format, one line per record, appended with one write each:

    E <seq> <crc32 hex> <payload>     a record (payload: bytes without a newline, e.g. JSON)
    A <seq> [<seq> ...]               acknowledged: gone
    X <seq> [<seq> ...]               dropped by the bound: gone

A torn last line (a crash mid-write: no final newline) is ignored; a complete line that does
not parse or whose CRC does not match is skipped and counted.
"""

from __future__ import annotations

import zlib


def read_pending(data: bytes) -> tuple[list[bytes], int]:
    """(payloads still pending, in append order; number of corrupt lines)."""
    pending: dict[int, bytes] = {}
    corrupt = 0
    end = data.rfind(b"\n") + 1
    for line in data[:end].split(b"\n")[:-1]:
        try:
            if line[:2] == b"E ":
                _, seq_b, crc_b, payload = line.split(b" ", 3)
                if int(crc_b, 16) != zlib.crc32(payload):
                    raise ValueError("crc mismatch")
                pending[int(seq_b)] = payload
            elif line[:2] in (b"A ", b"X "):
                for s in line[2:].split():
                    pending.pop(int(s), None)
            else:
                raise ValueError("unknown record kind")
        except ValueError:
            corrupt += 1
    return [pending[s] for s in sorted(pending)], corrupt
