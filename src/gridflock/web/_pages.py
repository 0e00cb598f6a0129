"""HTML of the dashboard pages: a shared shell and one body per view.

Pages are shells the browser modules in ``static/js`` fill from the API. Anything that
comes from a request or the database is escaped here. Controls that change things
(create, cancel) are only rendered for roles allowed to use them.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from gridflock.domain.auth import Principal, Role
from gridflock.web._assets import asset_version, plotly_version

__all__ = ["NAV", "page", "signin_page"]

NAV = (
    ("/", "Overview", "overview"),
    ("/grid", "Grid", "grid"),
    ("/events", "Events", "events"),
    ("/plan", "Plan", "plan"),
    ("/sites", "Sites", "sites"),
    ("/forecast", "Forecast", "forecast"),
    ("/value", "Value", "value"),
)

_LOGO = (
    '<svg class="logo" viewBox="0 0 24 24" aria-hidden="true" focusable="false">'
    '<path d="M13 2 4 14h7l-1 8 9-12h-7l1-8z"/></svg>'
)


def _head(title: str, *, charts: bool, module: str | None) -> str:
    v = asset_version()
    scripts = ""
    if charts:
        src = f"/assets/vendor/plotly.min.js?v={plotly_version()}"
        scripts += f'<script src="{src}" defer></script>'
    if module:
        scripts += f'<script type="module" src="/assets/static/js/{module}.js?v={v}"></script>'
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Gridflock</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="/assets/static/app.css?v={v}">'
        f"{scripts}</head>"
    )


def page(
    title: str, section: str, principal: Principal, body: str, *, module: str, ident: str = ""
) -> str:
    """A dashboard page: top bar with navigation, connection indicator, user and sign-out."""
    current = ' aria-current="page"'
    links = "".join(
        f'<a href="{href}"{current if key == section else ""}>{label}</a>'
        for href, label, key in NAV
    )
    role = principal.role.value
    return (
        _head(title, charts=True, module=module)
        + f'<body data-page="{escape(module)}" data-role="{escape(role)}" '
        f'data-id="{escape(ident)}">'
        '<a class="skip" href="#main">Skip to content</a>'
        '<header class="topbar">'
        f'<a class="brand" href="/">{_LOGO}<span>Gridflock</span></a>'
        f'<nav class="nav" aria-label="Main">{links}</nav>'
        '<div class="topbar-right">'
        '<span id="conn" class="conn conn-wait" role="status" aria-live="polite">'
        '<span class="dot" aria-hidden="true"></span>'
        '<span class="conn-text">connecting…</span></span>'
        f'<span class="who" title="Signed in with the API key {escape(principal.name)!s}">'
        f'{escape(principal.name)} <span class="role role-{escape(role)}">{escape(role)}</span>'
        "</span>"
        '<form method="post" action="/signout" class="signout">'
        '<button type="submit" class="btn btn-quiet">Sign out</button></form>'
        "</div></header>"
        f'<main id="main" class="main">{body}</main></body></html>'
    )


def signin_page(message: str | None = None) -> str:
    """The sign-in form; ``message`` explains a refused key."""
    alert = (
        f'<p class="alert alert-error" role="alert" id="signin-error">{escape(message)}</p>'
        if message
        else ""
    )
    return (
        _head("Sign in", charts=False, module=None)
        + '<body class="signin-body"><main class="signin" id="main">'
        f'<div class="signin-brand">{_LOGO}<span>Gridflock</span></div>'
        "<h1>Sign in to the plant</h1>"
        '<p class="muted">Use an API key; ask an admin for one '
        "(<code>gridflock apikey create</code>). A viewer key shows everything; an "
        "operator key also creates and cancels events.</p>"
        f"{alert}"
        '<form method="post" action="/signin" class="signin-form" autocomplete="off">'
        '<label for="api_key">API key</label>'
        '<input id="api_key" name="api_key" type="password" required autofocus '
        'spellcheck="false" autocapitalize="off" aria-describedby="key-hint'
        f'{" signin-error" if message else ""}">'
        '<p class="hint" id="key-hint">It is checked once; the browser then keeps only a '
        "session cookie (12 h), never the key.</p>"
        '<button type="submit" class="btn btn-primary">Sign in</button>'
        "</form></main></body></html>"
    )


def can_operate(principal: Principal) -> bool:
    """Whether ``principal`` may create and cancel events."""
    return principal.role.allows(Role.OPERATOR)


OVERVIEW = """
<div class="page-head"><h1>Plant overview</h1>
<p class="muted">The fleet as one power plant. Power &gt; 0 is delivered to the grid.
<span id="asof"></span></p></div>
<section class="kpis" aria-label="Key figures">
 <article class="kpi kpi-main"><h2 id="lbl-total">Net power now</h2>
  <p class="big" aria-labelledby="lbl-total"><span id="total-power">–</span></p>
  <p class="hint" id="total-sign">&nbsp;</p></article>
 <article class="kpi"><h2 id="lbl-up">Flexibility up</h2>
  <p class="big up" aria-labelledby="lbl-up"><span id="flex-up">–</span></p>
  <p class="hint">more export or less import, held <span id="flex-hold-up">–</span></p>
  <p class="hint" id="flex-rest-up">&nbsp;</p></article>
 <article class="kpi"><h2 id="lbl-down">Flexibility down</h2>
  <p class="big down" aria-labelledby="lbl-down"><span id="flex-down">–</span></p>
  <p class="hint">less export or more import, held <span id="flex-hold-down">–</span></p>
  <p class="hint" id="flex-rest-down">&nbsp;</p></article>
 <article class="kpi"><h2 id="lbl-online">Devices online</h2>
  <p class="big" aria-labelledby="lbl-online"><span id="devices-online">–</span></p>
  <p class="hint" id="devices-offline">&nbsp;</p></article>
 <article class="kpi kpi-event"><h2>Active event</h2><div id="active-event">
  <p class="muted">None running.</p></div></article>
