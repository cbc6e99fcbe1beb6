"""Soak test of crash-safe resumable sweeps (issue: reliability).

A 20-point sweep on a tiny random model runs with the joblib launcher (2 parallel workers) while two
workers are SIGKILLed mid-point (EEBENCH_KILL_AT; by default while writing results.json, after the first
five points have finished). Each kill aborts the multirun, as a real crash would;
the same command is launched again into the same sweep directory until it completes. Checks: 20
results, no point finished twice, each trained-head artifact built once.

    python benchmarks/soak_sweep.py [--stage timing] [--kills 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eebench.faults import KILL_POINTS

ROOT = Path(__file__).resolve().parents[1]


def tiny_point_overrides(model: Path, prose: Path, tasks: Path) -> list[str]:
    """A smoke point on the tiny model, prose and one-question task of ``write_inputs``, without W&B."""
    return [
        "experiment=smoke",
        f"backbone.name_or_path={model}",
        "backbone.name=tiny-llama",
        f"data.source={prose}",
        "eval.suite=lm_eval",
        f"eval.include_path={tasks}",
        "eval.tasks=[soak_mc]",
        "logger=none",
    ]


def write_inputs(work: Path) -> tuple[Path, Path, Path]:
    from eebench.backbones.tiny import make_tiny_model

    model = make_tiny_model("llama", work / "model")
    rng = random.Random(0)
    words = "early exit heads leave the network when a confident layer predicts the next token".split()
    prose = work / "prose.txt"
    prose.write_text("\n\n".join(" ".join(rng.choice(words) for _ in range(60)) for _ in range(300)))
    tasks = work / "tasks"
    tasks.mkdir()
    rows = [{"q": f"Is {w} a word?", "choices": ["yes", "no"], "label": i % 2} for i, w in enumerate(words)]
    (tasks / "mc.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tasks / "soak_mc.yaml").write_text(
        f"task: soak_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'mc.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n"
    )
    return model, prose, tasks


def finished(sweep: Path) -> dict[str, float]:
    return {str(p.parent.name): p.stat().st_mtime for p in sweep.glob("*/results.json")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="write", choices=KILL_POINTS)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--kill-after", type=int, default=5, help="points that pass the stage before the first kill")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eebench-soak-"))
    model, prose, tasks = write_inputs(work)
    sweep = work / "sweep"
    env = {
        **os.environ,
        "EEBENCH_CACHE": str(work / "cache"),
        "WANDB_MODE": "offline",
        "EEBENCH_KILL_AT": args.stage,
        "EEBENCH_KILL_BUDGET": str(args.kills),
        "EEBENCH_KILL_COUNTER": str(work / "kills"),
        "EEBENCH_KILL_AFTER": str(args.kill_after),
    }
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "hydra/launcher=local_parallel",
        *tiny_point_overrides(model, prose, tasks),
        "head=linear,lens",
        "confidence=entropy,max_prob",
        "threshold=0.6,0.7,0.8,0.9,0.95",
        f"hydra.sweep.dir={sweep}",
    ]
    launches, start = [], time.time()
    for attempt in range(1, args.kills + 3):
        before = finished(sweep)
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        after = finished(sweep)
        redone = [job for job, mtime in before.items() if after.get(job) != mtime]
        launches.append(
            {
                "launch": attempt,
                "exit_code": proc.returncode,
                "results_before": len(before),
                "results_after": len(after),
                "finished_points_redone": redone,
            }
        )
        print(json.dumps(launches[-1]), flush=True)
        if proc.returncode == 0 and len(after) == 20:
            break
    heads = [p for p in (work / "cache" / "heads").iterdir() if (p / "COMPLETE").exists()]
    kills = json.loads((work / "kills").read_text())["kills"] if (work / "kills").exists() else 0
    summary = {
        "points": 20,
        "results": len(finished(sweep)),
        "kills_injected": kills,
        "launches": len(launches),
        "finished_points_redone": sum(len(launch["finished_points_redone"]) for launch in launches),
        "head_artifacts": len(heads),
        "expected_head_artifacts": 2,
        "wall_s": round(time.time() - start, 1),
        "report": (sweep / "report.md").exists(),
        "sweep_dir": str(sweep),
    }
    print(json.dumps(summary, indent=2))
    ok = (
        summary["results"] == 20
        and summary["finished_points_redone"] == 0
        and len(heads) == 2
        and kills == args.kills
        and summary["report"]
    )
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
