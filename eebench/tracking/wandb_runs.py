"""W&B runs as report sources: `wandb:ENTITY/PROJECT[/GROUP]` online, and local W&B folders.

Every eebench job saves its results.json into its W&B run (see wandb_sink), so W&B alone can rebuild
a report. Online, each run's file is downloaded to ``<out>/wandb_runs/<entity>_<project>[_<group>]/
<run_id>/results.json`` and that folder is read like a sweep dir. Locally, a W&B folder (``<sweep>/wandb``,
or offline-run-*/run-* folders gathered from several machines) is read directly: the copies lie in each
run's ``files/``. A W&B source that cannot be read costs only itself: one warning line, one skipped entry.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eebench.errors import EEBenchError, require
from eebench.logs import log
from eebench.tracking.results import DOWNLOADED_RUNS_DIR, RESULTS_FILE, check_run, find_run_dirs, record_identity, walk_sweep

SOURCE_PREFIX = "wandb:"
SOURCE_FORMS = "wandb:ENTITY/PROJECT or wandb:ENTITY/PROJECT/GROUP"
SWEEP_SUMMARY_JOB_TYPE = "sweep-summary"  # the per-sweep run of wandb_sink.log_sweep_summary
LOGIN_HINT = "set WANDB_API_KEY or run `wandb login`, and check the entity, project and group"
# How W&B names run folders: offline-run-20250102_030405-abc123 (offline) or run-... (online).
_RUN_FOLDER = re.compile(r"^(offline-)?run-\d{8}_\d{6}-[A-Za-z0-9]+$")

Skipped = tuple[str, str]  # (what, why), as in the report's Skipped section


@dataclass(frozen=True)
class WandbSource:
    entity: str
    project: str
    group: str | None = None

    def __str__(self) -> str:
        return SOURCE_PREFIX + "/".join(part for part in (self.entity, self.project, self.group) if part)

    @property
    def project_path(self) -> str:
        return f"{self.entity}/{self.project}"

    @property
    def folder_name(self) -> str:
        name = "_".join(part for part in (self.entity, self.project, self.group) if part)
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def is_wandb_source(text: str) -> bool:
    return text.startswith(SOURCE_PREFIX)


def parse_wandb_source(text: str) -> WandbSource:
    parts = text[len(SOURCE_PREFIX) :].split("/", 2)  # a group name may itself contain '/'
    require(len(parts) >= 2 and all(parts), f"{text!r} is not a W&B source; write {SOURCE_FORMS}")
    return WandbSource(*parts)


def _first_line(exc: BaseException) -> str:
    message = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {message}"


# ----------------------------------------------------------------------------- local W&B folders


def local_runs_without_results(folder: Path) -> list[Skipped]:
    """W&B run folders found when reading ``folder`` whose files/ holds no results.json (the
    sweep-summary run, or jobs logged by an eebench that did not save the file yet)."""
    return [
        (str(run), "W&B run without results.json (a sweep-summary run, or logged by an older eebench)")
        for run in walk_sweep(folder)
        if _RUN_FOLDER.match(run.name) and not (run / "files" / RESULTS_FILE).is_file()
    ]


# ----------------------------------------------------------------------------- online


def connect_api():
    import wandb  # only when a W&B source is given: importing wandb takes about a second

    return wandb.Api()


def list_runs(source: WandbSource, api: Any | None = None) -> list:
    """All runs of the source's project (and group); any W&B failure becomes one EEBenchError line."""
    try:
        api = connect_api() if api is None else api
        filters = {"group": source.group} if source.group else {}
        return list(api.runs(source.project_path, filters=filters))
    except Exception as exc:  # noqa: BLE001 - wandb raises many types (UsageError, CommError, HTTP, ...)
        raise EEBenchError(f"{source}: cannot list W&B runs ({_first_line(exc)}); {LOGIN_HINT}") from exc


def download_results(run: Any, folder: Path) -> Path | None:
    """Download the run's results.json into ``folder``; None when the run has none."""
    # files(names=...) lists only what exists, unlike file(name), whose answer for a missing file
    # differs between wandb versions.
    matches = [f for f in run.files(names=[RESULTS_FILE]) if f.name == RESULTS_FILE]
    if not matches:
        return None
    matches[0].download(root=str(folder), replace=True)
    return folder / RESULTS_FILE


