"""report.md / report.html / report.pdf, hypervolume and stderr propagation (fixture numbers, no network).

One report over the two-backbone fixture sweep is shared by several tests: drawing it is the slow part.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from results_factory import make_results, make_sweep

from eebench.analysis.hypervolume import hypervolume_2d, hypervolume_table, reference_point
from eebench.analysis.pareto import add_pareto_flags, run_to_row, runs_to_frame
from eebench.errors import EEBenchError
from eebench.reporting import diagnostics
from eebench.reporting.pdf_tables import CELL_PAD, report_table
from eebench.reporting.report import write_report
from eebench.tracking.results import write_results

PAGE_OBJECT = re.compile(rb"/Type\s*/Page\b")  # /Pages (the page tree) does not match
IMAGE_OBJECT = re.compile(rb"/Subtype\s*/Image\b")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    sweep = make_sweep(tmp_path_factory.mktemp("formats") / "sweep", diagnostics=True)
    (sweep / "0" / "config.json").write_text('{"threshold": 0.8}', encoding="utf-8")
    write_report([sweep], sweep)
    return sweep


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_pdf_has_summary_tables_and_figures(report_dir):
    pdf = (report_dir / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(PAGE_OBJECT.findall(pdf)) >= 3
    # Every figure is embedded as an image: at least the Pareto overlay and the two per-backbone ones.
    assert len(IMAGE_OBJECT.findall(pdf)) >= 3


def _pieces_of(table) -> list:
    """The parts Platypus would put on successive 300-pt-high page areas."""
    parts, rest = [], table
    while rest.wrap(560, 300)[1] > 300:
        first, rest = rest.split(560, 300)
        parts.append(first)
    return parts + [rest]


def test_pdf_table_fits_the_page_wraps_cells_and_repeats_its_header():
    long_name = "/models/backbone-" + "x" * 200 + "/equal/linear/entropy"  # wider than the page
    rows = [[f"{long_name}-{i}", "equal", f"{i}.00 ± 0.10"] for i in range(60)]
    table = report_table(["backbone path", "placement", "acc EE %"], rows, 560)
    widths, cells = table._colWidths, [list(row) for row in table._cellvalues]  # Paragraphs, before layout
    assert sum(widths) <= 560 + 1e-6
    parts = _pieces_of(table)
    assert len(parts) > 1
    # Laid-out cells hold a tuple of flowables: the header's paragraph starts every page's part.
    assert all(part._cellvalues[0][0][0].getPlainText() == "backbone path" for part in parts)
    assert sum(len(part._cellvalues) - 1 for part in parts) == len(rows)  # every row exactly once
    for backbone, placement, accuracy in cells[1:]:
        backbone.wrap(widths[0] - 2 * CELL_PAD, 10_000)
        assert max(backbone.getActualLineWidths0()) <= widths[0] - 2 * CELL_PAD + 0.01  # wrapped, not clipped
        for cell, width in ((placement, widths[1]), (accuracy, widths[2])):
            cell.wrap(width - 2 * CELL_PAD, 10_000)
            assert len(cell.blPara.lines) == 1  # the long name does not squeeze short names or numbers


def test_html_is_self_contained_with_token_view(report_dir):
    html = _read(report_dir / "report.html")
    assert "data:image/png;base64," in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "<script" not in html
    sources = re.findall(r'<img src="([^"]{0,30})', html)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert 'class="token-view"' in html and 'class="tv-token"' in html
    assert "left at block 5" in html and "full model" in html  # token titles and the legend


def test_linked_html_points_at_the_figures_and_stale_figures_go(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "coverage_a_family_no_longer_swept.png").write_bytes(b"old")
    write_report([sweep], out, link_figures=True)
    html = _read(out / "report.html")
    assert "data:image/png" not in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    # Relative to the report's folder (the overlay sits beside report.html, the rest in figures/), never absolute.
    assert sources and all(not src.startswith(("/", "..")) and (out / src).is_file() for src in sources)
    assert not (out / "figures" / "coverage_a_family_no_longer_swept.png").exists()
    assert list((out / "figures").glob("pareto_*.png"))  # this report's own figures stay


def test_two_backbones_named_everywhere(report_dir):
    markdown, html = _read(report_dir / "report.md"), _read(report_dir / "report.html")
    for backbone in ("tiny-a", "tiny-b"):
        assert backbone in markdown and backbone in html
        assert (report_dir / "figures" / f"pareto_{backbone}.png").exists()
    assert "| threshold | acc EE % | acc full % |" in markdown
    # stderr shown; Δ paired by example (make_paired: 2 better, 8 worse of 200) with its stderr, 95% CI and flips
    assert "40.0 ± 3.0" in markdown and "-3.0 ± 1.6 [-6.1, +0.1] 2↑ 8↓" in markdown
    assert "examples better" in markdown  # the findings quote the paired change too


def test_markdown_links_existing_figures(report_dir):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", _read(report_dir / "report.md"))
    assert "pareto.png" in links and len(links) >= 8
    assert all((report_dir / link).is_file() for link in links)


def test_provenance_has_config_hashes(report_dir):
    digest = hashlib.sha256(b'{"threshold": 0.8}').hexdigest()[:12]
    markdown = _read(report_dir / "report.md")
    assert digest in markdown and "abc123" in markdown and "2025-01-02" in markdown
    assert "## Skipped" in markdown and "out of memory" in markdown


def test_hypervolume_hand_checked():
    # Staircase from ref (1, -3): x in [1,1.5] height 4, [1.5,2] height 3, [2,3] height 1 -> 2 + 1.5 + 1.
    points = [(2.0, 0.0), (1.5, 1.0), (3.0, -2.0), (1.2, 0.5), (0.9, 5.0), (math.nan, 1.0)]
    assert hypervolume_2d(points, (1.0, -3.0)) == pytest.approx(4.5)
    assert hypervolume_2d([], (1.0, 0.0)) == 0.0
    assert hypervolume_2d([(0.8, 1.0), (1.5, -4.0)], (1.0, -3.0)) == 0.0  # slower / worse than the reference


def test_hypervolume_table_uses_shared_reference():
    frame = add_pareto_flags(
        runs_to_frame(
            [
                make_results("a", 0.8, acc=0.40, base=0.43, speedup=1.5, theoretical=2.0),
                make_results("a", 0.9, acc=0.43, base=0.43, speedup=1.2, theoretical=1.5),
                make_results("b", 0.9, acc=0.50, base=0.50, speedup=0.9, theoretical=1.1),
            ]
        )
    )
    assert reference_point(frame) == (1.0, -4.0)  # worst Δ is -3 points, minus the 1-point margin
    table = hypervolume_table(frame).set_index(["scope", "name"])
    # a, measured: (1.5, -3) and (1.2, 0) above (1, -4): 0.2*4 + 0.3*1 = 1.1; b is slower than 1x.
    assert table.loc[("backbone", "a"), "hv_measured"] == pytest.approx(1.1)
    assert table.loc[("backbone", "b"), "hv_measured"] == 0.0
    assert table.loc[("backbone", "b"), "hv_theoretical"] == pytest.approx(0.1 * 4)
    assert table.loc[("family", "a/equal/linear/entropy"), "front_measured"] == 2


def _paired(task: str, metric: str, delta: float, stderr: float, n: int, improved: int, worsened: int) -> dict:
    ci95 = [delta - 1.96 * stderr, delta + 1.96 * stderr]
    return dict(task=task, metric=metric, n=n, delta=delta, stderr=stderr, ci95=ci95, improved=improved, worsened=worsened)


def test_stderr_propagates_to_mean_and_paired_delta():
    results = make_results()
    results["tasks"] = {"t1": {"acc": 0.5, "acc_stderr": 0.03}, "t2": {"acc_norm,none": 0.7, "acc_norm_stderr,none": 0.04}}
    results["baseline_tasks"] = {"t1": {"acc": 0.6, "acc_stderr": 0.03}, "t2": {"acc_norm": 0.7, "acc_norm_stderr": 0.04}}
    results["paired_tasks"] = [
        _paired("t1", "acc", -0.1, 0.02, 50, 1, 6),
        _paired("t2", "acc_norm", 0.0, 0.01, 40, 2, 2),
        _paired("t2", "exact_match", 0.3, 0.05, 40, 12, 0),  # not the metric t2 is compared on
    ]
    row = run_to_row(results)
    assert row["acc_se:t2"] == 0.04
    assert row["mean_acc_se"] == pytest.approx(math.sqrt(0.03**2 + 0.04**2) / 2)
    # Δ: the mean of the tasks' paired changes in points; its stderr combines theirs like the mean (tasks are
    # different examples), and its 95% CI is Δ ± 1.96 se.
    se = math.sqrt(2**2 + 1**2) / 2
    assert row["acc_delta"] == pytest.approx(-5.0) and row["acc_delta_se"] == pytest.approx(se)
    assert (row["acc_delta_ci95_low"], row["acc_delta_ci95_high"]) == pytest.approx((-5.0 - 1.96 * se, -5.0 + 1.96 * se))
    assert (row["acc_paired_examples"], row["acc_improved"], row["acc_worsened"]) == (90, 3, 8)  # t1 + t2's acc_norm
    assert row["acc_delta_method"] == "paired"
    del results["tasks"]["t1"]["acc_stderr"]
    assert math.isnan(run_to_row(results)["mean_acc_se"])  # a partial error bar would overstate precision


def test_no_example_changing_gives_a_rule_of_three_interval_not_a_point():
    """Two tasks of 150 and 100 examples, not one of which changed: the normal interval would be [0, 0]; the row's
    CI is ±100 x 3 / (2 tasks x 100 examples) points (eebench.analysis.paired.no_flip_half_width)."""
    results = make_results()
    results["tasks"] = {"t1": {"acc": 0.5, "acc_stderr": 0.03}, "t2": {"acc": 0.7, "acc_stderr": 0.04}}
    results["baseline_tasks"] = {"t1": {"acc": 0.5, "acc_stderr": 0.03}, "t2": {"acc": 0.7, "acc_stderr": 0.04}}
    results["paired_tasks"] = [_paired("t1", "acc", 0.0, 0.0, 150, 0, 0), _paired("t2", "acc", 0.0, 0.0, 100, 0, 0)]
    row = run_to_row(results)
    half = 100 * -math.log(0.05) / (2 * 100)
    assert row["acc_delta"] == 0.0 and row["acc_delta_se"] == 0.0
    assert (row["acc_delta_ci95_low"], row["acc_delta_ci95_high"]) == pytest.approx((-half, half))
    results["paired_tasks"][1] = _paired("t2", "acc", -0.01, 0.01, 100, 0, 1)  # one flip: the normal interval again
    row = run_to_row(results)
    assert row["acc_delta_ci95_high"] == pytest.approx(row["acc_delta"] + 1.96 * row["acc_delta_se"])


def test_results_without_paired_changes_fall_back_to_the_unpaired_error():
    """Results written before paired_tasks existed (or with a task left unpaired): per-task Δ stderr
    sqrt(se_ee² + se_full²) in points, combined like the mean, for every task of the row."""
    results = make_results()
    results["tasks"] = {"t1": {"acc": 0.5, "acc_stderr": 0.03}, "t2": {"acc": 0.7, "acc_stderr": 0.04}}
    results["baseline_tasks"] = {"t1": {"acc": 0.6, "acc_stderr": 0.03}, "t2": {"acc": 0.7, "acc_stderr": 0.04}}
    expected = math.sqrt((math.hypot(0.03, 0.03) * 100) ** 2 + (math.hypot(0.04, 0.04) * 100) ** 2) / 2
    for paired in ([], [_paired("t1", "acc", -0.1, 0.02, 50, 1, 6)]):
        results["paired_tasks"] = paired
        row = run_to_row(results)
        assert row["acc_delta"] == pytest.approx(-5.0) and row["acc_delta_se"] == pytest.approx(expected)
        assert row["acc_delta_ci95_high"] == pytest.approx(-5.0 + 1.96 * expected)
        assert row["acc_delta_method"] == "unpaired" and math.isnan(row["acc_improved"])


def test_backbone_front_spans_families():
    other_head = make_results("tiny-a", 0.9, acc=0.43, base=0.43, speedup=1.6, theoretical=1.6)
    other_head["head"] = "mlp"
    frame = add_pareto_flags(runs_to_frame([make_results("tiny-a", 0.9, acc=0.42, base=0.43), other_head]))
    assert frame["pareto_measured"].tolist() == [True, True]  # each alone in its family
    assert frame.set_index("head")["pareto_backbone_measured"].to_dict() == {"linear": False, "mlp": True}


def _untimed_results(threshold: float, host: str) -> dict:
    results = make_results(threshold=threshold)  # no calibration curves or exit sample
    results["timing"] = None  # timing=none
    results["provenance"]["hostname"] = host
    return results


def test_report_without_diagnostics_or_timing_says_what_is_missing(tmp_path):
    write_results(tmp_path / "sweep" / "0", _untimed_results(0.8, "box-1"))
    write_results(tmp_path / "sweep" / "1", _untimed_results(0.9, "box-2"))
    markdown = _read(write_report([tmp_path / "sweep"], tmp_path / "out"))
    assert "have no `curves`" in markdown and "no run recorded `timing.exit_sample`" in markdown
    assert "Figures not drawn:" in markdown.split("## Skipped", 1)[1]
    html = _read(tmp_path / "out" / "report.html")
    # Untimed points on two hosts measured no speed anywhere: no different-machines warning.
    assert 'class="token-view"' not in html and "Timings come from different machines" not in html
    assert (tmp_path / "out" / "report.pdf").read_bytes().startswith(b"%PDF")


def test_a_failing_figure_is_reported_not_fatal(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("bad curve")

    monkeypatch.setattr(diagnostics, "plot_reliability", broken)
    write_results(tmp_path / "run", make_results(diagnostics=True))
    markdown = _read(write_report([tmp_path / "run"], tmp_path / "out"))
    assert "drawing failed (ValueError: bad curve)" in markdown
    assert (tmp_path / "out" / "figures" / "coverage_tiny-a_equal_linear_entropy.png").exists()


def test_malformed_results_are_refused_on_writing_and_skipped_on_reading(tmp_path):
    results = make_results(diagnostics=True)
    results["curves"] = [{"layer": 5, "reliability": "oops", "coverage": []}]
    with pytest.raises(EEBenchError, match=r"curves\[0\]\.reliability is str 'oops', expected list"):
        write_results(tmp_path / "bad", results)
    write_results(tmp_path / "sweep" / "0", make_results(diagnostics=True))
    write_results(tmp_path / "sweep" / "1", make_results(threshold=0.8))
    path = tmp_path / "sweep" / "1" / "results.json"  # as an edited or older file would hold it
    path.write_text(path.read_text().replace('"theoretical_speedup"', '"speedup_theoretical"'))
    markdown = _read(write_report([tmp_path / "sweep"], tmp_path / "out"))
    skipped = markdown.split("## Skipped", 1)[1]
    assert "no field(s) ['theoretical_speedup'] and unknown field(s) ['speedup_theoretical']" in skipped
    assert "sweep/1/results.json" in skipped and str(tmp_path) not in skipped  # the file, named within its sweep
    assert len(pd.read_csv(tmp_path / "out" / "summary.csv")) == 1
    assert (tmp_path / "out" / "report.pdf").read_bytes().startswith(b"%PDF")


def test_hypervolume_csv_written(report_dir):
    table = pd.read_csv(report_dir / "hypervolume.csv")
    assert set(table["scope"]) == {"family", "backbone"} and set(table["reference_speedup"]) == {1.0}
    summary = pd.read_csv(report_dir / "summary.csv")
    assert {"mean_acc_se", "acc_delta_se", "pareto_backbone_measured"} <= set(summary)
    json.dumps(table.to_dict())  # plain values, usable by the W&B sweep summary
