"""No error answer and no log line repeats what a client sent: every op, both framings, HTTP.

A real ``actorbus serve`` process; each request carries a secret as an unknown key,
as a value of every field, as a key inside every free-form object. The secret must
appear neither in the answer's bytes nor in the service's log, and no answer is a 500.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.http_service import Served, parse_responses, serve_http_fresh

from bus import FrameReader, FrameWriter
from contracts import Framing

#: Looks like an identifier (so a path filter that lets names through would show it),
#: and like nothing a redactor of known secret shapes would catch.
KEY = "zq_s3cr3t_Value_9931"
#: The same as a value, with a character no id allows.
VALUE = "zq-s3cr3t-Value-9931!"
#: Cloud-key shaped, the issue's own example.
AWS = "AKIAIOSFODNN7EXAMPLE"
SECRETS = (KEY.encode(), b"s3cr3t", AWS.encode())

HEAD = {"record_id": "r1", "user_id": "u1", "session_id": "s1", "source": "t"}
ENRICH = {"run_id": "run", "enrichment_type": "t", "adapter_version": "1"}


def _cases() -> list[tuple[str, dict[str, Any]]]:
    """(name, request) pairs: the secret in every place a client can put it."""
    cases: list[tuple[str, dict[str, Any]]] = []

    def add(name: str, request: dict[str, Any]) -> None:
        cases.append((name, {"id": len(cases), **request}))

    for op, fields in [
        ("session.open", {"user_id": "u1", "session_id": "s1"}),
        ("append", {"event": HEAD}),
        ("append.batch", {"events": [HEAD]}),
        ("live.write", {"scope": "full", "data": {"schema_version": 1}}),
        ("live.read", {}),
        ("enrich", {"request": ENRICH}),
        ("subscribe", {"user_id": "u1", "session_id": "s1", "follow": False}),
        ("stats", {}),
    ]:
        add(f"{op} unknown key", {"op": op, **fields, KEY: VALUE})
        add(f"{op} unknown aws key", {"op": op, **fields, AWS: 1})
        for field in fields:
            add(f"{op} {field} as a value", {"op": op, **fields, field: VALUE})
            add(f"{op} {field} as an object", {"op": op, **fields, field: {KEY: VALUE}})
            add(f"{op} {field} as a list", {"op": op, **fields, field: [VALUE, {KEY: 1}]})
    add("session.open bad id", {"op": "session.open", "user_id": VALUE, "session_id": "s"})
    add("append event key", {"op": "append", "event": {**HEAD, "user_id": 5, KEY: VALUE}})
    add("append unopened", {"op": "append", "event": {**HEAD, "session_id": KEY}})
    add("append bad id", {"op": "append", "event": {**HEAD, "record_id": VALUE}})
    add("append.batch key", {"op": "append.batch", "events": [{KEY: VALUE}, {**HEAD, KEY: 1}]})
    add("live.write scope", {"op": "live.write", "scope": KEY, "data": {}})
    add("live.write data", {"op": "live.write", "scope": "full", "data": {KEY: {KEY: VALUE}}})
    add(
        "live.write extension",
        {
            "op": "live.write",
            "scope": "full",
            "data": {"schema_version": 1, "extensions": {KEY: 1}},
        },
    )
    add("live.write outside", {"op": "live.write", "scope": "trend-finder", "data": {KEY: {}}})
    add(
        "live.write outside extension",
        {"op": "live.write", "scope": "trend-finder", "data": {"extensions": {"items": {KEY: {}}}}},
    )
    add("live.write delete", {"op": "live.write", "scope": "full", "data": {}, "delete": VALUE})
    item = {"source_id": "src", "item_id": "i1", "metadata": {}}
    for field, bad in [
        ("source_id", KEY),
        ("item_id", 7),
        ("metadata", VALUE),
        ("priority", VALUE),
        ("force", VALUE),
    ]:
        request = {**ENRICH, "items": [{**item, field: bad}]}
        add(f"enrich item {field}", {"op": "enrich", "request": request})
    add("enrich item key", {"op": "enrich", "request": {**ENRICH, "items": [{**item, KEY: 1}]}})
    for field in ("run_id", "budget_usd", "cadence_per_day", "prune", "items"):
        add(f"enrich {field}", {"op": "enrich", "request": {**ENRICH, field: VALUE}})
    add("enrich as text", {"op": "enrich", "request": f'{{"{KEY}": 1}}'})
    add("subscribe unopened", {"op": "subscribe", "user_id": KEY, "session_id": KEY})
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_http_fresh() as served:
        yield served


def _exchange(path: Path, framing: Framing, requests: list[Any]) -> list[bytes]:
    """Send ``requests`` on one connection; return each answer's frame (events included)."""
    writer = FrameWriter(framing)
    reader = FrameReader(64 << 20, framing)
    decode = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
    frames: list[bytes] = []
    answers = 0
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(os.fspath(path))
        sock.sendall(b"".join(writer.encode(r) for r in requests))
        while answers < len(requests):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            reader.feed(chunk)
            for frame in reader.frames():
                frames.append(bytes(frame))
                if decode(frame).get("op") != "event":
                    answers += 1
    assert answers == len(requests)
    return frames


