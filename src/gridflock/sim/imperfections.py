"""The twin's real-world imperfections: latency, dropouts, outages, disobedience, noise."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Imperfections"]


@dataclass(frozen=True)
class Imperfections:
    """How far the twin's devices fall short of ideal; all draws are seeded.

    Parameters
    ----------
    latency_median_s : command delivery latency, median [s] (lognormal)
    latency_sigma : spread of the log latency [1]
    dropout_rate : probability that one reading is lost [1]
    offline_rate : share of devices that drop off the network mid-run, for good [1]
    ignore_rate : share of devices that acknowledge but ignore commands [1]
    noise_kw : standard deviation of the power measurement noise [kW]

    """

    latency_median_s: float = 3.0
    latency_sigma: float = 0.7
    dropout_rate: float = 0.02
    offline_rate: float = 0.01
    ignore_rate: float = 0.02
    noise_kw: float = 0.02

    def __post_init__(self) -> None:
        for name in ("dropout_rate", "offline_rate", "ignore_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        for name in ("latency_median_s", "latency_sigma", "noise_kw"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @staticmethod
    def ideal() -> Imperfections:
        """A twin with perfect devices and network."""
        return Imperfections(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
