"""Content-addressed artifact cache.

An artifact lives in ``<root>/<kind>/<key>/`` where ``key`` hashes everything that determines it,
including a fingerprint of the source files of the code that produces it (``code=`` modules).
A directory is complete only once its ``COMPLETE`` marker exists: writers build the artifact in a
temporary sibling directory, record a checksum of every file in ``MANIFEST.json`` and rename it into
place, so a killed job never leaves a half-written entry that a later job would trust. Every use checks
the checksums: a corrupt entry is moved to ``<root>/<kind>/.corrupt/`` with one warning line and rebuilt.
A file lock per key keeps concurrent jobs from building twice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from eebench.errors import EEBenchError
from eebench.files import atomic_target

ARTIFACT_FORMAT_VERSION = 2
COMPLETE_MARKER = "COMPLETE"
MANIFEST = "MANIFEST.json"
CORRUPT_DIR = ".corrupt"
NOT_ARTIFACT_KINDS = ("downloads",)  # pip downloads: checked by size/name in downloads.py, not entries


def configured_cache_root() -> Path:
    """Where the cache is (``EEBENCH_CACHE``, else ``~/.cache/eebench``), whether or not it exists yet."""
    root = os.environ.get("EEBENCH_CACHE") or os.path.join(Path.home(), ".cache", "eebench")
    return Path(root).expanduser().resolve()


def cache_root() -> Path:
    path = configured_cache_root()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EEBenchError(
            f"EEBENCH_CACHE={str(path)!r} cannot be created ({exc.strerror}); allowed: a writable directory"
        ) from None
    return path


def portable(path: str | Path) -> str:
    """``path`` as keys and cached files may name it: relative to the cache root when inside it, so a cache mounted
    at another path (a shared cache, a copied one) computes the same keys and reads the same files; else resolved."""
    resolved = Path(path).expanduser().resolve()
    root = cache_root()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)


def in_cache(relative: str) -> Path:
    """The file a cached file names by ``portable``, under this process's cache root; refused if it leaves it."""
    root = cache_root()
    path = (root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(root):
        raise EEBenchError(f"cache path {relative!r} lies outside the eebench cache ({root}); allowed: a path inside it")
    return path


def content_key(spec: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable spec (dict order does not matter)."""
    blob = json.dumps({"format": ARTIFACT_FORMAT_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, remembered per (path, size, mtime, inode) so one process hashes a file once."""
    stat = os.stat(path)
    signature = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if signature not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
        _DIGESTS[signature] = digest.hexdigest()
    return _DIGESTS[signature]


def path_digest(path: str | Path) -> str:
    """Content hash of a file, or of every (non-hidden) file below a directory with its relative path."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    digest = hashlib.sha256()
    visible = (p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    for file in sorted(visible):
        digest.update(f"{file.relative_to(path)}\0{file_digest(file)}\n".encode())
    return digest.hexdigest()


def code_fingerprint(*modules: str) -> str:
    """Short hash of the source files of the named modules: an artifact built by changed code gets a new key."""
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ValueError(f"code_fingerprint: no source for module {name!r}")
        digest.update(f"{name}\0{file_digest(spec.origin)}\n".encode())
    return digest.hexdigest()[:12]


def package_fingerprint() -> str:
    """Fingerprint of every eebench source file (what a finished point as a whole was produced by)."""
    return path_digest(Path(__file__).resolve().parent)[:12]


# ----------------------------------------------------------------------------- integrity


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).exists()


def _write_manifest(directory: Path) -> None:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    manifest = {str(p.relative_to(directory)): file_digest(p) for p in files}
    (directory / MANIFEST).write_text(json.dumps({"files": manifest}, indent=1, sort_keys=True))


def entry_problem(directory: Path) -> str | None:
    """Why a cache entry cannot be trusted (missing, incomplete, a file missing or changed), or None."""
    if not directory.is_dir():
        return "missing"
    if not is_complete(directory):
        return "incomplete (no COMPLETE marker)"
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {MANIFEST}"
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if file_digest(path) != expected:
            return f"{name} does not match its checksum"
    return None


def content_digest(directory: Path, suffix: str = ".safetensors") -> str:
    """Hash of an entry's checksummed ``suffix`` files (the weights, not the spec nor a training log whose timings
    differ between two builds of the same weights): what a later artifact was computed from."""
    files = json.loads((Path(directory) / MANIFEST).read_text())["files"]
    chosen = {name: digest for name, digest in files.items() if name.endswith(suffix)}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]


def quarantine(path: Path, reason: str) -> Path:
    """Move a corrupt entry (dir or file) to ``<kind>/.corrupt/`` and say so in one warning line."""
    target = path.parent / CORRUPT_DIR / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    print(
        f"warning: cache entry {path.parent.name}/{path.name} is corrupt ({reason}); moved to {target}, rebuilding it",
        file=sys.stderr,
        flush=True,
    )
    return target


@contextmanager
def _building(final: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        _write_manifest(tmp)
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():  # an incomplete leftover of a killed job
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_leftovers(final: Path) -> None:
    """Temp folders of this key left by killed builders (we hold the key's lock, so none is live)."""
    for leftover in final.parent.glob(f".{final.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def full_spec(spec: dict[str, Any], code: tuple[str, ...] = ()) -> dict[str, Any]:
    return {**spec, "code": code_fingerprint(*code)} if code else dict(spec)


def entry_dir(kind: str, spec: dict[str, Any], code: tuple[str, ...] = ()) -> Path:
    return cache_root() / kind / content_key(full_spec(spec, code))


def get_or_build(kind: str, spec: dict[str, Any], build: Callable[[Path], None], code: tuple[str, ...] = ()) -> Path:
    """Return the verified artifact directory for ``spec``, building it with ``build(tmp_dir)`` if needed.

    ``code`` names the modules whose source determines the artifact; their fingerprint joins the key."""
    spec = full_spec(spec, code)
    final = cache_root() / kind / content_key(spec)
    if entry_problem(final) is None:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        problem = entry_problem(final)
        if problem is None:  # built by a concurrent job while we waited
            return final
        _remove_leftovers(final)
        if final.exists():  # entries are renamed into place complete: one without its marker lost it
            quarantine(final, problem)
        with _building(final) as tmp:
            (tmp / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True, default=str))
            build(tmp)
    return final


@dataclass(frozen=True)
class Artifact:
    """One kind of cache entry, declared beside the code that builds it: where its entries live, every field of the
    spec its key hashes and the modules whose source joins the key. Keys are computed through the declaration, which
    refuses a spec with a field it does not declare, so docs/caching.md's cache-key table (generated from the
    declarations by ``eebench.cache_doc``) cannot fall behind the keys."""

    kind: str  # entries live in <cache>/<kind>/<key>
    builder: str  # the module whose code builds an entry; its source is always in the key
    inputs: dict[str, str]  # each field of the spec, with what it holds (for the docs)
    code: tuple[str, ...] = ()  # the other modules whose source determines an entry
    variant_code: str = ""  # the modules a spec's variant adds to the key (e.g. the head type's own), in words

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.builder, *self.code)

    def full_spec(self, spec: dict[str, Any], variant_modules: tuple[str, ...] = ()) -> dict[str, Any]:
        """``spec`` with the code fingerprint, as the key hashes it and ``spec.json`` records it."""
        undeclared, missing = sorted(set(spec) - set(self.inputs)), sorted(set(self.inputs) - set(spec))
        if undeclared or missing:
            raise ValueError(f"{self.kind} spec: fields {undeclared} undeclared, {missing} missing; declare them in inputs")
        if variant_modules and not self.variant_code:
            raise ValueError(f"{self.kind}: variant modules {list(variant_modules)} given; say which in variant_code")
        return full_spec(spec, (*self.modules, *variant_modules))

    def key(self, spec: dict[str, Any], variant_modules: tuple[str, ...] = ()) -> str:
        return content_key(self.full_spec(spec, variant_modules))

    def entry_dir(self, spec: dict[str, Any], variant_modules: tuple[str, ...] = ()) -> Path:
        return cache_root() / self.kind / self.key(spec, variant_modules)

    def get_or_build(self, spec: dict[str, Any], build: Callable[[Path], None], variant_modules: tuple[str, ...] = ()) -> Path:
        """The verified entry for ``spec``, built with ``build(tmp_dir)`` if needed (see ``get_or_build``)."""
        self.full_spec(spec, variant_modules)  # checks the spec against the declaration
        return get_or_build(self.kind, spec, build, code=(*self.modules, *variant_modules))


# ----------------------------------------------------------------------------- listing


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _code_of(path: Path) -> str | None:
    try:
        return json.loads((path / "spec.json").read_text()).get("code") if path.is_dir() else None
    except (OSError, ValueError, AttributeError):
        return None


def _state(path: Path) -> str:
    """ok | incomplete | temp (a build in progress or left by a killed job) | file (checked by its owner)."""
    if path.name.startswith(".") or ".tmp" in path.name:
        return "temp"
    if path.is_file():
        return "file"
    return "ok" if is_complete(path) else "incomplete"


def _entry(kind: str, path: Path, state: str | None = None) -> dict:
    return {
        "kind": kind,
        "key": path.name,
        "path": path,
        "bytes": _size(path),
        "mtime": path.stat().st_mtime,
        "state": state or _state(path),
        "complete": is_complete(path),
        "code": _code_of(path),
    }


def list_entries() -> list[dict]:
    """Every artifact in the cache (directories, per-request score files, leftover temp folders and
    entries moved aside as corrupt), with size, age, state and code fingerprint."""
    entries = []
    kinds = (p for p in cache_root().iterdir() if p.is_dir() and p.name[0] != "." and p.name not in NOT_ARTIFACT_KINDS)
    for kind_dir in sorted(kinds):
        for item in sorted(kind_dir.iterdir()):
            if item.name == CORRUPT_DIR:
                entries += [_entry(kind_dir.name, p, "corrupt") for p in sorted(item.iterdir()) if p.suffix != ".lock"]
            elif item.suffix not in (".lock", ".sha256"):
                entries.append(_entry(kind_dir.name, item))
    return entries


def _lock_of(entry: dict) -> FileLock:
    """The lock its builder holds: a temp folder ``.KEY.xxxx`` shares the lock of ``KEY``."""
    path = entry["path"]
    key = path.name[1:].split(".", 1)[0] if entry["state"] == "temp" and path.name.startswith(".") else path.name
    return FileLock(str(path.parent / key) + ".lock")


def _delete(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    Path(str(path) + ".sha256").unlink(missing_ok=True)  # a score file's checksum goes with it


def _remove(entry: dict) -> bool:
    """Remove an entry unless a live builder holds its lock (entries moved aside as corrupt have none)."""
    if entry["state"] == "corrupt":
        _delete(entry["path"])
        return True
    try:
        with _lock_of(entry).acquire(timeout=0 if entry["state"] == "temp" else -1):
            _delete(entry["path"])
            return True
    except Timeout:
        return False


def clear(kind: str | None = None, older_than_days: float | None = None) -> list[Path]:
    """Delete cache entries (optionally of one kind, optionally only those older than N days)."""
    removed = []
    for entry in list_entries():
        old_enough = older_than_days is None or time.time() - entry["mtime"] > older_than_days * 86400
        if (kind is None or entry["kind"] == kind) and old_enough and _remove(entry):
            removed.append(entry["path"])
    return removed


def entry_check(entry: dict) -> str | None:
    """What is wrong with a listed entry, or None."""
    state = entry["state"]
    if state == "corrupt":
        return "moved aside as corrupt; remove with `eebench cache clear`"
    if state == "temp":
        try:
            with _lock_of(entry).acquire(timeout=0):
                return "leftover temp folder of a killed job; remove with `eebench cache clear`"
        except Timeout:
            return None  # a build in progress
    if state == "file":
        return file_problem(entry["path"])
    return entry_problem(entry["path"])


# ----------------------------------------------------------------------------- single checksummed files


def write_checksum(path: Path) -> None:
    """Record a mutable cache file's checksum next to it (``<file>.sha256``), for ``file_problem``."""
    Path(str(path) + ".sha256").write_text(file_digest(path) + "\n")


def write_record(path: Path, text: str) -> None:
    """A small cache file that is re-derived when unreadable (a memo), written atomically with its checksum."""
    with atomic_target(path) as tmp:
        tmp.write_text(text)
    write_checksum(path)


def read_record(path: Path) -> str | None:
    """A record's text, or None when it is missing or fails its checksum (the caller derives it again)."""
    return path.read_text() if path.is_file() and file_problem(path) is None else None


def file_problem(path: Path) -> str | None:
    try:
        expected = Path(str(path) + ".sha256").read_text().strip()
    except OSError:
        return "no checksum file"
    return None if file_digest(path) == expected else "does not match its checksum"
