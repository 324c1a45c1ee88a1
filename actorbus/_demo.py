"""The demo job: the whole service on a fresh root, driven from inside and outside the process.

Everything is real: the service listens on its socket, producer processes talk to
it with the project's client, in-process producers use the same recorder, the logs
are read back and checked line by line, live data is merged under its lock, and
enrichment calls the simulated provider (the one invented part: no paid service).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import anyio
import msgspec

from bus import Client
from contracts import Config, EnrichmentConfig, ProviderConfig

from ._demo_producer import demo_event
from ._progress import Progress
from ._service import Service, open_service

__all__ = ["DemoPlan", "DemoReport", "demo_config", "run_demo"]

_USER = "demo-user"
_FEED = "demo-feed"
_TREND = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}


class DemoPlan(msgspec.Struct, frozen=True):
    """How much work the demo does (smaller plans for tests)."""

    sessions: int = 200
    inproc_producers: int = 12
    inproc_events: int = 2_000
    socket_producers: int = 2
    socket_events: int = 8_000
    scoped_writes: int = 10
    enrich_items: int = 400


class DemoReport(msgspec.Struct):
    """What the demo did and measured, for the summary."""

    root: str = ""
    socket: str = ""
    events: int = 0
    inproc_events: int = 0
    socket_events: int = 0
    socket_processes: int = 0
    seconds: float = 0.0
    sessions: int = 0
    files: int = 0
    lines: int = 0
    verified: bool = False
    live_writes: int = 0
    branches: list[str] = msgspec.field(default_factory=list)
    enriched: int = 0
    first_usd: float = 0.0
    first_state: str = ""
    hits: int = 0
    second_usd: float = 0.0
    saved_usd: float = 0.0
    dead_letters: int = 0
    socket_removed: bool = False


def demo_config() -> Config:
    """The demo's configuration: defaults plus one simulated paid provider."""
    feed = ProviderConfig(kind="simulated", cost_usd=0.002, usage="exact", latency_ms=20)
    return Config(enrichment=EnrichmentConfig(providers={_FEED: feed}))


def _session(index: int) -> str:
    return f"s-{index:03d}"


def _share(first: int, stop: int, producers: int, p: int) -> list[str]:
    """The sessions producer ``p`` of ``producers`` writes to, out of ``first..stop-1``."""
    count = stop - first
    mine = [_session(first + i) for i in range(count) if i % producers == p]
    return mine or [_session(first + p % count)]


class _Event(msgspec.Struct):
    producer: str
    seq: int


class _Envelope(msgspec.Struct):
    event: _Event


async def _produce_inproc(
    service: Service, name: str, sessions: list[str], count: int, done: list[int], batched: bool
) -> None:
    """Append ``count`` events one acknowledged append at a time, or 50 per batch call."""
    recorder = service.recorder
    step = 50 if batched else 1
    for start in range(0, count, step):
        events = [
            demo_event(name, _USER, sessions[seq % len(sessions)], seq)
            for seq in range(start, min(count, start + step))
        ]
        if batched:
            results = await recorder.append_batch(events)
            bad = [r for r in results if isinstance(r, Exception)]
            if bad:
                raise bad[0]
        else:
            await recorder.append(events[0])
        done[0] += len(events)


async def _produce_socket(
    service: Service, framing: str, name: str, sessions: list[str], count: int, done: list[int]
) -> None:
    args = [sys.executable, "-m", "actorbus._demo_producer", str(service.socket_path), framing]
    args += [name, _USER, str(count), *sessions]
    async with await anyio.open_process(args, stdin=None) as process:
        assert process.stdout is not None
        buffered = b""
        acked = 0
        async for chunk in process.stdout:
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                word, *figures = line.split()
                if word == b"acked":
                    done[0] += int(figures[0]) - acked
                    acked = int(figures[0])
        if await process.wait() != 0:
            raise RuntimeError(f"socket producer {name} failed (exit {process.returncode})")


async def _verify(service: Service, plan: DemoPlan, report: DemoReport) -> None:
    """Read every log back: count lines and check each producer's order per session."""
    decode = msgspec.json.Decoder(_Envelope).decode
    ok = True
    for index in range(plan.sessions):
        last: dict[str, int] = {}
        count = 0
        async for line in service.recorder.replay(_USER, _session(index)):
            event = decode(line).event
            ok &= event.seq > last.get(event.producer, -1)
            last[event.producer] = event.seq
            count += 1
        report.files += count > 0
        report.lines += count
    report.verified = ok and report.lines == report.events