</section>
<section class="row row-wide">
 <article class="card"><header class="card-head"><h2>Power by device kind</h2>
  <span class="muted">last 3 h · kW · above zero: to the grid, below: from it</span></header>
  <div id="chart-history" class="chart" role="img"
   aria-label="Stacked power by device kind over the last three hours"></div></article>
 <article class="card"><header class="card-head"><h2>Battery state of charge</h2>
  <span class="muted" id="soc-summary"></span></header>
  <div id="chart-soc" class="chart" role="img"
   aria-label="Online batteries by state of charge"></div></article>
</section>
<section class="row row-3">
 <article class="card"><header class="card-head"><h2>Flexibility by hold time</h2>
  <span class="muted">kW the fleet can hold within limits · left: not held by events</span>
  </header>
  <table class="table" id="flex-table"><thead><tr><th scope="col">Hold for</th>
  <th scope="col" class="num">Up</th><th scope="col" class="num">Up left</th>
  <th scope="col" class="num">Down</th><th scope="col" class="num">Down left</th></tr></thead>
  <tbody></tbody></table></article>
 <article class="card"><header class="card-head"><h2>Now by device kind</h2></header>
  <table class="table" id="kind-table"><thead><tr><th scope="col">Kind</th>
  <th scope="col" class="num">Online</th><th scope="col" class="num">Power</th>
  <th scope="col" class="num">Up</th><th scope="col" class="num">Down</th></tr></thead>
  <tbody></tbody></table>
  <p class="hint" id="protocol-summary"></p></article>
 <article class="card"><header class="card-head"><h2>Active event: target vs delivered</h2>
  </header><div id="chart-event" class="chart chart-sm" role="img"
   aria-label="Target against delivered power of the active event"></div></article>
