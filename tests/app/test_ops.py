from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from support.service import event, exchange, short_root

from actorbus import Service, open_service
from actors import session_path
from bus import Client, FrameReader
from contracts import (
    BusConfig,
    Config,
    EnrichmentConfig,
    Framing,
    LiveDataConfig,
    LockBusy,
    ProviderConfig,
    RecorderConfig,
    ServerConfig,
)

pytestmark = pytest.mark.anyio

FRAMINGS: list[Framing] = ["jsonl", "msgpack"]
DOC = {"schema_version": 1, "extensions": {"items": {}}}
TREND = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}


@asynccontextmanager
async def serving(config: Config | None = None) -> AsyncIterator[Service]:
    root = short_root()
    try:
        async with open_service(root, config) as service:
            yield service
    finally:
        shutil.rmtree(root, ignore_errors=True)


def log_lines(service: Service, user: str, session: str) -> list[bytes]:
    path = service.root / "logs" / "users" / user / "sessions" / f"{session}.jsonl"
    return path.read_bytes().splitlines()


def ok(answer: dict[str, Any], status: int = 200) -> Any:
    assert answer["ok"] is True, answer
    assert answer["status"] == status, answer
    return answer["result"]


def error(answer: dict[str, Any], code: str, status: int) -> str:
    assert answer["ok"] is False, answer
    assert (answer["error"]["code"], answer["status"]) == (code, status), answer
    message: str = answer["error"]["message"]
    return message


def opened(rid: int, user: str = "u", session: str = "s") -> dict[str, Any]:
    return {"id": rid, "op": "session.open", "user_id": user, "session_id": session}


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_session_open_answers_201_created_then_200_existing(framing: Framing) -> None:
    async with serving() as service:
        # One at a time: pipelined, the two would run at once and either could create it.
        (first,) = await exchange(service.socket_path, framing, [opened(1)])
        (second,) = await exchange(service.socket_path, framing, [opened(2)])
        assert ok(first, 201) == {"created": True}
        assert ok(second, 200) == {"created": False}
        assert (service.root / "logs" / "users" / "u" / "sessions").is_dir()


async def test_append_over_json_lines_keeps_the_event_byte_for_byte() -> None:
    raw = b'{"record_id":"r1","user_id":"u","session_id":"s","source":"t",  "v":1.50,"e":"\\u00e9"}'
    frame = b'{"id":7,"op":"append","event":' + raw + b"}\n"
    async with serving() as service:
        got = await exchange(service.socket_path, "jsonl", [opened(1), frame])
        result = ok(got[1], 201)
        assert result["record_id"] == "r1"
        (line,) = log_lines(service, "u", "s")
        assert (
            line
            == b'{"recorded_at":"' + result["recorded_at"].encode() + b'","event":' + raw + b"}"
        )


async def test_append_over_messagepack_records_a_map_or_json_text_sent_as_bin() -> None:
    as_map = {"record_id": "m", "user_id": "u", "session_id": "s", "source": "t", "n": [1, 2]}
    as_text = b'{"record_id":"b","user_id":"u","session_id":"s","source":"t","v":1.50}'
    async with serving() as service:
        requests = [
            opened(1),
            {"id": 2, "op": "append", "event": as_map},
            {"id": 3, "op": "append", "event": as_text},
        ]
        got = await exchange(service.socket_path, "msgpack", requests)
        assert [ok(a, 201)["record_id"] for a in got[1:]] == ["m", "b"]
        first, second = log_lines(service, "u", "s")
        assert msgspec.json.decode(first)["event"] == as_map
        assert second.endswith(b'"event":' + as_text + b"}")


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_append_batch_answers_one_response_object_per_event_in_order(
    framing: Framing,
) -> None:
    events = [
        event("u", "s", "a"),
        b'{"user_id":"u"}',
        event("u", "other", "b"),
        event("nobody", "s", "c"),
        event("u", "s", "d"),
    ]
    wire = [msgspec.Raw(e) if framing == "jsonl" else msgspec.json.decode(e) for e in events]
    async with serving() as service:
        requests = [
            opened(1),
            opened(3, session="other"),
            {"id": 2, "op": "append.batch", "events": wire},
        ]
        answers = await exchange(service.socket_path, framing, requests)
        results = ok(answers[2])["results"]
        assert [(r["ok"], r["status"]) for r in results] == [
            (True, 201),
            (False, 400),
            (True, 201),
            (False, 409),
            (True, 201),
        ]
        assert results[1]["error"]["code"] == "InvalidEvent"
        assert results[3]["error"]["code"] == "MissingSessionPath"
        assert [r["result"]["record_id"] for r in results if r["ok"]] == ["a", "b", "d"]
        assert [
            msgspec.json.decode(x)["event"]["record_id"] for x in log_lines(service, "u", "s")
        ] == [
            "a",
            "d",
        ]


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_pipelined_appends_are_answered_and_recorded_in_request_order(
    framing: Framing,
) -> None:
    count = 600
    async with serving() as service:
        async with await Client.connect(service.socket_path, framing=framing) as client:
            await client.request("session.open", user_id="u", session_id="s")
            requests = [
                ("append", {"event": msgspec.json.decode(event("u", "s", f"r{i}", seq=i))})
                for i in range(count)
            ]
            outcomes = await client.pipeline(requests, window=512)
        assert [o["record_id"] for o in outcomes] == [f"r{i}" for i in range(count)]
        seqs = [msgspec.json.decode(line)["event"]["seq"] for line in log_lines(service, "u", "s")]
        assert seqs == list(range(count))


