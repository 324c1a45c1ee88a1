"""The actorbus application: the service wiring, the command line and the demo."""

from ._progress import Progress

__version__ = "0.1.0"
__all__ = ["Progress", "__version__"]
