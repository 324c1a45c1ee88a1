from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from support.service import event, short_root

from actorbus import Service, open_service
from bus import Client, FrameReader, FrameWriter
from contracts import Framing, MissingSessionPath, ShuttingDown

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving() -> AsyncIterator[Service]:
    root = short_root()
    try:
        async with open_service(root) as service:
            await service.recorder.open_session("u", "s")
            yield service
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("framing", ["jsonl", "msgpack"])
async def test_subscribe_streams_each_envelope_appended_after_it_started(framing: Framing) -> None:
    got: list[dict[str, Any]] = []

    async def watch(watcher: Client) -> None:
        stream = watcher.subscribe("subscribe", user_id="u", session_id="s")
        async with aclosing(stream):  # closed in this task, which holds the client's lock
            async for item in stream:
                got.append(item)
                if len(got) == 5:
                    return

    async with serving() as service:
        assert service.server is not None
        await service.recorder.append(event("u", "s", "before"))
        async with (
            await Client.connect(service.socket_path, framing=framing) as watcher,
            await Client.connect(service.socket_path) as producer,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(watch, watcher)
            with anyio.fail_after(10):
                while service.server.statistics().streams == 0:
                    await anyio.sleep(0.01)
            acks = [await producer.request("append", event=_ids(f"r{i}")) for i in range(5)]
    assert [e["event"]["record_id"] for e in got] == [f"r{i}" for i in range(5)]
    assert [e["recorded_at"] for e in got] == [a["recorded_at"] for a in acks]


def _ids(record_id: str) -> dict[str, str]:
    return {"record_id": record_id, "user_id": "u", "session_id": "s", "source": "t"}


async def test_from_start_replays_the_log_byte_for_byte_then_follows() -> None:
    raw = b'{"record_id":"old","user_id":"u","session_id":"s","source":"t","v":1.50}'
    async with serving() as service:
        await service.recorder.append(raw)
        path = service.socket_path
        assert path is not None
        async with await anyio.connect_unix(path) as stream:
            request = {"id": 9, "op": "subscribe", "user_id": "u", "session_id": "s"}
            await stream.send(FrameWriter("jsonl").encode({**request, "from_start": True}))
            reader = FrameReader(1 << 20, "jsonl")
            lines: list[bytes] = []
            await service.recorder.append(event("u", "s", "new"))
            with anyio.fail_after(10):
                while len(lines) < 2:
                    reader.feed(await stream.receive())
                    lines.extend(bytes(f) for f in reader.frames())
        assert lines[0].startswith(b'{"op":"event","id":9,"data":{"recorded_at":"')
        assert lines[0].endswith(b'"event":' + raw + b"}}")
        assert b'"record_id":"new"' in lines[1]


async def test_without_follow_the_stream_replays_what_is_recorded_and_ends() -> None:
    async with serving() as service:
        for i in range(3):
            await service.recorder.append(event("u", "s", f"r{i}"))
        async with await Client.connect(service.socket_path) as client:
            items = [
                item
                async for item in client.subscribe(
                    "subscribe", user_id="u", session_id="s", follow=False
                )
            ]
            assert await client.request("ping") == {"pong": True}
    assert [item["event"]["record_id"] for item in items] == ["r0", "r1", "r2"]


async def test_a_client_half_close_ends_the_stream_with_its_count() -> None:
    async with serving() as service:
        path = service.socket_path
        assert path is not None
        async with await anyio.connect_unix(path) as stream:
            request = {"id": 1, "op": "subscribe", "user_id": "u", "session_id": "s"}
            await stream.send(FrameWriter("jsonl").encode({**request, "from_start": True}))
            await service.recorder.append(event("u", "s", "r"))
            reader = FrameReader(1 << 20, "jsonl")
            frames: list[dict[str, object]] = []
            with anyio.fail_after(10):
                while not frames:
                    reader.feed(await stream.receive())
                    frames.extend(msgspec.json.decode(f) for f in reader.frames())
                await stream.send_eof()
                while len(frames) < 2:
                    reader.feed(await stream.receive())
                    frames.extend(msgspec.json.decode(f) for f in reader.frames())
        assert frames[1] == {"id": 1, "ok": True, "status": 200, "result": {"events": 1}}


async def test_subscribing_to_a_session_never_opened_is_409() -> None:
    async with serving() as service, await Client.connect(service.socket_path) as client:
        with pytest.raises(MissingSessionPath):
            async for _ in client.subscribe("subscribe", user_id="ghost", session_id="s"):
                pass


async def test_shutdown_ends_a_subscription_with_503_shutting_down() -> None:
    root = short_root()
    outcome: list[BaseException] = []

    async def watch(client: Client) -> None:
        try:
            async for _ in client.subscribe("subscribe", user_id="u", session_id="s"):
                pass
        except Exception as exc:
            outcome.append(exc)

    try:
        async with anyio.create_task_group() as tg, open_service(root) as service:
            assert service.server is not None
            await service.recorder.open_session("u", "s")
            client = await Client.connect(service.socket_path)
            tg.start_soon(watch, client)
            with anyio.fail_after(10):
                while service.server.statistics().streams == 0:
                    await anyio.sleep(0.01)
        await client.aclose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ShuttingDown)