</section>
"""

GRID = """
<div class="page-head"><h1>Grid</h1>
<p class="muted">Sites by position and the grid nodes they hang off, against their limits.</p>
</div>
<section class="row row-grid">
 <article class="card"><header class="card-head"><h2>Sites</h2>
  <span class="muted" id="map-note"></span>
  <label class="inline">Colour by
   <select id="map-colour"><option value="power">net power</option>
   <option value="online">devices online</option></select></label></header>
  <div id="chart-map" class="chart chart-tall" role="img"
   aria-label="Sites placed by latitude and longitude"></div></article>
 <article class="card"><header class="card-head"><h2>Grid nodes</h2>
  <span class="muted">load against limit · ≥ 90 % highlighted</span></header>
  <table class="table" id="node-table"><thead><tr><th scope="col">Node</th>
  <th scope="col" class="num">Load</th><th scope="col" class="num">Limit</th>
  <th scope="col">Utilisation</th><th scope="col" class="num">Peak 24 h</th>
  <th scope="col" class="num">Sites</th></tr></thead><tbody></tbody></table>
  <p class="hint">Peak 24 h: highest utilisation over the last day (minute samples), where the
  fleet pushed against the limit; rows at 90 % or more are highlighted.
  Load &gt; 0 is export upstream; the limit shown is the one in that direction.</p>
 </article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>Operating envelopes</h2>
  <span class="muted">the grid operator's limits in force and upcoming · kW</span></header>
  <table class="table" id="envelope-table"><thead><tr><th scope="col">Target</th>
  <th scope="col">From</th><th scope="col">To</th><th scope="col" class="num">Import ≤</th>
  <th scope="col" class="num">Export ≤</th><th scope="col">Kind</th><th scope="col">Source</th>
  <th scope="col">Now</th></tr></thead><tbody></tbody></table>
  <p class="hint">Dispatch, plans and flexibility keep min(static limit, envelope); where
  envelopes overlap, the newest of one source wins and different sources all hold
  (docs/envelopes.md). §14a: never below 4.2 kW per controllable device.</p>
 </article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>Held by their envelope</h2>
  <span class="muted" id="hold-summary">sites brought back inside an envelope · kW</span></header>
  <table class="table" id="hold-table"><thead><tr><th scope="col">Site</th>
  <th scope="col" class="num">Breach</th><th scope="col" class="num">Left</th>
  <th scope="col" class="num">Devices</th><th scope="col" class="num">Moved</th>
  <th scope="col">Since</th></tr></thead><tbody></tbody></table>
  <p class="hint">With no event or plan on them, sites past an envelope in force are held
  inside it each control cycle: batteries first, then flexible loads, PV curtailed last.
  Breach &gt; 0 is export past the export limit, &lt; 0 import past the import limit.</p>
 </article>
