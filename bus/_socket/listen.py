"""Claiming a socket path for a server, and reading a peer's uid.

A lock file beside the socket (``<path>.lock``, ``flock`` held for the server's
life) makes two servers starting at once agree on one winner. A socket file whose
server died (connecting is refused) is replaced; a live one, or a file that is not
a socket, never is. The socket is made 0600 between ``bind`` and ``listen``, so no
client ever reaches it while its mode is still the umask's.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import socket
import stat
import struct
from pathlib import Path

from .._errors import SocketInUse

__all__ = ["claim_path", "peer_uid"]

log = logging.getLogger("actorbus.server")

_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(transport: asyncio.Transport) -> int | None:
    """The connecting process's uid from ``SO_PEERCRED`` (``None`` where unavailable)."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        _pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _CRED.size))
    except (OSError, struct.error):
        return None
    return int(uid)


def claim_path(path: Path) -> tuple[int, socket.socket, tuple[int, int]]:
    """Take the path for a new server: the lock, a stale socket replaced, a fresh bind.

    Blocking (flock, connect): run it in a worker thread.

    Returns:
        The lock's descriptor (hold it open while serving), the bound socket (mode
        0600, not yet listening), and the socket file's ``(st_dev, st_ino)``.

    Raises:
        SocketInUse: Another server holds the lock or listens on the path, a
            non-socket file sits there, the socket's directory is not a real
            directory, or its lock file is not a regular file.
    """
    _check_directory(path.parent)
    lock_fd = os.open(
        f"{path}.lock",
        os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
        0o600,
    )
    try:
        mode = os.fstat(lock_fd).st_mode
        if not stat.S_ISREG(mode):
            # A FIFO (say) would take the flock as well and claim nothing.
            raise SocketInUse(f"the socket's lock file is {_kind(mode)}, not a regular file")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SocketInUse(f"another actorbus server is running on {path}") from None
        _clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(path))
            # Before listen(): until then every connect is refused, so no client ever
            # reaches the socket while its mode is still the umask's.
            os.chmod(path, 0o600)
            st = os.lstat(path)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
    except BaseException:
        os.close(lock_fd)
        raise
    return lock_fd, sock, (st.st_dev, st.st_ino)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _check_directory(directory: Path) -> None:
    """Refuse a socket directory that is not a real directory (a symlink, a FIFO)."""
    try:
        mode = os.lstat(directory).st_mode
    except FileNotFoundError:
        return  # bind() reports it
    if not stat.S_ISDIR(mode):
        raise SocketInUse(f"the socket's directory is {_kind(mode)}, not a directory; refused")


def _clear_stale(path: Path) -> None:
    """Remove a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketInUse(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        os.unlink(path)
        log.warning("replaced the stale socket %s (its server is gone)", path)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.ETIMEDOUT) and not isinstance(exc, TimeoutError):
            raise
    finally:
        probe.close()
    raise SocketInUse(f"a live server is listening on {path}; not replacing it")
