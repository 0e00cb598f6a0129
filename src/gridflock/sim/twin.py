"""The digital twin: a fleet of simulated homes that behaves like the real one.

Every device follows its own local control (self-consumption battery, thermostat,
plug-and-charge EV, PV at its maximum power point) until a command arrives; commands
take effect after a network latency, expire at ``valid_until`` and are ignored by a
few disobedient devices. A plan reaches a device as a schedule (:meth:`Twin.send_schedules`):
a setpoint per slot that the device follows on its own until the plan's end, whatever the
service does; a command overrides it while valid, and after the plan the device returns to
its own control. Readings go missing, carry noise, and some devices drop off
the network for good. The twin implements :class:`gridflock.domain.DeviceLink`, the
same interface the MQTT gateways implement, so the dispatch code cannot tell them apart.

All state is arrays over devices in the fleet state's row order; one :meth:`Twin.step`
advances the whole fleet by one time step without a Python loop over homes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.domain.bands import T_TANK_AMBIENT_C
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import BoolArray, CommandBatch, FloatArray, TelemetryBatch
from gridflock.domain.schedules import ScheduleBatch, slot_values
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.sim import physics
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.models import DeviceModel, ModelContext, model_factory
from gridflock.sim.profiles import LoadSampler, household_load_shape
from gridflock.sim.weather import Weather, make_weather

__all__ = [
    "VERDICT_ACCEPTED",
    "VERDICT_EXPIRED",
    "VERDICT_REPLAYED",
    "VERDICT_UNREACHABLE",
    "AckCounts",
    "Twin",
]

K = DeviceKind
#: Kinds whose physics the twin steps itself; others bring a model (``sim.models``).
BUILT_IN_PHYSICS = frozenset(
    {K.BATTERY, K.PV, K.WIND, K.EV_CHARGER, K.HEAT_PUMP, K.WATER_HEATER, K.LOAD}
)


@dataclass
class _States:
    """The evolving physical state of the devices that store energy."""

    soc: FloatArray
    ev_need: FloatArray
    t_in: FloatArray
    t_tank: FloatArray
    wh_on: BoolArray

    def copy(self) -> _States:
        return _States(
            self.soc.copy(),
            self.ev_need.copy(),
            self.t_in.copy(),
            self.t_tank.copy(),
            self.wh_on.copy(),
        )


#: What became of a command sent to the twin (:meth:`Twin.send`).
VERDICT_ACCEPTED, VERDICT_REPLAYED, VERDICT_EXPIRED, VERDICT_UNREACHABLE = 0, 1, 2, 3


@dataclass
class AckCounts:
    """What the twin's devices did with the commands they were sent."""

    accepted: int = 0
    expired: int = 0
    replayed: int = 0
    unreachable: int = 0


