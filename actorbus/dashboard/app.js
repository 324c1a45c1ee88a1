// The actorbus dashboard: polls this service's own routes, draws what it finds.
// Every value from the service is set with textContent, never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const HISTORY = 300; // points of events per second kept: five minutes at one a second

const state = {
  lastRecorded: null,
  lastAt: null,
  history: [],
  offline: false,
  source: null,
};

function $(id) { return document.getElementById(id); }

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

async function getJson(path) {
  const answer = await fetch(path, { cache: "no-store", headers: { accept: "application/json" } });
  const body = await answer.json().catch(() => null);
  return { status: answer.status, body };
}

function ago(iso) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "unknown";
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function usd(value) {
  if (value === null || value === undefined) return "–";
  return `$${Number(value).toFixed(value < 1 ? 4 : 2)}`;
}

// ---- service state ----------------------------------------------------------

function setState(name, detail) {
  const badge = $("service-state");
  badge.textContent = name;
  badge.dataset.state = name;
  $("service-detail").textContent = detail || "";
  const offline = name === "offline";
  $("offline").hidden = !offline;
  document.body.classList.toggle("offline", offline);
  state.offline = offline;
}

// ---- recording ----------------------------------------------------------------

function drawChart() {
  const points = state.history;
  const peak = Math.max(1, ...points);
  $("eps-peak").textContent = Math.round(Math.max(0, ...points, 0));
  const step = 600 / (HISTORY - 1);
  const offset = HISTORY - points.length;
  const coords = points.map((value, i) => {
    const x = (offset + i) * step;
    const y = 115 - (value / peak) * 105;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  $("eps-line").setAttribute("points", coords.join(" "));
}

function showRecording(stats) {
  const recorded = (stats.recording || {}).recorded || 0;
  const now = performance.now();
  if (state.lastRecorded !== null && now > state.lastAt) {
    const rate = Math.max(0, (recorded - state.lastRecorded) / ((now - state.lastAt) / 1000));
    state.history.push(rate);
    if (state.history.length > HISTORY) state.history.shift();
    $("eps").textContent = rate >= 100 ? Math.round(rate).toLocaleString() : rate.toFixed(1);
  }
  state.lastRecorded = recorded;
  state.lastAt = now;
  $("recorded").textContent = recorded.toLocaleString();
  const actors = ((stats.bus || {}).actors || []);
  const writer = actors.find((a) => a.name === "SessionWriter") || {};
  $("writers").textContent = writer.live || 0;
  $("depth").textContent = writer.mailbox_depth || 0;
  const server = stats.server || {};
  const http = stats.http || {};
  $("connections").textContent = (server.connections || 0) + (http.connections || 0);
  $("dead-letters").textContent = ((stats.bus || {}).dead_letters || {}).count || 0;
  const failures = {};
  for (const errors of [server.errors || {}, http.errors || {}]) {
    for (const [code, count] of Object.entries(errors)) failures[code] = (failures[code] || 0) + count;
  }
  const body = $("failures").tBodies[0];
  clear(body);
  const codes = Object.keys(failures).sort();
  for (const code of codes) {
    const row = el("tr");
    row.append(el("td", code), el("td", failures[code].toLocaleString(), { class: "num" }));
    body.append(row);
  }
  $("failures-empty").hidden = codes.length > 0;
  drawChart();
}

// ---- live data ------------------------------------------------------------------

let liveEtag = null;

async function pollLive() {
  const headers = liveEtag ? { "if-none-match": liveEtag } : {};
  const answer = await fetch("/v1/live-data", { cache: "no-store", headers });
  if (answer.status === 304) return;
  const body = $("branches").tBodies[0];
  if (answer.status !== 200) {
    clear(body);
    liveEtag = null;
    $("live-empty").hidden = false;
    return;
  }
  liveEtag = answer.headers.get("etag");
  const documentData = await answer.json();
  $("live-empty").hidden = true;
  clear(body);
  for (const key of Object.keys(documentData).sort()) {
    if (key === "extensions" || key === "schema_version") continue;
    const row = el("tr", null, { "data-branch": key });
    row.append(el("td", key), el("td", "host-local", { class: "muted" }), el("td", "–"));
    body.append(row);
  }
  const items = ((documentData.extensions || {}).items) || {};
  for (const id of Object.keys(items).sort()) {
    const item = items[id] || {};
    const row = el("tr", null, { "data-branch": `extensions.items.${id}` });
    const status = el("span", item.status || "unknown", {
      class: "status",
      "data-status": item.status || "offline",
    });
    const cell = el("td");
    cell.append(status);
    const updated = el("td", ago(item.updated_at), { title: item.updated_at || "" });
    updated.dataset.updatedAt = item.updated_at || "";
    row.append(el("td", `extensions.items.${id}`), cell, updated);
    body.append(row);
  }
}

function refreshAges() {
  for (const cell of document.querySelectorAll("td[data-updated-at]")) {
    cell.textContent = ago(cell.dataset.updatedAt);
  }
}

function showLastWrite(stats) {
  const last = (stats.live || {}).last_write;
  if (!last) return;
  $("last-write").textContent =
    `scope ${last.scope}, base ${last.base}, lock wait ${Number(last.lock_wait_ms).toFixed(1)} ms, ` +
    `${last.bytes} bytes, branches ${last.branches.join(", ") || "none"}`;
}

// ---- enrichment -------------------------------------------------------------------

function spendLabel(state_) {
  // An estimated figure is never shown as exact: the label says which it is.
  const label = el("span", state_, { class: state_ === "exact" ? "exact" : "estimated" });
  return label;
}

function money(figure) {
  const span = el("span");
  if (figure.state === "unavailable") {
    span.textContent = "unavailable";
    return span;
  }
  span.textContent = (figure.state === "estimated" ? "≈ " : "") + usd(figure.usd) + " ";
  span.append(spendLabel(figure.state));
  return span;
}

function showRuns(runs) {
  const box = $("runs");
  clear(box);
  $("runs-empty").hidden = runs.length > 0;
  for (const run of runs.slice(0, 8)) {
    const card = el("div", null, { class: "run", "data-run": run.run_id });
    const head = el("div", null, { class: "run-head" });
    head.append(el("span", run.run_id, { class: "run-id" }));
    const total = el("span");
    total.append(money(run.spend.run));
    if (run.spend.run.capped) total.append(" ", el("span", "capped", { class: "capped" }));
    head.append(total);
    card.append(head);
    const c = run.counts;
    card.append(el("div",
      `hits ${c.hits} · misses ${c.misses} · skipped ${c.skipped} · pruned ${c.pruned} · ` +
      `stale ${c.stale}` + (run.cache.state === "degraded" ? " · cache degraded" : ""),
      { class: "counts" }));
    const table = el("table");
    const tbody = el("tbody");
    for (const source of run.spend.sources) {
      const row = el("tr", null, { "data-source": source.source_id });
      const figure = el("td");
      figure.append(money(source));
      row.append(el("td", source.source_id), figure, el("td", `${source.calls} calls`, { class: "num" }));
      tbody.append(row);
    }
    table.append(tbody);
    card.append(table);
    const projection = run.spend.projection;
    const saved = `saved ${usd(run.spend.run.saved_usd)} (estimated)`;
    const monthly = projection.state === "projected"
      ? `monthly ≈ ${usd(projection.monthly_usd)} (estimated)`
      : "cadence unavailable";
    card.append(el("div", `${saved} · ${monthly}`, { class: "counts" }));
    box.append(card);
  }
}

// ---- one session, over Server-Sent Events ---------------------------------------------

function watchSession(user, session) {
  if (state.source) state.source.close();
  const list = $("session-events");
  clear(list);
  const path = `/v1/sessions/${encodeURIComponent(user)}/${encodeURIComponent(session)}/events`;
  $("session-state").textContent = `Watching ${user} / ${session}…`;
  const source = new EventSource(path);
  state.source = source;
  source.onopen = () => { $("session-state").textContent = `Watching ${user} / ${session}: live`; };
  source.onmessage = (message) => {
    let text = message.data;
    try {
      const envelope = JSON.parse(message.data);
      text = `${envelope.recorded_at}  ${envelope.event.record_id}  ${JSON.stringify(envelope.event)}`;
    } catch (_) { /* shown as sent */ }
    const item = el("li", text, { "data-id": message.lastEventId });
    list.append(item);
    while (list.children.length > 500) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  };
  // EventSource reconnects by itself, resuming with Last-Event-ID.
  source.onerror = () => { $("session-state").textContent = `Reconnecting to ${user} / ${session}…`; };
}

$("session-form").addEventListener("submit", (event) => {
  event.preventDefault();
  watchSession($("session-user").value.trim(), $("session-id").value.trim());
});

// ---- the loop ----------------------------------------------------------------------

async function poll() {
  try {
    const [stats, ready, runs] = await Promise.all([
      getJson("/v1/stats"),
      getJson("/readyz"),
      getJson("/v1/enrich/runs"),
    ]);
    if (stats.status !== 200 || !stats.body) throw new Error("no stats");
    const degraded = (runs.body && runs.body.runs || []).some((r) => r.cache.state === "degraded");
    if (ready.status !== 200) setState(ready.body && ready.body.status || "degraded", "not ready");
    else if (degraded) setState("degraded", "enrichment cache degraded");
    else setState("serving", `version ${stats.body.service.version}, up ${Math.round(stats.body.service.uptime_s)} s`);
    showRecording(stats.body);
    showLastWrite(stats.body);
    showRuns((runs.body && runs.body.runs) || []);
    await pollLive();
    refreshAges();
  } catch (_) {
    setState("offline", "no answer");
    state.lastRecorded = null;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
