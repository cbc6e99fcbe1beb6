"""Issue 25: nothing fails silently. Each failure a probe found ends in a one-line error naming the bad value and a
non-zero exit, or is recovered from; real files, real tiny models and real processes where the failure is theirs."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from test_report_training import trained
from test_reporting import make_results

from eebench.cli import main as eebench_cli
from eebench.hydra_callback import ReportCallback
from eebench.reporting.report import HTML_FILE, PDF_FILE, REPORT_FILE
from eebench.tracking.results import write_results

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
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown and "&lt;b&gt;sweep" in markdown
    assert "<script>" not in markdown and "<b>" not in markdown
    assert "<script>" not in (sweep / HTML_FILE).read_text(encoding="utf-8")
