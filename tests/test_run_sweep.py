"""End to end through the real Hydra launcher, lm-eval evaluator and wandb client (offline), on a tiny model."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import point_results
from conftest import run_eebench as _run

from eebench.tracking.contract import read_result


def test_multirun_writes_results_report_and_wandb(tmp_path, sweep_env):
    env, common = sweep_env
    sweep = tmp_path / "sweep"
    proc = _run(["-m", *common, "threshold=0.8,0.95", f"hydra.sweep.dir={sweep}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = point_results(sweep, "threshold")
    assert [r["threshold"] for r in results] == [0.8, 0.95]
    assert all((Path(r["run_dir"]) / "config.yaml").exists() for r in results)
    for r in results:
        assert r["status"] == "complete" and r["num_layers"] == 6 and len(r["thresholds"]) == len(r["exit_layers"])
        assert set(r["exit"]["fraction"]) == {*map(str, r["exit_layers"]), "final"}
        assert abs(sum(r["exit"]["fraction"].values()) - 1) < 1e-9
        assert "acc" in r["tasks"]["tiny_mc"] and "acc" in r["baseline_tasks"]["tiny_mc"]
        assert r["timing"]["full_tokens_per_s"] > 0 and r["provenance"]["seed"] == 0
        # Exit figures on the task tokens, the decoders behind the numbers, calibration checked on held-out tokens.
        assert r["exit_tasks"]["tokens"] > 0 and set(r["exit_tasks"]["fraction"]) == set(r["exit"]["fraction"])
        assert r["eval_decoders"]["generate_until"] == "engine:lazy" and r["eval_decoders"]["accuracy"] == "own_decoding"
        check = r["calibration"]["heldout"]
        assert [h["layer"] for h in check["heads"]] == r["exit_layers"]
        assert check["exited_tokens"] == sum(h["tokens"] for h in check["heads"]) <= check["tokens"]
    # Stricter target -> calibrated heads agree more on held-out tokens and exit no more often.
    assert results[1]["exit"]["agreement"] >= results[0]["exit"]["agreement"]
    assert results[1]["exit"]["fraction"]["final"] >= results[0]["exit"]["fraction"]["final"]
    for name in ("summary.csv", "pareto.csv", "report.md", "pareto.png"):
        assert (sweep / name).exists(), name
    assert "tiny-gpt2" in (sweep / "report.md").read_text()
    assert list((sweep / "wandb").glob("offline-run-*")), "no offline W&B runs inside the sweep dir"


def test_full_model_baseline_is_computed_once_per_backbone(tmp_path, sweep_env):
    env, common = sweep_env
    sweep = tmp_path / "sweep"
    proc = _run(["-m", *common, "head=linear,lens", "logger=none", "timing=none", f"hydra.sweep.dir={sweep}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = point_results(sweep, "head")
    assert [r["head"] for r in results] == ["lens", "linear"]
    assert results[0]["artifacts"]["heads_dir"] != results[1]["artifacts"]["heads_dir"]
    # Different heads, one backbone: the second point reads the first point's baseline from the cache.
    assert results[0]["baseline_cache_key"] == results[1]["baseline_cache_key"]
    assert results[0]["baseline_tasks"] == results[1]["baseline_tasks"]
    baselines = [p for p in (tmp_path / "cache" / "baselines").iterdir() if p.is_dir()]
    assert [p.name for p in baselines] == [results[0]["baseline_cache_key"]]


def test_paired_accuracy_change_reaches_results_and_report(tmp_path, sweep_env):
    """Early exit and the full model answer the same 12 documents of tiny_mc: the change is paired per document."""
    env, common = sweep_env
    sweep = tmp_path / "sweep"
    proc = _run(["-m", *common, "threshold=0.5,0.9", "logger=none", "timing=none", f"hydra.sweep.dir={sweep}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    documents = len((tmp_path / "tasks" / "mc.jsonl").read_text().splitlines())
    summary = pd.read_csv(sweep / "summary.csv").set_index("threshold")
    for r in point_results(sweep, "threshold"):
        (change,) = r["paired_tasks"]
        n, up, down = change["n"], change["improved"], change["worsened"]
        assert (change["task"], change["metric"], n) == ("tiny_mc", "acc", documents) and up + down <= n
        # Per-document acc is 0 or 1: the differences are +1 (up times), -1 (down times) and 0.
        delta, se = change["delta"], change["stderr"]
        assert delta == pytest.approx((up - down) / n)
        assert delta == pytest.approx(r["tasks"]["tiny_mc"]["acc"] - r["baseline_tasks"]["tiny_mc"]["acc"])
        assert se == pytest.approx(math.sqrt((up + down - n * delta**2) / (n - 1) / n))
        # No document flipped: the rule-of-three interval ±3/n; else the normal one.
        half = 1.96 * se if up + down else min(1.0, -math.log(0.05) / n)
        assert change["ci95"] == pytest.approx([delta - half, delta + half])
        row = summary.loc[r["threshold"]]
        assert (row["acc_paired_examples"], row["acc_improved"], row["acc_worsened"]) == (n, up, down)
        assert row["acc_delta_method"] == "paired" and row["acc_delta_se"] == pytest.approx(change["stderr"] * 100)
    baseline = next((tmp_path / "cache" / "baselines").glob("*/baseline_samples.json"))
    assert len(json.loads(baseline.read_text())["tiny_mc"]["acc"]) == documents
    assert "Δ pts [95% CI] ↑↓" in (sweep / "report.md").read_text()


def test_bad_threshold_is_one_line_error(tmp_path, sweep_env):
    env, common = sweep_env
    proc = _run([*common, "threshold=1.5", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env)
    assert proc.returncode == 2
    assert "threshold=1.5" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "run" / "error.json").exists()


def test_bad_placement_is_one_line_error(tmp_path, sweep_env):
    env, common = sweep_env
    args = [*common, "placement=explicit", "placement.layers=[2,9]", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = _run(args, tmp_path, env)
    assert proc.returncode == 2
    assert "placement layer 9 is out of range" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_finished_run_serves_python_api_and_lm_eval(tmp_path, sweep_env, dtype):
    import lm_eval
    from lm_eval.tasks import TaskManager

    import eebench

    env, common = sweep_env
    common = [arg for arg in common if not arg.startswith("backbone.dtype=")] + [f"backbone.dtype={dtype}"]
    run_dir = tmp_path / "run"
    model_dir = next(arg.split("=", 1)[1] for arg in common if arg.startswith("backbone.name_or_path="))
    proc = _run([*common, "logger=none", "timing=none", f"hydra.run.dir={run_dir}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The tiny model lies outside the cache and the run dir: the caller names it to trust it.
    model = eebench.EarlyExitModel.from_run(run_dir, device="cpu", backbone=str(model_dir))
    ids = model.backbone.tokenizer("model layer token", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=5, threshold=0.9).shape == (1, 5)
    # The run's own precision, for the backbone and the heads alike (heads are trained in float32, run in it).
    assert model.backbone.model.dtype == getattr(torch, dtype)
    assert {p.dtype for p in model.heads.parameters()} == {getattr(torch, dtype)}
    out = lm_eval.simple_evaluate(
        model="eebench",
        model_args=f"run_dir={run_dir},threshold=0.9,device=cpu,backbone={model_dir}",
        tasks=["tiny_mc"],
        task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
    )
    # The same policy (threshold 0.9) on the same 12 documents as the run itself scored.
    recorded = read_result(run_dir).tasks["tiny_mc"]["acc"]
    assert out["results"]["tiny_mc"]["acc,none"] == pytest.approx(recorded)
    # lm-eval's own CLI finds the model through the installed .pth hook, without importing eebench first.
    cli = subprocess.run(
        [
            str(Path(sys.executable).with_name("lm_eval")),
            "--model",
            "eebench",
            "--model_args",
            f"run_dir={run_dir},threshold=0.9,backbone={model_dir}",
            "--device",
            "cpu",
            "--tasks",
            "tiny_mc",
            "--include_path",
            str(tmp_path / "tasks"),
            "--output_path",
            str(tmp_path / "cli"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    cli_results = json.loads(next((tmp_path / "cli").rglob("results*.json")).read_text())
    assert cli_results["results"]["tiny_mc"]["acc,none"] == out["results"]["tiny_mc"]["acc,none"]
    # A second launch of the same point is skipped, not recomputed.
    again = _run([*common, "logger=none", "timing=none", f"hydra.run.dir={run_dir}"], tmp_path, env)
    assert again.returncode == 0 and "skipping it" in again.stdout
