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

A push to a large fleet never holds the control loop for long: the plan is built as
columns over the fleet (in a worker thread for an import or an operator's push,
:meth:`SettingsPusher.push_async`), each device's item is a copy of its template's made
when sent, and the queue by gateway goes out in time-boxed steps (:meth:`SettingsPusher.drain`)
between control cycles.

The gateways' answers (accepted with what each function became, rejected with the reason,
or unsupported) are kept per device for ``GET /api/v1/gridcode/settings`` and
``gridflock gridcode status``, and each push and each batch of answers is written to the
audit log. In memory: after a restart the service pushes again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from gridflock.domain.errors import InvalidError
from gridflock.domain.ports import LinkReport, SettingsLink
from gridflock.domain.spec import FleetSpec
from gridflock.gateways.mqtt.codec import settings_item
from gridflock.gateways.mqtt.protocol import MAX_P_KW, DeviceSettings
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


_NONE_ADOPTED: Mapping[str, str] = MappingProxyType({})  # shared: no dict per record


@dataclass(slots=True)
class PushRecord:
    """One device's latest settings and what its gateway answered.

    The protocol item (:attr:`item`) is a copy of its template's (``base``) with this
    device's id, seq and contracted kW, made when sent: a push to 100,000 devices keeps
    one small record per device, no item.
    """

    device: str
    gateway: str
    base: DeviceSettings
    settings_id: str
    seq: int
    up_kw: float
    down_kw: float
    fingerprint: str
    product: str | None
    status: str = "pending"
    reason: str | None = None
    adopted: Mapping[str, str] = field(
        default_factory=lambda: _NONE_ADOPTED
    )  # shared till answered
    detail: str | None = None
    sent_at: float | None = None
    answered_at: float | None = None
    attempts: int = 0

    @property
    def item(self) -> DeviceSettings:
        """The protocol item: the template's, with this device's id, seq and kW.

        Made afresh each time (a few microseconds) and not kept: 100,000 items kept alive
        would make each of Python's full garbage collections take most of a second.
        """
        item = self.base.__copy__()  # validated template: only these fields change
        item.__dict__.update(id=self.settings_id, device=self.device, seq=self.seq)
        if self.base.ffr is not None:
            ffr = self.base.ffr.__copy__()
            ffr.__dict__.update(up_kw=self.up_kw, down_kw=self.down_kw)
            item.__dict__["ffr"] = ffr
        return item

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the API."""
        fw, ffr = self.base.freq_watt, self.base.ffr
        return {
            "device_id": self.device,
            "gateway_id": self.gateway,
            "settings_id": self.settings_id,
            "seq": self.seq,
            "profile": self.base.profile,
            "product": self.product,
            "status": self.status,
            "reason": self.reason,
            "adopted": dict(self.adopted),
            "detail": self.detail,
            "sent_at": self.sent_at,
            "answered_at": self.answered_at,
            "attempts": self.attempts,
            "freq_watt": None if fw is None else fw.model_dump(exclude={"clause"}),
            "ffr": None
            if ffr is None
            else {
                **ffr.model_dump(exclude={"clause"}),
                "up_kw": self.up_kw,
                "down_kw": self.down_kw,
            },
        }


Key = tuple[str, bool, str | None]  # profile, inverter, product (where it applies)


@dataclass(frozen=True)
class _Plan:
    """Every device's share of a push, as columns: gateway, template and contracted kW."""

    device: list[str]
    gateway: list[str]
    kind: list[str]
    key: np.ndarray  # index into ``keys`` per device
    up_kw: np.ndarray
    down_kw: np.ndarray
    keys: list[Key]
    templates: list[dict[str, Any]]


def _kw(x: np.ndarray) -> np.ndarray:
    """Contracted kW within protocol v1's range (NaN: 0)."""
    finite = np.nan_to_num(x.astype(float), nan=0.0, posinf=0.0, neginf=0.0)
    out: np.ndarray = np.clip(finite, 0.0, MAX_P_KW)
    return out


