"""The HTTP security model against a real service: loopback only, token for writes, Host, CORS."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.http_service import Served, serve_http
from support.service import event, run_cli, short_root

TOKEN = "s3cr3t-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    root = short_root()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def with_token(root: Path) -> Iterator[Served]:
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = f"""
[http]
token_file = "{token_file}"
cors_origins = ["http://127.0.0.1:9999"]
"""
    with serve_http(root, config, tcp=True) as served:
        yield served


def test_a_non_loopback_listener_is_refused_without_allow_remote(tmp_path: Path) -> None:
    done = run_cli("serve", "--root", str(short_root()), "--http", "0.0.0.0:0", timeout=30)
    assert done.returncode != 0
    assert b"not a loopback address" in done.stderr
    assert b"allow_remote" in done.stderr


def test_the_listener_binds_loopback(with_token: Served) -> None:
    assert with_token.tcp is not None
    assert with_token.tcp.startswith("127.0.0.1:")


def test_writes_over_tcp_need_the_token(with_token: Served) -> None:
    body = event("sec", "s1", "r1")
    headers = {"content-type": "application/json"}
    with with_token.uds() as local:
        assert local.post("/v1/sessions/sec/s1").status_code == 201  # the socket needs no token
    with with_token.over_tcp() as tcp:
        missing = tcp.post("/schema-recorder/append", content=body, headers=headers)
        assert (missing.status_code, missing.json()["error"]["code"]) == (403, "Forbidden")
        wrong = tcp.post(
            "/schema-recorder/append",
            content=body,
            headers={**headers, "authorization": "Bearer not-the-token"},
        )
        assert wrong.status_code == 403
        assert "not-the-token" not in wrong.text
        right = tcp.post(
            "/schema-recorder/append",
            content=body,
            headers={**headers, "authorization": f"Bearer {TOKEN}"},
        )
        assert right.status_code == 201
        assert tcp.put("/v1/live-data/full", json={}).status_code == 403
        assert tcp.post("/v1/sessions/sec/s2").status_code == 403
        assert tcp.get("/healthz").status_code == 200  # reads need no token
        assert tcp.get("/v1/sessions/sec/s1/events").status_code == 200


def test_writes_over_tcp_are_refused_when_no_token_is_configured() -> None:
    root = short_root()
    try:
        with serve_http(root, tcp=True) as served, served.over_tcp() as tcp:
            answer = tcp.post(
                "/v1/events",
                content=event("a", "b", "c"),
                headers={"content-type": "application/x-ndjson", "authorization": "Bearer x"},
            )
            assert answer.status_code == 403
            assert "token_file" in answer.json()["error"]["message"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_foreign_host_header_is_refused(with_token: Served) -> None:
    with with_token.over_tcp() as tcp:
        answer = tcp.get("/v1/live-data", headers={"host": "evil.example"})
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "HostNotAllowed")
        assert "evil" not in answer.text
        assert tcp.get("/healthz", headers={"host": "localhost:8787"}).status_code == 200
        assert tcp.get("/healthz", headers={"host": "[::1]:8787"}).status_code == 200
    with with_token.uds() as local:
        assert local.get("/healthz", headers={"host": "evil.example"}).status_code == 403


def test_cors_headers_only_for_a_configured_origin(with_token: Served) -> None:
    with with_token.over_tcp() as tcp:
        plain = tcp.get("/healthz")
        assert "access-control-allow-origin" not in plain.headers
        other = tcp.get("/healthz", headers={"origin": "http://elsewhere"})
        assert "access-control-allow-origin" not in other.headers
        allowed = tcp.get("/healthz", headers={"origin": "http://127.0.0.1:9999"})
        assert allowed.headers["access-control-allow-origin"] == "http://127.0.0.1:9999"
        preflight = tcp.options("/v1/events", headers={"origin": "http://127.0.0.1:9999"})
        assert preflight.status_code == 204
        assert "POST" in preflight.headers["access-control-allow-methods"]


def test_no_cors_headers_without_configuration() -> None:
    root = short_root()
    try:
        with serve_http(root, tcp=True) as served, served.over_tcp() as tcp:
            answer = tcp.get("/healthz", headers={"origin": "http://127.0.0.1:9999"})
            assert "access-control-allow-origin" not in answer.headers
            assert tcp.options("/healthz").status_code == 405
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_token_never_reaches_the_log(with_token: Served, root: Path) -> None:
    with with_token.over_tcp() as tcp:
        tcp.get("/healthz", headers={"authorization": f"Bearer {TOKEN}"})
    assert with_token.stop() == 0
    assert TOKEN.encode() not in with_token.log()
