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
from eebench.cache import content_digest, content_key, get_or_build
from eebench.config import ExperimentConfig
from eebench.data.corpus import prepare_splits, source_identity
from eebench.engine.flops import CostModel
from eebench.errors import require
from eebench.exits.calibration import calibrate
from eebench.exits.metrics import get_metric
from eebench.exits.policy import ExitPolicy
from eebench.faults import checkpoint
from eebench.heads import ExitHeads, load_heads, save_heads
from eebench.heads.placement import exit_layers as place_heads
from eebench.heads.readouts import READOUTS
from eebench.heads.states import cached_states
from eebench.heads.train import train_gates, train_heads
from eebench.heads.types import HEAD_TYPES
from eebench.logs import stage
from eebench.model import EarlyExitModel
from eebench.resources import require_memory, training_bytes
from eebench.reuse import files_state, reuse
from eebench.timing.baselines import check_baselines
from eebench.traces.curves import head_curves, per_head_heldout
from eebench.traces.simulate import heldout_check, simulate
from eebench.traces.trace import Trace, collect_trace
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
    TimingResult,
)
from eebench.tracking.contract_training import TrainingResult
from eebench.tracking.schema import build


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# The modules whose source determines each artifact kind: their fingerprint is part of its cache key.
HEADS_CODE = (
    "eebench.heads.modules",
    "eebench.heads.types",
    "eebench.heads.train",
    "eebench.heads.loop",
    "eebench.heads.gate",
    "eebench.heads.store",
    "eebench.heads.readouts",
    "eebench.heads.states",
    "eebench.backbones.layered",
    "eebench.backbones.families",
    "eebench.data.corpus",
)
TRACE_CODE = (
    "eebench.traces.trace",
    "eebench.heads.modules",
    "eebench.heads.readouts",
    "eebench.heads.train",
    "eebench.exits.confidence",
    "eebench.backbones.layered",
    "eebench.backbones.families",
)


def heads_spec(cfg: ExperimentConfig, backbone: Backbone, layers: list[int]) -> dict:
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in ("calibration_sequences", "heldout_sequences")}
    data["source_content"] = source_identity(cfg.data.source)
    return {
        "backbone": backbone.identity,
        "exit_layers": layers,
        "head": dataclasses.asdict(cfg.head),
        "readout": dataclasses.asdict(cfg.readout),
        "data": data,
        "seed": cfg.seed,
    }


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


def build_heads(cfg: ExperimentConfig, backbone: Backbone, layers: list[int], splits) -> tuple[ExitHeads, Path]:
    spec = heads_spec(cfg, backbone, layers)

    def build(tmp: Path) -> None:
        seed_everything(cfg.seed)
        readout = READOUTS.get(cfg.readout.kind)
        heads = ExitHeads.create(
            backbone.layered,
            layers,
            cfg.head.kind,
            cfg.head.init_from_lm_head,
            cfg.head.gate.width,
            cfg.head.options,
            dtype=torch.float32,  # master weights; loading casts them to the backbone's dtype
            readout=cfg.readout.kind,
            readout_ids=readout.rows(splits["train"], backbone.layered.vocab_size, cfg.readout.options),
            readout_opts=cfg.readout.options,
        )
        check_training_memory(cfg, backbone, heads)
        log = train_from_states(cfg, backbone, heads, splits["train"]) if heads.trainable or cfg.head.gate.width else {}
        checkpoint("heads")  # crash tests kill here: trained but not yet saved or renamed into the cache
        save_heads(heads, tmp, {"training": log, "train_tokens": int(splits["train"].numel())})

    code = (*HEADS_CODE, HEAD_TYPES.get(cfg.head.kind).module, f"eebench.heads.readouts.{cfg.readout.kind}")
    directory = get_or_build("heads", spec, build, code=code)
    # The points of a sweep in one process share the loaded heads while their files and backbone are the same ones
    # (nothing writes to loaded heads); two sets, since sweeps often alternate between two head types. The held
    # entry keeps its backbone alive, so no other backbone can take over its id while the entry exists.
    key = (str(directory), files_state([directory]), id(backbone.layered))
    _, heads = reuse("heads", key, lambda: (backbone.layered, load_heads(directory, backbone.layered)), keep=2)
    return heads, directory


