"""Route dispatch: each request read goes to its route's handler, in the answer order.

The requests one read completes are admitted by the endpoint (``Host``, route,
token, media type), then handed to their handlers at once; consecutive requests
of a route with a batch form (``Route.many``) go to it together, as the socket's
pipelined appends do. Each outcome lands in the request's :class:`~.slots.Slot`:
ready now, or a future the connection waits for. A request read once the
service's shutdown has begun is answered ``503 ShuttingDown`` without running.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from contracts import ActorbusError, ShuttingDown

from ..ordering import Part, internal_error
from .messages import HttpRequest
from .ports import Shared
from .routing import Route
from .slots import Slot

__all__ = ["Dispatcher"]


class Dispatcher:
    """The dispatch side of one connection.

    Args:
        endpoint: The shared state: routes, admission, counters, shutdown.
        on_done: Called when a future a slot waits on completes.

    Attributes:
        pending: The slots in request order; the connection pops answered ones.
    """

    def __init__(self, endpoint: Shared, on_done: Callable[[asyncio.Future[Any]], None]) -> None:
        self._endpoint = endpoint
        self._on_done = on_done
        self.pending: deque[Slot] = deque()
        self._watched: asyncio.Future[Any] | None = None  # the last future given on_done

    def dispatch(self, completed: list[tuple[HttpRequest, Slot]]) -> None:
        """Hand the requests of one read to their routes; runs of a batch form go together."""
        admit = self._endpoint.admit
        routes: list[Route | None] = []
        for request, slot in completed:
            route = None
            if slot.error is None:
                try:
                    route = admit(request)
                except ActorbusError as exc:
                    slot.error = exc
            routes.append(route)
        count = len(completed)
        start = 0
        while start < count:
            route = routes[start]
            stop = start + 1
            if route is not None and route.many is not None:
                while stop < count and routes[stop] is route:
                    stop += 1
            if stop - start > 1:
                assert route is not None
                self._accept_many(completed[start:stop], route)
            else:
                request, slot = completed[start]
                self._accept(request, slot, route)
            start = stop

    def refuse(self, error: ActorbusError) -> None:
        """Answer ``error`` after every request before it (the connection then closes)."""
        slot = Slot(False, False, None)
        slot.error = error
        self._endpoint.counters.requests += 1
        self.pending.append(slot)

    def _accept(self, request: HttpRequest, slot: Slot, route: Route | None) -> None:
        endpoint = self._endpoint
        endpoint.counters.requests += 1
        slot.route = route
        if route is not None and slot.error is None:
            if endpoint.closing:
                slot.error = ShuttingDown("the service is shutting down")
            else:
                try:
                    self._settle(slot, route.handler(request))
                except ActorbusError as exc:
                    slot.error = exc
                except Exception as exc:
                    slot.error = internal_error(exc, f"{route.method} {route.pattern}")
        self.pending.append(slot)

    def _accept_many(self, run: list[tuple[HttpRequest, Slot]], route: Route) -> None:
        endpoint = self._endpoint
        endpoint.counters.requests += len(run)
        many = route.many
        assert many is not None
        try:
            if endpoint.closing:
                raise ShuttingDown("the service is shutting down")
            outs = many([request for request, _ in run])
            if len(outs) != len(run):
                raise RuntimeError(f"answered {len(outs)} of {len(run)} requests")
        except ActorbusError as exc:
            outs = [exc] * len(run)
        except Exception as exc:
            outs = [internal_error(exc, f"{route.method} {route.pattern}")] * len(run)
        pending = self.pending
        for (_, slot), out in zip(run, outs, strict=True):
            slot.route = route
            self._settle(slot, out)
            pending.append(slot)

    def _settle(self, slot: Slot, out: Any) -> None:
        """Place a handler's outcome in its slot: ready now, or a future to wait for."""
        kind = type(out)
        if kind is Part:
            slot.fut = out.fut
            slot.index = out.index
        elif isinstance(out, ActorbusError):
            slot.error = out
        elif isinstance(out, asyncio.Future):
            slot.fut = out
        elif hasattr(out, "__await__"):
            slot.fut = asyncio.ensure_future(out)
        else:
            slot.value = out
            return
        fut = slot.fut
        if fut is not None and fut is not self._watched and not fut.done():
            # Requests sharing one reply need one callback, not one each.
            self._watched = fut
            fut.add_done_callback(self._on_done)
