"""The only code that opens, locks, writes or reads session logs.

Every function here blocks (disk, ``flock``), so it runs on a worker thread, never
on the event loop. An append is one call::

    open(O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
      -> fstat: a regular file, or refused
      -> flock(LOCK_EX) on that descriptor
      -> write() each chunk of complete lines whole (truncate back on a short write)
      -> fsync (durability "fsync" only)
      -> close (which releases the lock)

``O_NONBLOCK`` keeps the open from hanging on a FIFO planted at the log's path (one
with no reader fails, one with a reader opens), and the ``fstat`` after it refuses
anything but a regular file, once per open, so no byte is acknowledged that no
file holds. Reads refuse the same way.

An append never creates anything: a session is open when its log exists, and
:meth:`FileSessionStore.open_session` is what makes it exist (the session
manager makes the directory, the only mkdir authority; this module creates the
empty log). A missing log is :class:`~contracts.MissingSessionPath`, so a typo in a
session id starts no log.

Error messages name the failure (an errno name), never the path.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from contracts import ActorbusError, MissingSessionPath, RecorderIOError

from .._shared.files import file_kind
from .events import session_path
from .manager import create_session_dir
from .store import LogWindow, Outcome

__all__ = ["FileSessionStore", "LockContended"]

log = logging.getLogger("actorbus.recorder")

_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PATH_CACHE_MAX = 65_536


class LockContended(Exception):
    """Another process holds the session log's lock and the caller would not wait.

    Nothing was written; the caller retries with ``wait=True`` on a thread of its own.
    """


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "EIO")


def _open_error(exc: OSError) -> ActorbusError:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return MissingSessionPath("session was never opened (no session log); open it first")
    if exc.errno == errno.ELOOP:
        return RecorderIOError("session log is a symbolic link; refused")
    if exc.errno == errno.ENXIO:
        return RecorderIOError("session log is a FIFO; refused")
    if exc.errno == errno.EISDIR:
        return RecorderIOError("session log is a directory; refused")
    return RecorderIOError(f"session log could not be opened ({_errno_name(exc)})")


def _not_regular(mode: int) -> RecorderIOError:
    return RecorderIOError(f"session log is {file_kind(mode)}, not a regular file; refused")


class FileSessionStore:
    """Session logs as JSON Lines files under ``root`` (the default storage).

    Args:
        root: The service root; logs live in ``<root>/logs/users/<u>/sessions/``.
        write: The ``os.write`` to use (a test passes a fake that writes short).
        fsync: The ``os.fsync`` to use (a test passes a fake that records calls).
    """

    def __init__(
        self,
        root: Path,
        *,
        write: Callable[[int, bytes], int] = os.write,
        fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.root = Path(root)
        self._write = write
        self._fsync = fsync
        # Log paths by (user_id, session_id), built once per session. Plain dict
        # operations are atomic under the GIL, so every thread may use it; cleared
        # when full (a miss only rebuilds a string).
        self._paths: dict[tuple[str, str], str] = {}

    def log_path(self, user_id: str, session_id: str) -> str:
        """The session log's path as a string (ids are checked on first use)."""
        key = (user_id, session_id)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= _PATH_CACHE_MAX:
                self._paths.clear()
            path = self._paths[key] = os.fspath(session_path(self.root, user_id, session_id))
        return path

    def open_session(self, user_id: str, session_id: str) -> bool:
        """Open the session: its directory (by the session manager), then its empty log.

        Idempotent. A log rotated away is created again, empty.

        Returns:
            Whether this call created the log (False: the session was open).

        Raises:
            InvalidEvent: An id is not safe (nothing is created).
            RecorderIOError: The directory or log cannot be created, or something
                other than a regular file is at the log's path.
        """
        create_session_dir(self.root, user_id, session_id)
        path = self.log_path(user_id, session_id)
        try:
            fd = os.open(path, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            fd = -1
        except OSError as exc:
            raise RecorderIOError(
                f"session log could not be created ({_errno_name(exc)})"
            ) from None
        if fd >= 0:
            os.close(fd)
            return True
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError as exc:
            raise _open_error(exc) from None
        try:
            mode = os.fstat(fd).st_mode
        finally:
            os.close(fd)
        if not stat.S_ISREG(mode):
            raise _not_regular(mode)
        return False

    def try_append(
        self, user_id: str, session_id: str, chunks: Sequence[bytes], *, durable: bool
    ) -> Outcome | None:
        """As :meth:`append` without waiting: ``None`` when another process holds the lock."""
        try:
            return self.append(user_id, session_id, chunks, durable=durable, wait=False)
        except LockContended:
            return None

    def append(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        wait: bool = True,
    ) -> Outcome:
        """Append chunks of complete lines under the log's exclusive lock.

        Args:
            user_id: The session's user.
            session_id: The session.
            chunks: Each one or more complete lines; each is written by one ``write()``.
            durable: fsync before returning; a failed fsync keeps nothing.
            wait: Wait for the lock; otherwise raise :class:`LockContended` when
                another process holds it.

        Returns:
            How many chunks were written, and the error that stopped the rest (or
            ``None``). A failed chunk leaves nothing behind: the file is truncated
            back to its length before that chunk, under the lock.

        Raises:
            LockContended: ``wait`` is false and the lock is held elsewhere.
        """
        try:
            fd = os.open(self.log_path(user_id, session_id), _APPEND_FLAGS)
        except OSError as exc:
            return 0, _open_error(exc)
        try:
            # Once per open: a FIFO with a reader (or any non-regular file) opens,
            # and would take bytes that no file keeps.
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                return 0, _not_regular(mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise LockContended from None
                fcntl.flock(fd, fcntl.LOCK_EX)
            # The length before the write is needed only to undo one, so it is
            # derived after a failure (the lock keeps every other writer out).
            done = 0  # bytes written by this call
            write = self._write
            for index, chunk in enumerate(chunks):
                error: ActorbusError | None = None
                try:
                    written = write(fd, chunk)
                except OSError as exc:
                    written = -1
                    error = RecorderIOError(
                        f"session log write failed ({_errno_name(exc)}); nothing was kept"
                    )
                if written != len(chunk):
                    _truncate(fd, max(written, 0))
                    return index, error or RecorderIOError(
                        f"session log write was short ({max(written, 0)} of {len(chunk)} "
                        "bytes); nothing was kept"
                    )
                done += written
            if durable and chunks:
                try:
                    self._fsync(fd)
                except OSError as exc:
                    _truncate(fd, done)
                    return 0, RecorderIOError(
                        f"session log fsync failed ({_errno_name(exc)}); nothing was kept"
                    )
            return len(chunks), None
        except OSError as exc:
            return 0, RecorderIOError(f"session log could not be locked ({_errno_name(exc)})")
        finally:
            os.close(fd)

    def read(self, user_id: str, session_id: str, offset: int, limit: int) -> bytes:
        """Read up to ``limit`` bytes from ``offset`` under a shared lock.

        The shared lock waits out any append in progress, so what is read ends
        where some append ended.

        Raises:
            MissingSessionPath: The session was never opened (no log).
            RecorderIOError: The log is not a regular file or cannot be read.
        """
        return self.window(user_id, session_id, offset, limit).data

    def size(self, user_id: str, session_id: str) -> int:
        """The log's length in bytes between appends.

        Raises:
            MissingSessionPath: The session was never opened (no log).
            RecorderIOError: The log is not a regular file or cannot be read.
        """
        return self.window(user_id, session_id, 0, 0).size

    def window(self, user_id: str, session_id: str, offset: int, limit: int) -> LogWindow:
        """:meth:`read`, with the log's size and identity seen by the same descriptor.

        Raises:
            MissingSessionPath: The session was never opened (no log).
            RecorderIOError: The log is not a regular file or cannot be read.
        """
        try:
            fd = os.open(self.log_path(user_id, session_id), _READ_FLAGS)
        except OSError as exc:
            raise _open_error(exc) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _not_regular(info.st_mode)
            fcntl.flock(fd, fcntl.LOCK_SH)
            info = os.fstat(fd)  # the length once any append in progress is done
            data = os.pread(fd, limit, offset) if limit > 0 else b""
            return LogWindow(data, info.st_size, (info.st_dev, info.st_ino))
        except OSError as exc:
            raise RecorderIOError(f"session log could not be read ({_errno_name(exc)})") from None
        finally:
            os.close(fd)


def _truncate(fd: int, undo: int) -> None:
    """Cut the last ``undo`` bytes off the log (the lock is held): no partial line remains."""
    if undo <= 0:
        return
    try:
        os.ftruncate(fd, os.fstat(fd).st_size - undo)
    except OSError as exc:
        # Nothing more can be done here; the error that brought us here is reported.
        log.error("session log could not be truncated after a failed write (%s)", _errno_name(exc))
