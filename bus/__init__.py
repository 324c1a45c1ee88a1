"""actorbus runtime: actors, mailboxes, keyed actors, supervision, topics and lifecycle.

Usage::

    async with open_bus() as bus:
        ref = bus.spawn(Counter, name="counter")
        await ref.tell(1)
        total = await ref.ask("total", timeout=1.0)
"""

from ._actor import Actor, ActorRef
from ._cell import RestartPolicy
from ._errors import ActorStopped, AskTimeout, BusError, SubscriberLagged
from ._loop import run, uvloop_available
from ._stats import ActorStatistics, DeadLetterStatistics
from ._system import Bus, BusStatistics, open_bus
from ._topic import Overflow, Subscription, Topic

__all__ = [
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "ActorStopped",
    "AskTimeout",
    "Bus",
    "BusError",
    "BusStatistics",
    "DeadLetterStatistics",
    "Overflow",
    "RestartPolicy",
    "SubscriberLagged",
    "Subscription",
    "Topic",
    "open_bus",
    "run",
    "uvloop_available",
]
