"""Each edge node's runtime configuration, derived from the store file.

Published retained, applied without a restart, its version reported back. Only
what a node needs (data minimisation: the store's own beacon ids, so strangers' devices are never
forwarded); the serial device path stays in the node's own file. `node_configs` is pure;
`carry_versions` bumps only the nodes an edit touched. docs/store-file.md, "What each node receives".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_config.store import StoreFile

_ID = r"^[a-z0-9][a-z0-9_-]{0,47}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BleRuntime(_Frozen):
    window_s: Annotated[float, Field(gt=0, le=10)]
    scan_mode: Literal["passive", "active"]
    rssi_floor_dbm: Annotated[float, Field(ge=-127, le=0)]
    ref_rssi_1m: Annotated[float, Field(ge=-100, le=0)]
    ibeacon_uuids: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")], ...]
    eddystone_namespace: Annotated[str, Field(pattern=r"^[0-9a-f]{20}$")]


class AntennaRuntime(_Frozen):
    id: Annotated[int, Field(ge=1, le=16)]
    zone: Annotated[str, Field(pattern=_ID)] | None = None


class RfidRuntime(_Frozen):
    power_dbm: Annotated[float, Field(ge=0, le=33)]
    region: Literal["eu", "usa", "korea", "china800", "china900"]
    antennas: Annotated[tuple[AntennaRuntime, ...], Field(min_length=1)]


class NodeRuntimeConfig(_Frozen):
    """What one node may change without a restart; `version` orders successive configs."""

    version: Annotated[int, Field(ge=0)]
    store: Annotated[str, Field(pattern=_ID)]
    node: Annotated[str, Field(pattern=_ID)]
    ble: BleRuntime | None = None
    rfid: RfidRuntime | None = None

    def config_hash(self) -> str:
        """SHA-256 of the content without `version`: equal hashes mean nothing to re-apply."""
        body = self.model_dump(mode="json", exclude={"version"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> NodeRuntimeConfig:
        """Decode a config payload; raises NodeConfigError naming the first bad field."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = _field(err["loc"])
            more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            raise NodeConfigError(field, f"{message}{more}") from None


class NodeConfigError(ValueError):
    """A runtime config the node must refuse; `field` says which (`ble.window_s`)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "payload"


def node_configs(store: StoreFile, version: int) -> dict[str, NodeRuntimeConfig]:
    """The runtime config of every node in `store`, all stamped with `version`."""
    info = store.store
    out: dict[str, NodeRuntimeConfig] = {}
    for node in store.nodes:
        ble = None
        if node.ble is not None:
            ble = BleRuntime(
                window_s=node.ble.window_s,
                scan_mode=node.ble.scan_mode,  # type: ignore[arg-type]  # checked by validate
                rssi_floor_dbm=node.ble.rssi_floor_dbm,
                ref_rssi_1m=node.ble.ref_rssi_1m,
                ibeacon_uuids=tuple(info.ibeacon_uuids),
                eddystone_namespace=info.eddystone_namespace,
            )
        rfid = None
        if node.rfid is not None:
            rfid = RfidRuntime(
                power_dbm=node.rfid.power_dbm,
                region=node.rfid.region,  # type: ignore[arg-type]  # checked by validate
                antennas=tuple(AntennaRuntime(id=a.id, zone=a.zone) for a in node.rfid.antennas),
            )
        out[node.id] = NodeRuntimeConfig(version=version, store=info.id, node=node.id, ble=ble, rfid=rfid)
    return out


def carry_versions(
    previous: Mapping[str, NodeRuntimeConfig], current: Mapping[str, NodeRuntimeConfig]
) -> dict[str, NodeRuntimeConfig]:
    """Keep each node's previous version when its content is unchanged, else bump it.

    A changed node gets `max(previous.version + 1, current.version)`, so versions only grow
    even if the caller passes a stale number; a new node keeps the version it was given.
    """
    out: dict[str, NodeRuntimeConfig] = {}
    for node_id, cfg in current.items():
        old = previous.get(node_id)
        if old is None:
            out[node_id] = cfg
        elif old.config_hash() == cfg.config_hash():
            out[node_id] = cfg.model_copy(update={"version": old.version})
        else:
            out[node_id] = cfg.model_copy(update={"version": max(old.version + 1, cfg.version)})
    return out
