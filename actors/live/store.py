"""Storage of the live-data document: an IO-only interface and its file backend.

The store knows bytes, not documents: it reads the current and the example
document and atomically replaces the current one. Merging, validation, privacy
and locking live elsewhere, so another backend (a key-value bucket with revision
compare-and-set) can replace the files without touching that logic.

Only regular files are read: a FIFO, device or directory at a document's path is
refused with :class:`~contracts.LiveDataInvalid` at once (the open cannot block),
so it never holds the generated-data lock or a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Protocol

from contracts import LiveDataInvalid

from .._shared.files import NotRegular, open_regular

__all__ = ["CURRENT_NAME", "EXAMPLE_NAME", "FileLiveStore", "LiveStore"]

CURRENT_NAME = "live-data.json"
EXAMPLE_NAME = "live-data.example.json"
_MAX_BYTES = 64 * 1024 * 1024


class LiveStore(Protocol):
    """Where the live-data document lives. Methods block (call them from a thread)."""

    def read_current(self) -> bytes | None:
        """The current document's bytes, or ``None`` when there is none."""

    def read_example(self) -> bytes | None:
        """The example (fallback base) document's bytes, or ``None`` when there is none."""

    def replace(self, data: bytes) -> None:
        """Make ``data`` the current document atomically: readers see old or new."""


class FileLiveStore:
    """The document as ``<data_dir>/live-data.json`` beside ``live-data.example.json``.

    Args:
        data_dir: ``<root>/data``; created on the first write if missing.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.current = data_dir / CURRENT_NAME
        self.example = data_dir / EXAMPLE_NAME

    @staticmethod
    def _read(path: Path, which: str) -> bytes | None:
        try:
            fd = open_regular(path, os.O_RDONLY)
        except NotRegular as exc:
            raise LiveDataInvalid(
                f"the {which} live-data document is {exc.kind}, not a regular file; refused"
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            # A symlink or an unreadable file is no usable base; the caller falls back.
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(_MAX_BYTES + 1)

    def read_current(self) -> bytes | None:
        """The current document's bytes, or ``None`` when missing or unreadable.

        Raises:
            LiveDataInvalid: Something other than a regular file is there.
        """
        return self._read(self.current, "current")

    def read_example(self) -> bytes | None:
        """The example document's bytes, or ``None`` when missing or unreadable.

        Raises:
            LiveDataInvalid: Something other than a regular file is there.
        """
        return self._read(self.example, "example")

    def replace(self, data: bytes) -> None:
        """Write a temp file in the same directory, fsync, rename over, fsync the directory.

        On any failure the temp file is removed and the current document is untouched.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not stat.S_ISDIR(os.lstat(self.data_dir).st_mode):
            # A symlinked data directory would put the document somewhere else.
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        fd, temp = tempfile.mkstemp(prefix=".live-data.", suffix=".tmp", dir=self.data_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # The dashboard reads the file over HTTP: world-readable like any asset.
            os.chmod(temp, 0o644)
            os.replace(temp, self.current)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        dir_fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
