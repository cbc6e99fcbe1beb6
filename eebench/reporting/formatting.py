"""Number and label formatting shared by every report section and figure."""

from __future__ import annotations

import math
import re
from typing import Any

MISSING = "–"
_NUMERIC = re.compile(r"^[+\-–]?(\d|\.\d|–$)")


def numeric_columns(rows: list[list[str]], columns: int) -> list[bool]:
    """Per column: True when every cell reads as a number (or –), so it is right-aligned and digits
    line up; names and lists stay left-aligned so they read naturally."""
    return [bool(rows) and all(_NUMERIC.match(str(row[c]) or MISSING) for row in rows) for c in range(columns)]


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value: Any, spec: str = ".3g") -> str:
    if is_missing(value):
        return MISSING
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def pct(fraction: Any) -> str:
    return fmt(fraction * 100 if isinstance(fraction, float) else fraction, ".1f")


def with_error(cell: str, error: Any, scale: float = 1.0, spec: str = ".1f") -> str:
    """``cell ± error``; the error is omitted (not shown as ± –) when unknown."""
    return cell if is_missing(error) or cell == MISSING else f"{cell} ± {format(error * scale, spec)}"


def distinct(values) -> list[str]:
    return sorted({str(v) for v in values if not is_missing(v)})


def slug(name: str) -> str:
    """A file-name-safe version of a family or backbone name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "unnamed"


def exit_label_order(label: Any) -> tuple:
    """Sort key for exit labels: block numbers ascending, then "final" (or anything else) last."""
    text = str(label)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)
