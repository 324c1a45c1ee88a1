"""The ``stats`` result for people (a table) and for Prometheus (text exposition format).

Both take the result as a client decodes it: plain maps and lists, so any
``stats`` answer, from this version or a newer server with more fields, renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["human_table", "prometheus_text"]

# (key in stats.server, metric name, type, help)
_SERVER: tuple[tuple[str, str, str, str], ...] = (
    ("connections", "actorbus_server_connections", "gauge", "Client connections open now."),
    (
        "connections_total",
        "actorbus_server_connections_total",
        "counter",
        "Client connections accepted.",
    ),
    ("refused", "actorbus_server_refused_total", "counter", "Connections refused by uid."),
    ("inflight", "actorbus_server_inflight_requests", "gauge", "Requests read, not answered."),
    ("streams", "actorbus_server_streams", "gauge", "Subscriptions streaming now."),
    ("frames_in", "actorbus_server_requests_total", "counter", "Requests read."),
    ("frames_out", "actorbus_server_messages_out_total", "counter", "Responses and events sent."),
    ("bytes_in", "actorbus_server_received_bytes_total", "counter", "Bytes read from clients."),
    ("bytes_out", "actorbus_server_sent_bytes_total", "counter", "Bytes written to clients."),
    (
        "queued_bytes",
        "actorbus_server_queued_bytes",
        "gauge",
        "Bytes of answers held for clients, not yet taken by the kernel.",
    ),
    (
        "write_pauses",
        "actorbus_server_write_pauses_total",
        "counter",
        "Times a connection stopped producing answers for a client that did not read.",
    ),
    (
        "accept_errors",
        "actorbus_server_accept_errors_total",
        "counter",
        "Connections not accepted for want of file descriptors.",
    ),
)

# (key in stats.http, metric name, type, help)
_HTTP: tuple[tuple[str, str, str, str], ...] = (
    ("connections", "actorbus_http_connections", "gauge", "HTTP connections open now."),
    (
        "connections_total",
        "actorbus_http_connections_total",
        "counter",
        "HTTP connections accepted.",
    ),
    ("requests", "actorbus_http_requests_total", "counter", "HTTP requests read."),
    ("bytes_in", "actorbus_http_received_bytes_total", "counter", "HTTP bytes read."),
    ("bytes_out", "actorbus_http_sent_bytes_total", "counter", "HTTP bytes written."),
)

# (key in an actor's statistics, metric name suffix, type, help)
_ACTOR: tuple[tuple[str, str, str, str], ...] = (
    ("live", "live_instances", "gauge", "Instances alive now."),
    ("messages_in", "messages_in_total", "counter", "Messages accepted into a mailbox."),
    ("messages_out", "messages_handled_total", "counter", "Messages handled."),
    ("failures", "failures_total", "counter", "Handler exceptions."),
    ("restarts", "restarts_total", "counter", "Restarts after a crash."),
    ("mailbox_depth", "mailbox_depth", "gauge", "Messages queued now."),
    ("activations", "activations_total", "counter", "Instances created."),
    ("passivations", "passivations_total", "counter", "Keyed instances passivated."),
)


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return "NaN"


class _Exposition:
    """Metric families in first-seen order, each one group: HELP, TYPE, then its samples."""

    def __init__(self) -> None:
        self._families: dict[str, list[str]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: Any,
        labels: Mapping[str, object] | None = None,
    ) -> None:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        if labels:
            inner = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            family.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            family.append(f"{name} {_number(value)}")

    def text(self) -> str:
        """The exposition, one line per entry, ending in a newline."""
        return "".join(line + "\n" for family in self._families.values() for line in family)


def prometheus_text(stats: Mapping[str, Any]) -> str:
    """The ``stats`` result in the Prometheus text exposition format (version 0.0.4)."""
    out = _Exposition()
    service = stats.get("service") or {}
    if "uptime_s" in service:
        out.add("actorbus_uptime_seconds", "gauge", "Seconds since start.", service["uptime_s"])
    if "version" in service:
        out.add(
            "actorbus_build_info",
            "gauge",
            "The running version.",
            1,
            {"version": service["version"]},
        )
    server = stats.get("server") or {}
    for key, name, kind, help_text in _SERVER:
        if key in server:
            out.add(name, kind, help_text, server[key])
    if "closing" in server:
        out.add("actorbus_server_closing", "gauge", "1 once shutdown began.", server["closing"])
    for code, count in sorted((server.get("errors") or {}).items()):
        out.add(
            "actorbus_server_errors_total",
            "counter",
            "Error responses by wire code.",
            count,
            {"code": code},
        )
    recording = stats.get("recording") or {}
    if "recorded" in recording:
        out.add(
            "actorbus_events_recorded_total",
            "counter",
            "Events acknowledged (written to their session log).",
            recording["recorded"],
        )
    http = stats.get("http") or {}
    for key, name, kind, help_text in _HTTP:
        if key in http:
            out.add(name, kind, help_text, http[key])
    for code, count in sorted((http.get("errors") or {}).items()):
        out.add(
            "actorbus_http_errors_total",
            "counter",
            "HTTP error answers by code.",
            count,
            {"code": code},
        )
    bus = stats.get("bus") or {}
    for actor in bus.get("actors") or []:
        labels = {"actor": actor.get("name", ""), "keyed": str(bool(actor.get("keyed"))).lower()}
        for key, suffix, kind, help_text in _ACTOR:
            if key in actor:
                out.add(f"actorbus_actor_{suffix}", kind, help_text, actor[key], labels)
        for key, quantile in (("latency_p50_us", "0.5"), ("latency_p99_us", "0.99")):
            if key in actor:
                out.add(
                    "actorbus_actor_handling_seconds",
                    "gauge",
                    "Sampled handling time by quantile.",
                    actor[key] / 1e6,
                    {**labels, "quantile": quantile},
                )
    dead = bus.get("dead_letters") or {}
    if "count" in dead:
        out.add(
            "actorbus_dead_letters_total", "counter", "Messages no handler took.", dead["count"]
        )
    topics = bus.get("topics")
    if isinstance(topics, Mapping):
        out.add("actorbus_topics", "gauge", "Topics that exist now.", len(topics))
        out.add(
            "actorbus_topic_subscribers",
            "gauge",
            "Subscribers over every topic.",
            sum(v for v in topics.values() if isinstance(v, int)),
        )
    return out.text()


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def human_table(stats: Mapping[str, Any]) -> str:
    """The ``stats`` result as a short report for a terminal."""
    lines: list[str] = []
    service = stats.get("service") or {}
    if service:
        lines.append(
            f"service  actorbus {service.get('version', '?')}, up {service.get('uptime_s', 0):.1f}s"
        )
    server = stats.get("server") or {}
    if server:
        lines.append(
            f"server   {_n(server.get('connections'))} connections open "
            f"({_n(server.get('connections_total'))} accepted, {_n(server.get('refused'))} "
            f"refused), {_n(server.get('inflight'))} requests in flight, "
            f"{_n(server.get('streams'))} streams"
        )
        lines.append(
            f"         {_n(server.get('frames_in'))} requests, {_n(server.get('frames_out'))} "
            f"answers and events, {_n(server.get('bytes_in'))} bytes in, "
            f"{_n(server.get('bytes_out'))} bytes out"
        )
        lines.append(
            f"         {_n(server.get('queued_bytes'))} answer bytes queued, "
            f"{_n(server.get('write_pauses'))} pauses for clients not reading, "
            f"{_n(server.get('accept_errors'))} accepts failed for want of descriptors"
        )
        errors = server.get("errors") or {}
        listed = ", ".join(f"{code} {_n(count)}" for code, count in sorted(errors.items()))
        lines.append(f"         errors: {listed or 'none'}")
    bus = stats.get("bus") or {}
    actors = bus.get("actors") or []
    if actors:
        head = (
            "actor",
            "live",
            "in",
            "handled",
            "failed",
            "restarts",
            "queued",
            "p50 us",
            "p99 us",
        )
        rows = [head]
        for a in actors:
            rows.append(
                (
                    str(a.get("name", "")),
                    _n(a.get("live")),
                    _n(a.get("messages_in")),
                    _n(a.get("messages_out")),
                    _n(a.get("failures")),
                    _n(a.get("restarts")),
                    _n(a.get("mailbox_depth")),
                    f"{a.get('latency_p50_us', 0):.1f}",
                    f"{a.get('latency_p99_us', 0):.1f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines.append("")
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
    dead = bus.get("dead_letters") or {}
    if dead:
        lines.append("")
        lines.append(f"dead letters {_n(dead.get('count'))}")
        lines.extend(f"  {reason}" for reason in dead.get("recent") or [])
    return "\n".join(lines) + "\n"