def _error_cases() -> list[Any]:
    huge = "x" * 2_000
    return [
        pytest.param(b'{"id":1,"op":"append"}\n', "InvalidRequest", 400, id="missing-field"),
        pytest.param(
            b'{"id":1,"op":"append","event":{},"x":1}\n', "InvalidRequest", 400, id="unknown-field"
        ),
        pytest.param(b"{not json}\n", "InvalidRequest", 400, id="bad-json"),
        pytest.param(
            b'{"id":1,"op":"live.write","scope":"nope","data":{}}\n',
            "InvalidRequest",
            400,
            id="unknown-scope",
        ),
        pytest.param(
            b'{"id":1,"op":"enrich","request":{"run_id":""}}\n',
            "InvalidRequest",
            400,
            id="bad-enrich",
        ),
        pytest.param(b'{"id":1,"op":"nope"}\n', "UnknownOp", 404, id="unknown-op"),
        pytest.param(
            b'{"id":1,"op":"append","event":{"record_id":"r"}}\n',
            "InvalidEvent",
            400,
            id="invalid-event",
        ),
        pytest.param(event("u", "../etc", "r"), "InvalidEvent", 400, id="unsafe-session-id"),
        pytest.param(event("ghost", "s", "r"), "MissingSessionPath", 409, id="missing-session"),
        pytest.param(event("u", "s", "r", pad=huge), "EventTooLarge", 413, id="event-too-large"),
        pytest.param(
            {"scope": "trend-finder", "data": {"hosts": {}}},
            "OwnershipViolation",
            403,
            id="ownership",
        ),
        pytest.param(
            {"scope": "host-local", "data": {"schema_version": 1, "h": {"password": "x"}}},
            "PrivacyViolation",
            422,
            id="privacy",
        ),
        pytest.param(
            {"scope": "trend-finder", "data": {}}, "LiveDataInvalid", 422, id="live-invalid"
        ),
    ]


@pytest.mark.parametrize(("request_", "code", "status"), _error_cases())
async def test_each_error_code_reaches_the_client_and_the_connection_stays_usable(
    request_: Any, code: str, status: int
) -> None:
    config = Config(recorder=RecorderConfig(max_event_bytes=1_024))
    if isinstance(request_, dict):
        frame = msgspec.json.encode({"id": 1, "op": "live.write", **request_}) + b"\n"
    elif request_.startswith(b'{"record_id"'):
        frame = b'{"id":1,"op":"append","event":' + request_ + b"}\n"
    else:
        frame = request_
    async with serving(config) as service:
        await service.live.write("full", DOC)
        await service.recorder.open_session("u", "s")
        answers = await exchange(service.socket_path, "jsonl", [frame, b'{"id":2,"op":"ping"}\n'])
        message = error(answers[0], code, status)
        assert "/" + service.root.name not in message
        assert ok(answers[1]) == {"pong": True}


