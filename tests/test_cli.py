import subprocess
import sys

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


def test_every_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"bench", "demo"} <= set(commands)
    for name in commands:
        result = _run(name, "--help", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage: actorbus " + name in result.stdout


def test_exit_codes_follow_the_error_status_class():
    assert exit_code_for(InvalidEvent("x")) == 4
    assert exit_code_for(RecorderIOError("x")) == 5
    assert {exit_code_for(cls("x")) for cls in ERRORS.values()} == {4, 5}


def test_unknown_command_exits_non_zero_with_usage(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_runs_to_the_end_and_reports_correct_balances():
    result = _run("demo")
    assert result.returncode == 0, result.stderr
    assert "all correct" in result.stdout
    assert "summary" in result.stdout
