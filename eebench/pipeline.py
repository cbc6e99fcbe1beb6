"""The Hydra task function: validate, run one point, write results / error files, log to W&B.

User errors print one line and never a traceback. In a multirun a failing point writes error.json and
the sweep carries on; a single run exits non-zero.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from eebench.errors import EEBenchError
from eebench.logs import log, log_to_file, stop_logging_to
from eebench.tracking.contract import Provenance, RunResult, read_result
from eebench.tracking.results import collect_provenance, redact, write_error, write_json_atomic, write_results


def job_dirs() -> tuple[Path, Path, bool]:
    """(run dir, sweep dir, is multirun)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if multirun else run_dir
    return run_dir, sweep_dir, multirun


def finished_results(run_dir: Path, plain: dict) -> RunResult | None:
    """Results of an earlier launch of this same point, if it completed (re-launching a sweep resumes it)."""
    try:
        results = read_result(run_dir)
        same_config = json.loads((run_dir / "config.json").read_text()) == json.loads(json.dumps(plain))
    except (OSError, ValueError, EEBenchError):
        return None
    return results if results.complete and same_config else None


def run_job(cfg: DictConfig) -> RunResult | None:
    run_dir, sweep_dir, multirun = job_dirs()
    handler = log_to_file(run_dir)
    try:
        return _run_job(cfg, run_dir, sweep_dir, multirun)
    finally:
        stop_logging_to(handler)


def _run_job(cfg: DictConfig, run_dir: Path, sweep_dir: Path, multirun: bool) -> RunResult | None:
    from eebench.config import validate

    plain = redact(OmegaConf.to_container(cfg, resolve=True))
    finished = finished_results(run_dir, plain)
    if finished is not None:
        log.info("eebench: %s already has complete results for this config; skipping it", run_dir)
        return finished
    write_json_atomic(run_dir / "config.json", plain)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    try:
        typed = validate(cfg)
        results = _run_and_record(typed, plain, run_dir, sweep_dir)
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


def _run_and_record(typed, plain: dict, run_dir: Path, sweep_dir: Path) -> RunResult:
    from eebench.experiment import run_experiment
    from eebench.tracking.wandb_sink import WandbSink

    results = run_experiment(typed, run_dir)
    # The timing device is the one that matters for speed; fall back to the configured one.
    device = results.timing.device if results.timing else typed.device
    results.provenance = Provenance(**collect_provenance(device, typed.seed))
    results.status = "complete"
    write_results(run_dir, results)
    sink = WandbSink(typed.logger.kind == "wandb", typed.logger.project, typed.logger.mode, typed.logger.entity,
                     run_dir, sweep_dir, group=sweep_dir.name, name=run_dir.name if run_dir != sweep_dir else "run", config=plain)
    sink.log_results(results)
    sink.finish()
    return results
