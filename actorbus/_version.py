"""The distribution's version, in a module of its own so any part can import it."""

__all__ = ["__version__"]

__version__ = "0.1.0"
