"""The BIG-bench 1.0.0 sdist: where it comes from, its identity for cache keys, and streaming the few
task.json members a suite needs out of the 358 MB tarball without unpacking it."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eebench.cache import cache_root, file_digest, portable, read_record, write_record
from eebench.downloads import pip_download
from eebench.errors import EEBenchError, require

BIGBENCH_SDIST = "bigbench==1.0.0"
SDIST_FILENAME = "bigbench-1.0.0.tar.gz"
# Lets a user point at an sdist they already have instead of letting us download it.
SDIST_ENV_VAR = "EEBENCH_BIGBENCH_SDIST"


def ensure_sdist(download_dir: Path | None = None) -> Path:
    """Path of the BIG-bench sdist tarball, downloading it from the package index once if we do not have it yet."""
    override = os.environ.get(SDIST_ENV_VAR)
    if override:
        path = Path(override).expanduser().resolve()
        require(path.is_file(), f"{SDIST_ENV_VAR}={override!r} is not a file; point it at {SDIST_FILENAME}")
        return path
    if download_dir is not None and (Path(download_dir) / SDIST_FILENAME).is_file():
        return (Path(download_dir) / SDIST_FILENAME).resolve()
    # pip >= 25 refuses this sdist (it declares a direct-URL dependency even with --no-deps);
    # pip_download falls back to the index's simple page with a sha256 check.
    try:
        return pip_download(BIGBENCH_SDIST, SDIST_FILENAME, sdist=True).resolve()
    except EEBenchError as exc:
        # The index stopped listing this sdist; the generated tasks (eval=demo, eval=offline) need no download.
        raise EEBenchError(
            f"{exc}; the BIG-bench tasks need that sdist: set {SDIST_ENV_VAR}=/path/to/{SDIST_FILENAME}, "
            "or use tasks that need no download (eval=demo, eval=offline)"
        ) from exc


def _sdist_identity(sdist: Path) -> dict[str, Any]:
    """Name, size and sha256 of the sdist; the hash is memoised on disk (a checksummed record, named by the sdist's
    place relative to the cache, so a cache mounted elsewhere keeps its memo) since it takes ~1 s."""
    stat = sdist.stat()
    memo_name = hashlib.sha256(f"{portable(sdist)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_root() / "file_digests" / memo_name
    digest = (read_record(memo) or "").strip()
    if not digest:
        digest = file_digest(sdist)
        write_record(memo, digest + "\n")
    return {"name": sdist.name, "size": stat.st_size, "sha256": digest}


# --------------------------------------------------------------------------- reading task.json


def _read_task_files(sdist: Path, task_dirs: Iterable[str]) -> dict[str, dict[str, dict]]:
    """One streaming pass over the tarball: ``{task_dir: {relative_subdir: task.json data}}``.

    For each wanted directory we keep its own ``task.json`` (key ``""``) and those one level below
    (key ``"<subtask>"``), since some tasks hold their examples only in subtasks.
    """
    wanted = set(task_dirs)
    found: dict[str, dict[str, dict]] = {d: {} for d in wanted}
    try:
        with tarfile.open(sdist, mode="r|gz") as archive:  # "r|" streams; no random access needed
            for member in archive:
                owners = _match_member(member.name, wanted) if member.isfile() else []
                if owners:
                    data = json.loads(archive.extractfile(member).read().decode("utf-8"))
                    for task_dir, subdir in owners:
                        found[task_dir][subdir] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EEBenchError(f"cannot read BIG-bench sdist {str(sdist)!r}: {exc}") from exc
    missing = sorted(d for d, files in found.items() if not files)
    require(
        not missing,
        f"BIG-bench task directory {', '.join(map(repr, missing))} not found in {sdist.name}; "
        f"see bigbench/benchmark_tasks/ in the sdist for the allowed names",
    )
    return found


def _match_member(member_name: str, wanted: set[str]) -> list[tuple[str, str]]:
    """``(task_dir, subdir)`` pairs a tar member ``.../bigbench/benchmark_tasks/<dir>[/<sub>]/task.json``
    belongs to (two when both a task and its parent were requested)."""
    marker = "/bigbench/benchmark_tasks/"
    position = member_name.find(marker)
    if position < 0 or not member_name.endswith("/task.json"):
        return []
    relative = member_name[position + len(marker) : -len("/task.json")]
    parent, _, sub = relative.rpartition("/")
    return [(d, s) for d, s in ((relative, ""), (parent, sub)) if d in wanted]


# --------------------------------------------------------------------------- conversion
