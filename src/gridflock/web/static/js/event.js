// One event: live figures, target against delivered, cancel (operators), CSV export.
import {
  $, ApiError, COLOURS, IDENT, api, canOperate, el, fillRows, fmtDateTime, fmtDuration, fmtInt, fmtPct, fmtPower,
  layout, noData, plot, poll, setText, statusBadge,
  localTs,
} from "./lib.js";

const base = `/api/v1/events/${encodeURIComponent(IDENT)}`;
let status = null;

async function figures() {
  let e;
  try {
    e = await api(base);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setText("#ev-meta", "There is no event with this id.");
      $("#ev-status").replaceWith(statusBadge("unknown"));
      return;
    }
    throw err;
  }
  status = e.status;
  const badge = $("#ev-status");
  badge.className = `status status-${e.status}`;
  setText(badge, e.status);
  setText("#ev-meta", `${e.scope} · priority ${e.priority} · ${fmtDateTime(e.start)} → ${fmtDateTime(e.end)} (${fmtDuration(e.duration_s)}) · ${e.source} · by ${e.created_by.replace(/^apikey:/, "")}`);
  setText("#ev-target", fmtPower(e.target_kw, { plus: true }));
  // a finished event has no "now": show its mean delivery over the window instead
  const over = !(e.status === "scheduled" || e.status === "active");
  const meanKw = e.delivered_pct === null ? null : (e.target_kw * e.delivered_pct) / 100;
  setText("#ev-delivered-label", over ? "Delivered (mean)" : "Delivered now");
  setText("#ev-delivered", fmtPower(over ? meanKw : e.delivered_kw, { plus: true }));
  setText("#ev-pct-hint", over ? "mean over the window" : "mean over the window so far");
  setText("#ev-pct", fmtPct(e.delivered_pct));
  setText("#ev-rmse", fmtPct(e.tracking_rmse_pct));
  setText("#ev-t90", e.time_to_90pct_s === null ? (e.status === "active" ? "not yet" : "–") : fmtDuration(e.time_to_90pct_s));
  setText("#ev-nonresp", fmtInt(e.non_responders));
  setText("#ev-cmds", `${fmtInt(e.commands_sent)} commands sent` + (e.shortfall_kw > 0.05 ? ` · ${fmtPower(e.shortfall_kw)} not allocatable` : ""));
  const actions = $("#ev-actions");
  if (actions) actions.hidden = !(canOperate && (e.status === "scheduled" || e.status === "active"));
}

async function chart() {
  const rows = await api(`${base}/performance`);
  const ts = rows.map((r) => localTs(r.ts));
  plot("chart-perf", [
    { x: ts, y: rows.map((r) => r.target_kw), name: "Target", type: "scatter", mode: "lines",
      line: { color: COLOURS.target, dash: "dash", width: 2, shape: "hv" }, hovertemplate: "%{y:,.1f} kW" },
    { x: ts, y: rows.map((r) => r.delivered_kw), name: "Delivered", type: "scatter", mode: "lines",
      line: { color: COLOURS.delivered, width: 2.5 }, fill: "tozeroy", fillcolor: "rgba(37,99,235,0.08)",
      hovertemplate: "%{y:,.1f} kW" },
  ], layout({ yaxis: { title: { text: "kW relative to baseline" } }, legend: { orientation: "h", y: 1.08, x: 0 },
    ...(rows.length ? {} : noData(status === "scheduled" ? "starts at its start time" : "no samples yet")) }));
}

poll(figures, 2000);
poll(async () => { if (status !== "completed" && status !== "cancelled" && status !== "failed") await chart(); else if (!$("#chart-perf").data) await chart(); }, 2000);

