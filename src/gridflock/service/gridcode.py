"""Grid-code settings pushed to gateways: built from each site's profile, sent until answered.

:class:`SettingsPusher` (owned by the control loop) turns the fleet into one protocol v1
``settings`` item per device behind a gateway (``gridcode.device_settings`` of the site's
profile: volt-var, volt-watt and frequency-watt for inverters, each with its clause), lays
an optional frequency product over it (its droop and each device's contracted kW as the
``ffr`` part; a deadband or droop given by the operator replaces the profile's
under- and over-frequency ones) and sends them:

- when the fleet is imported or changed (only devices whose settings changed get a new
  seq), when an operator pushes (``POST /api/v1/gridcode/push``, ``gridflock gridcode
  push``: everything again, new seq), and when a gateway comes online (its devices' latest
  settings again, same id and seq: a gateway answers a re-send as before);
- again every ``resend_s`` while unanswered.

The gateways' answers (accepted with what each function became, rejected with the reason,
or unsupported) are kept per device for ``GET /api/v1/gridcode/settings`` and
``gridflock gridcode status``, and each push and each batch of answers is written to the
audit log. In memory: after a restart the service pushes again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridflock.domain.errors import InvalidError
from gridflock.domain.ports import LinkReport, SettingsLink
from gridflock.domain.spec import FleetSpec
from gridflock.gateways.mqtt.codec import settings_item
from gridflock.gateways.mqtt.protocol import MAX_P_KW, DeviceSettings, FfrSetting
from gridflock.gridcode import (
    FrequencyProduct,
    device_settings,
    products,
    profile,
    profiles,
    site_codes,
)

__all__ = ["INVERTER_KINDS", "PushRecord", "SettingsPusher", "settings_documents"]

log = logging.getLogger("gridflock.service")

#: Kinds whose inverters carry a grid code's volt-var, volt-watt and frequency-watt curves.
INVERTER_KINDS = ("pv", "battery", "wind")


@dataclass
class PushRecord:
    """One device's latest settings and what its gateway answered."""

    device: str
    gateway: str
    item: DeviceSettings
    fingerprint: str
    product: str | None
    status: str = "pending"
    reason: str | None = None
    adopted: dict[str, str] = field(default_factory=dict)
    detail: str | None = None
    sent_at: float | None = None
    answered_at: float | None = None
    attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the API."""
        it = self.item
        fw = it.freq_watt
        return {
            "device_id": self.device,
            "gateway_id": self.gateway,
            "settings_id": it.id,
            "seq": it.seq,
            "profile": it.profile,
            "product": self.product,
            "status": self.status,
            "reason": self.reason,
            "adopted": dict(self.adopted),
            "detail": self.detail,
            "sent_at": self.sent_at,
            "answered_at": self.answered_at,
            "attempts": self.attempts,
            "freq_watt": None if fw is None else fw.model_dump(exclude={"clause"}),
            "ffr": None if it.ffr is None else it.ffr.model_dump(exclude={"clause"}),
        }


@dataclass(frozen=True)
class _Planned:
    """One device's share of a push: its gateway, its settings' template and contracted kW."""

    gateway: str
    kind: str
    key: tuple[str, bool, str | None]  # profile, inverter, product (where it applies)
    up_kw: float
    down_kw: float


def _kw(x: float) -> float:
    """A contracted kW within protocol v1's range (NaN: 0)."""
    return min(max(float(x), 0.0), MAX_P_KW) if math.isfinite(x) else 0.0


def _plan(
    spec: FleetSpec,
    product: str | None,
    deadband_hz: float | None,
    droop: float | None,
    capacity: Mapping[str, tuple[float, float]] | None,
) -> tuple[dict[str, _Planned], dict[tuple[str, bool, str | None], dict[str, Any]]]:
    """Each device's plan and one settings document per template (profile x class x product).

    Devices share their template's numbers: the documents are built once per template, not
    once per device (a fleet of 100,000 devices has a handful of templates).
    """
    prod = None
    if product is not None:
        known = products()
        if product not in known:
            raise InvalidError(
                f"unknown frequency product {product!r}; known: {', '.join(sorted(known))}"
            )
        prod = known[product]
    if deadband_hz is not None and not 0 <= deadband_hz <= 2:
        raise InvalidError(f"deadband_hz must be 0..2 Hz, got {deadband_hz}")
    if droop is not None and not 0 < droop <= 0.2:
        raise InvalidError(f"droop must be above 0 and at most 0.2 (20 %), got {droop}")
    sites = spec.sites
    codes = dict(zip(sites["id"].astype(str), site_codes(sites).tolist(), strict=True))
    devices = spec.all_devices()
    known_codes = profiles()
    cap = capacity or {}
    plan: dict[str, _Planned] = {}
    templates: dict[tuple[str, bool, str | None], dict[str, Any]] = {}
    for dev, site, kind, gw in zip(
        devices["id"].astype(str).tolist(),
        devices["site_id"].astype(str).tolist(),
        devices["kind"].astype(str).tolist(),
        devices["gateway_id"].tolist(),
        strict=True,
    ):
        if not isinstance(gw, str) or not gw or len(dev) > 256:
            continue
        inverter = kind in INVERTER_KINDS
        if not inverter and prod is None:
            continue
        code = codes.get(site, "")
        if code not in known_codes:
            continue  # fleet validation reports sites without a code
        here = prod if prod is not None and prod.f_nom_hz == known_codes[code].f_nom_hz else None
        if here is None and not inverter:
            continue
        key = (code, inverter, None if here is None else here.code)
        if key not in templates:
            templates[key] = _template(code, kind, inverter, here, deadband_hz, droop)
        up, down = cap.get(dev, (0.0, 0.0))
        plan[dev] = _Planned(gw, kind, key, _kw(up), _kw(down))
    return plan, templates


