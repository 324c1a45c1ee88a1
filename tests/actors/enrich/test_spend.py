from __future__ import annotations

from actors.enrich.spend import Budget, SourceTally, combine, spend_report, to_nanos


def test_labels_combine_as_the_spec_says() -> None:
    assert combine(["exact", "estimated"]) == "estimated"
    assert combine(["exact", "free"]) == "exact"
    assert combine(["free"]) == "free"
    assert combine(["estimated", "unavailable", "exact"]) == "unavailable"
    assert combine([]) == "exact"


def test_a_reported_cost_is_exact_a_configured_one_estimated() -> None:
    tally = SourceTally(to_nanos(0.01))
    assert tally.charge(0.004, failed=False) == to_nanos(0.004)
    assert tally.state() == "exact"
    assert tally.charge(None, failed=False) == to_nanos(0.01)
    assert tally.state() == "estimated"


def test_failures_charge_only_what_was_reported() -> None:
    tally = SourceTally(to_nanos(0.01))
    assert tally.charge(None, failed=True) == 0
    assert tally.labels == set()
    assert tally.charge(0.002, failed=True) == to_nanos(0.002)
    assert tally.state() == "exact"


def test_free_unknown_and_unpaid_sources() -> None:
    free = SourceTally(0)
    free.charge(None, failed=False)
    assert free.state() == "free" and free.nanos == 0
    unknown = SourceTally(None)
    unknown.charge(None, failed=False)
    assert unknown.state() == "unavailable"
    assert SourceTally(to_nanos(1)).state() == "exact"  # not called: exactly nothing spent
    assert SourceTally(0).state() == "free"
    bogus = SourceTally(None)
    bogus.charge(float("nan"), failed=False)
    assert bogus.state() == "unavailable"


def test_budget_arithmetic_is_exact() -> None:
    budget = Budget(0.03)
    cost = to_nanos(0.01)
    for _ in range(3):
        remaining = budget.remaining()
        assert remaining is not None and cost <= remaining
        budget.reserved += cost
    assert budget.remaining() == 0
    budget.settle(3 * cost, to_nanos(0.015))
    assert budget.remaining() == to_nanos(0.015)
    assert Budget(None).remaining() is None


def test_report_projects_monthly_or_says_cadence_unavailable() -> None:
    tally = SourceTally(to_nanos(0.25))
    tally.calls = 1
    tally.charge(None, failed=False)
    tally.saved = to_nanos(0.5)
    report = spend_report({"s": tally}, capped=True, cadence_per_day=2)
    assert report.run.usd == 0.25 and report.run.saved_usd == 0.5 and report.run.capped
    assert (report.projection.state, report.projection.monthly_usd) == ("projected", 15.0)
    report = spend_report({"s": tally}, capped=False, cadence_per_day=None)
    assert (report.projection.state, report.projection.monthly_usd) == ("cadence-unavailable", None)
    assert [s.source_id for s in spend_report({"b": tally, "a": tally}, False, None).sources] == [
        "a",
        "b",
    ]
