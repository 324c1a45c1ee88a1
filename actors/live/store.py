"""Storage of the live-data document: an IO-only interface and its file backend.

The store knows bytes, not documents: it reads the current and the example
document and atomically replaces the current one. Merging, validation, privacy
and locking live elsewhere, so another backend (a key-value bucket with revision
compare-and-set) can replace the files without touching that logic.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

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
    def _read(path: Path) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            # A symlink or an unreadable file is no usable base; the caller falls back.
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(_MAX_BYTES + 1)

    def read_current(self) -> bytes | None:
        """The current document's bytes, or ``None`` when missing or unreadable."""
        return self._read(self.current)

    def read_example(self) -> bytes | None:
        """The example document's bytes, or ``None`` when missing or unreadable."""
        return self._read(self.example)

    def replace(self, data: bytes) -> None:
        """Write a temp file in the same directory, fsync, rename over, fsync the directory.

        On any failure the temp file is removed and the current document is untouched.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
