"""The recording routes: append, open a session, bulk NDJSON events, a session's events.

Each route is a thin mapping onto the recording ops (``actorbus/ops/session.py``):
the same steps the socket's ``append``, ``session.open`` and ``subscribe`` take, so
an event reaches its writer the same way whichever door it came in by. See
``docs/http.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from bus import HttpError, HttpLines, HttpRequest, HttpResponse, HttpStream, Route
from contracts import ActorbusError

from ..ops import SessionOps

__all__ = ["recording_routes"]

_JSON = ("application/json",)
_NDJSON = ("application/x-ndjson", "application/jsonl")
_ENCODER = msgspec.json.Encoder()
_SSE = "text/event-stream"


def _event_line(value: Any, error: ActorbusError | None) -> bytes:
    """One line of a ``POST /v1/events`` answer."""
    if error is None:
        return b'{"status":201,"result":%s}\n' % _ENCODER.encode(value)
    return (
        _ENCODER.encode(
            {"status": error.status, "error": {"code": error.code, "message": error.message}}
        )
        + b"\n"
    )


def _split_lines(body: bytes) -> list[bytes]:
    """The events of an NDJSON body: one per line, blank lines skipped, CRLF accepted."""
    return [line for line in (raw.rstrip(b"\r") for raw in body.split(b"\n")) if line.strip()]


class RecordingRoutes:
    """The recording routes of one service.

    Args:
        session: The service's recording ops.
    """

    def __init__(self, session: SessionOps) -> None:
        self._session = session

    def routes(self) -> list[Route]:
        """Every recording route."""
        return [
            Route(
                "POST",
                "/schema-recorder/append",
                self.append,
                status=201,
                consumes=_JSON,
                writes=True,
                many=self.append_many,
            ),
            Route("POST", "/v1/sessions/{user_id}/{session_id}", self.open, writes=True),
            Route("POST", "/v1/events", self.events, consumes=_NDJSON, writes=True),
            Route("GET", "/v1/sessions/{user_id}/{session_id}/events", self.session_events),
        ]

    def append(self, request: HttpRequest) -> Any:
        """``POST /schema-recorder/append``: 201 ``{record_id, recorded_at}``."""
        return self._session.append_event(request.body)

    def append_many(self, requests: list[HttpRequest]) -> list[Any]:
        """Pipelined appends read together: one writer message per session."""
        return self._session.append_events([request.body for request in requests])

    async def open(self, request: HttpRequest) -> HttpResponse:
        """``POST /v1/sessions/{user_id}/{session_id}``: 201 created, 200 existed."""
        params = request.params
        created = await self._session.open(params["user_id"], params["session_id"])
        body = b'{"created":true}' if created else b'{"created":false}'
        return HttpResponse(201 if created else 200, body)

    def events(self, request: HttpRequest) -> HttpLines:
        """``POST /v1/events``: one answer line per event, in order, as writers answer."""
        lines = _split_lines(request.body)
        return HttpLines(self._session.append_events(lines) if lines else [], _event_line)

    async def session_events(self, request: HttpRequest) -> HttpStream:
        """``GET .../events``: the session's envelopes as NDJSON, or SSE with resumable ids."""
        params = request.params
        user_id, session_id = params["user_id"], params["session_id"]
        sse = _SSE in request.headers.get("accept", "")
        follow = request.flag("follow") or (sse and request.query.get("follow") != "false")
        skip = 0
        if sse:
            last = request.headers.get("last-event-id", "").strip()
            if last:
                if not last.isdigit() or len(last) > 18:
                    raise HttpError(400, "InvalidRequest", "Last-Event-ID must be an event id")
                skip = int(last)
        await self._session.require_session(user_id, session_id)
        lines = self._session.envelope_lines(user_id, session_id, follow=follow, from_start=True)
        if sse:
            return HttpStream(
                _sse(lines, skip), content_type=_SSE, headers={"cache-control": "no-cache"}
            )
        return HttpStream(_ndjson(lines))


async def _ndjson(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for line in lines:
            yield line + b"\n"
    finally:
        await _aclose(lines)


async def _sse(lines: AsyncIterator[bytes], skip: int) -> AsyncIterator[bytes]:
    """Server-Sent Events: each envelope's id is its place in the log (1 is the first)."""
    seen = 0
    try:
        yield b"retry: 1000\n\n"
        async for line in lines:
            seen += 1
            if seen > skip:
                yield b"id: %d\ndata: %s\n\n" % (seen, line)
    finally:
        await _aclose(lines)


async def _aclose(lines: AsyncIterator[bytes]) -> None:
    aclose = getattr(lines, "aclose", None)
    if aclose is not None:
        await aclose()


def recording_routes(session: SessionOps) -> list[Route]:
    """The recording routes over ``session``."""
    return RecordingRoutes(session).routes()
