"""Early-exit generation speed on a finished eebench run (issue: engine).

Times, in one process and on the same held-out prompts, full-model greedy decoding against every KV
strategy, DSSD, the best LayerSkip-style setting, static exit and transformers' assistant_early_exit,
at several calibration targets. Each method is timed alternately with the full model (paired repeats),
so every speedup is a ratio measured side by side. The prompt pass (prefill + first token) is timed
separately (see eebench/timing/generation.py), giving prefill ms, decode tokens/s, per-token decode
latency and the decode-only speedup next to the end-to-end numbers.

    python benchmarks/engine_speed.py --run-dir outputs/sweeps/demo_.../0 [--metric entropy|gate]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from eebench.config import DataConfig
from eebench.data.corpus import prepare_splits
from eebench.engine.flops import CostModel
from eebench.engine.generate import GenerationOutput, generate
from eebench.exits.policy import ExitPolicy
from eebench.model import EarlyExitModel
from eebench.timing.generation import (compare_generation, decoded_exit_indices, generated_rows,
                                       match_with_reference)
from eebench.timing.timer import load_average_1min, process_peak_rss_mib


def held_out_prompts(model: EarlyExitModel, count: int, length: int) -> list[torch.Tensor]:
    splits = prepare_splits(DataConfig(seq_len=length, train_sequences=1, calibration_sequences=1, heldout_sequences=count),
                            model.backbone.tokenizer)
    return [row[None].to(model.backbone.device) for row in splits["heldout"]]


class Bench:
    def __init__(self, model: EarlyExitModel, prompts, new_tokens: int, warmup: int, repeats: int):
        self.model, self.prompts, self.new_tokens = model, prompts, new_tokens
        self.warmup, self.repeats = warmup, repeats
        self.lm = model.backbone.layered
        self.reference = generated_rows(self._full(new_tokens))

    def _full(self, new_tokens: int):
        return [generate(self.lm, p, new_tokens) for p in self.prompts]

    def measure(self, name: str, run, costs: CostModel | None = None) -> dict:
        """Time ``run(new_tokens)`` alternately with full greedy; unprefixed keys are the method's own."""
        fields, outputs = compare_generation(self._full, run, self.new_tokens, self.model.backbone.device,
                                             self.warmup, self.repeats, candidate_prefix="")
        row = {"method": name, **fields, "load_average_1min": load_average_1min()}
        outs = outputs[""]
        row["exact_match"], row["token_match"] = match_with_reference(self.reference, generated_rows(outs))
        stats = [o.speculation for o in outs if isinstance(o, GenerationOutput) and o.speculation is not None]
        if stats:
            drafted, accepted = sum(s.drafted for s in stats), sum(s.accepted for s in stats)
            row["acceptance"] = accepted / drafted if drafted else 0.0
            row["mean_accepted"] = accepted / max(1, sum(s.verifications for s in stats))
        elif costs is not None:
            exits = torch.tensor(decoded_exit_indices(outs))
            row["theoretical_speedup"] = costs.theoretical_speedup(exits)
            row["early_exit_share"] = float((exits < len(costs.exit_layers)).float().mean())
        scalars = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if not isinstance(v, (dict, list))}
        print(json.dumps(scalars), flush=True)
        return row


def hf_generate(model, prompts, **kwargs):
    hf = model.backbone.model
    return lambda new_tokens: [
        hf.generate(p, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                    pad_token_id=model.backbone.tokenizer.eos_token_id, **kwargs)[:, p.shape[1]:] for p in prompts]


def no_exit_rows(bench: Bench, lm, heads, prompts) -> list[dict]:
    """The price of asking: a policy whose heads never fire, so every token runs the full depth and
    pays only for the exit decisions (the gate's small MLP, or every head's vocabulary projection)."""
    metrics = ["gate", "entropy"] if len(heads.gates) else ["entropy"]
    rows = []
    for metric in metrics:
        never = ExitPolicy(heads.exit_layers, metric, [-math.inf] * len(heads.exit_layers))
        costs = CostModel.from_layered(lm, heads, gated=metric == "gate")
        rows.append(bench.measure(f"no exit, {metric} decides", lambda n, policy=never: [
            generate(lm, p, n, heads, policy, "lazy") for p in prompts], costs))
    return rows


def run_all(args) -> list[dict]:
    model = EarlyExitModel.from_run(args.run_dir, device=args.device)
    model.metric = args.metric
    prompts = held_out_prompts(model, args.prompts, args.prompt_tokens)
    bench = Bench(model, prompts, args.new_tokens, args.warmup, args.repeats)
    lm, heads = model.backbone.layered, model.heads
    costs = CostModel.from_layered(lm, heads, gated=args.metric == "gate")
    rows = [bench.measure("transformers greedy", hf_generate(model, prompts))]
    rows += no_exit_rows(bench, lm, heads, prompts)
    for target in args.targets:
        model._policies.clear()
        policy = model.policy(target)
        for strategy in ("full", "lazy", "copy", "skip"):
            # "full" runs every block whatever exits, so the cost model's saving does not apply to it
            rows.append(bench.measure(f"{strategy} @{target}", lambda n, s=strategy: [generate(lm, p, n, heads, policy, s) for p in prompts],
                                      None if strategy == "full" else costs))
        rows.append(bench.measure(f"dssd @{target}", lambda n: [generate(lm, p, n, heads, policy, "dssd", max_draft=5) for p in prompts]))
    for layer in args.static_layers or heads.exit_layers[-1:]:
        # No confidence: every token leaves at this block through its trained head.
        rows.append(bench.measure(f"static block {layer}", lambda n, k=layer: [
            generate(lm, p, n, heads, strategy="static", exit_layer=k) for p in prompts]))
    for layer in heads.exit_layers:
        for draft in args.draft_lengths:
            rows.append(bench.measure(f"layerskip block {layer} draft {draft}", lambda n, k=layer, d=draft: [
                generate(lm, p, n, strategy="layerskip", exit_layer=k, draft_length=d) for p in prompts]))
    for layer in args.assistant_layers or heads.exit_layers:
        for draft in args.draft_lengths:
            rows.append(bench.measure(f"assistant_early_exit {layer} x{draft}", hf_generate(
                model, prompts, assistant_early_exit=layer + 1, num_assistant_tokens=draft)))
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
    parser.add_argument("--static-layers", type=int, nargs="*", default=None,
                        help="blocks for the static-exit baseline (default: the deepest exit block)")
    parser.add_argument("--assistant-layers", type=int, nargs="*", default=None,
                        help="exit blocks for transformers' assistant_early_exit (default: every exit block)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    rows = run_all(args)
    if args.out:
        # Process-wide and monotone: the peak over every method run so far, not of any one of them.
        summary = {"args": vars(args), "process_peak_rss_mib": process_peak_rss_mib(), "rows": rows}
        Path(args.out).write_text(json.dumps(summary, indent=2))
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    cols = ["method", "tokens_per_s", "speedup", "prefill_ms", "decode_tokens_per_s", "decode_ms_per_token",
            "decode_speedup", "theoretical_speedup", "acceptance", "mean_accepted", "exact_match"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        cells = [1000 * row["prefill_seconds"] if c == "prefill_ms" else row.get(c) for c in cols]
        print("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else ("" if c is None else str(c)) for c in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
