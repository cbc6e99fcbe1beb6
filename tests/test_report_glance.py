"""Reports one reads at a glance: Findings open with the answer per backbone in a few bullets (long lists become
tables), and the Pareto figure stays readable with any number of families (numbers are fixtures, not measurements)."""

from __future__ import annotations

import itertools
import json
import os

import pandas as pd
import pytest
from matplotlib.lines import Line2D
from results_factory import make_results

from eebench.analysis.pareto import add_pareto_flags, runs_to_frame
from eebench.reporting.diagnostics import cost_accuracy_figure
from eebench.reporting.document import Bullets, Table
from eebench.reporting.facets import MAX_FAMILIES_PER_PANEL, facets
from eebench.reporting.findings import MAX_BULLETS, findings_content, findings_section
from eebench.reporting.listings import MAX_INLINE
from eebench.reporting.plots import CONTEXT_LABEL, pareto_figure
from eebench.reporting.report import write_report
from eebench.tracking.results import write_error, write_results


def point(head="linear", threshold=0.9, acc=0.43, speedup=1.3, ci=(1.2, 1.4), theoretical=1.5, backbone="tiny-a", **fields):
    """One run's results: full-model accuracy 0.43 on 200 paired examples; ``speedup=None`` for an untimed point."""
    results = make_results(backbone=backbone, threshold=threshold, acc=acc, base=0.43, speedup=speedup or 1.0)
    results["head"] = head
    results["exit_tasks"]["theoretical_speedup"] = theoretical
    if speedup is None:
        results["timing"] = None
    else:
        results["timing"]["speedup_ci95"] = list(ci)
    for key, value in fields.items():
        results[key] = value
    return results


def frame_of(*runs: dict) -> pd.DataFrame:
    return add_pareto_flags(runs_to_frame(list(runs)))


def test_the_first_bullet_is_the_fastest_configuration_within_one_point_with_its_cis():
    frame = frame_of(
        point("linear", acc=0.425, speedup=1.30, ci=(1.20, 1.40)),  # -0.5 points: within 1 point
        point("mlp", acc=0.40, speedup=1.80, ci=(1.70, 1.90)),  # faster, but -3 points
        point("lens", acc=0.43, speedup=1.05, ci=(0.98, 1.12)),  # no loss, slower than linear
        point("linear", backbone="tiny-b", acc=0.43, speedup=None, theoretical=1.40),  # untimed backbone
        point("mlp", backbone="tiny-b", acc=0.40, speedup=None, theoretical=1.90),
    )
    items, _ = findings_content(frame, 0)
    linear = frame[(frame["backbone"] == "tiny-a") & (frame["head"] == "linear")].iloc[0]
    low, high = linear["acc_delta_ci95_low"], linear["acc_delta_ci95_high"]
    assert items[0] == (
        "**tiny-a**: the fastest timed configuration within 1 point of the full model (its 95% CI lies above every other's) "
        "is `tiny-a/equal/linear/entropy` at threshold 0.9: 1.30x [95% CI 1.20–1.40] measured speedup against "
        f"transformers greedy decoding, accuracy change -0.5 points [95% CI {low:+.1f} to {high:+.1f}; "
        "2 examples better, 3 worse]. Measured speedup is a median 87% of the theoretical speedup."
    )
    # Nothing was timed on tiny-b: the answer says its speedup is theoretical.
    assert items[1].startswith(
        "**tiny-b**: no measured timings with task accuracy; by theoretical speedup, the fastest configuration within "
        "1 point of the full model is `tiny-b/equal/linear/entropy` at threshold 0.9: 1.40x theoretical speedup, "
        "accuracy change +0.0 points"
    )


def test_untimed_points_of_a_timed_backbone_are_answered_by_theoretical_speedup_too():
    frame = frame_of(
        point("linear", acc=0.43, speedup=0.95, ci=(0.90, 1.00), theoretical=1.0),
        point("mlp", acc=0.425, speedup=None, theoretical=1.2),
    )
    answer = findings_content(frame, 0)[0][0]
    assert "the only timed configuration within 1 point of the full model is `tiny-a/equal/linear/entropy`" in answer
    assert (
        "Of the 1 untimed points, by theoretical speedup (the cost model's, not measured): the fastest configuration "
        "within 1 point of the full model is `tiny-a/equal/mlp/entropy` at threshold 0.9: 1.20x theoretical speedup"
    ) in answer


