"""The CSMS side of one charge point's connection, for OCPP 1.6J and 2.0.1.

Each class answers what a charge point sends (boot, heartbeat, status, authorisation,
transactions, meter values) through the ``ocpp`` library's routing, and hands what it
learnt to a :class:`Sink` (the :class:`~gridflock.gateways.ocpp.link.OcppLink`), which
turns it into telemetry, statuses and transaction state. Requests the CSMS makes
(SetChargingProfile and the rest) go out through the library's ``call``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

from ocpp.routing import on as _untyped_on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from gridflock.gateways.ocpp._profiles import iso, parse_iso

__all__ = ["Csms16", "Csms201", "Sink"]

F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The ``ocpp`` library's route decorator, typed."""
    return cast("Callable[[F], F]", _untyped_on(action))


class Sink(Protocol):
    """What the CSMS does with what a charge point says (implemented by the link)."""

    heartbeat_s: int

    def now(self) -> float:
        """The service clock [UTC epoch s]."""
        ...

    def booted(self, cp_id: str, vendor: str, model: str) -> None:
        """The charge point announced itself."""
        ...

    def connector_status(self, cp_id: str, connector: int, status: str) -> None:
        """A connector (1.6) or EVSE (2.0.1) changed state (Available, Charging...)."""
        ...

    def authorize(self, cp_id: str, id_tag: str) -> str:
        """The local policy's verdict on an id tag: Accepted, Blocked, Invalid..."""
        ...

    def transaction_started(self, cp_id: str, connector: int, tx_id: str) -> None:
        """A transaction runs on ``connector``."""
        ...

    def transaction_ended(self, cp_id: str, tx_id: str) -> None:
        """Transaction ``tx_id`` is over."""
        ...

    def new_transaction_id(self, cp_id: str) -> int:
        """A fresh OCPP 1.6 transaction id (the CSMS assigns them in 1.6)."""
        ...

    def charging_needs(
        self, cp_id: str, connector: int, e_need_kwh: float | None, departure_ts: float | None
    ) -> None:
        """The car's own energy need and departure (OCPP 2.0.1 NotifyEVChargingNeeds)."""
        ...

    def meter_values(self, cp_id: str, connector: int, values: Sequence[Mapping[str, Any]]) -> None:
        """Meter values of ``connector``, each with ``timestamp`` and ``sampled_value``."""
        ...


class Csms16(ChargePoint16):  # type: ignore[misc]
    """One OCPP 1.6J charge point, from the CSMS's side."""

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        sink: Sink,
        response_timeout: float,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(cp_id, connection, response_timeout, logger or logging.getLogger("ocpp"))
        self.sink = sink

    @on(Action16.boot_notification)
    def on_boot(
        self, charge_point_vendor: str, charge_point_model: str, **_: Any
    ) -> result16.BootNotification:
        """Accept the charge point (its credentials were checked at the handshake)."""
        self.sink.booted(self.id, charge_point_vendor, charge_point_model)
        return result16.BootNotification(
            current_time=iso(self.sink.now()), interval=self.sink.heartbeat_s, status="Accepted"
        )

    @on(Action16.heartbeat)
    def on_heartbeat(self) -> result16.Heartbeat:
        """Answer with the CSMS time (chargers set their clocks by it)."""
        return result16.Heartbeat(current_time=iso(self.sink.now()))

    @on(Action16.status_notification)
    def on_status(
        self, connector_id: int, error_code: str, status: str, **_: Any
    ) -> result16.StatusNotification:
        """Note the connector's state."""
        self.sink.connector_status(self.id, connector_id, status)
        return result16.StatusNotification()

    @on(Action16.authorize)
    def on_authorize(self, id_tag: str) -> result16.Authorize:
        """Apply the local id-tag policy."""
        return result16.Authorize(id_tag_info={"status": self.sink.authorize(self.id, id_tag)})

    @on(Action16.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ) -> result16.StartTransaction:
        """Give the transaction an id; it runs even for a refused tag (the charger stops it)."""
        verdict = self.sink.authorize(self.id, id_tag)
        tx = self.sink.new_transaction_id(self.id)
        if verdict == "Accepted":
            self.sink.transaction_started(self.id, connector_id, str(tx))
        return result16.StartTransaction(transaction_id=tx, id_tag_info={"status": verdict})

    @on(Action16.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any
    ) -> result16.StopTransaction:
        """Close the transaction; meter values sent with it are taken as readings."""
        self.sink.transaction_ended(self.id, str(transaction_id))
        return result16.StopTransaction()

    @on(Action16.meter_values)
    def on_meter_values(
        self, connector_id: int, meter_value: list[Any], transaction_id: int | None = None
    ) -> result16.MeterValues:
        """Take the readings."""
        self.sink.meter_values(self.id, connector_id, meter_value)
        return result16.MeterValues()


