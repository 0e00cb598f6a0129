// One site: devices live, history charts, commands received and their acks.
import {
  $, ApiError, COLOURS, IDENT, api, direction, el, fillRows, fmtDateTime, fmtInt, fmtPct, fmtPower, fmtTime,
  kindColour, kindLabel, kindSwatch, layout, noData, plot, poll, setText, statusBadge, ago,
  localTs,
} from "./lib.js";

const base = `/api/v1/sites/${encodeURIComponent(IDENT)}`;
let devices = [];

async function site() {
  let s;
  try {
    s = await api(base);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) { setText("#site-meta", "There is no site with this id."); return; }
    throw err;
  }
  devices = s.devices;
  setText("#site-meta", `${s.grid_node} · program ${s.program} · region ${s.region} · ${s.lat.toFixed(4)}°, ${s.lon.toFixed(4)}° · ${s.tz}`);
  setText("#site-power", fmtPower(s.p_kw));
  setText("#site-sign", direction(s.p_kw));
  setText("#site-online", `${fmtInt(s.devices_online)} / ${fmtInt(s.device_count)}`);
  setText("#site-limits", `${fmtPower(s.import_limit_kw)} / ${fmtPower(s.export_limit_kw)}`);
  setText("#site-optout", s.opt_out ? "opted out" : "available");
  fillRows($("#devices-table tbody"), s.devices.map((d) => el("tr", {},
    el("th", { scope: "row" }, kindSwatch(d.kind), kindLabel(d.kind), el("div", { class: "hint" }, `${d.id} · ${(d.protocol || "mqtt").toUpperCase()} via ${d.gateway_id}`)),
    el("td", { class: "num" }, fmtPower(d.p_kw)),
    el("td", { class: "num" }, d.soc === null ? "–" : fmtPct(d.soc * 100)),
    el("td", { title: d.ts ? `last reading ${fmtTime(d.ts)}` : "no reading yet" },
      statusBadge(d.online ? "online" : "offline")))), "No devices.", 4);
}

async function history() {
  if (!devices.length) return;
  const start = encodeURIComponent(ago(3 * 3600e3));
  const [env, net, ...per] = await Promise.all([
    api(`/api/v1/envelopes?target_id=${encodeURIComponent(IDENT)}`),
    api(`${base}/telemetry?start=${start}&every_s=10`),
    ...devices.map((d) => api(`/api/v1/devices/${encodeURIComponent(d.id)}/telemetry?start=${start}&every_s=10`)),
  ]);
  const traces = devices.map((d, i) => ({
    x: per[i].items.map((r) => localTs(r.ts)), y: per[i].items.map((r) => r.p_kw), name: kindLabel(d.kind),
    type: "scatter", mode: "lines", line: { color: kindColour(d.kind), width: 1.5 }, hovertemplate: "%{y:,.2f} kW",
  }));
  traces.push({ x: net.items.map((r) => localTs(r.ts)), y: net.items.map((r) => r.p_kw), name: "Site net", type: "scatter",
    mode: "lines", line: { color: COLOURS.net, width: 2.5 }, hovertemplate: "%{y:,.2f} kW" });
  // the grid operator's envelopes on this site: export limit above zero, import below
  const mine = env.items.filter((e) => e.target_type === "site");
  for (const [key, sign, name] of [["export_limit_kw", 1, "Export envelope"], ["import_limit_kw", -1, "Import envelope"]]) {
    const x = []; const y = [];
    for (const e of mine) {
      if (e[key] === null) continue;
      x.push(localTs(e.start), localTs(e.end), null); y.push(sign * e[key], sign * e[key], null);
    }
    if (x.length) {
      traces.push({ x, y, name, type: "scatter", mode: "lines", connectgaps: false,
        line: { color: "#dc2626", width: 2, dash: "dash" }, hovertemplate: `${name}: %{y:,.2f} kW` });
    }
  }
  plot("chart-site", traces, layout({ yaxis: { title: { text: "kW" } },
    ...(net.items.length ? {} : noData("no stored readings yet")) }));
}

async function commands() {
  if (!devices.length) return;
  const lists = await Promise.all(devices.map((d) => api(`/api/v1/devices/${encodeURIComponent(d.id)}/commands?limit=20`)));
  const kindOf = new Map(devices.map((d) => [d.id, d.kind]));
  const rows = lists.flat().sort((a, b) => (a.issued_at < b.issued_at ? 1 : -1)).slice(0, 30);
  fillRows($("#commands-table tbody"), rows.map((c) => el("tr", {},
    el("td", {}, fmtDateTime(c.issued_at), el("span", { class: "muted" }, ` ${fmtTime(c.issued_at)}`)),
    el("td", {}, kindSwatch(kindOf.get(c.device_id)), kindLabel(kindOf.get(c.device_id))),
    el("td", {}, c.event_id ? el("a", { href: `/events/${encodeURIComponent(c.event_id)}` }, c.event_id) : "–"),
    el("td", { class: "num" }, c.p_setpoint_kw === null ? "release" : fmtPower(c.p_setpoint_kw)),
    el("td", {}, fmtTime(c.valid_until)),
    el("td", {}, statusBadge(c.status || "sent"), c.reason ? el("span", { class: "muted" }, ` ${c.reason}`) : null,
      c.acked_at ? el("span", { class: "muted" }, ` ${fmtTime(c.acked_at)}`) : null))),
  "No commands sent to this site's devices yet.", 6);
}

(async () => {
  await site().catch(() => {});
  poll(site, 2000);
  poll(history, 30000);
  poll(commands, 5000);
})();
