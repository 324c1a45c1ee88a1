from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.socket_ops import short_dir

from bus import Client, SocketInUse, serve_unix


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = short_dir()
    yield directory / "s.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.anyio
async def test_the_socket_is_private_to_its_owner(sock_path: Path) -> None:
    async with serve_unix(sock_path, {}):
        mode = os.stat(sock_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600


@pytest.mark.anyio
async def test_a_stale_socket_file_is_replaced(sock_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(sock_path))
    dead.close()  # the file stays; connecting to it is refused, as after a crash
    async with serve_unix(sock_path, {}), await Client.connect(sock_path) as client:
        assert await client.request("ping") == {"pong": True}


@pytest.mark.anyio
async def test_a_live_socket_of_another_program_is_never_taken_over(sock_path: Path) -> None:
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(os.fspath(sock_path))
    other.listen()
    try:
        with pytest.raises(SocketInUse, match="live server"):
            async with serve_unix(sock_path, {}):
                pass
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(os.fspath(sock_path))  # still the other program's socket
        probe.close()
    finally:
        other.close()


@pytest.mark.anyio
async def test_a_file_that_is_not_a_socket_is_left_alone(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(SocketInUse, match="not a socket"):
        async with serve_unix(sock_path, {}):
            pass
    assert sock_path.read_text() == "precious"


@pytest.mark.anyio
async def test_a_second_server_on_the_same_path_is_refused_and_the_first_keeps_serving(
    sock_path: Path,
) -> None:
    async with serve_unix(sock_path, {}):
        with pytest.raises(SocketInUse, match="running"):
            async with serve_unix(sock_path, {}):
                pass
        async with await Client.connect(sock_path) as client:
            assert await client.request("ping") == {"pong": True}


@pytest.mark.anyio
async def test_a_socket_directory_that_is_a_symlink_is_refused(sock_path: Path) -> None:
    real = sock_path.parent / "real"
    real.mkdir()
    link = sock_path.parent / "link"
    link.symlink_to(real)
    with pytest.raises(SocketInUse, match="directory is a symbolic link"):
        async with serve_unix(link / "s.sock", {}):
            pass
    assert list(real.iterdir()) == []


@pytest.mark.anyio
async def test_a_fifo_at_the_socket_lock_file_is_refused(sock_path: Path) -> None:
    os.mkfifo(f"{sock_path}.lock")
    with pytest.raises(SocketInUse, match="lock file is a FIFO"):
        async with serve_unix(sock_path, {}):
            pass
    assert not sock_path.exists()
