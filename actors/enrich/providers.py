"""Enrichment providers: the interface, the simulator and Python callables.

A provider takes a batch of items of one source and answers, per item and in
order, a summary or an error, and the actual cost in USD when it knows it. The
kinds configured under ``[enrichment.providers.<source>]`` are built by
:func:`build_provider`; the external kinds (``command``, ``http``) live in
``_enrich_external``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import anyio
import msgspec

from contracts import InvalidRequest, ProviderConfig, ProviderError

__all__ = [
    "Provider",
    "ProviderAnswer",
    "ProviderItem",
    "PythonProvider",
    "SimulatedProvider",
    "answers_from",
]


class ProviderItem(msgspec.Struct, frozen=True):
    """What a provider is asked about one item: its key fields and sanitised metadata."""

    source_id: str
    item_id: str
    enrichment_type: str
    adapter_version: str
    fingerprint: str
    metadata: dict[str, Any]


class ProviderAnswer(msgspec.Struct, frozen=True):
    """A provider's answer for one item.

    Attributes:
        summary: The safe summary (bounded and checked before it is cached).
        usd: The actual cost of this item, when the provider reports usage.
        error: Why this item failed; the item is then ``failed`` and not cached.
    """

    summary: str | None = None
    usd: float | None = None
    error: str | None = None


@runtime_checkable
class Provider(Protocol):
    """Anything that enriches a batch of items of one source.

    ``enrich`` returns one answer per item, in order. Raising fails the whole batch
    (a :class:`~contracts.ProviderError` message is shown; any other exception
    only by its type). A provider may also define ``async aclose()``.
    """

    async def enrich(self, items: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        """Enrich one batch; see the class docstring."""
        ...


def answers_from(value: Any, count: int) -> list[ProviderAnswer]:
    """Normalise what a provider returned into ``count`` answers.

    Accepts answers, mappings with the answer's fields, or bare strings (a summary).

    Raises:
        ProviderError: The value is not a list of ``count`` usable answers.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ProviderError("provider answered something other than a list")
    if len(value) != count:
        raise ProviderError(f"provider answered {len(value)} results for {count} items")
    out: list[ProviderAnswer] = []
    for one in value:
        if isinstance(one, ProviderAnswer):
            out.append(one)
        elif isinstance(one, str):
            out.append(ProviderAnswer(summary=one))
        else:
            try:
                out.append(msgspec.convert(one, ProviderAnswer))
            except (msgspec.ValidationError, RecursionError):
                raise ProviderError("provider answered a malformed result") from None
    return out


class SimulatedProvider:
    """A simulator of a slow, paid provider: deterministic, repeatable, never networked.

    Summaries are made from the item's metadata. Latency, the cost it reports and
    whether an item fails are drawn from a random generator seeded by the item's
    key and the configured ``seed``, so the same item behaves the same every run.
    With ``usage = "exact"`` it reports an actual cost between half and all of
    ``cost_usd``; with ``"estimated"`` it reports none.

    Attributes:
        calls: Batches it has answered (for tests and the demo).
        items: Items it has answered.
    """

    def __init__(
        self,
        source_id: str,
        config: ProviderConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.source_id = source_id
        self.config = config
        self._sleep = sleep
        self.calls = 0
        self.items = 0

    def _rng(self, item: ProviderItem) -> random.Random:
        key = f"{self.config.seed}\x00{item.source_id}\x00{item.item_id}\x00{item.fingerprint}"
        return random.Random(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest())

    async def enrich(self, items: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        """Answer a batch after the simulated latency (the slowest item's)."""
        config = self.config
        rngs = [self._rng(item) for item in items]
        if config.latency_ms > 0:
            draws = [0.5 + rng.random() for rng in rngs]
            await self._sleep(config.latency_ms * max(draws, default=0.0) / 1000.0)
        self.calls += 1
        self.items += len(items)
        answers = []
        for item, rng in zip(items, rngs, strict=True):
            if rng.random() < config.failure_rate:
                answers.append(ProviderAnswer(error="simulated failure"))
                continue
            usd = None
            if config.usage == "exact" and config.cost_usd is not None:
                usd = round(config.cost_usd * (0.5 + 0.5 * rng.random()), 9)
            answers.append(ProviderAnswer(summary=self._summary(item), usd=usd))
        return answers

    @staticmethod
    def _summary(item: ProviderItem) -> str:
        title = item.metadata.get("title")
        head = f"{title[:80]}: " if isinstance(title, str) and title else ""
        return (
            f"{head}simulated {item.enrichment_type} ({item.adapter_version}) of "
            f"{len(item.metadata)} metadata fields, digest {item.fingerprint[:12]}"
        )


class PythonProvider:
    """A provider backed by a Python callable named ``module:callable``.

    The callable gets the batch (a list of :class:`ProviderItem`) and returns what
    :func:`answers_from` accepts; a coroutine function is awaited, a plain function
    runs in a worker thread so it may block.
    """

    def __init__(self, func: Callable[[list[ProviderItem]], Any]) -> None:
        self.func = func

    @classmethod
    def from_target(cls, target: str) -> PythonProvider:
        """Import ``module:callable``.

        Raises:
            InvalidRequest: The target is malformed, cannot be imported or is not callable.
        """
        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise InvalidRequest("python provider target must be 'module:callable'")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            raise InvalidRequest(f"python provider target {target!r} cannot be imported") from None
        if not callable(obj):
            raise InvalidRequest(f"python provider target {target!r} is not callable")
        return cls(obj)

    async def enrich(self, items: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        """Call the target with the batch."""
        batch = list(items)
        if inspect.iscoroutinefunction(self.func):
            value = await self.func(batch)
        else:
            value = await anyio.to_thread.run_sync(self.func, batch)
            if inspect.isawaitable(value):
                value = await value
        return answers_from(value, len(batch))
