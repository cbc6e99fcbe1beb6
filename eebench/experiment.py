"""One point of a sweep: heads -> calibration -> traces -> lm-eval -> timing -> results.json.

Every expensive artifact (converted backbone, heads, traces, per-request exit scores) is cached under a
key of what determines it, so the other points of a sweep over thresholds reuse them.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import torch

from eebench.backbones import Backbone, load_backbone
from eebench.cache import content_key, get_or_build
from eebench.config import ExperimentConfig
from eebench.data.corpus import prepare_splits
from eebench.engine.flops import CostModel
from eebench.exits.calibration import calibrate
from eebench.exits.metrics import get_metric
from eebench.exits.policy import ExitPolicy
from eebench.faults import checkpoint
from eebench.heads import ExitHeads, load_heads, save_heads
from eebench.heads.gate import train_gates
from eebench.heads.placement import exit_layers as place_heads
from eebench.heads.train import train_heads
from eebench.model import EarlyExitModel
from eebench.traces.curves import head_curves, per_head_heldout
from eebench.traces.simulate import simulate
from eebench.traces.trace import Trace, collect_trace
from eebench.tracking.contract import (
    Artifacts,
    CalibrationResult,
    CostModelResult,
    DataInfo,
    ExitStats,
    HeadCurve,
    RunResult,
    TimingResult,
    TrainingResult,
)
from eebench.tracking.schema import build


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def heads_spec(cfg: ExperimentConfig, backbone: Backbone, layers: list[int]) -> dict:
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in ("calibration_sequences", "heldout_sequences")}
    return {"backbone": backbone.identity, "exit_layers": layers, "head": dataclasses.asdict(cfg.head), "data": data,
            "seed": cfg.seed}


def build_heads(cfg: ExperimentConfig, backbone: Backbone, layers: list[int], splits) -> tuple[ExitHeads, Path]:
    spec = heads_spec(cfg, backbone, layers)

    def build(tmp: Path) -> None:
        seed_everything(cfg.seed)
        heads = ExitHeads.create(backbone.layered, layers, cfg.head.kind, cfg.head.init_from_lm_head, cfg.head.gate.width)
        trainable = heads.trainable
        log = train_heads(backbone.model, heads, splits["train"], cfg.head.training, cfg.seed) if trainable else {"steps": 0}
        if cfg.head.gate.width:
            gate = cfg.head.gate
            log.update(train_gates(backbone.model, heads, splits["train"], gate.steps, gate.batch_size, gate.lr, cfg.seed))
        checkpoint("heads")  # crash tests kill here: trained but not yet saved or renamed into the cache
        save_heads(heads, tmp, {"training": log, "train_tokens": int(splits["train"].numel())})

    directory = get_or_build("heads", spec, build)
    return load_heads(directory, backbone.layered), directory


def build_trace(model, heads: ExitHeads, heads_dir: Path, tokens: torch.Tensor, split: str) -> tuple[Trace, Path]:
    spec = {"heads": heads_dir.name, "split": split, "tokens": content_key({"t": tokens.flatten().tolist()})}
    directory = get_or_build("traces", spec, lambda tmp: collect_trace(model, heads, tokens).save(tmp))
    return Trace.load(directory), directory


def calibrated_policy(cfg: ExperimentConfig, layers: list[int], calibration: Trace) -> ExitPolicy:
    unc = calibration.uncertainty(cfg.confidence.metric)
    return ExitPolicy(layers, cfg.confidence.metric, calibrate(cfg.calibration, unc, calibration.agree, cfg.threshold))


def calibration_block(cfg: ExperimentConfig, policy: ExitPolicy, calibration: Trace, heldout: Trace,
                      costs: CostModel) -> CalibrationResult:
    return CalibrationResult(
        method=cfg.calibration.method,
        target=cfg.threshold,
        thresholds=policy.native_thresholds(),
        calibration_agreement=simulate(calibration, policy, costs)["agreement"],
        # Held-out tokens come from documents disjoint from the calibration documents.
        heldout_agreement=simulate(heldout, policy, costs)["agreement"],
        per_head_heldout=per_head_heldout(heldout, policy),
    )


def run_experiment(cfg: ExperimentConfig, run_dir: Path) -> RunResult:
    seed_everything(cfg.seed)
    if cfg.eval.tasks:  # resolve task names before hours of training, so a typo fails in seconds
        from eebench.evaluation.runner import prepare_tasks

        tasks = prepare_tasks(cfg.eval, cfg.data.source)
    backbone = load_backbone(cfg.backbone, cfg.device)
    layers = place_heads(cfg.placement, backbone.num_layers)
    splits = prepare_splits(cfg.data, backbone.tokenizer)
    heads, heads_dir = build_heads(cfg, backbone, layers, splits)
    calibration, calibration_dir = build_trace(backbone.model, heads, heads_dir, splits["calibration"], "calibration")
    heldout, _ = build_trace(backbone.model, heads, heads_dir, splits["heldout"], "heldout")
    policy = calibrated_policy(cfg, layers, calibration)
    # A metric that decides before the head projects (the gate) makes only the exiting head project.
    costs = CostModel.from_layered(backbone.layered, heads, gated=not get_metric(cfg.confidence.metric).needs_logits)
    ee_model = EarlyExitModel(backbone, heads, calibration, cfg.confidence.metric, cfg.calibration)

    training = json.loads((heads_dir / "heads.json").read_text()).get("training", {})
    training.pop("loss_curve", None)  # stays in the heads cache; results.json keeps the summary
    result = RunResult(
        status="running",
        backbone=cfg.backbone.name,
        backbone_path=backbone.path,
        num_layers=backbone.num_layers,
        exit_layers=layers,
        placement=cfg.placement.kind,
        head=cfg.head.kind,
        confidence=cfg.confidence.metric,
        calibration_method=cfg.calibration.method,
        threshold=cfg.threshold,
        thresholds=policy.native_thresholds(),
        exit_rule=policy.to_dict()["rule"],
        exit=ExitStats(**simulate(heldout, policy, costs)),
        calibration=calibration_block(cfg, policy, calibration, heldout, costs),
        curves=[HeadCurve(**curve) for curve in head_curves(heldout, cfg.confidence.metric, layers)],
        cost_model=CostModelResult(**dataclasses.asdict(costs), no_exit_overhead=costs.no_exit_overhead(),
                                   unit="weights read per token (batch-1 decoding is bound by weight traffic)"),
        data=DataInfo(cfg.data.source, {k: int(v.numel()) for k, v in splits.items()},
                      "train / calibration / held-out are disjoint sets of documents; exit stats use held-out"),
        heads_training=build(TrainingResult, training, "heads_training"),
        artifacts=Artifacts(str(heads_dir), str(calibration_dir), dataclasses.asdict(cfg.backbone),
                            dataclasses.asdict(cfg.calibration)),
    )
    checkpoint("eval")
    if cfg.eval.tasks:
        from eebench.evaluation.runner import evaluate_tasks

        result = dataclasses.replace(result, **evaluate_tasks(cfg.eval, tasks, ee_model, policy, heads_dir))
    checkpoint("timing")
    if cfg.timing.enabled:
        from eebench.timing.generation import measure_generation, timing_prompts

        prompts = timing_prompts(splits["heldout"], cfg.timing)
        result.timing = build(TimingResult, measure_generation(backbone, heads, policy, prompts, cfg.timing), "timing")
    return result
