"""The command line as a first-time user meets it: real processes, real files, a real service."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from support.service import REPO, cli, event, root_dir, run_cli, socket_of, start_serve, stop

from actorbus import __version__


@pytest.fixture
def root() -> Iterator[Path]:
    with root_dir() as path:
        yield path


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ("[server]\nmax_frame_bytes = -5\n", "server.max_frame_bytes", "an integer from 256 to"),
        ("[server]\nidle_timeout_s = 0\n", "server.idle_timeout_s", "a number > 0 and <= 86400"),
        ("[server]\nmax_inflight_total = 0\n", "server.max_inflight_total", "an integer from 1"),
        ("[recorder]\nmax_event_bytes = 0\n", "recorder.max_event_bytes", "an integer from 128"),
        ("[http]\nkeepalive_timeout_s = -1\n", "http.keepalive_timeout_s", "a number > 0"),
        ("[live_data]\nlock_stale_s = 0\n", "live_data.lock_stale_s", "a number > 0"),
        (
            "[enrichment.providers.web]\nkind = 'http'\nurl = 'http://127.0.0.1:1/'\n"
            "batch_size = 0\n",
            "enrichment.providers.web.batch_size",
            "an integer from 1 to",
        ),
    ],
)
def test_serve_refuses_a_bound_out_of_range_in_one_line_and_does_not_start(
    root: Path, toml: str, key: str, allowed: str
) -> None:
    config = root / "actorbus.toml"
    config.write_text(toml)
    result = run_cli("serve", "--root", str(root), "--config", str(config), timeout=60)
    assert result.returncode == 4
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"actorbus: ConfigError: {config}: {key} must be {allowed}")
    assert "InvalidRequest" not in lines[0]
    assert not socket_of(root).exists()
    assert not (root / "logs").exists()


def _events(user: str, session: str, names: range) -> bytes:
    return b"".join(event(user, session, f"r{n:06d}", n=n) + b"\n" for n in names)


def _logged_ids(root: Path, user: str, session: str) -> list[str]:
    path = root / "logs" / "users" / user / "sessions" / f"{session}.jsonl"
    if not path.exists():
        return []
    return [
        msgspec.json.decode(line)["event"]["record_id"] for line in path.read_bytes().splitlines()
    ]


def _wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_post_that_loses_its_service_prints_a_summary_and_how_to_resume(root: Path) -> None:
    server = start_serve(root)
    run_cli("session", "open", "--root", str(root), "erin", "s1")
    post = subprocess.Popen(
        cli("post", "--root", str(root), "--chunk", "100", "--window", "50"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert post.stdin is not None
    first, rest = range(1000), range(1000, 1500)
    post.stdin.write(_events("erin", "s1", first))
    post.stdin.flush()
    _wait_for(lambda: len(_logged_ids(root, "erin", "s1")) == 1000)
    server.send_signal(signal.SIGKILL)
    server.wait(30)
    out, err = post.communicate(_events("erin", "s1", rest), timeout=60)
    assert post.returncode == 5, err
    counts = dict(re.findall(rb"^([a-z ]+?) +([\d,]+)", out, re.MULTILINE))
    lines = int(counts[b"lines"].replace(b",", b""))
    parts = [b"acknowledged", b"failed", b"not sent", b"unanswered"]
    assert lines == sum(int(counts.get(p, b"0").replace(b",", b"")) for p in parts)
    assert counts[b"acknowledged"] == b"1,000"
    assert b"every line up to line 1,000 has its outcome" in err
    assert b"resume with `actorbus post --skip 1000`" in err
    assert b"Traceback" not in err

    # Resuming as printed records every line once.
    server = start_serve(root)
    try:
        resumed = run_cli(
            "post", "--root", str(root), "--skip", "1000", input=_events("erin", "s1", range(1500))
        )
        assert resumed.returncode == 0, resumed.stderr
        assert b"acknowledged  500\n" in resumed.stdout
    finally:
        stop(server)
    assert _logged_ids(root, "erin", "s1") == [f"r{n:06d}" for n in range(1500)]


def _read_pty(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    data = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def test_post_errors_are_not_printed_over_the_progress_bar(root: Path, tmp_path: Path) -> None:
    server = start_serve(root)
    try:
        data = tmp_path / "events.jsonl"
        data.write_bytes(b"{not json\n" + _events("nobody", "s1", range(3)) + b"[1]\n")
        master, slave = pty.openpty()
        post = subprocess.Popen(
            cli("post", "--root", str(root), str(data)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=REPO,
        )
        os.close(slave)
        shown = _read_pty(master, post)
        post.wait(30)
        os.close(master)
    finally:
        stop(server)
    assert b"[" in shown and b"%" in shown  # the bar was drawn
    notes = re.findall(rb"(.{0,2})actorbus: line (\d+)", shown, re.DOTALL)
    assert sorted(n for _, n in notes) == [b"1", b"2", b"3", b"4", b"5"]
    # Each note starts on a cleared line: the bar was wiped first, not written over.
    assert all(before.endswith(b"\r") for before, _ in notes), shown


def test_post_says_it_reads_standard_input_when_that_is_a_terminal(root: Path) -> None:
    server = start_serve(root)
    try:
        master, slave = pty.openpty()
        post = subprocess.Popen(
            cli("post", "--root", str(root), "--open"),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        os.close(slave)
        os.write(master, event("frank", "s1", "r1") + b"\n")
        os.write(master, b"\x04")  # Ctrl-D: the end of the input
        out, err = post.communicate(timeout=60)
        os.close(master)
    finally:
        stop(server)
    assert err.startswith(b"actorbus: reading events from standard input")
    assert b"acknowledged  1\n" in out


def test_version_prints_the_distribution_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"actorbus {__version__}"


def _tail(root: Path, *args: str) -> list[str]:
    result = run_cli("tail", "--root", str(root), "gina", "s1", *args)
    assert result.returncode == 0, result.stderr
    return [msgspec.json.decode(line)["event"]["record_id"] for line in result.stdout.splitlines()]


def test_tail_prints_the_last_lines_or_all_and_then_follows_what_lands(root: Path) -> None:
    server = start_serve(root)
    try:
        posted = run_cli(
            "post", "--root", str(root), "--open", input=_events("gina", "s1", range(25))
        )
        assert posted.returncode == 0, posted.stderr
        ids = [f"r{n:06d}" for n in range(25)]
        assert _tail(root) == ids[-10:]
        assert _tail(root, "-n", "3") == ids[-3:]
        assert _tail(root, "-n", "0") == []
        assert _tail(root, "--from-start") == ids
        follower = subprocess.Popen(
            cli("tail", "--root", str(root), "gina", "s1", "-n", "2", "-f"),
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        try:
            assert follower.stdout is not None
            shown = [follower.stdout.readline() for _ in range(2)]
            run_cli("post", "--root", str(root), input=_events("gina", "s1", range(25, 27)))
            shown += [follower.stdout.readline() for _ in range(2)]
        finally:
            follower.terminate()
            follower.wait(30)
        got = [msgspec.json.decode(line)["event"]["record_id"] for line in shown]
        assert got == ["r000023", "r000024", "r000025", "r000026"]
    finally:
        assert stop(server) == 0


def test_live_read_on_a_fresh_root_hints_to_write_the_full_document_first(root: Path) -> None:
    server = start_serve(root)
    try:
        result = run_cli("live", "read", "--root", str(root))
    finally:
        stop(server)
    assert result.returncode == 4
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("actorbus: LiveDataInvalid: ")
    assert lines[1].startswith("actorbus: hint: ") and "actorbus live write full" in lines[1]


def test_service_log_lines_carry_utc_timestamps_and_none_is_written_twice(root: Path) -> None:
    server = start_serve(root)
    assert stop(server) == 0
    assert server.stderr is not None
    lines = server.stderr.read().decode().splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z actorbus: ")
    assert lines and all(stamp.match(line) for line in lines), lines
    said = [stamp.sub("", line).split(": ", 1)[-1] for line in lines]
    assert len(said) == len(set(said)), lines
    assert sum("shutting down" in line for line in lines) == 1, lines


def test_demo_on_a_used_root_runs_in_a_fresh_sub_root_and_says_why(root: Path) -> None:
    first = run_cli("demo", "--small", "--root", str(root), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_cli("demo", "--small", "--root", str(root), timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout.decode()
    assert f"{root} already holds files" in out
    assert "every line checked, order kept" in out
    assert "MISMATCH" not in out


def test_the_demos_next_commands_run_as_printed(root: Path) -> None:
    done = run_cli("demo", "--small", "--root", str(root), timeout=300)
    assert done.returncode == 0
    lines = done.stdout.decode().split("\nnext\n", 1)[1].splitlines()
    serve = next(line for line in lines if " serve --root " in line)
    program = shlex.split(serve.split(" serve --root ", 1)[0])
    version = subprocess.run(
        [*program, "--version"], capture_output=True, cwd=REPO, timeout=60, check=False
    )
    assert version.returncode == 0, (serve, version.stderr)
    assert version.stdout.decode().strip() == f"actorbus {__version__}"
