from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from actors import Enrichment, FileCacheStore, ProviderAnswer, ProviderItem, SimulatedProvider
from actors.enrich.keys import slot_of
from actors.enrich.store import SHARD_DIGITS, LoadResult
from bus import open_bus
from contracts import (
    EnrichItem,
    EnrichmentConfig,
    EnrichReport,
    EnrichRequest,
    InvalidRequest,
    ProviderConfig,
    ProviderError,
    decode_enrich_request,
)

pytestmark = pytest.mark.anyio


def config(**sources: ProviderConfig) -> EnrichmentConfig:
    return EnrichmentConfig(providers=sources)


PAID = ProviderConfig(kind="simulated", cost_usd=0.01, usage="estimated")
EXACT = ProviderConfig(kind="simulated", cost_usd=0.01, usage="exact")


def items(source: str, count: int, **extra: Any) -> list[EnrichItem]:
    meta = [{"title": f"t{i}", "n": i, **extra} for i in range(count)]
    return [EnrichItem(source, f"{source}-{i}", m) for i, m in enumerate(meta)]


def request(its: list[EnrichItem], run_id: str = "r", **kw: Any) -> EnrichRequest:
    return EnrichRequest(run_id, "summary", kw.pop("adapter_version", "v1"), its, **kw)


def states(report: EnrichReport) -> list[str]:
    return [i.state for i in report.items]