</section>
"""

EVENTS_HEAD = """
<div class="page-head"><h1>Events</h1>
<p class="muted">Requests for the fleet to move its power, and how well it followed.</p></div>
<section class="row {row}">
"""

EVENT_FORM = """
 <article class="card"><header class="card-head"><h2>New event</h2></header>
 <form id="event-form" class="form" novalidate>
  <fieldset class="field"><legend>Direction</legend>
   <label class="radio"><input type="radio" name="direction" value="up" checked>
    Up <span class="muted">(more export / less import)</span></label>
   <label class="radio"><input type="radio" name="direction" value="down">
    Down <span class="muted">(absorb: less export / more import)</span></label></fieldset>
  <div class="field"><label for="ev-kw">Power [kW]</label>
   <input id="ev-kw" name="kw" type="number" min="0.1" step="any" required
    inputmode="decimal" aria-describedby="ev-kw-err">
   <p class="field-error" id="ev-kw-err" aria-live="polite"></p></div>
  <div class="field"><label for="ev-scope-kind">Scope</label>
   <div class="pair"><select id="ev-scope-kind" name="scope_kind">
    <option value="fleet">Whole fleet</option><option value="grid_node">Grid node</option>
    <option value="program">Program</option><option value="region">Region</option></select>
   <select id="ev-scope-value" name="scope_value" aria-label="Scope value" hidden></select>
   </div><p class="field-error" id="ev-scope-err" aria-live="polite"></p></div>
  <div class="field"><label for="ev-start">Start <span class="muted">(your local time;
   empty: now)</span></label>
   <input id="ev-start" name="start" type="datetime-local" aria-describedby="ev-start-err">
   <p class="field-error" id="ev-start-err" aria-live="polite"></p></div>
  <div class="field"><label for="ev-duration">Duration [min]</label>
   <input id="ev-duration" name="duration" type="number" min="1" max="10080" step="1"
    value="30" required aria-describedby="ev-duration-err">
   <p class="field-error" id="ev-duration-err" aria-live="polite"></p></div>
  <div class="field"><label for="ev-priority">Priority <span class="muted">(0-100; higher
   is served first)</span></label>
   <input id="ev-priority" name="priority" type="number" min="0" max="100" step="1"
    value="50" required aria-describedby="ev-priority-err">
   <p class="field-error" id="ev-priority-err" aria-live="polite"></p></div>
  <p class="hint" id="ev-available" aria-live="polite"></p>
  <div class="field"><label class="radio"><input type="checkbox" id="ev-partial"
   name="allow_partial"> Accept less than asked if the scope cannot deliver it all</label></div>
  <p class="hint" id="ev-flex-hint"></p>
  <div id="ev-problem" class="alert alert-error" role="alert" hidden></div>
  <button type="submit" class="btn btn-primary" id="ev-create">Create event</button>
 </form></article>
"""

EVENTS_LIST = """
 <article class="card"><header class="card-head"><h2>All events</h2>
  <label class="inline">Status <select id="ev-filter"><option value="">any</option>
  <option>scheduled</option><option>active</option><option>completed</option>
  <option>cancelled</option><option>failed</option></select></label></header>
  <table class="table" id="events-table"><thead><tr><th scope="col">Event</th>
  <th scope="col">Status</th><th scope="col">Scope</th>
  <th scope="col" class="num">Priority</th><th scope="col" class="num">Target</th>
  <th scope="col" class="num">Delivered</th><th scope="col">Window</th>
  <th scope="col">By</th></tr></thead><tbody></tbody></table>
  <div class="pager" id="events-pager"></div></article>
</section>
"""

EVENT = """
<div class="page-head"><p class="crumbs"><a href="/events">Events</a> /</p>
<h1><span id="ev-id">{ident}</span> <span id="ev-status" class="status">…</span></h1>
<p class="muted" id="ev-meta"></p>{actions}</div>
<section class="kpis kpis-6" aria-label="Event figures">
 <article class="kpi"><h2>Target</h2><p class="big" id="ev-target">–</p></article>
 <article class="kpi"><h2 id="ev-delivered-label">Delivered now</h2>
  <p class="big" id="ev-delivered">–</p></article>
 <article class="kpi"><h2>Delivered</h2><p class="big" id="ev-pct">–</p>
  <p class="hint" id="ev-pct-hint">mean over the window so far</p></article>
 <article class="kpi"><h2>Tracking error</h2><p class="big" id="ev-rmse">–</p>
  <p class="hint">RMS, % of target</p></article>
 <article class="kpi"><h2>Time to 90 %</h2><p class="big" id="ev-t90">–</p></article>
 <article class="kpi"><h2>Non-responders</h2><p class="big" id="ev-nonresp">–</p>
  <p class="hint" id="ev-cmds"></p></article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>Target vs delivered</h2>
  <a class="btn btn-quiet" id="ev-csv" href="/api/v1/events/{ident_url}/performance?format=csv"
   download>Export CSV</a></header>
  <div id="chart-perf" class="chart chart-tall" role="img"
   aria-label="Target against delivered power over the event"></div></article>
