import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actorbus.cli import build_parser, exit_code_for, main
from contracts import ERRORS, InvalidEvent, RecorderIOError


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorbus", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _commands(parser: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, nested ones (``session open``) included."""
    subparsers = parser._subparsers
    if subparsers is None:
        yield prefix
        return
    for name, sub in subparsers._group_actions[0].choices.items():
        yield from _commands(sub, (*prefix, name))


def test_every_command_has_help():
    commands = list(_commands(build_parser()))
    assert {
        ("bench",),
        ("demo",),
        ("serve",),
        ("session", "open"),
        ("post",),
        ("tail",),
        ("live", "write"),
        ("live", "read"),
        ("enrich",),
        ("stats",),
    } <= set(commands)
    for command in commands:
        result = _run(*command, "--help", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage: actorbus " + " ".join(command) in result.stdout


def test_exit_codes_follow_the_error_status_class():
    assert exit_code_for(InvalidEvent("x")) == 4
    assert exit_code_for(RecorderIOError("x")) == 5
    assert {exit_code_for(cls("x")) for cls in ERRORS.values()} == {4, 5}


def test_unknown_command_exits_non_zero_with_usage(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_runs_the_service_end_to_end_and_leaves_its_files(tmp_path: Path):
    root = tmp_path / "r"
    result = _run("demo", "--small", "--root", str(root))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "summary" in out
    assert "3,200 acknowledged" in out
    assert "20 opened, 20 log files, 3,200 lines on disk (every line checked" in out
    assert "over the socket from 2 processes" in out
    assert "40 cache hits, $0.0000 spent" in out
    assert "socket removed, 0 dead letters" in out
    assert f"actorbus serve --root {root}" in out
    logs = sorted((root / "logs" / "users" / "demo-user" / "sessions").iterdir())
    assert len(logs) == 20
    assert sum(len(p.read_bytes().splitlines()) for p in logs) == 3_200
    assert (root / "data" / "live-data.json").is_file()
    assert not (root / "run" / "actorbus.sock").exists()
