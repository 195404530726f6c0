"""The simulator's node windows, encoded as on the wire, for benchmarks that drive a gateway themselves."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edge import protocol
from sim.emitter import Emitter
from sim.run import EPOCH, _BleEdge
from sim.world import World


def ble_windows(world: World, seed: int) -> Iterator[tuple[float, float, str, bytes]]:
    """(end of the emitter's tick, end of the window, MQTT topic, payload) in the order fast mode
    delivers them (sim.run), times in simulation seconds; a run with the same world and seed
    gives the same windows."""
    store = world.store
    emitter = Emitter(world, seed=seed, epoch=EPOCH)
    ble = _BleEdge(world, emitter, EPOCH, "batch")
    topics = {n.id: protocol.node_topic(store.store.id, n.id, "ble") for n in store.nodes}
    tick = min(n.ble.window_s for n in store.nodes if n.ble is not None)
    duration = world.scenario.scenario.duration_s
    for i in range(int(np.ceil(duration / tick))):
        t0, t1 = i * tick, min((i + 1) * tick, duration)
        ble.pending.add(emitter.step_arrays(t0, t1))
        for end, j, data in ble.flush(t1):
            yield t1, end, topics[ble.nodes[j].id], data
