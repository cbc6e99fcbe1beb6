"""What a sweep over threshold targets costs once heads, traces, scores and baseline are cached.

Warms the cache with one point, then times, per launcher, a 1-target multirun and an N-target multirun of the same
point (fresh sweep directories, warm artifact cache) and reports their wall-time ratio; the goal is at most ~1.3x
for 20 targets. Writes a JSON with provenance to benchmarks/results/.

    PYTHONPATH=$PWD python benchmarks/sweep_overhead.py --tiny --targets 4          # seconds, to check it works
    PYTHONPATH=$PWD python benchmarks/sweep_overhead.py --targets 20                # experiment=demo, timing=none
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from eebench.tracking.results import collect_provenance

ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS = {"basic": [], "joblib": ["hydra/launcher=local_parallel"]}


def point_overrides(args, work: Path) -> list[str]:
    if not args.tiny:
        return ["experiment=demo", "confidence=entropy", "timing=none", "logger=none"]
    from soak_sweep import tiny_point_overrides, write_inputs  # benchmarks/ is on sys.path when this runs as a script

    return [*tiny_point_overrides(*write_inputs(work)), "timing=none"]


def targets(count: int) -> list[str]:
    return [f"{t:.3f}" for t in np.linspace(0.60, 0.98, count)] if count > 1 else ["0.900"]


def timed_sweep(common: list[str], launcher: str, thresholds: list[str], sweep_dir: Path, env: dict) -> float:
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        *LAUNCHERS[launcher],
        *common,
        f"threshold={','.join(thresholds)}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({launcher}, {len(thresholds)} targets):\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--launchers", nargs="+", default=["basic", "joblib"], choices=sorted(LAUNCHERS))
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and a one-question task (checks the script)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eebench-sweep-overhead-"))
    env = {**os.environ, "WANDB_MODE": "offline"}
    if args.tiny:
        env["EEBENCH_CACHE"] = str(work / "cache")
    common = point_overrides(args, work)
    warm = timed_sweep(common, "basic", targets(1), work / "warm", env)  # builds (or finds) heads, traces, scores
    rows = []
    for launcher in args.launchers:
        one = timed_sweep(common, launcher, targets(1), work / f"{launcher}_1", env)
        many = timed_sweep(common, launcher, targets(args.targets), work / f"{launcher}_{args.targets}", env)
        rows.append(
            {
                "launcher": launcher,
                "one_target_s": one,
                "targets": args.targets,
                "many_targets_s": many,
                "ratio": many / one,
                "seconds_per_extra_target": (many - one) / max(1, args.targets - 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "benchmark": "sweep_overhead",
        "args": vars(args),
        "overrides": common,
        "warmup_s": warm,
        "rows": rows,
        "goal": "ratio <= 1.3 for 20 targets",
        "provenance": collect_provenance("cpu", 0),
    }
    # The commit in the name: records of the same day before and after a change sit side by side.
    commit = result["provenance"]["git_sha"][:7] if result["provenance"].get("git_sha") else "nogit"
    name = f"{datetime.now(timezone.utc):%Y-%m-%d}_sweep_overhead{'_tiny' if args.tiny else ''}_{commit}.json"
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
