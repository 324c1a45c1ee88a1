from __future__ import annotations

from typing import Any

from actorbus._metrics import human_table, prometheus_text

STATS: dict[str, Any] = {
    "service": {"version": "0.1.0", "uptime_s": 12.5, "listening": True},
    "server": {
        "connections": 2,
        "connections_total": 9,
        "refused": 0,
        "inflight": 3,
        "streams": 1,
        "frames_in": 1500,
        "frames_out": 1498,
        "bytes_in": 450000,
        "bytes_out": 90000,
        "queued_bytes": 4096,
        "write_pauses": 7,
        "accept_errors": 5,
        "errors": {"InvalidEvent": 2, "UnknownOp": 1},
        "closing": False,
    },
    "bus": {
        "actors": [
            {
                "name": 'odd "name"\\x',
                "keyed": False,
                "live": 1,
                "messages_in": 10,
                "messages_out": 9,
                "failures": 1,
                "restarts": 0,
                "mailbox_depth": 1,
                "latency_p50_us": 12.5,
                "latency_p99_us": 80.0,
                "latency_max_us": 90.0,
                "activations": 1,
                "passivations": 0,
            },
            {
                "name": "SessionWriter",
                "keyed": True,
                "live": 40,
                "messages_in": 1200,
                "messages_out": 1200,
                "failures": 0,
                "restarts": 0,
                "mailbox_depth": 0,
                "latency_p50_us": 300.0,
                "latency_p99_us": 900.0,
                "latency_max_us": 1000.0,
                "activations": 41,
                "passivations": 1,
            },
        ],
        "dead_letters": {"count": 0, "recent": []},
        "topics": {"session:u/s": 2, "other": 1},
        "draining": False,
    },
}


def test_each_metric_family_has_help_and_type_once_before_its_samples() -> None:
    text = prometheus_text(STATS)
    assert text.endswith("\n")
    seen: list[str] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in seen, f"{name} declared twice"
            seen.append(name)
        elif line.startswith("# TYPE "):
            assert line.split()[2] == seen[-1]
        else:
            assert line.split("{")[0].split(" ")[0] == seen[-1], line


def test_counters_gauges_and_labels_carry_the_figures() -> None:
    text = prometheus_text(STATS)
    assert "# TYPE actorbus_server_requests_total counter" in text
    assert "actorbus_server_requests_total 1500\n" in text
    assert 'actorbus_server_errors_total{code="InvalidEvent"} 2\n' in text
    assert 'actorbus_actor_live_instances{actor="SessionWriter",keyed="true"} 40\n' in text
    handling = 'actorbus_actor_handling_seconds{actor="SessionWriter",keyed="true",quantile="0.99"}'
    assert f"{handling} 0.0009\n" in text
    assert "actorbus_topic_subscribers 3\n" in text
    assert "actorbus_server_closing 0\n" in text
    assert "# TYPE actorbus_server_queued_bytes gauge" in text
    assert "actorbus_server_queued_bytes 4096\n" in text
    assert "actorbus_server_write_pauses_total 7\n" in text
    assert "actorbus_server_accept_errors_total 5\n" in text
    assert 'actorbus_build_info{version="0.1.0"} 1\n' in text


def test_label_values_are_escaped() -> None:
    text = prometheus_text(STATS)
    assert 'actor="odd \\"name\\"\\\\x"' in text


def test_a_stats_result_with_missing_parts_still_renders() -> None:
    assert prometheus_text({}) == ""
    assert "actorbus_server" not in prometheus_text({"server": None, "bus": {"actors": []}})
    assert human_table({"service": {"version": "9"}}).startswith("service  actorbus 9")


def test_the_table_lists_the_server_errors_and_one_row_per_actor() -> None:
    table = human_table(STATS)
    assert "2 connections open (9 accepted, 0 refused), 3 requests in flight, 1 streams" in table
    assert "errors: InvalidEvent 2, UnknownOp 1" in table
    assert "4,096 answer bytes queued, 7 pauses for clients not reading, 5 accepts failed" in table
    rows = [line for line in table.splitlines() if line.startswith("SessionWriter")]
    assert len(rows) == 1
    assert rows[0].split() == [
        "SessionWriter",
        "40",
        "1,200",
        "1,200",
        "0",
        "0",
        "0",
        "300.0",
        "900.0",
    ]
    assert "dead letters 0" in table
