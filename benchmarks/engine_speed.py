"""Early-exit generation speed on a finished eebench run, against transformers' greedy decoding.

Same protocol and measurement code as results.json ``timing`` (eebench/timing/generation.py): every
method is timed in one seeded, randomly ordered schedule with transformers' ``generate(do_sample=False)``
(the reference: what a user would run instead) and the engine's own full-depth path, on the same
prompts; every speedup is a ratio of summed repeat times with a paired bootstrap 95% CI. Rows:

- ``A/A``: transformers against itself, timed as two workloads: the noise floor of this machine.
- ``engine full depth``: the engine's full path against transformers (its overhead, or gain).
- per target and strategy (full, lazy, copy, skip, dssd), static exit, LayerSkip-style self-speculation
  and transformers' assistant_early_exit: speedup over transformers greedy with CI, the theoretical
  speedup and depth bound of the decoded exits, token match with transformers greedy.

    python benchmarks/engine_speed.py --run-dir outputs/sweeps/demo_.../0 [--metric gate] [--dtype bfloat16]
    python benchmarks/engine_speed.py --estimate-ci --backbone bundled:smollm2-135m --prompts 4 --new-tokens 48 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from eebench.backbones import load_backbone
from eebench.config import MIN_TIMING_REPEATS, BackboneConfig, DataConfig
from eebench.data.corpus import prepare_splits
from eebench.engine.flops import CostModel
from eebench.engine.generate import GenerationOutput
from eebench.errors import require
from eebench.exits.policy import ExitPolicy
from eebench.timing.generation import (
    bound_for,
    compare_with_reference,
    decoded_exit_indices,
    flag_fields,
    generate_batches,
    noise_floor,
    prompt_batches,
    reference_matches,
    transformers_greedy,
)
from eebench.timing.provenance import timing_provenance
from eebench.timing.timer import load_average_1min, process_peak_rss_mib, torch_threads


def held_out_prompts(backbone, count: int, length: int) -> list[torch.Tensor]:
    splits = prepare_splits(
        DataConfig(seq_len=length, train_sequences=1, calibration_sequences=1, heldout_sequences=count), backbone.tokenizer
    )
    return [row[None].to(backbone.device) for row in splits["heldout"]]


class Bench:
    """One backbone, its prompts and the two references every row is timed with."""

    def __init__(self, backbone, prompts, new_tokens: int, warmup: int, repeats: int, seed: int = 0):
        self.backbone, self.new_tokens, self.warmup, self.repeats, self.seed = backbone, new_tokens, warmup, repeats, seed
        self.batches = prompt_batches(prompts, 1)
        self.transformers = transformers_greedy(backbone.model, backbone.tokenizer.pad_token_id, self.batches)
        self.full = lambda n: generate_batches(backbone.layered, self.batches, n)

    def engine(self, **kwargs):
        """A workload of the engine over the prompts, one at a time."""
        return lambda n: generate_batches(self.backbone.layered, self.batches, n, **kwargs)

    def reference_rows(self) -> list[dict]:
        """The A/A noise floor and the engine's full path against transformers, from one schedule."""
        fields = noise_floor(
            self.transformers, self.full, self.new_tokens, self.backbone.device, self.warmup, self.repeats, self.seed
        )
        rows = [
            {"method": "A/A transformers vs itself", **_renamed(fields, "aa_"), **fields},
            {"method": "engine full depth", **_renamed(fields, "engine_full_"), **fields},
        ]
        for row in rows:
            _print_scalars(row)
        return rows

    def measure(self, name: str, run, costs: CostModel | None = None, strategy: str | None = None) -> dict:
        """Time ``run(new_tokens)`` with transformers greedy and the engine's full path; unprefixed keys are the method's."""
        fields, outputs = compare_with_reference(
            self.transformers,
            self.full,
            run,
            self.new_tokens,
            self.backbone.device,
            self.warmup,
            self.repeats,
            self.seed,
            candidate_prefix="",
        )
        row = {"method": name, **fields, **reference_matches(outputs, ""), "load_average_1min": load_average_1min()}
        outs = outputs[""]
        stats = [o.speculation for o in outs if isinstance(o, GenerationOutput) and o.speculation is not None]
        if stats:
            drafted, accepted = sum(s.drafted for s in stats), sum(s.accepted for s in stats)
            row["acceptance"] = accepted / drafted if drafted else 0.0
            row["mean_accepted"] = accepted / max(1, sum(s.verifications for s in stats))
        if costs is not None and strategy is not None:
            exits = decoded_exit_indices(outs)
            if strategy != "full":  # "full" runs every block whatever exits: the cost model's saving does not apply
                row["theoretical_speedup"] = costs.theoretical_speedup(torch.tensor(exits))
            row["early_exit_share"] = sum(i < len(costs.exit_layers) for i in exits) / max(1, len(exits))
            row.update(flag_fields(fields, bound_for(strategy, costs, exits)))
        _print_scalars(row)
        return row


