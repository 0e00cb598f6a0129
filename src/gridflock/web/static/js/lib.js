// Shared helpers of the dashboard: API calls, formatting, the device-kind palette,
// chart defaults and the connection indicator. Power in kW, generator sign (> 0 to grid).

export const KINDS = {
  pv: { label: "Solar PV", colour: "#f59e0b" },
  wind: { label: "Wind", colour: "#0ea5e9" },
  battery: { label: "Battery", colour: "#7c3aed" },
  ev_charger: { label: "EV charger", colour: "#10b981" },
  heat_pump: { label: "Heat pump", colour: "#ef4444" },
  water_heater: { label: "Water heater", colour: "#ec4899" },
  load: { label: "Household load", colour: "#64748b" },
};
export const KIND_ORDER = Object.keys(KINDS);
export const COLOURS = {
  net: "#0f172a",
  target: "#94a3b8",
  delivered: "#2563eb",
  up: "#0d9488",
  down: "#d97706",
  grid: "#e2e8f0",
};
export const kindLabel = (k) => (KINDS[k] ? KINDS[k].label : k);
export const kindColour = (k) => (KINDS[k] ? KINDS[k].colour : "#94a3b8");

export const ROLE = document.body.dataset.role;
export const IDENT = document.body.dataset.id;
export const canOperate = ROLE === "operator" || ROLE === "admin";

// ------------------------------------------------------------------ API

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** Call the REST API with the session cookie; JSON in and out, problem+json as ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", "X-Requested-With": "gridflock" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    connection.fail();
    throw new ApiError(0, { detail: "the server cannot be reached" });
  }
  if (r.status === 401) {
    window.location.assign("/signin");
    throw new ApiError(401, { detail: "signed out" });
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    if (r.status >= 500) connection.fail();
    throw new ApiError(r.status, data || { detail: text || r.statusText });
  }
  connection.ok();
  return data;
}

/** Run ``fn`` now and every ``ms`` milliseconds (one call at a time; errors are shown, not fatal). */
export function poll(fn, ms) {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof ApiError)) console.error(e);
    } finally {
      running = false;
    }
  };
  tick();
  return window.setInterval(tick, ms);
}

// ------------------------------------------------------------------ formatting

