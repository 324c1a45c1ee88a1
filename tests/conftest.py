"""Shared fixtures: every async test runs on asyncio and on asyncio with uvloop."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

_BACKENDS: list[Any] = [pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Run each anyio test on plain asyncio and on uvloop."""
    return request.param
