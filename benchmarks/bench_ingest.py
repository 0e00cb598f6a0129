"""Telemetry through MQTT into the fleet state: publisher(s) → Mosquitto → MqttLink → apply.

Target (docs/architecture.md): ≥ 100,000 readings/s with batched gateways, ≥ 20,000 single-reading
messages/s per service process.

Setup (everything on 127.0.0.1, bounded in count and time):

- the service side runs in this process: a real :class:`MqttLink` (gmqtt, subscribed
  through the shared subscription ``$share/gridflock/gf/v1/+/telemetry``) and, every
  ``--interval`` seconds, the same path ``Runtime.control_cycle`` takes:
  ``for batch in link.receive(): state.apply(batch)``. Readings are counted when
  ``FleetState.apply`` reports them applied, not when published;
- ``--publishers`` child processes (multiprocessing, fork) publish QoS 0 on
  ``gf/v1/<gw>/telemetry``. To keep the publishers light on the 2 shared cores they
  speak MQTT 3.1.1 on a raw socket and send **pre-encoded** payloads (made with
  ``encode_telemetry`` before the clock starts) in chunks of 64 packets;
- (a) batched: 100 readings per message, one gateway per 100 devices; (b) single: one
  reading per message. The fleet is ``generate_fleet`` with ≥ ``--devices`` devices; each
  message round covers the whole fleet once.

Rate = readings applied / (last − first arrival at the link) — the window is stamped by a
10 ms poller of ``link.counts["messages"]``. Mosquitto drops QoS 0 messages for a
subscriber that is more than ~1,020 messages behind (``max_queued_messages`` 1000 +
``max_inflight_messages`` 20, the defaults), so when the service cannot keep up the
shortfall shows as "lost", and the rate is what the service sustained.

    python benchmarks/bench_ingest.py [--devices 100000] [--mode batched|single|both]
        [--readings 2000000] [--messages 300000] [--publishers 1] [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import multiprocessing as mp
import pstats
import socket
import time
from dataclasses import dataclass

import numpy as np

from _broker import connect_packet, private_broker, utf8, varint
from _common import Stopwatch, console, homes_for, parser, print_header, print_table
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState
from gridflock.gateways.mqtt.codec import encode_telemetry
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.gateways.mqtt.protocol import telemetry_topic

TARGET_BATCHED = 100_000  # readings/s
TARGET_SINGLE = 20_000  # messages/s per process
MAX_SECONDS = 90.0  # hard bound on one phase


# ---------------------------------------------------------------- raw MQTT 3.1.1 publisher
def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH packet."""
    body = utf8(topic) + payload
    return b"\x30" + varint(len(body)) + body


def raw_client(addr: tuple[str, int], client_id: str) -> socket.socket:
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id))
    ack = sock.recv(4)
    if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"CONNACK refused: {ack!r}")
    return sock


def publisher(
    addr: tuple[str, int],
    packets: list[bytes],
    counts: list[int],
    total: int,
    rate: float,
    start: mp.Event,
    out: mp.Queue,
    name: str,
) -> None:
    """Send ``total`` packets (cycling over ``packets``) at ``rate`` messages/s (child)."""
    sock = raw_client(addr, name)
    per = max(1, min(64, int(rate / 500)))  # ~500 paced chunks per second
    chunks = [b"".join(packets[i : i + per]) for i in range(0, len(packets), per)]
    sizes = [len(packets[i : i + per]) for i in range(0, len(packets), per)]
    readings = [sum(counts[i : i + per]) for i in range(0, len(packets), per)]
    start.wait(30)
    t0 = time.perf_counter()
    deadline = t0 + MAX_SECONDS
    sent = n_readings = 0
    i = 0
    while sent < total and time.perf_counter() < deadline:
        sock.sendall(chunks[i])
        sent += sizes[i]
        n_readings += readings[i]
        i = (i + 1) % len(chunks)
        ahead = t0 + sent / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    dt = time.perf_counter() - t0
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    out.put((name, sent, dt, n_readings))


# ---------------------------------------------------------------- one phase
@dataclass
class Phase:
    mode: str
    published_msgs: int
    published_readings: int
    publish_s: float
    arrived_msgs: int
    applied: int
    window_s: float
    apply_s: float
    cycles: int

    @property
    def readings_s(self) -> float:
        return self.applied / self.window_s if self.window_s else 0.0

    @property
    def messages_s(self) -> float:
        return self.arrived_msgs / self.window_s if self.window_s else 0.0


