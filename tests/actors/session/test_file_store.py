"""The file store: open, lock, write, truncate back, refuse what is not a plain log."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors import FileSessionStore, session_path
from actors.session.file_store import LockContended
from contracts import MissingSessionPath, RecorderIOError

LINE_A = b'{"recorded_at":"2026-01-01T00:00:00.000Z","event":{"record_id":"a"}}\n'
LINE_B = b'{"recorded_at":"2026-01-01T00:00:00.000Z","event":{"record_id":"b"}}\n'


def opened(root: Path) -> Path:
    """A store root with session u1/s1 opened; returns the log's path."""
    FileSessionStore(root).open_session("u1", "s1")
    return session_path(root, "u1", "s1")


def test_append_writes_each_chunk_and_creates_the_log(tmp_path: Path) -> None:
    log = opened(tmp_path)
    store = FileSessionStore(tmp_path)
    assert store.append("u1", "s1", [LINE_A, LINE_A + LINE_B], durable=False, wait=False) == (
        2,
        None,
    )
    assert log.read_bytes() == LINE_A + LINE_A + LINE_B
    assert store.size("u1", "s1") == len(LINE_A) * 2 + len(LINE_B)


def test_missing_session_directory_is_reported_and_nothing_is_created(tmp_path: Path) -> None:
    store = FileSessionStore(tmp_path)
    written, error = store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    assert written == 0 and isinstance(error, MissingSessionPath)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MissingSessionPath):
        store.read("u1", "s1", 0, 100)


def test_symlinked_log_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    log = opened(tmp_path)
    log.unlink()
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"precious\n")
    log.symlink_to(target)
    store = FileSessionStore(tmp_path)
    written, error = store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    assert written == 0 and isinstance(error, RecorderIOError)
    assert "symbolic link" in error.message and str(tmp_path) not in error.message
    assert target.read_bytes() == b"precious\n"
    with pytest.raises(RecorderIOError):
        store.read("u1", "s1", 0, 100)


def test_fifo_in_place_of_the_log_is_refused_without_hanging(tmp_path: Path) -> None:
    log = opened(tmp_path)
    log.unlink()
    os.mkfifo(log)
    store = FileSessionStore(tmp_path)
    written, error = store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    assert written == 0 and isinstance(error, RecorderIOError)


def fake_short_write(limit: int) -> object:
    """A fake ``os.write`` that writes at most ``limit`` bytes, as a full disk can."""

    def write(fd: int, data: bytes) -> int:
        return os.write(fd, data[:limit])

    return write


