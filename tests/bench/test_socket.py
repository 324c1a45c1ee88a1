from __future__ import annotations

from pathlib import Path

from bench._harness import Context, Measurement
from bench._registry import MODULES
from bench._socket import SCENARIOS


def test_the_socket_scenarios_are_registered_with_the_echo_as_their_baseline() -> None:
    assert "bench._socket" in MODULES
    by_name = {s.name: s for s in SCENARIOS}
    assert by_name["peer.socket_echo.rtt_p50_us"].baseline
    target = by_name["server.ping.rtt_p50_us"].target
    assert target is not None
    assert (target.baseline, target.better) == ("peer.socket_echo.rtt_p50_us", "lower")


def test_each_socket_scenario_measures_a_real_server_process(tmp_path: Path) -> None:
    ctx = Context(quick=True, workdir=tmp_path)
    for scenario in SCENARIOS:
        measurement = scenario.fn(ctx)
        assert isinstance(measurement, Measurement)
        assert measurement.value > 0
