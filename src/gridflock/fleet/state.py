"""The columnar fleet state: every device's capability and live values as NumPy arrays.

Devices are stored grouped by kind (``kind_slices``) so per-kind formulas run on
contiguous slices. One row per device; a ``pandas.Index`` maps ids to rows so a
telemetry batch of any size is applied with a single vectorised lookup. The columns come
from the kinds' declarations (``domain.kinds``): each kind's capability columns are kept
for its own slice only (``kind_columns``), the telemetry extras of every declared kind
fleet-wide (``extras``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from gridflock.domain.errors import InvalidError, UnknownDeviceError, clip
from gridflock.domain.events import Scope
from gridflock.domain.kinds import DeviceKind, device_attrs, kind_decl, telemetry_extras
from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray, TelemetryBatch
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.groups import GroupIndex, NodeGroups
from gridflock.gridcode import SiteRules, site_codes, site_rules

__all__ = ["ApplyResult", "FleetState", "GridTopology", "KindView", "extra_fields"]


def extra_fields() -> tuple[str, ...]:
    """Telemetry ``extras`` the state keeps (every declared kind's), each in its own array."""
    return tuple(telemetry_extras())


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
    #: Each site's grid code (``gridcode.site_codes``); empty: no code rules apply.
    site_grid_code: StrArray = field(default_factory=lambda: np.zeros(0, dtype=object))

    @cached_property
    def code_rules(self) -> SiteRules:
        """What each site's grid code lets dispatch ask (``gridcode.site_rules``)."""
        codes = self.site_grid_code
        if len(codes) != self.n_sites:
            codes = np.full(self.n_sites, "", dtype=object)
        return site_rules(codes)

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
            site_grid_code=site_codes(sites),
        )


