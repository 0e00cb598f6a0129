"""Fast frequency response in the twin: the fleet's local droop against a 49.5 Hz step.

    python benchmarks/bench_ffr.py [--devices 100000] [--dt 0.02] [--plot docs/img/ffr-step.png]

A generated fleet with the twin's live state of a summer evening (``_common``) offers its
frequency-response capacity (``fleet.frequency_response``: what devices that respond
fully within 1 s can give, held 15 minutes); each device is pushed that capacity as a
droop of the product (Dynamic Containment, Very Fast FCAS) and follows the grid
frequency on its own (``sim.frequency``: measurement window, control latency and ramp
per kind, spread over devices) at ``--dt`` steps. Reported: start and full-response times
of the fleet for a 49.5 Hz step against DC (start <= 0.5 s, full <= 1 s) and VFFCAS
(full <= 1 s); the same with every controllable device contracted (heat pumps and
chargers are slow); a fall to 49.2 Hz at 0.5 Hz/s and an over-frequency rise.
"""

from __future__ import annotations

import time

import numpy as np

from _common import build_live_fleet, console, parser, print_header, print_table
from gridflock.fleet import flexibility, frequency_response
from gridflock.gridcode import products
from gridflock.sim.frequency import frequency_event, response_times, simulate_response

T0 = 1.0  # event start [s]


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=100_000, repeat=1)
    p.add_argument("--dt", type=float, default=0.02, help="time step [s] (default 0.02)")
    p.add_argument("--seconds", type=float, default=12.0, help="simulated span [s]")
    p.add_argument("--plot", default="", help="write a PNG of the step responses here")
    a = p.parse_args()
    print_header("Fast frequency response in the twin")
    live = build_live_fleet(a.devices, a.seed)
    st, now = live.state, live.now
    kinds = np.empty(st.n, dtype=object)
    for k, s in st.kind_slices.items():
        kinds[s] = k.value
    cap = frequency_response(st, now, within_s=1.0, hold_s=900.0)
    console.print(
        f"frequency-response capacity within 1 s (held 15 min): up {cap.total_up_kw:,.0f} kW, "
        f"down {cap.total_down_kw:,.0f} kW from {int(cap.eligible.sum()):,} devices",
        highlight=False,
    )
    t = np.arange(0.0, a.seconds, a.dt)
    rng = np.random.default_rng(a.seed)
    rows, traces = [], {}
    flex = flexibility(st, 0.25, now)
    everything = (flex.up_kw, flex.down_kw)
    cases = (
        ("GB-DC", "step 49.5 Hz", "step", (cap.up_kw, cap.down_kw)),
        ("AU-VFFCAS", "step 49.5 Hz", "step", (cap.up_kw, cap.down_kw)),
        ("GB-DC", "step 49.5 Hz, all kinds", "step", everything),
        ("GB-DC", "fall to 49.2 Hz at 0.5 Hz/s", "fall", (cap.up_kw, cap.down_kw)),
        ("GB-DC", "rise to 50.8 Hz at 0.5 Hz/s", "rise", (cap.up_kw, cap.down_kw)),
    )
    for code, label, ev, (up, down) in cases:
        prod = products()[code]
        f = frequency_event(ev, t, t0_s=T0, nadir_hz=49.2)  # type: ignore[arg-type]
        t_run = time.perf_counter()
        res = simulate_response(kinds, up, down, prod, t, f, rng)
        took = time.perf_counter() - t_run
        start, full = response_times(res, T0)
        peak = float(np.max(np.abs(res.required_kw)))
        if ev == "step":
            need = prod.start_s if prod.start_s is not None else float("nan")
            ok = full <= prod.full_s and (np.isnan(need) or start <= need)
            target = (
                f"<= {need:g} / <= {prod.full_s:g}"
                if np.isfinite(need)
                else (f"- / <= {prod.full_s:g}")
            )
            verdict = "met" if ok else "missed"
        else:  # the frequency itself takes time to get there: report the lag behind it
            t_req = float(t[np.flatnonzero(np.abs(res.required_kw) >= 0.99 * peak)[0]]) - T0
            target = f"f at full: {t_req:.2f}"
            verdict = f"lag {full - t_req:.2f} s"
        rows.append(
            (
                f"{code}: {label}",
                f"{peak:,.0f}",
                f"{start:.2f}",
                f"{full:.2f}" if np.isfinite(full) else "never",
                target,
                verdict,
                f"{took:.1f}",
            )
        )
        traces[f"{code}: {label}"] = res
    print_table(
        f"Fleet response ({st.n:,} devices, dt {a.dt * 1000:.0f} ms)",
        ("case", "required kW", "start s", "full s", "target start/full s", "", "sim s"),
        rows,
    )
    if a.plot:
        plot(traces, a.plot)
        console.print(f"wrote {a.plot}")


def plot(traces: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(traces), 1, figsize=(8, 2.2 * len(traces)), sharex=True)
    for ax, (label, r) in zip(axes, traces.items(), strict=True):
        ax.plot(r.t_s, r.required_kw / 1000, "k--", lw=1, label="required (droop of f)")
        ax.plot(r.t_s, r.delivered_kw / 1000, lw=1.6, label="delivered")
        for k, v in r.by_kind_kw.items():
            if np.abs(v).max() > 1e-6 * max(np.abs(r.delivered_kw).max(), 1):
                ax.plot(r.t_s, v / 1000, lw=0.8, alpha=0.7, label=k)
        ax.axvline(T0 + 0.5, color="grey", lw=0.5)
        ax.axvline(T0 + 1.0, color="grey", lw=0.5)
        ax.set_ylabel("MW")
        ax.set_title(label, fontsize=9)
        ax2 = ax.twinx()
        ax2.plot(r.t_s, r.f_hz, color="tab:red", lw=0.8)
        ax2.set_ylabel("Hz", color="tab:red")
        ax.legend(fontsize=7, loc="lower right")
    axes[-1].set_xlabel("time [s] (event at 1 s; grey: +0.5 s and +1 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
