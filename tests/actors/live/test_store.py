"""The file store: atomic replacement, private temp files, no symlink following."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from actors import FileLiveStore

# Replaces the document over and over with two very different contents: one
# small, one large; a torn or mixed read would show as neither.
FLIPPER = r"""
import sys
from pathlib import Path
from actors import FileLiveStore
store = FileLiveStore(Path(sys.argv[1]))
small = b'{"v": "small"}\n'
large = b'{"v": "' + b"L" * 200_000 + b'"}\n'
for i in range(int(sys.argv[2])):
    store.replace(small if i % 2 else large)
"""


def test_a_missing_document_reads_as_none(tmp_path: Path) -> None:
    store = FileLiveStore(tmp_path / "data")
    assert store.read_current() is None
    assert store.read_example() is None


def test_replace_creates_the_data_directory_and_the_document(tmp_path: Path) -> None:
    store = FileLiveStore(tmp_path / "data")
    store.replace(b"{}\n")
    assert store.read_current() == b"{}\n"
    assert (tmp_path / "data" / "live-data.json").read_bytes() == b"{}\n"
    assert stat.S_IMODE((tmp_path / "data" / "live-data.json").stat().st_mode) == 0o644


def test_the_example_is_read_from_beside_the_document(tmp_path: Path) -> None:
    (tmp_path / "live-data.example.json").write_bytes(b"{}")
    assert FileLiveStore(tmp_path).read_example() == b"{}"


def test_a_symlinked_document_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b'{"private": true}')
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "live-data.json").symlink_to(secret)
    assert FileLiveStore(tmp_path / "data").read_current() is None


class FailingFsync:
    """A fake full disk: fsync fails like ENOSPC on the first call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


def test_a_failed_write_leaves_the_old_document_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileLiveStore(tmp_path)
    store.replace(b"old\n")
    fake = FailingFsync()
    monkeypatch.setattr(os, "fsync", fake)
    with pytest.raises(OSError, match="No space"):
        store.replace(b"new\n")
    assert fake.calls == 1
    assert store.read_current() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live-data.json"]


def test_a_reader_never_sees_a_partial_or_mixed_document(tmp_path: Path) -> None:
    small = b'{"v": "small"}\n'
    large = b'{"v": "' + b"L" * 200_000 + b'"}\n'
    store = FileLiveStore(tmp_path)
    store.replace(small)
    writer = subprocess.Popen([sys.executable, "-c", FLIPPER, str(tmp_path), "150"])
    seen = {small: 0, large: 0}
    while writer.poll() is None:
        content = store.read_current()
        assert content in seen, "a torn or mixed read"
        seen[content] += 1
    assert writer.returncode == 0
    assert seen[small] and seen[large]
    assert [p.name for p in tmp_path.iterdir()] == ["live-data.json"]
