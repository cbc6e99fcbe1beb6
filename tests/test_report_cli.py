"""The two ways a report is written outside a point: ``eebench report`` and the Hydra callback at the end of a sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from results_factory import POINTS, make_results, make_sweep

from eebench.cli import main
from eebench.hydra_callback import ReportCallback
from eebench.tracking.results import write_results


@pytest.fixture
def sweep(tmp_path) -> Path:
    return make_sweep(tmp_path / "sweep")


def test_cli_report(sweep, tmp_path, capsys):
    assert main(["report", str(sweep)]) == 0
    assert (sweep / "report.md").exists()
    write_results(tmp_path / "other" / "0", make_results(threshold=0.7))
    assert main(["report", str(sweep), str(tmp_path / "other"), str(sweep), "--out", str(tmp_path / "both")]) == 0
    # The points of both sweeps; a record found twice (here: a dir given twice) is counted once.
    assert len(pd.read_csv(tmp_path / "both" / "summary.csv")) == len(POINTS) + 1


def test_cli_errors_are_one_line(sweep, tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["report", str(sweep), str(sweep)]) == 2  # several dirs need --out
    assert "--out" in capsys.readouterr().err


def test_hydra_callback_writes_report_then_exits_1_on_failed_points_or_report(sweep, tmp_path, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": {"kind": "none"}})
    with pytest.raises(SystemExit) as exit_info:  # the sweep holds a failed point: report first, then exit 1
        ReportCallback().on_multirun_end(config)
    assert exit_info.value.code == 1 and "failed: RuntimeError: out of memory" in capsys.readouterr().err
    assert (sweep / "report.md").exists()
    assert len(pd.read_csv(sweep / "summary.csv")) == len(POINTS)

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    bad = OmegaConf.create({"hydra": {"sweep": {"dir": str(not_a_dir)}}, "logger": {"kind": "none"}})
    with pytest.raises(SystemExit) as exit_info:  # a report that cannot be written is a failed multirun
        ReportCallback().on_multirun_end(bad)
    assert exit_info.value.code == 1 and "error: sweep report failed" in capsys.readouterr().err
