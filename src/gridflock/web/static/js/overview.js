// Plant overview: live totals from the stream, history and aggregates by polling.
import {
  $, COLOURS, KIND_ORDER, api, direction, el, fillRows, fmtHours, fmtInt, fmtPct, fmtPower,
  fmtTime, kindColour, kindLabel, kindSwatch, layout, noData, plot, poll, setText, stream, ago,
  fmtEnergy,
  localTs,
} from "./lib.js";

let activeEventId = null;

function showFleet(f) {
  setText("#total-power", fmtPower(f.p_kw));
  setText("#total-sign", direction(f.p_kw));
  setText("#flex-up", fmtPower(f.flex_up_kw));
  setText("#flex-down", fmtPower(f.flex_down_kw));
  const hold = f.flex_duration_h ? `for ${fmtHours(f.flex_duration_h)}` : "";
  setText("#flex-hold-up", hold);
  setText("#flex-hold-down", hold);
  const rest = (c, r) => (c > 0 ? `${fmtPower(c)} held by events · ${fmtPower(r)} left` : "none held by events");
  setText("#flex-rest-up", rest(f.committed_up_kw || 0, f.remaining_up_kw || 0));
  setText("#flex-rest-down", rest(f.committed_down_kw || 0, f.remaining_down_kw || 0));
  setText("#devices-online", `${fmtInt(f.devices_online)} / ${fmtInt(f.devices_total)}`);
  const off = f.devices_total - f.devices_online;
  setText("#devices-offline", off > 0 ? `${fmtInt(off)} offline` : "all reporting");
  if (f.ts) setText("#asof", `As of ${fmtTime(typeof f.ts === "number" ? f.ts * 1000 : f.ts)}.`);
}

function showEvents(events) {
  const box = $("#active-event");
  const ev = (events || [])[0];
  activeEventId = ev ? ev.id : null;
  if (!ev) {
    if (!box.querySelector(".muted")) box.replaceChildren(el("p", { class: "muted" }, "None running."));
    return;
  }
  box.replaceChildren(...[
    el("a", { href: `/events/${encodeURIComponent(ev.id)}`, class: "event-link" }, ev.id),
    el(
      "p",
      { class: "event-figs" },
      el("span", {}, "target ", el("strong", {}, fmtPower(ev.target_kw, { plus: true }))),
      el("span", {}, "delivered ", el("strong", { id: "active-delivered" }, fmtPower(ev.delivered_kw, { plus: true }))),
      el("span", {}, el("strong", {}, fmtPct(ev.delivered_pct)), " of target"),
    ),
    events.length > 1 ? el("p", { class: "hint" }, `and ${events.length - 1} more active`) : null,
  ].filter(Boolean));
}

async function history() {
  const rows = await api(`/api/v1/fleet/history?start=${encodeURIComponent(ago(3 * 3600e3))}&every_s=10`);
  const ts = rows.map((r) => localTs(r.ts));
  const traces = [];
  for (const k of KIND_ORDER) {
    const vals = rows.map((r) => r[k] ?? 0);
    if (!vals.some((v) => Math.abs(v) > 1e-9)) continue;
    const common = { x: ts, type: "scatter", mode: "lines", line: { width: 0.5, color: kindColour(k) },
      fillcolor: kindColour(k), legendgroup: k, name: kindLabel(k), hovertemplate: "%{y:,.1f} kW" };
    traces.push({ ...common, y: vals.map((v) => Math.max(v, 0)), stackgroup: "to grid" });
    traces.push({ ...common, y: vals.map((v) => Math.min(v, 0)), stackgroup: "from grid", showlegend: false });
  }
  traces.push({ x: ts, y: rows.map((r) => r.p_kw), name: "Net", type: "scatter", mode: "lines",
    line: { color: COLOURS.net, width: 2 }, hovertemplate: "%{y:,.1f} kW" });
  plot("chart-history", traces, layout({ yaxis: { title: { text: "kW" } }, ...(rows.length ? {} : noData("collecting history…")) }));
}

