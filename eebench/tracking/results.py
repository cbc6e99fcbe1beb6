"""Run-directory storage: atomic result/error files, provenance, and loading a sweep back.

A run directory is complete when it holds ``results.json`` with ``status == "complete"`` that reads as a
``RunResult`` (tracking/contract.py); a failed job holds ``error.json`` instead. Loading never raises on a bad
directory: it is reported as skipped with a reason, so one broken point cannot hide the rest of a sweep.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import socket
import subprocess
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from eebench.errors import EEBenchError
from eebench.faults import kill_point
from eebench.files import atomic_target
from eebench.tracking.contract import COMPLETE, RESULTS_FILE, RunResult, read_result

ERROR_FILE = "error.json"
CONFIG_JSON, CONFIG_YAML = "config.json", "config.yaml"  # the point's composed config: compared on resuming; for people

# Distribution names whose versions matter for reproducing a number.
PROVENANCE_PACKAGES = ("torch", "transformers", "lm_eval", "wandb", "hydra-core", "eebench")

# Matched against whole words of a key (split on _ - . and camelCase), not substrings, so that
# legitimate config such as `max_new_tokens` or `prompt_tokens` survives while `api_key`,
# `WANDB_API_KEY`, `hfToken` and `db_password` are removed.
SECRET_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd", "credentials"})

# Where `eebench report wandb:...` puts the results.json files it downloads, inside the report's dir.
DOWNLOADED_RUNS_DIR = "wandb_runs"
# Directories inside a sweep that never hold run results of that sweep; pruned when discovering runs.
# W&B folders hold copies of results.json: read when given directly, never when a sweep is scanned.
_NOT_RUN_DIRS = frozenset({"wandb", DOWNLOADED_RUNS_DIR, ".hydra", "__pycache__"})


# ----------------------------------------------------------------------------- writing


def write_json_atomic(path: str | Path, obj: Any, kill_at: str | None = None) -> Path:
    """Write JSON atomically (``atomic_target``), synced to disk before the rename; ``kill_at`` names the kill point
    (``eebench.faults``) between the two."""
    path = Path(path)
    with atomic_target(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(_json_safe(obj), handle, indent=2, sort_keys=False, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if kill_at:
            kill_point(kill_at)  # crash tests kill here: the temp file exists, the target not yet
    return path


def _json_safe(obj: Any) -> Any:
    """Strict JSON: NaN/inf become null (other tools choke on bare NaN); paths and numpy scalars become plain."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return _json_safe(obj.item())
    return str(obj)


def _is_secret_key(key: Any) -> bool:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower()
    return any(word in SECRET_WORDS for word in re.split(r"[^a-z0-9]+", words))


def redact(config: Any) -> Any:
    """Return a copy of a (nested) config with secret-looking keys removed."""
    if isinstance(config, dict):
        return {k: redact(v) for k, v in config.items() if not _is_secret_key(k)}
    if isinstance(config, (list, tuple)):
        return [redact(v) for v in config]
    return config


def write_results(run_dir: str | Path, results: RunResult | dict) -> Path:
    """Write ``results.json`` (a dict must read as a RunResult: nothing off-contract is written); a stale
    ``error.json`` from an earlier failed attempt is removed."""
    run_dir = Path(run_dir)
    if isinstance(results, dict):
        results = RunResult.from_dict(results, f"results for {run_dir}")
    path = write_json_atomic(run_dir / RESULTS_FILE, results.to_dict(), kill_at="write")
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    return path


