import io
import json
from pathlib import Path

import pytest

from bench import Context, Measurement, Scenario, Skip, Target, judge, run_bench
from bench._registry import all_scenarios


def _fixed(value: float, unit: str = "ops/s"):
    def measure(ctx: Context) -> Measurement:
        assert ctx.workdir.is_dir()
        return Measurement(value, unit, {"seen_quick": ctx.quick})

    return measure


def test_ratio_target_is_met_only_at_or_above_the_ratio():
    results = {"base": {"value": 100.0}}
    scenario = Scenario("ours", _fixed(0), Target("base", 2.0))
    assert judge(scenario, 200.0, results)["met"] is True
    assert judge(scenario, 199.0, results)["met"] is False
    assert judge(scenario, 250.0, results)["ratio"] == 2.5


def test_lower_is_better_target_inverts_the_comparison():
    results = {"echo": {"value": 10.0}}
    scenario = Scenario("rtt", _fixed(0), Target("echo", 3.0, "lower"))
    assert judge(scenario, 30.0, results)["met"] is True
    assert judge(scenario, 31.0, results)["met"] is False


def test_absolute_target_compares_with_the_number_itself():
    scenario = Scenario("memory", _fixed(0), Target(None, 4096.0, "lower"))
    assert judge(scenario, 4000.0, {})["met"] is True
    assert judge(scenario, 5000.0, {})["met"] is False


def test_missing_baseline_is_reported_not_judged():
    scenario = Scenario("ours", _fixed(0), Target("absent", 2.0))
    verdict = judge(scenario, 1.0, {})
    assert verdict["met"] is None
    assert "not measured" in verdict["note"]


def test_run_writes_json_with_every_scenario_and_verdict(tmp_path: Path):
    scenarios = [
        Scenario("base.x", _fixed(100.0), baseline=True),
        Scenario("ours.x", _fixed(300.0), Target("base.x", 2.0)),
    ]
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "out.json"
    code = run_bench(quick=True, json_path=path, out=out, err=err, scenarios=scenarios)
    assert code == 0
    document = json.loads(path.read_text())
    assert set(document["scenarios"]) == {"base.x", "ours.x"}
    ours = document["scenarios"]["ours.x"]
    assert ours["value"] == 300.0 and ours["unit"] == "ops/s"
    assert ours["target"]["ratio"] == 3.0 and ours["target"]["met"] is True
    assert ours["seen_quick"] is True
    assert document["meta"]["quick"] is True
    assert "ours.x" in out.getvalue() and "every target met" in out.getvalue()


def test_a_missed_target_makes_the_run_fail(tmp_path: Path):
    scenarios = [
        Scenario("base.x", _fixed(100.0), baseline=True),
        Scenario("ours.x", _fixed(150.0), Target("base.x", 2.0)),
    ]
    out = io.StringIO()
    assert run_bench(quick=True, out=out, err=io.StringIO(), scenarios=scenarios) == 1
    assert "targets missed: ours.x" in out.getvalue()


def test_async_scenarios_run_on_the_bus_loop():
    async def measure(ctx: Context) -> Measurement:
        import asyncio

        await asyncio.sleep(0)
        return Measurement(1.0, "x")

    out = io.StringIO()
    code = run_bench(quick=True, out=out, err=io.StringIO(), scenarios=[Scenario("a.b", measure)])
    assert code == 0 and "a.b" in out.getvalue()


def test_no_matching_scenario_is_an_error():
    err = io.StringIO()
    assert run_bench(quick=True, only=["nothing"], err=err, out=io.StringIO()) == 2
    assert "no scenario matches" in err.getvalue()


def test_registered_scenario_names_are_unique_and_include_the_runtime_set():
    names = [s.name for s in all_scenarios()]
    assert len(names) == len(set(names))
    for required in (
        "floor.write_batched",
        "seed.per_event",
        "peer.pykka.tell",
        "peer.pykka.ask",
        "bus.tell",
        "bus.ask",
        "memory.idle_actor_bytes",
    ):
        assert required in names


@pytest.mark.parametrize("name", ["floor.write_batched", "seed.per_event"])
def test_baseline_scenarios_measure_real_writes(tmp_path: Path, name: str):
    scenario = next(s for s in all_scenarios() if s.name == name)
    measurement = scenario.fn(Context(quick=True, workdir=tmp_path))
    assert measurement.value > 0
    written = sum(p.stat().st_size for p in tmp_path.rglob("*.jsonl"))
    assert written > 0 and written % 300 == 0


def test_only_runs_the_baselines_its_targets_need():
    ran: list[str] = []

    def record(name: str):
        def measure(ctx: Context) -> Measurement:
            ran.append(name)
            return Measurement(10.0, "x")

        return measure

    scenarios = [
        Scenario("base.a", record("base.a"), baseline=True),
        Scenario("base.b", record("base.b"), baseline=True),
        Scenario("ours.a", record("ours.a"), Target("base.a", 1.0)),
    ]
    out = io.StringIO()
    assert (
        run_bench(quick=True, only=["ours"], out=out, err=io.StringIO(), scenarios=scenarios) == 0
    )
    assert ran == ["base.a", "ours.a"]


def test_a_scenario_that_cannot_run_is_skipped_with_its_reason(tmp_path: Path):
    def unavailable(ctx: Context) -> Measurement:
        raise Skip("peer library missing: install the bench extra")

    scenarios = [
        Scenario("peer.x", unavailable, baseline=True),
        Scenario("ours.x", _fixed(5.0), Target("peer.x", 2.0)),
    ]
    out = io.StringIO()
    path = tmp_path / "out.json"
    code = run_bench(quick=True, json_path=path, out=out, err=io.StringIO(), scenarios=scenarios)
    assert code == 0
    assert "skipped peer.x: peer library missing" in out.getvalue()
    document = json.loads(path.read_text())
    assert document["skipped"] == {"peer.x": "peer library missing: install the bench extra"}
    assert document["scenarios"]["ours.x"]["target"]["met"] is None


def test_every_target_of_a_scenario_is_judged_and_its_baselines_run(tmp_path: Path):
    scenarios = [
        Scenario("base.a", _fixed(100.0), baseline=True),
        Scenario("base.b", _fixed(10.0), baseline=True),
        Scenario("ours.x", _fixed(300.0), Target("base.a", 2.0), also=(Target("base.b", 40.0),)),
    ]
    out = io.StringIO()
    path = tmp_path / "out.json"
    code = run_bench(
        quick=True, only=["ours"], json_path=path, out=out, err=io.StringIO(), scenarios=scenarios
    )
    # The first target is met (3 x base.a), the second is not (30 x base.b).
    assert code == 1
    assert "targets missed: ours.x" in out.getvalue()
    ours = json.loads(path.read_text())["scenarios"]["ours.x"]
    assert ours["target"]["met"] is True
    assert [(v["baseline"], v["ratio"], v["met"]) for v in ours["also"]] == [
        ("base.b", 30.0, False)
    ]
    rows = [line for line in out.getvalue().splitlines() if line.startswith("ours.x")]
    assert len(rows) == 2 and "base.a" in rows[0] and "base.b" in rows[1]
