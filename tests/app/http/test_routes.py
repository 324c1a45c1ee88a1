"""Every HTTP route and its error statuses, against a real ``actorbus serve`` on its socket."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from support.http_service import Served, serve_http
from support.service import event, run_cli, short_root

CONFIG = """
[recorder]
max_event_bytes = 4096

[live_data.scopes.my-ext]
owns = ["extensions.items.my-ext"]

[enrichment.providers.sim]
kind = "simulated"
cost_usd = 0.01
usage = "estimated"
"""

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
FULL = {"schema_version": 1, "hosts": {"web-1": {"load": 3}}, "extensions": {"items": {}}}
TREND = {
    "extensions": {
        "items": {"trend-finder": {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}}
    }
}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    root = short_root()
    try:
        with serve_http(root, CONFIG) as served:
            yield served
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with served.uds() as client:
        yield client


def open_session(client: httpx.Client, user: str, session: str) -> None:
    assert client.post(f"/v1/sessions/{user}/{session}").status_code in (200, 201)


def post_event(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(
        "/schema-recorder/append", content=body, headers={"content-type": "application/json"}
    )


def test_append_answers_201_and_the_event_is_recorded_byte_for_byte(
    client: httpx.Client, served: Served
) -> None:
    open_session(client, "alice", "s1")
    body = b'{"record_id":"r1","user_id":"alice","session_id":"s1","source":"http","n":1.50}'
    answer = post_event(client, body)
    assert answer.status_code == 201
    assert answer.json()["record_id"] == "r1"
    assert answer.json()["recorded_at"].endswith("Z")
    log = served.root / "logs/users/alice/sessions/s1.jsonl"
    line = log.read_bytes().splitlines()[-1]
    assert line.endswith(b',"event":' + body + b"}")


@pytest.mark.parametrize("missing", ["record_id", "user_id", "session_id", "source"])
def test_an_event_missing_a_required_field_is_400_invalid_event(
    client: httpx.Client, missing: str
) -> None:
    fields = {"record_id": "r", "user_id": "alice", "session_id": "s1", "source": "http"}
    del fields[missing]
    answer = post_event(client, msgspec.json.encode(fields))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidEvent"
    assert missing in answer.json()["error"]["message"]


def test_an_append_to_a_session_never_opened_is_409(client: httpx.Client) -> None:
    answer = post_event(client, event("nobody", "never", "r1"))
    assert answer.status_code == 409
    assert answer.json() == {
        "error": {"code": "MissingSessionPath", "message": answer.json()["error"]["message"]}
    }


def test_an_event_over_max_event_bytes_is_413(client: httpx.Client) -> None:
    open_session(client, "alice", "big")
    answer = post_event(client, event("alice", "big", "r1", pad="x" * 5000))
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "EventTooLarge"


def test_a_failed_write_is_500_and_the_service_goes_on(
    client: httpx.Client, served: Served
) -> None:
    open_session(client, "alice", "broken")
    # A directory where the log should be: the write fails, nothing partial is left.
    log = served.root / "logs/users/alice/sessions/broken.jsonl"
    log.unlink()  # session.open made it: put a directory in its place
    log.mkdir()
    answer = post_event(client, event("alice", "broken", "r1"))
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "RecorderIOError"
    assert client.get("/healthz").status_code == 200


def test_opening_a_session_is_201_then_200(client: httpx.Client) -> None:
    first = client.post("/v1/sessions/bob/s1")
    again = client.post("/v1/sessions/bob/s1")
    assert (first.status_code, first.json()) == (201, {"created": True})
    assert (again.status_code, again.json()) == (200, {"created": False})


def test_an_unsafe_session_id_is_400_invalid_event(client: httpx.Client) -> None:
    answer = client.post("/v1/sessions/bob/..")
    assert answer.status_code in (400, 404)
    answer = client.post("/v1/sessions/bob/a%20b")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidEvent"


def test_bulk_ndjson_answers_one_line_per_event_in_order(client: httpx.Client) -> None:
    open_session(client, "carol", "a")
    open_session(client, "carol", "b")
    lines = [
        event("carol", "a", "a1"),
        event("carol", "b", "b1"),
        b'{"record_id":"x","user_id":"carol","session_id":"a"}',
        event("carol", "a", "a2"),
        event("nouser", "missing", "m1"),
        b"not json",
        event("carol", "b", "b2"),
    ]
    answer = client.post(
        "/v1/events",
        content=b"\n".join(lines) + b"\n",
        headers={"content-type": "application/x-ndjson"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    got = [json.loads(line) for line in answer.text.splitlines()]
    assert [item["status"] for item in got] == [201, 201, 400, 201, 409, 400, 201]
    assert [item["result"]["record_id"] for item in got if item["status"] == 201] == [
        "a1",
        "b1",
        "a2",
        "b2",
    ]
    assert got[2]["error"]["code"] == "InvalidEvent"
    session_a = client.get("/v1/sessions/carol/a/events").text.splitlines()
    assert [json.loads(line)["event"]["record_id"] for line in session_a] == ["a1", "a2"]


def test_session_events_are_ndjson_envelopes_and_a_missing_session_is_409(
    client: httpx.Client,
) -> None:
    open_session(client, "dave", "s1")
    for n in range(3):
        assert post_event(client, event("dave", "s1", f"r{n}")).status_code == 201
    answer = client.get("/v1/sessions/dave/s1/events")
    assert answer.status_code == 200
    envelopes = [json.loads(line) for line in answer.text.splitlines()]
    assert [e["event"]["record_id"] for e in envelopes] == ["r0", "r1", "r2"]
    assert all(e["recorded_at"].endswith("Z") for e in envelopes)
    missing = client.get("/v1/sessions/nouser/never/events")
    assert missing.status_code == 409
    assert missing.json()["error"]["code"] == "MissingSessionPath"


def test_follow_streams_new_events_as_they_land(client: httpx.Client, served: Served) -> None:
    open_session(client, "erin", "s1")
    assert post_event(client, event("erin", "s1", "before")).status_code == 201
    seen: list[str] = []
    with (
        served.uds() as follower,
        follower.stream("GET", "/v1/sessions/erin/s1/events", params={"follow": "true"}) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        seen.append(json.loads(next(lines))["event"]["record_id"])
        assert post_event(client, event("erin", "s1", "after")).status_code == 201
        seen.append(json.loads(next(lines))["event"]["record_id"])
    assert seen == ["before", "after"]
    assert client.get("/healthz").status_code == 200


def _sse_events(stream: httpx.Response, count: int) -> list[tuple[str, dict[str, object]]]:
    found: list[tuple[str, dict[str, object]]] = []
    current: dict[str, str] = {}
    for line in stream.iter_lines():
        if not line:
            if "data" in current:
                found.append((current["id"], json.loads(current["data"])))
                if len(found) == count:
                    return found
            current = {}
            continue
        name, _, value = line.partition(": ")
        current[name] = value
    return found


def test_server_sent_events_carry_ids_that_last_event_id_resumes_from(
    client: httpx.Client, served: Served
) -> None:
    open_session(client, "fay", "s1")
    for n in range(3):
        assert post_event(client, event("fay", "s1", f"r{n}")).status_code == 201
    headers = {"accept": "text/event-stream"}
    with (
        served.uds() as sse,
        sse.stream("GET", "/v1/sessions/fay/s1/events", headers=headers) as stream,
    ):
        assert stream.headers["content-type"] == "text/event-stream"
        got = _sse_events(stream, 3)
    assert [(eid, e["event"]["record_id"]) for eid, e in got] == [  # type: ignore[index]
        ("1", "r0"),
        ("2", "r1"),
        ("3", "r2"),
    ]
    resumed_headers = {**headers, "last-event-id": "2"}
    with (
        served.uds() as sse,
        sse.stream("GET", "/v1/sessions/fay/s1/events", headers=resumed_headers) as stream,
    ):
        threading.Timer(0.3, post_event, (client, event("fay", "s1", "r3"))).start()
        got = _sse_events(stream, 2)
    assert [(eid, e["event"]["record_id"]) for eid, e in got] == [  # type: ignore[index]
        ("3", "r2"),
        ("4", "r3"),
    ]


def test_live_data_has_a_strong_etag_and_if_none_match_gives_304(client: httpx.Client) -> None:
    written = client.put("/v1/live-data/full", json=FULL)
    assert written.status_code == 200
    assert written.json()["base"] == "none"
    assert client.put("/v1/live-data/trend-finder", json=TREND).status_code == 200
    first = client.get("/v1/live-data")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.json()["extensions"]["items"]["trend-finder"]["status"] == "ok"
    again = client.get("/v1/live-data", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    deleted = client.put(
        "/v1/live-data/trend-finder", json={"extensions": {"items": {}}}, params={"delete": "true"}
    )
    assert deleted.status_code == 200
    changed = client.get("/v1/live-data", headers={"if-none-match": etag})
    assert changed.status_code == 200
    assert "trend-finder" not in changed.json()["extensions"]["items"]
    assert changed.headers["etag"] != etag


def test_live_data_write_errors_have_their_statuses(client: httpx.Client) -> None:
    assert client.put("/v1/live-data/full", json=FULL).status_code == 200
    unknown = client.put("/v1/live-data/no-such-scope", json={})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "InvalidRequest")
    outside = client.put("/v1/live-data/trend-finder", json={"hosts": {}})
    assert (outside.status_code, outside.json()["error"]["code"]) == (403, "OwnershipViolation")
    not_json = client.put(
        "/v1/live-data/full", content=b"[1,", headers={"content-type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "InvalidRequest")


def test_a_rejected_live_write_never_shows_the_value_in_the_answer_or_the_log() -> None:
    root = short_root()
    try:
        with serve_http(root, CONFIG) as served:
            with served.uds() as client:
                assert client.put("/v1/live-data/full", json=FULL).status_code == 200
                data = {"extensions": {"items": {"my-ext": {
                    "status": "ok", "updated_at": "2026-11-22T09:15:02.137Z", "note": SECRET,
                }}}}  # fmt: skip
                answer = client.put("/v1/live-data/my-ext", json=data)
                assert answer.status_code == 422
                assert answer.json()["error"]["code"] == "PrivacyViolation"
                assert SECRET not in answer.text
                assert SECRET[4:20] not in answer.text
                document = client.get("/v1/live-data").text
                assert SECRET not in document
            assert served.stop() == 0
        assert SECRET.encode() not in served.log()
        assert SECRET[4:20].encode() not in served.log()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _enrich_request(run_id: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "enrichment_type": "summary",
        "adapter_version": "v1",
        "items": [{"source_id": "sim", "item_id": f"i{n}", "metadata": {"n": n}} for n in range(3)],
        "budget_usd": None,
        "cadence_per_day": 24,
        "prune": False,
    }


def test_enrich_answers_the_report_and_runs_keeps_the_last_ones(client: httpx.Client) -> None:
    first = client.post("/v1/enrich", json=_enrich_request("run-1"))
    assert first.status_code == 200
    assert first.json()["counts"]["misses"] == 3
    assert first.json()["spend"]["run"]["state"] == "estimated"
    second = client.post("/v1/enrich", json=_enrich_request("run-2"))
    assert second.json()["counts"]["hits"] == 3
    runs = client.get("/v1/enrich/runs").json()["runs"]
    assert [run["run_id"] for run in runs[:2]] == ["run-2", "run-1"]
    bad = client.post("/v1/enrich", json={"run_id": "x"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "InvalidRequest")


def _families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_metrics_are_prometheus_text_with_the_families_of_stats_prometheus(
    client: httpx.Client, served: Served
) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    cli = run_cli("stats", "--root", str(served.root), "--prometheus")
    assert cli.returncode == 0, cli.stderr
    ours, theirs = _families(answer.text), _families(cli.stdout.decode())
    assert "actorbus_server_requests_total" in ours
    assert theirs <= ours


def test_stats_health_and_readiness(client: httpx.Client) -> None:
    stats = client.get("/v1/stats").json()
    assert set(stats) >= {"server", "http", "bus", "service"}
    assert stats["http"]["requests"] >= 1
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "serving"})


def test_the_dashboard_is_served_with_a_strict_policy(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script" in page.text and "http" not in page.text.split("<script", 1)[1][:60]
    script = client.get("/dashboard/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/dashboard/nope.js").status_code == 404


def test_unknown_paths_methods_and_types_have_their_statuses(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "NotFound")
    wrong = client.delete("/v1/live-data")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert wrong.json()["error"]["code"] == "MethodNotAllowed"
    form = client.post(
        "/schema-recorder/append",
        content=b"a=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (form.status_code, form.json()["error"]["code"]) == (415, "UnsupportedMediaType")


def test_head_answers_the_get_headers_without_a_body(client: httpx.Client) -> None:
    get = client.get("/v1/live-data")
    head = client.head("/v1/live-data")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]


def test_a_chunked_body_is_read_whole(client: httpx.Client) -> None:
    open_session(client, "gil", "s1")
    body = event("gil", "s1", "chunked", pad="y" * 3000)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    answer = client.post(
        "/schema-recorder/append", content=pieces(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 201
    assert answer.json()["record_id"] == "chunked"


def test_keep_alive_serves_many_requests_on_one_connection(
    client: httpx.Client, served: Served
) -> None:
    with served.uds() as fresh:
        before = fresh.get("/v1/stats").json()["http"]["connections_total"]
        for _ in range(5):
            assert fresh.get("/healthz").status_code == 200
        after = fresh.get("/v1/stats").json()["http"]["connections_total"]
    assert after == before


def test_the_dashboard_path_takes_no_writes(client: httpx.Client) -> None:
    answer = client.post("/")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD"
