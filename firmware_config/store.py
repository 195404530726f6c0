"""The store file: one TOML document describing a store for every part of the system.

The installer writes it once; the simulator builds its world from it, the gateway its zone
graph and presence model, and `firmware_config` derives each node's configuration and the
broker's set-up from it. The models here are the single definition of its shape; cross-field
checks that need the whole document (duplicate ids, unreachable rooms...) live in
`firmware_config.validate`.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Point = tuple[float, float]
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneKind(StrEnum):
    """What a zone is for; the presence engine and the scorer treat kinds differently."""

    OUTSIDE = "outside"
    ENTRANCE = "entrance"
    FLOOR = "floor"
    FITTING_ROOM = "fitting_room"
    TILL = "till"
    BACKROOM = "backroom"


class DoorKind(StrEnum):
    """A street door lets people in from outside; an internal door joins two zones of the store."""

    STREET = "street"
    INTERNAL = "internal"


class NodeRole(StrEnum):
    ENTRANCE = "entrance"
    FLOOR = "floor"
    FITTING_ROOM = "fitting_room"
    TILL = "till"
    SHELF = "shelf"


# The languages the staff pages and the enrolment page are translated into (gateway/i18n).
PAGE_LANGUAGES = ("de", "en")


HoursSpan = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]


class OpeningHours(_Strict):
    """The hours a store is open, per weekday ("09:30-19:00", local time); a day left out is closed.

    The dashboard's figures (footfall, conversion, missed conversations) count open hours only.
    """

    mon: HoursSpan | None = None
    tue: HoursSpan | None = None
    wed: HoursSpan | None = None
    thu: HoursSpan | None = None
    fri: HoursSpan | None = None
    sat: HoursSpan | None = None
    sun: HoursSpan | None = None

    @field_validator("*")
    @classmethod
    def _opens_before_closing(cls, v: str | None) -> str | None:
        if v is not None:
            opens, closes = v.split("-")
            if closes <= opens:
                raise ValueError(f"{v!r}: closes at or before it opens (a span runs within one day)")
        return v


class StoreInfo(_Strict):
    id: Identifier
    name: str = ""
    timezone: str = "UTC"
    language: str | None = None  # the pages' default language; unset: each browser's own preference
    eddystone_namespace: Annotated[str, Field(pattern=r"^[0-9a-f]{20}$")] = "696e73746f7265000001"
    ibeacon_uuids: list[
        Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    ] = ["f7826da6-4fa2-4e98-8024-bc5b71e0893e"]
    eid_rotation_exponent: Annotated[int, Field(ge=0, le=15)] = 10
    opening_hours: OpeningHours | None = None  # unset: every hour counts on the dashboard
    # share of fitting-room visits whose room screen shows garments (tagged, read): the presence engine
    # weighs a room's RFID as evidence of who is in it (docs/presence.md); 0 ignores it
    room_garment_share: Annotated[float, Field(ge=0, le=0.95)] = 0.8


class Zone(_Strict):
    id: Identifier
    kind: ZoneKind
    name: str = ""
    polygon: Annotated[list[Point], Field(min_length=3)]
    connects: list[Identifier] = []


class Door(_Strict):
    """A declared opening between two zones: people pass only through its width.

    `position` is the middle of the opening, on the two zones' shared boundary; the opening
    runs `width_m` along that boundary (`firmware_config.geometry.door_opening`).
    """

    id: Identifier
    zones: tuple[Identifier, Identifier]
    position: Point
    width_m: Annotated[float, Field(gt=0, le=30)] = 1.0
    kind: DoorKind = DoorKind.STREET


class Wall(_Strict):
    a: Point
    b: Point
    attenuation_db: Annotated[float, Field(ge=0, le=60)] = 8.0


class BleRadio(_Strict):
    """The node's Bluetooth scanner; `ref_rssi_1m` comes from `instore calibrate`."""

    ref_rssi_1m: Annotated[float, Field(ge=-100, le=0)] = -59.0
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    scan_mode: str = "passive"
    # Advertisements weaker than this are dropped on the node: at zone scale they are noise
    # (a phone two rooms away), and dropping them early is data minimisation.
    rssi_floor_dbm: Annotated[float, Field(ge=-127, le=0)] = -95.0


class Antenna(_Strict):
    id: Annotated[int, Field(ge=1, le=16)]
    position: Point
    facing_deg: float = 0.0
    zone: Identifier | None = None


class RfidRadio(_Strict):
    device: str
    power_dbm: Annotated[float, Field(ge=0, le=33)] = 20.0
    region: str = "eu"
    antennas: Annotated[list[Antenna], Field(min_length=1)]