def test_indistinguishable_fastest_points_each_carry_speedup_ci_and_accuracy_change():
    frame = frame_of(
        point("linear", acc=0.43, speedup=0.90, ci=(0.86, 0.94)),
        point("mlp", acc=0.43, speedup=0.92, ci=(0.85, 0.98)),
    )
    answer = findings_content(frame, 0)[0][0]
    assert "2 timed configurations are the fastest and **indistinguishable**" in answer
    assert "`tiny-a/equal/mlp/entropy` at threshold 0.9 (0.92x [95% CI 0.85–0.98], accuracy change +0.0 points" in answer
    assert answer.index("mlp") < answer.index("linear")  # the higher point estimate first
    assert "Each is measurably **slower** than transformers greedy decoding." in answer


def crowded_sweep() -> pd.DataFrame:
    """Twelve backbones, every kind of caveat, and lists far longer than a bullet should hold."""
    runs = []
    for number, threshold in itertools.product(range(12), (0.6, 0.7, 0.8, 0.9)):
        results = point(
            backbone=f"tiny-{number}",
            threshold=threshold,
            acc=0.40 + threshold / 30,
            speedup=0.9 + threshold / 5,
            ci=(0.8 + threshold / 5, 1.0 + threshold / 5),
            theoretical=0.7 + threshold / 3,
        )
        results["calibration"]["heldout"] = {
            "heads": [{"layer": 5, "agreement": threshold - 0.1, "tokens": 10, "target_met": False}],
            "exited_agreement": threshold - 0.1,
            "exited_tokens": 10,
            "tokens": 100,
            "target_met": False,
        }
        results["provenance"]["hostname"] = f"host-{number % 2}"  # mixed hardware
        results["backbone_dtype"] = ("float32", "bfloat16")[number % 2]  # mixed precision
        runs.append(results)
    for strategy, decoder in (("skip", "exact_kv"), ("dssd", "verified_full_model")):
        for number in range(5):
            results = point(backbone=f"tiny-{number}", threshold=0.95)
            results["timing"]["strategy"] = strategy
            results["eval_decoders"] = {
                "loglikelihood": "teacher_forced_exact_kv",
                "generate_until": f"engine:{strategy}",
                "strategy": strategy,
                "accuracy": decoder,
                "first_token": "final_layer",
            }
            runs.append(results)
    return frame_of(*runs)


def test_findings_stay_within_ten_bullets_and_move_long_lists_to_tables():
    frame = crowded_sweep()
    assert (frame["calibration_misses"].fillna("") != "").sum() == 48  # the fixture really misses calibration
    items, tables = findings_content(frame, skipped_count=3)
    assert len(items) <= MAX_BULLETS
    text = " ".join(items)
    assert " more" not in text.replace("more work", "")  # no list that trails off as "... and N more"
    assert "**12 backbones**" in items[0]
    titles = [table.title for table in tables]
    named = text + " ".join(cell for table in tables for row in table.rows for cell in row)
    for title in titles:  # every table is named by the bullet (or the answer) that counts its rows
        assert f"*{title}*" in named
    assert len(titles) == len(set(titles))  # lists of one kind from several backbones share a table
    answers = tables[titles.index("Fastest within 1 point of the full model, per backbone")]
    assert [row[0] for row in answers.rows] == sorted(f"tiny-{n}" for n in range(12))
    misses = tables[titles.index("Points that miss their calibration target")]
    assert len(misses.rows) == 48 and misses.rows[0][2] == "block 5: 0.500 on 10 tokens"
    assert len(tables[titles.index("Points scored with exact-KV accuracy")].rows) == 5
    assert "Points with theoretical speedup below 1" in titles
    # The section itself: the bullets first, then the tables they point to.
    blocks = findings_section(frame, 3)
    assert isinstance(blocks[1], Bullets) and blocks[1].items == items
    assert [block.title for block in blocks if isinstance(block, Table)] == titles


def test_a_short_list_stays_in_its_bullet():
    frame = frame_of(*(point(threshold=t, theoretical=0.8) for t in (0.8, 0.9)))
    items, tables = findings_content(frame, 0)
    costly = next(item for item in items if "theoretical speedup below 1" in item)
    assert costly.endswith("`tiny-a/equal/linear/entropy` at threshold 0.8; `tiny-a/equal/linear/entropy` at threshold 0.9.")
    assert not [table for table in tables if "below 1" in table.title] and MAX_INLINE >= 2


# ----------------------------------------------------------------------------- the Pareto figure


def many_families(heads=("linear", "mlp", "lens"), placements=("equal", "late")) -> pd.DataFrame:
    """len(heads) x 2 confidence metrics x len(placements) families, four thresholds each, all timed."""
    runs = []
    for head, confidence, placement in itertools.product(heads, ("entropy", "gate"), placements):
        for threshold in (0.6, 0.7, 0.8, 0.9):
            results = point(
                head,
                threshold,
                acc=0.30 + threshold / 8,
                speedup=0.8 + (1 - threshold) * len(head) / 5,
                ci=(0.7 + (1 - threshold) * len(head) / 5, 0.9 + (1 - threshold) * len(head) / 5),
                theoretical=1.0 + (1 - threshold) * (1 + len(head) / 10),
            )
            results.update(confidence=confidence, placement=placement)
            runs.append(results)
    return frame_of(*runs)


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


