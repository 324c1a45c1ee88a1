"""Providers that live outside the process: an external command and an HTTP endpoint.

Both speak the same JSON: the request body (stdin, or the POST body) is::

    {"source_id": "...", "items": [{"source_id", "item_id", "enrichment_type",
      "adapter_version", "fingerprint", "metadata"}, ...]}

and the answer (stdout, or the response body) is ``{"results": [{"summary",
"usd", "error"}, ...]}``, one result per item in order. Errors name the source and
the condition, never the command line, the URL, the headers or what the provider
printed: those may hold private paths or credentials.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import httpx
import msgspec

from contracts import InvalidRequest, ProviderConfig, ProviderError

from .providers import (
    Provider,
    ProviderAnswer,
    ProviderItem,
    PythonProvider,
    SimulatedProvider,
    answers_from,
)

__all__ = ["CommandProvider", "HttpProvider", "build_provider"]


class _BatchRequest(msgspec.Struct, frozen=True):
    source_id: str
    items: Sequence[ProviderItem]


class _BatchResponse(msgspec.Struct, frozen=True):
    results: list[Any]


_encode = msgspec.json.Encoder().encode
_decode_response = msgspec.json.Decoder(_BatchResponse).decode


def _answer_limit(count: int, max_summary_bytes: int) -> int:
    # Room for every summary escaped at worst, plus the envelope; beyond it the
    # provider is misbehaving and is cut off rather than buffered.
    return 65_536 + count * (6 * max_summary_bytes + 1024)


def _parse(source_id: str, kind: str, body: bytes, count: int) -> list[ProviderAnswer]:
    try:
        results = _decode_response(body).results
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise ProviderError(f"{kind} provider for {source_id!r} answered invalid JSON") from None
    return answers_from(results, count)


class CommandProvider:
    """Runs an external program per batch: JSON on stdin, JSON on stdout.

    The program runs in its own session; on timeout the whole process group is
    killed. Its stderr is discarded, never echoed.
    """

    def __init__(self, source_id: str, config: ProviderConfig, max_summary_bytes: int) -> None:
        if not config.command:
            raise InvalidRequest(f"provider {source_id!r}: kind 'command' needs 'command'")
        self.source_id = source_id
        self.argv = list(config.command)
        self.timeout_s = config.timeout_s
        self.max_summary_bytes = max_summary_bytes

    async def enrich(self, items: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        """Run the command once for the batch."""
        name = self.source_id
        payload = _encode(_BatchRequest(name, items))
        limit = _answer_limit(len(items), self.max_summary_bytes)
        try:
            process = await anyio.open_process(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            raise ProviderError(f"command provider for {name!r} could not be started") from None
        output: bytes | None = None
        timed_out = True
        try:
            with anyio.move_on_after(self.timeout_s):
                output = await self._talk(process, payload, limit)
                if output is not None:
                    await process.wait()
                timed_out = False
        finally:
            # On timeout or cancellation kill the whole group: a child left behind
            # could hold stdout open or keep working for nobody.
            if timed_out or process.returncode is None:
                _kill_group(process)
            with anyio.CancelScope(shield=True):
                await process.aclose()
        if timed_out:
            raise ProviderError(
                f"command provider for {name!r} timed out after {self.timeout_s:g}s and was killed"
            )
        if output is None:
            raise ProviderError(f"command provider for {name!r} answered more than {limit} bytes")
        if process.returncode != 0:
            raise ProviderError(
                f"command provider for {name!r} exited with status {process.returncode}"
            )
        return _parse(name, "command", output, len(items))

    @staticmethod
    async def _talk(process: anyio.abc.Process, payload: bytes, limit: int) -> bytes | None:
        """Feed stdin while reading stdout; ``None`` when stdout passed ``limit``."""

        async def feed() -> None:
            stdin = process.stdin
            assert stdin is not None
            # The program may exit without reading everything: that is its answer.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stdin.send(payload)
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stdin.aclose()

        stdout = process.stdout
        assert stdout is not None
        chunks: list[bytes] = []
        size = 0
        over = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            async for chunk in stdout:
                size += len(chunk)
                if size > limit:
                    over = True
                    _kill_group(process)
                    break
                chunks.append(chunk)
        return None if over else b"".join(chunks)


def _kill_group(process: anyio.abc.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


class HttpProvider:
    """POSTs each batch as JSON to ``url`` with a deadline of ``timeout_s`` per call.

    Uses one pooled ``httpx.AsyncClient`` per source; redirects are not followed
    and proxy settings are not read from the environment, so a batch goes exactly
    where the configuration says.
    """

    def __init__(self, source_id: str, config: ProviderConfig, max_summary_bytes: int) -> None:
        if not config.url:
            raise InvalidRequest(f"provider {source_id!r}: kind 'http' needs 'url'")
        self.source_id = source_id
        self.url = config.url
        self.headers = {"content-type": "application/json", **config.headers}
        self.timeout_s = config.timeout_s
        self.max_summary_bytes = max_summary_bytes
        self._client: httpx.AsyncClient | None = None

    async def enrich(self, items: Sequence[ProviderItem]) -> Sequence[ProviderAnswer]:
        """POST the batch and parse the answer."""
        name = self.source_id
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s), follow_redirects=False, trust_env=False
            )
        limit = _answer_limit(len(items), self.max_summary_bytes)
        payload = _encode(_BatchRequest(name, items))
        body = bytearray()
        try:
            with anyio.fail_after(self.timeout_s):
                async with self._client.stream(
                    "POST", self.url, content=payload, headers=self.headers
                ) as response:
                    if not 200 <= response.status_code < 300:
                        raise ProviderError(
                            f"http provider for {name!r} answered status {response.status_code}"
                        )
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise ProviderError(
                                f"http provider for {name!r} answered more than {limit} bytes"
                            )
        except (TimeoutError, httpx.TimeoutException):
            raise ProviderError(
                f"http provider for {name!r} timed out after {self.timeout_s:g}s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise ProviderError(
                f"http provider for {name!r} failed: {type(exc).__name__}"
            ) from None
        return _parse(name, "http", bytes(body), len(items))

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def build_provider(source_id: str, config: ProviderConfig, max_summary_bytes: int) -> Provider:
    """Build the provider a source's configuration names.

    Raises:
        InvalidRequest: The configuration lacks what its kind needs, or a python
            target cannot be imported.
    """
    if config.kind == "simulated":
        return SimulatedProvider(source_id, config)
    if config.kind == "python":
        if not config.target:
            raise InvalidRequest(f"provider {source_id!r}: kind 'python' needs 'target'")
        return PythonProvider.from_target(config.target)
    if config.kind == "command":
        return CommandProvider(source_id, config, max_summary_bytes)
    return HttpProvider(source_id, config, max_summary_bytes)
