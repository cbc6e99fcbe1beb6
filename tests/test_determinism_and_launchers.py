"""Same config + seed -> identical heads, thresholds and accuracies; sweeps run through submitit too."""

import json

from conftest import point_results, run_eebench
from safetensors.torch import load_file


def _heads_file(results):
    return load_file(results["artifacts"]["heads_dir"] + "/heads.safetensors")


def test_same_config_and_seed_give_identical_artifacts(tmp_path, sweep_env):
    env, common = sweep_env
    runs = []
    for name in ("first", "second"):  # separate caches, so the second run really retrains everything
        proc = run_eebench(
            [*common, "logger=none", "timing=none", f"hydra.run.dir={tmp_path / name}"],
            tmp_path,
            {**env, "EEBENCH_CACHE": str(tmp_path / f"cache_{name}")},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(json.loads((tmp_path / name / "results.json").read_text()))
    first, second = runs
    assert first["artifacts"]["heads_dir"] != second["artifacts"]["heads_dir"]
    heads_a, heads_b = _heads_file(first), _heads_file(second)
    assert heads_a.keys() == heads_b.keys() and all(bool((heads_a[k] == heads_b[k]).all()) for k in heads_a)
    assert first["thresholds"] == second["thresholds"]
    assert first["tasks"] == second["tasks"] and first["exit"] == second["exit"]


def _numbers(results: dict) -> dict:
    """What a point measured, without where and when it ran."""
    return {key: results[key] for key in ("thresholds", "exit", "calibration", "curves", "tasks", "baseline_tasks")}


def test_a_point_after_others_in_one_process_equals_the_point_run_alone(tmp_path, sweep_env):
    """The basic launcher runs a sweep's points in one process, sharing the loaded backbone, data, heads and scores
    (eebench/reuse.py): the second point must measure exactly what it measures in a process of its own."""
    env, common = sweep_env
    common = [*common, "logger=none", "timing=none"]
    sweep = tmp_path / "sweep"
    proc = run_eebench(["-m", *common, "threshold=0.8,0.95", f"hydra.sweep.dir={sweep}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    alone = run_eebench([*common, "threshold=0.95", f"hydra.run.dir={tmp_path / 'alone'}"], tmp_path, env)
    assert alone.returncode == 0, alone.stderr[-2000:]
    in_sweep = point_results(sweep, "threshold")[1]
    assert in_sweep["threshold"] == 0.95
    assert _numbers(in_sweep) == _numbers(json.loads((tmp_path / "alone" / "results.json").read_text()))


def test_submitit_local_launcher_runs_a_sweep(tmp_path, sweep_env):
    env, common = sweep_env
    sweep = tmp_path / "sweep"
    proc = run_eebench(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            *common,
            "logger=none",
            "timing=none",
            "threshold=0.8,0.95",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["threshold"] for r in point_results(sweep, "threshold")] == [0.8, 0.95]
    assert (sweep / "report.md").exists()
