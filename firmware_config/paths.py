"""Paths written in a store file are relative to the store file, never to the working directory.

`instore gateway`, `instore staff add` and `instore config mosquitto` run from different
directories (systemd's WorkingDirectory, an installer's shell); resolving against the file
makes all of them find the same database and certificates.
"""

from __future__ import annotations

from pathlib import Path


def store_relative(store_file: str | Path, value: str | Path) -> Path:
    """`value` as an absolute path: unchanged if absolute, else joined to the store file's directory."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(store_file).resolve().parent / p
