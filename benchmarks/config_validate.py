"""Benchmark `config-validate`: full validation of a generated 60-node store file.

An installer runs `instore config validate` after every edit and the gateway validates at
start-up, so it must feel instant even for a large store: target under 1 s.
"""

from __future__ import annotations

import time

NAME = "config-validate"
TARGET_S = 1.0


def store_text(nodes: int = 60, rooms: int = 16) -> str:
    """A plausible large store: street, entrance, one floor, a row of fitting rooms, shelves."""
    width = 2 * rooms
    parts = [
        '[store]\nid = "bench"\ntimezone = "Europe/Paris"\n',
        '[[zones]]\nid = "street"\nkind = "outside"\n'
        f"polygon = [[0, -4], [{width}, -4], [{width}, 0], [0, 0]]\n"
        'connects = ["entrance"]\n',
        '[[zones]]\nid = "entrance"\nkind = "entrance"\n'
        f"polygon = [[0, 0], [{width}, 0], [{width}, 3], [0, 3]]\n"
        'connects = ["floor"]\n',
        '[[zones]]\nid = "floor"\nkind = "floor"\n'
        f"polygon = [[0, 3], [{width}, 3], [{width}, 30], [0, 30]]\n",
        f'[[doors]]\nid = "front"\nzones = ["street", "entrance"]\nposition = [{rooms}, 0]\nwidth_m = 2\n',
    ]
    for r in range(rooms):
        x = 2 * r
        parts.append(
            f'[[zones]]\nid = "fr{r}"\nkind = "fitting_room"\n'
            f"polygon = [[{x}, 30], [{x + 2}, 30], [{x + 2}, 34], [{x}, 34]]\n"
            'connects = ["floor"]\n'
        )
        parts.append(f"[[walls]]\na = [{x}, 30]\nb = [{x}, 34]\nattenuation_db = 6\n")
    for n in range(nodes):
        if n < rooms:
            x = 2 * n + 1
            parts.append(
                f'[[nodes]]\nid = "fr{n}"\nrole = "fitting_room"\nposition = [{x}, 32]\nzone = "fr{n}"\n'
                f'rfid = {{ device = "/dev/serial/by-id/usb-uhf-{n}", antennas = '
                f'[{{ id = 1, position = [{x}, 33.5], zone = "fr{n}" }}] }}\n'
            )
        else:
            x, y = 1 + (n * 7) % (width - 2), 4 + (n * 5) % 25
            parts.append(
                f'[[nodes]]\nid = "shelf{n}"\nrole = "shelf"\nposition = [{x}, {y}]\nzone = "floor"\n'
                f'[nodes.rfid]\ndevice = "/dev/serial/by-id/usb-uhf-{n}"\nantennas = [\n'
                f'  {{ id = 1, position = [{x}, {y}], zone = "floor" }},\n'
                f'  {{ id = 2, position = [{x + 0.5}, {y}], zone = "floor" }},\n]\n'
            )
    return "\n".join(parts)


def run(quick: bool = False) -> dict:
    from firmware_config.validate import validate_text

    text = store_text()
    rounds = 3 if quick else 20
    validate_text(text, "bench.toml")  # warm caches (time-zone list, pydantic schemas)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        store = validate_text(text, "bench.toml")
        times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    return {
        "nodes": float(len(store.nodes)),
        "zones": float(len(store.zones)),
        "file_lines": float(text.count("\n")),
        "validate_median_ms": median * 1000,
        "validate_max_ms": times[-1] * 1000,
        "target": {"validate_median_ms": TARGET_S * 1000},
        "target_met": median < TARGET_S,
    }
