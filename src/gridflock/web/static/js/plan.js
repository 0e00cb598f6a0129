// Plan: the autopilot's storage plan, its proposals (approve / veto for operators), the log.
import {
  $, ApiError, COLOURS, api, canOperate, el, fillRows, fmtDateTime, fmtEnergy, fmtPower,
  fmtTime, layout, localTs, noData, plot, poll, setText, statusBadge,
} from "./lib.js";

const LOG_PAGE = 25;
let logOffset = 0;

async function status() {
  const s = await api("/api/v1/autopilot");
  setText("#ap-mode", s.enabled ? (s.mode === "automatic" ? "automatic" : "approval required") : "off");
  setText("#ap-next", s.next_plan_at ? `next re-plan ${fmtTime(s.next_plan_at)}` : "");
  setText("#ap-peak", s.forecast_peak_kw == null ? "–"
    : `${fmtPower(s.forecast_peak_kw)} → ${fmtPower(s.planned_peak_kw)}`);
  setText("#ap-pending", String((s.proposals || {}).pending || 0));
  setText("#ap-planned", s.planned_at ? fmtTime(s.planned_at) : "not yet");
}

function windows(points) {
  // shaded rectangles over the quarters with a committed support window
  const shapes = [];
  let start = null;
  points.forEach((p, i) => {
    const on = Math.abs(p.support_kw) > 1e-9;
    if (on && start === null) start = p.ts;
    const last = i === points.length - 1;
    if (start !== null && (!on || last)) {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: localTs(start),
        x1: localTs(on && last ? p.ts : p.ts), y0: 0, y1: 1, fillcolor: "#f2cc60", opacity: 0.25, line: { width: 0 } });
      start = null;
    }
  });
  return shapes;
}

async function plan() {
  const p = await api("/api/v1/autopilot/plan");
  const pts = p.points || [];
  if (!pts.length) {
    plot("chart-plan", [], layout(noData("No plan yet: the autopilot plans every 15 minutes.")));
    plot("chart-soc", [], layout(noData("No plan yet.")));
    return;
  }
  const x = pts.map((r) => localTs(r.ts));
  const line = (y, name, colour, extra = {}) => ({ x, y, name, type: "scatter", mode: "lines",
    line: { width: 1.6, color: colour, shape: "hv", ...(extra.line || {}) }, hovertemplate: "%{y:,.1f} kW", ...extra });
  plot("chart-plan", [
    line(pts.map((r) => r.forecast_import_kw), "forecast import without batteries", "#94a3b8", { line: { dash: "dot", width: 1.4, color: "#94a3b8", shape: "hv" } }),
    { x, y: pts.map((r) => r.charge_kw), name: "batteries charging", type: "bar", marker: { color: "#1a7f37" }, hovertemplate: "%{y:,.1f} kW" },
    { x, y: pts.map((r) => -r.discharge_kw), name: "batteries discharging", type: "bar", marker: { color: "#d29922" }, hovertemplate: "%{y:,.1f} kW" },
    line(pts.map((r) => r.import_kw), "import with the plan", "#1f6feb"),
    line(pts.map((r) => r.price_eur_per_kwh), "price [EUR/kWh]", "#8250df", { yaxis: "y2", line: { width: 1, color: "#8250df", shape: "hv" }, hovertemplate: "%{y:.3f} EUR/kWh" }),
  ], layout({
    barmode: "relative",
    shapes: windows(pts),
    yaxis: { title: { text: "kW (+ import)" } },
    yaxis2: { title: { text: "EUR/kWh" }, overlaying: "y", side: "right", showgrid: false, rangemode: "tozero" },
    margin: { l: 56, r: 56, t: 8, b: 36 },
  }));
  plot("chart-soc", [line(pts.map((r) => (r.soc == null ? null : 100 * r.soc)), "state of charge", COLOURS.up || "#1a7f37", { hovertemplate: "%{y:.0f} %" })],
    layout({ yaxis: { title: { text: "%" }, range: [0, 100] }, showlegend: false }));
}

function decideButtons(p) {
  if (!canOperate || p.status !== "pending") {
    return p.event_id ? el("a", { href: `/events/${encodeURIComponent(p.event_id)}` }, p.event_id) : "";
  }
  const act = async (verb) => {
    $("#ap-problem").hidden = true;
    try {
      await api(`/api/v1/autopilot/proposals/${encodeURIComponent(p.id)}/${verb}`, { method: "POST", body: verb === "veto" ? { reason: "vetoed on the Plan page" } : undefined });
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $("#ap-problem").textContent = e.message;
      $("#ap-problem").hidden = false;
    }
    await Promise.all([proposals(), decisions(), status()]);
  };
  return el("span", { class: "decide" },
    el("button", { type: "button", class: "btn btn-primary", "data-action": "approve", onclick: () => act("approve") }, "Approve"),
    " ",
    el("button", { type: "button", class: "btn btn-quiet", "data-action": "veto", onclick: () => act("veto") }, "Veto"));
}

async function proposals() {
  const status = $("#ap-filter").value;
  const q = new URLSearchParams({ limit: "200" });
  if (status) q.set("status", status);
  const page = await api(`/api/v1/autopilot/proposals?${q}`);
  fillRows($("#proposals-table tbody"), page.items.map((p) => el("tr", { "data-id": p.id },
    el("td", {}, `${fmtDateTime(p.start)} → ${fmtTime(p.end)}`),
    el("td", {}, p.action === "precharge" ? "pre-charge" : "discharge"),
    el("td", { class: "num" }, fmtPower(p.target_kw, { plus: true })),
    el("td", { class: "num" }, fmtEnergy(p.energy_kwh)),
    el("td", {}, p.policy.replace("_", " ")),
    el("td", { class: "reason" }, p.reason),
    el("td", {}, statusBadge(p.status)),
    el("td", {}, decideButtons(p)))), status ? `No ${status} proposals.` : "No proposals.", 8);
}

async function decisions() {
  const page = await api(`/api/v1/autopilot/decisions?limit=${LOG_PAGE}&offset=${logOffset}`);
  fillRows($("#decisions-table tbody"), page.items.map((d) => el("tr", {},
    el("td", {}, fmtDateTime(d.ts)),
    el("td", {}, d.kind),
    el("td", { class: "muted" }, d.actor.replace(/^apikey:/, "")),
    el("td", { class: "muted" }, d.proposal_id || ""),
    el("td", { class: "reason" }, d.reason))), "Nothing decided yet.", 5);
  const last = Math.min(logOffset + LOG_PAGE, page.total);
  $("#decisions-pager").replaceChildren(
    el("span", {}, page.total ? `${logOffset + 1}–${last} of ${page.total}` : ""),
    el("button", { class: "btn btn-quiet", type: "button", disabled: logOffset === 0, onclick: () => { logOffset = Math.max(0, logOffset - LOG_PAGE); decisions(); } }, "Newer"),
    el("button", { class: "btn btn-quiet", type: "button", disabled: last >= page.total, onclick: () => { logOffset += LOG_PAGE; decisions(); } }, "Older"),
  );
}

$("#ap-filter").addEventListener("change", () => proposals());
const replan = $("#ap-replan");
if (replan) {
  replan.addEventListener("click", async () => {
    $("#ap-problem").hidden = true;
    try {
      await api("/api/v1/autopilot/replan", { method: "POST" });
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      $("#ap-problem").textContent = e.message;
      $("#ap-problem").hidden = false;
    }
    await Promise.all([status(), plan(), proposals(), decisions()]);
  });
}
poll(status, 5000);
poll(plan, 30000);
poll(proposals, 10000);
poll(decisions, 10000);

