"""Event created → commands delivered over MQTT, per device: p50 / p99 / max and commands/s.

Target (docs/architecture.md): p99 < 1 s for 100,000 simulated devices behind 25,000 gateways.

Setup (127.0.0.1 only, bounded):

- fleet: ``generate_fleet`` with ≥ ``--devices`` devices, gateways reassigned round-robin so
  the devices spread over ``min(25,000, devices)`` gateways; the live state is the twin's
  (started 18:00 local on 2026-07-15, 5 one-minute steps applied), and the service clock is
  shifted to the twin's time so the readings are fresh;
- service (this process): the real :class:`Runtime` with a real :class:`MqttLink` (gmqtt,
  commands QoS 1, one message per gateway) and SQLite as its store;
- subscriber (a child process): a raw-socket MQTT 3.1.1 client subscribed to
  ``gf/v1/+/cmd`` (granted QoS 0) that stamps each TCP read with ``time.time()`` and parses
  the payloads only after the run, so it stays ahead of the broker;
- ``--mode cycle`` (default): ``t0`` = just before ``await runtime.create_event(...)``, then
  ``runtime.control_cycle()`` at once — the processing + transport latency;
  ``--mode loop``: ``Runtime.run()`` is running (its 2 s control loop and the store writer)
  and the event is created at a random moment, so the latency includes the wait for the
  next control cycle (uniform in 0..``control_interval_s``).

The event asks for half of the fleet's up flexibility (the summary's ``flex_up_kw``), scope
the whole fleet, 15 minutes. A private mosquitto with default limits is started (see
``_broker.py``) unless ``--broker host:port`` is given.

    python benchmarks/bench_dispatch_latency.py [--devices 10000,100000] [--mode cycle|loop]
        [--repeat 3] [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import multiprocessing as mp
import pstats
import random
import socket
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from _broker import connect_packet, private_broker, utf8, varint
from _common import console, homes_for, live_start, parser, print_header, print_table
from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.events import Scope
from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.service.runtime import Runtime
from gridflock.sim.twin import Twin
from gridflock.store import Store

GATEWAYS = 25_000
TARGET_P99_S = 1.0
IDLE_S = 3.0  # the subscriber stops this long after the last message
MAX_S = 60.0


# ---------------------------------------------------------------- subscriber (child process)
def subscriber(addr: tuple[str, int], topic: str, ready: mp.Event, out: mp.Queue) -> None:
    """Collect every message on ``topic`` with its arrival time; report per command."""
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.sendall(connect_packet("bench-cmd-sub"))
    body = struct.pack("!H", 1) + utf8(topic) + b"\x00"
    sock.sendall(b"\x82" + varint(len(body)) + body)
    buf = bytearray()
    msgs: list[tuple[float, bytes]] = []
    subscribed = False
    first = last = 0.0
    sock.settimeout(0.2)
    t_start = time.time()
    while True:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            data = None
        now = time.time()
        if data == b"":
            break
        if data:
            buf += data
            pos = 0
            while len(buf) - pos >= 2:
                kind = buf[pos]
                mult, length, i = 1, 0, pos + 1
                while i < len(buf):
                    b = buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    break
                if i + length > len(buf) or (buf[i - 1] & 0x80):
                    break
                if kind >> 4 == 3:
                    tlen = (buf[i] << 8) | buf[i + 1]
                    start = i + 2 + tlen + (2 if kind & 0x06 else 0)
                    msgs.append((now, bytes(buf[start : i + length])))
                    if not first:
                        first = now
                    last = now
                elif kind == 0x90:
                    subscribed = True
                    ready.set()
                pos = i + length
            del buf[:pos]
        if (first and now - last > IDLE_S) or now - t_start > MAX_S:
            break
    sock.close()
    if not subscribed:
        ready.set()
    devices, arrivals = [], []
    for ts, payload in msgs:
        for c in json.loads(payload)["commands"]:
            devices.append(c["device"])
            arrivals.append(ts)
    out.put((len(msgs), devices, arrivals))


# ---------------------------------------------------------------- service side
def fleet(devices: int, seed: int) -> tuple:
    spec = generate_fleet(homes_for(devices), seed)
    j = 0
    n_gw = min(GATEWAYS, spec.n_devices)
    for df in spec.devices.values():
        df["gateway_id"] = [f"gw-{k % n_gw:05d}" for k in range(j, j + len(df))]
        j += len(df)
    return spec, n_gw


async def one_run(
    addr: tuple[str, int],
    spec,
    mode: str,
    tmp: Path,
    seed: int,
    profile: cProfile.Profile | None,
) -> dict[str, float]:
    twin = Twin(spec, live_start(), 5, 60.0, seed)
    offset = twin.now - time.time()
    db = f"sqlite:///{tmp / f'svc-{random.randrange(1 << 30)}.db'}"
    store = Store(db)
    store.upgrade()
    settings = Settings(database_url=db, mqtt_url=f"mqtt://{addr[0]}:{addr[1]}")
    devs = spec.all_devices()
    link = MqttLink(
        BrokerAddress(*addr, False, None, None),
        dict(zip(devs["id"], devs["gateway_id"], strict=True)),
    )
    runtime = Runtime(settings, store, spec, link, clock=lambda: time.time() + offset)
    for _ in range(5):
        twin.step()
        for batch in twin.receive():
            runtime.state.apply(batch)
    del twin
    runtime.control_cycle()
    flex_up = float(runtime.fleet_summary()["flex_up_kw"])
    target = float(f"{0.5 * flex_up:.3g}")
    ctx = mp.get_context("fork")
    ready, out = ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=subscriber, args=(addr, "gf/v1/+/cmd", ready, out), daemon=True)
    sub.start()
    ready.wait(10)
    link_task = asyncio.create_task(link.run())
    while not link.connected:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    who = Principal("bench", "bench", Role.OPERATOR)
    loop_task = None
    if mode == "loop":
        loop_task = asyncio.create_task(runtime.run())
        await asyncio.sleep(2.5 + random.random() * settings.control_interval_s)
    t0 = time.time()
    if profile:
        profile.enable()
    await runtime.create_event(target, None, 900.0, Scope(), who)
    cycle_s = float("nan")
    if mode == "cycle":
        runtime.control_cycle()
        cycle_s = time.time() - t0
    if profile:
        profile.disable()
    while link.counts["commands"] == 0 and time.time() - t0 < 10:
        await asyncio.sleep(0.01)
    t_sent = time.time()
    n_msgs, devices, arrivals = await asyncio.to_thread(out.get, True, MAX_S + 10)
    sub.join(5)
    runtime.stop()
    if loop_task:
        await loop_task
    link.stop()
    await link_task
    store.close()
    lat = np.asarray(arrivals) - t0
    sent = link.counts["commands"]
    return {
        "devices": runtime.state.n,
        "online": float(runtime.state.online.mean()),
        "target_kw": target,
        "sent": sent,
        "received": len(devices),
        "unique": len(set(devices)),
        "messages": n_msgs,
        "cycle_s": cycle_s,
        "first_send_s": t_sent - t0,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "min": float(lat.min()) if len(lat) else float("nan"),
        "cmd_s": len(lat) / (lat.max() - lat.min()) if len(lat) > 1 else float("nan"),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeat=3)
    p.add_argument("--devices", default="10000,100000", help="fleet sizes (comma-separated)")
    p.add_argument("--mode", choices=["cycle", "loop"], default="cycle")
    p.add_argument("--broker", default=None, help="host:port of an existing broker")
    p.add_argument(
        "--broker-conf",
        default="",
        help="extra lines for the private broker, ';'-separated, e.g. "
        "'max_inflight_messages 65535' (default: none, mosquitto's defaults)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile create_event + the cycle")
    args = p.parse_args()
    print_header(f"Event → commands over MQTT (mode {args.mode})")
    rows = []
    with (
        private_broker(args.broker, args.broker_conf) as addr,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for n in (int(x) for x in args.devices.split(",")):
            spec, n_gw = fleet(n, args.seed)
            console.print(
                f"fleet: {spec.n_devices:,} devices behind {n_gw:,} gateways; broker "
                f"{addr[0]}:{addr[1]}; {args.repeat} runs",
                highlight=False,
            )
            for r in range(args.repeat):
                prof = cProfile.Profile() if args.profile and r == args.repeat - 1 else None
                res = asyncio.run(one_run(addr, spec, args.mode, Path(tmp), args.seed + r, prof))
                if prof:
                    pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
                ok = res["p99"] < TARGET_P99_S and res["received"] == res["sent"]
                rows.append(
                    (
                        f"{res['devices']:,}",
                        r + 1,
                        f"{res['online']:.0%}",
                        f"{res['target_kw']:,.0f}",
                        f"{res['sent']:,}",
                        f"{res['received']:,} ({res['messages']:,} msgs)",
                        f"{res['cycle_s'] * 1e3:,.0f}",
                        f"{res['first_send_s'] * 1e3:,.0f}",
                        f"{res['min'] * 1e3:,.0f}",
                        f"{res['p50'] * 1e3:,.0f}",
                        f"{res['p99'] * 1e3:,.0f}",
                        f"{res['max'] * 1e3:,.0f}",
                        f"{res['cmd_s']:,.0f}",
                        "[green]PASS[/]" if ok else "[red]MISS[/]",
                    )
                )
    print_table(
        f"create_event → command arrival at the subscriber (mode {args.mode}; target p99 < 1 s)",
        [
            "devices",
            "run",
            "online",
            "target kW",
            "commands sent",
            "received",
            "cycle ms",
            "→ link.send ms",
            "first ms",
            "p50 ms",
            "p99 ms",
            "max ms",
            "cmds/s (first→last)",
            "verdict",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
