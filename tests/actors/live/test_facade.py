"""The live-data actor through its facade: fallback, checks, lock, two processes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from actors import LIVE_DATA_LOCK, FileLiveStore, LiveData
from bus import open_bus
from contracts import (
    InternalError,
    InvalidRequest,
    LiveDataConfig,
    LiveDataInvalid,
    LockBusy,
    OwnershipViolation,
    PrivacyViolation,
    ScopeConfig,
)

pytestmark = pytest.mark.anyio

ITEM = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}
EXAMPLE: dict[str, Any] = {"schema_version": 1, "extensions": {"items": {}}, "intro": {"x": 1}}
CONFIG = LiveDataConfig(
    lock_wait_s=2.0, scopes={"my-ext": ScopeConfig(owns=["extensions.items.my-ext"])}
)


def tf(**fields: Any) -> dict[str, Any]:
    return {"extensions": {"items": {"trend-finder": {**ITEM, **fields}}}}


def setup(root: Path, current: bytes | None = None, example: Any = EXAMPLE) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    if example is not None:
        raw = example if isinstance(example, bytes) else json.dumps(example).encode()
        (data / "live-data.example.json").write_bytes(raw)
    if current is not None:
        (data / "live-data.json").write_bytes(current)
    return data / "live-data.json"


def document(root: Path) -> Any:
    return json.loads((root / "data" / "live-data.json").read_bytes())


def lock_file(root: Path) -> Path:
    return root / "locks" / f"{LIVE_DATA_LOCK}.lock"


# ---- base and fallback ---------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "base"),
    [
        (None, "example"),
        (b"{not json", "example"),
        (b'{"schema_version": "one", "extensions": {"items": {}}}', "example"),
        (b'{"schema_version": 7, "extensions": {"items": {}}, "kept": {"k": 1}}', "current"),
    ],
)
async def test_the_base_is_the_current_document_else_the_example(
    tmp_path: Path, current: bytes | None, base: str
) -> None:
    setup(tmp_path, current)
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG)
        result = await live.write("trend-finder", tf())
    assert result.base == base
    doc = document(tmp_path)
    assert doc["extensions"]["items"]["trend-finder"] == ITEM
    if base == "current":
        assert doc["kept"] == {"k": 1} and doc["schema_version"] == 7
    else:
        assert doc["intro"] == {"x": 1}


@pytest.mark.parametrize(
    ("current", "example"),
    [
        (None, None),
        (b"junk", None),
        (None, b"junk"),
        (b"junk", {"schema_version": 1}),
    ],
)
async def test_without_a_valid_base_a_scoped_write_fails_and_writes_nothing(
    tmp_path: Path, current: bytes | None, example: Any
) -> None:
    path = setup(tmp_path, current, example)
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG)
        with pytest.raises(LiveDataInvalid, match="no valid base"):
            await live.write("trend-finder", tf())
        with pytest.raises(LiveDataInvalid):
            await live.read()
    assert (path.read_bytes() if path.exists() else None) == current
    assert not lock_file(tmp_path).exists()


async def test_a_full_write_needs_no_base(tmp_path: Path) -> None:
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG)
        result = await live.write("full", {"schema_version": 2, "extensions": {"items": {}}})
        assert result.base == "none"
        assert result.branches == ["extensions", "schema_version"]
        assert await live.read() == {"schema_version": 2, "extensions": {"items": {}}}


async def test_read_falls_back_to_the_example(tmp_path: Path) -> None:
    setup(tmp_path, b"[]")
    async with open_bus() as bus:
        assert await LiveData(bus, tmp_path, CONFIG).read() == EXAMPLE


# ---- merging and reporting -------------------------------------------------------


async def test_scopes_replace_only_their_branches(tmp_path: Path) -> None:
    setup(tmp_path)
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG)
        await live.write("trend-finder", tf(n=1))
        await live.write("my-ext", {"extensions": {"items": {"my-ext": ITEM}}})
        host = await live.write("host-local", {"schema_version": 1, "db": {"up": True}})
        await live.write("trend-finder", tf(n=2))
        assert host.branches == ["db", "schema_version"]
        assert await live.read() == {
            "schema_version": 1,
            "db": {"up": True},
            "extensions": {"items": {"trend-finder": {**ITEM, "n": 2}, "my-ext": ITEM}},
        }
        deleted = await live.write("my-ext", {}, delete=True)
        assert deleted.branches == ["extensions.items.my-ext"]
        assert "my-ext" not in (await live.read())["extensions"]["items"]


async def test_the_result_is_safe_metadata_only(tmp_path: Path) -> None:
    setup(tmp_path)
    async with open_bus() as bus:
        result = await LiveData(bus, tmp_path, CONFIG).write("trend-finder", tf(secretish="v"))
    encoded = msgspec.json.encode(result)
    assert set(msgspec.json.decode(encoded)) == {
        "scope",
        "base",
        "bytes",
        "branches",
        "lock_wait_ms",
        "lock_release",
    }
    assert result.bytes == (tmp_path / "data" / "live-data.json").stat().st_size
    assert result.lock_wait_ms >= 0 and result.lock_release == "released"
    assert str(tmp_path).encode() not in encoded and b"secretish" not in encoded


async def test_the_same_base_and_input_give_the_same_bytes(tmp_path: Path) -> None:
    outputs = []
    for name, order in (("a", 1), ("b", -1)):
        root = tmp_path / name
        setup(root)
        data = {"schema_version": 1, **{k: {"v": k} for k in ["z", "m", "a"][::order]}}
        async with open_bus() as bus:
            live = LiveData(bus, root, CONFIG)
            await live.write("host-local", data)
            await live.write("trend-finder", tf(list=[3, 1, 2]))
        outputs.append((root / "data" / "live-data.json").read_bytes())
    assert outputs[0] == outputs[1]


async def test_a_deployment_contract_replaces_the_default(tmp_path: Path) -> None:
    class Board(msgspec.Struct, forbid_unknown_fields=True):
        title: str
        extensions: dict[str, Any]

    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG, contract=Board)
        await live.write("full", {"title": "t", "extensions": {"items": {}}})
        await live.write("trend-finder", tf())
        with pytest.raises(LiveDataInvalid, match="unknown field"):
            await live.write("host-local", {"title": "t", "other": {}})


async def test_writers_inside_one_service_queue_in_the_actor(tmp_path: Path) -> None:
    setup(tmp_path)
    scopes = {f"ext-{i}": ScopeConfig(owns=[f"extensions.items.ext-{i}"]) for i in range(8)}
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, LiveDataConfig(scopes=scopes))

        async def writer(i: int) -> None:
            for n in range(5):
                await live.write(
                    f"ext-{i}", {"extensions": {"items": {f"ext-{i}": {**ITEM, "n": n}}}}
                )

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(writer, i)
        items = (await live.read())["extensions"]["items"]
    assert {k: v["n"] for k, v in items.items()} == {f"ext-{i}": 4 for i in range(8)}


# ---- errors, in order, and the lock on failure paths ----------------------------


@pytest.mark.parametrize(
    ("scope", "data", "error"),
    [
        ("nope", tf(), InvalidRequest),
        ("trend-finder", {"db": {}}, OwnershipViolation),
        ("trend-finder", {}, LiveDataInvalid),
        ("trend-finder", tf(status="sleepy"), LiveDataInvalid),
        ("trend-finder", tf(password="x"), PrivacyViolation),
        ("trend-finder", {"extensions": {"items": {"trend-finder": object()}}}, InvalidRequest),
    ],
)
async def test_a_rejected_write_changes_nothing_and_leaves_no_lock(
    tmp_path: Path, scope: str, data: Any, error: type[Exception]
) -> None:
    setup(tmp_path, current=json.dumps(EXAMPLE).encode())
    before = (tmp_path / "data" / "live-data.json").read_bytes()
    async with open_bus() as bus:
        with pytest.raises(error):
            await LiveData(bus, tmp_path, CONFIG).write(scope, data)
    assert (tmp_path / "data" / "live-data.json").read_bytes() == before
    assert not lock_file(tmp_path).exists()


class FullDisk:
    """A fake store whose disk is full: reads work, every replace fails."""

    def __init__(self, inner: FileLiveStore) -> None:
        self.inner = inner

    def read_current(self) -> bytes | None:
        return self.inner.read_current()

    def read_example(self) -> bytes | None:
        return self.inner.read_example()

    def replace(self, data: bytes) -> None:
        raise OSError(28, "No space left on device", str(self.inner.current))


async def test_a_failed_store_write_releases_the_lock_and_hides_the_path(tmp_path: Path) -> None:
    setup(tmp_path)
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG, store=FullDisk(FileLiveStore(tmp_path / "data")))
        with pytest.raises(InternalError) as info:
            await live.write("trend-finder", tf())
    assert "No space left on device" in info.value.message
    assert str(tmp_path) not in info.value.message
    assert not lock_file(tmp_path).exists()


async def test_an_unusable_lock_directory_is_an_internal_error_without_its_path(
    tmp_path: Path,
) -> None:
    setup(tmp_path)
    (tmp_path / "locks").write_bytes(b"not a directory")
    async with open_bus() as bus:
        with pytest.raises(InternalError) as info:
            await LiveData(bus, tmp_path, CONFIG).write("trend-finder", tf())
    assert str(tmp_path) not in info.value.message
    assert not (tmp_path / "data" / "live-data.json").exists()


async def test_a_write_waits_for_another_processes_lock_then_reports_busy(tmp_path: Path) -> None:
    setup(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "locks")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        # Waiting for another process is blocking: never on the loop.
        assert (await anyio.to_thread.run_sync(holder.stdout.readline)).strip() == "held"
        async with open_bus() as bus:
            live = LiveData(bus, tmp_path, LiveDataConfig(lock_wait_s=0.2))
            with pytest.raises(LockBusy, match=f"pid {holder.pid} on this host"):
                await live.write("trend-finder", tf())
    finally:
        await anyio.to_thread.run_sync(lambda: holder.communicate(timeout=30))
    assert not (tmp_path / "data" / "live-data.json").exists()


HOLDER = r"""
import sys
from pathlib import Path
from actors import NamedLock
lock = NamedLock(Path(sys.argv[1]), "generated-live-data", stale_s=600)
handle = lock.acquire(10)
print("held", flush=True)
sys.stdin.read()
lock.release(handle)
"""


async def test_overlapping_scopes_are_refused_when_the_service_starts(tmp_path: Path) -> None:
    bad = LiveDataConfig(scopes={"x": ScopeConfig(owns=["extensions.items"])})
    async with open_bus() as bus:
        with pytest.raises(InvalidRequest, match="overlaps"):
            LiveData(bus, tmp_path, bad)
        assert "live-data" not in {a.name for a in bus.statistics().actors}


async def test_log_lines_carry_metadata_and_no_private_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup(tmp_path, current=b"junk")
    with caplog.at_level(logging.INFO, "actorbus"):
        async with open_bus() as bus:
            live = LiveData(bus, tmp_path, CONFIG)
            await live.write("trend-finder", tf())
            with pytest.raises(PrivacyViolation):
                await live.write("trend-finder", tf(note=f"see {tmp_path}/x"))
    assert "live write: scope=trend-finder base=example" in caplog.text
    assert "code=PrivacyViolation" in caplog.text
    assert "the current document is invalid" in caplog.text
    assert str(tmp_path) not in caplog.text


# ---- two processes, one document ---------------------------------------------------

# argv: root scope rounds go. Writes its own branch `rounds` times with a rising
# sequence number, after the go file appears.
WRITER = r"""
import json, sys, time
from pathlib import Path
import anyio
from bus import open_bus
from actors import LiveData
from contracts import LiveDataConfig
root, scope, rounds, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
item = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}

