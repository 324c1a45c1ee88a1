"""The live-data and enrichment routes: the document with its ETag, scoped writes, runs.

Thin mappings onto the live-data and enrichment ops (``actorbus/ops/live.py``,
``actorbus/ops/enrich.py``); see ``docs/http.md``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from bus import HttpError, HttpRequest, HttpResponse, Route
from contracts import EnrichReport

from ..ops import EnrichOps, LiveOps

__all__ = ["DataRoutes"]

_JSON = ("application/json",)
_ENCODER = msgspec.json.Encoder()
_OBJECT = msgspec.json.Decoder(dict[str, Any])
_ANY = msgspec.json.Decoder()


def _object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; the error says what was wrong, never what was sent."""
    try:
        return _OBJECT.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise HttpError(400, "InvalidRequest", "the body must be one JSON object") from None


def etag_of(body: bytes) -> str:
    """A strong ETag: a digest of the exact bytes served."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def _matches(if_none_match: str, etag: str) -> bool:
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


class DataRoutes:
    """The live-data and enrichment routes of one service.

    Args:
        live: The live-data ops.
        enrichment: The enrichment ops (which keep the last runs' reports).
    """

    def __init__(self, live: LiveOps, enrichment: EnrichOps) -> None:
        self._live = live
        self._enrichment = enrichment

    def routes(self) -> list[Route]:
        """Every live-data and enrichment route."""
        return [
            Route("GET", "/v1/live-data", self.read),
            Route("PUT", "/v1/live-data/{scope}", self.write, consumes=_JSON, writes=True),
            Route("POST", "/v1/enrich", self.enrich, consumes=_JSON, writes=True),
            Route("GET", "/v1/enrich/runs", self.runs),
        ]

    async def read(self, request: HttpRequest) -> HttpResponse:
        """``GET /v1/live-data``: the document; ``If-None-Match`` with its ETag gives 304."""
        document = (await self._live.read())["data"]
        body = _ENCODER.encode(document)
        etag = etag_of(body)
        headers = {"etag": etag, "cache-control": "no-cache"}
        if _matches(request.headers.get("if-none-match", ""), etag):
            return HttpResponse(304, b"", None, headers)
        return HttpResponse(200, body, headers=headers)

    def write(self, request: HttpRequest) -> Any:
        """``PUT /v1/live-data/{scope}``: the body is ``data``; ``?delete=true`` deletes."""
        data = _object(request.body)
        return self._live.write(request.params["scope"], data, request.flag("delete"))

    def enrich(self, request: HttpRequest) -> Any:
        """``POST /v1/enrich``: the run's report."""
        try:
            value = _ANY.decode(request.body)
        except (msgspec.DecodeError, RecursionError):
            raise HttpError(400, "InvalidRequest", "the body must be one JSON object") from None
        return self._enrichment.run(value)

    def runs(self, request: HttpRequest) -> dict[str, list[EnrichReport]]:
        """``GET /v1/enrich/runs``: the last runs' reports, newest first."""
        return {"runs": list(reversed(self._enrichment.recent))}
