// Arbor operator dashboard: plain JS, no build step. The token lives in sessionStorage only.
"use strict";

const TOKEN_KEY = "arborOperatorToken";
const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(200, Number(params.get("refresh")) || 1000);
const MAX_EVENTS = 200;
const MAX_POINTS = 600;
const history = [];  // {t, pnl, dd}
let baseEquity = null;
let socket = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

function askToken(message) {
  $("token-form").hidden = false;
  $("token-forget").hidden = true;
  $("token-error").textContent = message || "";
  $("status").textContent = "token needed";
  $("status").className = "badge";
}

async function api(path, body) {
  const init = { headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) {
    askToken("token rejected");
    throw new Error("unauthorized");
  }
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function num(x, digits) {
  const v = Number(x);
  return Number.isFinite(v) ? v.toLocaleString(undefined, { maximumFractionDigits: digits ?? 2 }) : "-";
}

function signed(x, digits) {
  const v = Number(x);
  return el("span", { class: v > 0 ? "pos" : v < 0 ? "neg" : "" }, num(v, digits));
}

// -- commands -------------------------------------------------------------------------------
async function command(path, body, question) {
  if (!confirm(question)) return;
  try {
    const res = await api(path, Object.assign({ who: "dashboard" }, body));
    $("command-result").textContent = "sent: " + res.sent.map((s) => s.message + " -> " + s.receiver).join(", ");
    refresh();
  } catch (err) {
    $("command-result").textContent = "failed: " + err.message;
  }
}

function wireControls() {
  $("kill-engage").addEventListener("click", () => {
    const reason = prompt("Reason for engaging the kill switch:", "operator kill switch");
    if (reason === null) return;
    command("/api/kill", { reason }, "Engage the kill switch? No new entries until it is reset.");
  });
  $("kill-reset").addEventListener("click", () => {
    const reason = prompt("Reason for resetting the kill switch (required):", "");
    if (!reason) return;
    command("/api/reset", { reason }, "Reset the kill switch?");
  });
  $("pause-all").addEventListener("click", () =>
    command("/api/pause", { reason: "dashboard: pause all" }, "Pause ALL symbols (REDUCING: no new entries)?"));
  $("resume-all").addEventListener("click", () =>
    command("/api/resume", { reason: "dashboard: resume all" }, "Resume ALL symbols (ACTIVE)?"));
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("token-form").hidden = true;
    $("token-forget").hidden = false;
    connectEvents();
    refresh();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (socket) socket.close();
    askToken("");
  });
}

// -- rendering ------------------------------------------------------------------------------
function renderState(s) {
  $("status").textContent = s.status;
  $("status").className = "badge " + s.status;
  $("summary").textContent = `stage ${s.stage} · up ${num(s.uptime_s, 0)}s · cycles ${s.cycle_count}` +
    ` · decisions ${s.decision_cycles} · global ${s.global_state}`;
  const ks = s.kill_switch || {};
  $("kill").textContent = ks.engaged ? `KILL SWITCH ENGAGED (${ks.reason || ""})` : "kill switch off";
  $("kill").className = "badge " + (ks.engaged ? "engaged" : "ok");
  const body = $("symbols").tBodies[0];
  const rows = Object.entries(s.symbols).map(([sym, r]) => {
    const state = r.quarantined ? "QUARANTINED" : r.state;
    return el("tr", { "data-symbol": sym },
      el("td", {}, sym),
      el("td", { class: "state state-" + state, "data-state": state }, state),
      el("td", { class: "regime" }, r.regime),
      el("td", {}, r.position),
      el("td", {}, r.events), el("td", {}, r.orders), el("td", {}, r.fills), el("td", {}, r.denials),
      el("td", {},
        el("button", { id: "pause-" + sym, onclick: () => command("/api/pause", { symbol: sym, reason: "dashboard" },
          `Pause ${sym} (REDUCING: no new entries)?`) }, "pause"),
        el("button", { id: "resume-" + sym, onclick: () => command("/api/resume", { symbol: sym, reason: "dashboard" },
          `Resume ${sym} (ACTIVE)?`) }, "resume"),
        el("button", { id: "flatten-" + sym, onclick: () => command("/api/flatten", { symbol: sym, reason: "dashboard" },
          `Flatten ${sym}: REDUCING and exit the whole position at market?`) }, "flatten"),
        el("button", { id: "release-" + sym, onclick: () => command("/api/release", { symbol: sym, reason: "dashboard" },
          `Release ${sym} from quarantine (restart its actors)?`) }, "release")));
  });
  body.replaceChildren(...rows);
}

function renderPositions(p) {
  const rows = p.positions.map((r) => el("tr", { "data-symbol": r.symbol },
    el("td", {}, r.symbol), el("td", {}, r.side), el("td", {}, signed(r.qty, 6)),
    el("td", {}, num(r.entry_price, 4)), el("td", {}, num(r.current_price, 4)), el("td", {}, num(r.market_value)),
    el("td", {}, signed(r.unrealized_pnl)), el("td", {}, signed(r.unrealized_pnl_pct, 3)),
    el("td", {}, num(100 * Number(r.weight), 1) + "%"), el("td", {}, (r.entry_time || "").slice(11, 19))));
  $("positions").tBodies[0].replaceChildren(...rows);
  const t = p.totals;
  $("positions-totals").textContent = `${t.positions} open (${t.long} long, ${t.short} short) · gross ${num(t.gross_value)}` +
    ` · net ${num(t.net_value)} · unrealized ${num(t.unrealized_pnl)} · realized net ${num(t.realized_pnl_net_of_fees)}`;
}