class Twin:
    """A simulated fleet over ``steps`` steps of ``step_s`` seconds from ``start`` (UTC)."""

    def __init__(
        self,
        spec: FleetSpec,
        start: pd.Timestamp,
        steps: int,
        step_s: float,
        seed: int,
        imperfections: Imperfections | None = None,
        weather: Weather | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be a timezone-aware UTC timestamp")
        self.spec = spec
        self.cap = FleetState.from_spec(spec)
        self.imp = imperfections or Imperfections()
        self.step_s = float(step_s)
        self.dt_h = self.step_s / 3600.0
        self.times = pd.date_range(
            start.tz_convert("UTC"), periods=steps, freq=pd.Timedelta(seconds=step_s)
        )
        self.t0 = self.times[0].timestamp()
        self.t = 0
        n = self.cap.n
        ks = self.cap.kind_slices
        self.ks = ks
        sites = spec.sites
        self.lat = float(sites["lat"].mean()) if len(sites) else 0.0
        self.lon = float(sites["lon"].mean()) if len(sites) else 0.0
        self.tz = str(sites["tz"].iloc[0]) if len(sites) else "UTC"
        seeds = np.random.SeedSequence(seed).spawn(6)
        static, self._rng_load, self._rng_tel, self._rng_cmd, rng_ev, rng_models = (
            np.random.default_rng(s) for s in seeds
        )
        self.weather = weather or make_weather(self.times, self.lat, self.lon, seed)
        d = spec.devices
        ctx = ModelContext(self.times, self.step_s, self.weather, self.tz, rng_models)
        self.models: dict[DeviceKind, DeviceModel] = {
            kind: model_factory(kind)(d[kind], ctx)
            for kind, sl in ks.items()
            if kind not in BUILT_IN_PHYSICS and sl.stop > sl.start
        }

        # exogenous profiles, precomputed per step or per orientation bin
        shape = household_load_shape(self.times, tz=self.tz)
        self.loads = LoadSampler(
            shape,
            d[K.LOAD]["annual_kwh"].to_numpy(float),
            self._rng_load,
            shift_steps_max=max(int(2700 / self.step_s), 1),
            dt_h=self.dt_h,
        )
        pv = d[K.PV]
        self.pv_profiles, self.pv_bins = physics.pv_profiles(
            self.weather,
            pv["tilt_deg"].to_numpy(float),
            pv["azimuth_deg"].to_numpy(float),
            self.lat,
            self.lon,
        )
        self.pv_scale = (pv["kwp"] * (1 - pv["loss_fraction"])).to_numpy(float)
        wind = d[K.WIND]
        self.wind_types = wind["turbine_type"].to_numpy(object)
        self.wind_hub = wind["hub_height_m"].to_numpy(float)
        self.wind_rated = wind["rated_kw"].to_numpy(float)
        self.draw_shape = physics.water_draw_profile(self.times, self.tz)

        # EV sessions: one per charger and local day
        ev = d[K.EV_CHARGER]
        days = pd.date_range(
            self.times[0].tz_convert(self.tz).normalize() - pd.Timedelta(days=1),
            self.times[-1].tz_convert(self.tz).normalize(),
            freq="D",
        )
        arr, dep, need = [], [], []
        for day in days:
            a, b, e = physics.ev_sessions(
                len(ev),
                rng_ev,
                ev["arrival_hour"].to_numpy(float),
                ev["departure_hour"].to_numpy(float),
                ev["session_kwh"].to_numpy(float),
                day.tz_convert("UTC"),
                self.tz,
            )
            arr.append(a)
            dep.append(b)
            need.append(e)
        self.ev_arrival = np.array(arr)
        self.ev_departure = np.array(dep)
        # a session under way at the start has charged at full power since it plugged in
        p_max_ev = ev["p_max_kw"].to_numpy(float) * ev["eta"].to_numpy(float)
        charged = p_max_ev * np.maximum(self.t0 - self.ev_arrival, 0.0) / 3600.0
        ev_need = np.maximum(np.array(need) - np.nan_to_num(charged, posinf=0.0), 0.0)
        self.ev_p_min = ev["p_min_kw"].to_numpy(float)

        hp = d[K.HEAT_PUMP]
        t_out0 = float(self.weather.temp_air_c[0])
        cooling0 = hp["can_cool"].to_numpy(bool) & (t_out0 > 18.0)
        t_in = np.where(cooling0, hp["t_cool_c"], hp["t_heat_c"]).astype(float) + static.normal(
            0, 0.3, len(hp)
        )
        wh = d[K.WATER_HEATER]
        self.wh_volume = wh["volume_l"].to_numpy(float)
        t_tank = wh["t_set_c"].to_numpy(float) - static.uniform(0, 6, len(wh))
        self.wh_draw_scale = wh["daily_draw_kwh"].to_numpy(float) * static.lognormal(
            0, 0.3, len(wh)
        )
        self.real = _States(
            self.cap.soc[ks[K.BATTERY]].copy(), ev_need, t_in, t_tank, np.zeros(len(wh), bool)
        )
        self.shadow = self.real.copy()
        self.col = self.cap.kind_columns
        bat = self.col[K.BATTERY]
        self.bat_floor = np.maximum(bat["soc_min"], bat["soc_reserve"])
        bat_sites = self.cap.site_idx[ks[K.BATTERY]]
        self.bat_share = 1.0 / np.bincount(bat_sites, minlength=self.cap.grid.n_sites)[bat_sites]
        self._not_battery = np.ones(self.cap.n, bool)
        self._not_battery[ks[K.BATTERY]] = False
        self._hp_cop = np.full(len(hp), np.nan)
        self._hp_cooling = np.zeros(len(hp), bool)  # direction in force (kept under command)
        self._wh_draw = np.zeros(len(wh))

        # imperfections (static draws)
        self.ignores = static.random(n) < self.imp.ignore_rate
        end = self.t0 + steps * self.step_s
        self.offline_at = np.where(
            static.random(n) < self.imp.offline_rate, static.uniform(self.t0, end, n), np.inf
        )
        # command state: the one in force and the one in flight
        self.cur_sp = np.full(n, np.nan)
        self.cur_until = np.full(n, -np.inf)
        self.pend_sp = np.full(n, np.nan)
        self.pend_apply = np.full(n, np.inf)
        self.pend_until = np.full(n, -np.inf)
        self.last_seq = np.full(n, -1, dtype=np.int64)
        # schedules (plans): each device's grid, validity and slots; apart from commands
        self.sch_start = np.full(n, np.inf)
        self.sch_step = np.ones(n)
        self.sch_until = np.full(n, -np.inf)
        self.sch_p = np.full((n, 0), np.nan)
        self.sch_min = np.full((n, 0), np.nan)
        self.sch_max = np.full((n, 0), np.nan)
        self.planned_min = np.full(n, np.nan)
        self.planned_max = np.full(n, np.nan)
        self.sch_seq = np.full(n, -1, dtype=np.int64)
        self.planned = np.full(n, np.nan)
        """Each device's scheduled power in the current step [kW]; NaN where none holds."""
        self.schedule_acks = AckCounts()
        self.acks = AckCounts()
        self._outbox: list[TelemetryBatch] = []
        self.p_kw = np.zeros(n)
        self.natural_kw = np.zeros(n)
        self._kind_codes = self.cap.kind_codes()
        self._rows = np.arange(n)
        self._nan = np.full(n, np.nan)
        self._nan.flags.writeable = False  # shared by every batch: no reader may write it

    # ------------------------------------------------------------------ link
    @property
    def now(self) -> float:
        """UTC epoch seconds at the start of the next step."""
        return self.t0 + self.t * self.step_s

    @property
    def done(self) -> bool:
        """Whether every step has been simulated."""
        return self.t >= len(self.times)

    def send(self, commands: CommandBatch) -> npt.NDArray[np.int8]:
        """Deliver commands after a latency; drop expired, replayed and unreachable ones.

        Returns each command's fate, one of the ``VERDICT_*`` codes (what a gateway
        would acknowledge).
        """
        if not len(commands):
            return np.zeros(0, np.int8)
        idx = self.cap.indices(commands.device_ids)
        issued = commands.issued_at
        fresh = commands.seq > self.last_seq[idx]
        live = commands.valid_until > issued
        reach = self.offline_at[idx] > issued
        ok = fresh & live & reach
        self.acks.replayed += int((~fresh).sum())
        self.acks.expired += int((fresh & ~live).sum())
        self.acks.unreachable += int((fresh & live & ~reach).sum())
        self.acks.accepted += int(ok.sum())
        verdicts = np.select(
            [ok, ~fresh, ~live],
            [VERDICT_ACCEPTED, VERDICT_REPLAYED, VERDICT_EXPIRED],
            VERDICT_UNREACHABLE,
        ).astype(np.int8)
        rows = idx[ok]
        self.last_seq[rows] = commands.seq[ok]
        latency = (
            self.imp.latency_median_s
            * self._rng_cmd.lognormal(0.0, self.imp.latency_sigma, len(rows))
            if self.imp.latency_median_s > 0
            else 0.0
        )
        obey = ~self.ignores[rows]
        rows = rows[obey]
        self.pend_sp[rows] = commands.p_setpoint_kw[ok][obey]
        self.pend_apply[rows] = issued + np.asarray(latency)[obey] if np.ndim(latency) else issued
        self.pend_until[rows] = commands.valid_until[ok][obey]
        return verdicts

    def send_schedules(self, schedules: ScheduleBatch) -> npt.NDArray[np.int8]:
        """Give devices their plan; drop expired, replayed and unreachable schedules.

        A schedule replaces the device's previous one at once (it is only a plan: its
        slots take effect when their time comes). Disobedient devices keep their own
        control. Returns each schedule's fate, one of the ``VERDICT_*`` codes.
        """
        n = len(schedules)
        if not n:
            return np.zeros(0, np.int8)
        idx = self.cap.indices(schedules.device_ids)
        issued = schedules.issued_at
        fresh = schedules.seq > self.sch_seq[idx]
        live = np.full(n, schedules.valid_until > issued)
        reach = self.offline_at[idx] > issued
        ok = fresh & live & reach
        acks = self.schedule_acks
        acks.replayed += int((~fresh).sum())
        acks.expired += int((fresh & ~live).sum())
        acks.unreachable += int((fresh & live & ~reach).sum())
        acks.accepted += int(ok.sum())
        verdicts = np.select(
            [ok, ~fresh, ~live],
            [VERDICT_ACCEPTED, VERDICT_REPLAYED, VERDICT_EXPIRED],
            VERDICT_UNREACHABLE,
        ).astype(np.int8)
        self.sch_seq[idx[ok]] = schedules.seq[ok]
        take = ok & ~self.ignores[idx]
        rows = idx[take]
        width = schedules.steps
        if width > self.sch_p.shape[1]:
            for name in ("sch_p", "sch_min", "sch_max"):
                old = getattr(self, name)
                grown = np.full((self.cap.n, width), np.nan)
                grown[:, : old.shape[1]] = old
                setattr(self, name, grown)
        for name, values in (
            ("sch_p", schedules.p_kw),
            ("sch_min", schedules.p_min_kw),
            ("sch_max", schedules.p_max_kw),
        ):
            mat = getattr(self, name)
            mat[rows] = np.nan
            if values is not None:
                mat[rows, :width] = values[take]
        self.sch_start[rows] = schedules.start
        self.sch_step[rows] = schedules.step_s
        self.sch_until[rows] = schedules.valid_until
        return verdicts

    def receive(self) -> list[TelemetryBatch]:
        """Batches of readings produced since the last call."""
        out, self._outbox = self._outbox, []
        return out

    # ------------------------------------------------------------------ physics
    def _blend(self, s: slice, natural: FloatArray, t0: float, t1: float) -> FloatArray:
        """Requested power of devices ``s``: the landed command, else schedule, else own control."""
        planned = self.planned[s]
        lo, hi = self.planned_min[s], self.planned_max[s]
        own = np.clip(
            natural, np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        )
        natural = np.where(np.isnan(planned), own, planned)
        cur = self.cur_sp[s]
        old = np.where(np.isnan(cur), natural, cur)
        arriving = self.pend_apply[s] < t1
        if not arriving.any():
            return old
        w = np.clip((t1 - np.maximum(self.pend_apply[s], t0)) / self.step_s, 0.0, 1.0)
        new_sp = self.pend_sp[s]
        new = np.where(np.isnan(new_sp), natural, new_sp)
        return np.where(arriving, (1 - w) * old + w * new, old)

    def _land_commands(self, t0: float, t1: float) -> None:
        """Commands that arrived during the step are in force from now on; old ones expire."""
        arriving = self.pend_apply < t1
        self.cur_sp[arriving] = self.pend_sp[arriving]
        self.cur_until[arriving] = self.pend_until[arriving]
        self.pend_apply[arriving] = np.inf
        expired = self.cur_until <= t1
        self.cur_sp[expired] = np.nan

    def step(self) -> None:
        """Advance the whole fleet by one step and queue its readings.

        Two sets of device states advance side by side: the real one, which follows
        commands, and a shadow that never sees one. The shadow's power is the baseline each
        device reports, as a home energy manager that keeps a model of its own undispatched
        behaviour would.
        """
        if self.done:
            raise RuntimeError("the twin has simulated every step of its window")
        t, ks = self.t, self.ks
        t0, t1 = self.now, self.now + self.step_s
        p, base = self.p_kw, self.natural_kw
        online = self.offline_at > t0
        self.pend_apply[~online] = np.inf  # offline devices receive nothing
        grid = (self.sch_start, self.sch_step, self.sch_until)
        self.planned = slot_values(*grid, self.sch_p, t0)
        self.planned_min = slot_values(*grid, self.sch_min, t0)
        self.planned_max = slot_values(*grid, self.sch_max, t0)

        s = ks[K.LOAD]
        p[s] = base[s] = -self.loads.at(t)
        for kind, avail in (
            (K.PV, self.pv_scale * self.pv_profiles[t, self.pv_bins]),
            (K.WIND, self._wind(t)),
        ):
            s = ks[kind]
            base[s] = avail
            req = self._blend(s, avail, t0, t1)
            p[s] = np.where(self.col[kind]["curtailable"] > 0.5, np.clip(req, 0.0, avail), avail)
        for kind, advance in (
            (K.EV_CHARGER, self._ev),
            (K.HEAT_PUMP, self._heat_pump),
            (K.WATER_HEATER, self._water_heater),
        ):
            s = ks[kind]
            base[s] = advance(self.shadow, t, None)
            p[s] = advance(self.real, t, (t0, t1))
        for kind, model in self.models.items():
            s = ks[kind]
            base[s], p[s] = model.step(t, t0, partial(self._blend, s, t0=t0, t1=t1))
        s = ks[K.BATTERY]  # last: on its own it balances the rest of its home
        base[s] = self._battery(self.shadow, base, None)
        p[s] = self._battery(self.real, p, (t0, t1))

        self._land_commands(t0, t1)
        self._emit(t1, online)
        self.t += 1

    def _battery(
        self, st: _States, p: FloatArray, window: tuple[float, float] | None
    ) -> FloatArray:
        """Self-consumption against the rest of the home, unless commanded."""
        s, cap, c = self.ks[K.BATTERY], self.cap, self.col[K.BATTERY]
        others = self._not_battery
        site_other = np.bincount(
            cap.site_idx[others], weights=p[others], minlength=cap.grid.n_sites
        )
        args = (
            self.dt_h,
            c["e_kwh"],
            c["p_charge_max_kw"],
            c["p_discharge_max_kw"],
            c["eta_charge"],
            c["eta_discharge"],
            self.bat_floor,
            c["soc_max"],
        )
        wish = -site_other[cap.site_idx[s]] * self.bat_share
        if window is not None:
            _, natural = physics.battery_step(st.soc, wish, *args)
            wish = self._blend(s, natural, *window)
        st.soc, out = physics.battery_step(st.soc, wish, *args)
        return out

    def _wind(self, t: int) -> FloatArray:
        out = np.zeros(len(self.wind_types))
        for turbine in np.unique(self.wind_types):
            sel = self.wind_types == turbine
            curve = physics.wind_power_curve(str(turbine))
            out[sel] = physics.wind_power_kw(
                float(self.weather.wind_speed_m_s[t]),
                self.wind_hub[sel],
                self.wind_rated[sel],
                curve,
            )
        return out

    def _ev(self, st: _States, t: int, window: tuple[float, float] | None) -> FloatArray:
        """Plug in and charge at full power until the session's energy is in the car."""
        s, c = self.ks[K.EV_CHARGER], self.col[K.EV_CHARGER]
        now = self.t0 + t * self.step_s
        active = (self.ev_arrival <= now) & (self.ev_departure > now)
        need = np.where(active, st.ev_need, 0.0).sum(axis=0)
        plugged = active.any(axis=0) & (need > 1e-6)
        eta = c["eta"]
        limit = np.where(plugged, np.minimum(c["p_max_kw"], need / eta / self.dt_h), 0.0)
        charge = limit
        if window is not None:
            charge = physics.ev_charge_kw(-self._blend(s, -limit, *window), limit, self.ev_p_min)
        st.ev_need = np.maximum(st.ev_need - np.where(active, charge * eta * self.dt_h, 0.0), 0.0)
        return -charge

    def _heat_pump(self, st: _States, t: int, window: tuple[float, float] | None) -> FloatArray:
        """Modulating thermostat; a command holds only while the comfort band does.

        A pump that runs on a command keeps the direction (heating or cooling) it had when
        the command arrived, as reported in its readings.
        """
        s, c = self.ks[K.HEAT_PUMP], self.col[K.HEAT_PUMP]
        can_cool = c["can_cool"] > 0.5
        t_out = np.full(len(st.t_in), float(self.weather.temp_air_c[t]))
        gain = self._hp_gain(t)
        mode = physics.heat_pump_mode(st.t_in, t_out, c["t_heat_c"], c["t_cool_c"], can_cool)
        cooling = (mode < 0) | (
            (mode == 0) & can_cool & (st.t_in > 0.5 * (c["t_heat_c"] + c["t_cool_c"]))
        )
        p_el = physics.thermostat_heat_pump(
            st.t_in,
            t_out,
            c["p_elec_max_kw"],
            c["cop_nominal"],
            c["ua_kw_per_k"],
            c["c_kwh_per_k"],
            c["t_heat_c"],
            c["t_cool_c"],
            can_cool,
            self.dt_h,
            q_gain_kw=gain,
        )
        if window is not None:
            asked = np.clip(-self._blend(s, -p_el, *window), 0.0, c["p_elec_max_kw"])
            outside = (st.t_in < c["t_min_c"]) | (st.t_in > c["t_max_c"])
            p_el = np.where(outside, p_el, asked)  # comfort beats the command
            arriving = (self.pend_apply[s] < window[1]) & np.isfinite(self.pend_sp[s])
            commanded = (np.isfinite(self.cur_sp[s]) | arriving) & ~outside
            cooling = np.where(commanded, self._hp_cooling, cooling)
            self._hp_cooling = cooling
        cop = physics.cop(t_out, c["cop_nominal"], ~cooling)
        if window is not None:
            self._hp_cop = cop
        q = np.where(cooling, -1.0, 1.0) * cop * p_el
        st.t_in = physics.house_step(
            st.t_in, t_out, q, c["ua_kw_per_k"], c["c_kwh_per_k"], self.dt_h, q_gain_kw=gain
        )
        return -p_el

    def _hp_gain(self, t: int) -> float:
        """Heat gains of every house from sun, people and appliances at step ``t`` [kW]."""
        return 0.3 + 1.2 * float(self.weather.ghi[t]) / 1000.0

    def _water_heater(self, st: _States, t: int, window: tuple[float, float] | None) -> FloatArray:
        """Bang-bang thermostat; a command holds only within the tank's temperature band."""
        s, c = self.ks[K.WATER_HEATER], self.col[K.WATER_HEATER]
        draw = self.draw_shape[t] * self.wh_draw_scale
        p_el, st.wh_on = physics.thermostat_water_heater(
            st.t_tank, c["t_set_c"], c["p_element_kw"], 4.0, st.wh_on
        )
        if window is not None:
            asked = np.clip(-self._blend(s, -p_el, *window), 0.0, c["p_element_kw"])
            outside = (st.t_tank < c["t_min_c"]) | (st.t_tank > c["t_max_c"])
            p_el = np.where(outside, p_el, asked)
            self._wh_draw = draw
        st.t_tank = physics.water_heater_step(
            st.t_tank,
            p_el,
            draw,
            self.wh_volume,
            c["loss_kw_per_k"],
            T_TANK_AMBIENT_C,
            self.dt_h,
        )
        return -p_el

    # ------------------------------------------------------------------ telemetry
    def _emit(self, ts: float, online: BoolArray) -> None:
        """Queue this step's readings: one batch per device kind, as their gateways would.

        A lost reading (dropout, or a device gone offline) is a row whose ``p_kw`` is NaN,
        so each batch stays a contiguous view of the fleet's arrays.
        """
        n, ks = self.cap.n, self.ks
        imp = self.imp
        p = self.p_kw.copy()
        if imp.noise_kw > 0:
            p += imp.noise_kw * self._rng_tel.standard_normal(n, dtype=np.float32)
        lost = ~online
        if imp.dropout_rate > 0:
            lost |= self._rng_tel.random(n, dtype=np.float32) < imp.dropout_rate
        p[lost] = np.nan
        base = self.natural_kw.copy()
        ids, rows, nan = self.cap.device_ids, self._rows, self._nan
        when = np.full(n, ts)
        t_next = min(self.t + 1, len(self.times) - 1)  # the conditions about to hold
        t_out = float(self.weather.temp_air_c[t_next])
        n_hp = len(self.real.t_in)
        extras: dict[DeviceKind, dict[str, FloatArray]] = {
            K.HEAT_PUMP: {
                "t_in_c": self.real.t_in.copy(),
                "t_out_c": np.full(n_hp, t_out),
                "cop": self._hp_cop.copy(),
                "gain_kw": np.full(n_hp, self._hp_gain(t_next)),
                "cooling": self._hp_cooling.astype(np.float64),
            },
            K.WATER_HEATER: {"t_tank_c": self.real.t_tank.copy(), "draw_kw": self._wh_draw},
        }
        active = (self.ev_arrival <= ts) & (self.ev_departure > ts)
        extras[K.EV_CHARGER] = {
            "e_need_kwh": np.where(active, self.real.ev_need, 0.0).sum(axis=0),
            "departure_ts": np.where(active, self.ev_departure, -np.inf).max(axis=0),
        }
        soc = {K.BATTERY: self.real.soc.copy()}
        for kind, model in self.models.items():
            extras[kind] = model.extras(ts)
            model_soc = model.soc()
            if model_soc is not None:
                soc[kind] = model_soc
        for kind, sl in ks.items():
            if sl.stop > sl.start:
                self._outbox.append(
                    TelemetryBatch(
                        ids[sl],
                        when[sl],
                        p[sl],
                        soc.get(kind, nan[sl]),
                        base[sl],
                        extras.get(kind, {}),
                        rows[sl],
                        self.cap.layout,
                    )
                )
