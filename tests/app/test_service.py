from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from support.service import event, short_root, start_serve, stop

from actorbus import open_service
from bus import Client, SocketInUse
from contracts import Config, InvalidRequest, LiveDataConfig, ScopeConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def root() -> Iterator[Path]:
    path = short_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_the_root_layout_is_created_private_and_without_any_session_directory(
    root: Path,
) -> None:
    async with open_service(root / "fresh") as service:
        base = service.root
        for name in ("logs/users", "data", "locks", "cache", "run"):
            assert (base / name).is_dir()
        for name in ("logs/users", "locks", "cache", "run"):
            assert stat.S_IMODE((base / name).stat().st_mode) == 0o700
        assert list((base / "logs" / "users").iterdir()) == []
        assert service.socket_path == base / "run" / "actorbus.sock"
        assert stat.S_IMODE(service.socket_path.stat().st_mode) == 0o600
    assert not (root / "fresh" / "run" / "actorbus.sock").exists()


async def test_an_embedded_producer_and_a_socket_client_share_one_writer_per_session(
    root: Path,
) -> None:
    async with open_service(root) as service:
        recorder = service.recorder
        await recorder.open_session("u", "s")
        await recorder.append(event("u", "s", "inproc-0"))
        async with await Client.connect(service.socket_path) as client:
            await client.request("append", event=msgspec.json.decode(event("u", "s", "socket-0")))
        await recorder.append(event("u", "s", "inproc-1"))
        lines = [line async for line in recorder.replay("u", "s")]
        stats = service.statistics()
    ids = [msgspec.json.decode(line)["event"]["record_id"] for line in lines]
    assert ids == ["inproc-0", "socket-0", "inproc-1"]
    writers = next(a for a in stats["bus"].actors if a.name == "SessionWriter")
    assert writers.activations == 1


async def test_a_service_that_does_not_listen_runs_the_actors_only(root: Path) -> None:
    async with open_service(root, listen=False) as service:
        assert service.socket_path is None and service.server is None
        await service.recorder.open_session("u", "s")
        result = await service.recorder.append(event("u", "s", "r"))
        assert result.record_id == "r"
        stats = service.statistics()
        assert stats["server"] is None and stats["service"].listening is False
    assert not (root / "run" / "actorbus.sock").exists()


async def test_an_unusable_configuration_is_one_typed_error_not_a_group(root: Path) -> None:
    overlapping = LiveDataConfig(scopes={"x": ScopeConfig(owns=["extensions.items"])})
    with pytest.raises(InvalidRequest, match="overlap"):
        async with open_service(root, Config(live_data=overlapping)):
            pass
    assert not (root / "run" / "actorbus.sock").exists()


async def test_a_socket_path_too_long_for_unix_sockets_is_refused_before_binding(
    root: Path,
) -> None:
    long_path = root / ("x" * 120) / "s.sock"
    with pytest.raises(InvalidRequest, match="over the 107 a Unix socket allows"):
        async with open_service(root, socket_path=long_path):
            pass


async def test_a_second_service_on_the_same_socket_is_refused_and_the_first_keeps_serving(
    root: Path,
) -> None:
    async with open_service(root) as first:
        with pytest.raises(SocketInUse):
            async with open_service(root):
                pass
        async with await Client.connect(first.socket_path) as client:
            assert await client.request("ping") == {"pong": True}


async def test_an_error_raised_in_the_block_comes_out_bare(root: Path) -> None:
    with pytest.raises(KeyError):
        async with open_service(root, listen=False):
            raise KeyError("mine")


async def test_open_service_on_a_root_another_service_serves_says_how_to_go_on() -> None:
    root = short_root()
    proc = await anyio.to_thread.run_sync(start_serve, root)
    try:
        with pytest.raises(SocketInUse) as raised:
            async with open_service(root):
                pass  # pragma: no cover
        message = raised.value.message
        assert "another actorbus server is running on" in message
        assert "stop that service first" in message and "another root" in message
        # One typed error, not a chain of the runtime's internals.
        assert raised.value.__cause__ is None and raised.value.__suppress_context__
    finally:
        await anyio.to_thread.run_sync(stop, proc)
        shutil.rmtree(root, ignore_errors=True)
