"""Early-exit generation speed on a finished eebench run, against transformers' greedy decoding.

Same protocol and measurement code as results.json ``timing`` (eebench/timing/generation.py): every
method is timed in one seeded, randomly ordered schedule with transformers' ``generate(do_sample=False)``
(the reference: what a user would run instead) and the engine's own full-depth path, on the same
prompts; every speedup is a ratio of summed repeat times with a paired bootstrap 95% CI. Rows:

- ``A/A``: transformers against itself, timed as two workloads: the noise floor of this machine.
- ``engine full depth``: the engine's full path against transformers (its overhead, or gain).
- per target and strategy (full, lazy, copy, skip, dssd), static exit, LayerSkip-style self-speculation
  and transformers' assistant_early_exit (eebench/timing/baselines.py): speedup over transformers greedy
  with CI, the theoretical speedup and depth bound of the decoded exits, the theoretical speedup on the
  evaluation tasks' own tokens (from the sweep's results.json at that target), token match with
  transformers greedy.

All rows share one schedule: per repeat every workload runs once, in a seeded random order, so each
row's ratio pairs the same transformers runs and the rows compare with each other too.

    python benchmarks/engine_speed.py --run-dir outputs/sweeps/demo_.../0 [--metric gate] [--dtype bfloat16]
    python benchmarks/engine_speed.py --estimate-ci --backbone bundled:smollm2-135m --prompts 4 --new-tokens 48 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig, DataConfig
from eebench.data.corpus import prepare_splits
from eebench.engine.flops import CostModel
from eebench.engine.strategies import baseline_strategies, policy_strategies
from eebench.errors import EEBenchError, require
from eebench.exits.policy import ExitPolicy
from eebench.timing.baselines import baseline_workload
from eebench.timing.breakdown import time_breakdowns
from eebench.timing.config import MIN_TIMING_REPEATS
from eebench.timing.generation import compare_many, flat_ratios
from eebench.timing.provenance import timing_provenance
from eebench.timing.statistics import bound_for, depth_bound_flags
from eebench.timing.timer import load_average_1min, process_peak_rss_mib, torch_threads
from eebench.timing.workloads import (
    Workload,
    decoded_exit_indices,
    generate_batches,
    generated_rows,
    match_with_reference,
    prompt_batches,
    speculation_fields,
    transformers_greedy,
)
from eebench.tracking.results import read_result
from eebench.tracking.schema import unbuild


def held_out_prompts(backbone, count: int, length: int) -> list[torch.Tensor]:
    splits = prepare_splits(
        DataConfig(seq_len=length, train_sequences=1, calibration_sequences=1, heldout_sequences=count), backbone.tokenizer
    )
    return [row[None].to(backbone.device) for row in splits["heldout"]]


@dataclass
class Method:
    """One row: a workload and what its exit pattern can be checked against."""

    run: Workload
    costs: CostModel | None = None  # for the theoretical speedup and depth bound of its decoded exits
    strategy: str | None = None
    extra: dict = field(default_factory=dict)  # fixed facts of the row (target, task-token theoretical speedup)


AA = "A/A transformers vs itself"


class Bench:
    """One backbone, its prompts and the two references every method is timed against, in one schedule."""

    def __init__(self, backbone, prompts, new_tokens: int, warmup: int, repeats: int, seed: int = 0):
        self.backbone, self.new_tokens, self.warmup, self.repeats, self.seed = backbone, new_tokens, warmup, repeats, seed
        self.batches = prompt_batches(prompts, 1)
        self.transformers = transformers_greedy(backbone.model, backbone.tokenizer.pad_token_id, self.batches)
        self.full = lambda n: generate_batches(backbone.layered, self.batches, n)

    def engine(self, **kwargs) -> Workload:
        """A workload of the engine over the prompts, one at a time."""
        return lambda n: generate_batches(self.backbone.layered, self.batches, n, **kwargs)

    def time_all(self, methods: dict[str, Method]) -> list[dict]:
        """The A/A row, the engine's full path and every method, all in one seeded random schedule: each row's
        ratios pair repeats that ran side by side with the same transformers and full-depth runs."""
        candidates = {AA: self.transformers, **{name: m.run for name, m in methods.items()}}
        comparison = compare_many(
            self.transformers, self.full, candidates, self.new_tokens, self.backbone.device, self.warmup, self.repeats, self.seed
        )
        shared = comparison.shared()
        engine_own = flat_ratios({"speedup": comparison.engine_full.whole, "decode_speedup": comparison.engine_full.decode})
        engine_row = {"method": "engine full depth", **engine_own, **shared, **_matches(comparison, "full")}
        rows = [{"method": AA, **comparison.candidates[AA].flat()}, engine_row]
        rows += [self._row(name, method, comparison) for name, method in methods.items()]
        load = load_average_1min()
        for row in rows:
            row["load_average_1min"] = load
            _print_scalars(row)
        return rows

    def breakdowns(self, methods: dict[str, Method], heads, repeats: int, references: bool = True) -> list:
        """Where each workload's decode time goes (eebench/timing/breakdown.py), profiled after the schedule."""
        workloads = {"transformers": self.transformers, "full": self.full} if references else {}
        workloads.update({name: method.run for name, method in methods.items()})
        found = time_breakdowns(workloads, self.backbone.layered, heads, self.backbone.device, self.new_tokens, repeats)
        for breakdown in found:
            parts = ", ".join(f"{p.part} {p.ms_per_token:.2f} (wr {p.weight_read_ms_per_token:.2f})" for p in breakdown.parts)
            print(f"breakdown {breakdown.workload}: {breakdown.ms_per_token:.2f} ms/token: {parts}", flush=True)
        return found

    def _row(self, name: str, method: Method, comparison) -> dict:
        outs = comparison.outputs[name]
        row = {
            "method": name,
            **method.extra,
            **comparison.candidates[name].flat(),
            "engine_full_speedup_ci95": comparison.engine_full.whole.ci95,
            **_matches(comparison, name),
            **speculation_fields(outs),
        }
        if method.costs is not None and method.strategy is not None:
            exits = decoded_exit_indices(outs)
            if method.strategy != "full":  # "full" runs every block whatever exits: the cost model's saving does not apply
                row["theoretical_speedup"] = method.costs.theoretical_speedup(torch.tensor(exits))
            row["early_exit_share"] = sum(i < len(method.costs.exit_layers) for i in exits) / max(1, len(exits))
            timed, bound = comparison.candidates[name], bound_for(method.strategy, method.costs, exits)
            flags = depth_bound_flags(timed.vs_transformers.whole, timed.vs_engine_full, comparison.engine_full.whole, bound)
            row.update(depth_bound=bound, flags=flags, measurement_error=bool(flags))
        return row


