"""Named cross-process locks under a private lock root (blocking; run in a worker thread).

A lock ``<id>`` is the file ``<lock_root>/<id>.lock`` holding its owner record
(``docs/runbook.md``, "Locks")::

    {"lock_id", "pid", "host", "token", "acquired_at", "pid_start"}

Acquiring creates the file exclusively: the record is written and fsynced to a
private temp file (``O_CREAT|O_EXCL``), then hard-linked to the lock path, which
fails if the path exists. A lock file therefore always holds a complete record,
and a crash never leaves an empty, unjudgeable one.

Recovery: a lock from this host whose owner process is gone (no such pid, a zombie,
or a pid now used by a process with another start time) is broken; a live owner
never is, however old. A lock from another host is broken only when its
``acquired_at`` is older than ``stale_s``; an unreadable record or age is never
broken (fail closed). Every removal of a lock file (a recovery or a release) runs
under a kernel ``flock`` on ``<id>.guard`` and re-reads the record first, so of
two recoverers only one removes the stale record, and nobody removes a record they
did not judge.

Special files: every lock file is opened without blocking and must be a regular
file, and the lock root must be a real directory. A FIFO (or anything else) in
their place makes the lock busy (:class:`~contracts.LockBusy`, naming the kind of
file, never the path) instead of hanging the thread that holds the caller's work.

Fairness: a waiter holds a kernel ``flock`` on ``<id>.turn`` while it polls (every
few milliseconds), and everyone takes that turnstile before trying, so a writer
that just released cannot take the lock again ahead of a peer already waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from contracts import InvalidRequest, LockBusy, LockRelease

from .files import NotRegular, file_kind, open_regular

__all__ = ["LockHandle", "NamedLock", "OwnerRecord", "iso_millis", "process_start_time"]

log = logging.getLogger("actorbus.lock")

_LOCK_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: The longest a waiter sleeps between two attempts (at most 10 ms, so a busy peer
#: cannot starve a waiter).
POLL_S = 0.005


class OwnerRecord(msgspec.Struct, frozen=True):
    """The owner record stored in a lock file.

    Attributes:
        lock_id: The lock's name.
        pid: The owner's process id.
        host: ``socket.gethostname()`` of the owner.
        token: A random token; only its holder may release the lock.
        acquired_at: UTC acquisition time, ISO 8601 with milliseconds and ``Z``.
        pid_start: The owner's start time in clock ticks since boot (from
            ``/proc/<pid>/stat``), so a reused pid is not mistaken for the owner;
            ``None`` where it could not be read (judged by pid alone).
    """

    lock_id: str
    pid: int
    host: str
    token: str
    acquired_at: str
    pid_start: int | None = None


@dataclass(frozen=True)
class LockHandle:
    """Proof of ownership returned by :meth:`NamedLock.acquire`.

    Attributes:
        record: The record this owner wrote.
        waited_s: How long acquiring took.
        recovered: Whether a stale lock was broken to get it.
    """

    record: OwnerRecord
    waited_s: float
    recovered: bool


def iso_millis(unix: float) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``: ``2026-11-22T09:15:02.137Z``."""
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_iso(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def process_start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot, or ``None``.

    Read from field 22 of ``/proc/<pid>/stat``; the command name (field 2) may hold
    spaces and parentheses, so the fields are counted after its closing ``)``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _process_state(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 :].split()[0]
    except (OSError, ValueError, IndexError):
        return None


def _owner_alive(record: OwnerRecord) -> bool:
    """Whether the owner of a record from this host still runs."""
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    if _process_state(record.pid) in (b"Z", b"X"):
        return False  # exited; it can never release
    if record.pid_start is not None:
        start = process_start_time(record.pid)
        if start is not None and start != record.pid_start:
            return False  # the pid was reused by a younger process
    return True


