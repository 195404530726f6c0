"""A stand-in `bluetoothd` on a private D-Bus, so bleak's real BlueZ backend runs in tests.

`PrivateBus` starts a `dbus-daemon` a node takes for its system bus (`PrivateBus.env()`);
`StandInBlueZ` owns `org.bluez` there: one adapter, active and passive scanning, the device cache's
signals as BlueZ sends them, and connectable `Peripheral`s with GATT (iPhones, key fobs). What it
imitates: docs/scenarios.md, "Inside a run".
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

BLUEZ = "org.bluez"
ADAPTER_PATH = "/org/bluez/hci0"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
MONITOR_MANAGER = "org.bluez.AdvertisementMonitorManager1"
GATT_SERVICE = "org.bluez.GattService1"
GATT_CHARACTERISTIC = "org.bluez.GattCharacteristic1"
ERROR_FAILED = "org.bluez.Error.Failed"
ERROR_NOT_CONNECTED = "org.bluez.Error.NotConnected"
#: How BlueZ's GATT client reports a peer's ATT error codes over D-Bus (src/gatt-client.c):
#: the permission errors by name, the rest as Failed with the code in the message.
ATT_ERRORS = {
    0x02: ("org.bluez.Error.NotPermitted", "Read not permitted"),
    0x03: ("org.bluez.Error.NotPermitted", "Write not permitted"),
    0x0D: ("org.bluez.Error.InvalidArguments", "Invalid Attribute value length"),
}
UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
#: What BlueZ answers Connect when the link could not be made (the device left, or refused).
CONNECT_FAILED = "le-connection-abort-by-remote"
#: First GATT handle of a peripheral's services. Why: 1-9 are the GAP/GATT services BlueZ hides.
FIRST_HANDLE = 0x000A
#: How often a peripheral is heard while a discovery runs. Why: short, so a test finds it at once.
PERIPHERAL_ADVERT_INTERVAL_S = 0.05
#: The ATT MTU a connection reports (BlueZ's `MTU` property; bleak derives write sizes from it).
ATT_MTU = 185
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
AD_SERVICE_DATA_16 = 0x16
AD_MANUFACTURER_DATA = 0xFF
BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
#: How long to wait for a registered monitor's object before reading its patterns. Why: bleak
#: exports it only after RegisterMonitor has returned.
MONITOR_LOOKUP_TRIES, MONITOR_LOOKUP_PAUSE_S = 50, 0.01


def device_path(address: str) -> str:
    """BlueZ's object path of a device on the adapter."""
    return f"{ADAPTER_PATH}/dev_{address.replace(':', '_')}"