def write_error(run_dir: str | Path, exc: BaseException, config: dict, signal: str | None = None) -> Path:
    """Record a failed job so the report can list it; the config is redacted before writing. ``signal``: the
    name of the signal that ended it (SIGTERM, SIGINT)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    payload = {
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": tb,
        "config": redact(config or {}),
        "time": _utc_now(),
        **({"signal": signal} if signal else {}),
    }
    return write_json_atomic(Path(run_dir) / ERROR_FILE, payload)


# ----------------------------------------------------------------------------- provenance


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(args: list[str], start: Path | None) -> str | None:
    """Output of ``git <args>`` run in the checkout holding ``start`` (default: this package); None when
    git is missing, fails or ``start`` is not in a repository, so a run never fails for provenance."""
    folder = (start or Path(__file__)).resolve()
    while not folder.is_dir():  # a file, or a path not created yet: ask from the nearest folder
        folder = folder.parent
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_sha(start: Path | None = None) -> str | None:
    """Commit checked out where eebench (or ``start``) lives; None outside a repository or without git."""
    return _git(["rev-parse", "--verify", "--quiet", "HEAD"], start) or None


def git_dirty(start: Path | None = None) -> bool | None:
    """Whether tracked files differ from that commit (untracked files do not count); None when unknown."""
    status = _git(["status", "--porcelain", "--untracked-files=no"], start)
    return None if status is None else bool(status)


def _cuda_device_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not stop a CPU run from recording provenance
        return None


def collect_provenance(device: str, seed: int) -> dict:
    """Everything needed to tell where and with what code a number was produced."""
    return {
        "git_sha": git_sha(),
        "git_dirty": git_dirty(),
        "packages": {name: _package_version(name) for name in PROVENANCE_PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cuda_device": _cuda_device_name(),
        "device": device,
        "seed": seed,
        "time": _utc_now(),
    }


# ----------------------------------------------------------------------------- loading


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _error_reason(run_dir: Path) -> str:
    error, problem = _read_json(run_dir / ERROR_FILE)
    if problem or not isinstance(error, dict):
        return "failed (error.json present but unreadable)"
    first_line = str(error.get("message") or "no message").strip().splitlines() or ["no message"]
    return f"failed: {first_line[0]}"


def config_yaml_problem(run_dir: str | Path) -> str | None:
    """Why a run dir's config.yaml (the composed config, for people) cannot be trusted: unreadable, or not the
    config.json beside it; None when it is sound or absent (a W&B copy of a run has none)."""
    path = Path(run_dir) / CONFIG_YAML
    if not path.exists():
        return None
    try:
        shown = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"corrupt {CONFIG_YAML} ({type(exc).__name__})"
    if not isinstance(shown, dict):
        return f"corrupt {CONFIG_YAML} (not a mapping)"
    config, unreadable = _read_json(Path(run_dir) / CONFIG_JSON)
    # Through JSON, as config.json went: keys become strings, values plain.
    if unreadable is None and json.loads(json.dumps(shown, default=str)) != config:
        return f"{CONFIG_YAML} differs from {CONFIG_JSON}"
    return None


def point_name(run_dir: str | Path) -> str:
    """A run folder by its sweep and its own name (``sweep/6``): what a skip reason calls it, since reasons go into
    reports read on other machines, and run folders' names alone repeat across sweeps."""
    return "/".join(Path(run_dir).parts[-2:])


def relative_reason(reason: str, run_dir: str | Path) -> str:
    """``reason`` with the folder holding the run's sweep left out of any path in it (``/abs/sweep/6/x`` reads
    ``sweep/6/x``), and the home folder shown as ``~``: a report must not carry the layout of the machine that made
    it. Both the given and the resolved spelling of the folder are left out (a symlinked /tmp reads either way)."""
    holder = Path(run_dir).absolute().parent.parent
    for spelling in dict.fromkeys((str(holder), str(holder.resolve()))):
        if spelling != holder.anchor:  # a sweep at the root: its paths are already as short as they get
            reason = reason.replace(spelling + os.sep, "")
    home = str(Path.home())
    return reason.replace(home + os.sep, "~" + os.sep) if home != Path(home).anchor else reason


def check_run(run_dir: str | Path) -> tuple[RunResult | None, str | None]:
    """Return (results, None) for a complete run, else (None, reason it is not usable), the reason naming paths
    relative to the run's sweep (``relative_reason``)."""
    results, reason = _check_run(Path(run_dir))
    return results, relative_reason(reason, run_dir) if reason else reason


