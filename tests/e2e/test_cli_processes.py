"""The command line as a first-time user meets it: real processes, real files, a real service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.service import root_dir, run_cli, socket_of


@pytest.fixture
def root() -> Iterator[Path]:
    with root_dir() as path:
        yield path


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ("[server]\nmax_frame_bytes = -5\n", "server.max_frame_bytes", "an integer from 256 to"),
        ("[server]\nidle_timeout_s = 0\n", "server.idle_timeout_s", "a number > 0 and <= 86400"),
        ("[server]\nmax_inflight_total = 0\n", "server.max_inflight_total", "an integer from 1"),
        ("[recorder]\nmax_event_bytes = 0\n", "recorder.max_event_bytes", "an integer from 128"),
        ("[http]\nkeepalive_timeout_s = -1\n", "http.keepalive_timeout_s", "a number > 0"),
        ("[live_data]\nlock_stale_s = 0\n", "live_data.lock_stale_s", "a number > 0"),
        (
            "[enrichment.providers.web]\nkind = 'http'\nurl = 'http://127.0.0.1:1/'\n"
            "batch_size = 0\n",
            "enrichment.providers.web.batch_size",
            "an integer from 1 to",
        ),
    ],
)
def test_serve_refuses_a_bound_out_of_range_in_one_line_and_does_not_start(
    root: Path, toml: str, key: str, allowed: str
) -> None:
    config = root / "actorbus.toml"
    config.write_text(toml)
    result = run_cli("serve", "--root", str(root), "--config", str(config), timeout=60)
    assert result.returncode == 4
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"actorbus: ConfigError: {config}: {key} must be {allowed}")
    assert "InvalidRequest" not in lines[0]
    assert not socket_of(root).exists()
    assert not (root / "logs").exists()
