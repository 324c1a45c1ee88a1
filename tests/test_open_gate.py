from __future__ import annotations

import asyncio
import shutil
from typing import Any

import msgspec
import pytest
from service_support import event, exchange, short_root

from actorbus import open_service
from actorbus._open_gate import OpenGate, session_key

pytestmark = pytest.mark.anyio


async def test_appends_pipelined_behind_their_session_open_are_all_recorded_in_order() -> None:
    root = short_root()
    try:
        async with open_service(root) as service:
            requests: list[Any] = [
                {"id": 0, "op": "session.open", "user_id": "u", "session_id": "s"}
            ]
            requests += [
                {"id": i, "op": "append", "event": msgspec.Raw(event("u", "s", f"r{i}"))}
                for i in range(1, 101)
            ]
            requests.append(
                {"id": 101, "op": "append.batch", "events": [msgspec.Raw(event("u", "s", "b"))]}
            )
            answers = await exchange(service.socket_path, "jsonl", requests)
        assert answers[0]["status"] == 201
        assert [a["status"] for a in answers[1:101]] == [201] * 100
        assert answers[101]["result"]["results"][0]["status"] == 201
        log = root / "logs" / "users" / "u" / "sessions" / "s.jsonl"
        ids = [msgspec.json.decode(x)["event"]["record_id"] for x in log.read_bytes().splitlines()]
        assert ids == [f"r{i}" for i in range(1, 101)] + ["b"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_only_appends_to_the_session_being_opened_are_held_and_they_go_in_order() -> None:
    loop = asyncio.get_running_loop()
    submitted: list[Any] = []

    async def answer(e: Any) -> Any:
        return e

    def submit(e: Any) -> Any:
        submitted.append(e)
        return answer(e)

    gate = OpenGate(loop, submit)
    assert not gate
    opening: asyncio.Future[Any] = loop.create_future()
    gate.opening(("u", "s"), opening)
    assert gate
    first = gate.hold(event("u", "s", "1"))
    second = gate.hold({"user_id": "u", "session_id": "s", "record_id": "2"})
    assert gate.hold(event("u", "other", "3")) is None
    assert gate.hold(b"not json") is None
    waits = gate.waits([event("u", "s", "4"), event("u", "s", "5")])
    assert first is not None and second is not None and len(waits) == 1
    assert not submitted
    opening.set_result(True)
    assert await first == event("u", "s", "1")
    assert (await second)["record_id"] == "2"
    await waits[0]
    assert len(submitted) == 2 and not gate


async def test_an_append_refused_when_its_held_turn_comes_gets_its_own_error() -> None:
    loop = asyncio.get_running_loop()

    def submit(e: Any) -> Any:
        raise ValueError("refused")

    gate = OpenGate(loop, submit)
    opening: asyncio.Future[Any] = loop.create_future()
    gate.opening(("u", "s"), opening)
    held = gate.hold(event("u", "s", "1"))
    assert held is not None
    opening.set_exception(RuntimeError("the open failed"))
    with pytest.raises(ValueError, match="refused"):
        await held
    assert isinstance(opening.exception(), RuntimeError)


def test_session_key_reads_the_ids_of_bytes_and_maps_only_when_both_are_strings() -> None:
    assert session_key(event("u", "s", "r")) == ("u", "s")
    assert session_key({"user_id": "u", "session_id": "s"}) == ("u", "s")
    assert session_key({"user_id": "u", "session_id": 3}) is None
    assert session_key(b"[1,2]") is None
    assert session_key(5) is None
