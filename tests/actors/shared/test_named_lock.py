"""The named lock, with real processes as owners, waiters and recoverers."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors import NamedLock, OwnerRecord
from actors._shared.named_lock import POLL_S, iso_millis, process_start_time
from contracts import InvalidRequest, LockBusy

LOCK_ID = "generated-live-data"

# A lock owner in its own process. argv: root mode [hostname] [stale_s].
# Prints its record as JSON once it holds the lock, then, by mode:
#   hold: keep it until stdin closes, then release; die: exit without releasing.
OWNER = r"""
import json, os, sys
from pathlib import Path
from actors import NamedLock
root, mode = Path(sys.argv[1]), sys.argv[2]
host = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
stale = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
lock = NamedLock(root, "generated-live-data", stale_s=stale, hostname=host)
handle = lock.acquire(10.0)
print(json.dumps({"token": handle.record.token, "pid": os.getpid()}), flush=True)
if mode == "die":
    os._exit(0)
sys.stdin.read()
print(lock.release(handle), flush=True)
"""

# A recoverer: waits for the go file, then either breaks the stale lock and tries
# once, or tries once (recovering inside); holds what it got until stdin closes.
RECOVERER = r"""
import json, os, sys, time
from pathlib import Path
from actors import NamedLock
root, mode, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
lock = NamedLock(root, "generated-live-data", stale_s=600.0)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.0005)
broke = lock.break_if_stale() if mode == "break" else False
handle = lock.try_acquire()
print(json.dumps({
    "broke": broke,
    "token": handle.record.token if handle else None,
    "recovered": handle.recovered if handle else False,
}), flush=True)
sys.stdin.read()
"""

# A busy writer: takes and releases the lock in a tight loop; while holding it,
# proves exclusion by creating a marker file exclusively.
BUSY = r"""
import os, sys, time
from pathlib import Path
from actors import NamedLock
root, rounds, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
lock = NamedLock(root, "generated-live-data", stale_s=600.0)
while not go.exists():
    time.sleep(0.0005)
marker = root / "inside"
for _ in range(rounds):
    handle = lock.acquire(20.0)
    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    os.unlink(marker)
    assert lock.release(handle) == "released"
