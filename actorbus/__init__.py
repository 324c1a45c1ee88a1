"""The actorbus application: the service wiring, the command line and the demo.

``Service``, ``ServiceInfo`` and ``open_service`` load the actors on first use, so
the client commands start without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._progress import Progress
from ._version import __version__

if TYPE_CHECKING:
    from ._service import Service, ServiceInfo, open_service

__all__ = ["Progress", "Service", "ServiceInfo", "__version__", "open_service"]

_LAZY = frozenset({"Service", "ServiceInfo", "open_service"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _service

        return getattr(_service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