async function soc() {
  const h = await api("/api/v1/fleet/soc?bins=10");
  const x = h.bins.map((b) => `${Math.round(b.soc_lo * 100)}–${Math.round(b.soc_hi * 100)}`);
  plot("chart-soc", [{ x, y: h.bins.map((b) => b.devices), type: "bar", marker: { color: kindColour("battery") },
    hovertemplate: "%{x} %: %{y} batteries<extra></extra>", name: "batteries" }],
  layout({ showlegend: false, hovermode: "closest", bargap: 0.08, margin: { l: 44, r: 8, t: 8, b: 40 },
    xaxis: { title: { text: "state of charge [%]" }, tickangle: 0, tickfont: { size: 10 } },
    yaxis: { title: { text: "batteries" } }, ...(h.online ? {} : noData("no battery online")) }));
  setText("#soc-summary", h.online ? `${fmtInt(h.online)} online · mean ${fmtPct(h.mean_soc * 100)} · ${fmtEnergy(h.e_stored_kwh)} of ${fmtEnergy(h.e_capacity_kwh)} stored` : "");
}

async function fleetByKind() {
  const f = await api("/api/v1/fleet");
  showFleet(f);
  const rows = [...f.by_kind]
    .sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind))
    .map((k) => el("tr", {},
      el("th", { scope: "row" }, kindSwatch(k.kind), kindLabel(k.kind)),
      el("td", { class: "num" }, `${fmtInt(k.devices_online)} / ${fmtInt(k.devices_total)}`),
      el("td", { class: "num" }, fmtPower(k.p_kw)),
      el("td", { class: "num" }, fmtPower(k.flex_up_kw)),
      el("td", { class: "num" }, fmtPower(k.flex_down_kw))));
  fillRows($("#kind-table tbody"), rows, "No devices.", 5);
  setText("#protocol-summary", (f.by_protocol || [])
    .map((p) => `${p.protocol.toUpperCase()} ${fmtInt(p.devices_online)} / ${fmtInt(p.devices_total)} online`)
    .join(" · "));
}

async function flexTable() {
  const holds = [0.25, 1, 4];
  // the same figure as the cards (GET /fleet): rows by kind sum to the fleet's totals
  const names = ["flex_up_kw", "remaining_up_kw", "flex_down_kw", "remaining_down_kw"];
  const sums = await Promise.all(holds.map(async (h) => {
    const rows = await api(`/api/v1/flexibility?duration_h=${h}&by=kind`);
    return names.map((n) => rows.reduce((acc, r) => acc + (r[n] || 0), 0));
  }));
  fillRows($("#flex-table tbody"), holds.map((h, i) => el("tr", {},
    el("th", { scope: "row" }, fmtHours(h)),
    ...sums[i].map((v, j) => el("td", { class: `num ${j < 2 ? "up" : "down"}` }, fmtPower(v))))), "–", 5);
}

async function eventChart() {
  if (!activeEventId) {
    plot("chart-event", [], layout({ showlegend: false, xaxis: { visible: false }, yaxis: { visible: false }, ...noData("no active event") }));
    return;
  }
  const rows = await api(`/api/v1/events/${encodeURIComponent(activeEventId)}/performance`);
  const ts = rows.map((r) => localTs(r.ts));
  plot("chart-event", [
    { x: ts, y: rows.map((r) => r.target_kw), name: "Target", type: "scatter", mode: "lines", line: { color: COLOURS.target, dash: "dash", width: 2, shape: "hv" } },
    { x: ts, y: rows.map((r) => r.delivered_kw), name: "Delivered", type: "scatter", mode: "lines", line: { color: COLOURS.delivered, width: 2 } },
  ], layout({ yaxis: { title: { text: "kW" } }, margin: { l: 48, r: 8, t: 8, b: 30 }, legend: { orientation: "h", y: 1.12, x: 0 } }));
}

stream((u) => {
  if (u.fleet) showFleet(u.fleet);
  showEvents(u.events);
});
poll(fleetByKind, 5000);
poll(history, 10000);
poll(soc, 5000);
poll(flexTable, 15000);
poll(async () => {
  if (activeEventId === null) {
    const page = await api("/api/v1/events?status=active&limit=5");
    showEvents(page.items);
  }
  await eventChart();
}, 4000);