if ($("#ev-cancel")) {
  const confirmBox = $("#ev-confirm");
  $("#ev-cancel").addEventListener("click", () => { confirmBox.hidden = false; $("#ev-cancel").hidden = true; $("#ev-cancel-yes").focus(); });
  $("#ev-cancel-no").addEventListener("click", () => { confirmBox.hidden = true; $("#ev-cancel").hidden = false; });
  $("#ev-cancel-yes").addEventListener("click", async () => {
    const problem = $("#ev-cancel-problem");
    problem.hidden = true;
    try {
      await api(`${base}/cancel`, { method: "POST" });
      confirmBox.hidden = true;
      $("#ev-cancel").hidden = false;
      await figures();
      await chart();
    } catch (err) {
      problem.textContent = err instanceof ApiError ? err.problem.detail || err.message : String(err);
      problem.hidden = false;
    }
  });
}

// ------------------------------------------------------------------ settlement (event report)
const NF = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 3 });
const money = (v, cur) => (Number.isFinite(v) ? new Intl.NumberFormat("en-GB", { style: "currency", currency: cur }).format(v) : "–");
const pct1 = (p) => (p === null || p === undefined || !Number.isFinite(p) ? "–" : `${p > 0 ? "+" : ""}${p.toFixed(1)} %`);
let settledFor = null; // the method the shown statement was made with ("" = recommended)

function methodQuery() {
  const m = $("#st-method").value;
  return m ? `?method=${encodeURIComponent(m)}` : "";
}

function setDownloads() {
  const m = $("#st-method").value;
  const q = m ? `&method=${encodeURIComponent(m)}` : "";
  $("#st-csv").href = `${base}/statement?format=csv${q}`;
  $("#st-json").href = `${base}/statement?format=json${q}`;
}

