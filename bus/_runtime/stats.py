"""Per-actor counters, the dead letters, and the statistics snapshot reported by ``stats``."""

from __future__ import annotations

import logging
from collections import deque

import msgspec

__all__ = [
    "LATENCY_SAMPLE_EVERY",
    "ActorCounters",
    "ActorStatistics",
    "DeadLetterStatistics",
    "DeadLetters",
]

log = logging.getLogger("actorbus.bus")

#: One message in this many has its handling time measured (a timer on every message
#: would cost more than a cheap handler itself).
LATENCY_SAMPLE_EVERY = 16
_RESERVOIR = 1024


class ActorStatistics(msgspec.Struct, frozen=True):
    """A snapshot of one actor, or of every live instance of one keyed actor class.

    Attributes:
        name: The actor's name (the class name for keyed actors).
        keyed: Whether this aggregates the instances of a keyed actor.
        live: Instances alive now (1 or 0 for a plain actor).
        messages_in: Messages accepted into a mailbox (handled + queued + dead-lettered).
        messages_out: Messages handled (replied to, or completed for a tell).
        failures: Handler exceptions (asks and tells).
        restarts: Restarts after a crash during a tell.
        mailbox_depth: Messages queued now, across live instances.
        latency_p50_us: Median sampled handling time, microseconds.
        latency_p99_us: 99th percentile sampled handling time, microseconds.
        latency_max_us: Largest sampled handling time, microseconds.
        activations: Times an instance was created (keyed: activations).
        passivations: Keyed instances passivated (idle timeout or the live bound).
    """

    name: str
    keyed: bool
    live: int
    messages_in: int
    messages_out: int
    failures: int
    restarts: int
    mailbox_depth: int
    latency_p50_us: float
    latency_p99_us: float
    latency_max_us: float
    activations: int
    passivations: int


class DeadLetterStatistics(msgspec.Struct, frozen=True):
    """Messages that reached no handler, with the most recent reasons."""

    count: int
    recent: list[str]


class DeadLetters:
    """The messages of one bus that reached no handler: a count and the latest reasons.

    Loop thread only. Cells add (the entry names the actor, the message's type and
    the reason, never its content); the bus reports. Logged at the 1st, 2nd, 4th,
    8th... and every 1000th, so a flood does not flood the log.
    """

    __slots__ = ("count", "recent")

    def __init__(self) -> None:
        self.count = 0
        self.recent: deque[str] = deque(maxlen=32)

    def add(self, entry: str) -> None:
        """Count one dead letter described by ``entry``."""
        self.count += 1
        self.recent.append(entry)
        count = self.count
        if count & (count - 1) == 0 or count % 1000 == 0:
            log.warning("dead letter #%d: %s", count, entry)

    def snapshot(self) -> DeadLetterStatistics:
        """Return an immutable view."""
        return DeadLetterStatistics(self.count, list(self.recent))


class ActorCounters:
    """Mutable counters shared by every instance of one actor (or keyed actor class).

    Only the event loop thread touches them; each field only grows, except the
    latency reservoir, a ring of the most recent samples. Accepted messages are not
    counted on the hot path: they are the handled, the queued and the dead-lettered.
    """

    __slots__ = (
        "activations",
        "dead",
        "failures",
        "latency_max",
        "messages_out",
        "name",
        "passivations",
        "restarts",
        "sample_pos",
        "samples",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.dead = 0
        self.messages_out = 0
        self.failures = 0
        self.restarts = 0
        self.activations = 0
        self.passivations = 0
        self.latency_max = 0.0
        self.samples: list[float] = []
        self.sample_pos = 0

    def sample(self, seconds: float) -> None:
        """Record one measured handling time."""
        if seconds > self.latency_max:
            self.latency_max = seconds
        if len(self.samples) < _RESERVOIR:
            self.samples.append(seconds)
        else:
            self.samples[self.sample_pos] = seconds
            self.sample_pos = (self.sample_pos + 1) % _RESERVOIR

    def snapshot(self, *, keyed: bool, live: int, depth: int) -> ActorStatistics:
        """Return an immutable view of the counters."""
        ordered = sorted(self.samples)

        def pct(q: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

        return ActorStatistics(
            name=self.name,
            keyed=keyed,
            live=live,
            messages_in=self.messages_out + depth + self.dead,
            messages_out=self.messages_out,
            failures=self.failures,
            restarts=self.restarts,
            mailbox_depth=depth,
            latency_p50_us=round(pct(0.50), 2),
            latency_p99_us=round(pct(0.99), 2),
            latency_max_us=round(self.latency_max * 1e6, 2),
            activations=self.activations,
            passivations=self.passivations,
        )
