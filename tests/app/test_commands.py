"""The client commands end to end, against one real ``actorbus serve`` process."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from support.service import cli, event, root_dir, run_cli, start_serve, stop

TREND = {"status": "ok", "updated_at": "2026-11-22T09:15:02.137Z"}


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    with root_dir() as path:
        config = path / "actorbus.toml"
        config.write_bytes(
            b'[enrichment.providers.feed]\nkind = "simulated"\ncost_usd = 0.01\nusage = "exact"\n'
            b'[enrichment.providers.broken]\nkind = "simulated"\nfailure_rate = 1.0\n'
        )
        proc = start_serve(path, "--config", str(config))
        try:
            yield path
        finally:
            assert stop(proc) == 0


def ab(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    command, *rest = args
    if command in ("session", "live"):
        return run_cli(command, rest[0], "--root", str(root), *rest[1:], input=input)
    return run_cli(command, "--root", str(root), *rest, input=input)


def test_session_open_creates_then_reports_an_existing_session(root: Path) -> None:
    first = ab(root, "session", "open", "alice", "s1")
    second = ab(root, "session", "open", "alice", "s1")
    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout == b"session alice/s1 created\n"
    assert second.stdout == b"session alice/s1 already existed\n"


def test_post_reports_bad_lines_by_number_only_and_tail_prints_what_was_recorded(
    root: Path,
) -> None:
    secret = b"ghp_notforlogs0123456789"
    good = [event("bob", "s1", f"r{i}", n=i) for i in range(3)]
    lines = [good[0], b"{broken " + secret, b"", good[1], b"[1, 2]", good[2]]
    posted = ab(root, "post", "--open", input=b"\n".join(lines) + b"\n")
    assert posted.returncode == 4
    assert (
        b"lines         5 (acknowledged + failed + not sent)\nacknowledged  3\n"
        b"failed        0\nnot sent      2 (InvalidEvent 2)\n"
    ) in posted.stdout
    assert b"events/s" in posted.stdout
    assert b"line 2: InvalidEvent" in posted.stderr and b"line 5: InvalidEvent" in posted.stderr
    assert secret not in posted.stderr + posted.stdout
    tail = ab(root, "tail", "bob", "s1")
    assert tail.returncode == 0
    printed = tail.stdout.splitlines()
    assert [line[line.index(b'"event":') + 8 : -1] for line in printed] == good


def test_post_from_a_file_counts_server_refusals_by_code(root: Path, tmp_path: Path) -> None:
    ab(root, "session", "open", "carol", "s1")
    data = tmp_path / "events.jsonl"
    data.write_bytes(event("carol", "s1", "ok") + b"\n" + event("nobody", "s1", "lost") + b"\n")
    posted = ab(root, "post", str(data))
    assert posted.returncode == 4
    assert b"lines         2 " in posted.stdout
    assert b"acknowledged  1\nfailed        1 (MissingSessionPath 1)\n" in posted.stdout
    assert b"not sent      0\n" in posted.stdout
    assert b"line 2: MissingSessionPath" in posted.stderr
    assert b"hint: " in posted.stderr and b"--open" in posted.stderr


def test_tail_follow_prints_envelopes_as_they_are_appended(root: Path) -> None:
    ab(root, "session", "open", "dave", "s1")
    ab(root, "post", input=event("dave", "s1", "first") + b"\n")
    follower = subprocess.Popen(
        cli("tail", "--root", str(root), "dave", "s1", "-f"), stdout=subprocess.PIPE
    )
    try:
        assert follower.stdout is not None
        assert b'"record_id":"first"' in follower.stdout.readline()
        ab(root, "post", input=event("dave", "s1", "second") + b"\n")
        assert b'"record_id":"second"' in follower.stdout.readline()
    finally:
        follower.terminate()
        follower.wait(30)


def test_live_write_and_read_round_trip_and_a_refusal_is_one_line(root: Path) -> None:
    doc = {"schema_version": 1, "extensions": {"items": {}}}
    full = ab(root, "live", "write", "full", input=msgspec.json.encode(doc))
    assert full.returncode == 0, full.stderr
    assert msgspec.json.decode(full.stdout)["base"] == "none"
    trend = {"extensions": {"items": {"trend-finder": TREND}}}
    written = ab(root, "live", "write", "trend-finder", input=msgspec.json.encode(trend))
    assert msgspec.json.decode(written.stdout)["branches"] == ["extensions.items.trend-finder"]
    read = ab(root, "live", "read")
    assert msgspec.json.decode(read.stdout) == {**doc, **trend}
    leak = {"schema_version": 1, "notes": {"path": "/home/erin/private.txt"}}
    refused = ab(root, "live", "write", "host-local", input=msgspec.json.encode(leak))
    assert refused.returncode == 4
    assert refused.stderr.startswith(b"actorbus: PrivacyViolation: ")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert b"/home/erin" not in refused.stderr


def test_enrich_prints_the_report_and_the_second_run_is_answered_from_the_cache(
    root: Path,
) -> None:
    request = {
        "run_id": "cli",
        "enrichment_type": "summary",
        "adapter_version": "v1",
        "items": [
            {"source_id": "feed", "item_id": f"i{n}", "metadata": {"n": n}} for n in range(3)
        ],
    }
    first = ab(root, "enrich", input=msgspec.json.encode(request))
    second = ab(root, "enrich", input=msgspec.json.encode(request))
    assert (first.returncode, second.returncode) == (0, 0)
    assert msgspec.json.decode(first.stdout)["counts"]["written"] == 3
    assert msgspec.json.decode(second.stdout)["counts"]["hits"] == 3
    assert b"3 hits" in second.stderr
    failing = {**request, "items": [{"source_id": "broken", "item_id": "x"}]}
    failed = ab(root, "enrich", input=msgspec.json.encode(failing))
    assert failed.returncode == 5
    assert failed.stderr.startswith(b"actorbus: ProviderError: ")


def test_stats_prints_a_table_json_and_prometheus_text(root: Path) -> None:
    table = ab(root, "stats")
    assert table.returncode == 0
    assert b"connections open" in table.stdout and b"SessionWriter" in table.stdout
    as_json = msgspec.json.decode(ab(root, "stats", "--json").stdout)
    assert set(as_json) == {"server", "http", "recording", "live", "bus", "service"}
    text = ab(root, "stats", "--prometheus").stdout.decode()
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            declared[name] = kind
            continue
        if line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\S+)', line)
        assert match, line
        assert match.group(1) in declared, f"{match.group(1)} has no TYPE line"
        float(match.group(4))
    assert declared["actorbus_server_requests_total"] == "counter"
    assert declared["actorbus_actor_mailbox_depth"] == "gauge"
    assert 'actorbus_actor_messages_handled_total{actor="SessionWriter",keyed="true"}' in text


def test_a_command_with_no_service_to_talk_to_is_one_line_and_exit_5(tmp_path: Path) -> None:
    result = run_cli("stats", "--root", str(tmp_path))
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert b"cannot connect to" in lines[0] and b"is `actorbus serve` running?" in lines[0]


def test_an_input_that_is_not_a_json_object_is_refused_before_sending(root: Path) -> None:
    result = ab(root, "live", "write", "full", input=b"[1, 2]")
    assert result.returncode == 4
    assert (
        result.stderr == b"actorbus: InvalidRequest: the live-data document must be a JSON object\n"
    )