async function settlement() {
  const problem = $("#st-problem");
  let st;
  try {
    st = await api(`${base}/statement${methodQuery()}`);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
      setText("#st-plain", err.problem.detail || err.message);
      return;
    }
    problem.textContent = err instanceof ApiError ? err.problem.detail || err.message : String(err);
    problem.hidden = false;
    return;
  }
  problem.hidden = true;
  settledFor = $("#st-method").value;
  setText("#st-plain", st.statement);
  $("#st-notes").replaceChildren(...st.notes.map((n) => el("li", {}, n)));
  const sel = $("#st-method");
  if (sel.options.length <= 1) {
    for (const m of st.methods) sel.append(el("option", { value: m.method }, m.label));
  }
  const t = st.totals;
  const conf = `${Math.round(st.confidence * 100)} %`;
  setText("#st-kw", fmtPower(t.delivered_kw, { plus: true }));
  setText("#st-kw-u", `± ${fmtPower(t.uncertainty_kw)} (${conf}) · ${fmtPct(t.delivered_pct)} of target`);
  setText("#st-kwh", `${NF.format(t.delivered_kwh)} kWh`);
  setText("#st-kwh-u", `± ${NF.format(t.uncertainty_kwh)} kWh`);
  setText("#st-resp", `${fmtInt(t.responders)} / ${fmtInt(t.sites)}`);
  setText("#st-nonresp", `${fmtInt(t.non_responders)} non-responders · ${fmtInt(t.sites_without_data)} without data`);
  setText("#st-reward", money(t.reward, st.rewards.currency));
  setText("#st-rate", `${st.rewards.rate} ${st.rewards.unit}`);
  setText("#st-mwh", `${NF.format(st.peaker.avoided_mwh)} MWh`);
  setText("#st-mw", `${NF.format(st.peaker.peak_capacity_mw)} MW of peaking capacity`);
  setText("#st-co2", `${NF.format(st.peaker.co2_avoided_t)} t`);
  setText("#st-factor", `at ${Math.round(st.peaker.kg_co2_per_mwh)} kg/MWh`);
  $("#st-factor").title = st.peaker.factor_source;

  const ts = st.intervals.map((r) => localTs(r.ts));
  setText("#st-chart-note", `fleet total per ${Math.round(st.interval_s / 60)}-min interval · kW · ${st.baseline.label}`);
  plot("chart-baseline", [
    { x: ts, y: st.intervals.map((r) => r.baseline_kw), name: `Baseline (${st.baseline.method})`, type: "scatter", mode: "lines",
      line: { color: COLOURS.target, dash: "dash", width: 2, shape: "hv" }, hovertemplate: "%{y:,.2f} kW" },
    { x: ts, y: st.intervals.map((r) => r.actual_kw), name: "Actual (metered)", type: "scatter", mode: "lines",
      line: { color: COLOURS.delivered, width: 2.5, shape: "hv" }, hovertemplate: "%{y:,.2f} kW" },
    { x: ts, y: st.intervals.map((r) => r.delivered_kw), name: "Delivered", type: "bar",
      marker: { color: "rgba(22,163,74,0.35)" }, hovertemplate: "%{y:,.2f} kW" },
  ], layout({ yaxis: { title: { text: "kW (> 0 to the grid)" } }, legend: { orientation: "h", y: 1.08, x: 0 },
    ...(st.intervals.length ? {} : noData("no meter data in the window")) }));

  fillRows($("#st-methods tbody"), st.methods.map((m) => el("tr", { class: m.chosen ? "chosen" : null },
    el("th", { scope: "row" }, m.label, m.chosen ? " ✓" : ""),
    el("td", { class: "num" }, fmtPower(m.delivered_kw, { plus: true })),
    el("td", { class: "num" }, `± ${fmtPower(m.uncertainty_kw)}`),
    el("td", { class: "num" }, `${NF.format(m.delivered_kwh)} kWh`),
    el("td", { class: "num" }, pct1(m.bias_pct)),
    el("td", { class: "num" }, m.rmse_pct === null || !Number.isFinite(m.rmse_pct) ? "–" : `${m.rmse_pct.toFixed(1)} %`),
  )), "No method could be computed.", 6);

  const top = st.sites.slice(0, 50);
  setText("#st-league-note", `best delivery first · ${top.length} of ${st.sites.length} shown · the CSV has all`);
  fillRows($("#st-league tbody"), top.map((s) => el("tr", { class: s.status === "responder" ? null : "hot" },
    el("td", { class: "num" }, fmtInt(s.rank)),
    el("th", { scope: "row" }, el("a", { href: `/sites/${encodeURIComponent(s.site_id)}` }, s.site_id)),
    el("td", {}, s.grid_node),
    el("td", {}, s.status.replace("_", "-")),
    el("td", { class: "num" }, fmtPower(s.delivered_kw, { plus: true })),
    el("td", { class: "num" }, `${NF.format(s.delivered_kwh)} kWh`),
    el("td", { class: "num" }, fmtPct(s.share_pct, 1)),
    el("td", { class: "num" }, money(s.reward, st.rewards.currency)),
  )), "No site took part.", 8);

  const nr = st.sites.filter((s) => s.status !== "responder");
  setText("#st-nr-note", `${nr.length} of ${st.sites.length} sites delivered less than the threshold or had no data`);
  fillRows($("#st-nonresponders tbody"), nr.slice(0, 100).map((s) => el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `/sites/${encodeURIComponent(s.site_id)}` }, s.site_id)),
    el("td", {}, s.grid_node),
    el("td", { class: "num" }, fmtPower(s.delivered_kw, { plus: true })),
    el("td", { class: "num" }, s.status === "no_data" ? "none" : fmtPct(100 * s.coverage)),
  )), "Every site responded.", 4);
}

$("#st-method").addEventListener("change", () => { setDownloads(); lastFetch = Date.now(); settlement(); });
// the statement of a running event is provisional: refreshed every minute; a finished one once
let lastFetch = 0;
poll(async () => {
  if (status === null) return;
  if (status === "scheduled") { setText("#st-plain", "The statement is made once the event has started."); return; }
  const final = status === "completed" || status === "cancelled" || status === "failed";
  if (final && lastFetch && settledFor === $("#st-method").value) return;
  if (!final && Date.now() - lastFetch < 60000) return;
  lastFetch = Date.now();
  await settlement();
}, 2000);
