"""Pareto families key on every axis that varies in a sweep; backbones are labelled by what was loaded."""

from __future__ import annotations

import os

from conftest import _write_prose, run_eebench
from results_factory import make_results
from test_report_training import _phase

from eebench.analysis.pareto import add_pareto_flags, runs_to_frame
from eebench.backbones.loader import backbone_label, load_backbone
from eebench.config import BackboneConfig
from eebench.reporting.comparison import comparison_rows
from eebench.tracking.contract import read_result


def _point(threshold: float, theoretical: float, acc: float, **changes) -> dict:
    results = make_results(threshold=threshold, theoretical=theoretical, acc=acc)
    results["exit"]["depth_speedup"] = theoretical
    results.update(changes)
    return results


def _fronts(points: list[dict]):
    frame = add_pareto_flags(runs_to_frame(points))
    return frame, {family: set(group.loc[group["pareto_theoretical"], "threshold"]) for family, group in frame.groupby("family")}


def test_placements_with_different_layers_never_share_a_front():
    # Same placement kind ("explicit"), different layers: the shallow one dominates the deep one on one front.
    shallow = dict(placement="explicit", exit_layers=[3, 7])
    deep = dict(placement="explicit", exit_layers=[20, 25])
    frame, fronts = _fronts(
        [
            _point(0.8, 2.0, 0.42, **shallow),
            _point(0.9, 1.8, 0.42, **shallow),
            _point(0.8, 1.4, 0.41, **deep),
            _point(0.9, 1.2, 0.40, **deep),
        ]
    )
    assert set(frame["family"]) == {"tiny-a/explicit/linear/entropy layers=3,7", "tiny-a/explicit/linear/entropy layers=20,25"}
    assert fronts["tiny-a/explicit/linear/entropy layers=20,25"] == {0.8}  # would be empty on a shared front
    # The backbone front still compares every configuration of the backbone.
    assert frame["pareto_backbone_theoretical"].sum() == 1


def test_backbones_given_only_by_path_never_share_a_front():
    a = dict(backbone="local", backbone_path="/models/a")
    b = dict(backbone="local", backbone_path="/models/b")
    frame, fronts = _fronts([_point(0.8, 2.0, 0.42, **a), _point(0.8, 1.4, 0.40, **b)])
    assert frame["backbone"].nunique() == 2 and all(label.startswith("local@") for label in frame["backbone"])
    assert [len(front) for front in fronts.values()] == [1, 1]
    assert frame["pareto_backbone_theoretical"].all()  # each is alone on its own backbone's front


def test_heads_trained_to_different_budgets_never_share_a_front():
    short, long = ({"heads_training": {"heads": _phase(tokens)}} for tokens in (30720, 98304))
    frame, fronts = _fronts([_point(0.8, 2.0, 0.42, **short), _point(0.8, 1.4, 0.40, **long)])
    assert list(frame["head_budget"]) == [30720, 98304]
    assert set(fronts) == {"tiny-a/equal/linear/entropy budget=30720", "tiny-a/equal/linear/entropy budget=98304"}
    assert [len(front) for front in fronts.values()] == [1, 1]  # the long-budget point is not dominated away


def test_accuracy_over_another_task_set_is_another_family():
    two = _point(0.9, 1.2, 0.42)
    more = _point(0.9, 1.2, 0.40)
    more["tasks"] = {**more["tasks"], "extra_task": {"acc": 0.4, "acc_stderr": 0.05}}
    frame, fronts = _fronts([two, more])
    count = len(two["tasks"])
    assert list(frame["eval_tasks"]) == [count, count + 1]
    assert set(fronts) == {f"tiny-a/equal/linear/entropy tasks={count}", f"tiny-a/equal/linear/entropy tasks={count + 1}"}


