"""The actor runtime: actors, mailboxes, cells and their dispatch, keyed actors, topics, the bus.

It never imports the socket transport (``bus._socket``); see ``docs/architecture.md``.
"""

from .actor import Actor
from .cell import RestartPolicy
from .later import Later
from .loop import run, uvloop_available
from .ref import ActorRef
from .stats import ActorStatistics, DeadLetterStatistics
from .system import Bus, BusStatistics, open_bus
from .topic import Overflow, Subscription, Topic

__all__ = [
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "Bus",
    "BusStatistics",
    "DeadLetterStatistics",
    "Later",
    "Overflow",
    "RestartPolicy",
    "Subscription",
    "Topic",
    "open_bus",
    "run",
    "uvloop_available",
]
