// Events: the list (polled) and, for operators, the create form.
import {
  $, ApiError, api, canOperate, el, fillRows, fmtDateTime, fmtPct, fmtPower, poll, setText, statusBadge,
} from "./lib.js";

const PAGE = 20;
let offset = 0;

async function list() {
  const status = $("#ev-filter").value;
  const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  if (status) q.set("status", status);
  const page = await api(`/api/v1/events?${q}`);
  fillRows($("#events-table tbody"), page.items.map((e) => el("tr", {},
    el("th", { scope: "row" }, el("a", { href: `/events/${encodeURIComponent(e.id)}` }, e.id)),
    el("td", {}, statusBadge(e.status)),
    el("td", {}, e.scope),
    el("td", { class: "num" }, String(e.priority)),
    el("td", { class: "num" }, fmtPower(e.target_kw, { plus: true })),
    el("td", { class: "num" }, fmtPct(e.delivered_pct)),
    el("td", {}, `${fmtDateTime(e.start)} → ${fmtDateTime(e.end)}`),
    el("td", { class: "muted" }, e.created_by.replace(/^apikey:/, "")))), "No events yet.", 8);
  const pager = $("#events-pager");
  const last = Math.min(offset + PAGE, page.total);
  pager.replaceChildren(
    el("span", {}, page.total ? `${offset + 1}–${last} of ${page.total}` : ""),
    el("button", { class: "btn btn-quiet", type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); list(); } }, "Previous"),
    el("button", { class: "btn btn-quiet", type: "button", disabled: last >= page.total, onclick: () => { offset += PAGE; list(); } }, "Next"),
  );
}
$("#ev-filter").addEventListener("change", () => { offset = 0; list(); });
poll(list, 3000);

