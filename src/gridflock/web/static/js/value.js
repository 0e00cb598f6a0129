// The value of a year: completed events settled, energy, rewards, the fossil peaker avoided.
import { $, ApiError, COLOURS, api, fmtInt, layout, noData, plot, poll, setText } from "./lib.js";

const NF = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 3 });
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const sel = $("#year");
const thisYear = new Date().getUTCFullYear();
for (let y = thisYear; y >= thisYear - 5; y--) sel.append(new Option(String(y), String(y)));

async function load() {
  const problem = $("#year-problem");
  let v;
  try {
    v = await api(`/api/v1/value/${sel.value}`);
  } catch (err) {
    problem.textContent = err instanceof ApiError ? err.problem.detail || err.message : String(err);
    problem.hidden = false;
    return;
  }
  problem.hidden = true;
  const money = new Intl.NumberFormat("en-GB", { style: "currency", currency: v.currency });
  setText("#y-events", fmtInt(v.events));
  setText("#y-up", `${fmtInt(v.up_events)} up · ${fmtInt(v.events - v.up_events)} down`);
  setText("#y-delivered", `${NF.format(v.delivered_mwh)} MWh`);
  setText("#y-avoided", `${NF.format(v.avoided_mwh)} MWh`);
  setText("#y-co2", `${NF.format(v.co2_avoided_t)} t`);
  setText("#y-mw", `${NF.format(v.peak_capacity_mw)} MW`);
  setText("#y-mw-max", `mean per up event · largest ${NF.format(v.peak_capacity_mw_max)} MW`);
  setText("#y-rewards", money.format(v.rewards));
  setText("#y-methods", Object.entries(v.methods).map(([m, n]) => `${m} ×${n}`).join(" · ") || "no event settled");
  // every month of the year, months without an event at zero
  const byMonth = new Map(v.by_month.map((r) => [r.month, r]));
  const all = MONTHS.map((_, i) => byMonth.get(i + 1) || { avoided_mwh: 0, co2_avoided_t: 0 });
  plot("chart-year", [
    { x: MONTHS, y: all.map((r) => r.avoided_mwh), name: "Peaker generation avoided [MWh]", type: "bar",
      marker: { color: COLOURS.delivered }, hovertemplate: "%{y:,.3f} MWh" },
    { x: MONTHS, y: all.map((r) => r.co2_avoided_t), name: "CO₂ avoided [t]", type: "scatter", mode: "lines+markers",
      yaxis: "y2", line: { color: "#16a34a", width: 2 }, hovertemplate: "%{y:,.3f} t" },
  ], layout({ margin: { l: 56, r: 64, t: 8, b: 36 }, yaxis: { title: { text: "MWh" }, rangemode: "tozero" },
    yaxis2: { title: { text: "t CO₂" }, overlaying: "y", side: "right", showgrid: false, rangemode: "tozero" },
    legend: { orientation: "h", y: 1.08, x: 0 }, ...(v.by_month.length ? {} : noData("no completed event in this year")) }));
}

sel.addEventListener("change", load);
poll(load, 60000);
