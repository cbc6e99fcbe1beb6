"""Objects that the points of a sweep running in one process share.

Hydra's basic launcher runs every point of a multirun in one process, and joblib reuses its worker processes, so
a point can take the loaded backbone, the prepared data or lm-eval's task index from the point before instead of
building them again (seconds each, the bulk of a point whose heads, traces and scores are cached). Each object is
keyed by everything that determines it, and only the few most recently used objects of each kind are held (one
backbone), so a sweep over several backbones never holds more than one of them in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_HELD: dict[str, OrderedDict[Hashable, object]] = {}


def reuse(kind: str, key: Hashable, build: Callable[[], T], keep: int = 1) -> T:
    """The held ``kind`` object built for ``key``, else ``build()``; at most ``keep`` objects of a kind are held, the
    least recently used is let go first (``keep`` > 1 where a sweep alternates between a few, e.g. two head types)."""
    held = _HELD.setdefault(kind, OrderedDict())
    if key in held:
        held.move_to_end(key)
        return held[key]  # type: ignore[return-value]
    while len(held) >= keep:
        held.popitem(last=False)  # let the old one go before the new one is built
    value = build()
    held[key] = value
    return value


def forget(kind: str | None = None) -> None:
    """Drop the held objects of ``kind`` (every kind when None)."""
    if kind is None:
        _HELD.clear()
    else:
        _HELD.pop(kind, None)


def files_state(roots, pattern: str = "*", recursive: bool = False) -> tuple:
    """Path, size and mtime of each file matching ``pattern`` in ``roots`` (files or folders): a changed or
    replaced file makes a new key."""
    state = []
    for root in map(Path, roots):
        found = root.rglob(pattern) if recursive else root.glob(pattern)
        for path in [root] if root.is_file() else sorted(p for p in found if p.is_file()):
            stat = path.stat()
            state.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(state)
