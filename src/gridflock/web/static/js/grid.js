// Grid view: sites by position (server-binned) and grid nodes against their limits.
import { $, api, el, fillRows, fmtDateTime, fmtInt, fmtPct, fmtPower, layout, plot, poll, setText } from "./lib.js";

const peak = new Map();
let mapData = null;

function drawMap() {
  const m = mapData;
  if (!m) return;
  const byPower = $("#map-colour").value === "power";
  const meanLat = m.lat.length ? m.lat.reduce((a, b) => a + b, 0) / m.lat.length : 0;
  const maxAbs = Math.max(1e-3, ...m.p_kw.map((p) => Math.abs(p)));
  const text = m.lat.map((_, i) =>
    (m.id ? m.id[i] : `${fmtInt(m.count[i])} sites`) +
    `<br>net ${fmtPower(m.p_kw[i])}<br>${fmtPct(m.online_pct[i])} of devices online`);
  const maxCount = Math.max(1, ...m.count);
  const marker = byPower
    ? { color: m.p_kw, colorscale: [[0, "#2563eb"], [0.5, "#e2e8f0"], [1, "#ea580c"]], cmin: -maxAbs, cmax: maxAbs,
        colorbar: { title: { text: "kW", side: "top" }, thickness: 10, len: 0.8 } }
    : { color: m.online_pct, colorscale: [[0, "#dc2626"], [0.5, "#f59e0b"], [1, "#16a34a"]], cmin: 0, cmax: 100,
        colorbar: { title: { text: "% online", side: "top" }, thickness: 10, len: 0.8 } };
  marker.size = m.binned ? m.count.map((c) => 5 + 13 * Math.sqrt(c / maxCount)) : 7;
  marker.line = { width: 0.5, color: "rgba(15,23,42,0.35)" };
  plot("chart-map", [{ type: "scatter", mode: "markers", x: m.lon, y: m.lat, text, customdata: m.id || null,
    hovertemplate: "%{text}<extra></extra>", marker }],
  layout({ showlegend: false, hovermode: "closest", margin: { l: 56, r: 8, t: 8, b: 40 },
    xaxis: { title: { text: "longitude [°]" } },
    yaxis: { title: { text: "latitude [°]" }, scaleanchor: "x", scaleratio: 1 / Math.cos((meanLat * Math.PI) / 180) } }));
}

async function map() {
  mapData = await api("/api/v1/fleet/map?max_points=2000");
  setText("#map-note", mapData.binned
    ? `${fmtInt(mapData.sites)} sites in ${fmtInt(mapData.lat.length)} cells · size: sites per cell`
    : `${fmtInt(mapData.sites)} sites · click one to open it`);
  drawMap();
}

async function nodes() {
  const rows = await api("/api/v1/grid-nodes");
  const depth = new Map();
  const parents = new Map(rows.map((n) => [n.id, n.parent]));
  const level = (id) => { let d = 0; let p = parents.get(id); while (p) { d += 1; p = parents.get(p); } return d; };
  rows.forEach((n) => depth.set(n.id, level(n.id)));
  fillRows($("#node-table tbody"), rows.map((n) => {
    const u = n.utilisation_pct;
    const served = n.peak_utilisation_pct_24h ?? 0;  // the server's minute samples, 24 h
    if (u !== null || served) peak.set(n.id, Math.max(peak.get(n.id) ?? 0, u ?? 0, served));
    const pk = peak.get(n.id);
    const limit = n.load_kw >= 0 ? n.limit_export_kw : n.limit_import_kw;
    const cls = u === null ? "" : u >= 90 ? "hot" : u >= 70 ? "warn" : "";
    return el("tr", { class: (pk ?? 0) >= 90 ? "hot" : null },
      el("th", { scope: "row", style: `padding-left:${8 + 14 * depth.get(n.id)}px` }, n.id,
        el("span", { class: "muted" }, ` ${n.kind}`),
        n.envelope ? el("span", { class: "badge", title: "an operating envelope sets this limit now" }, " envelope") : null),
      el("td", { class: "num" }, fmtPower(n.load_kw)),
      el("td", { class: "num" }, fmtPower(limit)),
      el("td", {}, el("div", { class: "util" },
        el("div", { class: `bar ${cls}`, role: "meter", "aria-valuemin": "0", "aria-valuemax": "100",
          "aria-valuenow": u === null ? "0" : u.toFixed(0), "aria-label": `${n.id} utilisation` },
          el("span", { style: `width:${Math.min(100, u ?? 0).toFixed(1)}%` })),
        el("span", { class: "num" }, fmtPct(u)))),
      el("td", { class: "num" }, fmtPct(pk)),
      el("td", { class: "num" }, fmtInt(n.sites)));
  }), "No grid nodes.", 6);
}

async function envelopes() {
  const body = await api("/api/v1/envelopes?limit=200");
  const kw = (x) => (x === null || x === undefined ? "–" : fmtPower(x));
  fillRows($("#envelope-table tbody"), body.items.map((e) => el("tr", { class: e.in_force ? "warn" : null },
    el("th", { scope: "row" }, `${e.target_type} ${e.target_id}`),
    el("td", {}, fmtDateTime(e.start)), el("td", {}, fmtDateTime(e.end)),
    el("td", { class: "num" }, kw(e.import_limit_kw)), el("td", { class: "num" }, kw(e.export_limit_kw)),
    el("td", {}, e.kind), el("td", {}, e.source), el("td", {}, e.in_force ? "in force" : "upcoming"))),
  "No envelopes in force or upcoming.", 8);
}

async function holds() {
  const body = await api("/api/v1/envelopes/holds");
  $("#hold-summary").textContent =
    `${fmtInt(body.devices_held)} devices held · ${fmtPower(body.moved_kw)} moved`;
  fillRows($("#hold-table tbody"), body.sites.map((s) => el("tr", { class: s.left_kw ? "warn" : null },
    el("th", { scope: "row" }, s.site_id),
    el("td", { class: "num" }, fmtPower(s.breach_kw)), el("td", { class: "num" }, fmtPower(s.left_kw)),
    el("td", { class: "num" }, fmtInt(s.devices_held)), el("td", { class: "num" }, fmtPower(s.moved_kw)),
    el("td", {}, s.since ? fmtDateTime(s.since) : "–"))),
  "No site is past its envelope.", 6);
}

$("#map-colour").addEventListener("change", drawMap);
poll(envelopes, 10000);
poll(holds, 5000);
poll(map, 5000);
poll(nodes, 3000);
const chart = document.getElementById("chart-map");
const attachClick = () => {
  if (!chart.on) { window.setTimeout(attachClick, 500); return; }
  chart.on("plotly_click", (ev) => {
    const id = ev.points && ev.points[0] && ev.points[0].customdata;
    if (id) window.location.assign(`/sites/${encodeURIComponent(id)}`);
  });
};
attachClick();