def test_short_write_is_truncated_back_and_the_batch_fails(tmp_path: Path) -> None:
    log = opened(tmp_path)
    FileSessionStore(tmp_path).append("u1", "s1", [LINE_A], durable=False, wait=False)
    store = FileSessionStore(tmp_path, write=fake_short_write(len(LINE_B) // 2))  # type: ignore[arg-type]
    written, error = store.append("u1", "s1", [LINE_B + LINE_B], durable=False, wait=False)
    assert written == 0 and isinstance(error, RecorderIOError)
    assert "short" in error.message
    assert log.read_bytes() == LINE_A


def test_failure_in_a_later_chunk_keeps_the_chunks_before_it(tmp_path: Path) -> None:
    log = opened(tmp_path)
    calls = []

    def fake_write_failing_second(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 2:
            os.write(fd, data[:5])
            return 5
        return os.write(fd, data)

    store = FileSessionStore(tmp_path, write=fake_write_failing_second)
    written, error = store.append("u1", "s1", [LINE_A, LINE_B, LINE_A], durable=False, wait=False)
    assert written == 1 and isinstance(error, RecorderIOError)
    assert calls == [len(LINE_A), len(LINE_B)]
    assert log.read_bytes() == LINE_A


def test_failed_write_reports_the_errno_and_leaves_the_file_whole(tmp_path: Path) -> None:
    log = opened(tmp_path)
    FileSessionStore(tmp_path).append("u1", "s1", [LINE_A], durable=False, wait=False)

    def fake_full_disk_write(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = FileSessionStore(tmp_path, write=fake_full_disk_write)
    written, error = store.append("u1", "s1", [LINE_B], durable=False, wait=False)
    assert written == 0 and isinstance(error, RecorderIOError)
    assert "ENOSPC" in error.message
    assert log.read_bytes() == LINE_A


def test_durable_append_fsyncs_the_log_and_a_failed_fsync_keeps_nothing(tmp_path: Path) -> None:
    log = opened(tmp_path)
    synced: list[int] = []

    def fake_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        os.fsync(fd)

    store = FileSessionStore(tmp_path, fsync=fake_fsync)
    assert store.append("u1", "s1", [LINE_A], durable=True, wait=False) == (1, None)
    assert synced == [len(LINE_A)]  # called after the write, on the log itself
    store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    assert len(synced) == 1

    def fake_failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    failing = FileSessionStore(tmp_path, fsync=fake_failing_fsync)
    written, error = failing.append("u1", "s1", [LINE_B, LINE_B], durable=True, wait=False)
    assert written == 0 and isinstance(error, RecorderIOError)
    assert log.read_bytes() == LINE_A + LINE_A


def hold_lock(log: Path) -> subprocess.Popen[str]:
    """Another process holding the log's flock until its stdin closes."""
    code = (
        "import fcntl, os, sys\n"
        f"fd = os.open({os.fspath(log)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_held_by_another_process_is_reported_when_not_waiting(tmp_path: Path) -> None:
    log = opened(tmp_path)
    holder = hold_lock(log)
    try:
        with pytest.raises(LockContended):
            FileSessionStore(tmp_path).append("u1", "s1", [LINE_A], durable=False, wait=False)
        assert log.read_bytes() == b""
    finally:
        holder.communicate("")
    assert FileSessionStore(tmp_path).append("u1", "s1", [LINE_A], durable=False, wait=True) == (
        1,
        None,
    )


def test_read_takes_a_shared_lock_and_sees_only_whole_appends(tmp_path: Path) -> None:
    log = opened(tmp_path)
    store = FileSessionStore(tmp_path)
    store.append("u1", "s1", [LINE_A + LINE_B], durable=False, wait=False)
    assert store.read("u1", "s1", 0, 1 << 20) == LINE_A + LINE_B
    assert store.read("u1", "s1", len(LINE_A), 1 << 20) == LINE_B
    fd = os.open(log, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a reader does not block another reader
        assert store.size("u1", "s1") == len(LINE_A + LINE_B)
    finally:
        os.close(fd)


def test_an_opened_session_has_an_empty_log_that_reads_as_empty(tmp_path: Path) -> None:
    log = opened(tmp_path)
    store = FileSessionStore(tmp_path)
    assert store.read("u1", "s1", 0, 100) == b""
    assert store.size("u1", "s1") == 0
    assert log.read_bytes() == b""
    assert (log.stat().st_mode & 0o777) == 0o600


def test_open_session_answers_created_once_per_session_and_keeps_the_log(tmp_path: Path) -> None:
    store = FileSessionStore(tmp_path)
    assert store.open_session("u1", "s1") is True
    store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    assert store.open_session("u1", "s1") is False
    # A second session of the same user is a session of its own: created too.
    assert store.open_session("u1", "s2") is True
    assert session_path(tmp_path, "u1", "s1").read_bytes() == LINE_A


def test_append_to_a_session_never_opened_beside_an_open_one_creates_nothing(
    tmp_path: Path,
) -> None:
    opened(tmp_path)
    store = FileSessionStore(tmp_path)
    written, error = store.append("u1", "s1-typo", [LINE_A], durable=False, wait=False)
    assert written == 0 and isinstance(error, MissingSessionPath)
    assert not session_path(tmp_path, "u1", "s1-typo").exists()
    with pytest.raises(MissingSessionPath):
        store.read("u1", "s1-typo", 0, 100)


def test_a_log_rotated_away_is_missing_until_the_session_is_opened_again(tmp_path: Path) -> None:
    log = opened(tmp_path)
    store = FileSessionStore(tmp_path)
    store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    log.rename(log.with_name("s1.jsonl.1"))
    written, error = store.append("u1", "s1", [LINE_B], durable=False, wait=False)
    assert written == 0 and isinstance(error, MissingSessionPath)
    assert not log.exists()
    assert store.open_session("u1", "s1") is True
    assert store.append("u1", "s1", [LINE_B], durable=False, wait=False) == (1, None)
    assert log.read_bytes() == LINE_B


def test_fifo_with_a_reader_at_the_log_is_refused_and_nothing_is_acknowledged(
    tmp_path: Path,
) -> None:
    log = opened(tmp_path)
    log.unlink()
    os.mkfifo(log)
    # A reader holds the FIFO open, so an O_NONBLOCK open for writing succeeds.
    reader = os.open(log, os.O_RDONLY | os.O_NONBLOCK)
    try:
        store = FileSessionStore(tmp_path)
        written, error = store.append("u1", "s1", [LINE_A], durable=False, wait=False)
        assert written == 0 and isinstance(error, RecorderIOError)
        assert "FIFO" in error.message and str(tmp_path) not in error.message
        assert os.read(reader, 100) == b""  # nothing reached the FIFO
        with pytest.raises(RecorderIOError, match="FIFO"):
            store.read("u1", "s1", 0, 100)
        with pytest.raises(RecorderIOError, match="FIFO"):
            store.open_session("u1", "s1")
    finally:
        os.close(reader)


def test_directory_at_the_log_path_is_refused_by_open_append_and_read(tmp_path: Path) -> None:
    log = opened(tmp_path)
    log.unlink()
    log.mkdir()
    store = FileSessionStore(tmp_path)
    written, error = store.append("u1", "s1", [LINE_A], durable=False, wait=False)
    assert written == 0 and isinstance(error, RecorderIOError) and "directory" in error.message
    with pytest.raises(RecorderIOError, match="directory"):
        store.open_session("u1", "s1")
    with pytest.raises(RecorderIOError, match="directory"):
        store.read("u1", "s1", 0, 100)
