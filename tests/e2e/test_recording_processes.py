"""Several processes recording into one session log through the real writer code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from actors import session_path

PRODUCER = Path(__file__).resolve().parents[1] / "support" / "recording_producer.py"
PROCESSES = 4
TASKS = 4
PER_TASK = 750  # 3,000 events per process


@pytest.mark.slow
def test_four_processes_append_thousands_without_tearing_losing_or_reordering(
    tmp_path: Path,
) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), *sys.path]))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(PRODUCER),
                str(tmp_path),
                "u1",
                "shared",
                f"p{n}",
                str(PER_TASK),
                str(TASKS),
                "uvloop" if n % 2 else "asyncio",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    data = session_path(tmp_path, "u1", "shared").read_bytes()
    assert data.endswith(b"\n")
    seqs: dict[str, list[int]] = defaultdict(list)
    for line in data.split(b"\n")[:-1]:
        envelope = json.loads(line)  # a torn or interleaved line would not parse
        assert set(envelope) == {"recorded_at", "event"}
        event = envelope["event"]
        assert event["timestamp"] == "2026-11-22T09:15:02.137+01:00"
        assert event["record_id"] == f"{event['producer']}-{event['seq']:06d}"
        seqs[event["producer"]].append(event["seq"])
    assert len(seqs) == PROCESSES * TASKS
    for producer, got in seqs.items():
        assert got == list(range(PER_TASK)), producer  # nothing lost, nothing reordered
