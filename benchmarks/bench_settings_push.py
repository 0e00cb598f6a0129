"""Grid-code settings to a fleet's gateways: build, encode and re-push at fleet scale.

    python benchmarks/bench_settings_push.py [--devices 100000] [--repeat 3]

A generated fleet's devices get their site profile's settings (``SettingsPusher.push``:
protocol v1 items from one document per template, built in a worker thread as at a fleet
import or an operator's push), with Dynamic Containment's droop and
each device's contracted kW for the product push; then every gateway's payloads are
encoded (``encode_settings``). The push runs on an asyncio loop as in the service: built
and queued by ``push``, then sent in steps (``drain``) with a ticker task between them that
records the longest the loop was held. Reported per case: seconds until the last item went
out (best of ``--repeat``), the longest stall of the loop (worst of ``--repeat``) and the
encoded megabytes. Targets at 100,000 devices: a whole push under 5 s, the loop never held
more than about 100 ms, an unchanged re-push (a fleet import with no settings change)
under 1 s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _common import console, homes_for, parser, print_header, print_table
from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.codec import encode_settings
from gridflock.service.gridcode import SettingsPusher


class _Counting:
    """A settings link that encodes what it is given, as the MQTT link does, and counts bytes."""

    def __init__(self) -> None:
        self.bytes = 0

    def send_settings(self, gateway: str, items: list[object]) -> bool:
        for payload in encode_settings(items, time.time()):  # type: ignore[arg-type]
            self.bytes += len(payload)
        return True


async def _pushed(
    pusher: SettingsPusher, spec: Any, kw: dict[str, Any]
) -> tuple[Any, float, float]:
    """Push as the service does; (summary, seconds until sent, the loop's longest stall)."""
    stall = 0.0
    done = False

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            t = time.perf_counter()
            stall = max(stall, t - last - 0.001)
            last = t

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    out = await pusher.push_async(spec, **kw)  # as an import or an operator's push
    while pusher.queued:  # the control loop's settings task
        pusher.drain()
        await asyncio.sleep(0)
    took = time.perf_counter() - t0
    done = True
    await tick
    return out, took, stall


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=100_000, repeat=3)
    a = p.parse_args()
    print_header("Grid-code settings push")
    spec = generate_fleet(homes_for(a.devices), a.seed)
    console.print(f"fleet: {spec.n_devices:,} devices", highlight=False)
    rows = []
    cases = (
        ("profiles, first push", {}, True),
        ("unchanged re-push (import)", {}, False),
        ("GB-DC to every device", {"product": "GB-DC", "deadband_hz": 0.015}, True),
    )
    for label, kw, fresh in cases:
        best, worst, items, mb = float("inf"), 0.0, 0, 0.0
        for _ in range(a.repeat):
            link = _Counting()
            pusher = SettingsPusher(link, time.time)
            if not fresh:
                pusher.push(spec)
                while pusher.queued:
                    pusher.drain()
                link.bytes = 0
            out, took, stall = asyncio.run(_pushed(pusher, spec, {"force": fresh, **kw}))
            best, worst = min(best, took), max(worst, stall)
            items, mb = out["pushed"], link.bytes / 1e6
        rows.append((label, f"{items:,}", f"{best:.2f}", f"{worst * 1000:.0f}", f"{mb:.1f}"))
    print_table(
        "Push (best of --repeat; stall: worst)",
        ("case", "items", "s", "max loop stall ms", "MB encoded"),
        rows,
    )


if __name__ == "__main__":
    main()
