"""The results contract: what one run's ``results.json`` holds, as one dataclass tree.

Every writer builds a ``RunResult`` and every reader (Pareto rows, W&B sink, reports, ``EarlyExitModel.from_run``,
``eebench report``) loads one through ``RunResult.from_dict`` / ``read_result``, so a missing or renamed field is an
error naming the file instead of a NaN column. ``SCHEMA_VERSION`` changes when a field is renamed or removed;
adding an optional field (``x: float | None = None``) keeps it, since files without the field still load.

To add a field: declare it in the section's dataclass below, with a default if older files lack it, set it where
the section is built (``timing/generation.py`` for timing, whose section lives in ``contract_timing.py``,
``heads/train.py``/``heads/gate.py`` for training, whose section lives in ``contract_training.py``, ...)
with a comment saying what it means (beside it, or on the lines above it): ``docs/results.md`` is generated from
these comments (``python -m eebench.tracking.results_doc > docs/results.md``), and tests/test_contract.py checks that
every field has one and that the file is up to date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eebench.errors import EEBenchError
from eebench.tracking.contract_timing import TimingResult
from eebench.tracking.contract_training import TrainingResult
from eebench.tracking.schema import build, not_on_disk, unbuild

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
COMPLETE = "complete"


@dataclass
class ExitStats:
    """The exit policy simulated on held-out tokens (no model run)."""

    fraction: dict[str, float]  # share of tokens leaving at each exit layer ("5", "11", ...) and at "final"
    mean_layers: float  # mean number of blocks a token runs
    agreement: float  # share of emitted tokens equal to the full model's
    theoretical_speedup: float  # weight-traffic model: blocks run + heads evaluated
    depth_speedup: float  # blocks only
    tokens: int  # held-out tokens simulated


@dataclass
class TaskExitStats:
    """The exit policy on the evaluation tasks' own tokens (every scored continuation token and every generated
    token), with the same cost model as ``ExitStats``: the Pareto x-axis's data is the accuracy axis's data."""

    fraction: dict[str, float]  # share of task tokens leaving at each exit layer and at "final"
    mean_layers: float  # mean number of blocks a task token runs
    agreement: float | None  # teacher-forced task tokens whose exit prediction equals the full model's; None: none scored
    theoretical_speedup: float  # the same cost model as exit.theoretical_speedup, on the tasks' tokens
    depth_speedup: float  # blocks only
    tokens: int  # task tokens counted: every teacher-forced continuation token and every generated one
    agreement_tokens: int  # the teacher-forced tokens ``agreement`` is over (generated ones have no full-model twin)


@dataclass
class PairedChange:
    """One task's accuracy change from the full model to early exit, paired by example: both answer the same
    examples, so the change's error comes from the per-example differences (lm-eval's per-sample scores)."""

    task: str  # the lm-eval task
    metric: str  # the per-example score compared (acc, acc_norm or exact_match)
    n: int  # examples both sides scored (paired by lm-eval's doc_id)
    delta: float  # mean of early exit's minus the full model's score per example, a fraction like the task's metric
    stderr: float | None  # sd of the per-example differences (ddof=1) / sqrt(n); null for a single example
    # [lo, hi] of delta: normal approximation, delta ± 1.96 stderr; null for a single example
    ci95: list[float] | None
    improved: int  # examples early exit scored higher than the full model (e.g. right where the full model was wrong)
    worsened: int  # examples early exit scored lower than the full model


@dataclass
class HeldoutHead:
    """One head under the whole policy on held-out tokens: the tokens it let exit (those earlier heads kept)."""

    layer: int  # 0-based block feeding the head
    agreement: float | None  # share of the tokens it let exit whose prediction equals the full model's; None: none exited
    tokens: int  # held-out tokens it let exit
    target_met: bool  # agreement >= the calibration target, or no token exited there
    # standard error of agreement with held-out sequences as the independent units; None: under two sequences
    agreement_stderr: float | None = None
    # agreement more than a one-sided 95% margin (1.645 stderr) below the target; None: results from before the test
    significant_miss: bool | None = None


@dataclass
class HeldoutCheck:
    """The calibration target checked on held-out documents, counting only tokens that exited early."""

    heads: list[HeldoutHead]  # one per exit head, under the whole policy
    exited_agreement: float | None  # pooled over every head; tokens reaching the final layer excluded; None: none exited
    exited_tokens: int  # held-out tokens that exited at a head (final-layer tokens excluded)
    tokens: int  # all held-out tokens, exited or not
    target_met: bool  # every head met the target


@dataclass
class CalibrationResult:
    """The calibrated policy and how well it meets its target on calibration and held-out tokens."""

    method: str  # the calibration method (calibration.method of the config)
    target: float  # the target agreement (the point's threshold)
    thresholds: list[float | None]  # per exit layer, in the metric's units; None: the head never exits
    calibration_agreement: float  # all calibration tokens, final-layer ones included (those agree by definition)
    heldout_agreement: float  # all held-out tokens, final-layer ones included (those agree by definition)
    per_head_heldout: list[dict[str, Any]]  # {layer, threshold, coverage, agreement}: each head judged alone
    heldout: HeldoutCheck | None = None  # per head and pooled over exited tokens only


@dataclass
class HeadCurve:
    """One head's confidence diagnostics on held-out tokens (the report's reliability and coverage figures)."""

    layer: int  # 0-based block feeding the head
    reliability: list[dict[str, Any]]  # {value, agreement, count} per quantile bin of the metric
    coverage: list[dict[str, Any]]  # {threshold, coverage, agreement} over a grid of thresholds


@dataclass
class CostModelResult:
    """The weight-traffic model behind the theoretical speedups (``engine/flops.py``): batch-1 decoding reads every
    weight once per token, so a block costs its parameter count and an exit head its projection."""

    num_layers: int  # blocks of the backbone
    exit_layers: list[int]  # 0-based blocks feeding the heads
    block_cost: float  # weights read by one block
    head_cost: float  # weights read by one head's projection (mean over the heads)
    lm_head_cost: float  # weights read by the backbone's lm_head
    gate_cost: float  # weights read by one exit gate
    gated: bool  # gates decide (confidence=gate): only the exiting head projects to the vocabulary
    no_exit_overhead: float  # extra cost of a token no head lets out, relative to a full-model step
    unit: str  # what the costs count


@dataclass
class DataInfo:
    """The head-training and calibration text."""

    source: str  # data.source of the config
    splits: dict[str, int]  # tokens per split
    note: str  # how the splits were drawn (disjoint documents) and which one the exit stats use


@dataclass
class Artifacts:
    """The cached artifacts the point used: what ``EarlyExitModel.from_run`` loads."""

    heads_dir: str  # the cached heads (safetensors + heads.json)
    calibration_trace_dir: str  # the cached per-token calibration trace
    backbone_config: dict[str, Any]  # BackboneConfig fields, to load the backbone again
    calibration_config: dict[str, Any]  # CalibrationConfig fields, to calibrate new targets
    # tokens per calibration sequence (data.seq_len), the units of calibration.bound=clustered; null in older runs
    calibration_sequence_len: int | None = None


@dataclass
class Provenance:
    """Where and with what code the point was produced."""

    git_sha: str | None  # the eebench commit; null outside a git checkout
    packages: dict[str, str | None]  # versions of torch, transformers, lm_eval, wandb, hydra-core and eebench
    python: str  # Python version
    platform: str  # operating system and architecture
    hostname: str  # the machine
    cpu_count: int | None  # logical CPUs
    cuda_device: str | None  # the CUDA device's name; null without CUDA
    device: str  # the device the point ran on (device=auto resolved)
    seed: int  # the point's seed
    time: str  # UTC, ISO 8601
    git_dirty: bool | None = None  # uncommitted changes to tracked files when the number was produced


@dataclass
class RunResult:
    """One point of a sweep. Top-level keys of results.json, in the order they are written."""

    status: str  # "running" until everything is written, then "complete"
    # the label: backbone.name if set, else the loaded model's own name (its directory's name, hub id, GGUF file stem,
    # or smollm2-135m for the bundled one)
    backbone: str
    backbone_path: str  # what was loaded
    backbone_dtype: str  # the precision actually loaded (backbone.dtype=auto resolves per machine)
    num_layers: int  # blocks of the backbone
    exit_layers: list[int]  # 0-based blocks whose outputs feed the heads
    placement: str  # placement.kind
    head: str  # head.kind
    confidence: str  # confidence.metric
    calibration_method: str  # calibration.method
    threshold: float  # the target agreement level
    thresholds: list[float | None]  # calibrated, per exit layer, in the metric's units; null: that head never exits
    exit_rule: str  # when a token exits, e.g. "entropy <= threshold"
    exit: ExitStats  # the policy simulated on held-out tokens
    calibration: CalibrationResult  # the calibrated thresholds and the target checked on held-out documents
    curves: list[HeadCurve]  # per head: reliability bins and threshold-to-coverage points
    cost_model: CostModelResult  # the weight-traffic model behind the theoretical speedup
    data: DataInfo  # the text source and tokens per split
    heads_training: TrainingResult  # the trainer's summary: tokens seen, losses, stop reasons, curves
    artifacts: Artifacts  # the cached heads and calibration trace (what EarlyExitModel.from_run loads)
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # lm-eval metrics under early exit
    baseline_tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # the same with the full model
    # the change per task and metric, paired by example; lossless strategies (dssd) compare the full model with itself
    paired_tasks: list[PairedChange] = field(default_factory=list)
    baseline_cache_key: str | None = None  # the cached full-model scores reused across points
    eval_mode: str | None = None  # how task accuracy under early exit was computed (a teacher-forced simulation)
    eval_exit_fraction: dict[str, float] = field(default_factory=dict)  # exit shares over the scored positions
    exit_tasks: TaskExitStats | None = None  # exit stats on the eval tasks' tokens; None without eval tasks
    # Which decoder produced each task number: {loglikelihood, generate_until, strategy, accuracy, first_token}
    eval_decoders: dict[str, str] = field(default_factory=dict)
    readout: str = "full"  # readout.kind: the vocabulary rows the heads project onto (full, shortlist)
    readout_options: dict[str, Any] = field(default_factory=dict)  # the readout's own options (shortlist: k)
    backbone_dtype_reason: str | None = None  # why backbone_dtype was loaded (explicit, or what auto measured)
    timing: TimingResult | None = None  # generation timed against transformers greedy; absent with timing=none
    provenance: Provenance | None = None  # git sha, package versions, hardware, seed, time
    schema_version: int = SCHEMA_VERSION  # the results schema this file follows
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
    def head_label(self) -> str:
        """The head type, with its readout where that is not the full vocabulary (``linear+shortlist:k=8192``)."""
        if self.readout == "full":
            return self.head
        options = ",".join(f"{name}={value}" for name, value in sorted(self.readout_options.items()))
        return f"{self.head}+{self.readout}" + (f":{options}" if options else "")

    @property
    def family(self) -> str:
        """backbone/placement/head/confidence: runs that differ only in threshold or calibration target."""
        return "/".join((self.backbone, self.placement, self.head_label, self.confidence))  # pareto.FAMILY_COLUMNS


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
