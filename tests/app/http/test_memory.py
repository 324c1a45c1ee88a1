"""HTTP answers are bounded in bytes: a client that pipelines and never reads holds
the service's memory within the bound, and gets every answer once it reads."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httptools
import pytest
from support.http_service import Served, serve_http_fresh
from support.service import rss_bytes

MiB = 1 << 20


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_http_fresh() as served:
        yield served


class _Answers:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.sizes: list[int] = []
        self._size = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)

    def on_message_complete(self) -> None:
        self.statuses.append(self.parser.get_status_code())
        self.sizes.append(self._size)
        self._size = 0


def test_pipelined_large_answers_never_read_hold_memory_within_the_bound(
    served: Served,
) -> None:
    hosts = {f"web-{i}": {"load": i, "note": "x" * 900} for i in range(1000)}
    with served.uds() as client:
        written = client.put(
            "/v1/live-data/full",
            json={"schema_version": 1, "hosts": hosts, "extensions": {"items": {}}},
        )
        assert written.status_code == 200, written.text
        size = len(client.get("/v1/live-data").content)
    assert size > 900_000
    count = 512  # answers of about 1 MB each: about 460 MB if all were produced
    request = b"GET /v1/live-data HTTP/1.1\r\nhost: localhost\r\n\r\n"
    before = rss_bytes(served.proc.pid)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(60)
        sock.connect(str(served.sock))
        sock.sendall(request * count)
        peak = before
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peak = max(peak, rss_bytes(served.proc.pid))
            time.sleep(0.05)
        assert peak - before < 64 * MiB, f"RSS grew by {(peak - before) / MiB:.0f} MiB"
        # Nothing is lost: the client reads on and gets every answer, in order.
        answers = _Answers()
        while len(answers.statuses) < count:
            data = sock.recv(1 << 20)
            assert data, "the service closed the connection"
            answers.parser.feed_data(data)
    assert answers.statuses == [200] * count
    assert answers.sizes == [size] * count
