from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import CommandProvider, Enrichment, HttpProvider, ProviderItem
from bus import open_bus
from contracts import (
    EnrichItem,
    EnrichmentConfig,
    EnrichRequest,
    InvalidRequest,
    ProviderConfig,
    ProviderError,
)

pytestmark = pytest.mark.anyio

HELPER = """
import json, os, subprocess, sys, time
mode = sys.argv[1]
if mode == "ok":
    request = json.load(sys.stdin)
    results = [
        {"summary": f"cmd {item['item_id']} {item['metadata'].get('title', '')}", "usd": 0.001}
        for item in request["items"]
    ]
    json.dump({"results": results}, sys.stdout)
elif mode == "hang":
    child = subprocess.Popen(["sleep", "30"])
    with open(sys.argv[2], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(30)
elif mode == "fail":
    print("trouble at /root/secret-place with token ghp_" + "a" * 36, file=sys.stderr)
    sys.exit(3)
elif mode == "garbage":
    print("this is not json")
elif mode == "flood":
    sys.stdout.write("x" * 20_000_000)
elif mode == "short":
    json.dump({"results": []}, sys.stdout)
"""


def batch(count: int) -> list[ProviderItem]:
    return [
        ProviderItem("cli", f"i{n}", "summary", "v1", "f" * 64, {"title": f"T{n}"})
        for n in range(count)
    ]


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    script = tmp_path / "enricher.py"
    script.write_text(HELPER)
    return script


def command(helper: Path, *args: str, timeout_s: float = 10.0) -> CommandProvider:
    config = ProviderConfig(
        kind="command", command=[sys.executable, str(helper), *args], timeout_s=timeout_s
    )
    return CommandProvider("cli", config, 4096)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def test_command_provider_speaks_json_on_stdin_and_stdout(helper: Path) -> None:
    answers = await command(helper, "ok").enrich(batch(3))
    assert [a.summary for a in answers] == ["cmd i0 T0", "cmd i1 T1", "cmd i2 T2"]
    assert all(a.usd == 0.001 for a in answers)


async def test_command_provider_timeout_kills_the_process_group(
    helper: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    with pytest.raises(ProviderError, match=r"timed out after 0\.5s and was killed"):
        await command(helper, "hang", str(pids), timeout_s=0.5).enrich(batch(1))
    deadline = time.monotonic() + 5
    parent, child = (int(p) for p in pids.read_text().split())
    while (alive(parent) or alive(child)) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert not alive(parent) and not alive(child)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("fail", "exited with status 3"),
        ("garbage", "answered invalid JSON"),
        ("flood", "answered more than"),
        ("short", "answered 0 results for 2 items"),
    ],
)
async def test_command_provider_failures_are_provider_errors(
    helper: Path, mode: str, message: str
) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        await command(helper, mode).enrich(batch(2))
    assert "/root" not in caught.value.message and "ghp_" not in caught.value.message
    assert str(helper) not in caught.value.message


async def test_a_missing_program_is_a_provider_error_without_its_path(tmp_path: Path) -> None:
    config = ProviderConfig(kind="command", command=[str(tmp_path / "nope")])
    with pytest.raises(ProviderError) as caught:
        await CommandProvider("cli", config, 100).enrich(batch(1))
    assert str(tmp_path) not in caught.value.message


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Handler.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/500":
            self._send(500, b"internal trouble at /root/x")
            return
        if self.path == "/garbage":
            self._send(200, b"<html>")
            return
        request = json.loads(body)
        results = [{"summary": "web " + i["item_id"]} for i in request["items"]]
        self._send(200, json.dumps({"results": results}).encode())

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Handler.seen = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def http(url: str, timeout_s: float = 5.0) -> HttpProvider:
    config = ProviderConfig(
        kind="http", url=url, timeout_s=timeout_s, headers={"authorization": "Bearer s3cr3t-value"}
    )
    return HttpProvider("web", config, 4096)


async def test_http_provider_posts_json_and_reads_the_answer(server: str) -> None:
    provider = http(f"{server}/ok")
    try:
        answers = await provider.enrich(batch(2))
        again = await provider.enrich(batch(1))
    finally:
        await provider.aclose()
    assert [a.summary for a in answers] == ["web i0", "web i1"]
    assert again[0].summary == "web i0"
    sent = Handler.seen[0]
    assert sent["headers"]["authorization"] == "Bearer s3cr3t-value"
    assert sent["headers"]["content-type"] == "application/json"
    assert json.loads(sent["body"])["source_id"] == "web"


@pytest.mark.parametrize(
    ("path", "timeout", "message"),
    [
        ("/500", 5.0, "answered status 500"),
        ("/garbage", 5.0, "answered invalid JSON"),
        ("/slow", 0.3, "timed out after 0.3s"),
    ],
)
async def test_http_failures_are_provider_errors_that_leak_nothing(
    server: str, path: str, timeout: float, message: str
) -> None:
    provider = http(f"{server}{path}", timeout)
    try:
        with pytest.raises(ProviderError, match=message) as caught:
            await provider.enrich(batch(1))
    finally:
        await provider.aclose()
    for secret in ("s3cr3t", "/root", server, "127.0.0.1"):
        assert secret not in caught.value.message


async def test_an_unreachable_endpoint_is_a_provider_error() -> None:
    provider = http("http://127.0.0.1:9/none", 2.0)
    with pytest.raises(ProviderError, match="failed: ConnectError"):
        await provider.enrich(batch(1))
    await provider.aclose()


async def test_configured_external_providers_serve_runs_end_to_end(
    server: str, helper: Path, tmp_path: Path
) -> None:
    cfg = EnrichmentConfig(
        providers={
            "cli": ProviderConfig(
                kind="command", command=[sys.executable, str(helper), "ok"], cost_usd=0.002
            ),
            "web": ProviderConfig(kind="http", url=f"{server}/ok", cost_usd=0.0),
        }
    )
    items = [EnrichItem("cli", "a", {"title": "A"}), EnrichItem("web", "b", {})]
    async with open_bus() as bus:
        enrichment = Enrichment(bus, tmp_path / "root", cfg)
        first = await enrichment.run(EnrichRequest("r1", "summary", "v1", items))
        second = await enrichment.run(EnrichRequest("r2", "summary", "v1", items))
        await enrichment.aclose()
    assert [i.summary for i in first.items] == ["cmd a A", "web b"]
    spend = {s.source_id: (s.state, s.usd, s.calls) for s in first.spend.sources}
    assert spend == {"cli": ("exact", 0.001, 1), "web": ("free", 0.0, 1)}
    assert first.spend.run.state == "exact"
    assert [i.state for i in second.items] == ["hit", "hit"]
    assert len(Handler.seen) == 1


def test_external_providers_need_their_endpoint() -> None:
    with pytest.raises(InvalidRequest):
        HttpProvider("web", ProviderConfig(kind="http"), 10)
    with pytest.raises(InvalidRequest):
        CommandProvider("cli", ProviderConfig(kind="command", command=[]), 10)