</section>
<section class="settle" id="settlement" aria-labelledby="st-title">
<div class="card"><header class="card-head"><h2 id="st-title">Settlement</h2>
 <span class="muted">from the sites' meters against a baseline: delivered = actual − baseline
  (&gt; 0: less import or more export)</span>
 <label class="inline" for="st-method">Baseline
  <select id="st-method"><option value="">recommended</option></select></label>
 <a class="btn btn-quiet" id="st-csv" href="/api/v1/events/{ident_url}/statement?format=csv"
  download>Statement CSV</a>
 <a class="btn btn-quiet" id="st-json" href="/api/v1/events/{ident_url}/statement?format=json"
  download="statement-{ident}.json">JSON</a></header>
 <p id="st-plain" class="statement" role="status">Loading the statement…</p>
 <p id="st-problem" class="alert alert-error" role="alert" hidden></p>
 <ul id="st-notes" class="notes"></ul>
</div>
<section class="kpis kpis-6" aria-label="Settled figures">
 <article class="kpi"><h2>Delivered (settled)</h2><p class="big" id="st-kw">–</p>
  <p class="hint" id="st-kw-u">&nbsp;</p></article>
 <article class="kpi"><h2>Energy</h2><p class="big" id="st-kwh">–</p>
  <p class="hint" id="st-kwh-u">&nbsp;</p></article>
 <article class="kpi"><h2>Responders</h2><p class="big" id="st-resp">–</p>
  <p class="hint" id="st-nonresp">&nbsp;</p></article>
 <article class="kpi"><h2>Rewards</h2><p class="big" id="st-reward">–</p>
  <p class="hint" id="st-rate">&nbsp;</p></article>
 <article class="kpi"><h2>Peaker avoided</h2><p class="big" id="st-mwh">–</p>
  <p class="hint" id="st-mw">&nbsp;</p></article>
 <article class="kpi"><h2>CO₂ avoided</h2><p class="big" id="st-co2">–</p>
  <p class="hint" id="st-factor">&nbsp;</p></article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>Baseline vs actual</h2>
  <span class="muted" id="st-chart-note">fleet total per interval · kW</span></header>
  <div id="chart-baseline" class="chart chart-tall" role="img"
   aria-label="Baseline against actual net power of the event's sites"></div></article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>Every method</h2>
  <span class="muted">accuracy: error on recent days without an event (the truth is zero)</span>
  </header>
  <table class="table" id="st-methods"><thead><tr><th scope="col">Method</th>
  <th scope="col" class="num">Delivered</th><th scope="col" class="num">± (conf.)</th>
  <th scope="col" class="num">Energy</th><th scope="col" class="num">Bias</th>
  <th scope="col" class="num">RMSE</th></tr></thead><tbody></tbody></table></article>
</section>
<section class="row row-wide">
 <article class="card"><header class="card-head"><h2>Sites league table</h2>
  <span class="muted" id="st-league-note">best delivery first</span></header>
  <table class="table" id="st-league"><thead><tr><th scope="col" class="num">#</th>
  <th scope="col">Site</th><th scope="col">Grid node</th><th scope="col">Status</th>
  <th scope="col" class="num">Delivered</th><th scope="col" class="num">Energy</th>
  <th scope="col" class="num">Share</th><th scope="col" class="num">Reward</th></tr></thead>
  <tbody></tbody></table></article>
 <article class="card"><header class="card-head"><h2>Non-responders</h2>
  <span class="muted" id="st-nr-note"></span></header>
  <table class="table" id="st-nonresponders"><thead><tr><th scope="col">Site</th>
  <th scope="col">Grid node</th><th scope="col" class="num">Delivered</th>
  <th scope="col" class="num">Data</th></tr></thead><tbody></tbody></table></article>
