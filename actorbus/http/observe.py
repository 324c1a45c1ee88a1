"""The routes that watch the service: metrics, statistics, liveness and readiness.

``/metrics`` renders the same ``stats`` answer as ``actorbus stats --prometheus``
(``actorbus/_metrics.py``); see ``docs/http.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from bus import HttpRequest, HttpResponse, Route

from .._metrics import prometheus_text

__all__ = ["PROMETHEUS", "ObserveRoutes"]

#: The Prometheus text exposition format's content type.
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_ENCODER = msgspec.json.Encoder()


class ObserveRoutes:
    """``/metrics``, ``/v1/stats``, ``/healthz`` and ``/readyz``.

    Args:
        statistics: The service's ``stats`` answer.
        state: The service's state: ``starting``, ``serving`` or ``draining``.
    """

    def __init__(self, statistics: Callable[[], Any], state: Callable[[], str]) -> None:
        self._statistics = statistics
        self._state = state

    def routes(self) -> list[Route]:
        """Every observation route."""
        return [
            Route("GET", "/metrics", self.metrics),
            Route("GET", "/v1/stats", self.stats),
            Route("GET", "/healthz", self.healthz),
            Route("GET", "/readyz", self.readyz),
        ]

    def metrics(self, request: HttpRequest) -> HttpResponse:
        """``GET /metrics``: the Prometheus text exposition (version 0.0.4)."""
        text = prometheus_text(msgspec.to_builtins(self._statistics()))
        return HttpResponse(200, text.encode(), PROMETHEUS)

    def stats(self, request: HttpRequest) -> HttpResponse:
        """``GET /v1/stats``: the ``stats`` answer."""
        return HttpResponse(200, _ENCODER.encode(self._statistics()))

    def healthz(self, request: HttpRequest) -> HttpResponse:
        """``GET /healthz``: 200 while the process answers at all."""
        return HttpResponse(200, b'{"status":"ok"}')

    def readyz(self, request: HttpRequest) -> HttpResponse:
        """``GET /readyz``: 200 while serving, 503 while starting or draining."""
        state = self._state()
        if state == "serving":
            return HttpResponse(200, b'{"status":"serving"}')
        body = {
            "status": state,
            "error": {"code": "ShuttingDown", "message": f"the service is {state}"},
        }
        return HttpResponse(503, _ENCODER.encode(body))