def payloads(state: FleetState, per_msg: int, ts: float, rng: np.random.Generator) -> list[bytes]:
    """One round over the fleet: ``per_msg`` readings per message, one gateway per 100."""
    ids = state.device_ids
    n = len(ids)
    p = rng.normal(0.0, 2.0, n).round(3)
    soc = np.where(np.isfinite(state.soc), rng.random(n).round(3), np.nan)
    out = []
    for a in range(0, n, per_msg):
        b = min(a + per_msg, n)
        gw = f"bench-gw-{a // 100:05d}"
        out.append(
            publish_packet(
                telemetry_topic(gw),
                encode_telemetry(gw, ids[a:b], np.full(b - a, ts), p[a:b], soc[a:b]),
            )
        )
    return out


async def service_phase(
    state: FleetState,
    link: MqttLink,
    procs: list[mp.Process],
    start: mp.Event,
    interval: float,
    expect_readings: int,
    profile: cProfile.Profile | None,
) -> tuple[int, int, float, float, int]:
    """Drain and apply until the publishers are done and nothing arrived for 2 s."""
    base_msgs = link.counts["messages"]
    first = last = 0.0
    seen = base_msgs
    stop = asyncio.Event()

    async def stamp() -> None:
        nonlocal first, last, seen
        while not stop.is_set():
            m = link.counts["messages"]
            if m != seen:
                now = time.perf_counter()
                if not first:
                    first = now
                last, seen = now, m
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(stamp())
    applied, apply_s, cycles = 0, 0.0, 0
    t_start = time.perf_counter()
    start.set()
    while True:
        await asyncio.sleep(interval)
        t0 = time.perf_counter()
        if profile:
            profile.enable()
        for batch in link.receive():
            applied += state.apply(batch).applied
        if profile:
            profile.disable()
        apply_s += time.perf_counter() - t0
        cycles += 1
        now = time.perf_counter()
        done = not any(p.is_alive() for p in procs)
        quiet = now - max(last, t_start) > 2.0
        if (done and (quiet or applied >= expect_readings)) or now - t_start > MAX_SECONDS + 10:
            break
    stop.set()
    await poller
    return link.counts["messages"] - base_msgs, applied, max(last - first, 1e-9), apply_s, cycles