@pytest.mark.parametrize("heads", [("linear", "mlp", "lens"), ("linear", "mlp", "lens", "gated", "deep")])
def test_many_families_are_faceted_with_legends_outside_and_labels_apart(heads):
    frame = many_families(heads)
    assert frame["family"].nunique() == len(heads) * 4  # 12, then 20 families
    figure = pareto_figure(frame, backbone_front=True)
    renderer = figure.canvas.get_renderer()
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.get_legend() is not None]
    grouped = facets(frame)
    assert len(grouped) > 1 and all(len(facet.families) <= MAX_FAMILIES_PER_PANEL for facet in grouped)
    assert len(panels) == 2 * len(grouped)  # the same panels for measured and theoretical speedup
    for ax in panels:
        legend, axes_box = ax.get_legend(), _extent(ax, renderer)
        assert not _extent(legend, renderer).overlaps(axes_box)  # outside the data
        names = [text.get_text() for text in legend.get_texts()]
        assert len([name for name in names if name not in (CONTEXT_LABEL,) and not name.startswith("backbone front")]) <= (
            MAX_FAMILIES_PER_PANEL
        )
        # The backbone front is drawn, thick, in every panel.
        fronts = [line for line in ax.get_lines() if str(line.get_label()).startswith("backbone front")]
        assert len(fronts) == 1 and isinstance(fronts[0], Line2D) and fronts[0].get_linewidth() > 2
        labels = [_extent(text, renderer) for text in ax.texts]
        assert labels, "threshold labels are drawn"
        assert not any(a.overlaps(b) for a, b in itertools.combinations(labels, 2))
        assert all(axes_box.contains(box.x0, box.y0) and axes_box.contains(box.x1, box.y1) for box in labels)


def test_few_families_keep_one_panel_per_speedup_with_full_labels():
    frame = many_families(("linear",), ("equal",))  # two families
    for ax in pareto_figure(frame).axes:  # measured, then theoretical, side by side
        names = [text.get_text() for text in ax.get_legend().get_texts()]
        assert ax.get_title() == "tiny-a/equal/linear" and names == ["entropy", "gate"]


def test_the_cost_accuracy_legend_lies_outside_the_data_and_its_labels_apart():
    frame = many_families()  # 12 families in one panel
    figure = cost_accuracy_figure(frame)
    renderer = figure.canvas.get_renderer()
    (ax,) = figure.axes
    legend, axes_box = ax.get_legend(), _extent(ax, renderer)
    assert len(legend.get_texts()) == frame["family"].nunique()
    assert not _extent(legend, renderer).overlaps(axes_box)
    assert figure.bbox.contains(*_extent(legend, renderer).p0) and figure.bbox.contains(*_extent(legend, renderer).p1)
    thresholds = [_extent(text, renderer) for text in ax.texts if not text.get_text().startswith("full ")]
    assert thresholds and not any(a.overlaps(b) for a, b in itertools.combinations(thresholds, 2))


# ----------------------------------------------------------------------------- no machine layout in a report


def sweep_with_every_kind_of_skip(sweep):
    """Points skipped for reasons that name files of the run: an error about a file in it, a results.json off the
    contract, and an older copy of a configuration."""
    write_results(sweep / "0", make_results())
    missing = sweep / "1" / "heads" / "head_5.safetensors"
    write_error(sweep / "1", FileNotFoundError(f"[Errno 2] No such file or directory: '{missing}'"), {"threshold": 0.9})
    (sweep / "2").mkdir(parents=True)
    (sweep / "2" / "results.json").write_text(json.dumps({"status": "complete"}))
    for name, acc in (("3", 0.40), ("4", 0.42)):  # two launches' results of one configuration
        write_results(sweep / name, make_results(threshold=0.95, acc=acc))
        (sweep / name / "config.json").write_text(json.dumps({"threshold": 0.95}))
    os.utime(sweep / "3" / "results.json", (1, 1))  # 3 is the older copy
    return sweep


def test_skip_reasons_in_a_report_name_sweep_and_point_never_the_absolute_run_directory(tmp_path):
    sweep = sweep_with_every_kind_of_skip(tmp_path / "sweep")
    out = write_report([sweep], tmp_path / "report").parent
    for name in ("report.md", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "sweep/1/heads/head_5.safetensors" in text and "results file: sweep/2/results.json" in text, name
        assert "same configuration as sweep/4" in text, name
        for absolute in {str(tmp_path), str(tmp_path.resolve())}:
            assert absolute not in text, name
