"""Baseline disciplines shared by scenarios: the syscall floor and the naive recorder."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

__all__ = ["LINE", "floor_write_batched", "seed_per_event"]

#: A 300-byte JSONL line (299 bytes and the newline), the size every append scenario uses.
_HEAD = b'{"recorded_at":"2026-11-22T09:15:02.137Z","event":{"record_id":"r","data":"'
LINE = _HEAD + b"x" * (300 - len(_HEAD) - 4) + b'"}}\n'
assert len(LINE) == 300


def floor_write_batched(path: Path, lines: int, per_call: int = 64) -> float:
    """Raw ``os.write`` of ``per_call`` lines per call to one O_APPEND file; lines/s."""
    chunk = LINE * per_call
    calls = max(1, lines // per_call)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(calls):
            os.write(fd, chunk)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return calls * per_call / elapsed


def seed_per_event(paths: list[Path], events: int) -> float:
    """Per event: open O_APPEND, flock, write one line, close, round robin over ``paths``.

    The naive discipline a recorder starts from, synchronously; events/s.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    count = len(paths)
    names = [os.fspath(p) for p in paths]
    start = time.perf_counter()
    for i in range(events):
        fd = os.open(names[i % count], flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, LINE)
        finally:
            os.close(fd)
    return events / (time.perf_counter() - start)
