"""Running on uvloop when it is installed, on plain asyncio otherwise."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from bus import Actor, open_bus, run, uvloop_available


async def loop_module(tag: str) -> tuple[str, str]:
    return tag, type(asyncio.get_running_loop()).__module__


def test_uvloop_availability_is_whether_it_can_be_imported() -> None:
    assert uvloop_available() is (importlib.util.find_spec("uvloop") is not None)


@pytest.mark.skipif(not uvloop_available(), reason="uvloop is not installed")
def test_run_picks_uvloop_when_it_is_installed() -> None:
    assert run(loop_module, "default") == ("default", "uvloop")
    assert run(loop_module, "forced", use_uvloop=True) == ("forced", "uvloop")


def test_run_can_be_told_to_use_plain_asyncio() -> None:
    tag, module = run(loop_module, "plain", use_uvloop=False)
    assert tag == "plain"
    assert module.startswith("asyncio")


class Echo(Actor):
    async def receive(self, message: object) -> object:
        return message


async def round_trip() -> object:
    async with open_bus() as bus:
        return await bus.spawn(Echo, name="echo").ask("hello", timeout=5)


@pytest.mark.parametrize("use_uvloop", [False, True] if uvloop_available() else [False])
def test_a_bus_runs_under_run_on_either_loop(use_uvloop: bool) -> None:
    assert run(round_trip, use_uvloop=use_uvloop) == "hello"
