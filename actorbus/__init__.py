"""The actorbus application: the service wiring, the command line and the demo."""

from ._progress import Progress
from ._service import Service, ServiceInfo, open_service

__version__ = "0.1.0"
__all__ = ["Progress", "Service", "ServiceInfo", "__version__", "open_service"]
