"""Load at scale on one machine: 250,000 devices behind 50,000 gateways, roles apart.

Real parts: a private Mosquitto, a throw-away PostgreSQL schema holding the fleet,
``--workers`` ingest workers (``gridflock serve --role ingest``, one shared-subscription
group), one control process receiving the whole stream in a group of its own, and
``--generators`` load-generator processes. Each generator owns a slice of the gateways and
multiplexes them over ``--connections`` MQTT connections (50,000 TCP connections from one
machine would measure the kernel, not Gridflock; a production fleet has one connection
per gateway, spread over a broker cluster: docs/scaling.md). Every gateway sends one
batched message with all its devices' readings every ``--every`` seconds.

The control process is ``gridflock serve`` (role ``all``) with its telemetry writes
switched off, so the store's telemetry rows come from the ingest workers alone, as with
the control role of a split deployment.

Measured over ``--seconds`` of steady load after a warm-up:

- readings/s offered (generators) and accepted per ingest worker and in total;
- rows/s into PostgreSQL (count of the telemetry table over the window);
- end-to-end event latency: ``POST /events`` (the event created) to the first command
  message at each gateway the event commands, as an observer subscribed to
  ``gf/v1/+/cmd`` sees it: p50, p99, max;
- memory: RSS per process and per device, per role.

    python benchmarks/bench_scale.py [--devices 250000] [--gateways 50000] [--workers 2]
        [--generators 4] [--connections 4] [--every 30] [--seconds 60]

Not in CI: it takes a few minutes and most of the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from _common import print_header, print_table, use_test_helpers

use_test_helpers()  # the fault harnesses of tests/faults

from tests._net import Broker

from faults._harness import (
    HOST,
    PgSchema,
    Serve,
    metric,
    provision,
)

#: Runs ``gridflock serve`` with the control process's telemetry writes switched off.
_CONTROL = """
import sys
from gridflock.service.writer import StoreWriter
StoreWriter.telemetry = lambda self, batch: None  # the ingest workers write telemetry
from gridflock.cli import app
sys.argv = ["gridflock", "serve"]
app()
"""


def build_fleet(devices: int, gateways: int, seed: int = 1) -> Any:
    """A generated fleet of about ``devices`` devices, regrouped behind ``gateways`` gateways."""
    from gridflock.fleet.generate import generate_fleet

    homes = max(int(devices / 2.89), 1)
    spec = generate_fleet(homes, seed)
    ids = spec.all_devices()["id"].to_numpy(object)
    per = len(ids) / gateways
    gw_of = {d: f"gw-{int(i / per):06d}" for i, d in enumerate(ids.tolist())}
    for df in spec.devices.values():
        if len(df):
            df["gateway_id"] = [gw_of[d] for d in df["id"].tolist()]
    return spec


def _generator(
    port: int,
    gateways: list[tuple[str, list[str]]],
    connections: int,
    every_s: float,
    until: float,
    out: Any,
) -> None:
    """Publish each gateway's readings every ``every_s`` until ``until`` (epoch s)."""
    import paho.mqtt.client as paho

    clients = []
    for c in range(connections):
        cl = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"gen-{os.getpid()}-{c}")
        cl.max_queued_messages_set(0)
        cl.connect(HOST, port, keepalive=60)
        cl.loop_start()
        clients.append(cl)
    # one payload template per gateway; the time is put in at each send
    templates = []
    for gw, devs in gateways:
        readings = ",".join(f'{{"device":"{d}","ts":TS,"p_kw":-0.5,"soc":0.5}}' for d in devs)
        templates.append(
            (
                f"gf/v1/{gw}/telemetry",
                f'{{"v":1,"gateway":"{gw}","readings":[{readings}]}}',
                len(devs),
            )
        )
    n = len(templates)
    sent_msgs = sent_readings = failed = 0
    t0 = time.time()
    i = 0
    while time.time() < until:
        k = i % n
        topic, tpl, m = templates[k]
        ts = repr(round(time.time(), 3))
        info = clients[k % connections].publish(topic, tpl.replace("TS", ts), qos=0)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            sent_msgs += 1
            sent_readings += m
        else:
            failed += 1
        i += 1
        delay = t0 + i * every_s / n - time.time()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1.0)
    for cl in clients:
        cl.loop_stop()
        cl.disconnect()
    out.put({"messages": sent_msgs, "readings": sent_readings, "failed": failed})


