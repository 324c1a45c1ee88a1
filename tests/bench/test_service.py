from __future__ import annotations

from pathlib import Path

from bench._harness import Context
from bench._registry import MODULES
from bench._service import SCENARIOS


def test_the_socket_append_scenarios_are_registered_with_their_targets() -> None:
    assert "bench._service" in MODULES
    by_name = {s.name: s for s in SCENARIOS}
    assert set(by_name) == {
        "append.socket.pipelined",
        "append.socket.rtt_p50_us",
        "append.socket.rtt_p99_us",
    }
    pipelined = by_name["append.socket.pipelined"].target
    rtt = by_name["append.socket.rtt_p50_us"].target
    assert pipelined is not None and rtt is not None
    assert (pipelined.baseline, pipelined.ratio, pipelined.better) == (
        "seed.per_event",
        1.0,
        "higher",
    )
    assert (rtt.baseline, rtt.ratio, rtt.better) == ("peer.socket_echo.rtt_p50_us", 3.0, "lower")
    assert by_name["append.socket.rtt_p99_us"].target is None


def test_each_scenario_measures_acknowledged_appends_to_a_real_service_process(
    tmp_path: Path,
) -> None:
    ctx = Context(quick=True, workdir=tmp_path)
    figures = {s.name: s.fn(ctx) for s in SCENARIOS}
    pipelined = figures["append.socket.pipelined"]
    assert pipelined.unit == "events/s" and pipelined.value > 0
    assert pipelined.extra["events"] == 4 * 8_000
    p50, p99 = figures["append.socket.rtt_p50_us"], figures["append.socket.rtt_p99_us"]
    assert 0 < p50.value <= p99.value
    assert p50.extra["echo_same_frame_p50_us"] > 0
