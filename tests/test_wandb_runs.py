"""W&B runs as report sources: results.json saved into each W&B run, local W&B folders, and
`eebench report wandb:ENTITY/PROJECT[/GROUP]`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import test_tracking
from results_factory import make_results

from eebench.cli import main
from eebench.errors import EEBenchError
from eebench.tracking import wandb_runs
from eebench.tracking.results import RESULTS_FILE, load_sweeps, write_results
from eebench.tracking.wandb_runs import (
    WandbSource,
    fetch_wandb_source,
    gather_sources,
    parse_wandb_source,
)
from eebench.tracking.wandb_sink import log_sweep_summary

offline_wandb = test_tracking.offline_wandb  # the fixture: offline, silent W&B kept inside tmp_path


# ----------------------------------------------------------------------------- real offline W&B


@pytest.fixture
def logged_sweep(tmp_path, offline_wandb) -> Path:
    """A sweep with one complete point logged through WandbSink, plus the sweep-summary W&B run."""
    write_results(tmp_path / "sweep" / "0", make_results())
    sink = test_tracking._sink(tmp_path)
    sink.log_results(make_results())
    sink.finish()
    log_sweep_summary(
        tmp_path / "sweep", pd.DataFrame({"threshold": [0.9]}), pd.DataFrame(), project="eebench-test", mode="offline"
    )
    import wandb

    wandb.teardown()  # wandb-core flushes the binary run log on shutdown
    return tmp_path / "sweep"


def _offline_run_with_results(sweep: Path) -> Path:
    [run] = [run for run in (sweep / "wandb").glob("offline-run-*") if (run / "files" / RESULTS_FILE).exists()]
    return run


def test_sink_saves_results_json_as_a_real_file_of_the_run(logged_sweep, capsys):
    assert "warning" not in capsys.readouterr().err
    run = _offline_run_with_results(logged_sweep)
    copy = run / "files" / RESULTS_FILE
    # A real copy, not wandb's default symlink, so the W&B folder can be moved to another machine.
    assert not copy.is_symlink()
    assert copy.read_bytes() == (logged_sweep / "0" / RESULTS_FILE).read_bytes()
    # Recorded in the run's log as a file to upload, so `wandb sync` sends it.
    assert b"results.json" in next(run.glob("run-*.wandb")).read_bytes()


def test_report_of_a_wandb_folder_reads_the_saved_results(logged_sweep, tmp_path, capsys):
    assert main(["report", str(logged_sweep / "wandb"), "--out", str(tmp_path / "from_wandb")]) == 0
    summary = pd.read_csv(tmp_path / "from_wandb" / "summary.csv")
    assert summary["threshold"].tolist() == [0.9]
    # The run folder as the report names it (outside the working directory: its parent and its own name).
    assert summary["run_dir"].tolist() == [f"{_offline_run_with_results(logged_sweep).name}/files"]
    skipped = (tmp_path / "from_wandb" / "report.md").read_text(encoding="utf-8").split("## Skipped", 1)[1]
    assert "W&B run without results.json" in skipped  # the sweep-summary run, listed rather than dropped


def test_a_point_found_in_its_run_dir_and_in_wandb_counts_once(logged_sweep):
    runs, skipped = load_sweeps([logged_sweep])  # scanning a sweep does not enter its wandb/ folder
    assert [run.run_dir for run in runs] == [str(logged_sweep / "0")] and not skipped
    runs, _ = load_sweeps([logged_sweep, logged_sweep / "wandb"])
    assert [run.run_dir for run in runs] == [str(logged_sweep / "0")]  # the first place found wins


# ----------------------------------------------------------------------------- online, stand-in API
# W&B servers cannot run in tests (and the network is off), so these stand-ins mimic the few parts
# of wandb.Api that wandb_runs uses: Api.runs(path, filters), Run.files(names), File.download(root, replace).


class FakeFile:
    def __init__(self, name: str, text: str):
        self.name, self.text = name, text

    def download(self, root: str, replace: bool = False):
        path = Path(root) / self.name
        assert replace or not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text, encoding="utf-8")


class FakeRun:
    def __init__(self, run_id: str, group: str, results: dict | None = None, job_type: str = "train", state: str = "finished"):
        self.id, self.name, self.group, self.job_type, self.state = run_id, f"job-{run_id}", group, job_type, state
        self._files = [FakeFile("output.log", "log")]
        if results is not None:
            self._files.append(FakeFile(RESULTS_FILE, json.dumps(results)))

    def files(self, names=None):
        return [f for f in self._files if not names or f.name in names]


class FakeApi:
    def __init__(self, runs: list[FakeRun]):
        self._runs, self.calls = runs, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        group = (filters or {}).get("group")
        return iter([run for run in self._runs if group is None or run.group == group])


class UnreachableApi:
    def runs(self, path, filters=None):
        raise ConnectionError("Max retries exceeded with url: https://api.wandb.ai/graphql\nsecond line")


@pytest.fixture
def api() -> FakeApi:
    return FakeApi(
        [
            FakeRun("a1", "demo", make_results(threshold=0.8)),
            FakeRun("a2", "demo", make_results(threshold=0.9)),
            FakeRun("s1", "demo", job_type="sweep-summary"),
            FakeRun("c1", "demo", state="crashed"),
            FakeRun("o1", "other", make_results(threshold=0.95)),
        ]
    )


def test_parse_wandb_source():
    assert parse_wandb_source("wandb:me/proj") == WandbSource("me", "proj")
    assert str(parse_wandb_source("wandb:me/proj/demo_01")) == "wandb:me/proj/demo_01"
    for bad in ("wandb:proj", "wandb:me//g", "wandb:"):
        with pytest.raises(EEBenchError, match="wandb:ENTITY/PROJECT/GROUP"):
            parse_wandb_source(bad)


def test_fetch_downloads_results_of_the_group_and_lists_runs_without(api, tmp_path):
    folder, skipped = fetch_wandb_source(WandbSource("me", "proj", "demo"), tmp_path, api)
    assert api.calls == [("me/proj", {"group": "demo"})]
    assert folder == tmp_path / "wandb_runs" / "me_proj_demo"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json")) == ["a1/results.json", "a2/results.json"]
    assert json.loads((folder / "a1" / RESULTS_FILE).read_text()) == make_results(threshold=0.8)
    assert dict(skipped) == {
        "wandb:me/proj/s1 (job-s1)": "sweep-summary run (the sweep's tables and report, not a point)",
        "wandb:me/proj/c1 (job-c1)": "no results.json in this W&B run (state crashed; logged by an older eebench?)",
    }
    runs, _ = load_sweeps([folder])
    assert sorted(run.threshold for run in runs) == [0.8, 0.9]


def test_fetch_without_group_asks_for_the_whole_project(api, tmp_path):
    folder, _ = fetch_wandb_source(WandbSource("me", "proj"), tmp_path, api)
    assert api.calls == [("me/proj", {})]
    assert {p.name for p in folder.iterdir()} == {"a1", "a2", "o1"}


def test_refetch_drops_runs_deleted_on_wandb(api, tmp_path):
    source = WandbSource("me", "proj", "demo")
    folder, _ = fetch_wandb_source(source, tmp_path, api)
    api._runs = api._runs[1:]
    fetch_wandb_source(source, tmp_path, api)
    assert {p.name for p in folder.iterdir()} == {"a2"}


def test_gather_mixes_local_dirs_and_wandb_sources(api, tmp_path):
    write_results(tmp_path / "sweep" / "0", make_results(threshold=0.8))  # also on W&B as run a1
    dirs, skipped = gather_sources([tmp_path / "sweep"], [WandbSource("me", "proj", "demo")], tmp_path / "out", api)
    assert dirs == [tmp_path / "sweep", tmp_path / "out" / "wandb_runs" / "me_proj_demo"]
    runs, _ = load_sweeps(dirs)
    assert [run.run_dir for run in runs] == [str(tmp_path / "sweep" / "0"), str(dirs[1] / "a2")]
    assert len(skipped) == 2


def test_unreachable_wandb_is_one_warning_and_a_skipped_source(tmp_path, capsys):
    dirs, skipped = gather_sources([], [WandbSource("me", "proj")], tmp_path, UnreachableApi())
    assert dirs == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: wandb:me/proj: cannot list W&B runs (ConnectionError")
    assert "wandb login" in err and "Traceback" not in err
    [(what, why)] = skipped
    assert what == "wandb:me/proj" and why.startswith("cannot list W&B runs") and "WANDB_API_KEY" in why


def test_cli_report_with_a_failing_wandb_source_still_reports_the_rest(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(wandb_runs, "connect_api", UnreachableApi)
    write_results(tmp_path / "sweep" / "0", make_results())
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "sweep"), "wandb:me/proj/demo", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: wandb:me/proj/demo" in err and "Traceback" not in err
    assert len(pd.read_csv(out / "summary.csv")) == 1
    skipped = (out / "report.md").read_text(encoding="utf-8").split("## Skipped", 1)[1]
    assert "`wandb:me/proj/demo`: cannot list W&B runs" in skipped


def test_cli_wandb_source_needs_out_and_a_valid_form(tmp_path, capsys):
    assert main(["report", "wandb:me/proj"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["report", "wandb:me", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'wandb:me' is not a W&B source") and err.count("\n") == 1