</section>
</section>
"""

EVENT_ACTIONS = """
<div class="actions" id="ev-actions" hidden>
 <button type="button" class="btn btn-danger" id="ev-cancel">Cancel event</button>
 <span id="ev-confirm" hidden>Stop this event and release its devices?
  <button type="button" class="btn btn-danger" id="ev-cancel-yes">Yes, cancel it</button>
  <button type="button" class="btn btn-quiet" id="ev-cancel-no">Keep it</button></span>
 <span id="ev-cancel-problem" class="alert alert-error" role="alert" hidden></span>
</div>
"""

SITES = """
<div class="page-head"><h1>Sites</h1>
<p class="muted">Search and filter the sites of the fleet; open one for its devices.</p></div>
<form class="filters card" id="site-filters" role="search">
 <div class="field"><label for="f-q">Site id contains</label>
  <input id="f-q" name="q" type="search" placeholder="e.g. 00012"></div>
 <div class="field"><label for="f-node">Grid node</label>
  <select id="f-node" name="grid_node"><option value="">any</option></select></div>
 <div class="field"><label for="f-program">Program</label>
  <select id="f-program" name="program"><option value="">any</option></select></div>
 <div class="field"><label for="f-region">Region</label>
  <select id="f-region" name="region"><option value="">any</option></select></div>
 <p class="muted" id="sites-count" aria-live="polite"></p>
</form>
<article class="card">
 <table class="table" id="sites-table"><thead><tr><th scope="col">Site</th>
 <th scope="col">Grid node</th><th scope="col">Program</th><th scope="col">Region</th>
 <th scope="col" class="num">Devices online</th><th scope="col" class="num">Net power</th>
 <th scope="col" class="num">Import / export limit</th></tr></thead><tbody></tbody></table>
 <div class="pager" id="sites-pager"></div></article>
"""

SITE = """
<div class="page-head"><p class="crumbs"><a href="/sites">Sites</a> /</p>
<h1 id="site-id">{ident}</h1><p class="muted" id="site-meta"></p></div>
<section class="kpis kpis-4" aria-label="Site figures">
 <article class="kpi"><h2>Net power now</h2><p class="big" id="site-power">–</p>
  <p class="hint" id="site-sign">&nbsp;</p></article>
 <article class="kpi"><h2>Devices online</h2><p class="big" id="site-online">–</p></article>
 <article class="kpi"><h2>Connection limits</h2><p class="big" id="site-limits">–</p>
  <p class="hint">import / export</p></article>
 <article class="kpi"><h2>Dispatch</h2><p class="big" id="site-optout">–</p></article>
</section>
<section class="row row-wide">
 <article class="card"><header class="card-head"><h2>History</h2>
  <span class="muted">last 3 h · 10-s means · kW</span></header>
  <div id="chart-site" class="chart" role="img"
   aria-label="Power of the site and of each device over the last three hours"></div></article>
 <article class="card"><header class="card-head"><h2>Devices</h2>
  <span class="muted">live</span></header>
  <table class="table" id="devices-table"><thead><tr><th scope="col">Device</th>
  <th scope="col" class="num">Power</th><th scope="col" class="num">SoC</th>
  <th scope="col">Status</th></tr></thead><tbody></tbody></table></article>
</section>
<article class="card"><header class="card-head"><h2>Commands received</h2>
 <span class="muted">latest first, with the device's acknowledgement</span></header>
 <table class="table" id="commands-table"><thead><tr><th scope="col">Issued</th>
 <th scope="col">Device</th><th scope="col">Event</th><th scope="col" class="num">Setpoint</th>
 <th scope="col">Valid until</th><th scope="col">Ack</th></tr></thead><tbody></tbody></table>
</article>
"""


VALUE = """
<div class="page-head"><h1>Value of the year</h1>
<p class="muted">Completed events settled on their recommended baseline: energy delivered,
rewards paid and the fossil peaker the plant made unnecessary.</p>
<form class="inline" id="year-form"><label for="year">Year</label>
 <select id="year" name="year"></select></form></div>