class Csms201(ChargePoint201):  # type: ignore[misc]
    """One OCPP 2.0.1 charging station, from the CSMS's side."""

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        sink: Sink,
        response_timeout: float,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(cp_id, connection, response_timeout, logger or logging.getLogger("ocpp"))
        self.sink = sink
        self._evse_of_tx: dict[str, int] = {}
        """EVSE of each running transaction (later events may leave ``evse`` out)."""

    @on(Action201.boot_notification)
    def on_boot(
        self, charging_station: dict[str, Any], reason: str, **_: Any
    ) -> result201.BootNotification:
        """Accept the station (its credentials were checked at the handshake)."""
        self.sink.booted(
            self.id, str(charging_station.get("vendor_name")), str(charging_station.get("model"))
        )
        return result201.BootNotification(
            current_time=iso(self.sink.now()), interval=self.sink.heartbeat_s, status="Accepted"
        )

    @on(Action201.heartbeat)
    def on_heartbeat(self, **_: Any) -> result201.Heartbeat:
        """Answer with the CSMS time."""
        return result201.Heartbeat(current_time=iso(self.sink.now()))

    @on(Action201.status_notification)
    def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> result201.StatusNotification:
        """Note the EVSE's state."""
        self.sink.connector_status(self.id, evse_id, connector_status)
        return result201.StatusNotification()

    @on(Action201.authorize)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> result201.Authorize:
        """Apply the local id-token policy."""
        status = self.sink.authorize(self.id, str(id_token.get("id_token")))
        return result201.Authorize(id_token_info={"status": status})

    @on(Action201.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        meter_value: list[Any] | None = None,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> result201.TransactionEvent:
        """Follow the transaction and take the meter values it carries."""
        tx = str(transaction_info["transaction_id"])
        verdict = None if id_token is None else self.sink.authorize(self.id, id_token["id_token"])
        evse_id = int(evse["id"]) if evse else self._evse_of_tx.get(tx)
        if evse_id is not None and event_type != "Ended" and len(self._evse_of_tx) < 64:
            self._evse_of_tx[tx] = evse_id
        if event_type == "Ended":
            self._evse_of_tx.pop(tx, None)
            self.sink.transaction_ended(self.id, tx)
        elif evse_id is not None and verdict in (None, "Accepted"):
            self.sink.transaction_started(self.id, evse_id, tx)
        if meter_value and evse_id is not None:
            self.sink.meter_values(self.id, evse_id, meter_value)
        return result201.TransactionEvent(
            id_token_info=None if verdict is None else {"status": verdict}
        )

    @on(Action201.notify_ev_charging_needs)
    def on_charging_needs(
        self, charging_needs: dict[str, Any], evse_id: int, **_: Any
    ) -> result201.NotifyEVChargingNeeds:
        """Take the car's energy need [Wh] and departure time."""
        ac = charging_needs.get("ac_charging_parameters") or {}
        wh = ac.get("energy_amount")
        self.sink.charging_needs(
            self.id,
            evse_id,
            None if wh is None else float(wh) / 1000.0,
            parse_iso(charging_needs.get("departure_time")),
        )
        return result201.NotifyEVChargingNeeds(status="Accepted")

    @on(Action201.meter_values)
    def on_meter_values(
        self, evse_id: int, meter_value: list[Any], **_: Any
    ) -> result201.MeterValues:
        """Take the readings."""
        self.sink.meter_values(self.id, evse_id, meter_value)
        return result201.MeterValues()