def _matches(comparison, name: str) -> dict:
    exact, same = match_with_reference(
        generated_rows(comparison.outputs["transformers"]), generated_rows(comparison.outputs[name])
    )
    return {"sequence_exact_match_with_reference": exact, "token_match_with_reference": same}


def _print_scalars(row: dict) -> None:
    shown = {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in row.items()
        if not isinstance(v, (dict, list)) or k.endswith("_ci95")
    }
    print(json.dumps(shown), flush=True)


def no_exit_methods(bench: Bench, heads, metrics: list[str]) -> dict[str, Method]:
    """The price of asking: a policy whose heads never fire, so every token runs the full depth and
    pays only for the exit decisions (the gate's small MLP, or every head's vocabulary projection)."""
    methods = {}
    for metric in metrics:
        never = ExitPolicy(heads.exit_layers, metric, [-math.inf] * len(heads.exit_layers))
        costs = CostModel.from_layered(bench.backbone.layered, heads, gated=metric == "gate")
        run = bench.engine(heads=heads, policy=never, strategy="lazy")
        methods[f"no exit, {metric} decides"] = Method(run, costs, "lazy")
    return methods


def task_token_speedups(run_dir: Path, metric: str) -> dict[float, float]:
    """Per threshold target: the theoretical speedup on the evaluation tasks' own tokens
    (results.json ``exit_tasks``), from the points of the sweep ``run_dir`` belongs to with this metric."""
    found = {}
    for results in sorted(run_dir.parent.glob("*/results.json")):
        try:
            result = read_result(results.parent)
        except EEBenchError:
            continue  # another schema or an unfinished point: not this sweep's number
        if result.confidence == metric and result.exit_tasks is not None:
            found[float(result.threshold)] = result.exit_tasks.theoretical_speedup
    return found


