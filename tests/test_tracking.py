"""Storage, provenance, run loading and the never-fail W&B sink."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
from results_factory import make_results, make_sweep

from eebench.analysis.hypervolume import hypervolume_table
from eebench.analysis.pareto import add_pareto_flags, pareto_table, runs_to_frame
from eebench.tracking import results as results_mod
from eebench.tracking.results import (
    collect_provenance,
    git_dirty,
    git_sha,
    load_run,
    load_sweeps,
    redact,
    write_error,
    write_json_atomic,
    write_results,
)
from eebench.tracking.wandb_sink import (
    MAX_ARTIFACT_FILE_BYTES,
    WandbSink,
    artifact_files,
    log_sweep_summary,
    summary_metrics,
)


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """Offline, silent W&B whose config/cache files stay inside the test's tmp dir."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def _sink(tmp_path, **overrides) -> WandbSink:
    arguments = dict(
        enabled=True,
        project="eebench-test",
        mode="offline",
        entity=None,
        run_dir=tmp_path / "sweep" / "0",
        sweep_dir=tmp_path / "sweep",
        group="sweep",
        name="job-0",
        config={"threshold": 0.9, "logger": {"api_key": "SECRET"}},
    )
    arguments.update(overrides)
    return WandbSink(**arguments)


def test_write_json_atomic_leaves_no_temp_files(tmp_path):
    path = write_json_atomic(tmp_path / "out.json", {"a": 1, "nan": float("nan"), "p": tmp_path})
    assert json.loads(path.read_text()) == {"a": 1, "nan": None, "p": str(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_json_atomic_failure_keeps_old_file(tmp_path, monkeypatch):
    path = write_json_atomic(tmp_path / "out.json", {"version": 1})

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(results_mod.json, "dump", broken_dump)
    with pytest.raises(OSError):
        write_json_atomic(path, {"version": 2})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_redact_removes_secrets_but_keeps_token_counts():
    config = {
        "logger": {"kind": "wandb", "api_key": "abc", "WANDB_API_KEY": "abc"},
        "env": [{"HF_TOKEN": "x", "hfToken": "y", "name": "ok"}],
        "db_password": "p",
        "client_secret": "s",
        "timing": {"max_new_tokens": 48, "prompt_tokens": 64},
    }
    assert redact(config) == {
        "logger": {"kind": "wandb"},
        "env": [{"name": "ok"}],
        "timing": {"max_new_tokens": 48, "prompt_tokens": 64},
    }


def test_write_error_and_results(tmp_path):
    run_dir = tmp_path / "run"
    try:
        raise ValueError("boom")
    except ValueError as exc:
        error_path = write_error(run_dir, exc, {"wandb": {"api_key": "SECRET"}, "threshold": 0.5})
    error = json.loads(error_path.read_text())
    assert error["message"] == "ValueError: boom" and "Traceback" in error["traceback"]
    assert "SECRET" not in error_path.read_text() and error["config"]["threshold"] == 0.5
    assert load_run(run_dir) is None

    write_results(run_dir, make_results())  # a successful retry replaces the stale error
    assert not (run_dir / "error.json").exists()
    assert load_run(run_dir).run_dir == str(run_dir)


def test_load_sweeps_reports_every_skip_reason(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    write_results(sweep / "8", {**make_results(), "status": "running"})
    (sweep / "9" / ".hydra").mkdir(parents=True)  # job started, never wrote anything
    runs, skipped = load_sweeps([sweep, tmp_path / "empty"])
    assert len(runs) == 6
    reasons = {dir_.rsplit("/", 1)[-1]: reason for dir_, reason in skipped}
    assert reasons["6"].startswith("failed: RuntimeError")
    assert reasons["7"].startswith("corrupt results.json")
    assert reasons["8"] == "status is 'running', not 'complete'"
    assert reasons["9"].startswith("no results.json")
    assert reasons["empty"] == "no run directories found"


def test_collect_provenance_fields():
    provenance = collect_provenance(device="cpu", seed=3)
    assert provenance["seed"] == 3 and provenance["device"] == "cpu"
    assert set(provenance["packages"]) >= {"torch", "transformers", "lm_eval", "wandb", "hydra-core", "eebench"}
    assert provenance["packages"]["torch"] and provenance["cpu_count"] >= 1
    assert provenance["time"].endswith("+00:00")
    json.dumps(provenance)


def _git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True, capture_output=True
    )


def test_git_sha_and_dirty_flag_from_git(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("x = 1\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    # The commit git wrote into the branch ref, read without git: what the checkout's HEAD must resolve to.
    assert git_sha(repo / "pkg" / "code.py") == (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert git_dirty(repo / "pkg") is False
    (repo / "pkg" / "notes.txt").write_text("untracked files do not make a checkout dirty")
    assert git_dirty(repo / "pkg") is False
    (repo / "pkg" / "code.py").write_text("x = 2\n")
    assert git_dirty(repo / "pkg") is True
    (tmp_path / "elsewhere").mkdir()
    assert git_sha(tmp_path / "elsewhere") is None and git_dirty(tmp_path / "elsewhere") is None
    monkeypatch.setenv("PATH", "")  # no git executable: unknown, not an error
    assert git_sha(repo / "pkg") is None and git_dirty(repo / "pkg") is None


def test_summary_metrics_are_flat_numbers():
    metrics = summary_metrics(make_results(acc=0.40, base=0.43))
    assert metrics["acc_delta/eebench_bb_x"] == pytest.approx(-3.0)
    assert metrics["baseline_acc/eebench_bb_x"] == 0.43 and metrics["measured_speedup"] == 1.3
    assert metrics["exit_fraction/final"] == 0.5
    assert all(isinstance(v, float) for v in metrics.values())


def test_wandb_sink_offline_creates_run(tmp_path, offline_wandb):
    sink = _sink(tmp_path)
    assert sink.active
    sink.log_results(make_results())
    sink.finish()
    sweep = tmp_path / "sweep"
    offline_runs = list((sweep / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    pointer = json.loads((sweep / "0" / "wandb_run.json").read_text())
    assert pointer["mode"] == "offline"
    # Offline runs store config and summary inside the binary .wandb log, which wandb-core may still
    # be flushing after finish(); shutting the service down makes the check deterministic.
    import wandb

    wandb.teardown()
    log_bytes = next(offline_runs[0].glob("run-*.wandb")).read_bytes()
    assert b"run_dir" in log_bytes and b"acc_delta" in log_bytes and b"SECRET" not in log_bytes

    summary = pd.DataFrame({"threshold": [0.9], "acc_delta": [float("nan")], "family": ["a/b"]})
    log_sweep_summary(sweep, summary, summary.iloc[:0], project="eebench-test", mode="offline")
    assert len(list((sweep / "wandb").glob("offline-run-*"))) == 2


def test_wandb_sink_never_raises(tmp_path, offline_wandb, monkeypatch, capsys):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("no network\nsecond line")

    monkeypatch.setattr(wandb, "init", broken_init)
    sink = _sink(tmp_path)
    sink.log_results(make_results())
    sink.finish()
    assert not sink.active
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: W&B init failed" in err
    # No W&B folder was written, so the hint names none (it used to point at offline-run-* folders that did not exist).
    assert "wandb sync" not in err and "No W&B files were written" in err

    log_sweep_summary(tmp_path / "sweep", pd.DataFrame(), pd.DataFrame(), "p", "offline")
    assert "warning" in capsys.readouterr().err


def test_disabled_sink_does_nothing(tmp_path):
    sink = _sink(tmp_path, enabled=False)
    sink.log_results(make_results())
    sink.finish()
    assert not (tmp_path / "sweep").exists()


def _offline_log(sweep) -> bytes:
    """Everything the offline runs under ``sweep`` recorded (binary logs and table files), once
    wandb-core has flushed it."""
    import wandb

    wandb.teardown()
    paths = [*(sweep / "wandb").glob("offline-run-*/run-*.wandb"), *(sweep / "wandb").glob("offline-run-*/files/**/*.json")]
    return b"".join(path.read_bytes() for path in paths)


def test_artifact_files_skip_missing_and_huge(tmp_path, monkeypatch):
    assert artifact_files(None) == ([], []) and artifact_files(tmp_path / "missing") == ([], [])
    (tmp_path / "heads.json").write_text("{}")
    (tmp_path / ".lock").write_text("")
    (tmp_path / "sub").mkdir()  # files only: folders are not walked
    big = tmp_path / "heads.safetensors"
    big.write_bytes(b"0" * 10)
    monkeypatch.setattr("eebench.tracking.wandb_sink.MAX_ARTIFACT_FILE_BYTES", 5)
    assert artifact_files(tmp_path) == ([tmp_path / "heads.json"], ["heads.safetensors"])
    assert MAX_ARTIFACT_FILE_BYTES >= 2**20


def test_wandb_sink_logs_heads_and_calibration_artifacts(tmp_path, offline_wandb, capsys):
    heads_dir = tmp_path / "cache" / "heads" / "15e76889671b3524"
    heads_dir.mkdir(parents=True)
    (heads_dir / "heads.json").write_text('{"kind": "linear"}')
    results = make_results(diagnostics=True)
    results["heads_training"] = {
        "curves": [{"module": "head", "exit_layer": 5, "tokens": [0, 64], "train": [None, 3.0], "heldout": [9.0, 4.0]}]
    }
    # The trace dir is gone (cache cleared): the calibration artifact still carries the thresholds.
    results["artifacts"].update(heads_dir=str(heads_dir), calibration_trace_dir=str(tmp_path / "gone" / "bbdee510"))
    sink = _sink(tmp_path)
    sink.log_results(results)
    sink.finish()
    assert "warning" not in capsys.readouterr().err
    log = _offline_log(tmp_path / "sweep")
    assert b"heads-15e76889671b3524" in log and b"calibration-bbdee510" in log
    assert b"exit_histogram_chart" in log and b"acc_stderr" in log
    assert b"head_training_chart" in log and b"head block 5" in log  # KL-vs-tokens curves, one line per module


def test_sweep_summary_logs_pareto_scatter_and_report(tmp_path, offline_wandb, capsys):
    sweep = make_sweep(tmp_path / "sweep")
    # The tables the report writes, without drawing the (slow) report itself.
    frame = add_pareto_flags(runs_to_frame(load_sweeps([sweep])[0]))
    hypervolume_table(frame).to_csv(sweep / "hypervolume.csv", index=False)
    (sweep / "report.md").write_text("# report\n")
    log_sweep_summary(sweep, frame, pareto_table(frame), project="eebench-test", mode="offline")
    assert "warning" not in capsys.readouterr().err
    log = _offline_log(sweep)
    assert b"pareto_measured" in log and b"pareto_theoretical" in log and b"hypervolume" in log
    assert b"sweep-report" in log


def test_a_skip_reason_shows_paths_within_the_sweep_and_the_home_folder_as_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run_dir = tmp_path / "out" / "sweep" / "6"
    reason = f"failed: no file {run_dir / 'heads.pt'} nor {tmp_path / 'home' / '.cache' / 'eebench' / 'x'}"
    assert results_mod.relative_reason(reason, run_dir) == "failed: no file sweep/6/heads.pt nor ~/.cache/eebench/x"
