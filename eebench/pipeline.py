"""The Hydra task function: validate, run one point, write results / error files, log to W&B.

User errors print one line and never a traceback. In a multirun a failing point writes error.json and
the sweep carries on; a single run exits non-zero. SIGTERM and SIGINT end the point (and the launch) with one
line, error.json naming the signal and the exit status 128 + its number; the relaunch resumes the point.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from eebench.errors import EEBenchError, require
from eebench.files import atomic_target, remove_orphan_temps
from eebench.interrupts import Interrupted, signals_as_exceptions
from eebench.logs import log, log_to_file, stop_logging_to
from eebench.sweep_dirs import point_identity
from eebench.tracking.contract import Provenance, RunResult, read_result
from eebench.tracking.results import (
    CONFIG_JSON,
    CONFIG_YAML,
    collect_provenance,
    config_yaml_problem,
    redact,
    write_error,
    write_json_atomic,
    write_results,
)

INPUTS_FILE = "inputs.json"  # content hashes of the code and local files a finished point was computed from


def job_dirs() -> tuple[Path, Path, bool]:
    """(run dir, sweep dir, is multirun)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if multirun else run_dir
    return run_dir, sweep_dir, multirun


def _local_content(location: str) -> str | None:
    from eebench.cache import path_digest

    path = Path(str(location)).expanduser()
    return path_digest(path) if path.exists() else None


def point_inputs(plain: dict) -> dict:
    """What a point's results depend on beyond its config: eebench's code and local backbone / data files."""
    from eebench.cache import package_fingerprint

    return {
        "code": package_fingerprint(),
        "backbone": _local_content((plain.get("backbone") or {}).get("name_or_path", "")),
        "data": _local_content((plain.get("data") or {}).get("source", "")),
    }


def finished_results(run_dir: Path, plain: dict, inputs: dict | None = None) -> RunResult | None:
    """Results of an earlier launch of this same point, if it completed from the same configuration, code and
    input files (re-launching a sweep resumes it; anything changed recomputes the point)."""
    try:
        results = read_result(run_dir)
        same_config = point_identity(json.loads((run_dir / CONFIG_JSON).read_text())) == point_identity(plain)
        same_inputs = inputs is None or json.loads((run_dir / INPUTS_FILE).read_text()) == inputs
    except (OSError, ValueError, AttributeError, EEBenchError):
        return None
    # config.yaml is checked as results.json is: a garbled one means the point's files are not all sound.
    sound = (run_dir / CONFIG_YAML).exists() and config_yaml_problem(run_dir) is None
    return results if results.complete and same_config and same_inputs and sound else None


def check_writable(folder: Path, key: str) -> None:
    """One line naming the key when the output folder cannot be created or written."""
    import os

    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    require(writable, f"{key}={str(folder)!r} is not a writable directory; allowed: a folder you can write to")


def run_job(cfg: DictConfig) -> RunResult | None:
    """Hydra's task function for one point: its log goes to run.log too, and SIGTERM or SIGINT end it as above."""
    run_dir, sweep_dir, multirun = job_dirs()
    handler = log_to_file(run_dir)
    try:
        with signals_as_exceptions():
            return _resume_or_run(cfg, run_dir, sweep_dir, multirun)
    except Interrupted as exc:  # the cleanups on its way up have run: temp folders and files are gone
        _record_interruption(cfg, run_dir, exc)
        sys.exit(exc.exit_code)
    finally:
        stop_logging_to(handler)


def _record_interruption(cfg: DictConfig, run_dir: Path, exc: Interrupted) -> None:
    """error.json names the signal (the report lists the point as failed until its relaunch redoes it), unless the
    point had already finished (it was only being skipped or logged)."""
    plain = redact(OmegaConf.to_container(cfg, resolve=True))
    if finished_results(run_dir, plain) is not None:
        log.error("error: %s; %s had already finished", exc, run_dir)
        return
    write_error(run_dir, exc, plain, signal=exc.signal_name)
    log.error("error: %s; %s is unfinished: relaunch the same command to resume it", exc, run_dir)


def _resume_or_run(cfg: DictConfig, run_dir: Path, sweep_dir: Path, multirun: bool) -> RunResult | None:
    """A point that already finished with this config, code and input files is skipped (and logged if it never
    was); any other runs, and a failure is written to error.json."""
    from eebench.config import validate

    orphans = remove_orphan_temps(run_dir)  # left by a launch killed while writing; this one redoes or skips it
    if orphans:
        log.info("eebench: removed %d temp file(s) a killed launch left in %s", len(orphans), run_dir)
    plain = redact(OmegaConf.to_container(cfg, resolve=True))
    inputs = point_inputs(plain)
    finished = finished_results(run_dir, plain, inputs)
    if finished is not None:
        log.info("eebench: %s already has complete results for this config; skipping it", run_dir)
        _log_if_missing(cfg, plain, run_dir, sweep_dir, finished)
        return finished
    write_json_atomic(run_dir / CONFIG_JSON, plain)
    write_json_atomic(run_dir / INPUTS_FILE, inputs)
    with atomic_target(run_dir / CONFIG_YAML) as tmp:
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    try:
        typed = validate(cfg)
        results = _run_and_write_results(typed, plain, run_dir, sweep_dir)
        log.info("eebench: results written to %s", run_dir / "results.json")
        return results
    except EEBenchError as exc:
        write_error(run_dir, exc, plain)
        log.error("error: %s", exc)
    except Exception as exc:  # keep the sweep alive; the traceback goes to error.json
        write_error(run_dir, exc, plain)
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        log.error("error: %s (traceback in %s)", last, run_dir / "error.json")
    if not multirun:
        sys.exit(2)
    return None


def _log_if_missing(cfg: DictConfig, plain: dict, run_dir: Path, sweep_dir: Path, results: RunResult) -> None:
    """A point finished by an earlier launch that was killed before logging it to W&B is logged now."""
    from eebench.config import validate
    from eebench.tracking.wandb_sink import is_logged

    typed = validate(cfg)
    if typed.logger.kind == "wandb" and not is_logged(run_dir):
        log.info("eebench: %s was not yet logged to W&B; logging it now", run_dir)
        _log_to_wandb(typed, plain, run_dir, sweep_dir, results)


def _log_to_wandb(typed, plain: dict, run_dir: Path, sweep_dir: Path, results: RunResult) -> None:
    from eebench.tracking.wandb_sink import WandbSink

    sink = WandbSink(
        typed.logger.kind == "wandb",
        typed.logger.project,
        typed.logger.mode,
        typed.logger.entity,
        run_dir,
        sweep_dir,
        group=sweep_dir.name,
        name=run_dir.name if run_dir != sweep_dir else "run",
        config=plain,
    )
    sink.log_results(results)
    sink.finish()


def _run_and_write_results(typed, plain: dict, run_dir: Path, sweep_dir: Path) -> RunResult:
    """Run the point, then write its results.json (with provenance) and log it to W&B."""
    from eebench.backbones.loader import pick_device
    from eebench.experiment import run_experiment

    results = run_experiment(typed, run_dir)
    # The timing device is the one that matters for speed; otherwise the one the point ran on ("auto" resolved).
    device = results.timing.device if results.timing else pick_device(typed.device).type
    results.provenance = Provenance(**collect_provenance(device, typed.seed))
    results.status = "complete"
    write_results(run_dir, results)
    _log_to_wandb(typed, plain, run_dir, sweep_dir, results)
    return results
