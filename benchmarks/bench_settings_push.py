"""Grid-code settings to a fleet's gateways: build, encode and re-push at fleet scale.

    python benchmarks/bench_settings_push.py [--devices 100000] [--repeat 3]

A generated fleet's devices get their site profile's settings (``SettingsPusher.push``:
protocol v1 items from one document per template), with Dynamic Containment's droop and
each device's contracted kW for the product push; then every gateway's payloads are
encoded (``encode_settings``). Reported per pass: seconds (best of ``--repeat``) and the
encoded megabytes. Target: a whole fleet's push well inside one control cycle's budget of
the event loop (under 5 s at 100,000 devices), an unchanged re-push (a fleet import with
no settings change) under 1 s.
"""

from __future__ import annotations

import time

from _common import Stopwatch, console, homes_for, parser, print_header, print_table
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
        best, items, mb = float("inf"), 0, 0.0
        for _ in range(a.repeat):
            link = _Counting()
            pusher = SettingsPusher(link, time.time)
            if not fresh:
                pusher.push(spec)
                link.bytes = 0
            with Stopwatch() as sw:
                out = pusher.push(spec, force=fresh, **kw)  # type: ignore[arg-type]
            best = min(best, sw.s)
            items, mb = out["pushed"], link.bytes / 1e6
        rows.append((label, f"{items:,}", f"{best:.2f}", f"{mb:.1f}"))
    print_table("Push (best of --repeat)", ("case", "items", "s", "MB encoded"), rows)


if __name__ == "__main__":
    main()
