// One event: live figures, target against delivered, cancel (operators), CSV export.
import {
  $, ApiError, COLOURS, IDENT, api, canOperate, el, fmtDateTime, fmtDuration, fmtInt, fmtPct, fmtPower,
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