class NamedLock:
    """One named lock under ``lock_root``; methods block, call them from a worker thread.

    Args:
        lock_root: The private directory of lock files (created 0700 if missing).
        lock_id: The lock's name: lowercase letters, digits, ``_`` and ``-``.
        stale_s: Age after which another host's lock may be broken.
        clock: Wall-clock seconds since the epoch (for ``acquired_at`` and ages).
        hostname: This host's name (default ``socket.gethostname()``).
        pid: The owner pid to record (default this process).

    Raises:
        InvalidRequest: The lock id is not a safe file name.
    """

    def __init__(
        self,
        lock_root: Path,
        lock_id: str,
        *,
        stale_s: float,
        clock: Callable[[], float] | None = None,
        hostname: str | None = None,
        pid: int | None = None,
    ) -> None:
        if not _LOCK_ID.fullmatch(lock_id):
            raise InvalidRequest("a lock id is lowercase letters, digits, '_' and '-'")
        self.lock_id = lock_id
        self.root = lock_root
        self.path = lock_root / f"{lock_id}.lock"
        self._guard = lock_root / f"{lock_id}.guard"
        self._turn = lock_root / f"{lock_id}.turn"
        # Confinement: the id pattern admits no separator, and the paths are checked.
        assert self.path.parent == lock_root and self._guard.parent == lock_root
        self.stale_s = stale_s
        self.clock = clock or time.time
        self.host = hostname or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        # Read from /proc on the first acquisition, in the worker thread.
        self._start: int | None = None
        self._start_read = False

    # ---- reading -------------------------------------------------------------

    def read(self) -> OwnerRecord | None:
        """The current owner record; ``None`` if unlocked.

        Raises:
            ValueError: The file exists but holds no readable record.
        """
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except NotRegular as exc:
            raise ValueError(f"the lock file is {exc.kind}, not a regular file") from None
        except OSError as exc:
            raise ValueError("the lock file cannot be opened") from exc
        try:
            raw = os.read(fd, 65536)
        finally:
            os.close(fd)
        try:
            return msgspec.json.decode(raw, type=OwnerRecord)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise ValueError("the lock file holds no readable owner record") from exc

    def _stale_reason(self, record: OwnerRecord) -> str | None:
        """Why ``record`` may be broken, or ``None`` if it must be respected."""
        if record.host == self.host:
            return None if _owner_alive(record) else "owner process is gone"
        acquired = _parse_iso(record.acquired_at)
        if acquired is None:
            return None  # another host, age unknown: fail closed
        if self.clock() - acquired > self.stale_s:
            return f"another host's lock older than {self.stale_s:g}s"
        return None

    # ---- acquiring -----------------------------------------------------------

    def _ensure_root(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = os.lstat(self.root).st_mode
        if not stat.S_ISDIR(mode):
            raise LockBusy(
                f"lock {self.lock_id}: the lock root is {file_kind(mode)}, not a directory; "
                "refused (see the runbook)"
            )

    @contextlib.contextmanager
    def _flock(self, path: Path, blocking: bool) -> Iterator[bool]:
        try:
            fd = open_regular(path, os.O_RDWR | os.O_CREAT)
        except NotRegular as exc:
            raise LockBusy(
                f"lock {self.lock_id}: its {path.suffix[1:]} file is {exc.kind}, not a regular "
                "file; refused (see the runbook)"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing drops the flock

    def _create(self) -> OwnerRecord | None:
        """Try to create the lock file with a fresh record; ``None`` if it exists."""
        if not self._start_read:
            self._start = process_start_time(self.pid)
            self._start_read = True
        record = OwnerRecord(
            lock_id=self.lock_id,
            pid=self.pid,
            host=self.host,
            token=secrets.token_hex(16),
            acquired_at=iso_millis(self.clock()),
            pid_start=self._start,
        )
        temp = self.root / f".{self.lock_id}.{record.token}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            try:
                os.write(fd, msgspec.json.encode(record))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, self.path)
            except FileExistsError:
                return None
            return record
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def break_if_stale(self) -> bool:
        """Break the current lock if it is stale; return whether a lock was broken.

        Safe to call from any number of processes at once: everything runs under
        the guard flock and the record is re-read there, so of two recoverers that
        judged the same record, the second finds it gone (or replaced by the
        winner's live record) and breaks nothing.
        """
        with self._flock(self._guard, blocking=True):
            try:
                record = self.read()
            except ValueError:
                return False  # unreadable: fail closed
            if record is None:
                return False
            reason = self._stale_reason(record)
            if reason is None:
                return False
            os.unlink(self.path)
        log.warning(
            "lock %s: broke the lock of pid %d on %s (%s)",
            self.lock_id,
            record.pid,
            "this host" if record.host == self.host else "another host",
            reason,
        )
        return True

    def try_acquire(self) -> LockHandle | None:
        """One attempt, recovering a stale lock first if there is one; never waits.

        Returns:
            The handle, or ``None`` while a live owner (or a waiter ahead) holds it.
        """
        self._ensure_root()
        with self._flock(self._turn, blocking=False) as turn:
            if not turn:
                return None
            return self._attempt(time.monotonic())

    def _attempt(self, started: float) -> LockHandle | None:
        recovered = False
        # Look before writing a record: a waiter polls, and each record costs an fsync.
        if os.path.lexists(self.path):
            if not self.break_if_stale():
                return None
            recovered = True
        record = self._create()
        if record is None:
            return None
        return LockHandle(record, time.monotonic() - started, recovered)

    def acquire(self, wait_s: float) -> LockHandle:
        """Take the lock, waiting at most ``wait_s`` seconds.

        Raises:
            LockBusy: A live owner (or an unbreakable record) held it throughout.
        """
        self._ensure_root()
        started = time.monotonic()
        deadline = started + wait_s
        with contextlib.ExitStack() as stack:
            # First the turnstile: while we hold it nobody else starts an attempt.
            while True:
                turn = stack.enter_context(self._flock(self._turn, blocking=False))
                if turn:
                    break
                stack.close()
                if time.monotonic() >= deadline:
                    raise LockBusy(self._busy_message(wait_s))
                time.sleep(POLL_S)
            while True:
                handle = self._attempt(started)
                if handle is not None:
                    return handle
                if time.monotonic() >= deadline:
                    raise LockBusy(self._busy_message(wait_s))
                time.sleep(POLL_S)

    def _busy_message(self, wait_s: float) -> str:
        try:
            record = self.read()
        except ValueError as exc:
            return (
                f"lock {self.lock_id} holds an unreadable owner record ({exc}); not broken "
                f"after {wait_s:g}s (see the runbook)"
            )
        if record is None:
            return f"lock {self.lock_id} stayed contended for {wait_s:g}s"
        where = "this host" if record.host == self.host else "another host"
        return (
            f"lock {self.lock_id} is held by pid {record.pid} on {where} since "
            f"{record.acquired_at}; waited {wait_s:g}s"
        )

    # ---- releasing -----------------------------------------------------------

    def release(self, handle: LockHandle) -> LockRelease:
        """Remove the lock if it still carries this handle's token.

        A record with another token is left in place and the mismatch reported
        (returned and logged): someone broke and retook the lock meanwhile.

        Returns:
            ``released``, ``mismatch`` or ``missing``.
        """
        outcome: LockRelease
        with self._flock(self._guard, blocking=True):
            try:
                record = self.read()
            except ValueError:
                record = None
                outcome = "mismatch"  # an unreadable record is not ours to remove
            else:
                if record is None:
                    outcome = "missing"
                elif record.token != handle.record.token:
                    outcome = "mismatch"
                else:
                    # Removals happen only under the guard, so this is still ours.
                    os.unlink(self.path)
                    outcome = "released"
        if outcome != "released":
            log.warning(
                "lock %s: release found %s; the record on disk was left as it is",
                self.lock_id,
                "another owner's record" if outcome == "mismatch" else "no record",
            )
        return outcome
