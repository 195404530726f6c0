"""The edge node's own TOML file: who it is, where the broker is, how to scan.

Settings that may change at run time (window, thresholds, filters) can also arrive on the
node's retained config topic; this file gives the values in force until then.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Strict):
    store: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]


class BrokerSection(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    tls: bool = False
    cafile: str | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = 30

    def resolved_password(self) -> str | None:
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return self.password


class BleSection(_Strict):
    enabled: bool = True
    backend: Literal["bleak", "sim"] = "bleak"
    sim_air: str | None = None  # tcp://host:port of the simulator's air server (backend = "sim")
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    scan_mode: Literal["active", "passive"] = "passive"
    ibeacon_uuids: list[str] = []
    eddystone_namespace: str | None = None


class NodeFile(_Strict):
    node: NodeSection
    broker: BrokerSection = BrokerSection()
    ble: BleSection = BleSection()


class NodeConfigError(ValueError):
    pass


def load_node_config(path: str | Path) -> NodeFile:
    """Read and validate a node file; every problem is listed as `file: key: message`."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(f"{path}: {exc}") from None
    try:
        return NodeFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise NodeConfigError("\n".join(lines)) from None
