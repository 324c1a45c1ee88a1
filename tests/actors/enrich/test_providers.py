from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actors import ProviderAnswer, ProviderItem, PythonProvider, SimulatedProvider
from actors.enrich.providers import answers_from
from contracts import InvalidRequest, ProviderConfig, ProviderError

pytestmark = pytest.mark.anyio


def batch(count: int, source: str = "src") -> list[ProviderItem]:
    return [
        ProviderItem(source, f"i{n}", "summary", "v1", f"{n:064x}", {"title": f"T{n}", "n": n})
        for n in range(count)
    ]


async def test_the_simulator_is_deterministic_and_reports_exact_usage() -> None:
    config = ProviderConfig(kind="simulated", cost_usd=0.02, usage="exact", failure_rate=0.3)
    first = await SimulatedProvider("src", config).enrich(batch(40))
    second = await SimulatedProvider("src", config).enrich(batch(40))
    assert first == second
    failed = [a for a in first if a.error is not None]
    assert 0 < len(failed) < 40
    for answer in first:
        if answer.error is None:
            assert answer.summary is not None and answer.summary.startswith("T")
            assert answer.usd is not None and 0.01 <= answer.usd <= 0.02
    reseeded = msgspec.structs.replace(config, seed=7)
    assert await SimulatedProvider("src", reseeded).enrich(batch(40)) != first


async def test_the_simulator_reports_no_usage_when_estimated_and_sleeps_its_latency() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    config = ProviderConfig(kind="simulated", cost_usd=0.02, latency_ms=100)
    provider = SimulatedProvider("src", config, sleep=sleep)
    answers = await provider.enrich(batch(3))
    assert all(a.usd is None and a.summary for a in answers)
    assert len(slept) == 1 and 0.05 <= slept[0] <= 0.15
    assert (provider.calls, provider.items) == (1, 3)


async def test_the_simulator_fails_everything_at_rate_one() -> None:
    config = ProviderConfig(kind="simulated", failure_rate=1.0)
    answers = await SimulatedProvider("src", config).enrich(batch(5))
    assert all(a.error == "simulated failure" for a in answers)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "enrich_plugin_for_tests.py").write_text(
        "import time\n"
        "def sync_enrich(items):\n"
        "    time.sleep(0.01)\n"
        "    return [{'summary': 'sync ' + i.item_id, 'usd': 0.5} for i in items]\n"
        "async def async_enrich(items):\n"
        "    return ['async ' + i.item_id for i in items]\n"
        "def short(items):\n"
        "    return []\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "enrich_plugin_for_tests"


async def test_python_targets_sync_and_async(plugin: str) -> None:
    sync = PythonProvider.from_target(f"{plugin}:sync_enrich")
    assert await sync.enrich(batch(2)) == [
        ProviderAnswer(summary="sync i0", usd=0.5),
        ProviderAnswer(summary="sync i1", usd=0.5),
    ]
    coro = PythonProvider.from_target(f"{plugin}:async_enrich")
    assert [a.summary for a in await coro.enrich(batch(2))] == ["async i0", "async i1"]
    with pytest.raises(ProviderError):
        await PythonProvider.from_target(f"{plugin}:short").enrich(batch(2))


@pytest.mark.parametrize("target", ["nocolon", ":x", "m:", "no_such_module_xyz:f"])
async def test_bad_python_targets_are_invalid_request(target: str) -> None:
    with pytest.raises(InvalidRequest):
        PythonProvider.from_target(target)


async def test_a_target_that_is_not_callable_is_invalid_request(plugin: str) -> None:
    with pytest.raises(InvalidRequest):
        PythonProvider.from_target(f"{plugin}:NOT_CALLABLE")


def test_answers_are_checked_for_shape_and_count() -> None:
    assert answers_from(["a", {"error": "x"}], 2) == [
        ProviderAnswer(summary="a"),
        ProviderAnswer(error="x"),
    ]
    for bad, count in ((["a"], 2), ("ab", 2), ([{"usd": "lots"}], 1), ([3], 1), (None, 0)):
        with pytest.raises(ProviderError):
            answers_from(bad, count)