<p id="year-problem" class="alert alert-error" role="alert" hidden></p>
<section class="kpis kpis-6" aria-label="The year's value">
 <article class="kpi"><h2>Events</h2><p class="big" id="y-events">–</p>
  <p class="hint" id="y-up">&nbsp;</p></article>
 <article class="kpi"><h2>Delivered</h2><p class="big" id="y-delivered">–</p>
  <p class="hint">at the meters, up events</p></article>
 <article class="kpi"><h2>Peaker generation avoided</h2><p class="big" id="y-avoided">–</p>
  <p class="hint">at the plant, losses included</p></article>
 <article class="kpi"><h2>CO₂ avoided</h2><p class="big" id="y-co2">–</p>
  <p class="hint">marginal emission factor</p></article>
 <article class="kpi"><h2>Peak capacity</h2><p class="big" id="y-mw">–</p>
  <p class="hint" id="y-mw-max">&nbsp;</p></article>
 <article class="kpi"><h2>Rewards paid</h2><p class="big" id="y-rewards">–</p>
  <p class="hint" id="y-methods">&nbsp;</p></article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>By month</h2>
  <span class="muted">MWh of peaker generation avoided · t CO₂</span></header>
  <div id="chart-year" class="chart chart-tall" role="img"
   aria-label="Peaker generation and CO2 avoided per month"></div></article>
</section>
"""


def value_body() -> str:
    """The value of a year."""
    return VALUE


def overview_body() -> str:
    """The plant overview."""
    return OVERVIEW


def grid_body() -> str:
    """The grid view."""
    return GRID


def events_body(principal: Principal) -> str:
    """The event list, with the create form for operators."""
    if can_operate(principal):
        return EVENTS_HEAD.format(row="row-form") + EVENT_FORM + EVENTS_LIST
    return EVENTS_HEAD.format(row="") + EVENTS_LIST


def event_body(principal: Principal, event_id: str) -> str:
    """One event; the cancel control for operators."""
    actions = EVENT_ACTIONS if can_operate(principal) else ""
    return EVENT.format(
        ident=escape(event_id), ident_url=escape(quote(event_id, safe="")), actions=actions
    )


PLAN = """
<div class="page-head"><h1>Plan</h1>
<p class="muted" id="ap-meta">The autopilot's plan for the fleet's storage, what it proposes
ahead, and every decision with its reason.</p>{actions}</div>
<section class="kpis kpis-4" aria-label="Autopilot figures">
 <article class="kpi"><h2>Autopilot</h2><p class="big" id="ap-mode">–</p>
  <p class="hint" id="ap-next"></p></article>
 <article class="kpi"><h2>Peak import</h2><p class="big" id="ap-peak">–</p>
  <p class="hint" id="ap-peak-hint">forecast → planned, next 24 h</p></article>
 <article class="kpi"><h2>Pending proposals</h2><p class="big" id="ap-pending">–</p></article>
 <article class="kpi"><h2>Planned</h2><p class="big" id="ap-planned">–</p></article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>Power by kind</h2>
  <span class="muted">kW, + import · price on the right · support windows shaded</span></header>
  <div id="chart-plan" class="chart chart-tall" role="img"
   aria-label="Forecast import, battery charge and discharge, import with the plan, prices"></div>
 </article>
</section>
<section class="row">
 <article class="card"><header class="card-head"><h2>State of charge</h2>
  <span class="muted">share of the storage planned on</span></header>
  <div id="chart-soc" class="chart" role="img"
   aria-label="Planned state of charge of the fleet's batteries"></div></article>
</section>
<article class="card"><header class="card-head"><h2>Proposed events</h2>
 <label class="inline">Status <select id="ap-filter"><option value="">any</option>
 <option selected>pending</option><option>executed</option><option>vetoed</option>
 <option>superseded</option><option>expired</option><option>failed</option></select></label>
 </header>
 <div id="ap-problem" class="alert alert-error" role="alert" hidden></div>
 <table class="table" id="proposals-table"><thead><tr><th scope="col">Window</th>
 <th scope="col">Action</th><th scope="col" class="num">Target</th>
 <th scope="col" class="num">Energy</th><th scope="col">Policy</th><th scope="col">Reason</th>
 <th scope="col">Status</th><th scope="col">Decide</th></tr></thead><tbody></tbody></table>
