"""One NATS connection shared by the JetStream stores, and our own publish correlator.

``docs/scale-out.md`` is the contract. Two choices in here are deliberate:

- The client connects with ``pending_size=0``: while the connection is down a
  publish fails at once, definitely not sent, instead of sitting in a reconnect
  buffer and being stored after its caller was told it timed out.
- Publishes that need JetStream's acknowledgement go through :class:`Publisher`,
  not nats-py's ``publish_async`` (which drops a server error and has no
  deadline) nor ``js.publish`` (a request with its own inbox each time): one
  inbox subscription for every acknowledgement, a deadline per message, and the
  error JSON parsed into :class:`PubAck`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts import JetStreamConfig, RecorderIOError

__all__ = [
    "ERR_WRONG_LAST_SEQUENCE",
    "HEADER_ROOM",
    "JetStream",
    "NotSent",
    "PubAck",
    "Publisher",
    "decode_token",
    "encode_token",
    "safe_url",
    "until_ready",
]

log = logging.getLogger("actorbus.jetstream")
T = TypeVar("T")

#: JetStream's error code for a publish whose expected last (subject) sequence is stale.
ERR_WRONG_LAST_SEQUENCE = 10071
#: Bytes kept free below the server's ``max_payload`` for a message's headers: the
#: server counts headers and payload together, nats-py checks the payload alone.
HEADER_ROOM = 4096


class NotSent(Exception):
    """A publish was definitely not sent (the connection is down or closed)."""


class ApiError(msgspec.Struct):
    """The ``error`` of a JetStream API answer."""

    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    """JetStream's answer to a publish: the stream sequence, or an error.

    Attributes:
        stream: The stream that stored the message.
        seq: Its sequence in that stream.
        duplicate: The message id was seen within the duplicate window: stored before.
        error: Why the message was refused (nothing stored), or ``None``.
    """

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: ApiError | None = None


_ACK = msgspec.json.Decoder(PubAck)
_NO_RESPONDERS = PubAck(error=ApiError(503, 0, "no stream listens on the subject"))


def encode_token(value: str) -> str:
    """A subject token for an id: ``~`` and ``.`` (the separator) escaped, reversibly."""
    return value.replace("~", "~7E").replace(".", "~2E")


def decode_token(token: str) -> str:
    """The id :func:`encode_token` made ``token`` from."""
    return token.replace("~2E", ".").replace("~7E", "~")


def safe_url(url: str) -> str:
    """A server URL fit for a log line or an error: any user or password removed."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class Publisher:
    """Publishes and waits for JetStream's acknowledgement, many in flight at once.

    Every message gets a reply subject under one inbox subscription; the answer is
    matched by its token. A publish that gets no answer within ``timeout_s`` raises
    :class:`TimeoutError`: its outcome is unknown (it may have been stored).

    Args:
        nc: The connected client.
        timeout_s: How long one publish waits for its acknowledgement.
        max_inflight: Publishes awaiting an acknowledgement at most; more wait for room.
    """

    def __init__(self, nc: Client, timeout_s: float, max_inflight: int) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._room = asyncio.Semaphore(max_inflight)
        self._prefix = ""
        self._tokens = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._sub: Any = None

    @property
    def inbox_prefix(self) -> str:
        """The subject prefix every acknowledgement comes back on (after :meth:`start`)."""
        return self._prefix

    async def start(self) -> None:
        """Subscribe to the inbox the acknowledgements come back on."""
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        fut = self._waiting.get(msg.subject[len(self._prefix) :])
        if fut is None or fut.done():
            return  # answered after its deadline: the caller has moved on
        if not msg.data:
            # A status message: 503 means no stream holds the subject.
            fut.set_result(_NO_RESPONDERS)
            return
        try:
            fut.set_result(_ACK.decode(msg.data))
        except msgspec.DecodeError:
            fut.set_result(PubAck(error=ApiError(500, 0, "unreadable acknowledgement")))

    async def publish(self, subject: str, payload: bytes, headers: Mapping[str, str]) -> PubAck:
        """Publish and wait for the acknowledgement.

        Raises:
            NotSent: The connection is down or closed: nothing was sent.
            TimeoutError: No acknowledgement within the timeout: it may be stored.
        """
        async with self._room:
            token = str(next(self._tokens))
            fut: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
            self._waiting[token] = fut
            try:
                try:
                    await self._nc.publish(
                        subject, payload, reply=self._prefix + token, headers=dict(headers)
                    )
                except (
                    nats.errors.OutboundBufferLimitError,
                    nats.errors.ConnectionClosedError,
                    nats.errors.ConnectionDrainingError,
                ) as exc:
                    raise NotSent(type(exc).__name__) from None
                return await asyncio.wait_for(fut, self._timeout_s)
            finally:
                del self._waiting[token]

    async def aclose(self) -> None:
        """Stop listening for acknowledgements."""
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()