def _renamed(fields: dict, prefix: str) -> dict:
    """A schedule's ``<prefix>speedup*`` ratios as the row's own ``speedup*`` / ``decode_speedup*``."""
    out = {}
    for key, value in fields.items():
        if key.startswith(f"{prefix}speedup") or key.startswith(f"{prefix}decode_speedup"):
            out[key.removeprefix(prefix)] = value
    return out


def _print_scalars(row: dict) -> None:
    shown = {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in row.items()
        if not isinstance(v, (dict, list)) or k.endswith("_ci95")
    }
    print(json.dumps(shown), flush=True)


def no_exit_rows(bench: Bench, heads) -> list[dict]:
    """The price of asking: a policy whose heads never fire, so every token runs the full depth and
    pays only for the exit decisions (the gate's small MLP, or every head's vocabulary projection)."""
    rows = []
    for metric in ["gate", "entropy"] if len(heads.gates) else ["entropy"]:
        never = ExitPolicy(heads.exit_layers, metric, [-math.inf] * len(heads.exit_layers))
        costs = CostModel.from_layered(bench.backbone.layered, heads, gated=metric == "gate")
        rows.append(
            bench.measure(f"no exit, {metric} decides", bench.engine(heads=heads, policy=never, strategy="lazy"), costs, "lazy")
        )
    return rows


def method_rows(bench: Bench, model, args) -> list[dict]:
    heads = model.heads
    costs = CostModel.from_layered(bench.backbone.layered, heads, gated=args.metric == "gate")
    rows = no_exit_rows(bench, heads)
    for target in args.targets:
        model._policies.clear()
        policy = model.policy(target)
        for strategy in ("full", "lazy", "copy", "skip"):
            rows.append(
                bench.measure(
                    f"{strategy} @{target}", bench.engine(heads=heads, policy=policy, strategy=strategy), costs, strategy
                )
            )
        rows.append(
            bench.measure(
                f"dssd @{target}", bench.engine(heads=heads, policy=policy, strategy="dssd", max_draft=5), costs, "dssd"
            )
        )
    for layer in args.static_layers or heads.exit_layers[-1:]:
        # No confidence: every token leaves at this block through its trained head.
        rows.append(bench.measure(f"static block {layer}", bench.engine(heads=heads, strategy="static", exit_layer=layer)))
    for layer in heads.exit_layers:
        for draft in args.draft_lengths:
            rows.append(
                bench.measure(
                    f"layerskip block {layer} draft {draft}",
                    bench.engine(strategy="layerskip", exit_layer=layer, draft_length=draft),
                )
            )
    hf, pad = bench.backbone.model, bench.backbone.tokenizer.pad_token_id
    for layer in args.assistant_layers or heads.exit_layers:
        for draft in args.draft_lengths:
            rows.append(
                bench.measure(
                    f"assistant_early_exit {layer} x{draft}",
                    transformers_greedy(hf, pad, bench.batches, assistant_early_exit=layer + 1, num_assistant_tokens=draft),
                )
            )
    return rows


def estimate_ci(bench: Bench, target: float) -> dict:
    """CI half-widths of the A/A and engine-full ratios at these settings, and the repeats that the usual
    1/sqrt(repeats) shrinking of a CI says would bring each to ``target`` (a relative half-width)."""
    row = bench.reference_rows()[1]
    estimate = {"prompts": len(bench.batches), "new_tokens": bench.new_tokens, "repeats": bench.repeats, "target": target}
    for name in ("aa_speedup", "aa_decode_speedup", "engine_full_speedup", "engine_full_decode_speedup"):
        lo, hi = row[f"{name}_ci95"]
        half = (hi - lo) / 2 / row[name]
        estimate[f"{name}_ci95_half_width"] = half
        estimate[f"{name}_repeats_for_target"] = max(MIN_TIMING_REPEATS, math.ceil(bench.repeats * (half / target) ** 2))
    return estimate


