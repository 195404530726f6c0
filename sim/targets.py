"""Metric targets: a TOML of limits per score metric, checked against a run (met or missed).

    "entry.latency_p95_s" = { max = 10 }
    "entry.precision" = { min = 0.99 }

A target is a measurement's yardstick, never a gate: `instore sim run` exits 0 either way.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

LIBRARY_TARGETS = Path(__file__).resolve().parent / "targets.toml"
_DYNAMIC_PREFIXES = ("events.", "agents.", "count.")  # metrics whose names depend on the run


class TargetError(ValueError):
    """An invalid targets file; the message names the file, the line, the key and the problem."""


class Limit(BaseModel):
    """Bounds a metric must stay within: `min`, `max` or both (inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Limit:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self

    def met(self, value: object) -> bool | None:
        """True or False for a number; None when the run did not measure it."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def text(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} .. {self.max:g}" if self.min != self.max else f"= {self.min:g}"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


def known_metrics() -> set[str]:
    """Every metric name `sim.score.score` reports, from a run with nothing in it."""
    from sim.score import score
    from sim.truth import Truth

    return set(score(Truth(duration_s=1.0), [], []))


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.splitlines(), start=1):
        if re.match(rf'\s*["\']?{re.escape(key)}["\']?\s*[=.]', line):
            return i
    return 1


def load_targets(path: str | Path) -> dict[str, Limit]:
    """Read and check a targets file: unknown metrics get a "did you mean", errors file:line: key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise TargetError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: {exc}") from None
    known = known_metrics()
    errors, out = [], {}
    for key, value in data.items():
        where = f"{path}:{_line_of(text, key)}: {key}"
        if key not in known and not key.startswith(_DYNAMIC_PREFIXES):
            close = difflib.get_close_matches(key, sorted(known), n=1)
            errors.append(f"{where}: not a metric of the score" + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a table like {{ min = 0.99 }} or {{ max = 10 }}, got {value!r}")
            continue
        try:
            out[key] = Limit.model_validate(value)
        except ValidationError as exc:
            for e in exc.errors():
                sub = ".".join(str(p) for p in e["loc"])
                msg = e["msg"].removeprefix("Value error, ")
                errors.append(f"{where}{'.' + sub if sub else ''}: {msg}")
    if errors:
        raise TargetError("\n".join(errors))
    return out


def check(metrics: dict, targets: dict[str, Limit]) -> dict[str, dict]:
    """Per targeted metric: its limits, the measured value and whether it was met (None: not measured)."""
    return {
        k: {"min": lim.min, "max": lim.max, "value": metrics.get(k), "met": lim.met(metrics.get(k))}
        for k, lim in targets.items()
    }
