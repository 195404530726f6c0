"""Prometheus metrics of the gateway (one registry per gateway instance, no globals).

Labels are reasons and kinds, never a MAC address or a customer id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.messages = Counter("instore_gateway_messages", "MQTT messages accepted, by kind", ["kind"], registry=r)
        self.rejects = Counter("instore_gateway_rejects", "MQTT messages rejected, by field at fault",
                               ["field"], registry=r)
        self.observations = Counter("instore_gateway_observations", "Beacon observations ingested", registry=r)
        self.unresolved = Counter("instore_gateway_unresolved",
                                  "Observations of identifiers that belong to no consenting customer (dropped)",
                                  registry=r)
        self.footfall_adverts = Counter("instore_gateway_anonymous_adverts", "Anonymous advertisements counted",
                                        registry=r)
        self.door_crossings = Counter("instore_gateway_door_crossings", "Door sensor crossings, by direction",
                                      ["direction"], registry=r)
        self.curtain_crossings = Counter("instore_gateway_curtain_crossings",
                                         "Fitting-room curtain sensor crossings, by direction", ["direction"],
                                         registry=r)
        self.events = Counter("instore_gateway_events", "Staff events emitted, by kind", ["kind"], registry=r)
        self.link_clicks = Counter("instore_gateway_link_clicks", "Short-link requests: redirected or unknown token",
                                   ["result"], registry=r)
        self.clients = Gauge("instore_gateway_live_clients", "Connected live-stream clients", registry=r)
        self.mqtt_connected = Gauge("instore_gateway_mqtt_connected", "1 while connected to the broker", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
