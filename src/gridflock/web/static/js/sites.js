// Sites: server-side search, filters and paging.
import { $, api, el, fillRows, fmtInt, fmtPower, poll, setText } from "./lib.js";

const PAGE = 25;
let offset = 0;

function query() {
  const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  for (const [id, name] of [["#f-q", "q"], ["#f-node", "grid_node"], ["#f-program", "program"], ["#f-region", "region"]]) {
    const v = $(id).value.trim();
    if (v) q.set(name, v);
  }
  return q;
}

async function list() {
  const page = await api(`/api/v1/sites?${query()}`);
  fillRows($("#sites-table tbody"), page.items.map((s) => el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `/sites/${encodeURIComponent(s.id)}` }, s.id),
      s.opt_out ? el("span", { class: "status status-cancelled", style: "margin-left:6px" }, "opted out") : null),
    el("td", {}, s.grid_node),
    el("td", {}, s.program),
    el("td", {}, s.region),
    el("td", { class: "num" }, `${fmtInt(s.devices_online)} / ${fmtInt(s.device_count)}`),
    el("td", { class: "num" }, fmtPower(s.p_kw)),
    el("td", { class: "num" }, `${fmtPower(s.import_limit_kw)} / ${fmtPower(s.export_limit_kw)}`))),
  "No site matches these filters.", 7);
  const last = Math.min(offset + PAGE, page.total);
  setText("#sites-count", `${fmtInt(page.total)} site${page.total === 1 ? "" : "s"}`);
  $("#sites-pager").replaceChildren(
    el("span", {}, page.total ? `${fmtInt(offset + 1)}–${fmtInt(last)} of ${fmtInt(page.total)}` : ""),
    el("button", { class: "btn btn-quiet", type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); list(); } }, "Previous"),
    el("button", { class: "btn btn-quiet", type: "button", disabled: last >= page.total, onclick: () => { offset += PAGE; list(); } }, "Next"),
  );
}

async function options() {
  const [nodes, programs, regions] = await Promise.all([
    api("/api/v1/grid-nodes"), api("/api/v1/flexibility?by=program"), api("/api/v1/flexibility?by=region"),
  ]);
  const fill = (sel, values) => $(sel).append(...values.map((v) => el("option", { value: v }, v)));
  fill("#f-node", nodes.filter((n) => n.sites > 0).map((n) => n.id));
  fill("#f-program", programs.map((g) => g.group).sort());
  fill("#f-region", regions.map((g) => g.group).sort());
}

let timer = 0;
const refilter = () => { offset = 0; window.clearTimeout(timer); timer = window.setTimeout(list, 250); };
$("#f-q").addEventListener("input", refilter);
for (const id of ["#f-node", "#f-program", "#f-region"]) $(id).addEventListener("change", refilter);
$("#site-filters").addEventListener("submit", (ev) => { ev.preventDefault(); refilter(); });
options().catch(() => {});
poll(list, 5000);
