"""A trace of a token split as a cache entry: what its key covers, and how it is collected or read back.

A trace depends on the heads' weights, never on a threshold, the chosen metric or a calibrator, so every point of a
sweep over those reads the same calibration and held-out traces. It holds the values of every registered confidence
metric, so the code of every metric module is in its key.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from pathlib import Path

import torch

from eebench.backbones import Backbone
from eebench.cache import Artifact, content_digest, content_key
from eebench.exits import metrics
from eebench.heads.modules import ExitHeads
from eebench.heads.types import HEAD_TYPES
from eebench.traces.trace import Trace, collect_trace


def metric_modules() -> tuple[str, ...]:
    """The metrics package and each metric's module, listed as the registry discovers them, so that a new metric
    joins the trace key without an edit here."""
    names = sorted(module.name for module in pkgutil.iter_modules(metrics.__path__))
    return (metrics.__name__, *(f"{metrics.__name__}.{name}" for name in names))


TRACES = Artifact(
    kind="traces",
    builder=__name__,
    inputs={
        "heads": "checksums of the heads' weight files (not the heads folder's name)",
        "backbone": "the backbone's identity",
        "split": "which split the tokens are (calibration or heldout)",
        "tokens": "the token ids",
    },
    code=(
        "eebench.traces.trace",
        "eebench.heads.modules",
        "eebench.heads.readouts",
        "eebench.heads.train",
        "eebench.heads.gate",
        "eebench.exits.confidence",
        *metric_modules(),
        "eebench.backbones.layered",
        "eebench.backbones.families",
        "eebench.backbones.states",
    ),
    variant_code="the head type's module (its forward produces the trace)",
)


@dataclass(frozen=True)
class TracedSplit:
    trace: Trace
    directory: Path  # its cache entry


def trace_spec(backbone: Backbone, heads_dir: Path, tokens: torch.Tensor, split: str) -> dict:
    return {
        "heads": content_digest(heads_dir),
        "backbone": backbone.identity,
        "split": split,
        "tokens": content_key({"t": tokens.flatten().tolist()}),
    }


def build_trace(backbone: Backbone, heads: ExitHeads, heads_dir: Path, tokens: torch.Tensor, split: str) -> TracedSplit:
    """The trace of ``heads`` (saved in ``heads_dir``) over ``tokens``: collected once, then read from the cache."""

    def collect_and_save(tmp: Path) -> None:
        collect_trace(backbone.model, heads, tokens).save(tmp)

    spec = trace_spec(backbone, heads_dir, tokens, split)
    directory = TRACES.get_or_build(spec, collect_and_save, (HEAD_TYPES.get(heads.kind).module,))
    return TracedSplit(Trace.load(directory), directory)