def check_training_memory(cfg: ExperimentConfig, backbone: Backbone, heads: ExitHeads) -> None:
    """Stop in one line, before hidden states are cached, if training these heads cannot fit in memory."""
    trainable = sum(p.numel() for p in heads.parameters() if p.requires_grad)
    rows = backbone.layered.vocab_size if heads.readout_ids is None else len(heads.readout_ids)
    batch_tokens = cfg.head.training.batch_size * cfg.data.seq_len
    require_memory(
        training_bytes(trainable, batch_tokens, rows),
        backbone.device,
        f"training {len(heads)} {cfg.head.kind} heads ({trainable} trainable parameters, {batch_tokens}-token batches "
        f"over {rows} vocabulary rows)",
        "allowed: a smaller head.training.batch_size, fewer heads, a cheaper head or readout=shortlist",
    )


def train_from_states(cfg: ExperimentConfig, backbone: Backbone, heads: ExitHeads, tokens: torch.Tensor) -> dict:
    """Cache the backbone's hidden states over the training text once, then train heads and gates from them."""
    training = cfg.head.training
    states = cached_states(backbone, tokens, heads.exit_layers, training.state_dtype)
    log = {
        "hidden_states": {
            "dir": str(states.directory),
            "dtype": states.meta["dtype"],
            "build_tokens_per_s": states.meta["tokens_per_s"],
            "build_seconds": states.meta["build_seconds"],
        }
    }
    if heads.trainable:
        log["heads"] = train_heads(backbone.layered, heads, states, training, cfg.seed)
    if cfg.head.gate.width:
        log["gates"] = train_gates(backbone.layered, heads, states, cfg.head.gate, training, cfg.seed)
    # One flat list of loss-vs-tokens curves (heads' KL, gates' BCE) for W&B and the report.
    log["curves"] = [curve for part in ("heads", "gates") for curve in log.get(part, {}).pop("curves", [])]
    log["probe_target"] = training.probe_target if heads.trainable else None
    return log


def build_trace(backbone: Backbone, heads: ExitHeads, heads_dir: Path, tokens: torch.Tensor, split: str) -> tuple[Trace, Path]:
    # Keyed on the heads' file contents (not their folder's name) and the backbone that runs them.
    spec = {
        "heads": content_digest(heads_dir),
        "backbone": backbone.identity,
        "split": split,
        "tokens": content_key({"t": tokens.flatten().tolist()}),
    }
    code = (*TRACE_CODE, HEAD_TYPES.get(heads.kind).module)  # the head type's forward produces the trace
    directory = get_or_build("traces", spec, lambda tmp: collect_trace(backbone.model, heads, tokens).save(tmp), code=code)
    return Trace.load(directory), directory


def calibrated_policy(cfg: ExperimentConfig, layers: list[int], calibration: Trace) -> ExitPolicy:
    unc = calibration.uncertainty(cfg.confidence.metric)
    return ExitPolicy(layers, cfg.confidence.metric, calibrate(cfg.calibration, unc, calibration.agree, cfg.threshold))


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
        heldout=build(HeldoutCheck, heldout_check(heldout, policy, cfg.threshold), "calibration.heldout"),
    )