def test_other_varying_axes_split_families_and_a_threshold_sweep_keeps_short_labels():
    plain = runs_to_frame([_point(0.8, 2.0, 0.42), _point(0.9, 1.5, 0.43)])
    assert set(plain["family"]) == {"tiny-a/equal/linear/entropy"}
    mixed = [_point(0.8, 2.0, 0.42), _point(0.8, 2.0, 0.42, calibration_method="platt", backbone_dtype="bfloat16")]
    frame = runs_to_frame(mixed)
    assert set(frame["family"]) == {
        "tiny-a/equal/linear/entropy calibration=max_coverage dtype=float32",
        "tiny-a/equal/linear/entropy calibration=platt dtype=bfloat16",
    }
    # The head x metric table shows the extra axes in its own column instead of merging the rows.
    columns, rows = comparison_rows(frame)
    assert columns[0] == "other axes" and sorted(row[4] for row in rows) == [
        "calibration=max_coverage dtype=float32",
        "calibration=platt dtype=bfloat16",
    ]


def _calibrated(threshold: float, method: str, **fields) -> dict:
    point = _point(threshold, 1.5, 0.42, calibration_method=method)
    point["artifacts"]["calibration_config"] = {"method": method, "conditional": True, **fields}
    return point


def test_calibration_settings_of_one_method_never_share_a_front():
    """A sweep over calibration.bound (or delta) names the field that differs; a sweep over methods at their
    defaults keeps the short label, as do the points of one setting."""
    risk = {"bound": "clustered", "grid": 200}
    points = [
        _calibrated(0.8, "risk_controlled", delta=0.1, **risk),
        _calibrated(0.9, "risk_controlled", delta=0.1, **risk),
        _calibrated(0.8, "risk_controlled", delta=0.01, **risk),
        _calibrated(0.8, "max_coverage"),
    ]
    assert list(runs_to_frame(points)["family"]) == [
        "tiny-a/equal/linear/entropy calibration=max_coverage",
        "tiny-a/equal/linear/entropy calibration=risk_controlled delta=0.01",
        "tiny-a/equal/linear/entropy calibration=risk_controlled delta=0.1",
        "tiny-a/equal/linear/entropy calibration=risk_controlled delta=0.1",
    ]
    by_method = runs_to_frame([points[0], points[3]])
    assert set(by_method["family"]) == {
        "tiny-a/equal/linear/entropy calibration=risk_controlled",
        "tiny-a/equal/linear/entropy calibration=max_coverage",
    }


def test_backbone_label_defaults_to_the_loaded_models_own_name(tiny_model_dirs):
    directory = tiny_model_dirs["qwen2"]
    assert backbone_label(BackboneConfig(name_or_path=str(directory))) == directory.name
    assert backbone_label(BackboneConfig(name_or_path=f"{directory}/")) == directory.name
    assert backbone_label(BackboneConfig(name_or_path="bundled:smollm2-135m")) == "smollm2-135m"
    assert backbone_label(BackboneConfig(name_or_path="EleutherAI/pythia-160m")) == "EleutherAI/pythia-160m"
    assert backbone_label(BackboneConfig(name_or_path="/m", gguf_file="SmolLM2.Q8_0.gguf")) == "SmolLM2.Q8_0"
    assert backbone_label(BackboneConfig(name="mine", name_or_path=str(directory))) == "mine"
    assert load_backbone(BackboneConfig(name_or_path=str(directory), dtype="float32"), "cpu").name == directory.name


def test_smoke_point_is_labelled_by_its_directory(tmp_path, tiny_model_dirs):
    directory = tiny_model_dirs["qwen2"]
    env = {**os.environ, "EEBENCH_CACHE": str(tmp_path / "cache")}
    proc = run_eebench(
        [
            "experiment=smoke",
            f"backbone.name_or_path={directory}",
            "backbone.dtype=float32",
            "eval.tasks=[]",
            "timing=none",
            "logger=none",
            f"data.source={_write_prose(tmp_path / 'prose.txt')}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_result(tmp_path / "run").backbone == directory.name
