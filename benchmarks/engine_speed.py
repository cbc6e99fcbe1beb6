"""Early-exit generation speed on a finished eebench run (issue: engine).

Times, in one process and on the same held-out prompts, full-model greedy decoding against every KV
strategy, DSSD, the best LayerSkip-style setting, static exit and transformers' assistant_early_exit,
at several calibration targets. Each method is timed alternately with the full model (paired repeats),
so every speedup is a ratio measured side by side.

    python benchmarks/engine_speed.py --run-dir outputs/sweeps/demo_.../0 [--metric entropy|gate]
"""
from __future__ import annotations

import argparse
import os
import json
import statistics
import sys
from pathlib import Path

import torch

from eebench.config import DataConfig
from eebench.data.corpus import prepare_splits
from eebench.engine.flops import CostModel
from eebench.engine.generate import generate
from eebench.model import EarlyExitModel
from eebench.timing.timer import paired_runs


def held_out_prompts(model: EarlyExitModel, count: int, length: int) -> list[torch.Tensor]:
    splits = prepare_splits(DataConfig(seq_len=length, train_sequences=1, calibration_sequences=1, heldout_sequences=count),
                            model.backbone.tokenizer)
    return [row[None].to(model.backbone.device) for row in splits["heldout"]]


class Bench:
    def __init__(self, model: EarlyExitModel, prompts, new_tokens: int, warmup: int, repeats: int):
        self.model, self.prompts, self.new_tokens = model, prompts, new_tokens
        self.warmup, self.repeats = warmup, repeats
        self.lm = model.backbone.layered
        self.reference = [generate(self.lm, p, new_tokens).tokens for p in prompts]

    def _full(self):
        return [generate(self.lm, p, self.new_tokens) for p in self.prompts]

    def measure(self, name: str, run, costs: CostModel | None = None) -> dict:
        outputs = {}

        def candidate():
            outputs["last"] = run()

        full_times, times = paired_runs(self._full, candidate, self.model.backbone.device, self.warmup, self.repeats)
        tokens = self.new_tokens * len(self.prompts)
        row = {"method": name, "tokens_per_s": tokens / statistics.median(times),
               "full_tokens_per_s": tokens / statistics.median(full_times),
               "speedup": statistics.median(f / t for f, t in zip(full_times, times)),
               "speedup_min": min(f / t for f, t in zip(full_times, times)),
               "speedup_max": max(f / t for f, t in zip(full_times, times)),
               "load_average_1min": os.getloadavg()[0]}
        outs = outputs["last"]
        if isinstance(outs, list) and hasattr(outs[0], "tokens"):
            row["exact_match"] = sum(torch.equal(o.tokens, r) for o, r in zip(outs, self.reference)) / len(outs)
            row["token_match"] = sum(float((o.tokens == r).float().mean()) for o, r in zip(outs, self.reference)) / len(outs)
            stats = [o.speculation for o in outs if o.speculation is not None]
            if stats:
                drafted, accepted = sum(s.drafted for s in stats), sum(s.accepted for s in stats)
                row["acceptance"] = accepted / drafted if drafted else 0.0
                row["mean_accepted"] = accepted / max(1, sum(s.verifications for s in stats))
            elif costs is not None:
                exits = torch.tensor([i for o in outs for i in o.exit_index[1:]])
                row["theoretical_speedup"] = costs.theoretical_speedup(exits)
                row["early_exit_share"] = float((exits < len(costs.exit_layers)).float().mean())
        else:  # transformers generate returns token tensors
            row["exact_match"] = sum(torch.equal(o, r) for o, r in zip(outs, self.reference)) / len(outs)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        return row


def hf_generate(model, prompts, new_tokens, **kwargs):
    hf = model.backbone.model
    return lambda: [hf.generate(p, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                pad_token_id=model.backbone.tokenizer.eos_token_id, **kwargs)[:, p.shape[1]:] for p in prompts]


def run_all(args) -> list[dict]:
    model = EarlyExitModel.from_run(args.run_dir, device=args.device)
    model.metric = args.metric
    prompts = held_out_prompts(model, args.prompts, args.prompt_tokens)
    bench = Bench(model, prompts, args.new_tokens, args.warmup, args.repeats)
    lm, heads = model.backbone.layered, model.heads
    costs = CostModel.from_layered(lm, heads, gated=args.metric == "gate")
    rows = [bench.measure("transformers greedy", hf_generate(model, prompts, args.new_tokens))]
    for target in args.targets:
        model._policies.clear()
        policy = model.policy(target)
        for strategy in ("full", "lazy", "copy", "skip"):
            # "full" runs every block whatever exits, so the cost model's saving does not apply to it
            rows.append(bench.measure(f"{strategy} @{target}", lambda s=strategy: [generate(lm, p, args.new_tokens, heads, policy, s) for p in prompts],
                                      None if strategy == "full" else costs))
        rows.append(bench.measure(f"dssd @{target}", lambda: [generate(lm, p, args.new_tokens, heads, policy, "dssd", max_draft=5) for p in prompts]))
    layerskip = []
    for layer in heads.exit_layers:
        for draft in args.draft_lengths:
            layerskip.append(bench.measure(f"layerskip block {layer} draft {draft}", lambda k=layer, d=draft: [
                generate(lm, p, args.new_tokens, strategy="layerskip", exit_layer=k, draft_length=d) for p in prompts]))
    rows.extend(layerskip)
    for layer in heads.exit_layers:
        for draft in args.draft_lengths:
            rows.append(bench.measure(f"assistant_early_exit {layer} x{draft}", hf_generate(
                model, prompts, args.new_tokens, assistant_early_exit=layer + 1, num_assistant_tokens=draft)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--metric", default="entropy", choices=["entropy", "max_prob", "margin", "gate"])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--draft-lengths", type=int, nargs="+", default=[3, 6], help="LayerSkip / assistant draft lengths")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = run_all(args)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    cols = ["method", "tokens_per_s", "speedup", "theoretical_speedup", "acceptance", "mean_accepted", "exact_match"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        cells = [row.get(c) for c in cols]
        print("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else ("" if c is None else str(c)) for c in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
