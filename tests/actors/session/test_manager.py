"""The session manager: the one place a session directory is created."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from actors.session.manager import create_session_dir
from contracts import InvalidEvent, RecorderIOError


def test_opening_creates_a_private_directory_once(tmp_path: Path) -> None:
    assert create_session_dir(tmp_path, "u1", "s1") is True
    directory = tmp_path / "logs" / "users" / "u1" / "sessions"
    assert directory.is_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert create_session_dir(tmp_path, "u1", "s1") is False
    assert create_session_dir(tmp_path, "u1", "s2") is False  # one directory per user
    assert list(directory.iterdir()) == []  # no log is created by opening


@pytest.mark.parametrize("bad", ["..", "a/b", "", "x" * 129, "a\x00b"])
def test_unsafe_ids_create_nothing(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidEvent):
        create_session_dir(tmp_path, bad, "s1")
    with pytest.raises(InvalidEvent):
        create_session_dir(tmp_path, "u1", bad)
    assert list(tmp_path.iterdir()) == []


def test_something_else_in_the_directory_place_is_an_error(tmp_path: Path) -> None:
    users = tmp_path / "logs" / "users" / "u1"
    users.mkdir(parents=True)
    (users / "sessions").write_text("not a directory")
    with pytest.raises(RecorderIOError) as info:
        create_session_dir(tmp_path, "u1", "s1")
    assert str(tmp_path) not in info.value.message


def test_symlinked_session_directory_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "logs" / "users" / "u1"
    users.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (users / "sessions").symlink_to(elsewhere)
    with pytest.raises(RecorderIOError):
        create_session_dir(tmp_path, "u1", "s1")


def test_a_file_blocking_the_parents_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("in the way")
    with pytest.raises(RecorderIOError):
        create_session_dir(tmp_path, "u1", "s1")
