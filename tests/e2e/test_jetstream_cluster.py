"""Three nats-server nodes, streams with three replicas: a node killed under load loses nothing.

A slower test (a cluster forms and elects leaders), still run in CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from support.nats_server import require_nats_server, start_cluster
from support.recording import event

from actors import JetStream, JetStreamSessions, Recorder
from bus import open_bus
from contracts import BusConfig, JetStreamConfig, RecorderConfig, RecorderIOError

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # one loop is enough: this is about the cluster, not the loop


async def test_a_node_killed_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    nodes = start_cluster(require_nats_server(), tmp_path)
    try:
        config = JetStreamConfig(
            servers=[node.url for node in nodes],
            replicas=3,
            partitions=2,
            publish_timeout_s=1.0,
            retry_deadline_s=30,
            connect_timeout_s=30,
        )
        js = await JetStream.connect(config)
        try:
            sessions = await JetStreamSessions.open(js)
            acked: list[str] = []
            async with open_bus(BusConfig(shutdown_deadline_s=5)) as bus:
                recorder = Recorder(bus, tmp_path / "root", RecorderConfig(), backend=sessions)
                for s in ("s1", "s2"):
                    await recorder.open_session("u1", s)

                async def produce(name: str, session: str) -> None:
                    for i in range(400):
                        rid = f"{name}-{i}"
                        try:
                            await recorder.append(event(i, session=session, record_id=rid))
                        except RecorderIOError:
                            continue
                        acked.append(rid)

                with anyio.fail_after(120):
                    async with anyio.create_task_group() as tg:
                        for n in range(4):
                            tg.start_soon(produce, f"p{n}", f"s{1 + n % 2}")
                        while len(acked) < 300:
                            await anyio.sleep(0.01)
                        # The node the client is connected to: the hardest case for it.
                        connected = js.nc.connected_url
                        victim = next(
                            node for node in nodes if connected and node.port == connected.port
                        )
                        await anyio.to_thread.run_sync(victim.kill)
                stored: list[str] = []
                for s in ("s1", "s2"):
                    stored += [
                        json.loads(line)["event"]["record_id"]
                        async for line in recorder.replay("u1", s)
                    ]
            await sessions.aclose()
        finally:
            await js.aclose()
    finally:
        for node in nodes:
            node.stop()
    assert len(stored) == len(set(stored)), "a record stored twice"
    assert set(acked) <= set(stored), "an acknowledged append lost"
    assert len(acked) > 1000, "the load went on after the node was lost"