class PrivateBus:
    """A `dbus-daemon` of our own, stopped with `close()`."""

    def __init__(self) -> None:
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise FileNotFoundError("dbus-daemon is not installed (apt-get install dbus-daemon)")
        self._dir = tempfile.TemporaryDirectory(prefix="instore-dbus-")
        self.address = f"unix:path={Path(self._dir.name) / 'bus'}"
        self.proc = subprocess.Popen(
            [daemon, "--session", "--nofork", "--nopidfile", f"--address={self.address}", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # printed once it listens

    def env(self) -> dict[str, str]:
        """Environment for a process that should take this bus for the system bus."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self._dir.cleanup()


def ad_structures(mfr: dict[int, bytes], svc: dict[str, bytes]) -> list[tuple[int, bytes]]:
    """(AD type, data) of an advertisement, as on the air: what BlueZ matches patterns against."""
    out = [(AD_MANUFACTURER_DATA, company.to_bytes(2, "little") + data) for company, data in mfr.items()]
    for uuid, data in svc.items():
        if uuid.startswith("0000") and uuid.endswith(BASE_UUID_TAIL):
            out.append((AD_SERVICE_DATA_16, int(uuid[4:8], 16).to_bytes(2, "little") + data))
    return out


def matches(patterns: list[tuple[int, int, bytes]], structures: list[tuple[int, bytes]]) -> bool:
    """BlueZ's or-patterns: any pattern whose AD type holds its content at its position."""
    return any(
        ad_type == t and data[start : start + len(content)] == content
        for start, t, content in patterns
        for ad_type, data in structures
    )


class AttError(Exception):
    """A GATT server's refusal: the ATT error code (0x02 read not permitted, 0x03 write not permitted, ...)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"ATT error 0x{code:02x}")
        self.code = code


class LinkLost(Exception):
    """The link dropped during a read or write (the device moved out of range)."""


class GattServer(Protocol):
    """A peripheral's own GATT behaviour: values computed per read, writes that change state."""

    def connected(self) -> None: ...

    def read(self, char_uuid: str) -> bytes: ...

    def write(self, char_uuid: str, value: bytes) -> None: ...


@dataclass
class Peripheral:
    """A simulated device that accepts connections: what it advertises, its GATT, how connecting goes."""

    address: str
    services: dict[str, dict[str, bytes]]  # service UUID -> characteristic UUID -> value (readable)
    rssi: int = -60
    mfr: dict[int, bytes] = field(default_factory=dict)
    svc: dict[str, bytes] = field(default_factory=dict)
    connect_s: float = 0.05  # from Connect to the link being up
    failure_probability: float = 0.0  # chance that a Connect fails after connect_s
    gatt: GattServer | None = None  # answers reads and writes itself; None: the fixed values above


class StandInBlueZ:
    """`org.bluez` on a bus: see the module docstring. `passive=False` is BlueZ without `--experimental`."""

    def __init__(
        self, address: str, *, passive: bool = True, peripherals: tuple[Peripheral, ...] = (), seed: int = 0
    ) -> None:
        self.address, self.passive = address, passive
        self.peripherals = {device_path(p.address): p for p in peripherals}
        self.connected: set[str] = set()  # device paths with a link up
        self._gatt: dict[str, list[str]] = {}  # device path -> its GATT object paths
        self._values: dict[str, bytes] = {}  # characteristic path -> value
        self._char_uuid: dict[str, str] = {}  # characteristic path -> its UUID
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()  # connections, advertising (a reference keeps them alive)
        self.bus: MessageBus | None = None
        self.discovering = False
        self.monitors: dict[tuple[str, str], list[tuple[int, int, bytes]] | None] = {}  # (client, path) -> patterns
        self.devices: set[str] = set()
        self.signals = 0
        self.calls: list[str] = []  # "Interface.Member" of every method call, in order

    async def start(self) -> StandInBlueZ:
        self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
        self.bus.add_message_handler(self._handle)
        await self.bus.request_name(BLUEZ)
        return self

    def close(self) -> None:
        if self.bus is not None:
            self.bus.disconnect()

    @property
    def scanning(self) -> bool:
        return self.discovering or any(p is not None for p in self.monitors.values())

    # --- advertisements -------------------------------------------------------------

    def advertise(self, addr: str, rssi: int, mfr: dict[int, bytes], svc: dict[str, bytes]) -> bool:
        """One advertisement heard by the adapter; True if it was signalled to the clients."""
        if self.bus is None or not self.scanning:
            return False
        if not self.discovering and not any(
            p is not None and matches(p, ad_structures(mfr, svc)) for p in self.monitors.values()
        ):
            return False  # passive only: BlueZ keeps what no monitor's pattern matches
        path = device_path(addr)
        props = {
            "RSSI": Variant("n", rssi),
            "ManufacturerData": Variant("a{qv}", {k: Variant("ay", v) for k, v in mfr.items()}),
            "ServiceData": Variant("a{sv}", {k: Variant("ay", v) for k, v in svc.items()}),
        }
        if path in self.devices:
            msg = Message.new_signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [DEVICE, props, []])
        else:
            self.devices.add(path)
            props |= {
                "Address": Variant("s", addr),
                "AddressType": Variant("s", "random"),
                "Alias": Variant("s", addr.replace(":", "-")),
                "Adapter": Variant("o", ADAPTER_PATH),
                "UUIDs": Variant("as", list(svc)),
                "Paired": Variant("b", False),
                "Bonded": Variant("b", False),
                "Trusted": Variant("b", False),
                "Blocked": Variant("b", False),
                "LegacyPairing": Variant("b", False),
                "Connected": Variant("b", False),
                "ServicesResolved": Variant("b", False),
            }
            msg = Message.new_signal("/", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [path, {DEVICE: props}])
        self.bus.send(msg)
        self.signals += 1
        return True

    # --- connections ----------------------------------------------------------------

    async def _announce_peripherals(self) -> None:
        """Peripherals in range are heard while a discovery runs."""
        while self.discovering:
            for p in self.peripherals.values():
                self.advertise(p.address, p.rssi, p.mfr, p.svc)
            await asyncio.sleep(PERIPHERAL_ADVERT_INTERVAL_S)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _device_changed(self, path: str, **props: Variant) -> None:
        assert self.bus is not None
        self.bus.send(Message.new_signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [DEVICE, props, []]))

    async def _connect(self, msg: Message) -> None:
        """Device1.Connect: the link after the peripheral's connection time, or a failure."""
        assert self.bus is not None
        path = str(msg.path)
        p = self.peripherals.get(path)
        await asyncio.sleep(p.connect_s if p is not None else 0.0)
        if p is None or self._rng.random() < p.failure_probability:
            self.bus.send(Message.new_error(msg, ERROR_FAILED, CONNECT_FAILED))
            return
        if path not in self.connected:
            self.connected.add(path)
            if p.gatt is not None:
                p.gatt.connected()
            self._device_changed(path, Connected=Variant("b", True))
        self.bus.send(Message.new_method_return(msg))
        self._resolve_services(path, p)

    def _resolve_services(self, path: str, p: Peripheral) -> None:
        """Export the peripheral's GATT objects, then say the services are resolved (as BlueZ does)."""
        assert self.bus is not None
        handle = FIRST_HANDLE
        objects: list[str] = []
        for service_uuid, chars in p.services.items():
            service_path = f"{path}/service{handle:04x}"
            handle += 1
            props = {
                "UUID": Variant("s", service_uuid),
                "Device": Variant("o", path),
                "Primary": Variant("b", True),
                "Includes": Variant("ao", []),
            }
            self._added(service_path, GATT_SERVICE, props)
            objects.append(service_path)
            for char_uuid, value in chars.items():
                char_path = f"{service_path}/char{handle:04x}"
                handle += 2  # declaration and value
                props = {
                    "UUID": Variant("s", char_uuid),
                    "Service": Variant("o", service_path),
                    "Value": Variant("ay", b""),
                    "Notifying": Variant("b", False),
                    "Flags": Variant("as", ["read", "write"] if p.gatt is not None else ["read"]),
                    "MTU": Variant("q", ATT_MTU),
                }
                self._added(char_path, GATT_CHARACTERISTIC, props)
                self._values[char_path] = value
                self._char_uuid[char_path] = char_uuid
                objects.append(char_path)
        self._gatt[path] = objects
        self._device_changed(path, ServicesResolved=Variant("b", True))

    def _added(self, path: str, interface: str, props: dict[str, Variant]) -> None:
        assert self.bus is not None
        body = [path, {interface: props}]
        self.bus.send(Message.new_signal("/", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", body))

    def _disconnect(self, msg: Message) -> Message:
        """Device1.Disconnect: the link goes down (see `_link_down`)."""
        self._link_down(str(msg.path))
        return Message.new_method_return(msg)

    def _link_down(self, path: str) -> None:
        """Services unresolved, link down, GATT objects removed."""
        assert self.bus is not None
        if path in self.connected:
            self.connected.discard(path)
            self._device_changed(path, ServicesResolved=Variant("b", False))
            self._device_changed(path, Connected=Variant("b", False))
            for obj in reversed(self._gatt.pop(path, [])):
                interface = GATT_CHARACTERISTIC if obj in self._values else GATT_SERVICE
                self._values.pop(obj, None)
                self._char_uuid.pop(obj, None)
                self.bus.send(Message.new_signal("/", OBJECT_MANAGER, "InterfacesRemoved", "oas", [obj, [interface]]))

    def _char_call(self, msg: Message) -> Message:
        """ReadValue / WriteValue on a characteristic of a connected device."""
        path = str(msg.path)
        if path not in self._values:
            return Message.new_error(msg, UNKNOWN_OBJECT, f"stand-in BlueZ has no characteristic {path}")
        device = path.rsplit("/", 2)[0]
        if device not in self.connected:
            return Message.new_error(msg, ERROR_NOT_CONNECTED, "Not Connected")
        server = self.peripherals[device].gatt
        if server is None:
            if msg.member == "WriteValue":
                return Message.new_error(msg, *ATT_ERRORS[0x03])
            return Message.new_method_return(msg, "ay", [self._values[path]])
        try:
            if msg.member == "WriteValue":
                server.write(self._char_uuid[path], bytes(msg.body[0]))
                return Message.new_method_return(msg)
            return Message.new_method_return(msg, "ay", [server.read(self._char_uuid[path])])
        except AttError as err:
            name, text = ATT_ERRORS.get(err.code, (ERROR_FAILED, f"Operation failed with ATT error: 0x{err.code:02x}"))
            return Message.new_error(msg, name, text)
        except LinkLost:
            self._link_down(device)
            return Message.new_error(msg, ERROR_FAILED, "Not connected")

    # --- method calls ---------------------------------------------------------------

    def _adapter_props(self) -> dict[str, Variant]:
        return {
            "Address": Variant("s", "00:00:5E:00:53:01"),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", "instore-standin"),
            "Alias": Variant("s", "instore-standin"),
            "Powered": Variant("b", True),
            "Discovering": Variant("b", self.discovering),
            "Roles": Variant("as", ["central", "peripheral"]),
            "UUIDs": Variant("as", []),
        }

    def _handle(self, msg: Message) -> Message | bool | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.destination != BLUEZ:
            return None
        call = f"{msg.interface}.{msg.member}"
        self.calls.append(call)
        for answer in (self._objects_call, self._discovery_call, self._device_call, self._gatt_call,
                       self._monitor_call):
            reply = answer(msg)
            if reply is not None:
                return reply
        return Message.new_error(msg, UNKNOWN_METHOD, f"stand-in BlueZ has no {call} at {msg.path}")

    # Each answers the calls of one interface, None for a call that is not its own.

    def _objects_call(self, msg: Message) -> Message | None:
        if msg.interface != OBJECT_MANAGER or msg.member != "GetManagedObjects" or msg.path != "/":
            return None
        objects = {ADAPTER_PATH: {ADAPTER: self._adapter_props()}}
        if self.passive:
            objects[ADAPTER_PATH][MONITOR_MANAGER] = {}
        return Message.new_method_return(msg, "a{oa{sa{sv}}}", [objects])

    def _discovery_call(self, msg: Message) -> Message | None:
        if msg.path != ADAPTER_PATH or msg.interface != ADAPTER or msg.member not in (
            "SetDiscoveryFilter", "StartDiscovery", "StopDiscovery",
        ):
            return None
        if msg.member == "StartDiscovery" and not self.discovering and self.peripherals:
            self._spawn(self._announce_peripherals())
        if msg.member != "SetDiscoveryFilter":
            self.discovering = msg.member == "StartDiscovery"
        return Message.new_method_return(msg)

    def _device_call(self, msg: Message) -> Message | bool | None:
        if msg.interface != DEVICE or msg.member not in ("Connect", "Disconnect"):
            return None
        if msg.path not in self.devices:
            return Message.new_error(msg, UNKNOWN_OBJECT, f"stand-in BlueZ has no device {msg.path}")
        if msg.member == "Connect":
            self._spawn(self._connect(msg))
            return True
        return self._disconnect(msg)

    def _gatt_call(self, msg: Message) -> Message | None:
        if msg.interface != GATT_CHARACTERISTIC or msg.member not in ("ReadValue", "WriteValue"):
            return None
        return self._char_call(msg)

    def _monitor_call(self, msg: Message) -> Message | None:
        if msg.path != ADAPTER_PATH or msg.interface != MONITOR_MANAGER or not self.passive:
            return None
        key = (str(msg.sender), str(msg.body[0]))
        if msg.member == "RegisterMonitor":
            self.monitors[key] = None
            asyncio.get_running_loop().create_task(self._read_patterns(key))
            return Message.new_method_return(msg)
        if msg.member == "UnregisterMonitor":
            self.monitors.pop(key, None)
            return Message.new_method_return(msg)
        return None

    async def _read_patterns(self, key: tuple[str, str]) -> None:
        """Ask the client's monitor object for its patterns (it appears just after registering)."""
        assert self.bus is not None
        client, path = key
        for _ in range(MONITOR_LOOKUP_TRIES):
            reply = await self.bus.call(
                Message(
                    destination=client, path=path, interface=PROPERTIES, member="Get",
                    signature="ss", body=["org.bluez.AdvertisementMonitor1", "Patterns"],
                )
            )
            if reply.message_type == MessageType.METHOD_RETURN:
                if key in self.monitors:
                    self.monitors[key] = [(int(s), int(t), bytes(c)) for s, t, c in reply.body[0].value]
                return
            await asyncio.sleep(MONITOR_LOOKUP_PAUSE_S)
