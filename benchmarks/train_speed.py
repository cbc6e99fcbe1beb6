"""Head-training throughput before and after the hidden-state cache, side by side in one process.

OLD: main's algorithm before the cache: the whole frozen model (with its lm_head) runs for every training batch, the
teacher is its log-softmax, and each head's loss is ``kl_div(log_target=True)`` (``OldPathTask`` below).
NEW: the backbone runs once over the training text and writes its hidden states to disk (timed separately, as
`cache_build`), then the same heads train from the memory-mapped states.
Both use eebench's one training loop with the same data order, heads, optimizer and batch; held-out evaluations
are excluded from tokens/s. Writes a JSON with provenance to benchmarks/results/.

    PYTHONPATH=$PWD python benchmarks/train_speed.py                         # bundled SmolLM2-135M, Django prose
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
from eebench.backbones.states import hidden_states_at
from eebench.config import BackboneConfig, DataConfig, HeadTrainingConfig
from eebench.data.corpus import prepare_splits
from eebench.heads import ExitHeads
from eebench.heads.loop import train_loop
from eebench.heads.placement import exit_layers
from eebench.heads.placements.equal import EqualPlacementConfig
from eebench.heads.states import LiveStates, cached_states
from eebench.heads.train import DistillationTask, label_members, loop_settings, train_heads
from eebench.timing.timer import load_average_1min
from eebench.tracking.results import collect_provenance

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled:smollm2-135m", help="bundled:<name>, a local model dir or a hub id")
    parser.add_argument("--data", default="bundled:django-docs", help="training text (data.source syntax)")
    parser.add_argument("--head", default="linear", choices=["linear", "mlp", "lens"])
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train-tokens", type=int, default=16384, help="tokens trained per path (a multiple of one batch)")
    parser.add_argument("--state-dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"], help="autocast of the head forwards")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/<date>_train_speed_<model>.json)")
    return parser.parse_args()


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


class OldPathTask(DistillationTask):
    """The per-step work of main before the hidden-state cache, in the same loop (same data order and optimizer)."""

    def losses(self, final, hiddens, active):
        raise AssertionError("unused: step and evaluate are overridden")

    def _old_losses(self, rows, active):
        logits, hiddens = hidden_states_at(
            self.layered.model, self.states.tokens[rows].to(self.states.device), self.heads.exit_layers
        )
        teacher = F.log_softmax(logits.float(), dim=-1).flatten(0, -2)
        for index in active:
            student = F.log_softmax(self.heads.logits(index, hiddens[index]).float(), dim=-1).flatten(0, -2)
            yield index, F.kl_div(student, teacher, log_target=True, reduction="batchmean")

    def step(self, rows, active):
        out = {}
        for index, loss in self._old_losses(rows, active):
            (loss / len(self.heads)).backward()
            out[index] = loss.item()
        return out

    def evaluate(self, active):
        chunks = self.val_rows.split(self.batch_size)
        totals = dict.fromkeys(active, 0.0)
        for rows in chunks:
            for index, loss in self._old_losses(rows, active):
                totals[index] += loss.item() / len(chunks)
        return totals


def train_once(backbone, layers, states, args, cfg, old: bool = False) -> dict:
    torch.manual_seed(0)
    heads = ExitHeads.create(backbone.layered, layers, args.head, dtype=torch.float32)
    if old:
        task = OldPathTask(backbone.layered, heads, states, cfg.val_sequences, cfg.batch_size)
        settings = loop_settings(cfg, backbone.layered.lm_head.weight.dtype)
        log = label_members(
            train_loop(list(heads.heads), task, task.num_train, states.seq_len, settings, 0, backbone.device, "old path"),
            "head",
            layers,
        )
    else:
        log = train_heads(backbone.layered, heads, states, cfg, seed=0)
    return {
        "tokens": log["tokens"],
        "steps": log["steps"],
        "tokens_per_s": log["tokens_per_s"],
        "seconds_incl_eval": log["seconds"],
        "final_heldout_kl": [h["final_heldout_loss"] for h in log["modules"]],
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    backbone = load_backbone(BackboneConfig(name="bench", name_or_path=args.model), "auto")
    layers = exit_layers(EqualPlacementConfig(num_heads=args.num_heads), backbone.num_layers)
    val = 2
    train_sequences = args.train_tokens // args.seq_len + val
    data = DataConfig(
        source=args.data, seq_len=args.seq_len, train_sequences=train_sequences, calibration_sequences=1, heldout_sequences=1
    )
    tokens = prepare_splits(data, backbone.tokenizer)["train"]
    # Evaluate only at the start and the end (tokens/s excludes evaluation anyway); never stop early.
    cfg = HeadTrainingConfig(
        max_tokens=args.train_tokens,
        batch_size=args.batch_size,
        eval_every=10**12,
        patience=10**6,
        val_sequences=val,
        state_dtype=args.state_dtype,
        precision=args.precision,
    )
    started = time.perf_counter()
    old = train_once(backbone, layers, LiveStates(backbone.layered, tokens, layers), args, cfg, old=True)
    with fresh_cache():  # so the one-off build is always measured
        tick = time.perf_counter()
        states = cached_states(backbone, tokens, layers, args.state_dtype)
        build = {
            "seconds": time.perf_counter() - tick,
            "tokens": int(tokens.numel()),
            "bytes": sum(f.stat().st_size for f in states.directory.glob("*.npy")),
        }
        new = train_once(backbone, layers, states, args, cfg)
        del states
    result = {
        "benchmark": "train_speed",
        "args": vars(args),
        "exit_layers": layers,
        "num_layers": backbone.num_layers,
        "old_backbone_per_step": old,
        "new_cached_states": {**new, "cache_build": build},
        "speedup_tokens_per_s": new["tokens_per_s"] / old["tokens_per_s"],
        "new_including_one_off_build_tokens_per_s": new["tokens"] / (new["tokens"] / new["tokens_per_s"] + build["seconds"]),
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
    print(
        json.dumps(
            {k: result[k] for k in ("speedup_tokens_per_s", "new_including_one_off_build_tokens_per_s")}
            | {
                "old_tokens_per_s": old["tokens_per_s"],
                "new_tokens_per_s": new["tokens_per_s"],
                "cache_build_s": build["seconds"],
                "out": str(out),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
