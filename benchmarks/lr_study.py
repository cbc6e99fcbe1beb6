"""Held-out KL vs training tokens of linear heads on a shortlist readout, at several learning rates.

The states are experiment=paper's (SmolLM2-135M in float32, 768 x 512 tokens of the Django training text), so with
the same EEBENCH_CACHE a later `run.py experiment=paper readout=shortlist` reuses them. Each learning rate trains the
same heads from the same seed and data order; the held-out KL and the exit probe (coverage of an entropy exit at
target 0.9) are read every quarter of the budget. Prints the provenance (git commit, CPU, versions), then one JSON
line per learning rate.

    EEBENCH_CACHE=<cache> PYTHONPATH=$PWD python benchmarks/lr_study.py --k 8192 --tokens 131072 --lrs 1e-4,3e-4,1e-3,3e-3
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from train_speed import cpu_name, variant_heads

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig, DataConfig, HeadTrainingConfig
from eebench.data.corpus import prepare_splits
from eebench.heads.placement import exit_layers
from eebench.heads.placements.equal import EqualPlacementConfig
from eebench.heads.states import cached_states
from eebench.heads.train import train_heads
from eebench.tracking.results import collect_provenance


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8192, help="shortlist rows")
    parser.add_argument("--tokens", type=int, default=131072, help="training tokens per learning rate")
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser.parse_args()


def curves(log: dict, key: str) -> dict:
    return {c["exit_layer"]: [round(x, 2) for x in c[key]] for c in log["curves"]}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    backbone = load_backbone(BackboneConfig(name="smollm2-135m", name_or_path="bundled:smollm2-135m", dtype="float32"))
    layers = exit_layers(EqualPlacementConfig(num_heads=4), backbone.num_layers)
    data = DataConfig(seq_len=512, train_sequences=768, calibration_sequences=64, heldout_sequences=48)
    tokens = prepare_splits(data, backbone.tokenizer)["train"]
    tick = time.perf_counter()
    states = cached_states(backbone, tokens, layers, "float16")
    provenance = {**collect_provenance(str(backbone.device), 0), "cpu": cpu_name(), "torch_threads": torch.get_num_threads()}
    print(json.dumps({"states_seconds": time.perf_counter() - tick, "provenance": provenance}), flush=True)
    for lr in (float(x) for x in args.lrs.split(",")):
        torch.manual_seed(0)
        heads = variant_heads(backbone, layers, "linear", {"readout": "shortlist", "options": {"k": args.k}}, tokens)
        cfg = HeadTrainingConfig(max_tokens=args.tokens, lr=lr, eval_every=args.tokens // 4, patience=100, val_sequences=32)
        log = train_heads(backbone.layered, heads, states, cfg, seed=0)
        row = {"k": args.k, "lr": lr, "tok_s": round(log["tokens_per_s"]), "heldout": curves(log, "heldout")}
        print(json.dumps({**row, "coverage@0.9": curves(log, "coverage")}), flush=True)


if __name__ == "__main__":
    main()
