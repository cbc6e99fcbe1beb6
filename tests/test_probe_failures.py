"""Issue 25: nothing fails silently. Each failure a probe found ends in a one-line error naming the bad value and a
non-zero exit, or is recovered from; real files, real tiny models and real processes where the failure is theirs."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import _write_prose, run_eebench
from omegaconf import OmegaConf
from results_factory import make_results
from test_bigbench import write_fake_sdist
from test_integrity import _count_builds
from test_report_training import trained

from eebench import cache
from eebench.cli import main as eebench_cli
from eebench.errors import EEBenchError
from eebench.evaluation.bigbench import SDIST_FILENAME
from eebench.hydra_callback import ReportCallback
from eebench.model import EarlyExitModel
from eebench.pipeline import finished_results
from eebench.reporting.report import HTML_FILE, PDF_FILE, REPORT_FILE
from eebench.tracking.results import CONFIG_JSON, CONFIG_YAML, check_run, write_results

# ----------------------------------------------------------------------------- reports


def _cells(line: str) -> int:
    return line.strip().strip("|").replace("\\|", "").count("|") + 1


def test_heads_stopped_at_different_token_counts_render_in_every_format(tmp_path):
    results = trained("linear", "/cache/heads/a", [0.0, 0.2, 0.3])
    longest = results["heads_training"]["curves"][0]
    # A later head that early stopping ended after its first two evaluations (the first head kept training).
    stopped = {key: value[:2] if isinstance(value, list) else value for key, value in longest.items()}
    results["heads_training"]["curves"].insert(1, {**stopped, "exit_layer": 11})
    write_results(tmp_path / "sweep" / "0", results)
    assert eebench_cli(["report", str(tmp_path / "sweep")]) == 0
    assert (tmp_path / "sweep" / PDF_FILE).stat().st_size > 0
    section = (tmp_path / "sweep" / REPORT_FILE).read_text(encoding="utf-8").split("## Head training", 1)[1]
    header = next(line for line in section.splitlines() if line.startswith("| head |"))
    rows = [line for line in section.splitlines() if line.startswith("| block ")]
    assert len(rows) == 2 and all(_cells(row) == _cells(header) for row in rows)
    assert rows[1].endswith("| stopped |")


def _sweep_of_good_points(sweep: Path) -> Path:
    for job, threshold in enumerate((0.8, 0.9)):
        write_results(sweep / str(job), make_results(threshold=threshold))
    return sweep


def _fill_the_disk_for_html(monkeypatch) -> None:
    """From now on, writing report.html finds the disk full: the file is opened (truncated), then the write fails."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        if HTML_FILE in self.name:
            self.open("w").close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def test_report_on_a_full_disk_leaves_no_partial_file_and_exits_nonzero(tmp_path, capsys, monkeypatch):
    sweep = _sweep_of_good_points(tmp_path / "sweep")
    assert eebench_cli(["report", str(sweep)]) == 0
    before = (sweep / HTML_FILE).read_text(encoding="utf-8")
    _fill_the_disk_for_html(monkeypatch)
    capsys.readouterr()
    assert eebench_cli(["report", str(sweep)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(sweep / HTML_FILE) in err and "No space" in err
    assert (sweep / HTML_FILE).read_text(encoding="utf-8") == before  # the old report, not an empty one
    assert (sweep / PDF_FILE).stat().st_size > 0 and not list(sweep.glob(".*.tmp"))
    # The multirun's callback: an error line naming the file and exit 1, not a warning and exit 0.
    (sweep / HTML_FILE).unlink()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": {"kind": "none"}})
    with pytest.raises(SystemExit) as exit_info:
        ReportCallback().on_multirun_end(config)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "error: sweep report failed" in err and str(sweep / HTML_FILE) in err
    assert not (sweep / HTML_FILE).exists() and not list(sweep.glob(".*.tmp"))


def test_markdown_report_escapes_html_from_names(tmp_path):
    evil = "<script>alert(1)</script>"
    sweep = tmp_path / "<b>sweep"
    write_results(sweep / "0", make_results(backbone=evil))
    assert eebench_cli(["report", str(sweep)]) == 0
    markdown = (sweep / REPORT_FILE).read_text(encoding="utf-8")
    assert "&lt;script>alert(1)&lt;/script>" in markdown and "&lt;b>sweep" in markdown
    assert "<script>" not in markdown and "<b>" not in markdown
    assert "<script>" not in (sweep / HTML_FILE).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- run dirs are data


def test_gguf_file_named_by_a_run_dir_must_lie_inside_the_trusted_roots(tmp_path):
    run_dir = tmp_path / "run"
    for folder in ("model", "heads", "trace"):
        (run_dir / folder).mkdir(parents=True)
    escape = "../../../../../../etc/passwd"  # from run/model, up to / and down again
    results = make_results()
    results["artifacts"] = {
        "heads_dir": str(run_dir / "heads"),
        "calibration_trace_dir": str(run_dir / "trace"),
        "backbone_config": {"name_or_path": str(run_dir / "model"), "gguf_file": escape},
        "calibration_config": {"method": "max_coverage"},
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    refused = re.escape(f"backbone_config.gguf_file={escape!r} lies outside the eebench cache")
    with pytest.raises(EEBenchError, match=refused) as error:
        EarlyExitModel.from_run(run_dir, device="cpu")
    assert "\n" not in str(error.value) and "allowed:" in str(error.value)
    # A backbone folder the caller names is trusted; a file name escaping it is not.
    with pytest.raises(EEBenchError, match=refused):
        EarlyExitModel.from_run(run_dir, device="cpu", backbone=str(run_dir / "model"))


def test_garbled_config_yaml_of_a_finished_point_is_noticed(tmp_path):
    run_dir = tmp_path / "run"
    plain = {"threshold": 0.9, "backbone": {"name": "tiny-a", "dtype": "float32"}, "head": {"options": {}}}
    write_results(run_dir, make_results())
    (run_dir / CONFIG_JSON).write_text(json.dumps(plain))
    (run_dir / CONFIG_YAML).write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    assert check_run(run_dir)[1] is None and finished_results(run_dir, plain) is not None
    for garbled in ("threshold: 0.9\nbackbone: {name: [tiny", "threshold: 0.5\n"):  # unreadable; not config.json
        (run_dir / CONFIG_YAML).write_text(garbled)
        assert CONFIG_YAML in check_run(run_dir)[1]  # the report lists the point as skipped, naming the file
        assert finished_results(run_dir, plain) is None  # a relaunch redoes the point


# ----------------------------------------------------------------------------- the cache


def test_removed_complete_marker_is_warned_moved_aside_and_rebuilt(capsys):
    entry, _ = _count_builds()
    (entry / cache.COMPLETE_MARKER).unlink()
    again, calls = _count_builds()
    assert again == entry and len(calls) == 1 and cache.entry_problem(entry) is None
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"demo/{entry.name}" in warnings[0] and cache.COMPLETE_MARKER in warnings[0]
    assert len(list((entry.parent / cache.CORRUPT_DIR).iterdir())) == 1


@dataclass
class FinishedPoint:
    args: list[str]  # the point's overrides, but its run dir
    cache: Path  # its cache, moved away from where the point wrote it
    results: dict


def _point_env(cache_dir: Path) -> dict:
    # The sdist lies in the cache, where a pip download puts it: its memo must survive the cache moving too.
    sdist = cache_dir / "downloads" / SDIST_FILENAME
    return {**os.environ, "EEBENCH_CACHE": str(cache_dir), "EEBENCH_BIGBENCH_SDIST": str(sdist)}


@pytest.fixture(scope="module")
def finished_point(tmp_path_factory, tiny_model_dirs) -> FinishedPoint:
    """One smoke point on the BIG-bench suite (a fake sdist); its cache is then moved, so that nothing can still
    read the place it was written at."""
    root = tmp_path_factory.mktemp("point")
    written = root / "written_cache"
    write_fake_sdist(written / "downloads" / SDIST_FILENAME)
    args = [
        "experiment=smoke",
        f"backbone.name_or_path={tiny_model_dirs['gpt2']}",
        "backbone.dtype=float32",
        f"data.source={_write_prose(root / 'prose.txt')}",
        "eval.suite=bigbench",
        "eval.tasks=[bigbench:toy_mc]",
        "timing=none",
        "logger=none",
    ]
    proc = run_eebench([*args, f"hydra.run.dir={root / 'run'}"], root, _point_env(written))
    assert proc.returncode == 0, proc.stderr[-3000:]
    moved = written.rename(root / "cache")
    return FinishedPoint(args, moved, json.loads((root / "run" / "results.json").read_text()))


def _entry(root: Path, kind: str) -> Path:
    """The first entry of a kind: a folder or a file, never a lock, a checksum or a temp folder."""
    return sorted(p for p in (root / kind).iterdir() if p.name[0] != "." and p.suffix not in (".lock", ".sha256"))[0]


def _change(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"x")


CORRUPTIONS = {
    "entry file changed": lambda c: _change(_entry(c, "heads") / "heads.safetensors"),
    "entry file missing": lambda c: (_entry(c, "traces") / "spec.json").unlink(),
    "COMPLETE marker missing": lambda c: (_entry(c, "bigbench_task") / cache.COMPLETE_MARKER).unlink(),
    "manifest garbled": lambda c: (_entry(c, "baselines") / cache.MANIFEST).write_text("{"),
    "score file changed": lambda c: _change(_entry(c, "scores")),
    "score checksum missing": lambda c: Path(f"{_entry(c, 'scores')}.sha256").unlink(),
    "memo changed": lambda c: _entry(c, "file_digests").write_text("0" * 64 + "\n"),
    "temp folder of a killed build": lambda c: (c / "heads" / f".{_entry(c, 'heads').name}.abcd1234").mkdir(),
    "entry moved aside as corrupt": lambda c: cache.quarantine(_entry(c, "traces"), "test"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_cache_verify_passes_a_healthy_cache_and_fails_each_corruption(finished_point, tmp_path, corruption, capsys):
    healthy = tmp_path / "cache"  # this test's EEBENCH_CACHE (conftest's isolated_cache)
    shutil.copytree(finished_point.cache, healthy)
    assert eebench_cli(["cache", "verify"]) == 0, capsys.readouterr().out
    CORRUPTIONS[corruption](healthy)
    assert eebench_cli(["cache", "verify"]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of a cache with its size and modification time (lock files are touched by every reader)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.suffix != ".lock"}


def test_cache_mounted_at_another_path_rebuilds_nothing(finished_point, tmp_path):
    mounted = tmp_path / "mounted" / "elsewhere"
    shutil.copytree(finished_point.cache, mounted)  # modification times kept, as a mount shows them
    before = _files(mounted)
    proc = run_eebench([*finished_point.args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, _point_env(mounted))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _files(mounted) == before  # no entry, score file or memo built, rebuilt or rewritten
    again = json.loads((tmp_path / "run" / "results.json").read_text())
    assert again["baseline_cache_key"] == finished_point.results["baseline_cache_key"]
    assert again["tasks"] == finished_point.results["tasks"]


# ----------------------------------------------------------------------------- signals


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_signal_ends_a_point_with_one_line_error_json_and_128_plus_signum_then_it_resumes(tmp_path, sweep_env, name):
    env, common = sweep_env
    counter = str(tmp_path / "kills")
    env = {**env, "EEBENCH_KILL_AT": "heads", "EEBENCH_KILL_SIGNAL": name[3:], "EEBENCH_KILL_COUNTER": counter}
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    args = [*common, "backbone.dtype=float32", "logger=none", "timing=none", f"hydra.run.dir={run_dir}"]
    interrupted = run_eebench(args, tmp_path, env)  # the signal arrives while the heads are being built
    assert interrupted.returncode == 128 + signal.Signals[name], interrupted.stderr[-3000:]
    assert "Traceback" not in interrupted.stderr
    [line] = [line for line in interrupted.stderr.splitlines() if line.startswith("error:")]
    assert name in line and str(run_dir) in line
    assert json.loads((run_dir / "error.json").read_text())["signal"] == name
    leftovers = [p for p in cache_dir.glob("*/.*") if p.name != cache.CORRUPT_DIR] + list(run_dir.glob(".*.tmp"))
    assert leftovers == []  # the half-built heads' temp folder is gone
    resumed = run_eebench(args, tmp_path, env)  # the kill budget is spent: this launch runs to the end
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["status"] == "complete"
    assert not (run_dir / "error.json").exists()