def bench_for(backbone, args) -> Bench:
    """One schedule's settings from the command line, on held-out prompts of ``backbone``."""
    return Bench(
        backbone,
        held_out_prompts(backbone, args.prompts, args.prompt_tokens),
        args.new_tokens,
        args.warmup,
        args.repeats,
        args.seed,
    )


def run_all(args) -> tuple[list[dict], dict]:
    if args.estimate_ci:
        backbone = load_backbone(
            BackboneConfig(name="estimate", name_or_path=args.backbone, dtype=args.dtype or "auto"), args.device
        )
        bench = bench_for(backbone, args)
        estimate = estimate_ci(bench, args.ci_target)
        print(json.dumps(estimate), flush=True)
        return [], {"ci_estimate": estimate, "dtype": str(backbone.model.dtype).removeprefix("torch.")}
    from eebench.model import EarlyExitModel

    model = EarlyExitModel.from_run(args.run_dir, device=args.device, dtype=args.dtype)
    model.metric = args.metric
    backbone = model.backbone
    bench = bench_for(backbone, args)
    return bench.reference_rows() + method_rows(bench, model, args), {"dtype": str(backbone.model.dtype).removeprefix("torch.")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a finished eebench run (not needed with --estimate-ci)")
    parser.add_argument("--metric", default="entropy", choices=["entropy", "max_prob", "margin", "gate"])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="workload order per repeat and bootstrap resamples")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["auto", "float32", "bfloat16", "float16"],
        help="backbone precision (default: the run's own; auto = bf16 where the hardware runs it natively)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--draft-lengths", type=int, nargs="+", default=[3, 6], help="LayerSkip / assistant draft lengths")
    parser.add_argument(
        "--static-layers",
        type=int,
        nargs="*",
        default=None,
        help="blocks for the static-exit baseline (default: the deepest exit block)",
    )
    parser.add_argument(
        "--assistant-layers",
        type=int,
        nargs="*",
        default=None,
        help="exit blocks for transformers' assistant_early_exit (default: every exit block)",
    )
    parser.add_argument(
        "--estimate-ci",
        action="store_true",
        help="only time the A/A and engine-full schedule; print CI half-widths and the repeats for --ci-target",
    )
    parser.add_argument("--backbone", default="bundled:smollm2-135m", help="with --estimate-ci: the backbone to time")
    parser.add_argument("--ci-target", type=float, default=0.03, help="relative 95%% CI half-width to aim for")
    parser.add_argument("--out", default=None, help="write the rows and provenance as JSON here")
    args = parser.parse_args(argv)
    require(args.estimate_ci or bool(args.run_dir), "--run-dir is required (or --estimate-ci with --backbone)")
    require(
        args.repeats >= MIN_TIMING_REPEATS,
        f"--repeats={args.repeats} is too few for a bootstrap CI; allowed: >= {MIN_TIMING_REPEATS}",
    )
    require(args.threads is None or args.threads > 0, f"--threads={args.threads} must be a positive integer")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with torch_threads(args.threads):
        rows, extra = run_all(args)
        provenance = timing_provenance(args.device, args.seed)
    if args.out:
        # Process-wide and monotone: the peak over every method run so far, not of any one of them.
        summary = {
            "args": vars(args),
            "provenance": provenance,
            **extra,
            "process_peak_rss_mib": process_peak_rss_mib(),
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(summary, indent=2))
    if rows:
        print_table(rows)
    return 0


def _cell(row: dict, column: str):
    if column == "prefill_ms":
        return 1000 * row["prefill_seconds"] if "prefill_seconds" in row else None
    if column.endswith("_ci95"):
        return "[{:.3f}, {:.3f}]".format(*row[column]) if column in row else None
    return row.get(column)


def print_table(rows: list[dict]) -> None:
    cols = [
        "method",
        "tokens_per_s",
        "speedup",
        "speedup_ci95",
        "decode_speedup",
        "decode_speedup_ci95",
        "engine_full_speedup",
        "prefill_ms",
        "decode_ms_per_token",
        "theoretical_speedup",
        "depth_bound",
        "token_match_with_reference",
        "acceptance",
        "measurement_error",
    ]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        cells = [_cell(row, c) for c in cols]
        print("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else ("" if c is None else str(c)) for c in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
