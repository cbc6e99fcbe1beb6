"""One point of a sweep, as a list of stages: the inputs (tasks, backbone, data) -> the exit setup (heads, traces,
calibrated policy, cost model) -> what the traces say -> lm-eval under the policy -> timed generation.

Every expensive artifact (heads, hidden states, traces, per-request scores, the full model's task scores) is a cache
entry declared beside the code that builds it (``eebench.cache.Artifact``) and keyed on what determines it, so the
other points of a sweep over thresholds reuse them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from eebench.backbones import Backbone, load_backbone
from eebench.cache import content_key
from eebench.config import ExperimentConfig
from eebench.data.corpus import prepare_splits
from eebench.engine.flops import CostModel
from eebench.errors import require
from eebench.exits.calibration import calibrate
from eebench.exits.metrics import get_metric
from eebench.exits.policy import ExitPolicy
from eebench.faults import kill_point
from eebench.heads import ExitHeads
from eebench.heads.artifact import build_heads, training_summary
from eebench.heads.placement import exit_layers as place_heads
from eebench.logs import stage
from eebench.model import EarlyExitModel
from eebench.reuse import files_state, reuse
from eebench.seeding import seed_everything
from eebench.timing.baselines import check_baselines
from eebench.timing.config import check_draft_exits
from eebench.traces.artifact import TracedSplit, build_trace
from eebench.traces.curves import head_curves, per_head_heldout
from eebench.traces.simulate import heldout_check, simulate
from eebench.traces.trace import Trace
from eebench.tracking.contract import (
    Artifacts,
    CalibrationResult,
    CostModelResult,
    DataInfo,
    ExitStats,
    HeadCurve,
    HeldoutCheck,
    RunResult,
    TaskExitStats,
)
from eebench.tracking.contract_timing import TimingResult
from eebench.tracking.contract_training import TrainingResult
from eebench.tracking.schema import build


@dataclass(frozen=True)
class PointInputs:
    """What a point starts from: its tasks (resolved first, so a typo fails in seconds), backbone, exit layers and
    token splits."""

    tasks: tuple | None  # eebench.evaluation.runner.prepare_tasks's (include paths, task names, task manager)
    backbone: Backbone
    layers: list[int]
    splits: dict[str, torch.Tensor]


@dataclass(frozen=True)
class ExitSetup:
    """The trained heads with their traces, the calibrated exit policy and the cost model of evaluating it."""

    heads: ExitHeads
    heads_dir: Path
    calibration: TracedSplit
    heldout: TracedSplit
    policy: ExitPolicy
    costs: CostModel


def run_experiment(cfg: ExperimentConfig, run_dir: Path) -> RunResult:
    seed_everything(cfg.seed)
    inputs = point_inputs(cfg)
    setup = exit_setup(cfg, inputs)
    result = simulated_result(cfg, inputs, setup)
    kill_point("eval")
    if cfg.eval.tasks:
        result = with_task_scores(result, cfg, inputs, setup)
    kill_point("timing")
    if cfg.timing.enabled:
        result.timing = timed_generation(cfg, inputs, setup)
    return result


# ----------------------------------------------------------------------------- stages


def point_inputs(cfg: ExperimentConfig) -> PointInputs:
    tasks = None
    if cfg.eval.tasks:  # resolve task names before hours of training, so a typo fails in seconds
        from eebench.evaluation.runner import prepare_tasks  # imports lm-eval: only points that evaluate tasks pay

        tasks = prepare_tasks(cfg.eval, cfg.data.source, cfg.seed)
    with stage("loading the backbone"):
        backbone = load_backbone(cfg.backbone, cfg.device, shared=True)
    check_positions(cfg, backbone)
    layers = place_heads(cfg.placement, backbone.num_layers)
    check_baselines(backbone, cfg.timing, layers)
    check_draft_exits(cfg.timing, layers)
    with stage("preparing the data"):
        splits = shared_splits(cfg, backbone)
    return PointInputs(tasks, backbone, layers, splits)


def exit_setup(cfg: ExperimentConfig, inputs: PointInputs) -> ExitSetup:
    backbone, layers, splits = inputs.backbone, inputs.layers, inputs.splits
    with stage(f"exit heads at blocks {layers} (trained, or read from the cache)"):
        heads, heads_dir = build_heads(cfg, backbone, layers, splits)
    with stage("calibration and held-out traces"):
        calibration = build_trace(backbone, heads, heads_dir, splits["calibration"], "calibration")
        heldout = build_trace(backbone, heads, heads_dir, splits["heldout"], "heldout")
    policy = calibrated_policy(cfg, layers, calibration.trace)
    # A metric that decides before the head projects (the gate) makes only the exiting head project.
    costs = CostModel.from_layered(backbone.layered, heads, gated=not get_metric(cfg.confidence.metric).needs_logits)
    return ExitSetup(heads, heads_dir, calibration, heldout, policy, costs)


def simulated_result(cfg: ExperimentConfig, inputs: PointInputs, setup: ExitSetup) -> RunResult:
    """The point's result from the traces alone (no model run): exit statistics, calibration, curves, costs."""
    backbone, heads, policy, costs = inputs.backbone, setup.heads, setup.policy, setup.costs
    heldout = setup.heldout.trace
    return RunResult(
        status="running",
        backbone=backbone.name,  # backbone.name, or the loaded model's own name when unset
        backbone_path=backbone.path,
        backbone_dtype=backbone.dtype,  # resolved: backbone.dtype=auto records what was loaded, and why
        backbone_dtype_reason=backbone.dtype_reason,
        num_layers=backbone.num_layers,
        exit_layers=inputs.layers,
        placement=cfg.placement.kind,
        head=cfg.head.kind,
        readout=heads.readout,
        readout_options=heads.readout_options,
        confidence=cfg.confidence.metric,
        calibration_method=cfg.calibration.method,
        threshold=cfg.threshold,
        thresholds=policy.native_thresholds(),
        exit_rule=policy.to_dict()["rule"],
        exit=ExitStats(**simulate(heldout, policy, costs)),
        calibration=calibration_block(cfg, policy, setup.calibration.trace, heldout, costs),
        curves=[HeadCurve(**curve) for curve in head_curves(heldout, cfg.confidence.metric, inputs.layers)],
        cost_model=cost_model_block(costs),
        data=data_block(cfg, inputs.splits),
        heads_training=build(TrainingResult, training_summary(setup.heads_dir), "heads_training"),
        artifacts=Artifacts(
            str(setup.heads_dir),
            str(setup.calibration.directory),
            dataclasses.asdict(cfg.backbone),
            dataclasses.asdict(cfg.calibration),
            cfg.data.seq_len,
        ),
    )


