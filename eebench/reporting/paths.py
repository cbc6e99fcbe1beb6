"""Paths as a report shows them: a report (its tables and CSV files included) should not carry the absolute
layout of the machine that made it, yet a reader on that machine should still find what a path names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from eebench.cache import configured_cache_root

CACHE_VARIABLE = "$EEBENCH_CACHE"
PATH_COLUMNS = {"run_dir": "run", "backbone_path": "backbone"}  # CSV column -> the kind of path it holds


def shown_path(path: Path) -> str:
    """A sweep folder as a reader can use it: relative to the working directory when inside it, else its own name."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def shown_run(path: str | Path) -> str:
    """A run folder as ``shown_path`` names a sweep, but outside the working directory by its sweep and its own
    name (``sweep/6``), since run folders' names alone repeat across sweeps."""
    path = Path(path)
    relative = shown_path(path)
    return relative if relative != path.name else "/".join(path.parts[-2:])


def shown_backbone_path(value: str) -> str:
    """What a backbone was loaded from: inside the cache as ``$EEBENCH_CACHE/...`` (where the reader's own cache
    holds the same key), a hub id unchanged, any other absolute path as a run folder is shown."""
    if not value.startswith("/"):
        return value  # a hub id or an already relative path
    try:
        return f"{CACHE_VARIABLE}/{Path(value).resolve().relative_to(configured_cache_root())}"
    except ValueError:
        return shown_run(value)


def portable_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its path columns as a report shows them (a copy; the table itself is unchanged)."""
    shown = {"run": shown_run, "backbone": shown_backbone_path}
    present = {column: kind for column, kind in PATH_COLUMNS.items() if column in table.columns}
    if not present:
        return table
    table = table.copy()
    for column, kind in present.items():
        table[column] = table[column].map(lambda v, show=shown[kind]: v if pd.isna(v) else show(str(v)))
    return table
