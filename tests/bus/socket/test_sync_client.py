from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support.socket_ops import short_dir, start_server, stop

from bus import ConnectionBroken, ConnectionClosed, SyncClient
from contracts import InvalidRequest, Overloaded, Timeout, UnknownOp


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    directory = short_dir()
    path = directory / "c.sock"
    proc = start_server(path)
    yield path
    assert stop(proc) == 0
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
def test_a_request_returns_its_result(server: Path, framing: Any) -> None:
    with SyncClient.connect(server, framing=framing, timeout=10) as client:
        assert client.request("ping") == {"pong": True}
        assert client.request("add", a=1, b=2) == 3
        assert client.request("echo", value=[None, True, "s"]) == [None, True, "s"]


def test_error_answers_are_raised_as_their_own_class(server: Path) -> None:
    with SyncClient.connect(server, timeout=10) as client:
        with pytest.raises(UnknownOp):
            client.request("nope")
        with pytest.raises(InvalidRequest):
            client.request("add", a="one", b=2)
        with pytest.raises(Overloaded):
            client.request("busy")
        assert client.request("ping") == {"pong": True}


@pytest.mark.parametrize("framing", ["msgpack", "jsonl"])
def test_a_pipeline_returns_every_outcome_in_order(server: Path, framing: Any) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [("echo", {"value": i}) for i in range(2000)]
    requests[7] = ("busy", {})
    with SyncClient.connect(server, framing=framing, timeout=10) as client:
        outcomes = client.pipeline(requests, window=100)
    assert isinstance(outcomes[7], Overloaded)
    assert [o for i, o in enumerate(outcomes) if i != 7] == [i for i in range(2000) if i != 7]


def test_a_subscription_yields_items_then_the_client_goes_on(server: Path) -> None:
    with SyncClient.connect(server, timeout=10) as client:
        assert list(client.subscribe("stream", count=3)) == [0, 1, 2]
        assert client.request("ping") == {"pong": True}


def test_closing_a_subscription_early_closes_the_client(server: Path) -> None:
    client = SyncClient.connect(server, timeout=10)
    with closing(client.subscribe("stream", count=100)) as items:
        assert next(items) == 0
    with pytest.raises(ConnectionClosed):
        client.request("ping")


def test_a_timeout_raises_and_the_late_answer_is_skipped(server: Path) -> None:
    with SyncClient.connect(server, timeout=0.05) as client:
        with pytest.raises(Timeout):
            client.request("slow", seconds=0.3, value="late")
        client.timeout = 10
        assert client.timeout == 10
        assert client.request("echo", value="fresh") == "fresh"


def test_connecting_where_nothing_listens_is_connection_broken(tmp_path: Path) -> None:
    with pytest.raises(ConnectionBroken) as caught:
        SyncClient.connect(tmp_path / "none.sock")
    assert isinstance(caught.value.__cause__, OSError)


def test_a_closed_client_refuses_further_calls(server: Path) -> None:
    client = SyncClient.connect(server, timeout=10)
    client.close()
    client.close()
    with pytest.raises(ConnectionClosed):
        client.request("ping")
