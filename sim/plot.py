"""`--plot out.png`: the store map with what happened in the run.

Zones filled by kind, walls drawn with a width that grows with their attenuation, nodes
marked by role, RFID antennas with their facing, shelves; over it the walked paths of the
run (small runs) or a heatmap of where people were, sampled every second (big runs).
Matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firmware_config.geometry import polygon_centroid
from firmware_config.store import NodeRole, StoreFile, ZoneKind

if TYPE_CHECKING:
    from sim.run import RunResult
    from sim.world import World

ZONE_COLOURS = {
    ZoneKind.OUTSIDE: "#e8e8e8",
    ZoneKind.ENTRANCE: "#ffe6a8",
    ZoneKind.FLOOR: "#d6ecd2",
    ZoneKind.FITTING_ROOM: "#f4cccc",
    ZoneKind.TILL: "#cfe2f3",
    ZoneKind.BACKROOM: "#d9d2e9",
}
NODE_MARKERS = {
    NodeRole.ENTRANCE: ("^", "#b45f06"),
    NodeRole.FLOOR: ("o", "#38761d"),
    NodeRole.FITTING_ROOM: ("s", "#990000"),
    NodeRole.TILL: ("D", "#0b5394"),
    NodeRole.SHELF: ("P", "#674ea7"),
}
PATH_COLOURS = {"regular": "#1155cc", "shopper": "#6aa84f", "passer_by": "#999999", "staff": "#e69138"}
MAX_PATHS = 400  # above this many agents a heatmap says more than a tangle of lines


def draw_store(ax, store: StoreFile) -> None:  # noqa: ANN001
    from matplotlib.patches import Polygon

    for z in store.zones:
        ax.add_patch(
            Polygon(
                z.polygon,
                closed=True,
                facecolor=ZONE_COLOURS.get(z.kind, "#ffffff"),
                edgecolor="#777777",
                linewidth=0.6,
                zorder=0,
            )
        )
        cx, cy = polygon_centroid(list(z.polygon))
        ax.text(
            cx,
            cy,
            z.id,
            ha="center",
            va="center",
            fontsize=7,
            color="#222222",
            zorder=9,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
        )
    for w in store.walls:
        ax.plot(
            [w.a[0], w.b[0]],
            [w.a[1], w.b[1]],
            color="#222222",
            linewidth=0.8 + w.attenuation_db / 4,
            solid_capstyle="butt",
            zorder=3,
        )
    seen: set[str] = set()
    for n in store.nodes:
        marker, colour = NODE_MARKERS.get(n.role, ("o", "black"))
        label = f"node: {n.role}" if n.role not in seen else None
        seen.add(n.role)
        ax.scatter(
            [n.position[0]],
            [n.position[1]],
            marker=marker,
            s=40,
            color=colour,
            edgecolor="white",
            linewidth=0.6,
            zorder=10,
            label=label,
        )
        if n.rfid is not None:
            for a in n.rfid.antennas:
                rad = np.radians(a.facing_deg)
                ax.annotate(
                    "",
                    xy=(a.position[0] + 0.8 * np.cos(rad), a.position[1] + 0.8 * np.sin(rad)),
                    xytext=a.position,
                    zorder=8,
                    arrowprops={"arrowstyle": "-|>", "color": "#cc0000", "lw": 0.9},
                )
                label = "RFID antenna" if "ant" not in seen else None
                seen.add("ant")
                ax.scatter(
                    [a.position[0]], [a.position[1]], marker="x", s=18, color="#cc0000", zorder=8, label=label
                )


def _occupancy(world: World, step_s: float = 1.0) -> np.ndarray:
    pts = []
    for a in world.agents:
        ts = np.arange(a.t_start, a.t_end, step_s)
        if len(ts):
            pts.append(
                np.stack([np.interp(ts, a.times, a.xy[:, 0]), np.interp(ts, a.times, a.xy[:, 1])], axis=1)
            )
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def plot_world(world: World, path: str | Path, title: str = "", heatmap: bool | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = world.store
    allpts = np.asarray([p for z in store.zones for p in z.polygon], dtype=float)
    (x0, y0), (x1, y1) = allpts.min(axis=0), allpts.max(axis=0)
    width = 11.0
    height = max(4.0, min(14.0, width * (y1 - y0) / max(x1 - x0, 1e-6))) + 1.2
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    draw_store(ax, store)
    heatmap = len(world.agents) > MAX_PATHS if heatmap is None else heatmap
    if heatmap:
        pts = _occupancy(world)
        if len(pts):
            h, xe, ye = np.histogram2d(
                pts[:, 0],
                pts[:, 1],
                bins=[max(8, int((x1 - x0) / 0.5)), max(8, int((y1 - y0) / 0.5))],
                range=[[x0, x1], [y0, y1]],
            )
            h = np.ma.masked_equal(h.T, 0)
            im = ax.imshow(
                np.ma.log10(h),
                origin="lower",
                extent=(xe[0], xe[-1], ye[0], ye[-1]),
                cmap="magma_r",
                alpha=0.75,
                zorder=2,
                aspect="equal",
            )
            fig.colorbar(im, ax=ax, shrink=0.6, pad=0.02, label="log10 person-seconds per 0.5 m cell")
    else:
        drawn: set[str] = set()
        for a in world.agents:
            kind = str(a.kind)
            ax.plot(
                a.xy[:, 0],
                a.xy[:, 1],
                color=PATH_COLOURS.get(kind, "black"),
                linewidth=0.5,
                alpha=0.35,
                zorder=4,
                label=f"path: {kind}" if kind not in drawn else None,
            )
            drawn.add(kind)
    if world.shelves:
        sx = [s.xy[0] for s in world.shelves]
        sy = [s.xy[1] for s in world.shelves]
        ax.scatter(sx, sy, marker="_", s=120, linewidths=3, color="#7f6000", zorder=6, label="shelf")
    ax.set_xlim(x0 - 0.5, x1 + 0.5)
    ax.set_ylim(y0 - 0.5, y1 + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or f"{store.store.name or store.store.id}", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), fontsize=7, frameon=False, ncol=5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_run(result: RunResult, path: str | Path) -> None:
    m = result.metrics
    rec = m.get("entry.recall")
    prec = m.get("entry.precision")
    title = (
        f"{result.scenario} (seed {result.seed}): {result.truth.duration_s / 3600:.1f} h, "
        f"{m.get('agents.shopper', 0) + m.get('agents.regular', 0)} visitors; entry precision "
        f"{'n/a' if prec is None else f'{prec:.2f}'}, recall {'n/a' if rec is None else f'{rec:.2f}'}"
    )
    plot_world(result.world, path, title)
