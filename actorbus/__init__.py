"""The actorbus application: the service wiring, the command line and the demo."""

__version__ = "0.1.0"
__all__ = ["__version__"]
