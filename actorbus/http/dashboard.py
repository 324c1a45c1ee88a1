"""The dashboard: static HTML, CSS and JavaScript shipped in the package, served at ``/``.

No CDN and no build step: the files in ``actorbus/dashboard/`` are served as they
are, read once at start. The page only talks to this service's own routes, so it
is served under a strict ``Content-Security-Policy`` (its own scripts and styles,
nothing inline, no framing); see ``docs/http.md``.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from bus import HttpError, HttpRequest, HttpResponse, Route

__all__ = ["SECURITY_HEADERS", "DashboardRoutes", "load_dashboard"]

#: The headers every dashboard file is served with.
SECURITY_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def load_dashboard() -> dict[str, tuple[bytes, str]]:
    """The dashboard's files by name, with their content types (blocking: run in a thread)."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("actorbus.dashboard").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _TYPES:
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return files


class DashboardRoutes:
    """``GET /``, ``GET /dashboard/{name}`` and ``GET /favicon.ico``.

    Args:
        files: What :func:`load_dashboard` read.
    """

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        self._files = files

    def routes(self) -> list[Route]:
        """The dashboard's routes."""
        return [
            Route("GET", "/", self.index),
            Route("GET", "/dashboard/{name}", self.file),
            Route("GET", "/favicon.ico", self.favicon),
        ]

    def index(self, request: HttpRequest) -> HttpResponse:
        """``GET /``: the page."""
        return self._serve("index.html")

    def file(self, request: HttpRequest) -> HttpResponse:
        """``GET /dashboard/{name}``: a script or style sheet of the page."""
        return self._serve(request.params["name"])

    def favicon(self, request: HttpRequest) -> HttpResponse:
        """``GET /favicon.ico``: none (204), so a browser's own request is not a failure."""
        return HttpResponse(204, b"", None, {"cache-control": "max-age=86400"})

    def _serve(self, name: str) -> HttpResponse:
        found = self._files.get(name)
        if found is None:
            raise HttpError(404, "NotFound", "no dashboard file of this name")
        body, content_type = found
        return HttpResponse(200, body, content_type, SECURITY_HEADERS)
