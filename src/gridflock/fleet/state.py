"""The columnar fleet state: every device's capability and live values as NumPy arrays.

Devices are stored grouped by kind (``kind_slices``) so per-kind formulas run on
contiguous slices. One row per device; a ``pandas.Index`` maps ids to rows so a
telemetry batch of any size is applied with a single vectorised lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from gridflock.domain.errors import InvalidError, UnknownDeviceError, clip
from gridflock.domain.events import Scope
from gridflock.domain.kinds import CONTROLLABLE, DeviceKind
from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray, TelemetryBatch
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.groups import GroupIndex, NodeGroups

__all__ = ["EXTRA_FIELDS", "ApplyResult", "FleetState", "GridTopology"]

#: Telemetry ``extras`` the state keeps, each into the array of the same name.
EXTRA_FIELDS = ("t_in_c", "t_out_c", "cop", "t_tank_c", "draw_kw", "e_need_kwh", "departure_ts")

KIND_ORDER = tuple(DeviceKind)


@dataclass(frozen=True)
class GridTopology:
    """Grid nodes and sites as index arrays.

    ``ancestors[j, k]`` is the index of node ``j``'s k-th ancestor (column 0 is ``j``
    itself) or -1 past the root, so a site's chain of nodes is one row lookup.
    """

    node_ids: StrArray
    node_kind: StrArray
    limit_import_kw: FloatArray
    limit_export_kw: FloatArray
    ancestors: IntArray
    site_ids: StrArray
    site_node: IntArray
    site_import_limit_kw: FloatArray
    site_export_limit_kw: FloatArray
    site_opt_out: BoolArray
    site_lat: FloatArray
    site_lon: FloatArray
    site_program: StrArray
    site_region: StrArray

    @property
    def n_nodes(self) -> int:
        """Number of grid nodes."""
        return len(self.node_ids)

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return len(self.site_ids)

    @property
    def depth(self) -> int:
        """Number of ancestor levels (columns of ``ancestors``)."""
        return int(self.ancestors.shape[1])

    @cached_property
    def _site_levels(self) -> tuple[GroupIndex, ...]:
        anc = self.ancestors[self.site_node]
        return tuple(
            GroupIndex.of(np.where(anc[:, k] >= 0, anc[:, k], self.n_nodes), self.n_nodes + 1)
            for k in range(self.depth)
        )

    def node_flow_kw(self, site_p_kw: FloatArray) -> FloatArray:
        """Power each node carries from its sites [kW, + towards the upstream grid]."""
        flow = np.zeros(self.n_nodes + 1)
        for level in self._site_levels:
            flow += level.sum(site_p_kw)
        return flow[: self.n_nodes]

    @staticmethod
    def from_spec(spec: FleetSpec) -> GridTopology:
        """Index the grid nodes and sites of ``spec``."""
        nodes = spec.grid_nodes
        node_ids = nodes["id"].to_numpy(dtype=object)
        pos = pd.Index(node_ids)
        parent = pos.get_indexer(nodes["parent"].to_numpy(dtype=object))
        chain = [np.arange(len(node_ids))]
        while True:
            prev = chain[-1]
            nxt = np.where(prev >= 0, parent[np.maximum(prev, 0)], -1)
            if (nxt < 0).all() or len(chain) > 32:
                break
            chain.append(nxt)
        sites = spec.sites
        return GridTopology(
            node_ids=node_ids,
            node_kind=nodes["kind"].to_numpy(dtype=object),
            limit_import_kw=nodes["limit_import_kw"].to_numpy(dtype=float),
            limit_export_kw=nodes["limit_export_kw"].to_numpy(dtype=float),
            ancestors=np.stack(chain, axis=1).astype(np.int64),
            site_ids=sites["id"].to_numpy(dtype=object),
            site_node=pos.get_indexer(sites["grid_node"].to_numpy(dtype=object)).astype(np.int64),
            site_import_limit_kw=sites["import_limit_kw"].to_numpy(dtype=float),
            site_export_limit_kw=sites["export_limit_kw"].to_numpy(dtype=float),
            site_opt_out=sites["opt_out"].to_numpy(dtype=bool).copy(),
            site_lat=sites["lat"].to_numpy(dtype=float),
            site_lon=sites["lon"].to_numpy(dtype=float),
            site_program=sites["program"].to_numpy(dtype=object),
            site_region=sites["region"].to_numpy(dtype=object),
        )


@dataclass(frozen=True)
class ApplyResult:
    """What became of a telemetry batch: rows applied, unknown devices, stale readings."""

    applied: int
    unknown: int
    stale: int
    unknown_ids: tuple[str, ...] = ()


def _col(
    frames: dict[DeviceKind, pd.DataFrame],
    n: int,
    spec_cols: dict[DeviceKind, str],
    default: float = np.nan,
) -> FloatArray:
    """Concatenate one attribute over kinds, ``default`` where a kind lacks it."""
    parts = []
    for kind in KIND_ORDER:
        df = frames[kind]
        name = spec_cols.get(kind)
        parts.append(df[name].to_numpy(dtype=float) if name else np.full(len(df), default))
    out = np.concatenate(parts) if parts else np.zeros(0)
    assert len(out) == n
    return out


@dataclass
class FleetState:
    """Capabilities (fixed) and live values (updated by telemetry) of every device.

    Power is in kW with the generator sign convention; ``ts`` is UTC epoch seconds of the
    last applied reading (NaN before the first). ``p_baseline_kw`` is what the device
    would do on its own; ``online`` turns false when readings go stale.
    """

    device_ids: StrArray
    kind_slices: dict[DeviceKind, slice]
    site_idx: IntArray
    grid: GridTopology
    # capability (n,)
    p_gen_max_kw: FloatArray
    p_load_max_kw: FloatArray
    e_kwh: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    soc_min: FloatArray
    soc_max: FloatArray
    soc_reserve: FloatArray
    curtailable: BoolArray
    cop_nominal: FloatArray
    ua_kw_per_k: FloatArray
    c_kwh_per_k: FloatArray
    t_min_c: FloatArray
    t_max_c: FloatArray
    t_heat_c: FloatArray
    t_cool_c: FloatArray
    can_cool: BoolArray
    tank_kwh_per_k: FloatArray
    loss_kw_per_k: FloatArray
    cost_per_kwh: FloatArray
    # live (n,)
    p_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    p_baseline_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    soc: FloatArray = field(default_factory=lambda: np.zeros(0))
    ts: FloatArray = field(default_factory=lambda: np.zeros(0))
    online: BoolArray = field(default_factory=lambda: np.zeros(0, bool))
    extras: dict[str, FloatArray] = field(default_factory=dict)
    _index: pd.Index = field(default_factory=lambda: pd.Index([]))

    def __post_init__(self) -> None:
        n = len(self.device_ids)
        self._index = pd.Index(self.device_ids)
        if not self._index.is_unique:
            raise ValueError("device ids must be unique")
        if len(self.p_kw) != n:
            self.p_kw = np.zeros(n)
            self.p_baseline_kw = np.full(n, np.nan)
            self.soc = np.where(np.isfinite(self.e_kwh), 0.5, np.nan)
            self.ts = np.full(n, np.nan)
            self.online = np.zeros(n, bool)
        for name in EXTRA_FIELDS:
            self.extras.setdefault(name, np.full(n, np.nan))

    # ---------------------------------------------------------------- building
    @staticmethod
    def from_spec(spec: FleetSpec) -> FleetState:
        """Lay out ``spec``'s devices kind by kind into arrays."""
        frames = {k: spec.devices.get(k, pd.DataFrame({"id": []})) for k in KIND_ORDER}
        frames = {k: (df if len(df) else _empty_kind(k)) for k, df in frames.items()}
        n = sum(len(df) for df in frames.values())
        slices, start = {}, 0
        for kind in KIND_ORDER:
            slices[kind] = slice(start, start + len(frames[kind]))
            start += len(frames[kind])
        ids = np.concatenate([frames[k]["id"].to_numpy(dtype=object) for k in KIND_ORDER])
        site_ids = np.concatenate([frames[k]["site_id"].to_numpy(dtype=object) for k in KIND_ORDER])
        grid = GridTopology.from_spec(spec)
        site_idx = _lookup(pd.Index(grid.site_ids), site_ids)
        if (site_idx < 0).any():
            raise UnknownDeviceError("device refers to a site the fleet does not hold")
        b, pv, w = DeviceKind.BATTERY, DeviceKind.PV, DeviceKind.WIND
        ev, hp, wh = DeviceKind.EV_CHARGER, DeviceKind.HEAT_PUMP, DeviceKind.WATER_HEATER

        pv_df = frames[pv]
        pv_max = (pv_df["kwp"] * (1 - pv_df["loss_fraction"])).to_numpy(dtype=float)
        gen_max = np.zeros(n)
        gen_max[slices[b]] = frames[b]["p_discharge_max_kw"].to_numpy(dtype=float)
        gen_max[slices[pv]] = pv_max
        gen_max[slices[w]] = frames[w]["rated_kw"].to_numpy(dtype=float)
        load_max = np.zeros(n)
        load_max[slices[b]] = frames[b]["p_charge_max_kw"].to_numpy(dtype=float)
        load_max[slices[ev]] = frames[ev]["p_max_kw"].to_numpy(dtype=float)
        load_max[slices[hp]] = frames[hp]["p_elec_max_kw"].to_numpy(dtype=float)
        load_max[slices[wh]] = frames[wh]["p_element_kw"].to_numpy(dtype=float)
        curtail = np.zeros(n, bool)
        curtail[slices[pv]] = frames[pv]["curtailable"].to_numpy(dtype=bool)
        curtail[slices[w]] = frames[w]["curtailable"].to_numpy(dtype=bool)
        can_cool = np.zeros(n, bool)
        can_cool[slices[hp]] = frames[hp]["can_cool"].to_numpy(dtype=bool)
        tank = np.full(n, np.nan)
        tank[slices[wh]] = frames[wh]["volume_l"].to_numpy(dtype=float) * 4.186 / 3600.0

        def col(mapping: dict[DeviceKind, str]) -> FloatArray:
            return _col(frames, n, mapping)

        state = FleetState(
            device_ids=ids,
            kind_slices=slices,
            site_idx=site_idx,
            grid=grid,
            p_gen_max_kw=gen_max,
            p_load_max_kw=load_max,
            e_kwh=col({b: "e_kwh"}),
            eta_charge=col({b: "eta_charge", ev: "eta"}),
            eta_discharge=col({b: "eta_discharge"}),
            soc_min=col({b: "soc_min"}),
            soc_max=col({b: "soc_max"}),
            soc_reserve=col({b: "soc_reserve"}),
            curtailable=curtail,
            cop_nominal=col({hp: "cop_nominal"}),
            ua_kw_per_k=col({hp: "ua_kw_per_k"}),
            c_kwh_per_k=col({hp: "c_kwh_per_k"}),
            t_min_c=col({hp: "t_min_c", wh: "t_min_c"}),
            t_max_c=col({hp: "t_max_c", wh: "t_max_c"}),
            t_heat_c=col({hp: "t_heat_c", wh: "t_set_c"}),
            t_cool_c=col({hp: "t_cool_c"}),
            can_cool=can_cool,
            tank_kwh_per_k=tank,
            loss_kw_per_k=col({wh: "loss_kw_per_k"}),
            cost_per_kwh=np.concatenate(
                [frames[k]["cost_per_kwh"].to_numpy(dtype=float) for k in KIND_ORDER]
            ),
        )
        state.soc[slices[b]] = frames[b]["soc_initial"].to_numpy(dtype=float)
        return state

    # ---------------------------------------------------------------- queries
    @property
    def n(self) -> int:
        """Number of devices."""
        return len(self.device_ids)

    def indices(self, device_ids: StrArray | list[str]) -> IntArray:
        """Row of each id; raise :class:`UnknownDeviceError` naming the unknown ones."""
        idx = _lookup(self._index, np.asarray(device_ids, dtype=object))
        if (idx < 0).any():
            missing = np.asarray(device_ids, dtype=object)[idx < 0][:5]
            raise UnknownDeviceError(f"unknown device id(s): {', '.join(map(str, missing))}")
        return idx.astype(np.int64)

    def kind_codes(self) -> IntArray:
        """Kind of each device as its position in ``DeviceKind``."""
        codes = np.empty(self.n, np.int64)
        for i, kind in enumerate(KIND_ORDER):
            codes[self.kind_slices[kind]] = i
        return codes

    def controllable(self) -> BoolArray:
        """Devices the dispatcher may command (not plain loads, not opted-out sites)."""
        mask = np.zeros(self.n, bool)
        for kind in CONTROLLABLE:
            mask[self.kind_slices[kind]] = True
        return mask & ~self.grid.site_opt_out[self.site_idx]

    def baseline_kw(self) -> FloatArray:
        """Reported baseline where known, else the measured power [kW]."""
        out: FloatArray = np.where(np.isfinite(self.p_baseline_kw), self.p_baseline_kw, self.p_kw)
        return out

    def site_power_kw(self, p_kw: FloatArray | None = None) -> FloatArray:
        """Net power of each site [kW, generator sign]: the sum over its devices."""
        return self.node_groups.site.sum(self.p_kw if p_kw is None else p_kw)

    @cached_property
    def node_groups(self) -> NodeGroups:
        """Each device's site and grid nodes, planned for fast sums (the layout is fixed)."""
        g = self.grid
        return NodeGroups.build(self.site_idx, g.site_node, g.ancestors, g.n_sites, g.n_nodes)

    def kind_sums(self, values: FloatArray) -> FloatArray:
        """Per-kind sums of a per-device array, in ``DeviceKind`` order."""
        bounds = np.array([self.kind_slices[k].start for k in KIND_ORDER] + [self.n])
        sums = np.zeros(len(KIND_ORDER))
        nonempty = bounds[:-1] < bounds[1:]
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(values, bounds[:-1][nonempty])
        return sums

    def scope_mask(self, scope: Scope) -> BoolArray:
        """Devices inside ``scope``; raise ``InvalidError`` naming an unknown node or tag."""
        if scope.kind == "fleet":
            return np.ones(self.n, bool)
        if scope.kind == "grid_node":
            where = np.flatnonzero(self.grid.node_ids == scope.value)
            if not len(where):
                raise InvalidError(f"unknown grid node {clip(scope.value)!r} in scope")
            anc = self.grid.ancestors[self.grid.site_node]
            site_in = (anc == where[0]).any(axis=1)
        else:
            tags = self.grid.site_program if scope.kind == "program" else self.grid.site_region
            site_in = tags == scope.value
            if not site_in.any():
                raise InvalidError(f"no site has {scope.kind} {clip(scope.value)!r}")
        return np.asarray(site_in[self.site_idx], dtype=bool)

    # ---------------------------------------------------------------- updates
    def apply(self, batch: TelemetryBatch) -> ApplyResult:
        """Apply a telemetry batch in one vectorised pass.

        Unknown ids are counted and skipped; readings older than what the state already
        holds are dropped as stale; rows without power (NaN ``p_kw``) carry no reading;
        NaN in other fields leaves the held value unchanged.
        """
        if not len(batch):
            return ApplyResult(0, 0, 0)
        sl = self._contiguous(batch)
        if sl is not None:
            return self._apply_slice(batch, sl)
        idx = _lookup(self._index, batch.device_ids)
        known = idx >= 0
        unknown_ids = tuple(map(str, batch.device_ids[~known][:10]))
        has_p = np.isfinite(batch.p_kw)
        fresh = known & has_p
        fresh[fresh] = ~(batch.ts[fresh] < self.ts[idx[fresh]])
        rows = idx[fresh]
        self.ts[rows] = batch.ts[fresh]
        self.p_kw[rows] = batch.p_kw[fresh]
        self.online[rows] = True
        _put_finite(self.soc, rows, batch.soc[fresh])
        _put_finite(self.p_baseline_kw, rows, batch.p_baseline_kw[fresh])
        for name, values in batch.extras.items():
            if name in self.extras:
                _put_finite(self.extras[name], rows, values[fresh])
        return ApplyResult(
            int(fresh.sum()),
            int((~known).sum()),
            int((known & has_p & ~fresh).sum()),
            unknown_ids,
        )

    @cached_property
    def layout(self) -> str:
        """Fingerprint of the device layout (every id, in row order).

        A sender that lays out its batches like this fleet stamps them with it; any change
        of the fleet changes it, and stamped rows from an older layout are then ignored.
        """
        digest = hashlib.blake2b(digest_size=12)
        for chunk in range(0, self.n, 65_536):
            digest.update("\x1f".join(map(str, self.device_ids[chunk : chunk + 65_536])).encode())
            digest.update(b"\x1e")
        return digest.hexdigest()

    def _contiguous(self, batch: TelemetryBatch) -> slice | None:
        """The fleet rows a batch covers, if the sender laid it out as a contiguous slice."""
        rows = batch.rows
        if rows is None or len(rows) != len(batch) or batch.layout != self.layout:
            return None
        a, b = int(rows[0]), int(rows[-1]) + 1
        if a < 0 or b > self.n or b - a != len(rows):
            return None
        probe = slice(None, None, 97)
        if not (
            np.array_equal(rows[probe], np.arange(a, b)[probe])
            and np.array_equal(self.device_ids[a:b][probe], batch.device_ids[probe])
        ):
            return None
        return slice(a, b)

    def _apply_slice(self, batch: TelemetryBatch, sl: slice) -> ApplyResult:
        has_p = np.isfinite(batch.p_kw)
        fresh = has_p & ~(batch.ts < self.ts[sl])
        np.copyto(self.ts[sl], batch.ts, where=fresh)
        np.copyto(self.p_kw[sl], batch.p_kw, where=fresh)
        self.online[sl] |= fresh
        for target, values in ((self.soc, batch.soc), (self.p_baseline_kw, batch.p_baseline_kw)):
            np.copyto(target[sl], values, where=fresh & np.isfinite(values))
        for name, values in batch.extras.items():
            if name in self.extras:
                np.copyto(self.extras[name][sl], values, where=fresh & np.isfinite(values))
        return ApplyResult(int(fresh.sum()), 0, int((has_p & ~fresh).sum()))

    def mark_stale(self, now: float, timeout_s: float) -> int:
        """Set devices silent for more than ``timeout_s`` offline; return how many are."""
        self.online &= ~(now - self.ts > timeout_s)
        self.online &= np.isfinite(self.ts)
        return int((~self.online).sum())

    def nbytes(self) -> int:
        """Bytes held by the per-device arrays (the fleet-scale part of memory)."""
        total = 0
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                total += value.nbytes
        total += sum(a.nbytes for a in self.extras.values())
        total += int(self._index.memory_usage(deep=True))
        total += int(sum(len(s) + 49 for s in self.device_ids))  # the id strings themselves
        return total


def _lookup(index: pd.Index, values: np.ndarray) -> IntArray:
    """Row of each value in ``index``, -1 where absent (one hashed pass)."""
    return np.asarray(index.get_indexer(values), dtype=np.int64)  # type: ignore[arg-type]


def _put_finite(target: FloatArray, rows: IntArray, values: FloatArray) -> None:
    ok = np.isfinite(values)
    target[rows[ok]] = values[ok]


def _empty_kind(kind: DeviceKind) -> pd.DataFrame:
    from gridflock.domain.kinds import device_attrs

    return pd.DataFrame(
        {a.name: pd.Series(dtype=object if a.type == "str" else float) for a in device_attrs(kind)}
    )
