from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from support.socket_ops import make_handlers, short_dir

from bus import Client, ClientCodec, ConnectionBroken, ConnectionClosed, Topic, serve_unix
from contracts import (
    FrameTooLarge,
    InternalError,
    InvalidRequest,
    Overloaded,
    ServerConfig,
    UnknownOp,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = short_dir()
    yield directory / "s.sock"
    shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def served(path: Path, topic: Topic | None = None, **config: Any) -> AsyncIterator[None]:
    with anyio.fail_after(20):
        async with serve_unix(path, make_handlers(topic), ServerConfig(**config)):
            yield


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
async def test_a_request_returns_its_result(sock_path: Path, framing: Any) -> None:
    async with served(sock_path), await Client.connect(sock_path, framing=framing) as client:
        assert await client.request("ping") == {"pong": True}
        assert await client.request("add", a=40, b=2) == 42
        assert await client.request("echo", value={"nested": [1, "two"]}) == {"nested": [1, "two"]}
        assert await client.request("created") == {"created": True}


@pytest.mark.parametrize(
    ("op", "fields", "error"),
    [
        ("nope", {}, UnknownOp),
        ("add", {"a": 1}, InvalidRequest),
        ("busy", {}, Overloaded),
        ("fail", {}, InternalError),
    ],
)
async def test_an_error_answer_is_raised_as_its_own_class(
    sock_path: Path, op: str, fields: dict[str, Any], error: type[Exception]
) -> None:
    async with served(sock_path), await Client.connect(sock_path) as client:
        with pytest.raises(error) as caught:
            await client.request(op, **fields)
        assert type(caught.value) is error
        assert await client.request("ping") == {"pong": True}


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
async def test_a_pipeline_returns_outcomes_in_order_with_errors_in_place(
    sock_path: Path, framing: Any
) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [("add", {"a": i, "b": 0}) for i in range(3000)]
    requests[5] = ("nope", {})
    requests[2000] = ("slow", {"seconds": 0.05, "value": "slow"})
    async with served(sock_path), await Client.connect(sock_path, framing=framing) as client:
        outcomes = await client.pipeline(requests, window=64)
    assert isinstance(outcomes[5], UnknownOp)
    assert outcomes[2000] == "slow"
    assert [o for i, o in enumerate(outcomes) if i not in (5, 2000)] == [
        i for i in range(3000) if i not in (5, 2000)
    ]


async def test_a_subscription_yields_items_until_the_server_ends_it(sock_path: Path) -> None:
    async with served(sock_path), await Client.connect(sock_path) as client:
        assert [item async for item in client.subscribe("stream", count=4)] == [0, 1, 2, 3]
        assert await client.request("ping") == {"pong": True}


async def test_a_refused_subscription_raises_its_error(sock_path: Path) -> None:
    async with served(sock_path), await Client.connect(sock_path) as client:
        with pytest.raises(UnknownOp):
            async for _ in client.subscribe("no.such.stream"):
                pass


async def test_leaving_a_subscription_early_closes_the_client_and_the_subscription(
    sock_path: Path,
) -> None:
    topic = Topic("t")
    async with served(sock_path, topic):
        client = await Client.connect(sock_path)
        got: list[Any] = []

        async def follow() -> None:
            async with aclosing(client.subscribe("follow")) as items:
                async for item in items:
                    got.append(item)
                    break

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            while topic.subscriber_count == 0:
                await anyio.sleep(0.005)
            topic.publish("first")
        assert got == ["first"]
        with pytest.raises(ConnectionClosed):
            await client.request("ping")
        while topic.subscriber_count:
            await anyio.sleep(0.005)


async def test_connecting_where_nothing_listens_is_connection_broken(sock_path: Path) -> None:
    with pytest.raises(ConnectionBroken) as caught:
        await Client.connect(sock_path)
    assert isinstance(caught.value.__cause__, OSError)


async def test_a_closed_client_refuses_further_calls(sock_path: Path) -> None:
    async with served(sock_path):
        client = await Client.connect(sock_path)
        await client.aclose()
        await client.aclose()
        with pytest.raises(ConnectionClosed):
            await client.request("ping")
        with pytest.raises(ConnectionClosed):
            await client.pipeline([("ping", {})])


async def test_the_server_closing_the_connection_breaks_the_next_request(sock_path: Path) -> None:
    async with served(sock_path, max_frame_bytes=128), await Client.connect(sock_path) as client:
        with pytest.raises(FrameTooLarge):
            await client.request("echo", value="x" * 200)
        with pytest.raises(ConnectionBroken):
            await client.request("ping")


async def test_a_cancelled_request_does_not_desynchronise_the_client(sock_path: Path) -> None:
    async with served(sock_path), await Client.connect(sock_path) as client:
        with anyio.move_on_after(0.05):
            await client.request("slow", seconds=0.3, value="abandoned")
        assert await client.request("echo", value="fresh") == "fresh"


async def test_concurrent_callers_on_one_client_each_get_their_own_answer(
    sock_path: Path,
) -> None:
    results: dict[int, Any] = {}
    async with served(sock_path), await Client.connect(sock_path) as client:

        async def call(n: int) -> None:
            results[n] = await client.request("add", a=n, b=n)

        async with anyio.create_task_group() as tg:
            for n in range(30):
                tg.start_soon(call, n)
    assert results == {n: 2 * n for n in range(30)}


async def test_fields_named_id_or_op_are_refused_before_sending(sock_path: Path) -> None:
    async with served(sock_path), await Client.connect(sock_path) as client:
        with pytest.raises(InvalidRequest):
            await client.request("echo", id=3)
        assert await client.request("ping") == {"pong": True}


def test_the_codec_treats_a_frame_that_is_not_a_message_as_a_broken_connection() -> None:
    codec = ClientCodec("jsonl")
    with pytest.raises(ConnectionBroken):
        codec.feed(b"not json\n")


def test_the_codec_refuses_an_answer_to_another_request() -> None:
    codec = ClientCodec("jsonl")
    codec.feed(msgspec.json.encode({"id": 9, "ok": True, "status": 200, "result": 1}) + b"\n")
    with pytest.raises(ConnectionBroken):
        codec.outcome(codec.ready.popleft(), 4)


def test_the_codec_skips_answers_to_abandoned_requests_and_stray_events() -> None:
    codec = ClientCodec("msgpack")
    buffer = bytearray()
    first = codec.add_request("ping", {}, buffer)
    second = codec.add_request("ping", {}, buffer)
    assert second == first + 1
    codec.feed(
        b"".join(
            len(p).to_bytes(4, "big") + p
            for p in (
                msgspec.msgpack.encode({"id": first, "ok": True, "status": 200, "result": 0}),
                msgspec.msgpack.encode({"op": "event", "id": 77, "data": 1}),
                msgspec.msgpack.encode({"id": second, "ok": True, "status": 200, "result": 2}),
            )
        )
    )
    stale = [codec.is_stale(m, second) for m in codec.ready]
    assert stale == [True, True, False]


def test_an_unknown_framing_is_refused() -> None:
    with pytest.raises(ValueError, match="framing"):
        ClientCodec("xml")  # type: ignore[arg-type]


def test_a_pipeline_plan_keeps_its_window_and_matches_answers_in_order() -> None:
    codec = ClientCodec("jsonl")
    plan = codec.pipeline([("echo", {"value": i}) for i in range(10)], 4)
    first = plan.to_send()
    assert first is not None and first.count(b"\n") == 4  # the window, no more
    assert plan.to_send() is None

    def answer(rid: int, ok: bool = True) -> bytes:
        body = {"id": rid, "ok": ok, "status": 200 if ok else 404}
        body.update({"result": rid} if ok else {"error": {"code": "UnknownOp", "message": "x"}})
        return msgspec.json.encode(body) + b"\n"

    codec.feed(answer(1) + answer(0))  # the second answers an abandoned request
    for message in list(codec.ready):
        plan.take(message)
    codec.ready.clear()
    assert plan.outcomes == [1]
    assert plan.to_send() is None  # three in flight: more than half the window
    codec.feed(answer(2, ok=False))
    plan.take(codec.ready.popleft())
    refill = plan.to_send()
    assert refill is not None and refill.count(b"\n") == 2  # back up to the window
    rid = 3
    while not plan.done:
        codec.feed(answer(rid))
        plan.take(codec.ready.popleft())
        rid += 1
        plan.to_send()  # the refills, as the window frees
    assert plan.outcomes[0] == 1 and isinstance(plan.outcomes[1], UnknownOp)
    assert plan.outcomes[2:] == list(range(3, 11))


def test_a_stream_message_is_an_item_its_end_or_not_the_streams() -> None:
    codec = ClientCodec("jsonl")
    rid = codec.add_request("subscribe", {}, bytearray())
    codec.feed(
        b'{"op":"event","id":%d,"data":"a"}\n' % rid
        + b'{"op":"event","id":99,"data":"b"}\n'
        + b'{"id":%d,"ok":true,"status":200,"result":null}\n' % (rid - 1)
        + b'{"id":%d,"ok":false,"status":500,"error":{"code":"InternalError"}}\n' % rid
    )
    steps = [codec.stream_message(m, rid) for m in codec.ready]
    assert steps[:3] == [(True, "a"), None, None]
    assert steps[3] is not None and steps[3][0] is False
    assert isinstance(steps[3][1], InternalError)
