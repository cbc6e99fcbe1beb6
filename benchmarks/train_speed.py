"""Head-training throughput of each readout (and autocast precision), side by side in one process.

The backbone runs once over the training text and writes its hidden states to disk (timed separately, as
`cache_build`); then every variant trains the same heads from those memory-mapped states with eebench's one training
loop (same data order, optimizer, batch and seed). A variant is ``<readout>[:k]@<precision>``: ``full`` projects
heads and teacher onto all of lm_head's rows (the paper, and eebench's default before the shortlist readout);
``shortlist:K`` projects both onto the K most frequent training tokens' rows only. Held-out evaluations are excluded
from tokens/s. Per variant it also reports the hours 1M training tokens would take at that rate, and for shortlists
the teacher's probability mass outside the rows (what the rows-only objective leaves out of the exact KL), measured on
the held-out slice of the training split. Writes a JSON with provenance to benchmarks/results/.

    PYTHONPATH=$PWD python benchmarks/train_speed.py                         # bundled SmolLM2-135M, Django prose
    PYTHONPATH=$PWD python benchmarks/train_speed.py --variants full@float32,shortlist:8192@float32,shortlist:8192@bfloat16
    PYTHONPATH=$PWD python benchmarks/train_speed.py --model <dir> --data <file.txt> --train-tokens 2048 --seq-len 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from eebench.backbones import load_backbone
from eebench.backbones.precision import to_compute
from eebench.config import BackboneConfig, DataConfig, HeadTrainingConfig
from eebench.data.corpus import prepare_splits
from eebench.heads import ExitHeads
from eebench.heads.placement import exit_layers
from eebench.heads.placements.equal import EqualPlacementConfig
from eebench.heads.readouts import READOUTS
from eebench.heads.states import cached_states
from eebench.heads.train import train_heads, validation_split
from eebench.timing.timer import load_average_1min
from eebench.tracking.results import collect_provenance

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = "full@float32,shortlist:8192@float32,shortlist:2048@float32,shortlist:8192@bfloat16"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled:smollm2-135m", help="bundled:<name>, a local model dir or a hub id")
    parser.add_argument("--data", default="bundled:django-docs", help="training text (data.source syntax)")
    parser.add_argument("--head", default="linear", choices=["linear", "mlp", "lens", "low_rank"])
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train-tokens", type=int, default=16384, help="tokens trained per variant (a multiple of one batch)")
    parser.add_argument("--val-sequences", type=int, default=4, help="held-out slice of the training split")
    parser.add_argument("--state-dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated <readout>[:k]@<precision>")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/<date>_train_speed_<model>.json)")
    return parser.parse_args(argv)


def parse_variant(text: str) -> dict:
    """``shortlist:8192@bfloat16`` -> {"readout": "shortlist", "options": {"k": 8192}, "precision": "bfloat16"}."""
    readout, _, precision = text.partition("@")
    kind, _, k = readout.partition(":")
    READOUTS.get(kind)  # an unknown readout fails here, in one line, before anything runs
    return {"name": text, "readout": kind, "options": {"k": int(k)} if k else {}, "precision": precision or "float32"}


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


@contextmanager
def fresh_cache():
    previous = os.environ.get("EEBENCH_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["EEBENCH_CACHE"] = cache
        try:
            yield
        finally:
            os.environ.pop("EEBENCH_CACHE")
            if previous is not None:
                os.environ["EEBENCH_CACHE"] = previous


def variant_heads(backbone, layers: list[int], head: str, variant: dict, tokens: torch.Tensor) -> ExitHeads:
    readout = READOUTS.get(variant["readout"])
    ids = readout.rows(tokens, backbone.layered.vocab_size, variant["options"])
    return ExitHeads.create(
        backbone.layered, layers, head, dtype=torch.float32, readout=variant["readout"], readout_ids=ids,
        readout_opts=variant["options"],
    )  # fmt: skip


def mass_outside(layered, states, ids: torch.Tensor | None, val_sequences: int) -> float | None:
    """The full model's mean next-token probability outside ``ids`` on the held-out slice: the part of the exact KL
    objective a rows-only teacher renormalises away."""
    if ids is None:
        return None
    _, rows = validation_split(len(states), val_sequences)
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in rows.split(2):
            final, _ = states.batch(chunk)
            logits = layered.logits_of_readout(layered.norm(to_compute(final, layered.lm_head))).float()
            probs = F.softmax(logits, dim=-1).flatten(0, -2)
            total += float((1 - probs[:, ids].sum(-1)).sum())
            count += probs.shape[0]
    return total / count


def train_variant(backbone, layers, states, tokens, args, variant: dict) -> dict:
    torch.manual_seed(0)
    heads = variant_heads(backbone, layers, args.head, variant, tokens)
    cfg = HeadTrainingConfig(
        max_tokens=args.train_tokens,
        batch_size=args.batch_size,
        eval_every=10**12,  # evaluate only at the start and the end (tokens/s excludes evaluation anyway)
        patience=10**6,  # never stop early: every variant trains the same tokens
        val_sequences=args.val_sequences,
        state_dtype=args.state_dtype,
        precision=variant["precision"],
    )
    log = train_heads(backbone.layered, heads, states, cfg, seed=0)
    return {
        **variant,
        "rows": backbone.layered.vocab_size if heads.readout_ids is None else len(heads.readout_ids),
        "trainable_parameters": sum(p.numel() for p in heads.parameters() if p.requires_grad),
        "loss": log["loss"],
        "tokens": log["tokens"],
        "steps": log["steps"],
        "tokens_per_s": log["tokens_per_s"],
        "hours_per_1m_tokens": 1e6 / log["tokens_per_s"] / 3600,
        "seconds_incl_eval": log["seconds"],
        "first_heldout_loss": [m["first_heldout_loss"] for m in log["modules"]],
        "final_heldout_loss": [m["final_heldout_loss"] for m in log["modules"]],
        "teacher_mass_outside_rows": mass_outside(backbone.layered, states, heads.readout_ids, args.val_sequences),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    variants = [parse_variant(v) for v in args.variants.split(",")]
    torch.set_num_threads(args.threads)
    backbone = load_backbone(BackboneConfig(name="bench", name_or_path=args.model, dtype="float32"), "auto")
    layers = exit_layers(EqualPlacementConfig(num_heads=args.num_heads), backbone.num_layers)
    train_sequences = args.train_tokens // args.seq_len + args.val_sequences
    data = DataConfig(
        source=args.data, seq_len=args.seq_len, train_sequences=train_sequences, calibration_sequences=1, heldout_sequences=1
    )
    tokens = prepare_splits(data, backbone.tokenizer)["train"]
    started = time.perf_counter()
    with fresh_cache():  # so the one-off build is always measured
        tick = time.perf_counter()
        states = cached_states(backbone, tokens, layers, args.state_dtype)
        build = {
            "seconds": time.perf_counter() - tick,
            "tokens": int(tokens.numel()),
            "bytes": sum(f.stat().st_size for f in states.directory.glob("*.npy")),
        }
        results = [train_variant(backbone, layers, states, tokens, args, v) for v in variants]
        del states
    baseline = results[0]["tokens_per_s"]
    for row in results:
        row["speedup_vs_first"] = row["tokens_per_s"] / baseline
    result = {
        "benchmark": "train_speed",
        "args": vars(args),
        "exit_layers": layers,
        "num_layers": backbone.num_layers,
        "cache_build": build,
        "variants": results,
        "wall_seconds": time.perf_counter() - started,
        "load_average_1min": load_average_1min(),
        "provenance": {
            **collect_provenance(str(backbone.device), 0),
            "cpu": cpu_name(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    out = (
        Path(args.out)
        if args.out
        else RESULTS / f"{datetime.now(timezone.utc):%Y-%m-%d}_train_speed_{Path(args.model).name.replace(':', '-')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    keys = ("tokens_per_s", "speedup_vs_first", "hours_per_1m_tokens", "teacher_mass_outside_rows", "final_heldout_loss")
    print(json.dumps({"cache_build_s": build["seconds"], "out": str(out)}))
    for row in results:
        print(json.dumps({"variant": row["name"], **{k: row[k] for k in keys}}))
    return result


if __name__ == "__main__":
    main()
