"""The results contract: what one run's ``results.json`` holds, as one dataclass tree.

Every writer builds a ``RunResult`` and every reader (Pareto rows, W&B sink, reports, ``EarlyExitModel.from_run``,
``eebench report``) loads one through ``RunResult.from_dict`` / ``read_result``, so a missing or renamed field is an
error naming the file instead of a NaN column. ``SCHEMA_VERSION`` changes when a field is renamed or removed;
adding an optional field (``x: float | None = None``) keeps it, since files without the field still load.

To add a field: declare it in the section's dataclass below, with a default if older files lack it, set it where
the section is built (``timing/generation.py`` for timing, ``heads/train.py``/``heads/gate.py`` for training, whose
section lives in ``contract_training.py``, ...)
and describe it in README "Reading the results" (tests/test_contract.py checks the README names it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eebench.errors import EEBenchError
from eebench.tracking.contract_training import TrainingResult
from eebench.tracking.schema import build, flattened, not_on_disk, unbuild

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
COMPLETE = "complete"


@dataclass
class ExitStats:
    """The exit policy simulated on held-out tokens (no model run)."""

    fraction: dict[str, float]  # share of tokens leaving at each exit layer ("5", "11", ...) and at "final"
    mean_layers: float
    agreement: float  # share of emitted tokens equal to the full model's
    theoretical_speedup: float  # weight-traffic model: blocks run + heads evaluated
    depth_speedup: float  # blocks only
    tokens: int


@dataclass
class TaskExitStats:
    """The exit policy on the evaluation tasks' own tokens (every scored continuation token and every generated
    token), with the same cost model as ``ExitStats``: the Pareto x-axis's data is the accuracy axis's data."""

    fraction: dict[str, float]
    mean_layers: float
    agreement: float | None  # teacher-forced task tokens whose exit prediction equals the full model's; None: none scored
    theoretical_speedup: float
    depth_speedup: float
    tokens: int
    agreement_tokens: int  # the teacher-forced tokens ``agreement`` is over (generated ones have no full-model twin)


@dataclass
class HeldoutHead:
    """One head under the whole policy on held-out tokens: the tokens it let exit (those earlier heads kept)."""

    layer: int
    agreement: float | None  # share of the tokens it let exit whose prediction equals the full model's; None: none exited
    tokens: int
    target_met: bool  # agreement >= the calibration target, or no token exited there


@dataclass
class HeldoutCheck:
    """The calibration target checked on held-out documents, counting only tokens that exited early."""

    heads: list[HeldoutHead]
    exited_agreement: float | None  # pooled over every head; tokens reaching the final layer excluded; None: none exited
    exited_tokens: int
    tokens: int  # all held-out tokens, exited or not
    target_met: bool  # every head met the target


@dataclass
class CalibrationResult:
    method: str
    target: float
    thresholds: list[float | None]  # per exit layer, in the metric's units; None: the head never exits
    calibration_agreement: float  # all calibration tokens, final-layer ones included (those agree by definition)
    heldout_agreement: float  # all held-out tokens, final-layer ones included (those agree by definition)
    per_head_heldout: list[dict[str, Any]]  # {layer, threshold, coverage, agreement}: each head judged alone
    heldout: HeldoutCheck | None = None  # per head and pooled over exited tokens only


@dataclass
class HeadCurve:
    layer: int
    reliability: list[dict[str, Any]]  # {value, agreement, count} per quantile bin of the metric
    coverage: list[dict[str, Any]]  # {threshold, coverage, agreement} over a grid of thresholds


@dataclass
class CostModelResult:
    num_layers: int
    exit_layers: list[int]
    block_cost: float
    head_cost: float
    lm_head_cost: float
    gate_cost: float
    gated: bool
    no_exit_overhead: float
    unit: str


@dataclass
class DataInfo:
    source: str
    splits: dict[str, int]  # tokens per split
    note: str


@dataclass
class Artifacts:
    heads_dir: str
    calibration_trace_dir: str
    backbone_config: dict[str, Any]  # BackboneConfig fields, to load the backbone again
    calibration_config: dict[str, Any]  # CalibrationConfig fields, to calibrate new targets


@dataclass
class WorkloadTiming:
    """One timed workload (the full model or early exit); stored flat as ``<workload>_<field>`` in ``timing``."""

    tokens_per_s: float
    tokens_per_s_spread: dict[str, float]  # {median, min, max, n} over repeats
    prefill_seconds: float
    prefill_seconds_spread: dict[str, float]
    decode_tokens_per_s: float
    decode_tokens_per_s_spread: dict[str, float]
    decode_ms_per_token: float
    repeat_seconds: dict[str, list[float]]  # {prefill: [...], total: [...]}
    decode_tokens: int
    peak_cuda_allocated_mib: float | None
    engine_kv_cache_bytes: int | None


@dataclass
class ExitSample:
    prompt: str
    tokens: list[list[str]]  # [token text, exit layer or "final"]


@dataclass
class BaselineTiming:
    """A fixed-block baseline (``timing.baselines``) timed in the same schedule as the point's strategy."""

    name: str  # static | layerskip | assistant_early_exit
    exit_layer: int  # 0-based block it exits (static) or drafts (layerskip, assistant_early_exit) at
    draft_length: int | None  # tokens drafted per verification; None for static
    lossless: bool  # verified by the full model: its tokens equal full-depth greedy decoding (exactly in float32)
    speedup: float  # transformers greedy time / this baseline's time
    speedup_ci95: list[float]
    decode_speedup: float
    decode_speedup_ci95: list[float]
    speedup_vs_engine_full: float
    speedup_vs_engine_full_ci95: list[float]
    tokens_per_s: float
    token_match_with_reference: float  # vs transformers greedy
    sequence_exact_match_with_reference: float
    acceptance: float | None = None  # drafted tokens accepted by verification (engine layerskip only)
    depth_bound: float | None = None  # static only: the most its exit pattern could give
    flags: list[Any] = field(default_factory=list)  # measurement errors (static above its depth bound)