def rss_mb(pid: int) -> float:
    """Resident memory of a process [MB]."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CommandWatch:
    """Arrival time of the first command message at each gateway after :meth:`arm`."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho

        self.first: dict[str, float] = {}
        self.armed = False
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cmd-watch")
        self.client.on_message = self._on
        self.client.connect(HOST, port, keepalive=60)
        self.client.subscribe("gf/v1/+/cmd", qos=0)
        self.client.loop_start()

    def _on(self, client: Any, userdata: Any, msg: Any) -> None:
        if self.armed:
            gw = msg.topic.split("/")[2]
            self.first.setdefault(gw, time.time())

    def arm(self) -> None:
        self.armed = True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--devices", type=int, default=250_000)
    p.add_argument("--gateways", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--generators", type=int, default=4)
    p.add_argument("--connections", type=int, default=4, help="MQTT connections per generator")
    p.add_argument("--every", type=float, default=30.0, help="seconds between a gateway's messages")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window [s]")
    p.add_argument("--warmup", type=float, default=40.0, help="load before the window [s]")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args()
    print_header("Scale: devices behind gateways, ingest workers and a control process")
    os.system("uptime")
    t_build = time.monotonic()
    spec = build_fleet(args.devices, args.gateways)
    devs = spec.all_devices()
    n_dev = len(devs)
    by_gw: dict[str, list[str]] = {}
    for d, g in zip(devs["id"].tolist(), devs["gateway_id"].tolist(), strict=True):
        by_gw.setdefault(str(g), []).append(str(d))
    gws = sorted(by_gw.items())
    took = time.monotonic() - t_build
    print(f"fleet: {n_dev:,} devices behind {len(gws):,} gateways ({took:.0f} s)")
    figures: dict[str, Any] = {f"arg_{k}": v for k, v in vars(args).items() if k != "out"}
    figures.update(devices=n_dev, gateways=len(gws))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        schema = PgSchema("gf_scale")
        stack.callback(schema.drop)
        t = time.monotonic()
        key = provision(schema, spec)
        print(f"fleet stored in PostgreSQL ({time.monotonic() - t:.0f} s)")
        del spec, devs
        broker = Broker(work / "broker")
        broker.start()
        stack.callback(broker.stop)
        common = {
            "database_url": schema.url,
            "mqtt_url": broker.url,
            "telemetry_flush_s": "1",
            "gateway_max_messages_per_s": "10",
            "log_level": "warning",
        }
        workers = []
        for n in range(args.workers):
            wd = work / f"ingest-{n}"
            wd.mkdir()
            w = Serve(wd, "", role="ingest", mqtt_client_id=f"gridflock-ingest-{n}", **common)
            stack.callback(w.cleanup)
            w.start()
            workers.append(w)
        cd = work / "control"
        cd.mkdir()
        control = Serve(
            cd,
            key,
            mqtt_client_id="gridflock-control-1",
            control_interval_s="2",
            forecast_enabled="false",
            **common,
        )
        stack.callback(control.cleanup)
        with control.log.open("ab") as log:
            control.proc = __import__("subprocess").Popen(
                [sys.executable, "-c", _CONTROL],
                env=control.env,
                cwd=cd,
                stdout=log,
                stderr=__import__("subprocess").STDOUT,
            )
        control.started.append(control.proc)
        for w in workers:
            w.wait_answering(180)
        control.wait_answering(300)
        print("workers and control answering")
        watch = CommandWatch(broker.port)
        stack.callback(watch.close)
        q: Any = mp.Queue()
        until = time.time() + args.warmup + args.seconds + 30
        slices = [gws[i :: args.generators] for i in range(args.generators)]
        gens = [
            mp.Process(
                target=_generator,
                args=(broker.port, s, args.connections, args.every, until, q),
                daemon=True,
            )
            for s in slices
        ]
        for g in gens:
            g.start()
        time.sleep(args.warmup)

        def scrape(s: Serve) -> str:
            """``/metrics``, waiting as long as a saturated process needs to answer."""
            with httpx.Client(timeout=60) as c:
                return c.get(s.base + "/metrics").text

        def accepted(s: Serve) -> float:
            return metric(scrape(s), "gridflock_telemetry_readings_total", outcome="accepted")

        def applied() -> float:
            return metric(scrape(control), "gridflock_telemetry_readings_total", outcome="applied")

        count = "SELECT count(*) FROM {s}.telemetry"
        t0 = time.monotonic()
        a0 = [accepted(w) for w in workers]
        c0 = applied()
        r0 = schema.scalar(count)
        rss_peak: dict[str, float] = {}
        pids = {f"ingest-{i}": w.proc.pid for i, w in enumerate(workers) if w.proc}
        assert control.proc is not None
        pids["control"] = control.proc.pid
        pids["mosquitto"] = broker.proc.pid if broker.proc else 0
        # the event: 30 % of the fleet's up flexibility, half-way through the window
        time.sleep(args.seconds / 2)
        fleet = control.get("/fleet", timeout=60).json()
        figures["devices_online_at_event"] = fleet["devices_online"]
        target = round(0.3 * float(fleet["flex_up_kw"]), 1)
        watch.arm()
        posted = time.time()
        r = control.post(
            "/events", {"target_kw": target, "duration_s": 600, "scope": "fleet"}, timeout=60
        )
        answered = time.time()
        figures["event_post_status"] = r.status_code
        figures["event_post_s"] = round(answered - posted, 3)
        while time.monotonic() - t0 < args.seconds:
            for name, pid in pids.items():
                with contextlib.suppress(OSError):
                    rss_peak[name] = max(rss_peak.get(name, 0.0), rss_mb(pid))
            time.sleep(1.0)
        span = time.monotonic() - t0
        a1 = [accepted(w) for w in workers]
        c1 = applied()
        r1 = schema.scalar(count)
        lat = np.array(sorted(watch.first.values())) - posted
        for g in gens:
            g.join(timeout=args.seconds + 120)
        sent = [q.get(timeout=10) for _ in gens]
        figures.update(
            {
                "window_s": round(span, 1),
                "offered_readings_s": round(n_dev / args.every),
                "generated": sent,
                "accepted_per_worker_s": [
                    round((b - a) / span) for a, b in zip(a0, a1, strict=True)
                ],
                "accepted_total_s": round(sum(a1) - sum(a0)) / span,
                "control_applied_s": round((c1 - c0) / span),
                "rows_per_s": round((r1 - r0) / span),
                "gateways_commanded": len(lat),
                "event_latency_p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
                "event_latency_p99_s": float(np.percentile(lat, 99)) if len(lat) else None,
                "event_latency_max_s": float(lat.max()) if len(lat) else None,
                "rss_mb": {k: round(v, 1) for k, v in rss_peak.items()},
                "rss_kb_per_device": {k: round(v * 1024 / n_dev, 2) for k, v in rss_peak.items()},
                "worker_health": [
                    httpx.get(w.base + "/health", timeout=60).json() for w in workers
                ],
            }
        )
    os.system("uptime")
    print_table("Scale", ["figure", "value"], [(k, json.dumps(v)) for k, v in figures.items()])
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
