from __future__ import annotations

import asyncio
import logging
import os
import shutil
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec
import pytest
from support.socket_ops import SECRET, make_handlers, short_dir

from bus import FrameReader, FrameWriter, Server, Topic, serve_unix
from contracts import Framing, InvalidRequest, ServerConfig, load_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = short_dir()
    yield directory / "s.sock"
    shutil.rmtree(directory, ignore_errors=True)


class Raw:
    """A raw client: frames built by hand, answers decoded as plain maps."""

    def __init__(self, stream: anyio.abc.SocketStream, framing: Framing) -> None:
        self.stream = stream
        self.framing = framing
        self.reader = FrameReader(1 << 24, framing)
        self.writer = FrameWriter(framing)
        self.decode = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
        self.ready: deque[Any] = deque()

    async def send(self, *messages: Any) -> None:
        await self.stream.send(b"".join(self.writer.encode(m) for m in messages))

    async def read(self, count: int = 1) -> list[Any]:
        while len(self.ready) < count:
            self.reader.feed(await self.stream.receive())
            self.ready.extend(self.decode(f) for f in self.reader.frames())
        return [self.ready.popleft() for _ in range(count)]

    async def closed_by_server(self) -> bool:
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True
        self.reader.feed(data)
        self.ready.extend(self.decode(f) for f in self.reader.frames())
        return False


@asynccontextmanager
async def connect(path: Path, framing: Framing = "msgpack") -> AsyncIterator[Raw]:
    stream = await anyio.connect_unix(path)
    try:
        yield Raw(stream, framing)
    finally:
        await stream.aclose()


class Running:
    def __init__(self, server: Server, gates: list[asyncio.Future[Any]], topic: Topic) -> None:
        self.server = server
        self.gates = gates
        self.topic = topic


@asynccontextmanager
async def running(path: Path, **config: Any) -> AsyncIterator[Running]:
    gates: list[asyncio.Future[Any]] = []
    topic = Topic("test")
    handlers = make_handlers(topic, gates)
    with anyio.fail_after(20):
        async with serve_unix(path, handlers, ServerConfig(**config)) as server:
            yield Running(server, gates, topic)


async def wait_until(predicate: Any) -> None:
    while not predicate():
        await anyio.sleep(0.005)


def ok(rid: Any, result: Any, status: int = 200) -> dict[str, Any]:
    return {"id": rid, "ok": True, "status": status, "result": result}


def err(rid: Any, code: str, status: int) -> dict[str, Any]:
    return {"id": rid, "ok": False, "status": status, "error": {"code": code}}