def policy_methods(bench: Bench, model, args, run_dir: str | None = None, label: str = "") -> dict[str, Method]:
    """Every target x strategy of one run's heads; ``label`` prefixes the row names (several runs in one schedule)."""
    heads = model.heads
    costs = CostModel.from_layered(bench.backbone.layered, heads, gated=args.metric == "gate")
    on_tasks = task_token_speedups(Path(run_dir or args.run_dir), args.metric)
    methods = {}
    for target in args.targets:
        model._policies.clear()
        policy = model.policy(target)
        extra = {"target": target, "task_token_theoretical_speedup": on_tasks.get(float(target))}
        for strategy in args.strategies:
            for rule in drafting_rules(args) if strategy == "dssd" else [{}]:
                run = bench.engine(heads=heads, policy=policy, strategy=strategy, **rule)
                methods[method_name(label, strategy, target, rule, args)] = Method(run, costs, strategy, {**extra, **rule})
    return methods


def drafting_rules(args) -> list[dict]:
    """Every draft cap x set of drafting heads asked for: one dssd row each."""
    return [{"max_draft": cap, "draft_exits": exits} for cap in args.max_draft for exits in args.draft_exits]


def method_name(label: str, strategy: str, target: float, rule: dict, args) -> str:
    """``dssd @0.8``; where the schedule compares drafting rules, the row's own, e.g. ``dssd @0.8 draft<=2 from 6,12``."""
    suffix = ""
    if rule and len(args.max_draft) > 1:
        suffix += f" draft<={rule['max_draft']}"
    if rule and len(args.draft_exits) > 1:
        exits = rule["draft_exits"]
        suffix += " from " + ("every head" if exits is None else ",".join(map(str, exits)))
    return f"{label}{strategy} @{target}{suffix}"