def with_task_scores(result: RunResult, cfg: ExperimentConfig, inputs: PointInputs, setup: ExitSetup) -> RunResult:
    """``result`` with the lm-eval task metrics under the exit policy and of the full model."""
    from eebench.evaluation.runner import evaluate_tasks  # imports lm-eval: only points that evaluate tasks pay

    ee_model = EarlyExitModel(inputs.backbone, setup.heads, setup.calibration.trace, cfg.confidence.metric, cfg.calibration)
    with stage(f"evaluating {len(inputs.tasks[1])} task(s) under the exit policy"):
        evaluated = evaluate_tasks(
            cfg.eval, inputs.tasks, ee_model, setup.policy, setup.heads_dir, setup.costs, cfg.timing.strategy
        )
    exit_tasks = evaluated.pop("exit_tasks")
    return dataclasses.replace(
        result, **evaluated, exit_tasks=build(TaskExitStats, exit_tasks, "exit_tasks") if exit_tasks else None
    )


def timed_generation(cfg: ExperimentConfig, inputs: PointInputs, setup: ExitSetup) -> TimingResult:
    """Greedy generation timed against transformers' (eebench.timing.generation)."""
    from eebench.timing.generation import measure_generation
    from eebench.timing.prompts import timing_prompts

    backbone = inputs.backbone
    prompts = timing_prompts(cfg.timing, inputs.splits["heldout"], backbone.tokenizer, cfg.eval, inputs.tasks)
    with stage(f"timing generation ({cfg.timing.strategy}, {cfg.timing.repeats} repeats)"):
        return measure_generation(backbone, setup.heads, setup.policy, prompts, cfg.timing, setup.costs)