function renderRisk(r) {
  const equity = Number(r.equity);
  if (baseEquity === null) baseEquity = equity;
  history.push({ t: Date.now(), pnl: equity - baseEquity, dd: 100 * Number(r.drawdown_pct) });
  if (history.length > MAX_POINTS) history.shift();
  $("risk-line").textContent = `equity ${num(equity)} · daily ${num(100 * Number(r.daily_pnl_pct), 3)}%` +
    ` · drawdown ${num(100 * Number(r.drawdown_pct), 3)}% · leverage ${num(r.leverage, 3)}` +
    (r.warnings.length ? " · " + r.warnings.join("; ") : "");
  drawChart();
}

function renderAssumptions(a) {
  const rows = [];
  for (const [symbol, list] of Object.entries(a.symbols)) {
    for (const r of list) {
      rows.push(el("tr", { "data-symbol": symbol, "data-assumption": r.name, "data-status": r.status },
        el("td", {}, symbol), el("td", {}, r.name), el("td", {}, r.observation),
        el("td", { class: "health-" + r.status }, r.status), el("td", {}, num(r.value, 4)), el("td", {}, r.bound),
        el("td", {}, String(r.samples)), el("td", {}, (r.since || "").slice(11, 19)), el("td", {}, r.on_broken)));
    }
  }
  $("assumptions").tBodies[0].replaceChildren(...rows);
  const c = a.counts, held = Object.keys(a.holds || {});
  $("assumptions-counts").textContent = `${c.OK} ok · ${c.DRIFTING} drifting · ${c.BROKEN} broken · ${c.UNKNOWN} unknown` +
    (held.length ? ` · REDUCING for them: ${held.join(", ")}` : "") +
    (a.unavailable.length ? ` · unavailable: ${a.unavailable.join(", ")}` : "");
}

function drawChart() {
  const c = $("chart");
  const ctx = c.getContext("2d");
  const w = c.width, h = c.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  if (history.length < 2) { ctx.fillText("collecting…", pad, h / 2); return; }
  const series = [
    { key: "pnl", color: "#1565c0", label: "PnL since open" },
    { key: "dd", color: "#b3261e", label: "drawdown %" },
  ];
  series.forEach((s, i) => {
    const vals = history.map((p) => p[s.key]);
    let lo = Math.min(0, ...vals), hi = Math.max(0, ...vals);
    if (hi === lo) hi = lo + 1;
    const x = (j) => pad + (j * (w - 2 * pad)) / (history.length - 1);
    const y = (v) => h - pad - ((v - lo) * (h - 2 * pad)) / (hi - lo);
    ctx.strokeStyle = s.color;
    ctx.beginPath();
    vals.forEach((v, j) => (j ? ctx.lineTo(x(j), y(v)) : ctx.moveTo(x(j), y(v))));
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(`${s.label}: ${num(vals[vals.length - 1], 3)} (${num(lo, 3)}…${num(hi, 3)})`, pad + i * 260, 12);
  });
  ctx.strokeStyle = "#ccc";
  ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w - pad, h - pad); ctx.stroke();
}

function renderTree(t) {
  $("tree-health").textContent = "overall: " + t.health;
  const groups = t.groups.map((g) => el("div", { class: "group", "data-group": g.group },
    el("strong", { class: g.health }, " " + g.group + " "), " ",
    ...g.actors.map((a) => el("span", {
      class: "actor " + a.health, "data-actor": a.id, "data-health": a.health,
      title: `${a.state}; restarts ${a.restarts}; mailbox ${a.mailbox}` + (a.last_failure ? `; last failure ${JSON.stringify(a.last_failure)}` : ""),
    }, `${a.role} · ${a.mailbox ?? "-"}` + (a.restarts ? ` ↻${a.restarts}` : "")))));
  $("tree").replaceChildren(...groups);
}

function addEvent(ev) {
  const li = el("li", { class: ev.severity + (ev.alert ? " alert" : ""), "data-type": ev.type },
    `${(ev.ts || "").slice(11, 23)} ${ev.type}: ${ev.message}`);
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

// -- data flow ------------------------------------------------------------------------------
async function refresh() {
  if (!token()) return askToken("");
  const jobs = [
    ["/api/state", renderState], ["/api/positions", renderPositions],
    ["/api/risk/status", renderRisk], ["/api/tree", renderTree], ["/api/assumptions", renderAssumptions],
  ];
  await Promise.all(jobs.map(async ([path, render]) => {
    try { render(await api(path)); } catch (err) { if (err.message !== "unauthorized") console.warn(path, err); }
  }));
}

function connectEvents() {
  if (!token() || (socket && socket.readyState <= 1)) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${proto}//${location.host}/ws/events`, ["arbor.bearer", token()]);
  socket.onopen = () => { $("events-status").textContent = "live"; };
  socket.onmessage = (m) => addEvent(JSON.parse(m.data));
  socket.onclose = () => {
    $("events-status").textContent = "disconnected, retrying";
    setTimeout(connectEvents, 2000);
  };
}

wireControls();
if (token()) { $("token-forget").hidden = false; connectEvents(); refresh(); } else askToken("");
setInterval(refresh, REFRESH_MS);