class FakePaidProvider:
    """A fake of a paid remote provider: records calls, can be held or made to fail."""

    def __init__(self, usd: float | None = None, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.usd = usd
        self.fail = fail
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()

    async def enrich(self, batch: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        self.calls.append([i.item_id for i in batch])
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ProviderError("fake provider is down")
        return [ProviderAnswer(summary=f"sum {i.item_id}", usd=self.usd) for i in batch]

    @property
    def items(self) -> int:
        return sum(len(c) for c in self.calls)


async def test_empty_request_is_a_valid_run_with_zero_counts(tmp_path: Path) -> None:
    async with open_bus() as bus:
        report = await Enrichment(bus, tmp_path, config()).run(request([]))
    assert report.counts == type(report.counts)()
    assert report.items == []
    assert report.spend.run.usd == 0
    assert report.cache.state == "ok"
    assert (tmp_path / "cache" / "enrichment").is_dir()


async def test_unchanged_rerun_makes_no_provider_call_and_reports_savings(tmp_path: Path) -> None:
    provider = SimulatedProvider("src", PAID)
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": provider})
        first = await enrichment.run(request(items("src", 5)))
        calls = provider.calls
        second = await enrichment.run(request(items("src", 5)))
    assert states(first) == ["enriched"] * 5
    assert first.counts.written == 5 and first.counts.misses == 5
    assert provider.calls == calls
    assert states(second) == ["hit"] * 5
    assert second.counts.hits == 5 and second.counts.misses == 0
    assert [i.summary for i in second.items] == [i.summary for i in first.items]
    assert second.spend.run.usd == 0
    assert second.spend.run.saved_usd == pytest.approx(0.05)
    assert second.spend.sources[0].calls == 0


async def test_changed_metadata_misses_only_that_item(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        await enrichment.run(request(items("src", 3)))
        changed = items("src", 3)
        changed[1] = EnrichItem("src", "src-1", {"title": "new", "n": 1})
        report = await enrichment.run(request(changed))
    assert states(report) == ["hit", "enriched", "hit"]
    assert fake.calls[-1] == ["src-1"]


async def test_key_order_of_metadata_does_not_change_the_fingerprint(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        meta = {"a": 1, "b": {"x": [1, 2], "y": "z"}}
        await enrichment.run(request([EnrichItem("src", "i", meta)]))
        flipped = {"b": {"y": "z", "x": [1, 2]}, "a": 1}
        report = await enrichment.run(request([EnrichItem("src", "i", flipped)]))
    assert states(report) == ["hit"]
    assert fake.items == 1


async def test_items_without_a_stable_id_are_counted_and_never_cached(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        batch = [EnrichItem("src", None, {"a": 1}), EnrichItem("src", "", {"a": 1})]
        first = await enrichment.run(request(batch))
        second = await enrichment.run(request(batch))
    for report in (first, second):
        assert states(report) == ["ineligible", "ineligible"]
        assert report.counts.ineligible == 2 and report.counts.eligible == 0
        assert report.counts.written == 0
    assert fake.calls == []


async def test_forced_items_are_enriched_again(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        await enrichment.run(request(items("src", 2)))
        forced = EnrichItem("src", "src-1", {"title": "t1", "n": 1}, force=True)
        again = [items("src", 2)[0], forced]
        report = await enrichment.run(request(again))
    assert states(report) == ["hit", "enriched"]
    assert fake.calls[-1] == ["src-1"]


async def test_budget_is_never_exceeded_and_highest_priority_goes_first(tmp_path: Path) -> None:
    its = [EnrichItem("src", f"i{p}", {"p": p}, priority=float(p)) for p in range(10)]
    for budget in (0.0, 0.015, 0.03, 0.05, 0.099, 0.1, 1.0):
        root = tmp_path / str(budget)
        fake = FakePaidProvider()
        async with open_bus() as bus:
            enrichment = Enrichment(bus, root, config(src=PAID), {"src": fake})
            report = await enrichment.run(request(its, budget_usd=budget))
        affordable = min(10, int(round(budget * 100, 6)))
        paid = [i.item_id for i in report.items if i.state == "enriched"]
        assert report.spend.run.usd <= budget + 1e-12
        assert sorted(paid) == sorted(f"i{p}" for p in range(10 - affordable, 10))
        assert report.counts.skipped == 10 - affordable
        assert report.spend.run.capped is (affordable < 10)
        if fake.calls:
            assert fake.calls[0][0] == "i9"


async def test_budget_granularity_is_the_item_across_sources(tmp_path: Path) -> None:
    cheap = ProviderConfig(kind="simulated", cost_usd=0.01)
    dear = ProviderConfig(kind="simulated", cost_usd=0.05)
    its = [
        EnrichItem("dear", "d1", {}, priority=2),
        EnrichItem("dear", "d2", {}, priority=1),
        EnrichItem("cheap", "c1", {}, priority=0),
    ]
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(cheap=cheap, dear=dear))
        report = await enrichment.run(request(its, budget_usd=0.07))
    # d1 (0.05) fits, d2 does not (0.02 left), but c1 (0.01) still does.
    assert states(report) == ["enriched", "skipped", "enriched"]
    assert report.spend.run.usd == pytest.approx(0.06)
    assert report.spend.run.capped is True


async def test_skipped_items_keep_their_cached_summary(tmp_path: Path) -> None:
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        first = await enrichment.run(request(items("src", 2)))
        changed = items("src", 2, extra=True)
        report = await enrichment.run(request(changed, budget_usd=0.0))
    assert states(report) == ["skipped", "skipped"]
    assert [i.summary for i in report.items] == [i.summary for i in first.items]
    assert report.counts.written == 0 and report.spend.run.capped


async def test_budget_freed_by_failures_pays_for_skipped_items(tmp_path: Path) -> None:
    down = ProviderConfig(kind="simulated", cost_usd=0.01, failure_rate=1.0)
    its = [EnrichItem("down", "x", {}, priority=9), EnrichItem("src", "y", {}, priority=1)]
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(down=down, src=PAID))
        report = await enrichment.run(request(its, budget_usd=0.01))
    assert states(report) == ["failed", "enriched"]
    assert report.spend.run.usd == pytest.approx(0.01)
    assert report.spend.run.capped is False


async def test_unknown_cost_is_never_called_under_a_budget(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(), {"src": fake})
        capped = await enrichment.run(request(items("src", 2), budget_usd=5.0))
        free = await enrichment.run(request(items("src", 2)))
    assert states(capped) == ["skipped", "skipped"] and capped.spend.run.capped
    assert states(free) == ["enriched", "enriched"]
    assert free.spend.sources[0].state == "unavailable"


async def test_prune_then_rerun_misses_exactly_the_pruned_items(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    keep_other = [EnrichItem("other", "o1", {})]
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID, other=PAID), {"src": fake})
        await enrichment.run(request(items("src", 6) + keep_other))
        pruning = await enrichment.run(request(items("src", 6)[:4], prune=True))
        rerun = await enrichment.run(request(items("src", 6) + keep_other))
    assert pruning.counts.pruned == 2
    assert pruning.counts.retained == 4
    assert states(rerun) == ["hit"] * 4 + ["enriched", "enriched", "hit"]
    assert fake.calls[-1] == ["src-4", "src-5"]


async def test_current_evidence_is_never_pruned(tmp_path: Path) -> None:
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        await enrichment.run(request(items("src", 3)))
        pruning = await enrichment.run(request(items("src", 3), prune=True))
        rerun = await enrichment.run(request(items("src", 3)))
    assert pruning.counts.pruned == 0 and pruning.counts.retained == 3
    assert states(rerun) == ["hit"] * 3


async def test_adapter_version_change_misses_and_counts_stale(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        await enrichment.run(request(items("src", 3)))
        bumped = await enrichment.run(request(items("src", 3), adapter_version="v2"))
        again = await enrichment.run(request(items("src", 3), adapter_version="v2"))
    assert states(bumped) == ["enriched"] * 3
    assert bumped.counts.stale == 3 and bumped.counts.misses == 3
    assert states(again) == ["hit"] * 3 and again.counts.stale == 0
    assert fake.items == 6


async def test_cadence_projection_and_cadence_unavailable(tmp_path: Path) -> None:
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        known = await enrichment.run(request(items("src", 3), cadence_per_day=4))
        unknown = await enrichment.run(request(items("src", 3, v=2), cadence_per_day=None))
    assert known.spend.run.usd == pytest.approx(0.03)
    assert known.spend.projection.state == "projected"
    assert known.spend.projection.monthly_usd == pytest.approx(0.03 * 4 * 30)
    assert unknown.spend.projection.state == "cadence-unavailable"
    assert unknown.spend.projection.monthly_usd is None


async def test_spend_labels_per_source_and_per_run(tmp_path: Path) -> None:
    free = ProviderConfig(kind="simulated", cost_usd=0.0)
    unknown = ProviderConfig(kind="simulated")
    cfg = config(exact=EXACT, est=PAID, free=free, unknown=unknown)
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, cfg)
        exact_free = await enrichment.run(request(items("exact", 2) + items("free", 2)))
        mixed = await enrichment.run(request(items("exact", 2, v=1) + items("est", 2)))
        dark = await enrichment.run(request(items("unknown", 1) + items("est", 1, v=1)))
    by = {s.source_id: s for s in exact_free.spend.sources}
    assert by["exact"].state == "exact" and 0.01 <= by["exact"].usd <= 0.02
    assert by["free"].state == "free" and by["free"].usd == 0
    assert exact_free.spend.run.state == "exact"
    assert mixed.spend.run.state == "estimated"
    labels = {s.source_id: s.state for s in mixed.spend.sources}
    assert labels == {"est": "estimated", "exact": "exact"}
    assert dark.spend.run.state == "unavailable"
    assert [s.calls for s in dark.spend.sources] == [1, 1]


async def test_concurrent_identical_requests_pay_once(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    fake.gate = anyio.Event()
    reports: list[EnrichReport] = []
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})

        async def run(run_id: str) -> None:
            reports.append(await enrichment.run(request(items("src", 4), run_id)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a")
            await fake.entered.wait()
            tg.start_soon(run, "b")
            await anyio.sleep(0.05)  # let b claim what it can while a's call is held
            fake.gate.set()
    assert fake.items == 4 and len(fake.calls) == 1
    assert sorted(r.spend.run.usd for r in reports) == pytest.approx([0.0, 0.04])
    for report in reports:
        assert states(report) == ["enriched"] * 4
        assert all(i.summary and i.summary.startswith("sum ") for i in report.items)


async def test_a_slow_provider_does_not_hold_up_an_unrelated_run(tmp_path: Path) -> None:
    slow = FakePaidProvider()
    slow.gate = anyio.Event()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(slow=PAID, fast=PAID), {"slow": slow})
        async with anyio.create_task_group() as tg:
            tg.start_soon(enrichment.run, request(items("slow", 1), "a"))
            await slow.entered.wait()
            fast = await enrichment.run(request(items("fast", 2), "b"))
            assert not slow.gate.is_set()
            slow.gate.set()
    assert states(fast) == ["enriched", "enriched"]


async def test_provider_failure_fails_items_charges_nothing_and_caches_nothing(
    tmp_path: Path,
) -> None:
    fake = FakePaidProvider(fail=True)
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        first = await enrichment.run(request(items("src", 2)))
        fake.fail = False
        second = await enrichment.run(request(items("src", 2)))
    assert states(first) == ["failed", "failed"]
    assert first.items[0].error is not None
    assert first.items[0].error.code == "ProviderError"
    assert first.items[0].error.message == "fake provider is down"
    assert first.spend.run.usd == 0 and first.counts.written == 0
    assert first.spend.sources[0].calls == 1
    assert states(second) == ["enriched", "enriched"]


async def test_a_provider_crash_is_reported_by_type_only(tmp_path: Path) -> None:
    class Crashing:
        async def enrich(self, batch: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
            raise RuntimeError(f"secret detail {tmp_path}")

    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": Crashing()})
        report = await enrichment.run(request(items("src", 1)))
    assert report.items[0].error is not None
    assert report.items[0].error.message == "provider for 'src' raised RuntimeError"


async def test_source_without_provider_fails_its_items(tmp_path: Path) -> None:
    async with open_bus() as bus:
        report = await Enrichment(bus, tmp_path, config()).run(request(items("nobody", 1)))
    assert states(report) == ["failed"]
    assert report.items[0].error is not None
    assert "no provider is configured" in report.items[0].error.message
    assert "nobody" not in report.items[0].error.message  # the client's source, not repeated


async def test_corrupt_cache_files_are_survived_and_repaired(tmp_path: Path) -> None:
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        await enrichment.run(request(items("src", 20)))
        shards = sorted((tmp_path / "cache" / "enrichment").rglob("*.json"))
        shards[0].write_bytes(b"\x00not json{{{")
        shards[1].write_text('{"v": 1, "entries": {"x": {"summary": 5}}}')
        survived = await enrichment.run(request(items("src", 20)))
        repaired = await enrichment.run(request(items("src", 20)))
    assert survived.counts.malformed >= 2
    assert survived.counts.hits + survived.counts.misses == 20
    assert survived.counts.misses >= 1
    assert set(states(survived)) <= {"hit", "enriched"}
    assert states(repaired) == ["hit"] * 20 and repaired.counts.malformed == 0


async def test_unreadable_cache_directory_degrades_but_answers(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "enrichment").write_text("a file where the directory belongs")
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        first = await enrichment.run(request(items("src", 2)))
        second = await enrichment.run(request(items("src", 2)))
    for report in (first, second):
        assert report.cache.state == "degraded"
        assert states(report) == ["enriched", "enriched"]
        assert report.counts.written == 0


async def test_unsafe_summaries_fail_and_are_not_cached(tmp_path: Path) -> None:
    class Leaky:
        async def enrich(self, batch: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
            return [
                ProviderAnswer(summary=f"see {tmp_path}/cache/x"),
                ProviderAnswer(summary="token ghp_" + "a" * 36),
                ProviderAnswer(summary="x" * 10_000),
            ]

    async with open_bus() as bus:
        cfg = EnrichmentConfig(providers={"src": PAID}, max_summary_bytes=100)
        enrichment = Enrichment(bus, tmp_path, cfg, {"src": Leaky()})
        report = await enrichment.run(request(items("src", 3)))
    assert states(report) == ["failed", "failed", "enriched"]
    summary = report.items[2].summary
    assert summary is not None and len(summary.encode()) <= 100
    assert report.counts.written == 1


async def test_no_report_carries_the_root_or_a_cache_path(tmp_path: Path) -> None:
    root = tmp_path / "private-root"
    root.mkdir()

    class Echo:
        async def enrich(self, batch: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
            return [
                ProviderAnswer(summary=str(root / "cache" / "enrichment")),
                ProviderAnswer(error=f"failed reading {root}/cache"),
            ]

    async def boom(batch: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        raise ProviderError(f"could not open {root}")

    class Boom:
        enrich = staticmethod(boom)

    cmd = ProviderConfig(kind="command", command=[str(root / "missing-program")], cost_usd=0.0)
    async with open_bus() as bus:
        enrichment = Enrichment(
            bus, root, config(echo=PAID, boom=PAID, cmd=cmd), {"echo": Echo(), "boom": Boom()}
        )
        its = items("echo", 2) + items("boom", 1) + items("cmd", 1) + items("none", 1)
        reports = [
            await enrichment.run(request(its, prune=True, budget_usd=1, cadence_per_day=1)),
            await enrichment.run(request(its, prune=True)),
        ]
        shards = list((root / "cache").rglob("*.json"))
        for shard in shards:
            shard.write_bytes(b"garbage")
        reports.append(await enrichment.run(request(its)))
    for report in reports:
        text = msgspec.json.encode(report).decode()
        assert str(root) not in text
        assert "cache/enrichment" not in text
        assert os.sep + "missing-program" not in text


async def test_a_cancelled_run_releases_the_calls_others_share(tmp_path: Path) -> None:
    fake = FakePaidProvider()
    fake.gate = anyio.Event()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        shared: list[EnrichReport] = []
        async with anyio.create_task_group() as tg:
            owner = anyio.CancelScope()

            async def own() -> None:
                with owner:
                    await enrichment.run(request(items("src", 1), "owner"))

            async def share() -> None:
                shared.append(await enrichment.run(request(items("src", 1), "sharer")))

            tg.start_soon(own)
            await fake.entered.wait()
            tg.start_soon(share)
            await anyio.sleep(0.05)
            owner.cancel()
        fake.gate.set()
        after = await enrichment.run(request(items("src", 1), "after"))
    assert states(shared[0]) == ["failed"]
    assert states(after) == ["enriched"]


async def test_bad_requests_are_invalid_request(tmp_path: Path) -> None:
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        with pytest.raises(InvalidRequest):
            await enrichment.run(request([EnrichItem("src", "a", {"x": object()})]))
        with pytest.raises(InvalidRequest):
            await enrichment.run({"run_id": "r"})  # type: ignore[arg-type]
        # Nothing was claimed by the failed run: a good one still works.
        report = await enrichment.run(request(items("src", 1)))
    assert states(report) == ["enriched"]


async def test_incomplete_provider_configuration_is_rejected(tmp_path: Path) -> None:
    async with open_bus() as bus:
        for bad in (
            ProviderConfig(kind="http"),
            ProviderConfig(kind="command"),
            ProviderConfig(kind="python"),
            ProviderConfig(kind="python", target="no.such.module:fn"),
        ):
            with pytest.raises(InvalidRequest):
                Enrichment(bus, tmp_path, config(src=bad), name=f"x{id(bad)}")


async def test_a_run_reads_only_the_shards_of_its_own_items(tmp_path: Path) -> None:
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID))
        await enrichment.run(request(items("src", 300)))
        mine = slot_of("summary", "src", "src-0")[:SHARD_DIGITS] + ".json"
        shards = list((tmp_path / "cache" / "enrichment").rglob("*.json"))
        assert len(shards) > 100  # 300 items spread over most of the 256 shards
        for shard in shards:
            if shard.name != mine:
                shard.write_bytes(b"unreadable")
        one = await enrichment.run(request(items("src", 1)))
        everything = await enrichment.run(request(items("src", 300)))
    assert states(one) == ["hit"] and one.counts.malformed == 0
    assert everything.counts.malformed == len(shards) - 1


class SlowFileStore(FileCacheStore):
    """The real file store, with lookups held until the test lets them go."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.release = threading.Event()

    def load(self, enrichment_type: str, slots: Iterable[str]) -> LoadResult:
        self.entered.set()
        self.release.wait(10)
        return super().load(enrichment_type, slots)


async def test_a_run_cancelled_during_its_lookup_leaves_no_orphan_claim(tmp_path: Path) -> None:
    store = SlowFileStore(tmp_path)
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake}, store=store)
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def doomed() -> None:
                with scope:
                    await enrichment.run(request(items("src", 1), "doomed"))

            tg.start_soon(doomed)
            await anyio.to_thread.run_sync(store.entered.wait, 10)
            scope.cancel()
            store.release.set()
        with anyio.fail_after(5):
            report = await enrichment.run(request(items("src", 1), "next"))
    assert states(report) == ["enriched"]


@pytest.mark.parametrize("budget", [1e300, 1.7976931348623157e308])
async def test_a_huge_finite_budget_is_a_result_not_an_overflow(
    tmp_path: Path, budget: float
) -> None:
    fake = FakePaidProvider()
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=PAID), {"src": fake})
        report = await enrichment.run(request(items("src", 3), budget_usd=budget))
    assert states(report) == ["enriched"] * 3
    assert report.spend.run.usd == 0.03 and report.spend.run.capped is False


async def test_a_cadence_too_large_to_project_is_a_typed_400() -> None:
    with pytest.raises(InvalidRequest, match="cadence_per_day must be at most"):
        request(items("src", 1), cadence_per_day=1e300)
    with pytest.raises(InvalidRequest, match=r"<= 1000000\.0 at `\$\.cadence_per_day`"):
        decode_enrich_request(
            {
                "run_id": "r",
                "enrichment_type": "t",
                "adapter_version": "v",
                "items": [],
                "cadence_per_day": 1e300,
            }
        )


async def test_the_largest_cadence_and_costs_project_a_finite_month(tmp_path: Path) -> None:
    fake = FakePaidProvider(usd=1e300)  # a provider reporting an absurd cost is not believed
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path, config(src=EXACT), {"src": fake})
        report = await enrichment.run(
            request(items("src", 4), cadence_per_day=1e6, budget_usd=1e300)
        )
    assert states(report) == ["enriched"] * 4
    assert report.spend.run.usd == 0.04 and report.spend.run.state == "estimated"
    monthly = report.spend.projection.monthly_usd
    assert monthly is not None and math.isfinite(monthly)
    msgspec.json.encode(report)  # every figure is a finite number JSON carries