async def test_a_frame_over_max_frame_bytes_is_413_then_the_connection_closes() -> None:
    config = Config(server=ServerConfig(max_frame_bytes=4_096))
    big = msgspec.json.encode({"id": 1, "op": "ping", "pad": "x" * 8_000}) + b"\n"
    async with serving(config) as service:
        answers = await exchange(service.socket_path, "jsonl", [big, b'{"id":2,"op":"ping"}\n'])
        assert len(answers) == 1
        error(answers[0], "FrameTooLarge", 413)
        assert ok((await exchange(service.socket_path, "jsonl", [{"id": 3, "op": "ping"}]))[0])


async def test_a_full_session_mailbox_answers_503_overloaded_and_accepts_the_rest() -> None:
    # Another process's lock on the log holds the writer's first job, so the appends
    # read after it queue in its mailbox (one message per read) until it is full.
    config = Config(bus=BusConfig(mailbox_size=2))
    async with serving(config) as service:
        await service.recorder.open_session("u", "s")
        holder = os.open(session_path(service.root, "u", "s"), os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(holder, fcntl.LOCK_EX)
        reader = FrameReader(1 << 20, "jsonl")
        answers: list[dict[str, Any]] = []
        try:
            async with await anyio.connect_unix(service.socket_path) as stream:
                for i in range(6):
                    frame = {
                        "id": i,
                        "op": "append",
                        "event": msgspec.Raw(event("u", "s", f"r{i}")),
                    }
                    await stream.send(msgspec.json.encode(frame) + b"\n")
                    await anyio.sleep(0.05)  # a read of its own: a writer message of its own
                fcntl.flock(holder, fcntl.LOCK_UN)
                with anyio.fail_after(10):
                    while len(answers) < 6:
                        reader.feed(await stream.receive())
                        answers.extend(msgspec.json.decode(f) for f in reader.frames())
        finally:
            os.close(holder)
        statuses = [a["status"] for a in answers]
        assert statuses == [201, 201, 201, 503, 503, 503]
        assert {a["error"]["code"] for a in answers if not a["ok"]} == {"Overloaded"}
        written = [
            msgspec.json.decode(x)["event"]["record_id"] for x in log_lines(service, "u", "s")
        ]
        assert written == ["r0", "r1", "r2"]


async def test_appends_read_together_are_one_writer_message() -> None:
    # 200 appends in one write fit a mailbox of 2: they reach the writer as one message.
    config = Config(bus=BusConfig(mailbox_size=2))
    async with serving(config) as service:
        await service.recorder.open_session("u", "s")
        requests = [
            {"id": i, "op": "append", "event": msgspec.Raw(event("u", "s", f"r{i}"))}
            for i in range(200)
        ]
        requests[7]["event"] = msgspec.Raw(b'{"record_id":"bad"}')  # fails alone
        requests[9] = {"id": 9, "op": "append"}  # malformed: fails alone
        answers = await exchange(service.socket_path, "jsonl", requests)
        assert [a["id"] for a in answers] == list(range(200))
        assert answers[7]["error"]["code"] == "InvalidEvent"
        assert answers[9]["error"]["code"] == "InvalidRequest"
        good = [a for i, a in enumerate(answers) if i not in (7, 9)]
        assert all(a["status"] == 201 for a in good)
        written = [
            msgspec.json.decode(x)["event"]["record_id"] for x in log_lines(service, "u", "s")
        ]
        assert written == [f"r{i}" for i in range(200) if i not in (7, 9)]


async def test_a_run_whose_every_item_fails_is_502_provider_error() -> None:
    failing = ProviderConfig(kind="simulated", cost_usd=0.01, failure_rate=1.0)
    config = Config(enrichment=EnrichmentConfig(providers={"flaky": failing}))
    request = {
        "run_id": "r",
        "enrichment_type": "t",
        "adapter_version": "v1",
        "items": [{"source_id": "flaky", "item_id": "a"}],
    }
    async with serving(config) as service:
        answers = await exchange(
            service.socket_path, "msgpack", [{"id": 1, "op": "enrich", "request": request}]
        )
        assert "simulated failure" in error(answers[0], "ProviderError", 502)


HOLDER = r"""
import sys
from pathlib import Path
from actors import NamedLock
lock = NamedLock(Path(sys.argv[1]), "generated-live-data", stale_s=600)
handle = lock.acquire(10)
print("held", flush=True)
sys.stdin.read()
lock.release(handle)
"""


async def test_a_live_data_lock_held_by_another_process_is_423_lock_busy() -> None:
    config = Config(live_data=LiveDataConfig(lock_wait_s=0.2))
    async with serving(config) as service:
        holder = await anyio.open_process(
            [sys.executable, "-c", HOLDER, str(service.root / "locks")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        async with holder:
            assert holder.stdout is not None and holder.stdin is not None
            assert (await holder.stdout.receive()).strip() == b"held"
            async with await Client.connect(service.socket_path) as client:
                with pytest.raises(LockBusy, match="this host"):
                    await client.request("live.write", scope="full", data=DOC)
            await holder.stdin.aclose()
        assert not (service.root / "data" / "live-data.json").exists()


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_live_write_and_read_merge_scopes_over_both_framings(framing: Framing) -> None:
    async with serving() as service:
        async with await Client.connect(service.socket_path, framing=framing) as client:
            full = await client.request("live.write", scope="full", data=DOC)
            assert (full["scope"], full["base"]) == ("full", "none")
            trend = {"extensions": {"items": {"trend-finder": TREND}}}
            written = await client.request("live.write", scope="trend-finder", data=trend)
            assert (written["base"], written["branches"]) == (
                "current",
                ["extensions.items.trend-finder"],
            )
            await client.request(
                "live.write", scope="host-local", data={"schema_version": 1, "hosts": {"a": {}}}
            )
            data = (await client.request("live.read"))["data"]
        assert data == {
            "schema_version": 1,
            "hosts": {"a": {}},
            "extensions": {"items": {"trend-finder": TREND}},
        }


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_enrich_twice_answers_the_second_run_from_the_cache(framing: Framing) -> None:
    paid = ProviderConfig(kind="simulated", cost_usd=0.01, usage="exact")
    config = Config(enrichment=EnrichmentConfig(providers={"feed": paid}))
    request = {
        "run_id": "r",
        "enrichment_type": "summary",
        "adapter_version": "v1",
        "items": [
            {"source_id": "feed", "item_id": f"i{n}", "metadata": {"n": n}} for n in range(5)
        ],
        "cadence_per_day": 2,
    }
    async with (
        serving(config) as service,
        await Client.connect(service.socket_path, framing=framing) as client,
    ):
        first = await client.request("enrich", request=request)
        second = await client.request("enrich", request=request)
    assert first["counts"]["written"] == 5
    assert {item["state"] for item in first["items"]} == {"enriched"}
    assert first["spend"]["run"]["usd"] > 0
    assert first["spend"]["projection"]["state"] == "projected"
    assert second["counts"]["hits"] == 5
    assert second["spend"]["run"]["usd"] == 0
    assert second["spend"]["run"]["saved_usd"] == pytest.approx(0.05)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_stats_report_the_server_the_actors_and_the_service(framing: Framing) -> None:
    async with (
        serving() as service,
        await Client.connect(service.socket_path, framing=framing) as client,
    ):
        await client.pipeline([("nope", {}), ("ping", {})])
        stats = await client.request("stats")
    assert stats["server"]["errors"] == {"UnknownOp": 1}
    assert {"live-data", "enrichment"} <= {a["name"] for a in stats["bus"]["actors"]}
    assert stats["service"]["listening"] is True
    assert stats["service"]["version"]


async def test_a_pipelined_live_read_sees_the_writes_sent_before_it() -> None:
    trend = {"extensions": {"items": {"trend-finder": TREND}}}
    requests = [
        {"id": 1, "op": "live.write", "scope": "full", "data": DOC},
        {"id": 2, "op": "live.write", "scope": "trend-finder", "data": trend},
        {"id": 3, "op": "live.read"},
    ]
    async with serving() as service:
        answers = await exchange(service.socket_path, "jsonl", requests)
    assert ok(answers[2]) == {"data": {"schema_version": 1, **trend}}