def _check_run(run_dir: Path) -> tuple[RunResult | None, str | None]:
    if (run_dir / ERROR_FILE).exists():
        return None, _error_reason(run_dir)
    if not (run_dir / RESULTS_FILE).exists():
        return None, "no results.json (job unfinished or killed?)"
    status, problem = _read_json(run_dir / RESULTS_FILE)
    if problem:
        return None, f"corrupt results.json ({problem})"
    if isinstance(status, dict) and status.get("status") != COMPLETE:
        return None, f"status is {status.get('status')!r}, not {COMPLETE!r}"
    problem = config_yaml_problem(run_dir)
    if problem:
        return None, problem
    try:
        return read_result(run_dir), None
    except EEBenchError as exc:  # e.g. a field missing or renamed, or an older schema
        return None, f"not a valid results file: {exc}"


def load_run(run_dir: str | Path) -> RunResult | None:
    """The results of a complete run (with ``run_dir`` added), or None."""
    return check_run(run_dir)[0]


def _looks_like_run_dir(folder: Path) -> bool:
    return any((folder / name).exists() for name in (RESULTS_FILE, ERROR_FILE, ".hydra"))


def walk_sweep(sweep_dir: str | Path):
    """`sweep_dir` and the folders below it that may hold runs; `wandb`, `.hydra` and the like are
    entered only when given as `sweep_dir` itself."""
    for root, dirs, _files in os.walk(sweep_dir):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_RUN_DIRS)
        yield Path(root)


def find_run_dirs(sweep_dir: str | Path) -> list[Path]:
    """Run directories at or below `sweep_dir` (a single run dir counts), in a stable order."""
    return sorted((folder for folder in walk_sweep(sweep_dir) if _looks_like_run_dir(folder)), key=_natural_key)


def _natural_key(path: Path) -> list:
    # Hydra job dirs are numbered 0..N; sort 2 before 10.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def record_identity(results: RunResult) -> str:
    """Hash of a results record, without the ``run_dir`` set on loading: the copy of a results.json
    kept in a W&B run (local or downloaded) has the same identity as the file in the run dir."""
    return hashlib.sha256(json.dumps(results.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def load_sweeps(sweep_dirs: list[str | Path]) -> tuple[list[RunResult], list[tuple[str, str]]]:
    """Load every run under the given dirs: (complete runs, [(dir, why skipped), ...]).

    A record found more than once (a run dir and its W&B copy, or a dir given twice) counts once,
    the first place it was found."""
    runs: list[RunResult] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for sweep_dir in sweep_dirs:
        run_dirs = find_run_dirs(sweep_dir)
        if not run_dirs:
            skipped.append((str(sweep_dir), "no run directories found"))
        for run_dir in run_dirs:
            results, reason = check_run(run_dir)
            if results is None:
                skipped.append((str(run_dir), reason or "unknown"))
                continue
            identity = record_identity(results)
            if identity not in seen:
                seen.add(identity)
                runs.append(results)
    runs, older = one_per_configuration(runs)
    return runs, list(dict.fromkeys(skipped + older))


def _configuration(run_dir: str) -> str | None:
    config, problem = _read_json(Path(run_dir) / CONFIG_JSON)
    if problem or not isinstance(config, dict):
        return None
    from eebench.sweep_dirs import point_identity

    return point_identity(config)


def one_per_configuration(runs: list[RunResult]) -> tuple[list[RunResult], list[tuple[str, str]]]:
    """Group points by configuration (their config.json): the newest results of one configuration count,
    older copies (e.g. a folder of an earlier launch) are listed as skipped."""
    newest: dict[str, tuple[RunResult, float]] = {}
    for run in runs:
        key = _configuration(run.run_dir)
        mtime = (Path(run.run_dir) / RESULTS_FILE).stat().st_mtime
        if key is not None and (key not in newest or mtime >= newest[key][1]):
            newest[key] = (run, mtime)
    result, older = [], []
    for run in runs:
        key = _configuration(run.run_dir)
        if key is None or newest[key][0] is run:
            result.append(run)
        else:
            older.append((run.run_dir, f"same configuration as {point_name(newest[key][0].run_dir)} (an older copy)"))
    return result, older
