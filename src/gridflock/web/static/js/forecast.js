// Forecast view: quantile bands against what happened, need-for-support windows, models.
import {
  $, api, ApiError, canOperate, el, fillRows, fmtDateTime, fmtPct, fmtPower, fmtTime, layout, localTs,
  noData, plot, poll, setText,
} from "./lib.js";

const LABELS = {
  net: "net (import < 0)", load: "household load", pv: "PV", wind: "wind", heat_pump: "heat pump",
  water_heater: "water heater", ev: "EV charging", battery: "battery",
  flex_up: "up flexibility (1 h hold)", flex_down: "down flexibility (1 h hold)",
};
const GROUP_LABELS = { fleet: "fleet", grid_node: "grid node", program: "programme", region: "region" };
let status = null;
let windows = [];

function fillSelect(sel, options, keep) {
  const node = $(sel);
  const current = keep ?? node.value;
  const values = options.map(([v]) => v);
  const same = node.options.length === options.length && [...node.options].every((o, i) => o.value === values[i]);
  if (!same) node.replaceChildren(...options.map(([v, label]) => el("option", { value: v }, label)));
  if (values.includes(current)) node.value = current;
}

async function loadStatus() {
  status = await api("/api/v1/forecasts");
  const q = status.quantities.length ? status.quantities : ["net"];
  fillSelect("#fc-quantity", q.map((x) => [x, LABELS[x] || x]));
  const groups = [];
  for (const by of ["fleet", "grid_node", "program", "region"]) {
    for (const g of status.groups[by] || []) groups.push([`${by}|${g}`, by === "fleet" ? "fleet" : `${GROUP_LABELS[by]}: ${g}`]);
  }
  fillSelect("#fc-group", groups.length ? groups : [["fleet|fleet", "fleet"]]);
  const when = status.model_id ? `model ${status.model_id}` : "no model yet";
  setText("#fc-state", `Forecaster: ${status.state} · ${when} · next intraday ${fmtTime(status.next_intraday)}, ` +
    `day-ahead ${fmtDateTime(status.next_day_ahead)} (${status.timezone}).`);
  const err = $("#fc-error");
  err.hidden = !status.last_error;
  setText(err, status.last_error ? `Last problem (${fmtDateTime(status.last_error_at)}): ${status.last_error}` : "");
}

function scopeOf(groupBy, group) {
  return groupBy === "fleet" ? "fleet" : `${groupBy}:${group}`;
}