print("done", flush=True)
"""


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def first_line(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the child exited early"
    return json.loads(line) if line.startswith("{") else line.strip()


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=30)
    return out


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_record(root: Path, **fields: Any) -> OwnerRecord:
    record = OwnerRecord(
        **{
            "lock_id": LOCK_ID,
            "pid": os.getpid(),
            "host": "this-host",
            "token": "t" * 32,
            "acquired_at": iso_millis(time.time()),
            "pid_start": None,
            **fields,
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{LOCK_ID}.lock").write_bytes(msgspec.json.encode(record))
    return record


def on_disk(root: Path) -> OwnerRecord:
    return msgspec.json.decode((root / f"{LOCK_ID}.lock").read_bytes(), type=OwnerRecord)


def make_lock(root: Path, **kwargs: Any) -> NamedLock:
    kwargs.setdefault("stale_s", 600.0)
    kwargs.setdefault("hostname", "this-host")
    return NamedLock(root, LOCK_ID, **kwargs)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def test_acquiring_writes_a_complete_owner_record_under_a_private_root(root: Path) -> None:
    lock = NamedLock(root, LOCK_ID, stale_s=600)
    handle = lock.acquire(1.0)
    record = on_disk(root)
    assert record == handle.record
    assert (record.lock_id, record.pid) == (LOCK_ID, os.getpid())
    assert record.host == __import__("socket").gethostname()
    assert len(record.token) == 32
    assert record.acquired_at.endswith("Z") and len(record.acquired_at) == 24
    assert record.pid_start == process_start_time(os.getpid())
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / f"{LOCK_ID}.lock").stat().st_mode) == 0o600
    assert lock.release(handle) == "released"
    assert not (root / f"{LOCK_ID}.lock").exists()
    assert lock.release(handle) == "missing"
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "Upper", "x" * 65, "a.lock"])
def test_a_lock_id_that_could_leave_the_lock_root_is_refused(root: Path, bad: str) -> None:
    with pytest.raises(InvalidRequest):
        NamedLock(root, bad, stale_s=1)


def test_a_live_owner_in_another_process_blocks_until_lock_busy(root: Path) -> None:
    owner = spawn(OWNER, root, "hold")
    try:
        held = first_line(owner)
        # However old the lock looks, a live owner on this host is never broken.
        far_future = make_lock(root, hostname=None, stale_s=1, clock=lambda: time.time() + 1e6)
        with pytest.raises(LockBusy) as info:
            far_future.acquire(0.2)
        assert f"pid {held['pid']} on this host" in info.value.message
        assert str(root) not in info.value.message
        assert far_future.try_acquire() is None
        assert on_disk(root).token == held["token"]
    finally:
        assert finish(owner).strip() == "released"


def test_a_waiter_gets_the_lock_as_soon_as_the_live_owner_releases(root: Path) -> None:
    owner = spawn(OWNER, root, "hold")
    first_line(owner)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(make_lock(root).acquire(20.0)))
    waiter.start()
    time.sleep(0.05)
    assert not got
    assert finish(owner).strip() == "released"
    waiter.join(30)
    assert got and not got[0].recovered
    assert on_disk(root).token == got[0].record.token


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_dead_owners_lock_is_recovered(
    root: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    owner = spawn(OWNER, root, "die" if how == "exit" else "hold")
    held = first_line(owner)
    if how == "sigkill":
        owner.send_signal(signal.SIGKILL)
    owner.wait(30)
    assert on_disk(root).token == held["token"]
    with caplog.at_level(logging.WARNING, "actorbus.lock"):
        handle = NamedLock(root, LOCK_ID, stale_s=600).acquire(0.0)
    assert handle.recovered
    assert on_disk(root).token == handle.record.token
    assert f"pid {held['pid']} on this host (owner process is gone)" in caplog.text


def test_a_reused_pid_is_told_apart_by_its_start_time(root: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        start = process_start_time(other.pid)
        assert start is not None
        write_record(root, pid=other.pid, pid_start=start)
        with pytest.raises(LockBusy):
            make_lock(root).acquire(0.05)
        write_record(root, pid=other.pid, pid_start=None)  # judged by pid alone
        with pytest.raises(LockBusy):
            make_lock(root).acquire(0.05)
        write_record(root, pid=other.pid, pid_start=start - 1)  # the owner was older
        assert make_lock(root).acquire(0.0).recovered
    finally:
        other.communicate(timeout=30)


def test_an_exited_but_unreaped_owner_is_recovered(root: Path) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    stat_path = Path(f"/proc/{zombie.pid}/stat")
    deadline = time.monotonic() + 30
    while stat_path.read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        write_record(root, pid=zombie.pid, pid_start=process_start_time(zombie.pid))
        assert make_lock(root).acquire(0.0).recovered
    finally:
        zombie.wait()


def test_another_hosts_lock_is_not_judged_by_pid_and_breaks_only_when_stale(root: Path) -> None:
    # A real process takes the lock as "other-host" and exits: its pid is gone
    # here, which says nothing about a process on another host.
    owner = spawn(OWNER, root, "die", "other-host")
    held = first_line(owner)
    owner.wait(30)
    with pytest.raises(LockBusy, match="another host"):
        make_lock(root, stale_s=60).acquire(0.05)
    assert on_disk(root).token == held["token"]
    later = make_lock(root, stale_s=60, clock=lambda: time.time() + 61)
    handle = later.acquire(0.0)
    assert handle.recovered
    assert on_disk(root).token == handle.record.token


@pytest.mark.parametrize("acquired_at", ["yesterday", "2026-11-22T09:15:02", ""])
def test_another_hosts_lock_with_an_unreadable_age_is_never_broken(
    root: Path, acquired_at: str
) -> None:
    write_record(root, host="other-host", pid=dead_pid(), acquired_at=acquired_at)
    ancient = make_lock(root, stale_s=1, clock=lambda: time.time() + 1e9)
    with pytest.raises(LockBusy):
        ancient.acquire(0.05)
    assert on_disk(root).acquired_at == acquired_at


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"pid": 1}'])
def test_an_unreadable_record_fails_closed_and_is_left_alone(root: Path, content: bytes) -> None:
    root.mkdir(parents=True)
    (root / f"{LOCK_ID}.lock").write_bytes(content)
    with pytest.raises(LockBusy, match="unreadable owner record"):
        make_lock(root).acquire(0.05)
    assert (root / f"{LOCK_ID}.lock").read_bytes() == content


def test_a_symlinked_lock_file_is_not_followed(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b"{}")
    root.mkdir(parents=True)
    (root / f"{LOCK_ID}.lock").symlink_to(target)
    with pytest.raises(LockBusy):
        make_lock(root).acquire(0.05)
    assert target.read_bytes() == b"{}"


@pytest.mark.parametrize("mode", ["break", "acquire"])
def test_of_two_concurrent_recoverers_only_one_wins(root: Path, tmp_path: Path, mode: str) -> None:
    for round_ in range(4):
        write_record(root, pid=dead_pid(), pid_start=None, host=__import__("socket").gethostname())
        go = tmp_path / f"go-{mode}-{round_}"
        procs = [spawn(RECOVERER, root, mode, go) for _ in range(2)]
        try:
            for proc in procs:
                assert first_line(proc) == "ready"
            go.touch()
            results = [first_line(proc) for proc in procs]
        finally:
            for proc in procs:
                finish(proc)
        winners = [r for r in results if r["token"]]
        assert len(winners) == 1, results
        assert on_disk(root).token == winners[0]["token"]
        if mode == "break":
            assert sorted(r["broke"] for r in results) == [False, True]
        else:
            assert winners[0]["recovered"]
        (root / f"{LOCK_ID}.lock").unlink()


def test_a_token_mismatch_on_release_is_preserved_and_reported(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Host A took the lock long ago (its clock says so); host B, seeing another
    # host's stale lock, breaks it and takes it. A's release must not remove B's.
    mine = make_lock(root, hostname="host-a", clock=lambda: time.time() - 3600)
    handle = mine.acquire(1.0)
    other = spawn(OWNER, root, "hold", "host-b", 60)
    try:
        theirs = first_line(other)
        with caplog.at_level(logging.WARNING, "actorbus.lock"):
            assert mine.release(handle) == "mismatch"
        assert "another owner's record" in caplog.text
        assert on_disk(root).token == theirs["token"]
    finally:
        assert finish(other).strip() == "released"


def test_two_busy_writers_in_two_processes_never_starve_or_overlap(
    root: Path, tmp_path: Path
) -> None:
    assert POLL_S <= 0.01
    root.mkdir(parents=True)
    go = tmp_path / "go"
    procs = [spawn(BUSY, root, 150, go) for _ in range(2)]
    go.touch()
    outs = [finish(proc) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [o.strip() for o in outs] == ["done", "done"]
    assert not (root / f"{LOCK_ID}.lock").exists()


@pytest.mark.parametrize("suffix", [".lock", ".turn", ".guard"])
def test_a_fifo_in_place_of_a_lock_file_makes_the_lock_busy_not_hung(
    tmp_path: Path, suffix: str
) -> None:
    lock = NamedLock(tmp_path / "locks", "generated-live-data", stale_s=600)
    (tmp_path / "locks").mkdir()
    fifo = tmp_path / "locks" / f"generated-live-data{suffix}"
    os.mkfifo(fifo)
    with pytest.raises(LockBusy, match="a FIFO") as caught:
        handle = lock.acquire(0.05)
        lock.release(handle)  # the guard is only taken on release
    assert str(tmp_path) not in caught.value.message
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # refused, not replaced


def test_a_lock_root_that_is_not_a_directory_makes_the_lock_busy(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    lock = NamedLock(tmp_path / "locks", "generated-live-data", stale_s=600)
    with pytest.raises(LockBusy, match="symbolic link"):
        lock.acquire(0.05)
    assert list((tmp_path / "elsewhere").iterdir()) == []
