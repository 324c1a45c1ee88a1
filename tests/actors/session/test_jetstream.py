"""What only the JetStream backend has: subjects, refusals, lost acknowledgements, outages.

Every test runs a real nats-server (``support/nats_server.py``); the contract both
backends keep is ``test_backends.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from nats.js import api
from support.nats_server import AckDropProxy, NatsServer
from support.recording import event

from actors import JetStream, JetStreamSessions, Recorder
from actors.session.jetstream import session_subject
from bus import open_bus
from contracts import (
    AppendResult,
    BusConfig,
    JetStreamConfig,
    RecorderConfig,
    RecorderIOError,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def host(
    url: str, root: Path, config: RecorderConfig | None = None, **settings: Any
) -> AsyncIterator[Recorder]:
    """One "host": a bus, a recorder, its own connection to JetStream."""
    js = await JetStream.connect(JetStreamConfig(servers=[url], **settings))
    try:
        sessions = await JetStreamSessions.open(js)
        async with open_bus(BusConfig(shutdown_deadline_s=5)) as bus:
            yield Recorder(bus, root, config or RecorderConfig(), backend=sessions)
        await sessions.aclose()
    finally:
        await js.aclose()


async def record_ids(recorder: Recorder, session: str = "s1") -> list[str]:
    return [json.loads(line)["event"]["record_id"] async for line in recorder.replay("u1", session)]


def test_subject_tokens_are_reversible_and_dot_free() -> None:
    from actors._shared.jetstream import decode_token, encode_token  # layering: white-box, codec

    for value in ("a.b", "~", "a~2Eb", "..x", "plain-id_9"):
        token = encode_token(value)
        assert "." not in token
        assert decode_token(token) == value
    stream, subject = session_subject("u.1", "s.2", 8)
    assert stream.startswith("ACTORBUS_SESSIONS_")
    assert subject.endswith(".u~2E1.s~2E2")
    assert session_subject("u.1", "s.2", 8) == (stream, subject)  # fixed: crc32, not hash()


async def test_two_hosts_on_one_session_go_after_each_other(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with (
        host(nats_server.url, tmp_path / "a") as a,
        host(nats_server.url, tmp_path / "b") as b,
    ):
        await a.open_session("u1", "s1")

        async def produce(recorder: Recorder, name: str) -> None:
            for i in range(100):  # one at a time: each append is a write of its own
                await recorder.append(event(i, record_id=f"{name}{i}"))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce, a, "a")
                tg.start_soon(produce, b, "b")
        ids = await record_ids(a)
        assert sorted(ids) == sorted([f"a{i}" for i in range(100)] + [f"b{i}" for i in range(100)])
        assert [i for i in ids if i[0] == "b"] == [f"b{i}" for i in range(100)]
        # The two hosts met: at least one append found the other's write first and went after it.
        conflicts = a.backend.conflicts + b.backend.conflicts  # type: ignore[attr-defined]
        assert conflicts > 0


async def test_a_refused_chunk_leaves_nothing_and_the_error_says_so(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = RecorderConfig(batch_max_events=2)
    async with host(nats_server.url, tmp_path, config, partitions=1) as recorder:
        await recorder.open_session("u1", "s1")
        # The stream takes no message over 2,000 bytes: the server refuses the second chunk.
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        info = await js.stream_info("ACTORBUS_SESSIONS_0")
        info.config.max_msg_size = 2000
        await js.update_stream(info.config)
        await nc.close()
        big = "x" * 3000
        events = [event(0), event(1), event(2, pad=big), event(3), event(4)]
        results = await recorder.append_batch(events)
        assert [type(r) for r in results[:2]] == [AppendResult, AppendResult]
        assert all(isinstance(r, RecorderIOError) for r in results[2:])
        assert "nothing was recorded" in str(results[2])
        assert big not in str(results[2])
        assert await record_ids(recorder) == ["r0", "r1"]


async def test_a_lost_acknowledgement_is_retried_into_exactly_one_copy(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    proxy = await AckDropProxy(nats_server.port).start()
    try:
        async with host(proxy.url, tmp_path, publish_timeout_s=0.5) as recorder:
            await recorder.open_session("u1", "s1")
            backend: Any = recorder.backend
            prefix = backend._jetstream.publisher.inbox_prefix
            proxy.drop_next(prefix)
            with anyio.fail_after(20):
                result = await recorder.append(event(1))
            assert isinstance(result, AppendResult)
            assert proxy.dropped == 1
            assert backend.retries >= 1
            await recorder.append(event(2))
            assert await record_ids(recorder) == ["r1", "r2"]
    finally:
        await proxy.aclose()


async def test_a_server_killed_and_restarted_under_load_loses_and_doubles_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    acked: list[str] = []
    failed: list[str] = []
    async with host(
        nats_server.url, tmp_path, publish_timeout_s=0.5, retry_deadline_s=20
    ) as recorder:
        await recorder.open_session("u1", "s1")

        async def produce(name: str) -> None:
            for i in range(300):
                rid = f"{name}-{i}"
                try:
                    await recorder.append(event(i, record_id=rid))
                except RecorderIOError:
                    failed.append(rid)
                else:
                    acked.append(rid)

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for name in ("p0", "p1", "p2", "p3"):
                    tg.start_soon(produce, name)
                while len(acked) < 200:
                    await anyio.sleep(0.01)
                await anyio.to_thread.run_sync(nats_server.kill)
                await anyio.sleep(1.0)
                await anyio.to_thread.run_sync(nats_server.restart)
        ids = await record_ids(recorder)
        retries = recorder.backend.retries  # type: ignore[attr-defined]
    assert retries > 0, "the outage was never met"
    assert len(ids) == len(set(ids)), "a record stored twice"
    assert set(acked) <= set(ids), "an acknowledged append lost"
    assert len(acked) > 200
    # What failed failed within the retry deadline; each producer's order held.
    for name in ("p0", "p1", "p2", "p3"):
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(name)]
        assert mine == sorted(mine)


async def test_chunks_stay_under_the_servers_payload_bound(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = RecorderConfig(batch_max_events=65_536, batch_max_bytes=8 << 20)
    async with host(nats_server.url, tmp_path, config) as recorder:
        await recorder.open_session("u1", "s1")
        pad = "y" * 2000
        results = await recorder.append_batch([event(i, pad=pad) for i in range(2000)])
        assert all(isinstance(r, AppendResult) for r in results)  # 4 MB, in 1 MiB messages
        assert len(await record_ids(recorder)) == 2000


async def test_the_partition_count_is_fixed_once_the_streams_exist(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with host(nats_server.url, tmp_path, partitions=2):
        pass
    with pytest.raises(RecorderIOError, match="partition count is fixed"):
        async with host(nats_server.url, tmp_path, partitions=3):
            pass


async def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    from support.nats_server import free_port

    url = f"nats://user:secret@127.0.0.1:{free_port()}"
    with anyio.fail_after(10), pytest.raises(RecorderIOError) as caught:
        await JetStream.connect(JetStreamConfig(servers=[url], connect_timeout_s=1))
    assert "cannot reach JetStream at nats://127.0.0.1:" in str(caught.value)
    assert "secret" not in str(caught.value)


async def test_a_session_stream_is_created_with_the_configured_settings(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with host(nats_server.url, tmp_path, partitions=2, duplicate_window_s=60):
        pass
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info("ACTORBUS_SESSIONS_1")
    finally:
        await nc.close()
    assert info.config.subjects == ["actorbus.sessions.1.>"]
    assert info.config.duplicate_window == 60
    assert info.config.storage == api.StorageType.FILE
