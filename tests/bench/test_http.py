from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench._harness import Context
from bench._http import (
    BULK,
    CLIENTS,
    SCENARIOS,
    _append_request,
    _drive,
    _peer,
    _rtts,
)
from bench._registry import MODULES, all_scenarios
from bench._service import _open, _service


def test_the_http_scenarios_are_registered_with_their_targets() -> None:
    assert MODULES.index("bench._http") > MODULES.index("bench._service")
    by_name = {s.name: s for s in SCENARIOS}
    assert set(by_name) == {
        "peer.fastapi.append.pipelined",
        "peer.fastapi.append.rtt_p50_us",
        "http.append.pipelined",
        "http.events.bulk",
        "http.append.rtt_p50_us",
        "http.live_data.not_modified",
    }
    targets = {
        name: [(t.baseline, t.ratio, t.better) for t in s.targets] for name, s in by_name.items()
    }
    assert targets["http.append.pipelined"] == [
        ("peer.fastapi.append.pipelined", 10.0, "higher"),
        ("append.socket.pipelined", 0.5, "higher"),
    ]
    assert targets["http.events.bulk"] == [("append.socket.pipelined", 1.0, "higher")]
    assert targets["http.append.rtt_p50_us"] == [
        ("append.socket.rtt_p50_us", 1.5, "lower"),
        ("peer.fastapi.append.rtt_p50_us", 0.5, "lower"),
    ]
    assert targets["http.live_data.not_modified"] == []
    # Every baseline named is a scenario that runs earlier in the same run.
    order = [s.name for s in all_scenarios()]
    for name, pairs in targets.items():
        for baseline, _, _ in pairs:
            assert order.index(baseline) < order.index(name)


def test_each_http_scenario_measures_real_processes_and_counts_every_answer(
    tmp_path: Path,
) -> None:
    ctx = Context(quick=True, workdir=tmp_path)
    figures = {s.name: s.fn(ctx) for s in SCENARIOS}
    # The quick workloads: requests per client.
    for name, per_client in (
        ("peer.fastapi.append.pipelined", 300),
        ("http.append.pipelined", 8000),
    ):
        measured = figures[name]
        assert measured.unit == "requests/s" and measured.value > 0
        assert measured.extra["requests"] == CLIENTS * per_client
    bulk = figures["http.events.bulk"]
    assert bulk.unit == "events/s" and bulk.value > 0
    assert bulk.extra["events"] == CLIENTS * 8 * BULK
    for name in ("peer.fastapi.append.rtt_p50_us", "http.append.rtt_p50_us"):
        rtt = figures[name]
        assert rtt.unit == "us" and 0 < rtt.value <= rtt.extra["p99_us"]
    live = figures["http.live_data.not_modified"]
    assert live.value > 0 and live.extra["requests"] == CLIENTS * 2_000


def test_the_drive_counts_statuses_and_the_logs_hold_every_acknowledged_append(
    tmp_path: Path,
) -> None:
    ctx = Context(quick=True, workdir=tmp_path)
    with _service(ctx) as path:
        sessions = [f"http-append-{n}" for n in range(CLIENTS)]
        _open(path, sessions)
        result = _drive(path, "append", 700)
        root = path.parent.parent
        for session in sessions:
            lines = (root / f"logs/users/bench/sessions/{session}.jsonl").read_bytes()
            assert lines.count(b"\n") == 700
    assert result["statuses"] == {201: CLIENTS * 700}


def test_the_peer_records_what_it_acknowledges(tmp_path: Path) -> None:
    ctx = Context(quick=True, workdir=tmp_path)
    with _peer(ctx) as (root, path):
        result = _drive(path, "append", 50)
        for n in range(CLIENTS):
            log = root / f"logs/users/bench/sessions/http-append-{n}.jsonl"
            records = [json.loads(line) for line in log.read_bytes().splitlines()]
            assert [r["event"]["record_id"] for r in records] == [f"r-{i:08d}" for i in range(50)]
            assert all(r["recorded_at"].endswith("Z") for r in records)
    assert result["statuses"] == {201: CLIENTS * 50}


def test_a_scenario_whose_answers_are_errors_reports_no_figure(tmp_path: Path) -> None:
    ctx = Context(quick=True, workdir=tmp_path)
    with _service(ctx) as path:
        # No session opened: every append is 409 MissingSessionPath.
        with pytest.raises(RuntimeError, match="409"):
            _drive(path, "append", 20)
        with pytest.raises(RuntimeError, match="409"):
            _rtts(path, _append_request("never-opened", 0), 5, warmup=0)
