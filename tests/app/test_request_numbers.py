"""Any number in any field of any request gets a result or a typed 400, never a 500.

Every numeric position a client controls (enrichment budgets, cadences, priorities
and metadata, live data, event fields, ids and flags) is given the extremes: the
largest finite floats, the smallest subnormal, 64-bit integer edges, integers and
exponents no reader can carry, and (MessagePack) NaN and the infinities. Providers
are configured at the most a cost may be, so the spend arithmetic meets the extremes
too.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from support.service import exchange, short_root

from actorbus import Service, open_service
from contracts import (
    Config,
    ConfigError,
    EnrichmentConfig,
    ProviderConfig,
    check_config,
    load_config,
)

pytestmark = pytest.mark.anyio

#: Numbers as JSON text: each is also sent as MessagePack when it has a value there.
JSON_NUMBERS = [
    "0", "-0.0", "5e-324", "1e300", "1.7976931348623157e308", "-1.7976931348623157e308",
    "9223372036854775807", "18446744073709551615", "-9223372036854775808",
    "18446744073709551616", "1" + "0" * 400, "1e400", "-1e400",
]  # fmt: skip
MSGPACK_NUMBERS: list[Any] = [
    0, -0.0, 5e-324, 1e300, 1.7976931348623157e308, -1.7976931348623157e308,
    2**63 - 1, 2**64 - 1, -(2**63), math.nan, math.inf, -math.inf,
]  # fmt: skip
#: What may answer: a result, or a typed refusal (a 502 is a provider that failed).
ALLOWED = {200, 201, 400, 409, 413, 422, 502}

HEAD = {"record_id": "r1", "user_id": "u1", "session_id": "s1", "source": "t"}
ITEM = {"source_id": "priced", "item_id": "i1", "metadata": {"n": 1}}
RUN = {"run_id": "run", "enrichment_type": "t", "adapter_version": "1", "items": [ITEM]}

N = "__N__"


def _requests() -> list[dict[str, Any]]:
    """One request per numeric position; ``N`` marks where the number goes."""
    free = {**ITEM, "source_id": "free", "item_id": "i2"}
    unknown = {**ITEM, "source_id": "unknown-cost", "item_id": "i3"}
    return [
        {"op": "enrich", "request": {**RUN, "budget_usd": N}},
        {"op": "enrich", "request": {**RUN, "budget_usd": N, "cadence_per_day": 1e6}},
        {"op": "enrich", "request": {**RUN, "cadence_per_day": N}},
        {"op": "enrich", "request": {**RUN, "budget_usd": 1e300, "cadence_per_day": N}},
        {"op": "enrich", "request": {**RUN, "items": [{**ITEM, "priority": N}, free, unknown]}},
        {"op": "enrich", "request": {**RUN, "items": [{**ITEM, "metadata": {"n": N}}]}},
        {"op": "enrich", "request": {**RUN, "items": [{**ITEM, "item_id": N}]}},
        {"op": "enrich", "request": {**RUN, "prune": N}},
        {"op": "live.write", "scope": "full", "data": {"schema_version": N}},
        {
            "op": "live.write",
            "scope": "full",
            "data": {"schema_version": 1, "extensions": {"items": {}}, "figures": {"n": N}},
        },
        {"op": "live.write", "scope": "full", "data": {"schema_version": 1}, "delete": N},
        {"op": "append", "event": {**HEAD, "n": N}},
        {"op": "append", "event": {**HEAD, "record_id": N}},
        {"op": "append.batch", "events": [{**HEAD, "record_id": "r2", "n": [N, {"m": N}]}]},
        {"op": "session.open", "user_id": N, "session_id": "s1"},
        {"op": "subscribe", "user_id": "u1", "session_id": "s1", "follow": N},
        {"op": "subscribe", "user_id": "u1", "session_id": "s1", "follow": False, "from_start": N},
    ]


def _jsonl_frames(number: str) -> list[bytes]:
    frames = []
    for i, request in enumerate(_requests()):
        text = msgspec.json.encode({"id": i, **request})
        frames.append(text.replace(b'"' + N.encode() + b'"', number.encode()) + b"\n")
    return frames


def _put(value: Any, number: Any) -> Any:
    if value == N:
        return number
    if isinstance(value, dict):
        return {k: _put(v, number) for k, v in value.items()}
    if isinstance(value, list):
        return [_put(v, number) for v in value]
    return value


def _msgpack_requests(number: Any) -> list[dict[str, Any]]:
    return [{"id": i, **_put(request, number)} for i, request in enumerate(_requests())]


async def _serving_config() -> Config:
    return load_config(
        """
[enrichment.providers.priced]
cost_usd = 1e12
usage = "exact"
[enrichment.providers.free]
cost_usd = 0
[enrichment.providers.unknown-cost]
"""
    )


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    root = short_root()
    try:
        async with open_service(root, await _serving_config()) as service:
            await service.recorder.open_session("u1", "s1")
            yield service
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _statuses(answers: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    return [(a.get("id"), a["status"]) for a in answers if "status" in a]


@pytest.mark.parametrize("number", JSON_NUMBERS)
async def test_any_json_number_in_any_field_is_a_result_or_a_typed_400(
    service: Service, number: str
) -> None:
    assert service.socket_path is not None
    frames = _jsonl_frames(number)
    answers = await exchange(service.socket_path, "jsonl", frames)
    statuses = _statuses(answers)
    assert len(statuses) == len(frames)
    assert [(i, s) for i, s in statuses if s not in ALLOWED] == []


@pytest.mark.parametrize("number", MSGPACK_NUMBERS, ids=repr)
async def test_any_msgpack_number_in_any_field_is_a_result_or_a_typed_400(
    service: Service, number: Any
) -> None:
    assert service.socket_path is not None
    requests = _msgpack_requests(number)
    answers = await exchange(service.socket_path, "msgpack", requests)
    statuses = _statuses(answers)
    assert len(statuses) == len(requests)
    assert [(i, s) for i, s in statuses if s not in ALLOWED] == []


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf, -1.0])
async def test_a_budget_that_is_not_a_finite_amount_is_a_400_naming_the_field(
    service: Service, number: float
) -> None:
    assert service.socket_path is not None
    (answer,) = await exchange(
        service.socket_path,
        "msgpack",
        [{"id": 1, "op": "enrich", "request": {**RUN, "budget_usd": number}}],
    )
    assert answer["status"] == 400
    assert "$.budget_usd" in answer["error"]["message"]


def test_a_configured_cost_is_bounded() -> None:
    config = EnrichmentConfig(providers={"p": ProviderConfig(cost_usd=1e300)})
    with pytest.raises(ConfigError, match=r"enrichment\.providers\.p\.cost_usd must be"):
        check_config(Config(enrichment=config))
