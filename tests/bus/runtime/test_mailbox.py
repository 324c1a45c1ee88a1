"""Mailbox items: a told message as it is, an asked one with its reply future."""

from __future__ import annotations

import asyncio
from typing import Any

from bus._runtime.mailbox import Ask, unpack


def test_a_mailbox_item_unpacks_into_message_and_reply_future() -> None:
    loop = asyncio.new_event_loop()
    try:
        fut: asyncio.Future[Any] = loop.create_future()
        assert unpack(Ask("asked", fut)) == ("asked", fut)
        assert unpack("told") == ("told", None)
        assert unpack(("a", "tuple")) == (("a", "tuple"), None)
    finally:
        loop.close()
