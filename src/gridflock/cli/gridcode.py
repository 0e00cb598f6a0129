"""``gridflock gridcode``: push grid-code settings to the gateways, and see their answers.

Both talk to the running service's API (``--url``, an API key in ``--api-key`` or
``GRIDFLOCK_API_KEY``): the service owns the connection to the gateways.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gridflock.cli._app import app, fail, out

gridcode_app = typer.Typer(
    help="Grid-code settings pushed to the gateways (profiles, frequency products).",
    no_args_is_help=True,
)
app.add_typer(gridcode_app, name="gridcode")

Url = Annotated[str, typer.Option(help="The running service's base URL.", envvar="GRIDFLOCK_URL")]
Key = Annotated[
    str | None,
    typer.Option(
        help="API key (operator for push, viewer for status).", envvar="GRIDFLOCK_API_KEY"
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _call(method: str, url: str, key: str | None, path: str, body: Any = None) -> Any:
    """The API's JSON answer, or a clear failure (unreachable, refused, problem detail)."""
    import httpx

    if not key:
        fail("give an API key: --api-key or GRIDFLOCK_API_KEY (gridflock apikey create)")
    try:
        r = httpx.request(
            method,
            url.rstrip("/") + "/api/v1" + path,
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )
    except httpx.HTTPError as e:
        fail(f"cannot reach the service at {url}: {e}; is it running (gridflock serve)?")
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail") or r.text
        except ValueError:
            detail = r.text
        fail(f"the service refused ({r.status_code}): {str(detail)[:500]}", 1)
    return r.json()


@gridcode_app.command("push")
def push(
    url: Url = "http://127.0.0.1:8000",
    api_key: Key = None,
    product: Annotated[
        str | None,
        typer.Option(help="Frequency product whose droop and contracted kW go too (GB-DC...)."),
    ] = None,
    deadband_hz: Annotated[
        float | None,
        typer.Option(min=0, max=2, help="Replace the profiles' frequency-watt deadband [Hz]."),
    ] = None,
    droop: Annotated[
        float | None,
        typer.Option(min=0.001, max=0.2, help="Replace the profiles' droop [1] (0.05: 5 %)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Push every device's grid-code settings to its gateway again (new seq)."""
    body = {"product": product, "deadband_hz": deadband_hz, "droop": droop}
    r = _call("POST", url, api_key, "/gridcode/push", body)
    if as_json:
        out.print_json(json.dumps(r))
        return
    out.print(
        f"pushed {r['pushed']} device setting(s) to {r['gateways']} gateway(s) "
        f"({r['sent']} sent now, the rest re-sent until answered)"
        + (f"; product {r['product']}" if r["product"] else ""),
        highlight=False,
    )


@gridcode_app.command("status")
def status(
    url: Url = "http://127.0.0.1:8000",
    api_key: Key = None,
    as_json: Json = False,
    all_: Annotated[
        bool, typer.Option("--all", help="List every device, not only those not accepted.")
    ] = False,
) -> None:
    """The settings pushed and each gateway's answer: accepted, rejected (why), unsupported."""
    from rich.table import Table

    r = _call("GET", url, api_key, "/gridcode/settings")
    if as_json:
        out.print_json(json.dumps(r))
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r["by_status"].items())) or "none"
    out.print(
        f"{r['devices']} device(s) behind {r['gateways']} gateway(s): {counts}"
        + (f"; product {r['product']}" if r["product"] else ""),
        highlight=False,
    )
    rows = [s for s in r["settings"] if all_ or s["status"] != "accepted"]
    if not rows:
        return
    table = Table(show_edge=False)
    for col in ("device", "gateway", "profile", "seq", "status", "reason", "adopted"):
        table.add_column(col)
    for s in rows:
        adopted = ", ".join(f"{k}: {v}" for k, v in s["adopted"].items())
        table.add_row(
            s["device_id"],
            s["gateway_id"],
            s["profile"],
            str(s["seq"]),
            s["status"],
            s["reason"] or "",
            adopted,
        )
    out.print(table)
