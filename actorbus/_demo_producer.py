"""A socket producer process for the demo: pipelines events to a running service.

Usage: ``python -m actorbus._demo_producer SOCKET FRAMING NAME USER COUNT SESSION...``

Appends ``COUNT`` events round robin over the sessions, ``seq`` 0..COUNT-1, in
windows; prints ``acked N`` after each window and ``done ACKED FAILED`` at the end.
Exits 0 when every event was acknowledged.
"""

from __future__ import annotations

import sys
from typing import Any

from bus import SyncClient
from contracts import ActorbusError, Framing

__all__ = ["demo_event", "main"]

#: Events sent per pipelined window (a progress line each).
WINDOW = 1_000


def demo_event(producer: str, user: str, session: str, seq: int) -> bytes:
    """One demo event, as a producer would write it (JSON, one line)."""
    return (
        b'{"record_id":"%s-%06d","user_id":"%s","session_id":"%s","source":"demo",'
        b'"producer":"%s","seq":%d,"timestamp":"2026-11-22T09:15:02.137+01:00",'
        b'"data":{"kind":"click","weight":1.50}}'
        % (producer.encode(), seq, user.encode(), session.encode(), producer.encode(), seq)
    )


def main(argv: list[str]) -> int:
    """Run the producer; see the module docstring."""
    import msgspec

    path, framing_arg, name, user, count_arg, *sessions = argv
    framing: Framing = "jsonl" if framing_arg == "jsonl" else "msgpack"
    count = int(count_arg)
    acked = failed = 0
    with SyncClient.connect(path, framing=framing, timeout=60) as client:
        for start in range(0, count, WINDOW):
            requests: list[tuple[str, dict[str, Any]]] = []
            for seq in range(start, min(count, start + WINDOW)):
                raw = demo_event(name, user, sessions[seq % len(sessions)], seq)
                # JSON Lines carries the bytes as they are; MessagePack carries a map.
                event = msgspec.Raw(raw) if framing == "jsonl" else msgspec.json.decode(raw)
                requests.append(("append", {"event": event}))
            for outcome in client.pipeline(requests, window=256):
                if isinstance(outcome, ActorbusError):
                    failed += 1
                else:
                    acked += 1
            print(f"acked {acked}", flush=True)
    print(f"done {acked} {failed}", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
