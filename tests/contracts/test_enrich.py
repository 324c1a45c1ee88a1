from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from contracts import (
    CacheReport,
    EnrichCounts,
    EnrichItem,
    EnrichReport,
    EnrichRequest,
    InvalidRequest,
    ItemReport,
    Projection,
    RunSpend,
    SourceSpend,
    SpendReport,
    decode_enrich_request,
    load_config,
)

GOOD: dict[str, Any] = {
    "run_id": "run-1",
    "enrichment_type": "summary",
    "adapter_version": "v3",
    "items": [
        {"source_id": "gh", "item_id": "1", "metadata": {"a": 1}, "priority": 2, "force": True},
        {"source_id": "gh", "item_id": None, "metadata": {}},
    ],
    "budget_usd": 1.5,
    "cadence_per_day": 24,
    "prune": True,
}


def test_a_well_formed_request_decodes_from_a_dict_and_from_json() -> None:
    request = decode_enrich_request(GOOD)
    assert request == decode_enrich_request(msgspec.json.encode(GOOD))
    assert request.items[0] == EnrichItem("gh", "1", {"a": 1}, 2.0, True)
    assert request.items[1].priority == 0.0 and request.items[1].force is False
    assert request.budget_usd == 1.5 and request.cadence_per_day == 24 and request.prune


def test_optional_fields_default() -> None:
    request = decode_enrich_request(
        {"run_id": "r", "enrichment_type": "t", "adapter_version": "v", "items": []}
    )
    assert request.budget_usd is None and request.cadence_per_day is None
    assert request.prune is False


@pytest.mark.parametrize(
    "change",
    [
        {"run_id": None},
        {"items": "nope"},
        {"items": [{"item_id": "x", "metadata": {}}]},
        {"items": [{"source_id": "s", "item_id": 5, "metadata": {}}]},
        {"items": [{"source_id": "s", "item_id": "x", "metadata": []}]},
        {"items": [{"source_id": "", "item_id": "x"}]},
        {"items": [{"source_id": "s", "item_id": "x", "priority": math.nan}]},
        {"budget_usd": -1},
        {"budget_usd": math.inf},
        {"cadence_per_day": -0.5},
        {"adapter_version": ""},
        {"surprise": 1},
        {"prune": "yes"},
    ],
)
def test_a_bad_shape_or_value_is_invalid_request(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        decode_enrich_request({**GOOD, **change})


def test_missing_fields_and_garbage_are_invalid_request() -> None:
    for bad in ({}, b"{not json", b"[1,2]", "x" * 3, b"[" * 100_000):
        with pytest.raises(InvalidRequest):
            decode_enrich_request(bad)


def test_ranges_are_in_the_contract_types_and_decoding_names_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.budget_usd"):
        msgspec.convert({**GOOD, "budget_usd": -2}, EnrichRequest)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**GOOD, "items": 3}, EnrichRequest)
    for field, value in [("budget_usd", float("nan")), ("cadence_per_day", 2e6)]:
        with pytest.raises(InvalidRequest, match=rf"at `\$\.{field}`"):
            decode_enrich_request({**GOOD, field: value})
    # Built in Python, where msgspec checks no ranges, the same bound holds.
    with pytest.raises(InvalidRequest, match="budget_usd"):
        EnrichRequest(run_id="r", enrichment_type="t", adapter_version="1", budget_usd=-2)


def test_the_report_uses_the_contract_field_names() -> None:
    report = EnrichReport(
        run_id="r",
        counts=EnrichCounts(),
        items=[ItemReport("s", None, "ineligible")],
        spend=SpendReport(
            sources=[SourceSpend("s", "free", 0.0, 0)],
            run=RunSpend("free", 0.0, False, 0.0),
            projection=Projection("cadence-unavailable", None),
        ),
        cache=CacheReport("ok"),
    )
    wire = msgspec.json.decode(msgspec.json.encode(report))
    assert list(wire) == ["run_id", "counts", "items", "spend", "cache"]
    assert list(wire["counts"]) == [
        "eligible", "ineligible", "hits", "misses", "written",
        "skipped", "stale", "pruned", "retained", "malformed",
    ]  # fmt: skip
    assert list(wire["items"][0])[:4] == ["source_id", "item_id", "state", "summary"]
    assert list(wire["spend"]) == ["sources", "run", "projection"]
    assert list(wire["spend"]["sources"][0]) == ["source_id", "state", "usd", "calls"]
    assert list(wire["spend"]["run"]) == ["state", "usd", "capped", "saved_usd"]
    assert wire["spend"]["projection"] == {"state": "cadence-unavailable", "monthly_usd": None}
    assert wire["cache"] == {"state": "ok"}


def test_provider_configuration_reads_every_kind() -> None:
    config = load_config(
        """
[enrichment.providers.sim]
kind = "simulated"
cost_usd = 0.01
usage = "exact"
latency_ms = 5
[enrichment.providers.web]
kind = "http"
url = "http://127.0.0.1:9/enrich"
headers = { authorization = "Bearer x" }
timeout_s = 2
[enrichment.providers.cli]
kind = "command"
command = ["enricher", "--json"]
[enrichment.providers.py]
kind = "python"
target = "package.module:enrich"
cost_usd = 0
"""
    ).enrichment
    assert config.providers["sim"].usage == "exact"
    assert config.providers["web"].headers == {"authorization": "Bearer x"}
    assert config.providers["cli"].cost_usd is None
    assert config.providers["py"].cost_usd == 0


@pytest.mark.parametrize(
    "line", ["cost_usd = -1", "failure_rate = 2", "batch_size = 0", "timeout_s = 0", "kind = 'ftp'"]
)
def test_bad_provider_configuration_is_invalid_request(line: str) -> None:
    with pytest.raises(InvalidRequest):
        load_config(f"[enrichment.providers.x]\n{line}\n")