def draft_exit_set(text: str) -> list[int] | None:
    """``all`` (every head drafts) or comma-separated blocks, e.g. ``6,12``."""
    if text == "all":
        return None
    try:
        return [int(block) for block in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: all, or comma-separated blocks (6,12)") from None


def run_label(model) -> str:
    """The heads' type and readout, e.g. ``linear+shortlist:k=4096``, to tell several runs' rows apart."""
    heads = model.heads
    options = ",".join(f"{k}={v}" for k, v in sorted(heads.readout_options.items()))
    return f"{heads.kind}+{heads.readout}" + (f":{options}" if options else "")


def distinct_labels(labels: list[str], budgets: list[int | None]) -> list[str]:
    """Each run's row prefix: its heads' type and readout, plus the training budget where two runs share those, so
    one run's rows never overwrite another's; two runs that still read the same are one run given twice."""
    shared = {label for label in labels if labels.count(label) > 1}
    named = [f"{label}@{budget}tok" if label in shared else label for label, budget in zip(labels, budgets)]
    twice = sorted({label for label in named if named.count(label) > 1})
    require(not twice, f"runs {twice} are given twice (same heads, readout and budget); allowed: each run once")
    return named


def run_budget(run_dir: str) -> int | None:
    """The heads' training budget (head.training.max_tokens) of a finished run."""
    phase = read_result(Path(run_dir)).heads_training
    return phase.heads.max_tokens if phase and phase.heads else None


def baseline_methods(bench: Bench, heads, args) -> dict[str, Method]:
    """Every requested baseline at every requested block and draft length (eebench/timing/baselines.py)."""
    methods = {}
    layers = args.baseline_layers or heads.exit_layers[-1:]
    for name in args.baselines:
        for layer in layers:
            drafts = [None] if name == "static" else args.draft_lengths
            for draft in drafts:
                run = baseline_workload(name, bench.backbone, heads, bench.batches, layer, draft or 1)
                label = f"{name} block {layer}" + (f" draft {draft}" if draft else "")
                # Static evaluates only its own head: the gated cost model (only the exiting head projects).
                costs = CostModel.from_layered(bench.backbone.layered, heads, gated=True) if name == "static" else None
                methods[label] = Method(run, costs, name if costs else None, {"exit_layer": layer, "draft_length": draft})
    return methods


def estimate_ci(bench: Bench, target: float) -> dict:
    """CI half-widths of the A/A and engine-full ratios at these settings, and the repeats that the usual
    1/sqrt(repeats) shrinking of a CI says would bring each to ``target`` (a relative half-width)."""
    aa, engine = bench.time_all({})
    estimate = {"prompts": len(bench.batches), "new_tokens": bench.new_tokens, "repeats": bench.repeats, "target": target}
    for name, row, key in (
        ("aa_speedup", aa, "speedup"),
        ("aa_decode_speedup", aa, "decode_speedup"),
        ("engine_full_speedup", engine, "speedup"),
        ("engine_full_decode_speedup", engine, "decode_speedup"),
    ):
        lo, hi = row[f"{key}_ci95"]
        half = (hi - lo) / 2 / row[key]
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
        breakdown = bench.breakdowns({}, None, args.breakdown_repeats)
        dtype = str(backbone.model.dtype).removeprefix("torch.")
        return [], {"ci_estimate": estimate, "dtype": dtype, "breakdown": unbuild(breakdown)}
    from eebench.model import EarlyExitModel

    model = EarlyExitModel.from_run(args.run_dir, device=args.device, dtype=args.dtype)
    model.metric = args.metric
    backbone = model.backbone
    bench = bench_for(backbone, args)
    metrics = ["gate", "entropy"] if len(model.heads.gates) else ["entropy"]
    others = []
    for run_dir in args.more_run_dirs:
        other = EarlyExitModel.from_run(run_dir, device=args.device, dtype=args.dtype)
        other.metric, other.backbone = args.metric, backbone  # same weights: one backbone serves every run's heads
        others.append((run_dir, other))
    run_dirs = [args.run_dir] + [run_dir for run_dir, _ in others]
    labels = distinct_labels([run_label(m) for m in [model] + [other for _, other in others]], [run_budget(d) for d in run_dirs])
    methods = {
        **no_exit_methods(bench, model.heads, metrics if args.no_exit_rows else []),
        **policy_methods(bench, model, args, label=f"{labels[0]} " if others else ""),
        **baseline_methods(bench, model.heads, args),
    }
    per_heads = [(model.heads, dict(methods))]
    for (run_dir, other), label in zip(others, labels[1:]):
        more = policy_methods(bench, other, args, run_dir, label=f"{label} ")
        per_heads.append((other.heads, more))
        methods.update(more)
    rows = bench.time_all(methods)
    # Each run's rows are profiled with hooks on its own heads; the references once, with the first run's.
    breakdown = [
        b
        for i, (heads, rows_of_run) in enumerate(per_heads)
        for b in bench.breakdowns(rows_of_run, heads, args.breakdown_repeats, references=i == 0)
    ]
    return rows, {"dtype": str(backbone.model.dtype).removeprefix("torch."), "breakdown": unbuild(breakdown)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a finished eebench run (not needed with --estimate-ci)")
    parser.add_argument(
        "--more-run-dirs", nargs="*", default=[], help="more finished runs of the same backbone whose heads join the schedule"
    )
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
    parser.add_argument(
        "--strategies", nargs="+", default=list(policy_strategies()), choices=list(policy_strategies()), help="per target"
    )
    parser.add_argument(
        "--max-draft", type=int, nargs="+", default=[5], help="dssd: most tokens drafted per verification (one row each)"
    )
    parser.add_argument(
        "--draft-exits",
        type=draft_exit_set,
        nargs="+",
        default=[None],
        help="dssd: the heads that may draft, 'all' or blocks like 6,12 (one row per set and draft cap)",
    )
    parser.add_argument("--baselines", nargs="*", default=list(baseline_strategies()), choices=list(baseline_strategies()))
    parser.add_argument(
        "--baseline-layers", type=int, nargs="*", default=None, help="blocks the baselines exit at (default: the deepest head's)"
    )
    parser.add_argument("--draft-lengths", type=int, nargs="+", default=[4], help="LayerSkip / assistant draft lengths")
    parser.add_argument(
        "--no-exit-rows", action=argparse.BooleanOptionalAction, default=True, help="rows of a policy that never exits"
    )
    parser.add_argument(
        "--estimate-ci",
        action="store_true",
        help="only time the A/A and engine-full schedule; print CI half-widths and the repeats for --ci-target",
    )
    parser.add_argument("--backbone", default="bundled:smollm2-135m", help="with --estimate-ci: the backbone to time")
    parser.add_argument("--ci-target", type=float, default=0.03, help="relative 95%% CI half-width to aim for")
    parser.add_argument(
        "--breakdown-repeats", type=int, default=2, help="profiled runs per workload for the time breakdown (0: none)"
    )
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
        "task_token_theoretical_speedup",
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