def data(n):
    if scope == "host-local":
        return {"schema_version": 1, "host": {"seq": n}}
    return {"extensions": {"items": {"trend-finder": {**item, "seq": n}}}}

async def main():
    async with open_bus() as bus:
        live = LiveData(bus, root, LiveDataConfig(lock_wait_s=30))
        while not go.exists():
            await anyio.sleep(0.001)
        writes = 0
        for n in range(1, rounds + 1):
            result = await live.write(scope, data(n))
            writes += result.lock_release == "released"
        print(json.dumps({"writes": writes}), flush=True)

anyio.run(main)
"""


def test_two_processes_interleave_hundreds_of_writes_and_lose_no_branch(tmp_path: Path) -> None:
    setup(tmp_path)
    rounds = 250
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), scope, str(rounds), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for scope in ("host-local", "trend-finder")
    ]
    go.touch()
    store = FileLiveStore(tmp_path / "data")
    last = {"host": 0, "tf": 0}
    both_in_flight = 0
    while any(p.poll() is None for p in procs):
        raw = store.read_current()
        if raw is None:
            continue
        doc = json.loads(raw)  # a torn document would not parse
        host = doc.get("host", {}).get("seq", 0)
        trend = doc["extensions"]["items"].get("trend-finder", {}).get("seq", 0)
        # A branch once seen never disappears or goes back.
        assert host >= last["host"] and trend >= last["tf"], (host, trend, last)
        last = {"host": host, "tf": trend}
        both_in_flight += 0 < host < rounds and 0 < trend < rounds
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    final = document(tmp_path)
    assert final["host"] == {"seq": rounds}
    assert final["extensions"]["items"]["trend-finder"]["seq"] == rounds
    assert "intro" not in final  # host-local replaced the whole set of root keys
    assert both_in_flight > 0, "the two writers did interleave"
    assert [json.loads(out)["writes"] for out in outs] == [rounds, rounds]
    assert not lock_file(tmp_path).exists()


# ---- special files and numbers -------------------------------------------------


def unblock(fifo: Path) -> None:
    """Give a reader blocked on ``fifo`` its writer (so a failing run cannot hang)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("name", ["live-data.json", "live-data.example.json"])