async def _live_data(client: Client, service: Service, plan: DemoPlan, report: DemoReport) -> None:
    # The compatibility writer bootstraps the whole document; then each job writes
    # only the branches its scope owns, and the others come through untouched.
    bootstrap = {
        "schema_version": 1,
        "hosts": {"web-1": {"load": 0}},
        "extensions": {"items": {"trend-finder": {**_TREND, "topics": []}}},
    }
    await service.live.write("full", bootstrap)  # in-process; the scoped writes use the socket
    for n in range(plan.scoped_writes):
        hosts = {f"web-{i}": {"load": (n * 7 + i) % 10} for i in range(1, 5)}
        await client.request(
            "live.write",
            scope="host-local",
            data={"schema_version": 1, "hosts": hosts, "jobs": {"demo": {"runs": n + 1}}},
        )
        trend = {**_TREND, "topics": [f"topic-{(n + k) % 17}" for k in range(3)]}
        await client.request(
            "live.write",
            scope="trend-finder",
            data={"extensions": {"items": {"trend-finder": trend}}},
        )
    report.live_writes = 1 + 2 * plan.scoped_writes
    document = (await client.request("live.read"))["data"]
    branches = [key for key in document if key not in ("extensions", "schema_version")]
    branches += [f"extensions.items.{item}" for item in document["extensions"]["items"]]
    report.branches = sorted(branches)


def _enrich_request(plan: DemoPlan) -> dict[str, object]:
    items = [
        {
            "source_id": _FEED,
            "item_id": f"article-{i:04d}",
            "metadata": {"title": f"Article {i}", "url": f"https://example.org/a/{i}"},
            "priority": i % 5,
        }
        for i in range(plan.enrich_items)
    ]
    return {
        "run_id": "demo",
        "enrichment_type": "summary",
        "adapter_version": "v1",
        "items": items,
        "budget_usd": 5.0,
        "cadence_per_day": 24,
    }


async def run_demo(root: Path, plan: DemoPlan, out: TextIO) -> DemoReport:
    """Run the whole job on ``root`` and return what it measured."""
    report = DemoReport(root=str(root))
    progress = Progress(out, 7)
    progress.start(0, "starting the service")
    async with open_service(root, demo_config()) as service:
        assert service.socket_path is not None
        report.socket = str(service.socket_path)
        progress.start(1, f"opening {plan.sessions} sessions")
        for index in range(plan.sessions):
            await service.recorder.open_session(_USER, _session(index))
            progress.update(index / plan.sessions)
        report.sessions = plan.sessions

        inproc_total = plan.inproc_producers * plan.inproc_events
        socket_total = plan.socket_producers * plan.socket_events
        total = inproc_total + socket_total
        progress.start(2, f"recording {total:,} events, in-process and over the socket")
        inproc_sessions = plan.sessions // 2
        done = [0]
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for p in range(plan.inproc_producers):
                mine = _share(0, inproc_sessions, plan.inproc_producers, p)
                name = f"inproc-{p}"
                tg.start_soon(
                    _produce_inproc, service, name, mine, plan.inproc_events, done, p % 2 == 1
                )
            for p in range(plan.socket_producers):
                mine = _share(inproc_sessions, plan.sessions, plan.socket_producers, p)
                framing = "msgpack" if p % 2 == 0 else "jsonl"
                tg.start_soon(
                    _produce_socket, service, framing, f"socket-{p}", mine, plan.socket_events, done
                )
            while done[0] < total:
                progress.update(done[0] / total)
                await anyio.sleep(0.1)
        report.seconds = time.perf_counter() - start
        report.events = done[0]
        report.inproc_events = inproc_total
        report.socket_events = socket_total
        report.socket_processes = plan.socket_producers

        progress.start(3, "reading every log back and checking it")
        await _verify(service, plan, report)

        async with await Client.connect(service.socket_path) as client:
            progress.start(4, "live data: a full bootstrap, then scoped writes")
            await _live_data(client, service, plan, report)

            request = _enrich_request(plan)
            progress.start(5, "enrichment, first pass: the provider is called")
            first = await client.request("enrich", request=request)
            report.enriched = first["counts"]["written"]
            report.first_usd = first["spend"]["run"]["usd"]
            report.first_state = first["spend"]["run"]["state"]
            progress.start(6, "enrichment, second pass: answered from the cache")
            second = await client.request("enrich", request=request)
            report.hits = second["counts"]["hits"]
            report.second_usd = second["spend"]["run"]["usd"]
            report.saved_usd = second["spend"]["run"]["saved_usd"]
        progress.finish()
        bus = service.bus
    report.dead_letters = bus.dead_letters
    report.socket_removed = not await anyio.Path(report.socket).exists()
    return report