def _missing_results_reason(run: Any) -> str:
    if getattr(run, "job_type", None) == SWEEP_SUMMARY_JOB_TYPE:
        return "sweep-summary run (the sweep's tables and report, not a point)"
    return f"no results.json in this W&B run (state {getattr(run, 'state', 'unknown')}; logged by an older eebench?)"


def _run_label(source: WandbSource, run: Any) -> str:
    return f"{SOURCE_PREFIX}{source.project_path}/{run.id} ({run.name})"


def fetch_wandb_source(source: WandbSource, out_dir: Path, api: Any | None = None) -> tuple[Path | None, list[Skipped]]:
    """(folder holding one ``<run_id>/results.json`` per run, or None if no run had one; skipped runs).
    Raises EEBenchError when W&B cannot be read at all."""
    runs = list_runs(source, api)
    folder = Path(out_dir) / DOWNLOADED_RUNS_DIR / source.folder_name
    shutil.rmtree(folder, ignore_errors=True)  # a run deleted on W&B since the last report must not linger
    if not runs:
        return None, [(str(source), "no W&B runs in this project/group")]
    skipped: list[Skipped] = []
    for run in runs:
        try:
            if download_results(run, folder / run.id) is None:
                skipped.append((_run_label(source, run), _missing_results_reason(run)))
        except Exception as exc:  # noqa: BLE001 - one failed download must not cost the other runs
            skipped.append((_run_label(source, run), f"download of results.json failed ({_first_line(exc)})"))
    return (folder if folder.is_dir() else None), skipped


def fetch_or_skip(source: WandbSource, out_dir: Path, api: Any | None) -> tuple[Path | None, list[Skipped]]:
    """fetch_wandb_source, but a source W&B cannot serve is one warning line and one skipped entry."""
    try:
        return fetch_wandb_source(source, out_dir, api)
    except EEBenchError as exc:
        log.warning("warning: %s", exc)
        return None, [(str(source), str(exc).removeprefix(f"{source}: "))]


def is_local_wandb_folder(folder: Path) -> bool:
    """A W&B folder (``<sweep>/wandb``) or W&B run folders gathered in one place."""
    folder = Path(folder)
    return (
        folder.name == "wandb"
        or bool(_RUN_FOLDER.match(folder.name))
        or any(_RUN_FOLDER.match(child.name) for child in folder.iterdir() if child.is_dir())
    )


def _logged_identities(folders: list[Path]) -> set[str]:
    identities = set()
    for folder in folders:
        for path in Path(folder).rglob(RESULTS_FILE):
            results, _ = check_run(path.parent)
            if results is not None:
                identities.add(record_identity(results))
    return identities


def missing_from_wandb(sweeps: list[Path], wandb_folders: list[Path], sources: list[str]) -> list[Skipped]:
    """Points complete in the given sweeps (a W&B folder's own sweep included) that no W&B source holds."""
    logged = _logged_identities(wandb_folders)
    missing = []
    for sweep in dict.fromkeys(sweeps):
        for run_dir in find_run_dirs(sweep):
            results, _ = check_run(run_dir)
            if results is not None and record_identity(results) not in logged:
                missing.append(
                    (
                        str(run_dir),
                        f"complete locally but missing from W&B ({', '.join(sources)}); "
                        "relaunch its sweep with logger=wandb to log it",
                    )
                )
    return missing


def gather_sources(
    local_dirs: list[Path], wandb_sources: list[WandbSource], out_dir: Path, api: Any | None = None
) -> tuple[list[Path], list[Skipped]]:
    """(dirs to load as sweeps, skipped entries the loading cannot see). Local dirs come first so that
    a point found both locally and on W&B is reported with its local run dir. When W&B sources are given,
    complete local points they lack are listed as missing from W&B."""
    dirs = list(local_dirs)
    skipped = [entry for folder in local_dirs for entry in local_runs_without_results(folder)]
    wandb_folders = [folder for folder in local_dirs if is_local_wandb_folder(folder)]
    for source in wandb_sources:
        folder, source_skipped = fetch_or_skip(source, out_dir, api)
        dirs += [folder] if folder else []
        wandb_folders += [folder] if folder else []
        skipped += source_skipped
    if wandb_folders or wandb_sources:
        sweeps = [folder for folder in local_dirs if folder not in wandb_folders]
        sweeps += [folder.parent for folder in wandb_folders if folder.name == "wandb" and folder in local_dirs]
        names = [str(folder) for folder in local_dirs if folder in wandb_folders] + [str(s) for s in wandb_sources]
        skipped += missing_from_wandb(sweeps, wandb_folders, names)
    return dirs, skipped
