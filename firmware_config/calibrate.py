"""Calibration: a beacon held 1 m from a node gives that node's reference RSSI.

Scanners differ (antenna, enclosure, mounting) by several dB; the presence engine's
path-loss model needs each node's RSSI at 1 m. The installer holds a known beacon (a staff
badge) 1 m from the node for half a minute; `instore calibrate` collects the node's
windows, takes a robust estimate, and writes it into the store file in place, keeping the
installer's comments and layout.
"""

from __future__ import annotations

import re
import statistics

from firmware_config.validate import validate_text


class CalibrationError(ValueError):
    pass


def estimate_ref_rssi(samples: list[tuple[float, int]]) -> float:
    """Median of the window means, each counted by its number of packets (robust to a body passing)."""
    if not samples:
        raise CalibrationError("no sightings of the beacon: is it on, and 1 m from the node?")
    expanded = [rssi for rssi, n in samples for _ in range(max(1, n))]
    return round(statistics.median(expanded), 1)


_NODE_HEADER = re.compile(r"^\s*\[\[\s*nodes\s*\]\]\s*(#.*)?$")
_TABLE_HEADER = re.compile(r"^\s*\[")


def set_ref_rssi(text: str, node_id: str, value: float, filename: str = "<store>") -> str:
    """The store file's text with `nodes[id=node_id].ble.ref_rssi_1m = value`; validated afterwards."""
    lines = text.splitlines(keepends=True)
    start = end = None
    for i, line in enumerate(lines):
        if _NODE_HEADER.match(line):
            if start is not None and end is None:
                end = i
            block_id = _block_id(lines, i)
            if block_id == node_id:
                start, end = i, None
        elif start is not None and end is None and _TABLE_HEADER.match(line) and i > start:
            end = i
    if start is None:
        raise CalibrationError(f"{filename}: no [[nodes]] entry with id = {node_id!r}")
    end = end if end is not None else len(lines)
    block = lines[start:end]
    new = _set_in_block(block, value)
    out = "".join(lines[:start] + new + lines[end:])
    validate_text(out, filename)  # never write a file the gateway would refuse
    return out


def _block_id(lines: list[str], header: int) -> str | None:
    for line in lines[header + 1:]:
        if _TABLE_HEADER.match(line):
            return None
        m = re.match(r'^\s*id\s*=\s*"([^"]*)"', line)
        if m:
            return m.group(1)
    return None


def _set_in_block(block: list[str], value: float) -> list[str]:
    out = list(block)
    for i, line in enumerate(out):
        m = re.match(r"^(\s*ble\s*=\s*\{)(.*)\}(.*)$", line.rstrip("\n"))
        if m:
            inner = m.group(2)
            if re.search(r"ref_rssi_1m\s*=", inner):
                inner = re.sub(r"ref_rssi_1m\s*=\s*[-+0-9.eE]+", f"ref_rssi_1m = {value}", inner)
            else:
                inner = f" ref_rssi_1m = {value}," + inner if inner.strip() else f" ref_rssi_1m = {value} "
            out[i] = f"{m.group(1)}{inner}}}{m.group(3)}\n"
            return out
    for i, line in enumerate(out):
        if re.match(r'^\s*id\s*=\s*"', line):
            out.insert(i + 1, f"ble = {{ ref_rssi_1m = {value} }}  # instore calibrate\n")
            return out
    raise CalibrationError("node entry has no id line")
