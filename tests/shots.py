"""Screenshots the browser tests take for the docs when INSTORE_SHOTS names a folder."""

from __future__ import annotations

import os
from pathlib import Path


def save_shot(page, name: str) -> None:  # noqa: ANN001 (a Playwright page)
    """Save a full-page screenshot as INSTORE_SHOTS/name; nothing when the variable is unset."""
    folder = os.environ.get("INSTORE_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)