async def until_ready(call: Callable[[], Awaitable[T]], within_s: float) -> T:
    """``call()``, tried again every 250 ms while JetStream is not ready, for ``within_s``.

    Not ready: no answer, no responder, or 503 (a cluster without a leader yet).
    The last failure is raised once the time is up; any other error at once.
    """
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await call()
        except (
            TimeoutError,
            nats.errors.NoRespondersError,
            nats.js.errors.ServiceUnavailableError,
        ):
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.25)


class JetStream:
    """A service's connection to JetStream: the client, its JetStream context, the publisher.

    Create it with :meth:`connect`; close it with :meth:`aclose` after the actors
    that use it have drained.

    Attributes:
        config: The settings it was opened with.
        nc: The NATS client.
        js: Its JetStream context (stream management, consumers, key-value buckets).
        publisher: The acknowledgement correlator for appends.
        max_payload: The server's bound on one message (headers and payload together).
    """

    def __init__(self, config: JetStreamConfig, nc: Client, publisher: Publisher) -> None:
        self.config = config
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=config.publish_timeout_s)
        self.publisher = publisher
        self.max_payload: int = nc.max_payload

    @classmethod
    async def connect(cls, config: JetStreamConfig) -> JetStream:
        """Connect to the first reachable server of ``config.servers``.

        Raises:
            RecorderIOError: No server could be reached, or it has no JetStream: one
                line that names the servers (without credentials).
        """
        names = ", ".join(safe_url(url) for url in config.servers)
        # Seconds as floats: the client's annotations say int, its code takes any number.
        options: dict[str, Any] = {
            "connect_timeout": config.connect_timeout_s,
            "reconnect_time_wait": 0.25,
        }
        if config.credentials_file is not None:
            options["user_credentials"] = config.credentials_file
        nc_ref: list[Client] = []

        async def disconnected() -> None:
            if not (nc_ref and (nc_ref[0].is_closed or nc_ref[0].is_draining)):  # not our close
                log.warning("JetStream connection lost; reconnecting")

        errors = _ErrorLog()
        nc = Client()
        nc_ref.append(nc)
        try:
            # The first connection is bounded as a whole: the client alone would
            # retry an unreachable server list for ever.
            await asyncio.wait_for(
                nc.connect(
                    servers=list(config.servers),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    pending_size=0,
                    error_cb=errors.report,
                    disconnected_cb=disconnected,
                    reconnected_cb=_log_reconnected,
                    **options,
                ),
                config.connect_timeout_s,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise RecorderIOError(
                f"cannot reach JetStream at {names} ({type(exc).__name__}): start nats-server "
                "with -js, or set [storage.jetstream] servers"
            ) from None
        errors.started = True
        try:
            # A cluster that just started answers only once it elected a leader.
            await until_ready(nc.jetstream(timeout=1.0).account_info, config.connect_timeout_s)
        except (TimeoutError, nats.errors.Error) as exc:
            await nc.close()
            raise RecorderIOError(
                f"the NATS server at {names} has no JetStream ready ({type(exc).__name__}): "
                "run nats-server with -js (a cluster needs a majority of its nodes up)"
            ) from None
        publisher = Publisher(nc, config.publish_timeout_s, config.max_inflight)
        await publisher.start()
        return cls(config, nc, publisher)

    async def aclose(self) -> None:
        """Flush what is pending and close the connection."""
        await self.publisher.aclose()
        try:
            await self.nc.drain()
        except (TimeoutError, nats.errors.Error):
            await self.nc.close()


class _ErrorLog:
    """Connection errors, logged once per kind every ``every_s``.

    An outage retries four times a second; one line says as much as a hundred.
    """

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.started = False  # before the first connection, the caller reports failure
        self._last: dict[str, float] = {}

    async def report(self, exc: Exception) -> None:
        """The client's ``error_cb``."""
        if not self.started:
            return
        kind = type(exc).__name__
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) >= self.every_s:
            self._last[kind] = now
            log.warning("JetStream connection: %s", kind)


async def _log_reconnected() -> None:
    log.info("JetStream connection back")
