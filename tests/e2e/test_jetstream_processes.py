"""Two service processes, two roots (as two hosts have), one JetStream: a real nats-server.

Producers are real client processes on each service's socket; what each
acknowledged is checked against what JetStream holds, read back by `actorbus
export` and followed live by `actorbus tail -f` on the other host.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from support.nats_server import NatsServer
from support.service import (
    acked_ids,
    cli,
    root_dir,
    run_cli,
    socket_of,
    start_load,
    start_serve,
    stop,
)

pytestmark = pytest.mark.slow


def _open(root: Path, user: str, session: str) -> str:
    proc = run_cli("session", "open", user, session, "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def test_two_services_share_sessions_and_see_each_others_appends(nats_server: NatsServer) -> None:
    backend = ("--backend", nats_server.url)
    with root_dir() as a_root, root_dir() as b_root, root_dir() as export_root:
        a = start_serve(a_root, *backend)
        b = start_serve(b_root, *backend)
        follower = None
        try:
            assert "created" in _open(a_root, "u1", "shared")
            assert "already existed" in _open(b_root, "u1", "shared")
            # b's `tail -f` follows what a's producers append.
            follower = subprocess.Popen(
                cli("tail", "-f", "-n", "0", "u1", "shared", "--root", str(b_root)),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
            loads = [
                start_load(socket_of(root), "u1", "shared", name, 2000)
                for root, name in ((a_root, "a"), (b_root, "b"), (a_root, "c"), (b_root, "d"))
            ]
            outputs = [load.communicate(timeout=120)[0] for load in loads]
            acked = {name: acked_ids(out) for name, out in zip("abcd", outputs, strict=True)}
            assert all(len(ids) == 2000 for ids in acked.values()), {
                k: len(v) for k, v in acked.items()
            }

            exported = run_cli(
                "export", "u1", "shared", "--root", str(export_root), *backend, timeout=120
            )
            assert exported.returncode == 0, exported.stderr
            data = exported.stdout
            assert data.endswith(b"\n")
            ids = [json.loads(line)["event"]["record_id"] for line in data.splitlines()]
            assert len(ids) == len(set(ids)) == 8000, "each acknowledged event exactly once"
            for name, mine in acked.items():
                assert [i for i in ids if i.startswith(f"{name}-")] == mine, f"{name}'s order"

            # The follower on b saw every line, including a's, in the same order.
            seen: list[str] = []
            assert follower.stdout is not None
            while len(seen) < 8000:
                line = follower.stdout.readline()
                assert line, "the follower stopped"
                seen.append(json.loads(line)["event"]["record_id"])
            assert seen == ids
        finally:
            if follower is not None:
                follower.kill()
                follower.wait()
            assert stop(a) == 0
            assert stop(b) == 0


def test_an_unreachable_jetstream_is_one_line_and_a_non_zero_exit() -> None:
    from support.nats_server import free_port

    with root_dir() as root:
        proc = run_cli("serve", "--root", str(root), "--backend", f"nats://127.0.0.1:{free_port()}")
    assert proc.returncode == 5
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot reach JetStream" in lines[0]