const nf = (digits) =>
  new Intl.NumberFormat("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const NF0 = nf(0);
const NF1 = nf(1);
const NF2 = nf(2);
const MINUS = "\u2212";

function signed(text, value) {
  return value < 0 ? MINUS + text : text;
}

/** Power with its unit: "154.6 kW", "1,234 kW", "12.35 MW". */
export function fmtPower(kw, { plus = false } = {}) {
  if (kw === null || kw === undefined || !Number.isFinite(kw)) return "–";
  if (Math.abs(kw) < 0.05) kw = 0; // no "−0.0 kW"
  const a = Math.abs(kw);
  let text;
  if (a >= 10000) text = `${NF2.format(a / 1000)} MW`;
  else if (a >= 100) text = `${NF0.format(a)} kW`;
  else text = `${NF1.format(a)} kW`;
  if (plus && kw > 0) return "+" + text;
  return signed(text, kw);
}
export function fmtEnergy(kwh) {
  if (kwh === null || kwh === undefined || !Number.isFinite(kwh)) return "–";
  return Math.abs(kwh) >= 10000 ? `${NF2.format(kwh / 1000)} MWh` : `${NF0.format(kwh)} kWh`;
}
export function fmtPct(p, digits = 0) {
  if (p === null || p === undefined || !Number.isFinite(p)) return "–";
  return signed(`${nf(digits).format(Math.abs(p))} %`, p);
}
export const fmtInt = (n) => (Number.isFinite(n) ? NF0.format(n) : "–");

export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = Math.round(s % 60);
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  const h = Math.floor(s / 3600);
  const m = Math.round((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}
export const fmtHours = (h) => fmtDuration(h * 3600);

const TIME = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const DATETIME = new Intl.DateTimeFormat("en-GB", {
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
export const fmtTime = (d) => (d ? TIME.format(new Date(d)) : "–");
export const fmtDateTime = (d) => (d ? DATETIME.format(new Date(d)) : "–");

/** "exporting to the grid" / "importing from the grid" for a net power. */
export function direction(kw) {
  if (!Number.isFinite(kw) || Math.abs(kw) < 0.05) return "balanced: no net exchange";
  return kw > 0 ? "exporting: delivered to the grid" : "importing: taken from the grid";
}

// ------------------------------------------------------------------ DOM

/** Build an element: el("td", {class: "num"}, "text", child...). Text is never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
export const $ = (sel) => document.querySelector(sel);
export function setText(sel, text) {
  const n = typeof sel === "string" ? $(sel) : sel;
  if (n && n.textContent !== text) n.textContent = text;
}
export function fillRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren(
    ...(rows.length
      ? rows
      : [el("tr", {}, el("td", { class: "empty", colspan: String(columns) }, emptyText))]),
  );
}
export function kindSwatch(kind) {
  return el("span", { class: "swatch", style: `background:${kindColour(kind)}`, "aria-hidden": "true" });
}
export function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

// ------------------------------------------------------------------ charts

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

export function layout(extra = {}) {
  return {
    font: { family: FONT, size: 12, color: "#334155" },
    margin: { l: 56, r: 12, t: 8, b: 36 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    hovermode: "x unified",
    showlegend: true,
    legend: { orientation: "h", y: -0.18, x: 0, font: { size: 11 } },
    xaxis: { gridcolor: COLOURS.grid, zeroline: false, ...(extra.xaxis || {}) },
    yaxis: { gridcolor: COLOURS.grid, zerolinecolor: "#94a3b8", ...(extra.yaxis || {}) },
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== "xaxis" && k !== "yaxis")),
  };
}
const CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
};

/** Draw or update a chart in place. */
export function plot(id, traces, lay) {
  const node = document.getElementById(id);
  if (!node || !window.Plotly) return;
  window.Plotly.react(node, traces, lay, CONFIG);
}

/** A note inside an empty chart. */
export function noData(text) {
  return {
    annotations: [
      { text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#64748b" } },
    ],
  };
}

// ------------------------------------------------------------------ connection indicator

const STALE_MS = 6000;

export const connection = {
  last: 0,
  failing: false,
  ok() {
    this.last = Date.now();
    this.failing = false;
    this.render();
  },
  fail() {
    this.failing = true;
    this.render();
  },
  render() {
    const box = document.getElementById("conn");
    if (!box) return;
    const text = box.querySelector(".conn-text");
    const age = Date.now() - this.last;
    let cls;
    let label;
    if (!this.last) {
      cls = this.failing ? "conn-stale" : "conn-wait";
      label = this.failing ? "no connection" : "connecting…";
    } else if (age <= STALE_MS && !this.failing) {
      cls = "conn-live";
      label = "live";
    } else {
      cls = "conn-stale";
      label = `stale since ${fmtTime(this.last)}`;
    }
    box.className = `conn ${cls}`;
    box.title = this.last ? `last data ${fmtTime(this.last)}` : "waiting for data";
    if (text.textContent !== label) text.textContent = label;
  },
};
window.setInterval(() => connection.render(), 1000);

/** Listen to the live stream (Server-Sent Events with the session cookie). */
export function stream(onUpdate) {
  let source = null;
  const open = () => {
    source = new EventSource("/api/v1/stream");
    source.addEventListener("update", (ev) => {
      connection.ok();
      try {
        onUpdate(JSON.parse(ev.data));
      } catch (e) {
        console.error(e);
      }
    });
    source.onerror = () => {
      connection.fail();
      if (source.readyState === EventSource.CLOSED) window.setTimeout(open, 3000);
    };
  };
  open();
  window.addEventListener("pagehide", () => source && source.close());
}

/** An ISO UTC time as local wall-clock text, the way Plotly shows dates (it does not convert). */
export function localTs(ts) {
  const d = new Date(ts);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 23).replace("T", " ");
}

/** ISO time of ``ms`` milliseconds before now. */
export const ago = (ms) => new Date(Date.now() - ms).toISOString();
