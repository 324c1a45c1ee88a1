"""Live-data scenario: scoped writes through the actor, lock and fsync included."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from actors import LiveData
from bus import open_bus
from contracts import LiveDataConfig

from ._harness import Context, Measurement, Scenario

__all__ = ["SCENARIOS"]

_ITEM = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}


def _data(scope: str, n: int) -> dict[str, Any]:
    if scope == "host-local":
        return {"schema_version": 1, "hosts": {f"web-{i}": {"load": n % 7} for i in range(8)}}
    return {"extensions": {"items": {"trend-finder": {**_ITEM, "topics": [f"t{n}"] * 8}}}}


async def _scoped_writes(ctx: Context) -> Measurement:
    writes = ctx.scale(2_000, 300)
    root = ctx.scratch("live")
    (root / "data").mkdir()
    example = {"schema_version": 1, "extensions": {"items": {}}}
    (root / "data" / "live-data.example.json").write_text(json.dumps(example))
    waits: list[float] = []
    async with open_bus() as bus:
        live = LiveData(bus, root, LiveDataConfig())
        scopes = ("host-local", "trend-finder")
        start = time.perf_counter()
        for n in range(writes):
            result = await live.write(scopes[n % 2], _data(scopes[n % 2], n))
            waits.append(result.lock_wait_ms)
            if n % 64 == 0:
                ctx.progress(n / writes)
        elapsed = time.perf_counter() - start
    return Measurement(
        writes / elapsed,
        "writes/s",
        {
            "writes": writes,
            "scopes": list(scopes),
            "bytes": result.bytes,
            "lock_wait_ms_p50": statistics.median(waits),
        },
    )


SCENARIOS: list[Scenario] = [
    Scenario(
        "live.scoped_writes",
        _scoped_writes,
        target=None,
        doc="scoped live-data writes per second, host-local and trend-finder alternating, "
        "each under the generated-data lock with an fsynced atomic replace",
    ),
]
