"""The layers hold: who may import whom, read from the source (docs/depgraph.py), every import
counted (module level, lazy, TYPE_CHECKING) unless a rule says otherwise. docs/architecture.md
draws the result."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("depgraph", ROOT / "docs" / "depgraph.py")
assert _spec is not None and _spec.loader is not None
depgraph = sys.modules["depgraph"] = importlib.util.module_from_spec(_spec)  # a script, not a package
_spec.loader.exec_module(depgraph)

IMPORTS = depgraph.imports(ROOT)
PRODUCTION = depgraph.PRODUCTION

#: package -> packages it must never import (directly, in any form).
FORBIDDEN = {
    "edge": {"gateway", "sim", "cloud_sync", "instore", "benchmarks", "tests"},
    "cloud_sync": {"gateway", "sim", "instore", "benchmarks", "tests"},
    "firmware_config": {"gateway", "sim", "cloud_sync", "instore", "benchmarks", "tests"},
    "gateway": {"sim", "instore", "benchmarks", "tests"},
    "sim": {"instore", "benchmarks", "tests"},
    "instore": {"tests"},
    "benchmarks": {"tests"},
}


def _pkg(module: str) -> str:
    return module.split(".")[0]


def test_no_package_imports_a_layer_above_it() -> None:
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if _pkg(i.target) in FORBIDDEN.get(_pkg(i.source), set())
    ]
    assert wrong == []


def test_firmware_config_takes_only_the_wire_contract_from_edge() -> None:
    """The contract (edge.protocol) is at the bottom of everything; the node's code is not."""
    wrong = [f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS
             if _pkg(i.source) == "firmware_config" and _pkg(i.target) == "edge" and i.target != "edge.protocol"]
    assert wrong == []


def test_benchmarks_are_imported_only_lazily_by_the_bench_command() -> None:
    """`instore` must start without loading benchmarks (which import most of the tree)."""
    users = {(i.source, i.eager) for i in IMPORTS if _pkg(i.target) == "benchmarks" and _pkg(i.source) in PRODUCTION}
    assert users <= {("instore.cli", False)}


def test_no_import_cycle_at_import_time() -> None:
    eager = {(i.source, i.target) for i in IMPORTS if i.eager and _pkg(i.source) in PRODUCTION}
    assert depgraph.cycles(eager) == []


def test_the_gateway_and_the_whatsapp_channel_have_no_cycle_even_lazily() -> None:
    """Lazy and type-only imports hide a circle from Python but not from the reader."""
    for pkg in ("gateway", "cloud_sync", "edge"):
        edges = {(i.source, i.target) for i in IMPORTS if _pkg(i.source) == pkg and _pkg(i.target) == pkg}
        assert depgraph.cycles(edges) == [], pkg


def test_the_graph_sees_known_edges() -> None:
    """The reader works: a few imports that exist are found, with their kind."""
    found = {(i.source, i.target, i.eager) for i in IMPORTS}
    assert ("gateway.ingest.core", "gateway.ingest.rfid_service", True) in found
    assert ("gateway.channels.whatsapp_host", "cloud_sync.port", True) in found
    assert ("instore.cli", "benchmarks", False) in found
    assert ("gateway.web.routes_rfid", "gateway.ingest.core", False) in found  # under TYPE_CHECKING
    assert depgraph.cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")}) == [["a", "b", "c"]]


#: gateway sub-package -> the gateway parts it may import (top-level modules by name)
GATEWAY_LAYERS = {
    "engines": {"engines"},
    "storage": {"engines", "storage", "i18n"},
    "ingest": {"engines", "storage", "ingest", "events", "staff_events", "metrics", "i18n"},
    "channels": {"engines", "storage", "ingest", "channels", "events", "staff_events", "metrics", "i18n"},
    "web": {"engines", "storage", "ingest", "channels", "web", "events", "staff_events", "metrics", "i18n"},
}


def test_gateway_sub_packages_import_only_the_layers_below() -> None:
    """Engines are pure, storage knows no ingest, nothing below the web imports a route (docs/architecture.md)."""
    wrong = []
    for i in IMPORTS:
        src, dst = i.source.split("."), i.target.split(".")
        if src[0] == dst[0] == "gateway" and len(src) > 2 and src[1] in GATEWAY_LAYERS and len(dst) > 1:
            if dst[1] not in GATEWAY_LAYERS[src[1]]:
                wrong.append(f"{i.source}:{i.line} imports {i.target}")
    assert wrong == []
