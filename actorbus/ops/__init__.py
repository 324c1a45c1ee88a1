"""The service's ops, one module per op family, and the table that serves them."""

from .enrich import EnrichOps
from .live import LiveOps
from .session import SessionOps, batch_item
from .table import ServiceOps

__all__ = ["EnrichOps", "LiveOps", "ServiceOps", "SessionOps", "batch_item"]