class Node(_Strict):
    id: Identifier
    role: NodeRole
    position: Point
    zone: Identifier | None = None
    ble: BleRadio | None = BleRadio()
    rfid: RfidRadio | None = None


class Bridge(_Strict):
    """A bridge from the store broker to a central broker; only store events cross it."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    remote_username: str | None = None
    cafile: str | None = None  # set to speak TLS to the central broker
    qos: Annotated[int, Field(ge=0, le=2)] = 1


class Broker(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 1883
    # Address the generated broker config listens on; None means every interface (nodes
    # reach the broker over the store LAN, while `host` is what clients connect to).
    listen_address: str | None = None
    tls_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    bridge: Bridge | None = None


class Kpi(_Strict):
    """How the dashboard judges WhatsApp: attribution window and when a conversation counts as missed."""

    attribution_window_days: Annotated[float, Field(gt=0, le=90)] = 7.0
    missed_after_min: Annotated[float, Field(gt=0, le=1440)] = 30.0  # open-hours minutes without a reply
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"  # the dashboard's amounts


class Gateway(_Strict):
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8000
    database: str = "var/gateway.db"
    # MQTT username of the gateway; node usernames are their node ids, so it must differ.
    mqtt_username: Identifier = "gateway"
    # The gateway's own broker connection (docs/deploy.md): TLS trusting this CA on `mqtt_port`
    # (default broker.tls_port) when set, else plain on broker.port. Paths relative to the store file.
    mqtt_cafile: str | None = None
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    mqtt_password_file: str | None = None  # the password of mqtt_username (a credentials.toml line)
    kpi: Kpi = Kpi()


HqUrl = Annotated[str, Field(pattern=r"^(tls|nats-leaf)://[^/\s@]+$")]


class Chain(_Strict):
    """The store's link to a chain HQ over NATS JetStream (docs/chain.md); absent: a lone store."""

    # HQ's leaf-node listener, or every node's of HQ's cluster (a list)
    hq_url: Annotated[list[HqUrl], BeforeValidator(lambda v: [v] if isinstance(v, str) else v), Field(min_length=1)]
    hq_cafile: str | None = None  # the CA of HQ's leaf certificate; set for TLS on the link
    nats_host: str = "127.0.0.1"  # the store's own NATS server, for the gateway
    nats_port: Annotated[int, Field(ge=1, le=65535)] = 4222
    storage_dir: str = "/var/lib/instore-nats"
    events_per_s: Annotated[float, Field(gt=0, le=10_000)] = 2.0  # peak business-event rate
    event_bytes: Annotated[int, Field(ge=64, le=1_000_000)] = 1024  # mean size of one event
    outage_h: Annotated[float, Field(ge=72, le=24 * 90)] = 72.0  # outage the store's disk must bridge


class StoreFile(_Strict):
    store: StoreInfo
    zones: Annotated[list[Zone], Field(min_length=1)]
    walls: list[Wall] = []
    doors: list[Door] = []
    nodes: list[Node] = []
    broker: Broker = Broker()
    gateway: Gateway = Gateway()
    chain: Chain | None = None

    def zone(self, zone_id: str) -> Zone:
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)

    def zone_graph(self) -> dict[str, set[str]]:
        """Each zone's neighbours. `connects` is declared on one side and holds for both."""
        graph: dict[str, set[str]] = {z.id: set(z.connects) for z in self.zones}
        for z in self.zones:
            for other in z.connects:
                graph.setdefault(other, set()).add(z.id)
        return graph

    def doors_between(self, a: str, b: str) -> list[Door]:
        """The declared doors joining zones `a` and `b` (either order)."""
        return [d for d in self.doors if set(d.zones) == {a, b}]

    def street_doors(self) -> list[Door]:
        return [d for d in self.doors if d.kind == DoorKind.STREET]

    def fitting_rooms(self) -> list[str]:
        """The ids of the fitting-room zones, in file order."""
        return [z.id for z in self.zones if z.kind == ZoneKind.FITTING_ROOM]

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


def load_store(path: str | Path) -> StoreFile:
    """Parse and validate a store file; raises `firmware_config.validate.ConfigError` listing every problem."""
    from firmware_config.validate import validate_text

    text = Path(path).read_text(encoding="utf-8")
    return validate_text(text, str(path))


def parse_store_dict(data: dict) -> StoreFile:
    return StoreFile.model_validate(data)


def loads_toml(text: str) -> dict:
    return tomllib.loads(text)