@dataclass
class TimingResult:
    """Greedy generation timed in one process: transformers' ``generate`` (the reference), the engine's full-depth
    path and the early-exit strategy, same prompts, in a seeded random order per repeat.

    To add a number: declare it here (optional, with a default, unless every writer sets it), set it in
    ``timing/generation.py:measure_generation``, document it in README. A new workload is one more
    ``flattened()`` field of type ``WorkloadTiming | None``."""

    speedup: float  # transformers greedy time / early-exit time (ratio of summed repeat times)
    speedup_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    speedup_min: float  # smallest single-repeat ratio
    speedup_max: float
    speedup_median_of_repeats: float
    decode_speedup: float  # the same for decode only (whole generation minus the prompt pass)
    decode_speedup_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    decode_speedup_min: float  # smallest single-repeat ratio
    decode_speedup_max: float
    decode_speedup_median_of_repeats: float
    engine_full_speedup: float  # transformers greedy / the engine's own full-depth path (below 1: the engine is slower)
    engine_full_speedup_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    engine_full_speedup_min: float  # smallest single-repeat ratio
    engine_full_speedup_max: float
    engine_full_speedup_median_of_repeats: float
    engine_full_decode_speedup: float  # the same for decode only
    engine_full_decode_speedup_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    engine_full_decode_speedup_min: float  # smallest single-repeat ratio
    engine_full_decode_speedup_max: float
    engine_full_decode_speedup_median_of_repeats: float
    speedup_vs_engine_full: float  # engine full path / early exit: the effect of depth alone
    speedup_vs_engine_full_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    speedup_vs_engine_full_min: float  # smallest single-repeat ratio
    speedup_vs_engine_full_max: float
    speedup_vs_engine_full_median_of_repeats: float
    decode_speedup_vs_engine_full: float  # the same for decode only
    decode_speedup_vs_engine_full_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    decode_speedup_vs_engine_full_min: float  # smallest single-repeat ratio
    decode_speedup_vs_engine_full_max: float
    decode_speedup_vs_engine_full_median_of_repeats: float
    transformers: WorkloadTiming = flattened()
    full: WorkloadTiming = flattened()
    early_exit: WorkloadTiming = flattened()
    reference: str  # "transformers_greedy"
    seed: int  # seeds the workload order of every repeat and the bootstrap
    repeat_orders: list[list[str]]  # the order the workloads ran in, per repeat
    bootstrap_resamples: int
    ci_method: str
    sequence_exact_match_with_reference: float  # early exit vs transformers greedy
    token_match_with_reference: float
    engine_full_sequence_exact_match_with_reference: float
    engine_full_token_match_with_reference: float
    sequence_exact_match_with_full: float  # early exit vs the engine's full path
    token_match_with_full: float
    depth_bound: float | None  # the most any speedup can be for the decoded exits; None for speculative strategies
    flags: list[Any]  # measurement errors (e.g. a CI above the depth bound); never findings
    measurement_error: bool
    strategy: str
    device: str
    dtype: str
    prompts: str  # "heldout" or "tasks"
    num_prompts: int
    prompt_tokens: int
    new_tokens_per_prompt: int
    batch_size: int
    warmup: int
    repeats: int
    threads: int
    generated_exit_fraction_early: float  # decoded tokens (not the prompt pass's) leaving at a head
    exit_sample: ExitSample
    process_peak_rss_mib: float | None  # the whole process so far, not one workload
    load_average_1min: float | None
    cpu_model: str | None = None
    # New fields go below, each with a default so files written before it still load.
    baselines: list[BaselineTiming] = field(default_factory=list)  # timing.baselines, same schedule and prompts


