"""The production packages type-check (mypy, configured in pyproject.toml), and every remaining
`type: ignore` says why beside it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "gateway", "cloud_sync", "firmware_config", "sim", "instore")
BARE_IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?\s*$")


@pytest.mark.timeout(300)
def test_mypy_finds_no_errors() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True, timeout=280
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_type_ignore_gives_a_reason() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{n}"
        for pkg in PACKAGES
        for path in sorted((ROOT / pkg).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if BARE_IGNORE.search(line)
    ]
    assert bare == []
