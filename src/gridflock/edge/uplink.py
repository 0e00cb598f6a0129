"""The edge gateway's MQTT connection to the service: protocol v1 as one gateway (gmqtt).

The gateway's own account (user name = gateway id, its secret), TLS with a CA of choice,
MQTT v5 with a persistent session, the Last Will ``offline`` status, ``online`` after each
(re)connect, and the subscriptions a gateway may hold (its ``cmd`` and ``ack`` topics).

:meth:`Uplink.send` publishes a telemetry message at QoS 1 and says whether the broker
acknowledged it on the same connection. gmqtt keeps unacknowledged QoS 1 messages only
while the broker keeps the session (it drops them after a reconnect to a broker that lost
it, a restarted one): so the gateway's buffer, not gmqtt, holds readings until
:meth:`send` confirms them. The confirmation reads gmqtt's in-flight store, as the
simulated gateways' drain does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gridflock.edge.config import GatewayConfig
from gridflock.gateways.mqtt.codec import encode_status
from gridflock.gateways.mqtt.protocol import ack_topic, cmd_topic, status_topic, telemetry_topic

__all__ = ["PUBACK_TIMEOUT_S", "Uplink", "broker_address"]

log = logging.getLogger(__name__)

#: How long a telemetry message may wait for the broker's acknowledgement [s].
PUBACK_TIMEOUT_S = 10.0
_SESSION_EXPIRY_S = 600


def broker_address(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``mqtt://host[:port]`` or ``mqtts://host[:port]``."""
    if "://" not in url:
        url = "mqtt://" + url
    parts = urlsplit(url)
    tls = parts.scheme.lower() in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


class Uplink:
    """One gateway's MQTT connection; ``on_message(topic, payload)`` gets what it receives."""

    def __init__(
        self,
        config: GatewayConfig,
        on_message: Callable[[str, bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.gateway_id = config.id
        self.on_message = on_message
        self.clock = clock
        self.host, self.port, self.tls = broker_address(config.broker)
        self.connects = 0
        """Successful (re)connections so far."""
        self._client: Any = None  # gmqtt.Client (untyped)

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return bool(self._client is not None and self._client.is_connected)

    def _ssl(self) -> ssl.SSLContext | bool:
        g = self.config
        if not self.tls:
            return False
        ctx = ssl.create_default_context(cafile=str(g.tls_ca) if g.tls_ca else None)
        if g.tls_cert:
            ctx.load_cert_chain(str(g.tls_cert), str(g.tls_key) if g.tls_key else None)
        return ctx

    async def connect(self, stop: asyncio.Event) -> bool:
        """Connect, retrying with backoff (1 s doubling to 60 s) until connected or ``stop``.

        gmqtt reconnects by itself afterwards. Returns whether it is connected.
        """
        from gmqtt import Client, Message

        g = self.config
        will = Message(status_topic(self.gateway_id), encode_status("offline"), qos=1, retain=True)
        client = Client(
            self.gateway_id, will_message=will, session_expiry_interval=_SESSION_EXPIRY_S
        )
        client.set_config({"reconnect_delay": 1})
        secret = g.secret()
        if secret is not None:
            client.set_auth_credentials(self.gateway_id, secret)
        client.on_connect = lambda cl, flags, rc, props: self._on_connect()
        client.on_message = lambda cl, topic, payload, qos, props: self._deliver(topic, payload)
        delay = 1.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(
                    client.connect(
                        self.host, self.port, ssl=self._ssl(), keepalive=g.keepalive_s, version=5
                    ),
                    10.0,
                )
                self._client = client
                self._subscribe_and_announce()
                return True
            except (OSError, TimeoutError) as e:
                log.warning("broker %s:%d not reachable (%s); retrying", self.host, self.port, e)
            except Exception as e:  # gmqtt's MQTTConnectError: refused (credentials)
                log.error("broker %s:%d refused the gateway: %s", self.host, self.port, e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 60.0)
        return False

    def _deliver(self, topic: str, payload: bytes) -> int:
        self.on_message(topic, payload)
        return 0

    def _on_connect(self) -> None:
        self.connects += 1
        if self._client is not None:  # a reconnect (the first is announced by connect())
            self._subscribe_and_announce()

    def _subscribe_and_announce(self) -> None:
        from gmqtt import Subscription

        self._client.subscribe(
            [
                Subscription(cmd_topic(self.gateway_id), qos=1, no_local=True),
                Subscription(ack_topic(self.gateway_id), qos=1, no_local=True),
            ]
        )
        self._client.publish(
            status_topic(self.gateway_id),
            encode_status("online", self.clock()),
            qos=1,
            retain=True,
        )

    def publish_ack(self, payload: bytes) -> None:
        """Publish a ``command_ack`` (QoS 1); dropped when not connected (commands are re-sent)."""
        if self.connected:
            self._client.publish(ack_topic(self.gateway_id), payload, qos=1)

    def _in_flight(self) -> set[int]:
        return {mid for mid, _ in self._client._persistent_storage.get_all()}

    async def send(self, payload: bytes) -> bool:
        """Publish telemetry at QoS 1; True once the broker acknowledged it (PUBACK).

        False when the connection dropped (or was replaced) before the acknowledgement or
        none came within ``PUBACK_TIMEOUT_S``: the caller keeps the readings and sends
        them again (a duplicate is refused by the service as ``stale``, never counted twice).
        """
        if not self.connected:
            return False
        before = self._in_flight()
        generation = self.connects
        self._client.publish(telemetry_topic(self.gateway_id), payload, qos=1)
        mids = self._in_flight() - before
        deadline = time.monotonic() + PUBACK_TIMEOUT_S
        while time.monotonic() < deadline and self.connects == generation:
            if not mids & self._in_flight():
                break
            await asyncio.sleep(0.01)
        return self.connects == generation and bool(mids) and not mids & self._in_flight()

    async def close(self) -> None:
        """Publish ``offline`` (retained), let it go out, disconnect."""
        client = self._client
        if client is None or not client.is_connected:
            return
        with contextlib.suppress(Exception):
            client.publish(
                status_topic(self.gateway_id),
                encode_status("offline", self.clock()),
                qos=1,
                retain=True,
            )
            await asyncio.wait_for(client._persistent_storage.wait_empty(), 3.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 3.0)