@dataclass
class Provenance:
    git_sha: str | None
    packages: dict[str, str | None]
    python: str
    platform: str
    hostname: str
    cpu_count: int | None
    cuda_device: str | None
    device: str
    seed: int
    time: str  # UTC, ISO 8601
    git_dirty: bool | None = None  # uncommitted changes to tracked files when the number was produced


@dataclass
class RunResult:
    """One point of a sweep. Top-level keys of results.json, in the order they are written."""

    status: str  # "running" until everything is written, then "complete"
    backbone: str
    backbone_path: str
    backbone_dtype: str  # the precision actually loaded (backbone.dtype=auto resolves per machine)
    num_layers: int
    exit_layers: list[int]  # 0-based blocks whose outputs feed the heads
    placement: str
    head: str
    confidence: str
    calibration_method: str
    threshold: float  # the target agreement level
    thresholds: list[float | None]  # calibrated, per exit layer, in the metric's units
    exit_rule: str
    exit: ExitStats
    calibration: CalibrationResult
    curves: list[HeadCurve]
    cost_model: CostModelResult
    data: DataInfo
    heads_training: TrainingResult
    artifacts: Artifacts
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # lm-eval metrics under early exit
    baseline_tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # the same with the full model
    baseline_cache_key: str | None = None
    eval_mode: str | None = None
    eval_exit_fraction: dict[str, float] = field(default_factory=dict)
    exit_tasks: TaskExitStats | None = None  # exit stats on the eval tasks' tokens; None without eval tasks
    # Which decoder produced each task number: {loglikelihood, generate_until, strategy, accuracy, first_token}
    eval_decoders: dict[str, str] = field(default_factory=dict)
    timing: TimingResult | None = None
    provenance: Provenance | None = None
    schema_version: int = SCHEMA_VERSION
    run_dir: str | None = not_on_disk()  # where it was loaded from

    def to_dict(self) -> dict:
        return unbuild(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = RESULTS_FILE) -> RunResult:
        """Strict: an EEBenchError naming ``source`` for an older schema, a missing or an unknown field."""
        if not isinstance(data, dict):
            raise EEBenchError(f"{source}: not a JSON object")
        version = data.get("schema_version")
        if version is None:
            raise EEBenchError(
                f"{source}: has no schema_version (written by an eebench older than the results "
                f"schema {SCHEMA_VERSION}, or not an eebench results file); re-run the point"
            )
        if version != SCHEMA_VERSION:
            age = "an older" if isinstance(version, int) and version < SCHEMA_VERSION else "another"
            raise EEBenchError(
                f"{source}: written by {age} eebench (results schema {version}, this one reads "
                f"{SCHEMA_VERSION}); re-run the point or read it with the eebench that wrote it"
            )
        return build(cls, data, f"{source}:")

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    @property
    def family(self) -> str:
        """backbone/placement/head/confidence: runs that differ only in threshold or calibration target."""
        return "/".join((self.backbone, self.placement, self.head, self.confidence))  # pareto.FAMILY_COLUMNS


def read_result(run_dir: str | Path) -> RunResult:
    """The RunResult in ``run_dir``/results.json (any status), with ``run_dir`` set; EEBenchError naming the file."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EEBenchError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    result = RunResult.from_dict(data, str(path))
    result.run_dir = str(run_dir)
    return result
