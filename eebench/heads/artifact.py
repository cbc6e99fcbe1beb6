"""The trained exit heads of a point as a cache entry: what their key covers, and how they are built (created,
trained from cached hidden states, saved) or read back.

The points of a sweep over thresholds, metrics or calibrators share one entry; anything that changes the heads'
weights (the backbone, the text, the head or readout config, the seed, the code below) is a new entry.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from eebench.backbones import Backbone
from eebench.cache import Artifact
from eebench.config import ExperimentConfig
from eebench.data.corpus import source_identity
from eebench.faults import kill_point
from eebench.heads.modules import ExitHeads
from eebench.heads.readouts import READOUTS
from eebench.heads.states import cached_states
from eebench.heads.store import META, load_heads, save_heads
from eebench.heads.train import train_gates, train_heads
from eebench.heads.types import HEAD_TYPES
from eebench.resources import require_memory, training_bytes
from eebench.reuse import files_state, reuse
from eebench.seeding import seed_everything

# Calibration and held-out documents are drawn from what training leaves, so their counts never change the heads.
_NOT_IN_KEY = ("calibration_sequences", "heldout_sequences")

HEADS = Artifact(
    kind="heads",
    builder=__name__,
    inputs={
        "backbone": "the backbone's identity",
        "exit_layers": "the blocks whose outputs feed the heads",
        "head": "every `head.*` key",
        "readout": "every `readout.*` key",
        "data": "every `data.*` key but `calibration_sequences` and `heldout_sequences`, with the contents of a "
        "local `data.source`",
        "seed": "`seed`",
    },
    code=(
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
        "eebench.seeding",
    ),
    variant_code="the head type's module and the readout's module",
)


def heads_spec(cfg: ExperimentConfig, backbone: Backbone, layers: list[int]) -> dict:
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in _NOT_IN_KEY}
    data["source_content"] = source_identity(cfg.data.source)
    return {
        "backbone": backbone.identity,
        "exit_layers": layers,
        "head": dataclasses.asdict(cfg.head),
        "readout": dataclasses.asdict(cfg.readout),
        "data": data,
        "seed": cfg.seed,
    }


def variant_modules(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The chosen head type's and readout's modules: changing one type's code retrains only heads of that type."""
    return HEAD_TYPES.get(cfg.head.kind).module, f"eebench.heads.readouts.{cfg.readout.kind}"


def build_heads(cfg: ExperimentConfig, backbone: Backbone, layers: list[int], splits: dict) -> tuple[ExitHeads, Path]:
    """The point's heads and their cache folder: trained on ``splits["train"]`` once, then read from the cache."""

    def train_and_save(tmp: Path) -> None:
        seed_everything(cfg.seed)
        heads = new_heads(cfg, backbone, layers, splits["train"])
        check_training_memory(cfg, backbone, heads)
        log = train_from_states(cfg, backbone, heads, splits["train"]) if heads.trainable or cfg.head.gate.width else {}
        kill_point("heads")  # crash tests kill here: trained but not yet saved or renamed into the cache
        save_heads(heads, tmp, {"training": log, "train_tokens": int(splits["train"].numel())})

    directory = HEADS.get_or_build(heads_spec(cfg, backbone, layers), train_and_save, variant_modules(cfg))
    # The points of a sweep in one process share the loaded heads while their files and backbone are the same ones
    # (nothing writes to loaded heads); two sets, since sweeps often alternate between two head types. The held
    # entry keeps its backbone alive, so no other backbone can take over its id while the entry exists.
    key = (str(directory), files_state([directory]), id(backbone.layered))
    _, heads = reuse("heads", key, lambda: (backbone.layered, load_heads(directory, backbone.layered)), keep=2)
    return heads, directory


def new_heads(cfg: ExperimentConfig, backbone: Backbone, layers: list[int], train_tokens: torch.Tensor) -> ExitHeads:
    """Untrained heads as the config describes them; a readout with rows picks them from the training text."""
    readout = READOUTS.get(cfg.readout.kind)
    return ExitHeads.create(
        backbone.layered,
        layers,
        cfg.head.kind,
        cfg.head.init_from_lm_head,
        cfg.head.gate.width,
        cfg.head.options,
        dtype=torch.float32,  # master weights; loading casts them to the backbone's dtype
        readout=cfg.readout.kind,
        readout_ids=readout.rows(train_tokens, backbone.layered.vocab_size, cfg.readout.options),
        readout_opts=cfg.readout.options,
    )


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


def training_summary(directory: Path) -> dict:
    """The training log saved with the heads, without its loss curve (that stays in the cache entry)."""
    training = json.loads((Path(directory) / META).read_text()).get("training", {})
    training.pop("loss_curve", None)
    return training
