from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.service import event, exchange, short_root

from actorbus import open_service
from actors.session.order import SessionOrder, session_key

pytestmark = pytest.mark.anyio


@pytest.fixture
def root() -> Iterator[Path]:
    path = short_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def append(rid: int, record: str, session: str = "s") -> dict[str, Any]:
    return {"id": rid, "op": "append", "event": msgspec.Raw(event("u", session, record))}


def batch(rid: int, *records: tuple[str, str]) -> dict[str, Any]:
    events = [msgspec.Raw(event("u", session, record)) for session, record in records]
    return {"id": rid, "op": "append.batch", "events": events}


def logged(root: Path, session: str = "s") -> list[str]:
    path = root / "logs" / "users" / "u" / "sessions" / f"{session}.jsonl"
    return [msgspec.json.decode(x)["event"]["record_id"] for x in path.read_bytes().splitlines()]


async def test_appends_pipelined_behind_their_session_open_are_all_recorded_in_order(
    root: Path,
) -> None:
    opener = {"id": 0, "op": "session.open", "user_id": "u", "session_id": "s"}
    requests = [opener, *(append(i, f"r{i}") for i in range(1, 101))]
    async with open_service(root) as service:
        answers = await exchange(service.socket_path, "jsonl", requests)
    assert [a["status"] for a in answers] == [201] * 101
    assert logged(root) == [f"r{i}" for i in range(1, 101)]


async def test_appends_and_batches_pipelined_on_one_session_land_in_the_order_sent(
    root: Path,
) -> None:
    requests = [
        append(1, "a1"),
        batch(2, ("s", "b1"), ("t", "x1"), ("s", "b2")),
        append(3, "a2"),
        append(4, "y1", "t"),
        batch(5, ("s", "b3")),
        batch(6, ("t", "x2"), ("s", "b4")),
        append(7, "a3"),
    ]
    async with open_service(root) as service:
        await service.recorder.open_session("u", "s")
        await service.recorder.open_session("u", "t")
        for _ in range(3):  # a few rounds: any overtaking would show up
            answers = await exchange(service.socket_path, "jsonl", requests)
            assert all(a["ok"] for a in answers)
    assert logged(root) == ["a1", "b1", "b2", "a2", "b3", "b4", "a3"] * 3
    assert logged(root, "t") == ["x1", "y1", "x2"] * 3


async def test_an_append_waits_only_for_the_session_that_is_held() -> None:
    loop = asyncio.get_running_loop()
    submitted: list[Any] = []

    async def answer(e: Any) -> Any:
        return e

    def submit(e: Any) -> Any:
        submitted.append(e)
        return answer(e)

    order = SessionOrder(loop, submit)
    assert not order
    held = order.acquire([("u", "s")])
    assert held.ready.done()
    first = order.hold(event("u", "s", "1"))
    second = order.hold({"user_id": "u", "session_id": "s", "record_id": "2"})
    assert order.hold(event("u", "other", "3")) is None
    assert order.hold(b"not json") is None
    assert first is not None and second is not None and not submitted
    order.release(held)
    assert await first == event("u", "s", "1")
    assert (await second)["record_id"] == "2"
    assert len(submitted) == 2 and not order


async def test_a_batch_waits_for_what_arrived_before_it_on_each_of_its_sessions() -> None:
    loop = asyncio.get_running_loop()
    order = SessionOrder(loop, lambda e: asyncio.sleep(0, e))
    first = order.acquire([("u", "a")])
    second = order.acquire([("u", "b")])
    both = order.acquire([("u", "a"), ("u", "b")])
    later = order.acquire([("u", "b")])
    assert first.ready.done() and second.ready.done()
    assert not both.ready.done() and not later.ready.done()
    order.release(first)
    assert not both.ready.done()
    order.release(second)
    assert both.ready.done() and not later.ready.done()
    order.release(both)
    assert later.ready.done()
    order.release(later)
    assert not order


async def test_an_op_released_before_its_turn_leaves_the_queue_and_blocks_nothing() -> None:
    loop = asyncio.get_running_loop()
    order = SessionOrder(loop, lambda e: asyncio.sleep(0, e))
    head = order.acquire([("u", "s")])
    cancelled = order.acquire([("u", "s")])
    order.release(cancelled)
    assert cancelled.ready.cancelled()
    after = order.acquire([("u", "s")])
    order.release(head)
    assert after.ready.done()
    order.release(after)
    assert not order


async def test_an_append_refused_when_its_turn_comes_gets_its_own_error() -> None:
    loop = asyncio.get_running_loop()

    def submit(e: Any) -> Any:
        raise ValueError("refused")

    order = SessionOrder(loop, submit)
    held = order.acquire([("u", "s")])
    waiting = order.hold(event("u", "s", "1"))
    assert waiting is not None
    order.release(held)
    with pytest.raises(ValueError, match="refused"):
        await waiting


def test_session_key_reads_the_ids_of_bytes_and_maps_only_when_both_are_strings() -> None:
    assert session_key(event("u", "s", "r")) == ("u", "s")
    assert session_key({"user_id": "u", "session_id": "s"}) == ("u", "s")
    assert session_key({"user_id": "u", "session_id": 3}) is None
    assert session_key(b"[1,2]") is None
    assert session_key(5) is None
