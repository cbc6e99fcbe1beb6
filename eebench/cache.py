"""Content-addressed artifact cache.

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` hashes everything that determines it.
A directory is complete only once its ``COMPLETE`` marker exists: writers build the artifact in a
temporary sibling directory and rename it into place, so a killed job never leaves a half-written
entry that a later job would trust. A file lock per key keeps concurrent jobs from building twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock

ARTIFACT_FORMAT_VERSION = 1
COMPLETE_MARKER = "COMPLETE"


def cache_root() -> Path:
    root = os.environ.get("EEBENCH_CACHE") or os.path.join(Path.home(), ".cache", "eebench")
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(spec: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable spec (dict order does not matter)."""
    blob = json.dumps({"format": ARTIFACT_FORMAT_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).exists()


@contextmanager
def _building(final: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():  # an incomplete leftover of a killed job
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def get_or_build(kind: str, spec: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Return the complete artifact directory for ``spec``, building it with ``build(tmp_dir)`` if needed."""
    final = cache_root() / kind / content_key(spec)
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if is_complete(final):  # built by a concurrent job while we waited
            return final
        with _building(final) as tmp:
            (tmp / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True, default=str))
            build(tmp)
    return final


def list_entries() -> list[dict]:
    """Every artifact directory in the cache, with its size, age and completeness (downloads are not artifacts)."""
    entries = []
    for kind_dir in sorted(p for p in cache_root().iterdir() if p.is_dir() and p.name[0] != "." and p.name != "downloads"):
        for entry in sorted(p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            entries.append({"kind": kind_dir.name, "key": entry.name, "path": entry, "bytes": size,
                            "mtime": entry.stat().st_mtime, "complete": is_complete(entry)})
    return entries


def clear(kind: str | None = None, older_than_days: float | None = None) -> list[Path]:
    """Delete cache entries (optionally of one kind, optionally only those older than N days)."""
    import time

    removed = []
    for entry in list_entries():
        old_enough = older_than_days is None or time.time() - entry["mtime"] > older_than_days * 86400
        if (kind is None or entry["kind"] == kind) and old_enough:
            with FileLock(str(entry["path"]) + ".lock"):
                shutil.rmtree(entry["path"], ignore_errors=True)
            removed.append(entry["path"])
    return removed
