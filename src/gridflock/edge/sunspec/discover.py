"""``gridflock edge discover``: which SunSpec devices answer on a range of unit ids, with what."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from gridflock.edge.sunspec._transport import PymodbusSunSpecDevice, SunSpecModbusClientError
from gridflock.edge.sunspec.models import DER_CONTROL_MODELS, SUPPORTED_MODELS

__all__ = ["DiscoveredUnit", "discover", "parse_units"]


@dataclass(frozen=True)
class DiscoveredUnit:
    """What one unit id answered: its SunSpec models, identity, or why nothing was found."""

    host: str
    port: int
    unit: int
    models: list[int] = field(default_factory=list)
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    error: str | None = None

    @property
    def found(self) -> bool:
        """Whether a SunSpec map answered."""
        return self.error is None

    @property
    def unsupported(self) -> list[int]:
        """Models found that the gateway does not use."""
        return [m for m in self.models if m not in SUPPORTED_MODELS]

    @property
    def der_models(self) -> list[int]:
        """The DER control models found (704 limits, 705 volt-var, 706 volt-watt, 711 droop)."""
        return [m for m in self.models if m in DER_CONTROL_MODELS]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (``--json``)."""
        return {
            "host": self.host,
            "port": self.port,
            "unit": self.unit,
            "found": self.found,
            "models": self.models,
            "unsupported_models": self.unsupported,
            "der_models": self.der_models,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "error": self.error,
        }


def parse_units(text: str) -> list[int]:
    """Unit ids from ``1-10``, ``3``, ``1,2,5-7``; ValueError saying what is wrong."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
            else:
                a = b = int(part)
        except ValueError:
            raise ValueError(f"unit range {text!r}: use numbers like 1-10 or 1,3,5") from None
        if not 1 <= a <= b <= 247:
            raise ValueError(f"unit range {part!r}: unit ids are 1-247, low to high")
        out.extend(range(a, b + 1))
    return sorted(set(out))


def _one(host: str, port: int, unit: int, timeout_s: float) -> DiscoveredUnit:
    dev = PymodbusSunSpecDevice(host, port, unit, timeout_s)
    try:
        dev.scan(connect=False, full_model_read=False)
        models = [int(k) for k in dev.models if isinstance(k, int)]
        mn = md = sn = None
        if 1 in dev.models:
            common = dev.models[1][0]
            common.read()
            mn, md, sn = (
                _text(common.Mn.value),
                _text(common.Md.value),
                _text(common.SN.value),
            )
        return DiscoveredUnit(host, port, unit, models, mn, md, sn)
    except (SunSpecModbusClientError, OSError) as e:
        msg = " ".join(str(e).split())
        if "Base address" in msg:
            msg = "no SunSpec map at 40000, 0 or 50000"
        return DiscoveredUnit(host, port, unit, error=msg[:200])
    finally:
        dev.close()


def _text(v: object) -> str | None:
    return None if v is None else str(v).strip("\x00 ") or None


async def discover(
    host: str, port: int, units: Sequence[int], timeout_s: float = 1.0
) -> list[DiscoveredUnit]:
    """Scan each unit id in turn (one link at a time, as serial gateways need)."""
    return [await asyncio.to_thread(_one, host, port, u, timeout_s) for u in units]