def run_experiment(cfg: ExperimentConfig, run_dir: Path) -> RunResult:
    seed_everything(cfg.seed)
    tasks = None
    if cfg.eval.tasks:  # resolve task names before hours of training, so a typo fails in seconds
        from eebench.evaluation.runner import prepare_tasks

        tasks = prepare_tasks(cfg.eval, cfg.data.source, cfg.seed)
    with stage("loading the backbone"):
        backbone = load_backbone(cfg.backbone, cfg.device, shared=True)
    check_positions(cfg, backbone)
    layers = place_heads(cfg.placement, backbone.num_layers)
    check_baselines(backbone, cfg.timing, layers)
    with stage("preparing the data"):
        splits = shared_splits(cfg, backbone)
    with stage(f"exit heads at blocks {layers} (trained, or read from the cache)"):
        heads, heads_dir = build_heads(cfg, backbone, layers, splits)
    with stage("calibration and held-out traces"):
        calibration, calibration_dir = build_trace(backbone, heads, heads_dir, splits["calibration"], "calibration")
        heldout, _ = build_trace(backbone, heads, heads_dir, splits["heldout"], "heldout")
    policy = calibrated_policy(cfg, layers, calibration)
    # A metric that decides before the head projects (the gate) makes only the exiting head project.
    costs = CostModel.from_layered(backbone.layered, heads, gated=not get_metric(cfg.confidence.metric).needs_logits)
    ee_model = EarlyExitModel(backbone, heads, calibration, cfg.confidence.metric, cfg.calibration)

    training = json.loads((heads_dir / "heads.json").read_text()).get("training", {})
    training.pop("loss_curve", None)  # stays in the heads cache; results.json keeps the summary
    result = RunResult(
        status="running",
        backbone=backbone.name,  # backbone.name, or the loaded model's own name when unset
        backbone_path=backbone.path,
        backbone_dtype=backbone.dtype,  # resolved: backbone.dtype=auto records what was loaded, and why
        backbone_dtype_reason=backbone.dtype_reason,
        num_layers=backbone.num_layers,
        exit_layers=layers,
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
        calibration=calibration_block(cfg, policy, calibration, heldout, costs),
        curves=[HeadCurve(**curve) for curve in head_curves(heldout, cfg.confidence.metric, layers)],
        cost_model=CostModelResult(
            **dataclasses.asdict(costs),
            no_exit_overhead=costs.no_exit_overhead(),
            unit="weights read per token (batch-1 decoding is bound by weight traffic)",
        ),
        data=DataInfo(
            cfg.data.source,
            {k: int(v.numel()) for k, v in splits.items()},
            f"train / calibration / held-out are disjoint sets of documents (train by a hash of the document id; "
            f"calibration and held-out drawn at random with seed {cfg.seed} from the rest); exit stats use held-out",
        ),
        heads_training=build(TrainingResult, training, "heads_training"),
        artifacts=Artifacts(
            str(heads_dir), str(calibration_dir), dataclasses.asdict(cfg.backbone), dataclasses.asdict(cfg.calibration)
        ),
    )
    checkpoint("eval")
    if cfg.eval.tasks:
        from eebench.evaluation.runner import evaluate_tasks

        with stage(f"evaluating {len(tasks[1])} task(s) under the exit policy"):
            evaluated = evaluate_tasks(cfg.eval, tasks, ee_model, policy, heads_dir, costs, cfg.timing.strategy)
        exit_tasks = evaluated.pop("exit_tasks")
        result = dataclasses.replace(
            result, **evaluated, exit_tasks=build(TaskExitStats, exit_tasks, "exit_tasks") if exit_tasks else None
        )
    checkpoint("timing")
    if cfg.timing.enabled:
        from eebench.timing.generation import measure_generation
        from eebench.timing.prompts import timing_prompts

        prompts = timing_prompts(cfg.timing, splits["heldout"], backbone.tokenizer, cfg.eval, tasks)
        with stage(f"timing generation ({cfg.timing.strategy}, {cfg.timing.repeats} repeats)"):
            measured = measure_generation(backbone, heads, policy, prompts, cfg.timing, costs)
        result.timing = build(TimingResult, measured, "timing")
    return result
