"""The service's HTTP routes, next to its socket ops (``docs/http.md``)."""

from .dashboard import SECURITY_HEADERS, DashboardRoutes, load_dashboard
from .data import DataRoutes, etag_of
from .observe import PROMETHEUS, ObserveRoutes
from .recording import RecordingRoutes, recording_routes
from .routes import build_endpoint, read_token, service_routes

__all__ = [
    "PROMETHEUS",
    "SECURITY_HEADERS",
    "DashboardRoutes",
    "DataRoutes",
    "ObserveRoutes",
    "RecordingRoutes",
    "build_endpoint",
    "etag_of",
    "load_dashboard",
    "read_token",
    "recording_routes",
    "service_routes",
]
