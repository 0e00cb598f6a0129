"""What the link keeps per gateway and per command: rate buckets and the commands sent."""

from __future__ import annotations

from dataclasses import dataclass

from gridflock.gateways.mqtt.protocol import MAX_READINGS

__all__ = ["TOKEN_SLACK", "Bucket", "GatewayLimits", "SentCommand"]


@dataclass(frozen=True)
class GatewayLimits:
    """Per-gateway rate limits of telemetry (token buckets).

    A gateway may send ``messages_per_s`` messages and ``readings_per_s`` readings per
    second on average, and bursts of ``burst_s`` seconds' worth; a message beyond
    either bucket is refused whole, answered (once per control cycle and gateway) and
    counted as ``rate_limited``. The defaults leave a gateway reporting every second
    with up to 2,000 devices (an OEM cloud) untouched.
    """

    messages_per_s: float = 10.0
    readings_per_s: float = 2_000.0
    burst_s: float = 10.0

    def __post_init__(self) -> None:
        if min(self.messages_per_s, self.readings_per_s, self.burst_s) <= 0:
            raise ValueError("rate limits and burst_s must be positive")


class Bucket:
    """A gateway's two token buckets (messages, readings), refilled lazily.

    Each holds at least one whole message (1 message, ``MAX_READINGS`` readings), so a
    low rate slows a gateway down but never locks it out.
    """

    __slots__ = ("messages", "readings", "t")

    def __init__(self, limits: GatewayLimits, now: float) -> None:
        self.messages, self.readings = _capacity(limits)
        self.t = now

    def refill(self, limits: GatewayLimits, now: float) -> None:
        dt = max(now - self.t, 0.0)
        self.t = now
        cap_m, cap_r = _capacity(limits)
        self.messages = min(self.messages + dt * limits.messages_per_s, cap_m)
        self.readings = min(self.readings + dt * limits.readings_per_s, cap_r)


def _capacity(limits: GatewayLimits) -> tuple[float, float]:
    """Bucket sizes: ``burst_s`` seconds' worth, and at least one whole message."""
    return (
        max(limits.messages_per_s * limits.burst_s, 1.0),
        max(limits.readings_per_s * limits.burst_s, float(MAX_READINGS)),
    )


#: Tokens short of a whole one by this much still count as whole: epoch seconds near 2e9
#: carry ~1e-7 s of rounding, which a gateway exactly at its rate must not pay for.
TOKEN_SLACK = 1e-4


@dataclass(slots=True)
class SentCommand:
    """A command sent and not yet settled: where it went and until when it holds."""

    gateway: str
    device: str
    valid_until: float
    acked: bool = False
