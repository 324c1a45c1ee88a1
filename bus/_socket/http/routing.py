"""Routes: a method and a path pattern, matched to the handler the application gave.

A pattern is a path whose ``{name}`` segments match one segment each
(``/v1/sessions/{user_id}/{session_id}``). A path no route matches is ``404
NotFound``; a path matched under other methods only is ``405 MethodNotAllowed``
with ``Allow`` listing them. ``HEAD`` is answered wherever ``GET`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .messages import HttpError, HttpRequest

__all__ = ["BatchRouteHandler", "Route", "RouteHandler", "Router"]

#: Takes the request; returns an :class:`~bus.HttpResponse`, an :class:`~bus.HttpStream`,
#: a plain value (JSON with the route's status), or an awaitable of one of them.
RouteHandler = Callable[[HttpRequest], Any]

#: Takes consecutive requests of one route read together; returns one outcome per
#: request, in order: what the route's handler would return, an ``ActorbusError``
#: or a :class:`~bus.Part` of a reply shared by several.
BatchRouteHandler = Callable[[list[HttpRequest]], list[Any]]


@dataclass(frozen=True)
class Route:
    """One route.

    Attributes:
        method: ``GET``, ``POST``, ``PUT`` or ``DELETE``.
        pattern: The path pattern.
        handler: What answers it.
        status: The status of a plain value returned by the handler.
        consumes: The body's accepted media types (``Content-Type`` without
            parameters); empty: any, or none.
        writes: Whether the route changes state; over TCP it then needs the token.
        many: Takes consecutive requests of this route read together, as one call.
    """

    method: str
    pattern: str
    handler: RouteHandler
    status: int = 200
    consumes: tuple[str, ...] = ()
    writes: bool = False
    many: BatchRouteHandler | None = None


_Compiled = tuple[tuple[str, ...], Route]


class Router:
    """Matches a method and a path to a route and its parameters.

    Args:
        routes: The routes; a literal segment wins over a ``{name}`` at the same place.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        self._exact_methods: dict[str, list[str]] = {}
        self._patterns: list[_Compiled] = []
        for route in routes:
            if "{" in route.pattern:
                self._patterns.append((tuple(route.pattern.strip("/").split("/")), route))
            else:
                self._exact[(route.method, route.pattern)] = route
                self._exact_methods.setdefault(route.pattern, []).append(route.method)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` and ``path``, and the path's parameters.

        Raises:
            HttpError: No route has the path (404), or none has it with this method
                (405, ``Allow`` set).
        """
        lookup = "GET" if method == "HEAD" else method
        route = self._exact.get((lookup, path))
        if route is not None:
            return route, {}
        allowed = list(self._exact_methods.get(path, ()))
        segments = path.strip("/").split("/")
        for parts, candidate in self._patterns:
            params = _bind(parts, segments)
            if params is None:
                continue
            if candidate.method == lookup:
                return candidate, params
            allowed.append(candidate.method)
        if not allowed:
            raise HttpError(404, "NotFound", "no route for this path")
        methods = sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set()))
        raise HttpError(
            405,
            "MethodNotAllowed",
            f"the path answers {', '.join(methods)}",
            {"Allow": ", ".join(methods)},
        )


def _bind(parts: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(parts) != len(segments):
        return None
    params: dict[str, str] = {}
    for part, segment in zip(parts, segments, strict=True):
        if part.startswith("{"):
            if not segment:
                return None
            params[part[1:-1]] = segment
        elif part != segment:
            return None
    return params