def _plan(
    spec: FleetSpec,
    product: str | None,
    deadband_hz: float | None,
    droop: float | None,
    capacity: Mapping[str, tuple[float, float]] | None,
) -> _Plan:
    """Each device's plan and one settings document per template (profile x class x product).

    Columns over the fleet (pandas), not a loop per device; devices share their template's
    numbers: the documents are built once per template (a fleet of 100,000 devices has a
    handful).
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
    dev = devices["id"].astype(str)
    raw_gw = devices["gateway_id"]
    gw = raw_gw.where(raw_gw.map(lambda g: isinstance(g, str)), "").astype(str)
    kind = devices["kind"].astype(str)
    code = devices["site_id"].astype(str).map(codes).fillna("").astype(str)
    f_nom = code.map({c: p.f_nom_hz for c, p in known_codes.items()})
    inverter = kind.isin(INVERTER_KINDS).to_numpy(bool)
    here = np.zeros(len(dev), bool) if prod is None else (f_nom == prod.f_nom_hz).to_numpy(bool)
    keep = (
        (gw.str.len() > 0).to_numpy(bool)
        & (dev.str.len() <= 256).to_numpy(bool)
        & code.isin(list(known_codes)).to_numpy(bool)  # validation reports sites without one
        & (inverter | here)
    )
    rows = np.flatnonzero(keep)
    frame = pd.DataFrame(
        {"code": code.to_numpy(object)[rows], "inv": inverter[rows], "here": here[rows]}
    )
    group = frame.groupby(["code", "inv", "here"], sort=False).ngroup().to_numpy(np.int64)
    firsts = frame.groupby(["code", "inv", "here"], sort=False).head(1)
    keys: list[Key] = []
    templates: list[dict[str, Any]] = []
    kinds = kind.to_numpy(object)[rows]
    for i, (c, inv, h) in enumerate(firsts.itertuples(index=False)):
        keys.append((str(c), bool(inv), prod.code if h and prod is not None else None))
        templates.append(
            _template(
                str(c),
                str(kinds[firsts.index[i]]),
                bool(inv),
                prod if h else None,
                deadband_hz,
                droop,
            )
        )
    devs = dev.to_numpy(object)[rows].tolist()
    cap = capacity or {}
    pairs = np.array([cap.get(d, (0.0, 0.0)) for d in devs], float).reshape(-1, 2)
    return _Plan(
        devs,
        gw.to_numpy(object)[rows].tolist(),
        kinds.tolist(),
        group,
        _kw(pairs[:, 0]),
        _kw(pairs[:, 1]),
        keys,
        templates,
    )


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
    plan = _plan(spec, product, deadband_hz, droop, capacity)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, dev in enumerate(plan.device):
        doc = {**plan.templates[plan.key[i]], "device_id": dev, "kind": plan.kind[i]}
        if doc["ffr"] is not None:
            up, down = float(plan.up_kw[i]), float(plan.down_kw[i])
            doc["ffr"] = {**doc["ffr"], "up_kw": up, "down_kw": down}
        out[dev] = (plan.gateway[i], doc)
    return out


def _fingerprint(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Prepared:
    """A push built, not yet taken up: its columns and its new records by gateway."""

    columns: pd.DataFrame
    last: pd.DataFrame  # the columns it was compared with
    gone: list[str]  # devices of ``last`` not in this push
    by_gateway: dict[str, dict[str, PushRecord]]
    pushed: int
    devices: int
    unsendable: int


class SettingsPusher:
    """Each device's grid-code settings to its gateway, re-sent until answered.

    What is to be sent waits in a queue by gateway; :meth:`drain` sends whole gateways'
    items until its time budget (``step_s``) is spent, so that a push to a large fleet
    goes out in steps between control cycles (the control loop's drain task, or each
    cycle's report) and never holds the event loop for long. A push of at most
    ``sync_items`` items is sent at once.
    """

    def __init__(
        self,
        link: object,
        clock: Callable[[], float],
        audit: Callable[[str, str, str, dict[str, Any] | None], None] | None = None,
        resend_s: float = 30.0,
        step_s: float = 0.05,
        sync_items: int = 2000,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.link = link
        self.may_send = may_send
        """Whether this process may send now (a hot standby keeps its items queued)."""
        self.clock = clock
        self.audit = audit
        self.resend_s = resend_s
        self.step_s = step_s
        self.sync_items = sync_items
        self.records: dict[str, PushRecord] = {}
        self.product: str | None = None
        self.deadband_hz: float | None = None
        self.droop: float | None = None
        self.counts: Counter[str] = Counter()
        self._scanned = -math.inf  # when the records were last scanned for re-sends
        self._queue: OrderedDict[str, dict[str, PushRecord]] = OrderedDict()  # by gateway
        self._lock = asyncio.Lock()  # one push built at a time (push_async)
        self._queued = 0
        # what each record was built from, as columns: a re-push compares them at once
        self._last = pd.DataFrame(
            {"gateway": [], "fp": [], "up": [], "down": []}, index=pd.Index([], dtype=object)
        )

    @property
    def can_send(self) -> bool:
        """Whether the link carries settings at all (MQTT gateways)."""
        return isinstance(self.link, SettingsLink)

    @property
    def queued(self) -> int:
        """Items waiting to be sent (at most; a newer push may have replaced some)."""
        return self._queued

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
        """Build every device's settings and queue those that changed (all with ``force``).

        ``keep_options``: without a product/deadband/droop given, the last push's stay in
        force (a fleet import keeps the operator's product). Up to ``sync_items`` items
        are sent at once, more in steps (:meth:`drain`). Returns what was pushed, sent
        now and queued. Built here, on the caller's thread: :meth:`push_async` builds
        in a worker thread.
        """
        options = self._options(product, deadband_hz, droop, keep_options)
        prepared = self._prepare(spec, force, options, capacity)
        return self._commit(prepared, options, actor)

    async def push_async(
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
        """:meth:`push`, with the items built in a worker thread: the event loop runs on.

        Only taking the new records up (a dictionary update and the queue by gateway) is
        left to the loop's thread; the sending goes in steps as with :meth:`push`.
        """
        options = self._options(product, deadband_hz, droop, keep_options)
        async with self._lock:
            prepared = await asyncio.to_thread(self._prepare, spec, force, options, capacity)
            return self._commit(prepared, options, actor)

    def _options(
        self, product: str | None, deadband_hz: float | None, droop: float | None, keep: bool
    ) -> tuple[str | None, float | None, float | None]:
        if keep:
            product = product if product is not None else self.product
            deadband_hz = deadband_hz if deadband_hz is not None else self.deadband_hz
            droop = droop if droop is not None else self.droop
        return product, deadband_hz, droop

    def _prepare(
        self,
        spec: FleetSpec,
        force: bool,
        options: tuple[str | None, float | None, float | None],
        capacity: Mapping[str, tuple[float, float]] | None,
    ) -> _Prepared:
        """The push's new records and the columns they came from; changes nothing here.

        Reads the records (their seq) and the last push's columns only, so it may run in a
        worker thread while the loop goes on.
        """
        product, deadband_hz, droop = options
        plan = _plan(spec, product, deadband_hz, droop, capacity)
        now = self.clock()
        base_seq = int(now * 1000)  # increases across restarts without remembering
        bases: list[DeviceSettings | None] = []
        fps: list[str] = []
        for key, doc in zip(plan.keys, plan.templates, strict=True):
            try:
                bases.append(settings_item({**doc, "device_id": "-"}, "-", 0, now))
            except ValueError as e:  # a profile beyond protocol v1's ranges: a bug in the data
                log.error("grid code %s: settings not sent: %s", key[0], e)
                bases.append(None)
            fps.append(_fingerprint(doc))
        sendable = np.array([b is not None for b in bases], bool)[plan.key] if bases else None
        ok = np.ones(len(plan.device), bool) if sendable is None else sendable
        rows = np.flatnonzero(ok)
        new = pd.DataFrame(
            {
                "gateway": np.asarray(plan.gateway, object)[rows],
                "fp": np.asarray(fps, object)[plan.key[rows]] if fps else [],
                "up": plan.up_kw[rows],
                "down": plan.down_kw[rows],
            },
            index=pd.Index(np.asarray(plan.device, object)[rows]),
        )
        if force:
            changed_rows = np.arange(len(new))
        else:  # compared as columns: an unchanged re-push touches no record
            old = self._last.reindex(new.index)
            same = (
                (old["gateway"] == new["gateway"])
                & (old["fp"] == new["fp"])
                & (old["up"] == new["up"])
                & (old["down"] == new["down"])
            ).to_numpy(bool)
            changed_rows = np.flatnonzero(~same)
        last = self._last
        gone = last.index.difference(new.index).tolist()  # left the fleet or its gateway
        batch = uuid.uuid4().hex[:12]  # ids unique per push and device, without a uuid each
        records = self.records
        by_gw: dict[str, dict[str, PushRecord]] = {}
        devs = new.index.to_numpy(object)[changed_rows].tolist()
        gws = new["gateway"].to_numpy(object)[changed_rows].tolist()
        fpv = new["fp"].to_numpy(object)[changed_rows].tolist()
        ups = new["up"].to_numpy(float)[changed_rows].tolist()
        downs = new["down"].to_numpy(float)[changed_rows].tolist()
        keys = plan.key[rows[changed_rows]].tolist()
        for n, (dev, gw, fp, up, down, k) in enumerate(
            zip(devs, gws, fpv, ups, downs, keys, strict=True)
        ):
            old_rec = records.get(dev)
            seq = max(base_seq, old_rec.seq + 1) if old_rec is not None else base_seq
            base = bases[k]
            assert base is not None  # rows of unsendable templates were left out above
            rec = PushRecord(dev, gw, base, f"set-{batch}-{n}", seq, up, down, fp, product)
            group = by_gw.get(gw)
            if group is None:
                group = by_gw[gw] = {}
            group[dev] = rec
        return _Prepared(new, last, gone, by_gw, len(devs), len(plan.device), int((~ok).sum()))

    def _commit(
        self,
        prepared: _Prepared,
        options: tuple[str | None, float | None, float | None],
        actor: str,
    ) -> dict[str, Any]:
        """Take a prepared push up (on the loop's thread), send what fits in a step."""
        self.product, self.deadband_hz, self.droop = options
        self.counts["unsendable"] += prepared.unsendable
        new = prepared.columns
        gone = prepared.gone
        if self._last is not prepared.last:  # another push came in between
            gone = self._last.index.difference(new.index).tolist()
        for dev in gone:  # left the fleet or its gateway
            self.records.pop(dev, None)
        self._last = new
        for group in prepared.by_gateway.values():
            self.records.update(group)
        self._enqueue_groups(prepared.by_gateway)
        sent = self.drain(math.inf if self._queued <= self.sync_items else self.step_s)
        product, deadband_hz, droop = options
        summary = {
            "devices": prepared.devices,
            "pushed": prepared.pushed,
            "sent": sent,
            "queued": self._queued,
            "gateways": len(prepared.by_gateway),
            "product": product,
            "deadband_hz": deadband_hz,
            "droop": droop,
        }
        if prepared.pushed and self.audit is not None:
            self.audit(actor, "gridcode.push", product or "profiles", summary)
        return summary

    def _enqueue_groups(self, by_gw: Mapping[str, dict[str, PushRecord]]) -> None:
        """Queue whole gateways' records (a device's newer record replaces its queued one)."""
        if not isinstance(self.link, SettingsLink):
            return
        q = self._queue
        for gw, group in by_gw.items():
            have = q.get(gw)
            if have is None:
                q[gw] = group
                self._queued += len(group)
            else:
                self._queued += len(group.keys() - have.keys())
                have.update(group)

    def _enqueue(self, recs: list[PushRecord]) -> None:
        """Queue ``recs`` by gateway (a device's newer record replaces its queued one)."""
        if not isinstance(self.link, SettingsLink):
            return
        q = self._queue
        for r in recs:
            group = q.get(r.gateway)
            if group is None:
                group = q[r.gateway] = {}
            if r.device not in group:
                self._queued += 1
            group[r.device] = r

    def drain(self, budget_s: float | None = None) -> int:
        """Send queued items, a gateway at a time, until ``budget_s`` (``step_s``) is spent.

        At least one gateway's items go out per call; how many items were sent.
        """
        budget = self.step_s if budget_s is None else budget_s
        if not self._queue or not isinstance(self.link, SettingsLink) or not self.may_send():
            return 0
        t0 = time.perf_counter()
        now = self.clock()
        sent = 0
        while self._queue:
            gw, group = self._queue.popitem(last=False)
            self._queued -= len(group)
            # a record replaced since (a newer push) or whose device left is not sent
            recs = [r for r in group.values() if self.records.get(r.device) is r]
            if recs and self.link.send_settings(gw, [r.item for r in recs]):
                for r in recs:
                    r.sent_at = now
                    r.attempts += 1
                sent += len(recs)
            if time.perf_counter() - t0 >= budget:
                break
        self.counts["sent"] += sent
        return sent

    def take_report(self, report: LinkReport, now: float) -> None:
        """Answers from the gateways, re-sends to those that came online, and overdue ones."""
        answered: Counter[str] = Counter()
        for v in report.settings:
            rec = self.records.get(v.device_id)
            if rec is None or rec.settings_id != v.settings_id or rec.gateway != v.gateway:
                self.counts["answers_ignored"] += 1  # an old push, or not its gateway
                continue
            rec.status, rec.reason, rec.detail = v.status, v.reason, v.detail
            rec.adopted = dict(v.adopted)
            rec.answered_at = now
            answered[v.reason or v.status] += 1
        if answered and self.audit is not None:
            self.audit("gateways", "gridcode.answers", "settings", dict(answered))
        online = {s.gateway for s in report.statuses if s.status == "online"}
        if online or now - self._scanned >= min(self.resend_s, 5.0):
            # the records are scanned every few seconds, not every cycle
            self._scanned = now
            again = [r for r in self.records.values() if r.gateway in online]
            again += [
                r
                for r in self.records.values()
                if r.status == "pending"
                and r.gateway not in online
                and (r.sent_at is None or now - r.sent_at >= self.resend_s)
                and r.device not in self._queue.get(r.gateway, ())
            ]
            self._enqueue(again)
        self.drain(math.inf if self._queued <= self.sync_items else self.step_s)

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
