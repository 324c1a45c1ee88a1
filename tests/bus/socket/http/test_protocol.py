"""The HTTP protocol in process: routing, order of answers that finish out of order, streams.

The endpoint serves routes given here on a real Unix socket (through the server's
first-bytes hook); clients are raw sockets and httpx.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from support.http_service import parse_responses, request_bytes
from support.socket_ops import short_dir

from bus import (
    HttpEndpoint,
    HttpError,
    HttpLines,
    HttpRequest,
    HttpResponse,
    HttpStream,
    Part,
    Route,
    serve_unix,
)
from bus._socket.http import Router, is_http  # layering: white-box, the module under test
from contracts import ActorbusError, HttpConfig, InvalidEvent

pytestmark = pytest.mark.anyio


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = short_dir()
    yield directory / "s.sock"
    shutil.rmtree(directory, ignore_errors=True)


def test_the_first_byte_tells_http_from_the_two_framings() -> None:
    assert is_http(b"GET / HTTP/1.1\r\n")
    assert is_http(b"P")
    assert not is_http(b'{"op":"ping"}\n')
    assert not is_http(b"\x00\x00\x00\x10")
    assert not is_http(b"")


def test_the_router_answers_404_and_405_with_allow() -> None:
    def handler(request: HttpRequest) -> None:
        return None

    router = Router(
        [
            Route("GET", "/a/{x}", handler),
            Route("POST", "/a/{x}", handler),
            Route("PUT", "/b", handler),
        ]
    )
    route, params = router.match("HEAD", "/a/1")
    assert (route.method, params) == ("GET", {"x": "1"})
    with pytest.raises(HttpError) as missing:
        router.match("GET", "/a/1/2")
    assert missing.value.status == 404
    with pytest.raises(HttpError) as wrong:
        router.match("GET", "/b")
    assert (wrong.value.status, wrong.value.headers) == (405, {"Allow": "PUT"})


async def _serve(path: Path, routes: list[Route]) -> Any:
    endpoint = HttpEndpoint(routes, HttpConfig(), max_body_bytes=1 << 16)
    return endpoint, serve_unix(path, {}, hand_over=endpoint.hand_over)


async def test_answers_that_finish_out_of_order_leave_in_request_order(sock_path: Path) -> None:
    loop = asyncio.get_running_loop()
    gates: dict[str, asyncio.Future[Any]] = {}

    def slow(request: HttpRequest) -> asyncio.Future[Any]:
        fut = gates[request.params["name"]] = loop.create_future()
        return fut

    endpoint, served = await _serve(sock_path, [Route("GET", "/wait/{name}", slow, status=202)])
    async with served:
        async with await anyio.connect_unix(sock_path) as stream:
            await stream.send(b"".join(request_bytes("GET", f"/wait/{n}") for n in "abc"))
            while len(gates) < 3:
                await anyio.sleep(0.01)
            gates["c"].set_result({"n": "c"})
            gates["b"].set_exception(InvalidEvent("b failed"))
            gates["a"].set_result({"n": "a"})
            data = b""
            while len(parse_responses(data)) < 3:
                data += await stream.receive()
        answers = parse_responses(data)
        assert [a.status for a in answers] == [202, 400, 202]
        assert [a.body for a in answers] == [
            b'{"n":"a"}',
            b'{"error":{"code":"InvalidEvent","message":"b failed"}}',
            b'{"n":"c"}',
        ]
        await endpoint.aclose()


async def test_a_batch_route_gets_the_requests_read_together(sock_path: Path) -> None:
    loop = asyncio.get_running_loop()
    calls: list[int] = []
    reply: asyncio.Future[list[Any]] = loop.create_future()

    def one(request: HttpRequest) -> Any:
        calls.append(1)
        return {"one": True}

    def many(requests: list[HttpRequest]) -> list[Any]:
        calls.append(len(requests))
        return [Part(reply, i) for i in range(len(requests))]

    route = Route("POST", "/b", one, status=201, consumes=("application/json",), many=many)
    endpoint, served = await _serve(sock_path, [route])
    async with served:
        async with await anyio.connect_unix(sock_path) as stream:
            await stream.send(b"".join(request_bytes("POST", "/b", b"{}") for _ in range(4)))
            while not calls:
                await anyio.sleep(0.01)
            reply.set_result([{"i": 0}, InvalidEvent("no"), {"i": 2}, {"i": 3}])
            data = b""
            while len(parse_responses(data)) < 4:
                data += await stream.receive()
        assert calls == [4]
        assert [a.status for a in parse_responses(data)] == [201, 400, 201, 201]
        await endpoint.aclose()


async def test_lines_and_streams_are_chunked_in_order(sock_path: Path) -> None:
    loop = asyncio.get_running_loop()
    later: asyncio.Future[Any] = loop.create_future()

    def render(value: Any, error: ActorbusError | None) -> bytes:
        return b"%s\n" % (error.code.encode() if error else str(value).encode())

    def lines(request: HttpRequest) -> HttpLines:
        loop.call_later(0.05, later.set_result, "late")
        return HttpLines([1, InvalidEvent("x"), later, 4], render)

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(3):
            await anyio.sleep(0.01)
            yield b"c%d\n" % n

    def stream(request: HttpRequest) -> HttpStream:
        return HttpStream(chunks())

    def plain(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, b"after")

    routes = [Route("GET", "/lines", lines), Route("GET", "/stream", stream)]
    endpoint, served = await _serve(sock_path, [*routes, Route("GET", "/plain", plain)])
    async with served:
        transport = httpx.AsyncHTTPTransport(uds=os.fspath(sock_path))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            got = await client.get("/lines")
            assert got.text == "1\nInvalidEvent\nlate\n4\n"
            assert got.headers["transfer-encoding"] == "chunked"
            assert (await client.get("/stream")).text == "c0\nc1\nc2\n"
            assert (await client.get("/plain")).text == "after"
        await endpoint.aclose()