@dataclass(frozen=True)
class ApplyResult:
    """What became of a telemetry batch: rows applied, unknown devices, stale readings."""

    applied: int
    unknown: int
    stale: int
    unknown_ids: tuple[str, ...] = ()


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
    # capability: fleet-wide (n,) and each kind's own columns (its slice's length)
    kind_columns: dict[DeviceKind, dict[str, FloatArray]]
    p_gen_max_kw: FloatArray
    p_load_max_kw: FloatArray
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
            self.soc = np.where(np.isfinite(self.column("e_kwh")), 0.5, np.nan)
            self.ts = np.full(n, np.nan)
            self.online = np.zeros(n, bool)
        for name in extra_fields():
            self.extras.setdefault(name, np.full(n, np.nan))

    # ---------------------------------------------------------------- building
    @staticmethod
    def from_spec(spec: FleetSpec) -> FleetState:
        """Lay out ``spec``'s devices kind by kind (declaration order) into arrays."""
        kinds = tuple(DeviceKind)
        frames = {k: spec.devices.get(k, pd.DataFrame({"id": []})) for k in kinds}
        frames = {k: (df if len(df) else _empty_kind(k)) for k, df in frames.items()}
        n = sum(len(df) for df in frames.values())
        slices, start = {}, 0
        for kind in kinds:
            slices[kind] = slice(start, start + len(frames[kind]))
            start += len(frames[kind])
        ids = np.concatenate([frames[k]["id"].to_numpy(dtype=object) for k in kinds])
        site_ids = np.concatenate([frames[k]["site_id"].to_numpy(dtype=object) for k in kinds])
        grid = GridTopology.from_spec(spec)
        site_idx = _lookup(pd.Index(grid.site_ids), site_ids)
        if (site_idx < 0).any():
            raise UnknownDeviceError("device refers to a site the fleet does not hold")
        columns = {k: kind_decl(k).state_columns(frames[k]) for k in kinds}
        fleet_wide = {}
        for name in ("p_gen_max_kw", "p_load_max_kw"):
            arr = np.zeros(n)
            for k in kinds:
                if name in columns[k]:
                    arr[slices[k]] = columns[k][name]
            fleet_wide[name] = arr
        state = FleetState(
            device_ids=ids,
            kind_slices=slices,
            site_idx=site_idx,
            grid=grid,
            kind_columns=columns,
            p_gen_max_kw=fleet_wide["p_gen_max_kw"],
            p_load_max_kw=fleet_wide["p_load_max_kw"],
            cost_per_kwh=np.concatenate(
                [frames[k]["cost_per_kwh"].to_numpy(dtype=float) for k in kinds]
            ),
        )
        for k in kinds:
            if "soc_initial" in columns[k]:
                state.soc[slices[k]] = columns[k]["soc_initial"]
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

    @property
    def kinds(self) -> tuple[DeviceKind, ...]:
        """The kinds laid out in this state, in row order (declaration order when built)."""
        return tuple(self.kind_slices)

    def kind_codes(self) -> IntArray:
        """Kind of each device as its position in :attr:`kinds`."""
        codes = np.empty(self.n, np.int64)
        for i, kind in enumerate(self.kind_slices):
            codes[self.kind_slices[kind]] = i
        return codes

    def column(self, name: str, default: float = np.nan) -> FloatArray:
        """A capability column over the whole fleet, ``default`` for kinds without it."""
        out = np.full(self.n, default)
        for kind, cols in self.kind_columns.items():
            if name in cols:
                out[self.kind_slices[kind]] = cols[name]
        return out

    @property
    def e_kwh(self) -> FloatArray:
        """Usable energy capacity [kWh] of every device (NaN for kinds without storage)."""
        return self.column("e_kwh")

    def kind_view(self, kind: DeviceKind, baseline_kw: FloatArray | None = None) -> KindView:
        """The columns a kind's power band reads, for that kind's rows only (views, no copies)."""
        base = self.baseline_kw() if baseline_kw is None else baseline_kw
        return KindView(self, kind, base)

    def _kind_mask(self, flag: str) -> BoolArray:
        mask = np.zeros(self.n, bool)
        for kind, sl in self.kind_slices.items():
            mask[sl] = bool(getattr(kind_decl(kind), flag))
        return mask

    @cached_property
    def follows_site(self) -> BoolArray:
        """Devices that offset the rest of their home on their own (declared per kind).

        While another device of the site is dispatched, these are held at their baseline.
        """
        return self._kind_mask("follows_site")

    def controllable(self) -> BoolArray:
        """Devices the dispatcher may command (declared per kind, not at opted-out sites)."""
        return self._kind_mask("controllable") & ~self.grid.site_opt_out[self.site_idx]

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
        """Per-kind sums of a per-device array, in :attr:`kinds` order."""
        bounds = np.array([sl.start for sl in self.kind_slices.values()] + [self.n])
        sums = np.zeros(len(self.kind_slices))
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
        total += sum(a.nbytes for cols in self.kind_columns.values() for a in cols.values())
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
    return pd.DataFrame(
        {a.name: pd.Series(dtype=object if a.type == "str" else float) for a in device_attrs(kind)}
    )


class KindView(Mapping[str, FloatArray]):
    """One kind's rows of the fleet state as named columns, for its power band.

    Holds the kind's capability columns, the live ``soc``, ``p_kw`` and ``baseline_kw``,
    and every telemetry extra; each value is a view of the kind's slice (no copy).
    """

    def __init__(self, state: FleetState, kind: DeviceKind, baseline_kw: FloatArray) -> None:
        self._sl = state.kind_slices[kind]
        self._own = state.kind_columns[kind]
        self._live = {
            "soc": state.soc,
            "p_kw": state.p_kw,
            "baseline_kw": baseline_kw,
            "p_gen_max_kw": state.p_gen_max_kw,
            "p_load_max_kw": state.p_load_max_kw,
            **state.extras,
        }

    def __getitem__(self, name: str) -> FloatArray:
        if name in self._own:
            return self._own[name]
        return self._live[name][self._sl]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._own), **dict.fromkeys(self._live)})

    def __len__(self) -> int:
        return len(set(self._own) | set(self._live))