async def run_phase(
    addr: tuple[str, int],
    state: FleetState,
    mode: str,
    rate: float,
    duration: float,
    n_pub: int,
    interval: float,
    profile: bool,
) -> Phase:
    per_msg = 100 if mode == "batched" else 1
    rng = np.random.default_rng(1)
    with Stopwatch() as sw:
        packets = payloads(state, per_msg, time.time(), rng)
    n = state.n
    counts = [min(per_msg, n - a) for a in range(0, n, per_msg)]
    total = int(rate * duration)
    console.print(
        f"[{mode} @ {rate:,.0f} msgs/s offered] {len(packets):,} messages of "
        f"{per_msg} reading(s) ({sum(map(len, packets)) / len(packets):,.0f} B "
        f"each) encoded in {sw.s:.1f} s; sending {total:,} over {n_pub} "
        "publisher(s)",
        highlight=False,
    )
    # each device belongs to the gateway that publishes it (see payloads): one per 100 devices
    gw_of = {d: f"bench-gw-{i // 100:05d}" for i, d in enumerate(state.device_ids.tolist())}
    link = MqttLink(BrokerAddress(*addr, False, None, None), gw_of)
    runner = asyncio.create_task(link.run())
    while not link.connected:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # SUBACK
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=publisher,
            args=(
                addr,
                packets[i::n_pub],
                counts[i::n_pub],
                total // n_pub,
                rate / n_pub,
                start,
                out,
                f"bench-pub-{mode}-{i}",
            ),
            daemon=True,
        )
        for i in range(n_pub)
    ]
    for p in procs:
        p.start()
    await asyncio.sleep(1.0)  # publishers connected and chunked their packets
    prof = cProfile.Profile() if profile else None
    msgs, applied, window, apply_s, cycles = await service_phase(
        state, link, procs, start, interval, total * per_msg, prof
    )
    results = [out.get(timeout=10) for _ in procs]
    for p in procs:
        p.join(5)
    link.stop()
    await runner
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(14)
    bad = {k: v for k, v in link.counts.items() if k.startswith("rejected") and v}
    if bad or link.counts["connects"] != 1:
        console.print(f"[yellow]link counts: {dict(link.counts)}", highlight=False)
    sent = sum(r[1] for r in results)
    return Phase(
        mode,
        sent,
        sum(r[3] for r in results),
        max(r[2] for r in results),
        msgs,
        applied,
        window,
        apply_s,
        cycles,
    )


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=100_000, repeat=1)
    p.add_argument("--mode", choices=["batched", "single", "both"], default="both")
    p.add_argument(
        "--batched-rates",
        type=floats,
        default=[1_000, 2_000, 4_000, 8_000],
        help="offered messages/s of 100 readings (default 1000,2000,4000,8000)",
    )
    p.add_argument(
        "--single-rates",
        type=floats,
        default=[10_000, 20_000, 30_000],
        help="offered single-reading messages/s (default 10000,20000,30000)",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds of sending per rate")
    p.add_argument("--publishers", type=int, default=1, help="publisher processes")
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between drains (receive → apply); the service's control_interval_s is 2.0",
    )
    p.add_argument(
        "--broker",
        default=None,
        help="host:port of an existing broker (default: a private mosquitto)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile the service process")
    args = p.parse_args()
    print_header("Telemetry through MQTT into FleetState")
    spec = generate_fleet(homes_for(args.devices), args.seed)
    state = FleetState.from_spec(spec)
    del spec
    rows = []
    with private_broker(args.broker) as addr:
        console.print(
            f"fleet: {state.n:,} devices; broker {addr[0]}:{addr[1]} "
            f"({'given' if args.broker else 'private mosquitto, default limits'}); "
            f"service = this process (gmqtt MqttLink + FleetState.apply every "
            f"{args.interval:g} s); {args.publishers} raw-socket publisher "
            f"process(es); {mp.cpu_count()} cores shared by service, Mosquitto and "
            "publishers",
            highlight=False,
        )
        plan = []
        if args.mode in ("batched", "both"):
            plan += [("batched", r) for r in args.batched_rates]
        if args.mode in ("single", "both"):
            plan += [("single", r) for r in args.single_rates]
        for mode, rate in plan:
            ph = asyncio.run(
                run_phase(
                    addr,
                    state,
                    mode,
                    rate,
                    args.duration,
                    args.publishers,
                    args.interval,
                    args.profile,
                )
            )
            lost = 1 - ph.applied / ph.published_readings
            if mode == "batched":
                value, target, unit = ph.readings_s, TARGET_BATCHED, "readings/s"
            else:
                value, target, unit = ph.messages_s, TARGET_SINGLE, "msgs/s"
            # the offered rate is the ceiling: PASS when the target rate is offered and the
            # service keeps up with it (< 0.1 % lost, ≥ 98 % of the offered rate applied)
            per = 100 if mode == "batched" else 1
            ok = rate * per >= target and lost < 0.001 and value >= 0.98 * target
            rows.append(
                (
                    mode,
                    f"{rate:,.0f}",
                    f"{ph.published_msgs / ph.publish_s:,.0f}",
                    f"{ph.published_readings:,}",
                    f"{ph.applied:,}",
                    f"{lost:.2%}",
                    f"{ph.window_s:.2f}",
                    f"{ph.messages_s:,.0f}",
                    f"{ph.readings_s:,.0f}",
                    f"{ph.apply_s / ph.window_s:.1%}",
                    f"≥ {target:,} {unit}",
                    "–" if rate * per < target else "[green]PASS[/]" if ok else "[red]MISS[/]",
                )
            )
    print_table(
        "MQTT ingest (QoS 0, pre-encoded payloads; rates = applied over the arrival window; "
        "PASS = target rate offered and kept up with: < 0.1 % lost)",
        [
            "mode",
            "offered msgs/s",
            "sent msgs/s",
            "published readings",
            "applied readings",
            "lost",
            "window s",
            "msgs/s",
            "readings/s",
            "apply share",
            "target",
            "verdict",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
