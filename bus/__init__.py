"""actorbus runtime: actors, topics, lifecycle, and the Unix-socket server and clients.

Usage::

    async with open_bus() as bus:
        ref = bus.spawn(Counter, name="counter")
        await ref.tell(1)
        total = await ref.ask("total", timeout=1.0)
"""

from ._errors import (
    ActorStopped,
    AskTimeout,
    BusError,
    ConnectionBroken,
    ConnectionClosed,
    SocketInUse,
    SubscriberLagged,
)
from ._runtime import (
    Actor,
    ActorRef,
    ActorStatistics,
    Bus,
    BusStatistics,
    DeadLetterStatistics,
    Later,
    Overflow,
    RestartPolicy,
    Subscription,
    Topic,
    open_bus,
    run,
    uvloop_available,
)
from ._socket import (
    DEFAULT_MAX_FRAME_BYTES,
    BatchHandler,
    Client,
    ClientCodec,
    FrameReader,
    FrameWriter,
    Handler,
    Part,
    Request,
    Result,
    Server,
    ServerStatistics,
    SyncClient,
    parse_request,
    serve_unix,
)

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