async function chart() {
  const horizon = $("#fc-horizon").value;
  const quantity = $("#fc-quantity").value || "net";
  const [groupBy, group] = ($("#fc-group").value || "fleet|fleet").split("|");
  const q = new URLSearchParams({ group_by: groupBy, group });
  let f;
  try {
    f = await api(`/api/v1/forecasts/${horizon}/${encodeURIComponent(quantity)}?${q}`);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    setText("#fc-issued", "");
    plot("chart-forecast", [], layout(noData(e.status === 404 ? "No forecast issued yet: the first comes once a model is trained." : e.message)));
    $("#chart-forecast").dataset.state = "empty";
    return;
  }
  const x = f.ts.map(localTs);
  const lo = f.values.p10;
  const hi = f.values.p90;
  const mid = f.values.p50;
  const traces = [
    { x, y: lo, type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, name: "P10" },
    { x, y: hi, type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(37,99,235,0.18)",
      name: "P10–P90", hovertemplate: "P90 %{y:.1f} kW<extra></extra>" },
    { x, y: mid, type: "scatter", mode: "lines", line: { color: "#2563eb", width: 2 }, name: "P50",
      hovertemplate: "P50 %{y:.1f} kW<extra></extra>" },
    { x, y: f.actual_kw, type: "scatter", mode: "markers", marker: { color: "#0f172a", size: 4 }, name: "measured",
      hovertemplate: "measured %{y:.1f} kW<extra></extra>" },
  ];
  // an earlier issue shows what was forecast for the hours that have happened since
  const earlier = await earlierIssue(horizon, quantity, q, f.issued_at);
  if (earlier) {
    const xe = earlier.ts.map(localTs);
    traces.push(
      { x: xe, y: earlier.values.p10, type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { x: xe, y: earlier.values.p90, type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty",
        fillcolor: "rgba(100,116,139,0.16)", name: `P10–P90 issued ${fmtTime(earlier.issued_at)}`, hoverinfo: "skip" },
      { x: xe, y: earlier.values.p50, type: "scatter", mode: "lines", line: { color: "#64748b", width: 1.5, dash: "dot" },
        name: `P50 issued ${fmtTime(earlier.issued_at)}`, hovertemplate: "earlier P50 %{y:.1f} kW<extra></extra>" },
      { x: xe, y: earlier.actual_kw, type: "scatter", mode: "markers", marker: { color: "#0f172a", size: 4 },
        name: "measured", showlegend: false, hovertemplate: "measured %{y:.1f} kW<extra></extra>" },
    );
  }
  const scope = scopeOf(groupBy, group);
  const shapes = windows.filter((w) => w.scope === scope && w.horizon === horizon).map((w) => ({
    type: "rect", xref: "x", yref: "paper", x0: localTs(w.start), x1: localTs(w.end), y0: 0, y1: 1,
    fillcolor: "rgba(234,88,12,0.16)", line: { width: 0 }, layer: "below",
  }));
  plot("chart-forecast", traces, layout({ shapes, yaxis: { title: { text: "kW (> 0 to the grid)" } } }));
  const node = $("#chart-forecast");
  node.dataset.state = "drawn";
  node.dataset.windows = String(shapes.length);
  setText("#fc-title", `${LABELS[quantity] || quantity}: ${groupBy === "fleet" ? "fleet" : `${GROUP_LABELS[groupBy]} ${group}`}`);
  setText("#fc-issued", `issued ${fmtDateTime(f.issued_at)} · ${f.ts.length} steps of 15 min`);
}

/** The issue before ``latest`` that reaches furthest back (up to 2 h), or null. */
async function earlierIssue(horizon, quantity, query, latest) {
  const twoHoursAgo = new Date(Date.now() - 7200e3).toISOString();
  const tries = twoHoursAgo < latest ? [twoHoursAgo, latest] : [latest];
  for (const before of tries) {
    const q = new URLSearchParams(query);
    q.set("issued_before", before);
    try {
      return await api(`/api/v1/forecasts/${horizon}/${encodeURIComponent(quantity)}?${q}`);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
    }
  }
  return null;
}

async function loadWindows() {
  windows = await api("/api/v1/forecasts/support-windows");
  setText("#win-note", windows.length ? `${windows.length} window${windows.length === 1 ? "" : "s"} ahead` : "");
  fillRows($("#win-table tbody"), windows.map((w) => el("tr", { class: w.probability >= 0.5 ? "hot" : null },
    el("th", { scope: "row" }, w.scope, el("span", { class: "muted" }, ` ${w.horizon.replace("_", "-")}`)),
    el("td", {}, `${fmtDateTime(w.start)} – ${fmtTime(w.end)}`),
    el("td", { class: "num" }, fmtPct(100 * w.probability)),
    el("td", { class: "num" }, `${fmtPower(w.kw_needed)} / ${fmtPower(w.kw_needed_p90)}`),
    el("td", {}, w.reason))),
  "No need for support forecast.", 5);
}

/** The first number found under any of ``names`` in a nested figures object. */
function figure(obj, names) {
  if (!obj || typeof obj !== "object") return null;
  for (const n of names) if (typeof obj[n] === "number") return obj[n];
  for (const k of ["net", "fleet", "day_ahead"]) {
    const v = figure(obj[k], names);
    if (v !== null) return v;
  }
  for (const v of Object.values(obj)) {
    const found = figure(v, names);
    if (found !== null) return found;
  }
  return null;
}

async function loadModels() {
  const page = await api("/api/v1/forecasts/models?limit=10");
  fillRows($("#model-table tbody"), page.items.map((m) => {
    const skill = figure(m.backtest, ["skill_seasonal_naive", "skill"]);
    const cover = figure(m.backtest, ["coverage_p10_p90", "group_coverage", "coverage"]);
    return el("tr", {},
      el("th", { scope: "row" }, m.id, m.in_use ? el("span", { class: "status status-active", style: "margin-left:6px" }, "in use") : null),
      el("td", {}, fmtDateTime(m.trained_at)),
      el("td", {}, `${fmtDateTime(m.data_start)} – ${fmtDateTime(m.data_end)}`),
      el("td", { class: "num" }, skill === null ? "–" : fmtPct(100 * skill)),
      el("td", { class: "num" }, cover === null ? "–" : fmtPct(100 * cover)));
  }), "No model trained yet.", 5);
}

async function refresh() {
  await loadStatus();
  await loadWindows();
  await chart();
  await loadModels();
}

for (const id of ["#fc-horizon", "#fc-quantity", "#fc-group"]) $(id).addEventListener("change", () => chart().catch(console.error));
const button = $("#fc-retrain");
if (button && canOperate) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await api("/api/v1/forecasts/retrain", { method: "POST" });
      setText("#fc-state", r.detail);
    } catch (e) {
      setText("#fc-state", e.message);
    } finally {
      window.setTimeout(() => { button.disabled = false; }, 3000);
    }
  });
}
poll(refresh, 15000);
