"""Benchmarks: each module here defines `NAME` and `run(quick: bool, **params) -> dict`.

`instore bench` discovers them, runs them and prints one JSON object per benchmark with
the figures, the target, whether it was met, and what machine it ran on.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import resource
import time
from types import ModuleType


def discover() -> dict[str, ModuleType]:
    import benchmarks

    found = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"benchmarks.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            found[mod.NAME] = mod
    return found


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def run_one(mod: ModuleType, quick: bool = False, **params: float) -> dict:
    """`params`: the benchmark's own sizes (`instore bench chain --param stores=10`)."""
    t0 = time.perf_counter()
    figures = mod.run(quick=quick, **params)
    return {
        "name": mod.NAME,
        "quick": quick,
        **figures,
        "wall_s": round(time.perf_counter() - t0, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": machine(),
    }
