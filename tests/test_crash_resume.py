"""Real processes SIGKILLed at several stages never leave results or cache entries that are later trusted."""

import json

import pytest
from conftest import run_eebench as _run

from eebench.faults import kill_point


def _complete_entries(cache, kind):
    root = cache / kind
    return sorted(p.name for p in root.iterdir() if (p / "COMPLETE").exists()) if root.exists() else []


@pytest.mark.parametrize("stage", ["heads", "eval", "write"])
def test_killed_point_recovers_on_relaunch(tmp_path, sweep_env, stage):
    env, common = sweep_env
    env = {**env, "EEBENCH_KILL_AT": stage, "EEBENCH_KILL_COUNTER": str(tmp_path / "kills"), "EEBENCH_KILL_BUDGET": "1"}
    cache = tmp_path / "cache"
    args = [*common, "backbone.dtype=float32", "logger=none", "timing=none", f"hydra.run.dir={tmp_path / 'run'}"]
    killed = _run(args, tmp_path, env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "run" / "results.json").exists()
    orphans = list((tmp_path / "run").glob(".results.json.*.tmp"))
    assert len(orphans) == (1 if stage == "write" else 0)  # killed after writing the temp file, before its rename
    heads_before = _complete_entries(cache, "heads")
    assert len(heads_before) == (0 if stage == "heads" else 1)
    relaunched = _run(args, tmp_path, env)  # the kill budget is spent: this launch runs to the end
    assert relaunched.returncode == 0, relaunched.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "complete"
    assert not list((tmp_path / "run").glob(".*.tmp"))  # the relaunch removed the killed launch's temp file
    # Heads finished before the kill are reused, not retrained; a half-built entry is never trusted.
    assert len(_complete_entries(cache, "heads")) == 1
    if stage != "heads":
        assert _complete_entries(cache, "heads") == heads_before


def test_a_kill_point_of_an_unknown_name_is_refused(monkeypatch):
    monkeypatch.setenv("EEBENCH_KILL_AT", "nowhere")
    with pytest.raises(ValueError, match=r"kill point 'nowhere' is unknown; allowed: heads, eval, timing, write"):
        kill_point("nowhere")
    kill_point("heads")  # a known name the environment does not name passes