def _template(
    code: str,
    kind: str,
    inverter: bool,
    here: FrequencyProduct | None,
    deadband_hz: float | None,
    droop: float | None,
) -> dict[str, Any]:
    """The settings document a template's devices share (device id and kW filled in later)."""
    doc = device_settings(profile(code), "", kind, 0.0, here, 0.0, 0.0)
    if not inverter:
        doc["volt_var"] = doc["volt_watt"] = doc["freq_watt"] = None
    elif deadband_hz is not None or droop is not None:
        fw = dict(doc["freq_watt"])
        for side in ("over", "under"):
            if deadband_hz is not None:
                fw[f"db_{side}_hz"] = deadband_hz
            if droop is not None:
                fw[f"droop_{side}"] = droop
        if fw["db_under_hz"] is None or fw["droop_under"] is None:
            fw["db_under_hz"] = fw["db_under_hz"] or fw["db_over_hz"]
            fw["droop_under"] = fw["droop_under"] or fw["droop_over"]
        fw["clause"] = f"{fw['clause']}; deadband/droop set by the operator"
        doc["freq_watt"] = fw
    return doc


def settings_documents(
    spec: FleetSpec,
    product: str | None = None,
    deadband_hz: float | None = None,
    droop: float | None = None,
    capacity: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{device: (gateway, settings document)}`` for every device behind a gateway.

    Inverters (``INVERTER_KINDS``) get their site profile's curves; with ``product``,
    every device also gets its droop and contracted kW (``capacity``: up, down per device;
    0 without). ``deadband_hz`` / ``droop`` replace the profile's frequency-watt deadband
    and droop, both directions. ``InvalidError`` names an unknown product or a value out
    of range. Sites on a grid of another nominal frequency than the product's get
    their profile's settings without it.
    """
    plan, templates = _plan(spec, product, deadband_hz, droop, capacity)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for dev, p in plan.items():
        doc = {**templates[p.key], "device_id": dev, "kind": p.kind}
        if doc["ffr"] is not None:
            doc["ffr"] = {**doc["ffr"], "up_kw": p.up_kw, "down_kw": p.down_kw}
        out[dev] = (p.gateway, doc)
    return out


def _fingerprint(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


class SettingsPusher:
    """Each device's grid-code settings to its gateway, re-sent until answered."""

    def __init__(
        self,
        link: object,
        clock: Callable[[], float],
        audit: Callable[[str, str, str, dict[str, Any] | None], None] | None = None,
        resend_s: float = 30.0,
    ) -> None:
        self.link = link
        self.clock = clock
        self.audit = audit
        self.resend_s = resend_s
        self.records: dict[str, PushRecord] = {}
        self.product: str | None = None
        self.deadband_hz: float | None = None
        self.droop: float | None = None
        self.counts: Counter[str] = Counter()
        self._scanned = -math.inf  # when the records were last scanned for re-sends

    @property
    def can_send(self) -> bool:
        """Whether the link carries settings at all (MQTT gateways)."""
        return isinstance(self.link, SettingsLink)

    def push(
        self,
        spec: FleetSpec,
        *,
        force: bool = False,
        product: str | None = None,
        deadband_hz: float | None = None,
        droop: float | None = None,
        capacity: Mapping[str, tuple[float, float]] | None = None,
        keep_options: bool = True,
        actor: str = "service",
    ) -> dict[str, Any]:
        """Build every device's settings and send those that changed (all with ``force``).

        ``keep_options``: without a product/deadband/droop given, the last push's stay in
        force (a fleet import keeps the operator's product). Returns what was sent.
        """
        if keep_options:
            product = product if product is not None else self.product
            deadband_hz = deadband_hz if deadband_hz is not None else self.deadband_hz
            droop = droop if droop is not None else self.droop
        plan, templates = _plan(spec, product, deadband_hz, droop, capacity)
        self.product, self.deadband_hz, self.droop = product, deadband_hz, droop
        now = self.clock()
        base_seq = int(now * 1000)  # increases across restarts without remembering
        shared: dict[tuple[str, bool, str | None], tuple[DeviceSettings, str] | None] = {}
        for key, doc in templates.items():
            try:
                shared[key] = (
                    settings_item({**doc, "device_id": "-"}, "-", 0, now),
                    _fingerprint(doc),
                )
            except ValueError as e:  # a profile beyond protocol v1's ranges: a bug in the data
                log.error("grid code %s: settings not sent: %s", key[0], e)
                shared[key] = None
        changed: list[PushRecord] = []
        batch = uuid.uuid4().hex[:12]  # ids unique per push and device, without a uuid each
        fields = {k: dict(b.__dict__) for k, (b, _) in ((k, v) for k, v in shared.items() if v)}
        for n, (dev, p) in enumerate(plan.items()):
            tmpl = shared[p.key]
            if tmpl is None:
                self.counts["unsendable"] += 1
                continue
            base, fp0 = tmpl
            fp = f"{fp0}:{p.up_kw!r}:{p.down_kw!r}"
            old = self.records.get(dev)
            if old is not None and not force and old.fingerprint == fp and old.gateway == p.gateway:
                continue
            seq = max(base_seq, (old.item.seq + 1) if old is not None else 0)
            # copies of a validated template: only id, device, seq and the kW change (each
            # checked here: a device id of the fleet, kW clipped to the protocol's range)
            values = {**fields[p.key], "id": f"set-{batch}-{n}", "device": dev, "seq": seq}
            if base.ffr is not None:
                values["ffr"] = FfrSetting.model_construct(
                    **{**base.ffr.__dict__, "up_kw": p.up_kw, "down_kw": p.down_kw}
                )
            item = DeviceSettings.model_construct(**values)
            rec = PushRecord(dev, p.gateway, item, fp, product)
            self.records[dev] = rec
            changed.append(rec)
        docs = plan
        for dev in set(self.records) - set(docs):  # left the fleet or its gateway
            del self.records[dev]
        sent = self._send(changed, now)
        summary = {
            "devices": len(docs),
            "pushed": len(changed),
            "sent": sent,
            "gateways": len({r.gateway for r in changed}),
            "product": product,
            "deadband_hz": deadband_hz,
            "droop": droop,
        }
        if changed and self.audit is not None:
            self.audit(actor, "gridcode.push", product or "profiles", summary)
        return summary

    def _send(self, recs: list[PushRecord], now: float) -> int:
        """Send ``recs`` grouped by gateway; how many went out."""
        if not recs or not isinstance(self.link, SettingsLink):
            return 0
        by_gw: dict[str, list[PushRecord]] = {}
        for r in recs:
            by_gw.setdefault(r.gateway, []).append(r)
        sent = 0
        for gw, group in by_gw.items():
            if self.link.send_settings(gw, [r.item for r in group]):
                for r in group:
                    r.sent_at = now
                    r.attempts += 1
                sent += len(group)
        self.counts["sent"] += sent
        return sent

    def take_report(self, report: LinkReport, now: float) -> None:
        """Answers from the gateways, re-sends to those that came online, and overdue ones."""
        answered: Counter[str] = Counter()
        for v in report.settings:
            rec = self.records.get(v.device_id)
            if rec is None or rec.item.id != v.settings_id or rec.gateway != v.gateway:
                self.counts["answers_ignored"] += 1  # an old push, or not its gateway
                continue
            rec.status, rec.reason, rec.detail = v.status, v.reason, v.detail
            rec.adopted = dict(v.adopted)
            rec.answered_at = now
            answered[v.reason or v.status] += 1
        if answered and self.audit is not None:
            self.audit("gateways", "gridcode.answers", "settings", dict(answered))
        online = {s.gateway for s in report.statuses if s.status == "online"}
        if not online and now - self._scanned < min(self.resend_s, 5.0):
            return  # the records are scanned every few seconds, not every cycle
        self._scanned = now
        again = [r for r in self.records.values() if r.gateway in online]
        again += [
            r
            for r in self.records.values()
            if r.status == "pending"
            and r.gateway not in online
            and (r.sent_at is None or now - r.sent_at >= self.resend_s)
        ]
        self._send(again, now)

    def status(self) -> dict[str, Any]:
        """Counts by status and reason, and each device's record."""
        recs = sorted(self.records.values(), key=lambda r: r.device)
        by_status = Counter(r.status for r in recs)
        reasons = Counter(r.reason for r in recs if r.reason)
        return {
            "product": self.product,
            "deadband_hz": self.deadband_hz,
            "droop": self.droop,
            "devices": len(recs),
            "by_status": dict(by_status),
            "reasons": dict(reasons),
            "gateways": len({r.gateway for r in recs}),
            "settings": [r.as_dict() for r in recs],
        }


def capacity_of(device_ids: np.ndarray, up_kw: np.ndarray, down_kw: np.ndarray) -> dict[str, Any]:
    """``{device: (up, down)}`` of a frequency-response capacity's arrays [kW]."""
    return {
        str(d): (float(u), float(w))
        for d, u, w in zip(device_ids.tolist(), up_kw.tolist(), down_kw.tolist(), strict=True)
    }