def _leaks(data: bytes) -> list[bytes]:
    return [secret for secret in SECRETS if secret.lower() in data.lower()]


@pytest.mark.parametrize("framing", ["jsonl", "msgpack"])
def test_no_socket_answer_repeats_a_key_or_value_the_client_sent(
    served: Served, framing: Framing
) -> None:
    frames = _exchange(served.sock, framing, [request for _, request in CASES])
    decode = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
    answers = [decode(frame) for frame in frames]
    errors = [a for a in answers if a.get("ok") is False]
    # Nearly every case is refused: the check below looks at real error messages.
    assert len(errors) >= len(CASES) - 8, answers
    leaked = [
        (CASES[a["id"]][0], a.get("error"))
        for frame, a in zip(frames, answers, strict=True)
        if a.get("ok") is False and _leaks(frame)
    ]
    assert leaked == []
    assert [a for a in answers if a.get("status", 0) >= 500 and a["status"] != 502] == []


def test_an_unknown_op_is_not_repeated(served: Served) -> None:
    frames = _exchange(served.sock, "jsonl", [{"id": 1, "op": f"ghp_{KEY}"}])
    assert _leaks(frames[0]) == []


def _http(served: Served, method: str, target: str, body: bytes, ctype: str) -> bytes:
    head = (
        f"{method} {target} HTTP/1.1\r\nhost: localhost\r\ncontent-type: {ctype}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(os.fspath(served.sock))
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    return data


JSON = "application/json"
ENCODE = msgspec.json.encode
HTTP_CASES = [
    ("POST", "/schema-recorder/append", ENCODE({KEY: VALUE}), JSON),
    ("POST", "/schema-recorder/append", ENCODE({**HEAD, "user_id": 5, KEY: 1}), JSON),
    ("POST", "/schema-recorder/append", ENCODE({**HEAD, "session_id": KEY}), JSON),
    ("POST", "/schema-recorder/append", f'{{"{KEY}": '.encode(), JSON),
    ("POST", f"/v1/sessions/{VALUE}/s1", b"", JSON),
    ("POST", "/v1/events", ENCODE({KEY: VALUE}) + b"\n" + ENCODE(HEAD), "application/x-ndjson"),
    ("GET", f"/v1/sessions/{KEY}/{KEY}/events", b"", JSON),
    ("GET", f"/v1/sessions/{VALUE}/s1/events", b"", JSON),
    ("PUT", f"/v1/live-data/{KEY}", ENCODE({}), JSON),
    ("PUT", "/v1/live-data/full", ENCODE({KEY: {KEY: VALUE}}), JSON),
    ("PUT", "/v1/live-data/full", ENCODE({"schema_version": VALUE}), JSON),
    ("PUT", "/v1/live-data/full", f"[{VALUE}".encode(), JSON),
    ("POST", "/v1/enrich", ENCODE({KEY: VALUE}), JSON),
    ("POST", "/v1/enrich", ENCODE({**ENRICH, "items": [{"source_id": KEY, "item_id": "i"}]}), JSON),
    ("POST", "/v1/enrich", ENCODE({**ENRICH, "budget_usd": VALUE}), JSON),
    ("POST", "/v1/enrich", ENCODE({**ENRICH, "items": [{KEY: 1}]}), JSON),
]


@pytest.mark.parametrize(("method", "target", "body", "ctype"), HTTP_CASES)
def test_no_http_answer_repeats_a_key_or_value_the_client_sent(
    served: Served, method: str, target: str, body: bytes, ctype: str
) -> None:
    data = _http(served, method, target, body, ctype)
    (response,) = parse_responses(data)
    assert response.status < 500 or response.status == 502, response
    if response.status >= 400:
        assert _leaks(response.body) == [], response.body


def test_the_log_never_holds_what_a_client_sent() -> None:
    with serve_http_fresh() as served:
        for framing in ("jsonl", "msgpack"):
            _exchange(served.sock, framing, [request for _, request in CASES])  # type: ignore[arg-type]
        for case in HTTP_CASES:
            _http(served, *case)
        served.stop()
        log = served.log()
    assert b"serving" in log
    assert _leaks(log) == []