// ------------------------------------------------------------------ create form (operators)
const form = $("#event-form");
if (form && canOperate) {
  const scopeKind = $("#ev-scope-kind");
  const scopeValue = $("#ev-scope-value");
  const options = { grid_node: [], program: [], region: [] };
  const loadOptions = async () => {
    const [nodes, programs, regions] = await Promise.all([
      api("/api/v1/grid-nodes"),
      api("/api/v1/flexibility?by=program"),
      api("/api/v1/flexibility?by=region"),
    ]);
    options.grid_node = nodes.map((n) => [n.id, `${n.id} (${n.kind})`]);
    options.program = programs.map((g) => [g.group, g.group]);
    options.region = regions.map((g) => [g.group, g.group]);
    syncScope();
  };
  const syncScope = () => {
    const kind = scopeKind.value;
    scopeValue.hidden = kind === "fleet";
    if (kind !== "fleet") {
      const keep = scopeValue.value;
      scopeValue.replaceChildren(...options[kind].map(([v, label]) => el("option", { value: v }, label)));
      if (options[kind].some(([v]) => v === keep)) scopeValue.value = keep;
    }
  };
  scopeKind.addEventListener("change", syncScope);
  loadOptions().catch(() => {});

  const flexHint = async () => {
    const f = await api("/api/v1/fleet");
    setText("#ev-flex-hint", `The whole fleet can hold ${fmtPower(f.flex_up_kw)} up and ${fmtPower(f.flex_down_kw)} down now.`);
  };
  flexHint().catch(() => {});

  // what the chosen scope, direction and window can still deliver (net of other events)
  let availableSeq = 0;
  const showAvailable = async () => {
    const seq = ++availableSeq;
    const dur = Number($("#ev-duration").value);
    if (!(dur >= 1 && dur <= 10080) || (scopeKind.value !== "fleet" && !scopeValue.value)) {
      setText("#ev-available", "");
      return;
    }
    const direction = form.querySelector("input[name=direction]:checked").value;
    const q = new URLSearchParams({
      scope: scopeKind.value === "fleet" ? "fleet" : `${scopeKind.value}:${scopeValue.value}`,
      direction, duration_s: String(dur * 60),
    });
    const startText = $("#ev-start").value;
    if (startText && !Number.isNaN(new Date(startText).getTime())) q.set("start", new Date(startText).toISOString());
    try {
      const a = await api(`/api/v1/events/available?${q}`);
      if (seq !== availableSeq) return; // a newer choice answered first
      setText("#ev-available", `Available for this scope and window: ${fmtPower(Math.abs(a.available_kw))} ${direction}.`);
      $("#ev-available").dataset.kw = String(Math.abs(a.available_kw));
    } catch (err) {
      if (seq === availableSeq) setText("#ev-available", "");
    }
  };
  for (const input of [scopeKind, scopeValue, $("#ev-duration"), $("#ev-start"), ...form.querySelectorAll("input[name=direction]")]) {
    input.addEventListener("change", showAvailable);
  }
  showAvailable();

  const fieldError = (input, errId, message) => {
    setText(`#${errId}`, message || "");
    input.setAttribute("aria-invalid", message ? "true" : "false");
    return !message;
  };

  const validate = () => {
    const kw = Number($("#ev-kw").value);
    const dur = Number($("#ev-duration").value);
    const startText = $("#ev-start").value;
    let ok = true;
    ok = fieldError($("#ev-kw"), "ev-kw-err",
      !$("#ev-kw").value ? "Enter the power to move, in kW." :
      !(kw > 0) ? "Enter a power above 0 kW; pick up or down with the direction." :
      kw > 1e7 ? "At most 10,000,000 kW." : "") && ok;
    ok = fieldError($("#ev-duration"), "ev-duration-err",
      !(dur >= 1 && dur <= 10080 && Number.isInteger(dur)) ? "Enter whole minutes from 1 to 10,080 (7 days)." : "") && ok;
    let start = null;
    if (startText) {
      start = new Date(startText);
      const end = start.getTime() + dur * 60e3;
      ok = fieldError($("#ev-start"), "ev-start-err",
        Number.isNaN(start.getTime()) ? "Enter a date and time, or leave it empty to start now." :
        end <= Date.now() ? "This window is already over: pick a later start, or leave it empty for now." : "") && ok;
    } else fieldError($("#ev-start"), "ev-start-err", "");
    const prio = Number($("#ev-priority").value);
    ok = fieldError($("#ev-priority"), "ev-priority-err",
      !(Number.isInteger(prio) && prio >= 0 && prio <= 100) ? "Enter a whole number from 0 to 100." : "") && ok;
    ok = fieldError(scopeValue, "ev-scope-err",
      scopeKind.value !== "fleet" && !scopeValue.value ? "Pick a value for this scope." : "") && ok;
    if (!ok) return null;
    const direction = form.querySelector("input[name=direction]:checked").value;
    const body = {
      target_kw: direction === "down" ? -kw : kw,
      duration_s: dur * 60,
      scope: scopeKind.value === "fleet" ? "fleet" : `${scopeKind.value}:${scopeValue.value}`,
      priority: prio,
      allow_partial: $("#ev-partial").checked,
    };
    if (start) body.start = start.toISOString();
    return body;
  };

  const showProblem = (err) => {
    const box = $("#ev-problem");
    const p = err instanceof ApiError ? err.problem : { detail: String(err) };
    const items = (p.errors || []).map((e) => el("li", {}, `${e.field}: ${e.message}`));
    const avail = typeof p.available_kw === "number"
      ? el("div", {}, `Available: ${fmtPower(Math.abs(p.available_kw))}. Ask for at most that, or tick "Accept less than asked".`)
      : null;
    box.replaceChildren(el("strong", {}, p.title || "The event was not created"), el("div", {}, p.detail || ""), avail,
      items.length ? el("ul", {}, items) : null);
    box.hidden = false;
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#ev-problem").hidden = true;
    const body = validate();
    if (!body) return;
    const btn = $("#ev-create");
    btn.disabled = true;
    btn.textContent = "Creating…";
    try {
      const created = await api("/api/v1/events", { method: "POST", body });
      window.location.assign(`/events/${encodeURIComponent(created.id)}`);
    } catch (err) {
      showProblem(err);
      btn.disabled = false;
      btn.textContent = "Create event";
    }
  });
}
