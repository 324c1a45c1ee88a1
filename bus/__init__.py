"""actorbus runtime: actors, topics, lifecycle, and the Unix-socket server and clients.

Usage::

    async with open_bus() as bus:
        ref = bus.spawn(Counter, name="counter")
        await ref.tell(1)
        total = await ref.ask("total", timeout=1.0)
"""

from ._actor import Actor, ActorRef
from ._cell import RestartPolicy
from ._client import DEFAULT_MAX_FRAME_BYTES, Client, ClientCodec
from ._errors import (
    ActorStopped,
    AskTimeout,
    BusError,
    ConnectionBroken,
    ConnectionClosed,
    SocketInUse,
    SubscriberLagged,
)
from ._later import Later
from ._loop import run, uvloop_available
from ._server import BatchHandler, Handler, Server, ServerStatistics, serve_unix
from ._slot import Part
from ._stats import ActorStatistics, DeadLetterStatistics
from ._sync_client import SyncClient
from ._system import Bus, BusStatistics, open_bus
from ._topic import Overflow, Subscription, Topic
from ._wire import FrameReader, FrameWriter, Request, Result, parse_request

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "ActorStopped",
    "AskTimeout",
    "BatchHandler",
    "Bus",
    "BusError",
    "BusStatistics",
    "Client",
    "ClientCodec",
    "ConnectionBroken",
    "ConnectionClosed",
    "DeadLetterStatistics",
    "FrameReader",
    "FrameWriter",
    "Handler",
    "Later",
    "Overflow",
    "Part",
    "Request",
    "RestartPolicy",
    "Result",
    "Server",
    "ServerStatistics",
    "SocketInUse",
    "SubscriberLagged",
    "Subscription",
    "SyncClient",
    "Topic",
    "open_bus",
    "parse_request",
    "run",
    "serve_unix",
    "uvloop_available",
]
