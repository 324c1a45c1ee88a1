"""The reference floors do the real work they claim: every append reaches a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._floors import SCENARIOS
from bench._harness import Context
from bench._registry import all_scenarios
from bus import run


def _written(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.jsonl"))


def test_the_floors_are_registered_as_baselines_without_targets() -> None:
    names = {s.name: s for s in all_scenarios()}
    for name in ("floor.acked_bare", "floor.io_hop_rtt_p50_us"):
        assert names[name].baseline and names[name].target is None


# The bare floor hands each job over under the lock its IO thread also takes (a
# short critical section, which blockbuster reports whenever the two meet).
@pytest.mark.allow_blocking
def test_the_bare_acked_floor_writes_every_acknowledged_line(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "floor.acked_bare")
    measurement = run(scenario.fn, Context(quick=True, workdir=tmp_path))
    assert measurement.unit == "events/s" and measurement.value > 0
    runs = len(measurement.extra["runs"])
    # Two quick runs of 40,000 events, each line exactly 300 bytes.
    assert _written(tmp_path) == runs * 40_000 * 300
    lines = next(tmp_path.rglob("acked.jsonl")).read_bytes().splitlines()
    assert len(lines) == 40_000 and all(line.endswith(b"}") for line in lines)


# The bare floor hands each job over under the lock its IO thread also takes (a
# short critical section, which blockbuster reports whenever the two meet).
@pytest.mark.allow_blocking
def test_the_io_hop_floor_times_real_appends(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "floor.io_hop_rtt_p50_us")
    measurement = run(scenario.fn, Context(quick=True, workdir=tmp_path))
    assert measurement.unit == "us"
    assert 0 < measurement.value <= measurement.extra["p99_us"]
    assert _written(tmp_path) == 1000 * 300
    assert measurement.extra["appends"] == 900