</article>
<article class="card"><header class="card-head"><h2>Decision log</h2>
 <span class="muted">newest first</span></header>
 <table class="table" id="decisions-table"><thead><tr><th scope="col">When</th>
 <th scope="col">What</th><th scope="col">By</th><th scope="col">Proposal</th>
 <th scope="col">Why</th></tr></thead><tbody></tbody></table>
 <div class="pager" id="decisions-pager"></div></article>
"""

PLAN_ACTIONS = """
<div class="actions"><button type="button" class="btn btn-quiet" id="ap-replan">Re-plan now
</button></div>
"""


def plan_body(principal: Principal) -> str:
    """The autopilot's plan, proposals (approve and veto for operators) and decision log."""
    return PLAN.format(actions=PLAN_ACTIONS if can_operate(principal) else "")


FORECAST = """
<div class="page-head"><h1>Forecast</h1>
<p class="muted">What the plant expects: quantile bands (P10&ndash;P90, P50) against what
happened, and the windows in which the grid will need the plant. Power &gt; 0 is delivered to
the grid. <span id="fc-state" role="status" aria-live="polite"></span></p></div>
<section class="row">
 <article class="card"><header class="card-head"><h2 id="fc-title">Forecast</h2>
  <span class="muted" id="fc-issued"></span>
  <label class="inline">Horizon <select id="fc-horizon">
   <option value="day_ahead">day-ahead</option><option value="intraday">intraday</option>
   <option value="next_48h">next 48 h (flexibility)</option>
   </select></label>
  <label class="inline">Quantity <select id="fc-quantity"><option value="net">net</option>
   </select></label>
  <label class="inline">Group <select id="fc-group"><option value="fleet|fleet">fleet</option>
   </select></label></header>
  <div id="chart-forecast" class="chart chart-tall" role="img"
   aria-label="Forecast quantile band and median against measured power"></div>
  <p class="hint">Band: P10 to P90 (8 times in 10 the outcome should fall inside); line: P50;
  dots: measured. Shaded columns: need-for-support windows of this group.</p></article>
</section>
<section class="row row-grid">
 <article class="card"><header class="card-head"><h2>Need for support</h2>
  <span class="muted" id="win-note"></span></header>
  <table class="table" id="win-table"><thead><tr><th scope="col">Scope</th>
  <th scope="col">Window</th><th scope="col" class="num">Probability</th>
  <th scope="col" class="num">kW needed (P50 / P90)</th><th scope="col">Why</th></tr></thead>
  <tbody></tbody></table></article>
 <article class="card"><header class="card-head"><h2>Models</h2>{retrain}</header>
  <table class="table" id="model-table"><thead><tr><th scope="col">Version</th>
  <th scope="col">Trained</th><th scope="col">Data</th>
  <th scope="col" class="num">Skill</th><th scope="col" class="num">P10&ndash;P90 cover</th>
  </tr></thead><tbody></tbody></table>
  <p class="hint">Skill: reduction of the mean absolute error against a seasonal naive
  forecast (same time last week) on held-out days; cover: share of outcomes inside the
  P10&ndash;P90 band (80 % is right).</p>
  <p class="alert alert-error" id="fc-error" role="alert" hidden></p></article>
</section>
"""


def forecast_body(principal: Principal) -> str:
    """The forecast view; the retrain button only for operators and admins."""
    retrain = (
        '<button type="button" class="btn" id="fc-retrain">Retrain now</button>'
        if can_operate(principal)
        else ""
    )
    return FORECAST.replace("{retrain}", retrain)


def sites_body() -> str:
    """Sites search."""
    return SITES


def site_body(site_id: str) -> str:
    """One site."""
    return SITE.format(ident=escape(site_id))