async def test_a_fifo_at_a_document_path_is_refused_at_once_and_frees_the_lock(
    tmp_path: Path, name: str
) -> None:
    setup(tmp_path, current=None if name == "live-data.json" else b"{not json")
    fifo = tmp_path / "data" / name
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    try:
        with anyio.fail_after(10):
            async with open_bus() as bus:
                live = LiveData(bus, tmp_path, CONFIG)
                with pytest.raises(LiveDataInvalid, match="a FIFO, not a regular file") as caught:
                    await live.write("trend-finder", tf())
                assert str(tmp_path) not in caught.value.message
                with pytest.raises(LiveDataInvalid, match="a FIFO"):
                    await live.read()
                # The lock was released: a second writer is refused the same way,
                # not kept out with LockBusy.
                with pytest.raises(LiveDataInvalid, match="a FIFO"):
                    await live.write("trend-finder", tf())
                assert not lock_file(tmp_path).exists()
    finally:
        unblock(fifo)
    assert stat_is_fifo(fifo)


def stat_is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(path.lstat().st_mode)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 2**64, -(2**63) - 1])
async def test_a_number_not_every_reader_can_carry_is_refused_not_repaired(
    tmp_path: Path, value: float
) -> None:
    setup(tmp_path)
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG)
        with pytest.raises(InvalidRequest, match="not every reader can carry"):
            await live.write("trend-finder", tf(score=value))
        with pytest.raises(InvalidRequest, match="not every reader can carry"):
            await live.write("full", {**EXAMPLE, "intro": {"n": [1, {"v": value}]}})
        await live.write("trend-finder", tf(score=2**64 - 1, low=-(2**63), f=1.5))
    written = document(tmp_path)["extensions"]["items"]["trend-finder"]
    assert (written["score"], written["low"], written["f"]) == (2**64 - 1, -(2**63), 1.5)


@pytest.mark.parametrize("number", [b"1e400", b"1" + b"0" * 40])
async def test_a_stored_document_with_an_unportable_number_is_no_base(
    tmp_path: Path, number: bytes
) -> None:
    setup(
        tmp_path,
        current=b'{"schema_version": 1, "extensions": {"items": {}}, "h": {"n": ' + number + b"}}",
    )
    async with open_bus() as bus:
        live = LiveData(bus, tmp_path, CONFIG)
        assert (await live.read()) == EXAMPLE
        assert (await live.write("trend-finder", tf())).base == "example"