# ----------------------------------------------------------------------------- the stages' parts


def check_positions(cfg: ExperimentConfig, backbone: Backbone) -> None:
    """Sequences longer than the backbone's positions fail deep inside (gpt2) or silently degrade (llama)."""
    config = backbone.model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions:
        require(
            cfg.data.seq_len <= positions,
            f"data.seq_len={cfg.data.seq_len} exceeds the {positions} positions of "
            f"backbone {cfg.backbone.name_or_path!r}; allowed: <= {positions}",
        )
        longest = min(cfg.timing.prompt_tokens, cfg.data.seq_len) + cfg.timing.max_new_tokens  # timing prompts are cut from data
        require(
            not cfg.timing.enabled or longest <= positions,
            f"timing.max_new_tokens={cfg.timing.max_new_tokens} after a {longest - cfg.timing.max_new_tokens}-token prompt "
            f"exceeds the {positions} positions of backbone {cfg.backbone.name_or_path!r}; allowed: a total <= {positions}",
        )


def shared_splits(cfg: ExperimentConfig, backbone: Backbone) -> dict[str, torch.Tensor]:
    """The token splits, shared by the points of a sweep in one process while data, tokenizer and seed agree."""
    local = files_state([Path(cfg.data.source).expanduser()], recursive=True)  # () unless the source is local files
    key = (repr(cfg.data), content_key(backbone.identity), cfg.seed, local)
    return reuse("data_splits", key, lambda: prepare_splits(cfg.data, backbone.tokenizer, cfg.seed))


def calibrated_policy(cfg: ExperimentConfig, layers: list[int], calibration: Trace) -> ExitPolicy:
    unc = calibration.uncertainty(cfg.confidence.metric)
    return ExitPolicy(
        layers, cfg.confidence.metric, calibrate(cfg.calibration, unc, calibration.agree, cfg.threshold, cfg.data.seq_len)
    )


def calibration_block(
    cfg: ExperimentConfig, policy: ExitPolicy, calibration: Trace, heldout: Trace, costs: CostModel
) -> CalibrationResult:
    return CalibrationResult(
        method=cfg.calibration.method,
        target=cfg.threshold,
        thresholds=policy.native_thresholds(),
        calibration_agreement=simulate(calibration, policy, costs)["agreement"],
        # Held-out tokens come from documents disjoint from the calibration documents.
        heldout_agreement=simulate(heldout, policy, costs)["agreement"],
        per_head_heldout=per_head_heldout(heldout, policy),
        heldout=build(HeldoutCheck, heldout_check(heldout, policy, cfg.threshold, cfg.data.seq_len), "calibration.heldout"),
    )


def cost_model_block(costs: CostModel) -> CostModelResult:
    return CostModelResult(
        **dataclasses.asdict(costs),
        no_exit_overhead=costs.no_exit_overhead(),
        unit="weights read per token (batch-1 decoding is bound by weight traffic)",
    )


def data_block(cfg: ExperimentConfig, splits: dict[str, torch.Tensor]) -> DataInfo:
    return DataInfo(
        cfg.data.source,
        {k: int(v.numel()) for k, v in splits.items()},
        f"train / calibration / held-out are disjoint sets of documents (train by a hash of the document id; "
        f"calibration and held-out drawn at random with seed {cfg.seed} from the rest); exit stats use held-out",
    )
