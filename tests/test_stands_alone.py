"""The repository stands alone: no code, test or doc names a file outside it.

A checkout on a fresh machine (CI, a Pi, a new developer) has nothing beside it, so a path like a
sibling ``shared/`` directory works on one machine and breaks everywhere else. Facts taken from
outside material belong in ``docs/``, files the tests need in ``tests/assets/``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ROOT

#: Text files worth scanning (code, docs, configuration, scripts).
SUFFIXES = {".py", ".md", ".toml", ".json", ".yml", ".yaml", ".cfg", ".ini", ".sh", ".rules", ".service", ".txt"}
#: Extension-less files that are text too.
NAMES = {"Makefile", "run"}
#: References that leave the checkout: the development machine's reference directory (as a
#: sibling, by its parts, or joined with pathlib), or the machine's work tree. Built in pieces
#: so this file does not match itself.
OUTSIDE = re.compile(
    r"\.\./" + "shared" + r"\b"
    r"|(?<![\w-])" + "shared" + r"/(?:specs|data|hooks)/"
    r"|(?<![\w.-])/" + "work" + r"/"
    r"""|/\s*["']""" + "shared" + r"""["']"""  # a pathlib join
)


def project_files() -> list[Path]:
    """Files git tracks or would track (ignored ones, like databases and reports, are not ours)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    paths = (ROOT / name for name in out.split("\0") if name)
    return [p for p in paths if p.is_file() and (p.suffix in SUFFIXES or p.name in NAMES)]


def test_outside_pattern_catches_the_old_references() -> None:
    for bad in (
        "See ``shared" + "/specs/ble.md``.",
        '"../' + 'shared" / "data" / "epcis"',
        'ROOT.parent / "' + 'shared" / "data"',
        "/" + "work/main/.venv/bin/python",
    ):
        assert OUTSIDE.search(bad), bad
    for fine in ("their shared boundary", "docs/rfid.md", "../../firmware_config/examples/boutique.toml"):
        assert not OUTSIDE.search(fine), fine


def test_no_file_names_a_path_outside_the_repository() -> None:
    files = project_files()
    assert ROOT / "docs" / "rfid.md" in files and ROOT / "tests" / "test_rfid_epcis.py" in files
    hits = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == [], "paths outside the repository:\n" + "\n".join(hits)
