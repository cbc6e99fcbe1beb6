"""Does a calibration method's target hold on held-out documents? Recalibrates finished runs' cached traces.

For each run (its heads' calibration and held-out traces from the eebench cache), each confidence metric, each target
and each calibration variant, it fits the thresholds on the calibration trace exactly as a point would and checks
them on the held-out trace with the point's own check (``heldout_check``): per head that lets held-out tokens exit,
whether those tokens agree with the full model at least at the target (*met*), and whether they fall below it by more
than a one-sided 95% margin with the held-out sequences as the units (*significantly below*). Also the share of
held-out tokens that exit before the final layer, the price of a stricter method. Nothing is trained or timed, so one
run costs seconds; no point of a sweep has to be rerun to compare methods.

``--swap`` fits on the held-out documents and checks on the calibration ones: the two are disjoint draws of the same
text, so the swapped run is a second replicate, one that a variant chosen on the first has not seen.

A variant is ``max_coverage`` or ``risk_controlled:<bound>:<delta>``, e.g. ``risk_controlled:clustered:0.05``.

    PYTHONPATH=$PWD EEBENCH_CACHE=<cache> python benchmarks/calibration_transfer.py --run-dirs <run> [<run> ...] \\
        --targets 0.7 0.8 0.9 0.95 --metrics gate entropy --out benchmarks/results/<date>_calibration_transfer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from eebench.exits.calibration import calibrate
from eebench.exits.calibrators import calibration_config
from eebench.exits.policy import ExitPolicy
from eebench.traces.simulate import exit_indices, heldout_check
from eebench.traces.trace import Trace
from eebench.tracking.contract import read_result
from eebench.tracking.results import collect_provenance

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = (
    "max_coverage",
    "risk_controlled:binomial:0.1",
    "risk_controlled:binomial:0.05",
    "risk_controlled:clustered:0.1",
    "risk_controlled:clustered:0.05",
)


def variant_config(name: str):
    """``max_coverage`` or ``risk_controlled:<bound>:<delta>`` as the calibration config a point would compose."""
    method, *options = name.split(":")
    if method != "risk_controlled":
        if options:
            sys.exit(
                f"variant {name!r}: only risk_controlled takes options; allowed: <method> or risk_controlled:<bound>:<delta>"
            )
        return calibration_config(method)
    if len(options) != 2:
        sys.exit(f"variant {name!r} needs a bound and a delta; allowed: risk_controlled:<bound>:<delta>")
    bound, delta = options
    return calibration_config({"method": method, "bound": bound, "delta": float(delta)})


def heldout_trace_dir(calibration_dir: Path) -> Path:
    """The held-out trace of the same heads: the cache entry beside the calibration one with the heads' digest."""
    spec = json.loads((calibration_dir / "spec.json").read_text())
    for entry in sorted(calibration_dir.parent.iterdir()):
        other = entry / "spec.json"
        if entry.is_dir() and other.exists():
            candidate = json.loads(other.read_text())
            if candidate.get("heads") == spec["heads"] and candidate.get("split") == "heldout":
                return entry
    sys.exit(f"no held-out trace beside {str(calibration_dir)!r} for the same heads; run the point once to build it")


def run_traces(run_dir: Path, swap: bool = False) -> dict:
    result = read_result(run_dir)
    calibration_dir = Path(result.artifacts.calibration_trace_dir)
    # runs made before results.json recorded the calibration sequence length: the point's composed config
    sequence_len = (
        result.artifacts.calibration_sequence_len or json.loads((run_dir / "config.json").read_text())["data"]["seq_len"]
    )
    run = {
        "name": run_dir.name,
        "family": f"{result.head}+{result.readout}",
        "exit_layers": list(result.exit_layers),
        "sequence_len": int(sequence_len),
    }
    fit_on, check_on = Trace.load(calibration_dir), Trace.load(heldout_trace_dir(calibration_dir))
    if swap:
        fit_on, check_on = check_on, fit_on
    return {**run, "calibration": fit_on, "heldout": check_on}


def check_point(run: dict, metric: str, target: float, variant: str) -> dict:
    cfg = variant_config(variant)
    calibration, heldout = run["calibration"], run["heldout"]
    thresholds = calibrate(cfg, calibration.uncertainty(metric), calibration.agree, target, run["sequence_len"])
    policy = ExitPolicy(run["exit_layers"], metric, thresholds)
    check = heldout_check(heldout, policy, target, run["sequence_len"])
    heads = [head for head in check["heads"] if head["tokens"]]
    return {
        "run": run["name"],
        "family": run["family"],
        "metric": metric,
        "target": target,
        "variant": variant,
        "heads_checked": len(heads),
        "heads_met": sum(head["target_met"] for head in heads),
        "heads_significantly_below": sum(head["significant_miss"] for head in heads),
        "heldout_exit_share": float((exit_indices(heldout, policy) < len(policy.exit_layers)).double().mean()),
        "heads": check["heads"],
    }


def summarise(points: list[dict], variants: list[str]) -> list[dict]:
    rows = []
    for variant in variants:
        mine = [p for p in points if p["variant"] == variant]
        checked = sum(p["heads_checked"] for p in mine)
        met = sum(p["heads_met"] for p in mine)
        rows.append(
            {
                "variant": variant,
                "heads_x_targets_checked": checked,
                "met": met,
                "met_share": met / checked if checked else None,
                "significantly_below": sum(p["heads_significantly_below"] for p in mine),
                "mean_heldout_exit_share": sum(p["heldout_exit_share"] for p in mine) / len(mine) if mine else None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dirs", nargs="+", required=True, type=Path)
    parser.add_argument("--targets", nargs="+", type=float, default=[0.7, 0.8, 0.9, 0.95])
    parser.add_argument("--metrics", nargs="+", default=["gate", "entropy"])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--swap", action="store_true", help="fit on the held-out trace, check on the calibration one")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    for variant in args.variants:
        variant_config(variant)  # a bad variant fails before any trace is read
    runs = [run_traces(run_dir, args.swap) for run_dir in args.run_dirs]
    for run in runs:
        missing = [m for m in args.metrics if m not in run["calibration"].metrics]
        if missing:
            sys.exit(f"run {run['name']!r} has no trace of metric(s) {missing}; allowed: {sorted(run['calibration'].metrics)}")
    points = [
        check_point(run, metric, target, variant)
        for run in runs
        for metric in args.metrics
        for target in args.targets
        for variant in args.variants
    ]
    summary = summarise(points, args.variants)
    out = args.out or RESULTS / f"{datetime.now(timezone.utc):%Y-%m-%d}_calibration_transfer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "calibration_transfer",
        "args": {k: [str(v) for v in value] if isinstance(value, list) else str(value) for k, value in vars(args).items()},
        "runs": [{k: run[k] for k in ("name", "family", "exit_layers", "sequence_len")} for run in runs],
        "summary": summary,
        "points": points,
        "provenance": collect_provenance("cpu", 0),
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"{'variant':34} {'checked':>8} {'met':>5} {'share':>6} {'sig.below':>9} {'exit share':>10}")
    for row in summary:
        share = f"{row['met_share']:.2f}" if row["met_share"] is not None else "-"
        print(
            f"{row['variant']:34} {row['heads_x_targets_checked']:>8} {row['met']:>5} {share:>6} "
            f"{row['significantly_below']:>9} {row['mean_heldout_exit_share']:>10.3f}"
        )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
