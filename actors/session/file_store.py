"""The only code that opens, locks, writes or reads session logs.

Every function here blocks (disk, ``flock``), so it runs on a worker thread, never
on the event loop. An append is one call::

    open(O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
      -> flock(LOCK_EX) on that descriptor
      -> write() each chunk of complete lines whole (truncate back on a short write)
      -> fsync (durability "fsync" only)
      -> close (which releases the lock)

``O_NONBLOCK`` makes a FIFO planted at the log's path fail the open instead of
hanging the writer; it changes nothing for a regular file. Reads also refuse
anything but a regular file. The store never creates a
directory: a missing session directory is :class:`~contracts.MissingSessionPath`.
The one exception is :meth:`FileSessionStore.open_session`, which hands over to the
session manager, the only mkdir authority.

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

from .events import session_path
from .manager import create_session_dir

__all__ = ["FileSessionStore", "LockContended"]

log = logging.getLogger("actorbus.recorder")

_APPEND_FLAGS = (
    os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
)
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
        return MissingSessionPath("session directory does not exist; open the session first")
    if exc.errno == errno.ELOOP:
        return RecorderIOError("session log is a symbolic link; refused")
    if exc.errno == errno.ENXIO:
        return RecorderIOError("session log is not a regular file; refused")
    return RecorderIOError(f"session log could not be opened ({_errno_name(exc)})")


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
        """Create the session directory; return whether this call created it."""
        return create_session_dir(self.root, user_id, session_id)

    def append(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        wait: bool,
    ) -> tuple[int, ActorbusError | None]:
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
            fd = os.open(self.log_path(user_id, session_id), _APPEND_FLAGS, 0o600)
        except OSError as exc:
            return 0, _open_error(exc)
        try:
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
        where some append ended. A log not yet created reads as empty.

        Raises:
            MissingSessionPath: The session directory does not exist.
            RecorderIOError: The log is not a regular file or cannot be read.
        """
        fd = self._open_for_read(user_id, session_id)
        if fd < 0:
            return b""
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._check_regular(fd)
            return os.pread(fd, limit, offset)
        except OSError as exc:
            raise RecorderIOError(f"session log could not be read ({_errno_name(exc)})") from None
        finally:
            os.close(fd)

    def size(self, user_id: str, session_id: str) -> int:
        """The log's length in bytes between appends (0 for a log not yet created).

        Raises:
            MissingSessionPath: The session directory does not exist.
            RecorderIOError: The log is not a regular file or cannot be read.
        """
        fd = self._open_for_read(user_id, session_id)
        if fd < 0:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return self._check_regular(fd)
        except OSError as exc:
            raise RecorderIOError(f"session log could not be read ({_errno_name(exc)})") from None
        finally:
            os.close(fd)

    def _open_for_read(self, user_id: str, session_id: str) -> int:
        path = self.log_path(user_id, session_id)
        try:
            return os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            if os.path.isdir(os.path.dirname(path)):
                return -1
            raise _open_error(FileNotFoundError()) from None
        except OSError as exc:
            raise _open_error(exc) from None

    @staticmethod
    def _check_regular(fd: int) -> int:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RecorderIOError("session log is not a regular file; refused")
        return info.st_size


def _truncate(fd: int, undo: int) -> None:
    """Cut the last ``undo`` bytes off the log (the lock is held): no partial line remains."""
    if undo <= 0:
        return
    try:
        os.ftruncate(fd, os.fstat(fd).st_size - undo)
    except OSError as exc:
        # Nothing more can be done here; the error that brought us here is reported.
        log.error("session log could not be truncated after a failed write (%s)", _errno_name(exc))