def shape(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer with the error message dropped (messages are checked separately)."""
    if "error" in answer:
        return {**answer, "error": {"code": answer["error"]["code"]}}
    return answer


# ---- framings and order ------------------------------------------------------------


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
async def test_both_framings_are_answered_on_the_same_socket(sock_path: Path, framing: Any) -> None:
    async with running(sock_path), connect(sock_path, framing) as raw:
        await raw.send({"id": "a", "op": "ping"}, {"id": 2, "op": "echo", "value": [1, {"k": "v"}]})
        assert await raw.read(2) == [ok("a", {"pong": True}), ok(2, [1, {"k": "v"}])]


async def test_pipelined_answers_keep_request_order_when_later_ones_finish_first(
    sock_path: Path,
) -> None:
    async with running(sock_path), connect(sock_path) as raw:
        await raw.send(
            {"id": 1, "op": "slow", "seconds": 0.2, "value": "first"},
            {"id": 2, "op": "echo", "value": "second"},
            {"id": 3, "op": "slow", "seconds": 0.05, "value": "third"},
            {"id": 4, "op": "created"},
        )
        answers = await raw.read(4)
    assert answers == [
        ok(1, "first"),
        ok(2, "second"),
        ok(3, "third"),
        ok(4, {"created": True}, 201),
    ]


async def test_a_thousand_pipelined_requests_come_back_in_order(sock_path: Path) -> None:
    async with running(sock_path), connect(sock_path, "jsonl") as raw:
        await raw.send(*({"id": i, "op": "add", "a": i, "b": 1} for i in range(1000)))
        answers = await raw.read(1000)
    assert answers == [ok(i, i + 1) for i in range(1000)]


async def test_the_id_is_echoed_exactly_as_sent(sock_path: Path) -> None:
    async with running(sock_path):
        stream = await anyio.connect_unix(sock_path)
        await stream.send(b'{"id": 1.50, "op":"ping"}\n{"op":"ping"}\n')
        data = b""
        while data.count(b"\n") < 2:
            data += await stream.receive()
        await stream.aclose()
    first, second = data.splitlines()
    assert first.startswith(b'{"id":1.50,')
    assert second.startswith(b'{"id":null,')


# ---- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
async def test_protocol_errors_get_their_codes_and_the_connection_stays_usable(
    sock_path: Path, framing: Any
) -> None:
    async with running(sock_path), connect(sock_path, framing) as raw:
        await raw.send(
            {"id": 1, "op": "no.such.op"},
            {"id": 2, "op": "add", "a": 1},
            {"id": 3, "op": "add", "a": 1, "b": "two"},
            {"id": 4, "op": "ping", "surprise": True},
            {"id": 5},
            {"id": 6, "op": "busy"},
            {"id": 7, "op": "fail"},
            {"id": 8, "op": "ping"},
        )
        answers = [shape(a) for a in await raw.read(8)]
    assert answers == [
        err(1, "UnknownOp", 404),
        err(2, "InvalidRequest", 400),
        err(3, "InvalidRequest", 400),
        err(4, "InvalidRequest", 400),
        err(5, "InvalidRequest", 400),
        err(6, "Overloaded", 503),
        err(7, "InternalError", 500),
        ok(8, {"pong": True}),
    ]


async def test_undecodable_frames_are_invalid_requests_while_the_framing_holds(
    sock_path: Path,
) -> None:
    deep = b"\x91" * 100_000 + b"\xc0"
    async with running(sock_path), connect(sock_path) as raw:
        for payload in (b"\xc1\xc1", b"", deep, msgspec.msgpack.encode([1, 2])):
            await raw.stream.send(struct.pack(">I", len(payload)) + payload)
        await raw.send({"id": "after", "op": "ping"})
        answers = [shape(a) for a in await raw.read(5)]
    assert answers == [err(None, "InvalidRequest", 400)] * 4 + [ok("after", {"pong": True})]


async def test_bad_json_lines_are_invalid_requests_and_the_next_line_is_answered(
    sock_path: Path,
) -> None:
    async with running(sock_path):
        stream = await anyio.connect_unix(sock_path)
        deep = b'{"id":2,"op":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
        await stream.send(b'{"id":1,"op":"ping",}\n' + deep + b'[1]\n{"id":4,"op":"ping"}\n')
        raw = Raw(stream, "jsonl")
        answers = [shape(a) for a in await raw.read(4)]
        await stream.aclose()
    assert answers == [
        err(None, "InvalidRequest", 400),
        err(None, "InvalidRequest", 400),
        err(None, "InvalidRequest", 400),
        ok(4, {"pong": True}),
    ]


async def test_an_unexpected_failure_is_500_and_neither_answer_nor_log_carries_request_content(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(sock_path), connect(sock_path, "jsonl") as raw:
        await raw.send({"id": 1, "op": "fail", "value": SECRET}, {"id": 2, "op": "ping"})
        failed, after = await raw.read(2)
    assert failed["status"] == 500
    assert failed["error"]["code"] == "InternalError"
    assert SECRET not in failed["error"]["message"]
    assert after == ok(2, {"pong": True})
    assert "RuntimeError" in caplog.text
    assert SECRET not in caplog.text


async def test_an_unencodable_result_is_500_and_the_connection_goes_on(sock_path: Path) -> None:
    async with running(sock_path) as run:
        run.server.handle("weird", lambda request: {"value": object()})
        async with connect(sock_path) as raw:
            await raw.send({"id": 1, "op": "weird"}, {"id": 2, "op": "ping"})
            answers = [shape(a) for a in await raw.read(2)]
    assert answers == [err(1, "InternalError", 500), ok(2, {"pong": True})]


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
async def test_an_oversized_frame_gets_413_then_the_connection_closes(
    sock_path: Path, framing: Any
) -> None:
    async with running(sock_path, max_frame_bytes=256), connect(sock_path, framing) as raw:
        await raw.send({"id": 1, "op": "ping"}, {"id": 2, "op": "echo", "value": "x" * 300})
        answers = [shape(a) for a in await raw.read(2)]
        assert answers == [ok(1, {"pong": True}), err(None, "FrameTooLarge", 413)]
        assert await raw.closed_by_server()


# ---- truncation, idle time and half-close --------------------------------------------


async def test_a_connection_stuck_mid_frame_is_closed_after_the_idle_timeout(
    sock_path: Path,
) -> None:
    async with running(sock_path, idle_timeout_s=0.2), connect(sock_path) as raw:
        await raw.send({"id": 1, "op": "ping"})
        await raw.stream.send(struct.pack(">I", 100) + b"\x82")
        first, timed_out = await raw.read(2)
        assert first == ok(1, {"pong": True})
        assert shape(timed_out) == err(None, "InvalidRequest", 400)
        assert "idle_timeout_s" in timed_out["error"]["message"]
        assert await raw.closed_by_server()


async def test_an_idle_connection_between_frames_stays_open(sock_path: Path) -> None:
    async with running(sock_path, idle_timeout_s=0.05), connect(sock_path) as raw:
        await anyio.sleep(0.3)
        await raw.send({"id": 1, "op": "ping"})
        assert await raw.read() == [ok(1, {"pong": True})]


async def test_a_half_closed_peer_gets_every_answer_then_the_close(sock_path: Path) -> None:
    async with running(sock_path), connect(sock_path) as raw:
        await raw.send(
            {"id": 1, "op": "slow", "seconds": 0.1, "value": "late"},
            {"id": 2, "op": "ping"},
        )
        await raw.stream.send_eof()
        assert await raw.read(2) == [ok(1, "late"), ok(2, {"pong": True})]
        assert await raw.closed_by_server()


async def test_a_peer_that_shuts_down_mid_frame_is_told_and_closed(sock_path: Path) -> None:
    async with running(sock_path), connect(sock_path, "jsonl") as raw:
        await raw.stream.send(b'{"id":1,"op":"ping"}\n{"id":2,"op":')
        await raw.stream.send_eof()
        first, truncated = await raw.read(2)
        assert first == ok(1, {"pong": True})
        assert shape(truncated) == err(None, "InvalidRequest", 400)
        assert await raw.closed_by_server()


# ---- bounds and backpressure ---------------------------------------------------------


async def test_the_per_connection_bound_stops_reading_until_answers_leave(
    sock_path: Path,
) -> None:
    async with running(sock_path, max_inflight_per_connection=4) as run:
        async with connect(sock_path) as raw:
            await raw.send(*({"id": i, "op": "gate"} for i in range(10)))
            await wait_until(lambda: len(run.gates) == 4)
            await anyio.sleep(0.1)
            assert len(run.gates) == 4
            assert run.server.inflight == 4
            run.gates[0].set_result("g0")
            await wait_until(lambda: len(run.gates) == 5)
            assert await raw.read() == [ok(0, "g0")]
            for i in range(1, 10):
                await wait_until(lambda i=i: len(run.gates) > i)
                run.gates[i].set_result(f"g{i}")
            assert await raw.read(9) == [ok(i, f"g{i}") for i in range(1, 10)]
        assert run.server.inflight == 0


async def test_the_total_bound_holds_across_connections(sock_path: Path) -> None:
    async with (
        running(sock_path, max_inflight_total=3) as run,
        connect(sock_path) as one,
        connect(sock_path) as two,
    ):
        await one.send(*({"id": i, "op": "gate"} for i in range(3)))
        await wait_until(lambda: len(run.gates) == 3)
        await two.send({"id": "x", "op": "gate"})
        await anyio.sleep(0.1)
        assert len(run.gates) == 3
        run.gates[0].set_result(0)
        await wait_until(lambda: len(run.gates) == 4)
        for fut in run.gates[1:]:
            fut.set_result(1)
        assert [a["id"] for a in await one.read(3)] == [0, 1, 2]
        assert await two.read() == [ok("x", 1)]


async def test_a_client_that_does_not_read_is_not_read_either(sock_path: Path) -> None:
    big = "y" * 60_000
    async with running(sock_path, max_inflight_per_connection=8) as run:
        async with connect(sock_path) as raw, anyio.create_task_group() as tg:
            # The sender blocks once both kernel buffers are full: run it aside.
            tg.start_soon(raw.send, *({"id": i, "op": "echo", "value": big} for i in range(200)))
            await wait_until(lambda: run.server.inflight >= 8)
            await anyio.sleep(0.1)
            assert run.server.inflight <= 8
            answers = await raw.read(200)
        assert [a["id"] for a in answers] == list(range(200))
        assert all(a["result"] == big for a in answers)


# ---- streams -------------------------------------------------------------------------


async def test_a_stream_sends_its_events_then_its_response(sock_path: Path) -> None:
    async with running(sock_path), connect(sock_path) as raw:
        await raw.send({"id": 9, "op": "stream", "count": 3}, {"id": 10, "op": "ping"})
        answers = await raw.read(5)
    assert answers == [
        {"op": "event", "id": 9, "data": 0},
        {"op": "event", "id": 9, "data": 1},
        {"op": "event", "id": 9, "data": 2},
        ok(9, {"events": 3}),
        ok(10, {"pong": True}),
    ]


async def test_a_stream_waits_for_the_answers_before_it(sock_path: Path) -> None:
    async with running(sock_path), connect(sock_path) as raw:
        await raw.send(
            {"id": 1, "op": "slow", "seconds": 0.1, "value": "before"},
            {"id": 2, "op": "stream", "count": 2},
        )
        answers = await raw.read(4)
    assert answers[0] == ok(1, "before")
    assert [a.get("op") for a in answers[1:3]] == ["event", "event"]


async def test_a_subscription_ends_cleanly_when_the_client_disconnects(sock_path: Path) -> None:
    async with running(sock_path) as run:
        async with connect(sock_path) as raw:
            await raw.send({"id": 1, "op": "follow"})
            await wait_until(lambda: run.topic.subscriber_count == 1)
            run.topic.publish({"n": 1})
            assert await raw.read() == [{"op": "event", "id": 1, "data": {"n": 1}}]
        await wait_until(lambda: run.topic.subscriber_count == 0)
        await wait_until(lambda: run.server.statistics().streams == 0)
        assert run.server.statistics().connections == 0


async def test_a_half_close_ends_a_subscription_with_a_final_answer(sock_path: Path) -> None:
    async with running(sock_path) as run, connect(sock_path) as raw:
        await raw.send({"id": 1, "op": "follow"})
        await wait_until(lambda: run.topic.subscriber_count == 1)
        run.topic.publish("a")
        run.topic.publish("b")
        assert len(await raw.read(2)) == 2
        await raw.stream.send_eof()
        assert await raw.read() == [ok(1, {"events": 2})]
        assert await raw.closed_by_server()
        assert run.topic.subscriber_count == 0


async def test_statistics_count_frames_errors_and_connections(sock_path: Path) -> None:
    async with running(sock_path) as run, connect(sock_path) as raw:
        await raw.send({"id": 1, "op": "nope"}, {"id": 2, "op": "stats"})
        _, stats = await raw.read(2)
        server = stats["result"]["server"]
        assert server["connections"] == 1
        assert server["frames_in"] == 2
        assert server["errors"] == {"UnknownOp": 1}
        assert stats["result"]["bus"] is None
        assert run.server.statistics().frames_out == 2


async def test_many_connections_at_once_each_get_their_own_answers(sock_path: Path) -> None:
    async def one(n: int) -> None:
        async with connect(sock_path, "jsonl" if n % 2 else "msgpack") as raw:
            await raw.send(*({"id": i, "op": "add", "a": n, "b": i} for i in range(50)))
            assert await raw.read(50) == [ok(i, n + i) for i in range(50)]

    async with running(sock_path), anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(one, n)


async def test_requests_read_after_a_pause_are_answered_even_when_nothing_waits_ahead(
    sock_path: Path,
) -> None:
    async with running(sock_path, max_inflight_per_connection=2) as run, connect(sock_path) as raw:
        await raw.send({"id": 0, "op": "gate"}, {"id": 1, "op": "gate"})
        await raw.send(*({"id": i, "op": "ping"} for i in range(2, 5)))
        await wait_until(lambda: len(run.gates) == 2)
        for fut in run.gates:
            fut.set_result("open")
        answers = await raw.read(5)
    assert answers == [ok(0, "open"), ok(1, "open")] + [ok(i, {"pong": True}) for i in range(2, 5)]


# ---- bytes bounds, stalls, half-close of finite streams, ids ------------------------


async def test_answers_are_produced_only_while_the_peer_reads(sock_path: Path) -> None:
    # Small requests, large answers, never read: held in bytes, not in answers.
    bound = 256 * 1024
    async with (
        running(sock_path, max_queued_bytes_per_connection=bound) as run,
        connect(sock_path) as raw,
    ):
        await raw.send(*({"id": i, "op": "blob", "size": 100_000} for i in range(400)))
        await wait_until(lambda: run.server.statistics().write_pauses >= 1)
        await anyio.sleep(0.3)
        stats = run.server.statistics()
        # At most the bound plus one answer, plus what requests being answered are
        # expected to add (a sixteenth of the bound each while none was seen).
        assert 0 < stats.queued_bytes <= bound + 100_200 + bound
        assert stats.frames_out < 400  # the rest wait, unencoded
        answers = await raw.read(400)
        assert [a["id"] for a in answers] == list(range(400))
        assert all(len(a["result"]) == 100_000 for a in answers)
        await wait_until(lambda: run.server.statistics().queued_bytes == 0)


async def test_a_stream_waits_while_its_peer_does_not_read(sock_path: Path) -> None:
    bound = 64 * 1024
    async with (
        running(sock_path, max_queued_bytes_per_connection=bound) as run,
        connect(sock_path) as raw,
    ):
        await raw.send({"id": 1, "op": "follow"})
        await wait_until(lambda: run.topic.subscriber_count == 1)
        item = "z" * 10_000
        for _ in range(60):  # within the subscription's buffer of 64
            run.topic.publish(item)
            await anyio.sleep(0.005)  # one at a time: each could be written at once
        await anyio.sleep(0.2)
        stats = run.server.statistics()
        assert stats.frames_out < 60
        assert stats.queued_bytes <= bound + 256 * 10_100
        events = await raw.read(60)
        assert [e["data"] for e in events] == [item] * 60


_STALL = """
import os, signal, socket, sys, time
pid, fd = int(sys.argv[1]), int(sys.argv[2])
time.sleep(0.05)
os.kill(pid, signal.SIGSTOP)  # the whole process stalls, its loop inside its poll
try:
    client = socket.socket(fileno=fd)
    client.sendall(b'}\\n{"id":2,"op":"ping"}\\n')  # lands in the kernel's buffer
    client.detach()
    time.sleep(1.5)  # longer than idle_timeout_s
finally:
    os.kill(pid, signal.SIGCONT)
"""


@pytest.mark.allow_blocking  # the process is stopped on purpose: a stall past the timer
async def test_a_stall_past_the_idle_timeout_with_the_frame_in_the_kernel_is_answered(
    sock_path: Path,
) -> None:
    # The timeout leaves room for the helper to start (a loaded machine included)
    # before the timer would fire; the stall then outlasts it.
    async with running(sock_path, idle_timeout_s=1.0), connect(sock_path, "jsonl") as raw:
        await raw.stream.send(b'{"id":1,"op":"echo","value":"a"')
        await anyio.sleep(0.05)  # read: a frame started, its timer armed
        fd = raw.stream.extra(anyio.abc.SocketAttribute.raw_socket).fileno()
        helper = await anyio.open_process(
            [sys.executable, "-c", _STALL, str(os.getpid()), str(fd)], pass_fds=(fd,)
        )
        async with helper:
            assert await helper.wait() == 0
        assert await raw.read(2) == [ok(1, "a"), ok(2, {"pong": True})]


async def test_a_finite_stream_then_a_half_close_is_sent_in_full(sock_path: Path) -> None:
    async with running(sock_path), connect(sock_path) as raw:
        await raw.send({"id": 1, "op": "stream", "count": 5000}, {"id": 2, "op": "ping"})
        await raw.stream.send_eof()
        messages = await raw.read(5002)
        assert [m["data"] for m in messages[:5000]] == list(range(5000))
        assert messages[5000:] == [ok(1, {"events": 5000}), ok(2, {"pong": True})]
        assert await raw.closed_by_server()


@pytest.mark.parametrize("framing", ["jsonl", "msgpack"])
async def test_an_id_that_is_not_valid_utf8_is_answered_with_id_null(
    sock_path: Path, framing: Framing
) -> None:
    if framing == "jsonl":
        bad = b'{"id":"a\xff\xfe","op":"ping"}\n'
    else:
        body = b"\x82\xa2id\xa3a\xff\xfe\xa2op\xa4ping"
        bad = struct.pack(">I", len(body)) + body
    async with running(sock_path), connect(sock_path, framing) as raw:
        await raw.stream.send(bad)
        await raw.send({"id": "é", "op": "ping"})
        first, second = await raw.read(2)  # decoded: valid JSON / MessagePack
        assert shape(first) == err(None, "InvalidRequest", 400)
        assert "UTF-8" in first["error"]["message"]
        assert second == ok("é", {"pong": True})


@pytest.mark.parametrize("key", ["max_queued_bytes_per_connection", "max_queued_bytes_total"])
@pytest.mark.parametrize("value", [0, -5, 1 << 41])
def test_the_bytes_bounds_are_validated(key: str, value: int) -> None:
    with pytest.raises(InvalidRequest, match=key):
        load_config(f"[server]\n{key} = {value}\n")
    config = load_config(f"[server]\n{key} = {8 << 20}\n")
    assert getattr(config.server, key) == 8 << 20
