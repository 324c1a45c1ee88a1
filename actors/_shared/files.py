"""Opening only what is meant: a regular file, never a FIFO, device or socket.

A FIFO planted where the service expects a file makes a plain ``open`` wait for
a writer forever (holding whatever lock the caller holds), and a FIFO with a
reader swallows writes that no file keeps. Every file the service opens is
therefore opened with ``O_NONBLOCK`` (so the open itself cannot wait) and
``O_NOFOLLOW``, then checked with ``fstat`` on the descriptor it got.
"""

from __future__ import annotations

import os
import stat

__all__ = ["NotRegular", "file_kind", "open_regular"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symbolic link"),
)


class NotRegular(OSError):
    """Something other than a regular file is at the path; ``kind`` names it."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind}, not a regular file")
        self.kind = kind


def file_kind(mode: int) -> str:
    """The kind of a file that is not a regular one, for an error message (no path)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """Open ``path`` without blocking and return the descriptor of a regular file.

    ``O_NONBLOCK``, ``O_NOFOLLOW`` and ``O_CLOEXEC`` are added to ``flags``.

    Raises:
        NotRegular: Something else is there (the descriptor is closed).
        OSError: The open failed (``ENXIO`` for a FIFO opened for writing with no
            reader, ``ELOOP`` for a symbolic link).
    """
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        st_mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st_mode):
        os.close(fd)
        raise NotRegular(file_kind(st_mode))
    return fd
