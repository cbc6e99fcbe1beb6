"""Turn loaded runs into a flat table and find accuracy-vs-speedup Pareto fronts.

Accuracy change (``acc_delta``) is in points (percentage points of accuracy) relative to the full
model on the same tasks, so 0 means "no loss" and -1 means "one point worse".

Standard errors (``*_se`` columns) of the accuracies are propagated from the evaluator's per-task stderr,
tasks assumed independent. The change's stderr, 95% CI and flip counts are paired by example
(``eebench.analysis.task_scores``), except for results written before they were (``acc_delta_method``).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from eebench.analysis.task_scores import accuracy_columns, as_result, number
from eebench.tracking.contract import RunResult
from eebench.tracking.contract_timing import TimingResult

FAMILY_COLUMNS = ("backbone", "placement", "head", "confidence")  # RunResult.family joins these
# Further axes a sweep may vary: where one takes more than one value among runs of the same
# FAMILY_COLUMNS, family labels name it ("layers=3,7"), so no front mixes configurations while a
# plain threshold sweep keeps the short label. (The number of heads is part of exit_layers.)
FAMILY_AXES = {
    "exit_layers": "layers",
    "head_budget": "budget",
    "calibration_method": "calibration",
    "timing_strategy": "strategy",
    "backbone_dtype": "dtype",
    "eval_tasks": "tasks",  # accuracy over another task set is another measurement, never the same front
}
# Both speedups are plotted and fronted separately: measured is what a user gets on this machine,
# theoretical (from layers skipped) is what a better engine could get. The theoretical axis is computed on the
# evaluation tasks' own tokens when the run has them (``exit_tasks``: the data accuracy comes from), else on
# held-out prose (``exit``); ``axis_theoretical_source`` says which. ``theoretical_speedup`` stays held-out.
SPEEDUP_COLUMNS = {"measured": "measured_speedup", "theoretical": "axis_theoretical_speedup"}
# Preference order when a task reports several accuracy-like metrics.
# Timed workloads and what is read from each (transformers greedy is the speed reference).
WORKLOAD_NUMBERS = ("tokens_per_s", "decode_tokens_per_s", "decode_ms_per_token", "prefill_seconds")
WORKLOADS = ("transformers", "full", "early_exit")
BASE_COLUMNS = [
    "run_dir",
    "family",
    "backbone",
    "backbone_path",
    "placement",
    "head",
    "confidence",
    "calibration_method",
    "threshold",
    "exit_layers",
    "head_budget",
    "eval_tasks",
    "num_layers",
    "agreement",
    "mean_layers",
    "theoretical_speedup",
    "depth_speedup",
    "axis_theoretical_speedup",
    "axis_theoretical_source",
    "task_agreement",
    "task_mean_layers",
    "task_theoretical_speedup",
    "task_depth_speedup",
    "task_exit_tokens",
    "measured_speedup",
    "speedup_min",
    "speedup_max",
    "decode_speedup",
    *(f"{workload}_{key}" for key in WORKLOAD_NUMBERS for workload in WORKLOADS),
    "timing_batch_size",
    "timing_strategy",
    "mean_acc",
    "mean_baseline_acc",
    "acc_delta",
    "mean_acc_se",
    "mean_baseline_acc_se",
    "acc_delta_se",
    "acc_delta_ci95_low",
    "acc_delta_ci95_high",
    "acc_delta_method",
    "acc_paired_examples",
    "acc_improved",
    "acc_worsened",
    "heldout_exited_agreement",
    "heldout_exited_tokens",
    "calibration_misses",
    "heldout_heads_checked",
    "heldout_heads_met",
    "heldout_heads_significant_miss",
    "accuracy_decoder",
    "device",
    "cpu_model",
    "hostname",
    "git_sha",
    "time",
]
# Numeric columns read from the exit stats and the timing section: {column: how to read it}.
EXIT_NUMBERS = ("agreement", "mean_layers", "theoretical_speedup", "depth_speedup")
TIMING_NUMBERS = {
    "measured_speedup": lambda t: t.speedup.value,
    "speedup_min": lambda t: t.speedup.min,
    "speedup_max": lambda t: t.speedup.max,
    "decode_speedup": lambda t: t.decode_speedup.value,
    "timing_batch_size": lambda t: t.batch_size,
    **{
        f"{workload}_{key}": (lambda t, w=workload, k=key: getattr(getattr(t, w), k))
        for workload in WORKLOADS
        for key in WORKLOAD_NUMBERS
    },
}
EXACT_KV = "exact_kv"
# Fronts are found within each group of these keys: a family's own trade-off, and the best a backbone
# offers across all its families (placement/head/confidence choices).
FRONT_SCOPES = {"family": "pareto", "backbone": "pareto_backbone"}


def _exit_columns(results: RunResult) -> dict[str, float]:
    return {f"exit:{layer}": number(share) for layer, share in results.exit.fraction.items()}


def family_name(results: RunResult | dict) -> str:
    """backbone/placement/head/confidence of one run alone; ``family_labels`` tells runs of a sweep apart."""
    return as_result(results).family


def _path_tag(path: Any) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:6]


def distinct_backbone_labels(frame: pd.DataFrame) -> pd.Series:
    """The backbone label, with a short hash of what was loaded where one label names several models
    (two ``backbone=local`` directories), so they never share a front."""
    paths = frame.groupby("backbone", dropna=False)["backbone_path"].transform("nunique")
    tagged = frame["backbone"].astype(str) + "@" + frame["backbone_path"].map(_path_tag)
    return tagged.where(paths > 1, frame["backbone"])


def family_labels(frame: pd.DataFrame) -> pd.Series:
    """backbone/placement/head/confidence, plus ``name=value`` for every FAMILY_AXES column that varies
    among runs sharing those four."""
    groups = frame.groupby(list(FAMILY_COLUMNS), dropna=False)
    varying = [axis for axis in FAMILY_AXES if axis in frame and (groups[axis].nunique(dropna=False) > 1).any()]
    labels = frame[list(FAMILY_COLUMNS)].astype(object).fillna("none").astype(str).agg("/".join, axis=1)
    for axis in varying:
        # A missing value (e.g. no strategy for a run with timing=none) is named, never NaN: pandas' str dtype keeps NaN.
        labels = labels + f" {FAMILY_AXES[axis]}=" + frame[axis].astype(object).fillna("none").astype(str)
    return labels + calibration_option_labels(frame)


def calibration_option_labels(frame: pd.DataFrame) -> pd.Series:
    """ " delta=0.05"-style suffixes naming each calibration field (``calibration.<field>``) that differs among runs
    sharing the family columns and the calibration method, so a sweep over ``calibration.bound`` or
    ``calibration.delta`` never puts two settings on one front; "" where none differs."""
    suffixes = pd.Series("", index=frame.index, dtype=object)
    if "calibration_options" not in frame:
        return suffixes
    options = frame["calibration_options"].map(lambda text: json.loads(text) if isinstance(text, str) else {})
    keys = [*FAMILY_COLUMNS, "calibration_method"]
    for _, index in frame.groupby(keys, dropna=False).groups.items():
        fields = sorted({name for row in options[index] for name in row})
        varying = [name for name in fields if len({repr(row.get(name)) for row in options[index]}) > 1]
        for row in index:
            suffixes[row] = "".join(f" {name}={options[row].get(name)}" for name in varying)
    return suffixes


def run_families(runs: list[RunResult]) -> list[str]:
    """The family label of each run (in order) as the report of exactly these runs names it."""
    return list(_labelled_frame(runs)["family"])


def _interval(value: Any) -> tuple[float, float]:
    pair = value if isinstance(value, (list, tuple)) and len(value) == 2 else (None, None)
    return number(pair[0]), number(pair[1])


def timing_ci_columns(results: RunResult) -> dict[str, Any]:
    """95% CIs of the speedups, the engine's full path against the reference, what the reference and
    precision were, and flagged measurement errors; NaN / None / "" for a run without timing."""
    timing = results.timing
    columns: dict[str, Any] = {}
    for name in ("speedup", "decode_speedup", "engine_full_speedup"):
        ratio = getattr(timing, name, None)
        columns[f"{name}_ci_lo"], columns[f"{name}_ci_hi"] = _interval(None if ratio is None else ratio.ci95)
    flags = timing.flags if timing is not None else []
    return {
        **columns,
        "engine_full_speedup": number(None if timing is None else timing.engine_full_speedup.value),
        "timing_reference": getattr(timing, "reference", None),
        "timing_flags": "; ".join(str(f.get("message", f)) if isinstance(f, dict) else str(f) for f in flags),
        "backbone_dtype": results.backbone_dtype,
    }


def task_exit_columns(results: RunResult) -> dict[str, Any]:
    """Exit figures on the evaluation tasks' tokens (NaN without them) and the theoretical Pareto axis."""
    stats = results.exit_tasks
    columns = {f"task_{name}": number(getattr(stats, name, None)) for name in EXIT_NUMBERS}
    columns["task_exit_tokens"] = number(getattr(stats, "tokens", None))
    source = "tasks" if stats is not None else "heldout"
    axis = stats.theoretical_speedup if stats is not None else results.exit.theoretical_speedup
    return {**columns, "axis_theoretical_speedup": number(axis), "axis_theoretical_source": source}


def calibration_columns(results: RunResult) -> dict[str, Any]:
    """Held-out agreement of the tokens that exited early, and every head that missed the target there
    ("" when none did; NaN / None for results written before the check)."""
    check = results.calibration.heldout
    if check is None:
        return {
            "heldout_exited_agreement": math.nan,
            "heldout_exited_tokens": math.nan,
            "calibration_misses": None,
            "heldout_heads_checked": math.nan,
            "heldout_heads_met": math.nan,
            "heldout_heads_significant_miss": math.nan,
        }
    misses = [f"block {head.layer}: {head.agreement:.3f} on {head.tokens} tokens" for head in check.heads if not head.target_met]
    checked = [head for head in check.heads if head.tokens]  # a head no held-out token exits at makes no claim
    return {
        "heldout_exited_agreement": number(check.exited_agreement),
        "heldout_exited_tokens": check.exited_tokens,
        "calibration_misses": "; ".join(misses),
        "heldout_heads_checked": len(checked),
        "heldout_heads_met": sum(head.target_met for head in checked),
        "heldout_heads_significant_miss": _count_significant(checked),
    }


def _count_significant(heads: list) -> float:
    """Heads significantly below their target; NaN when the results predate that test."""
    tested = [head.significant_miss for head in heads if head.significant_miss is not None]
    return sum(tested) if tested or not heads else math.nan


def _timing_columns(timing: TimingResult | None) -> dict[str, float]:
    # A run without timing (timing=none) has NaN speed columns.
    return {column: math.nan if timing is None else number(read(timing)) for column, read in TIMING_NUMBERS.items()}


def run_to_row(results: RunResult | dict) -> dict[str, Any]:
    """One flat row for one run."""
    results = as_result(results)
    timing, provenance = results.timing, results.provenance
    row: dict[str, Any] = {key: getattr(results, key) for key in FAMILY_COLUMNS}
    row["head"] = results.head_label  # a shortlist head and a full one never share a family
    row.update(
        run_dir=results.run_dir,
        backbone_path=results.backbone_path,
        family=results.family,  # refined over the whole sweep by runs_to_frame
        calibration_method=results.calibration_method,
        # the method's own fields as recorded (delta, bound, ...), so family labels can tell settings apart
        calibration_options=_calibration_options(results),
        threshold=number(results.threshold),
        exit_layers=",".join(str(layer) for layer in results.exit_layers),
        num_layers=number(results.num_layers),
        head_budget=_head_budget(results),
        eval_tasks=len(results.tasks) if results.tasks else None,
        timing_strategy=timing.strategy if timing else None,
        # "exact_kv": copy/skip points whose task accuracy came from full-KV teacher forcing, not their decoding.
        accuracy_decoder=results.eval_decoders.get("accuracy"),
        # The timing device is the one that matters for speed; fall back to the run's device.
        device=(timing.device if timing else None) or (provenance.device if provenance else None),
        cpu_model=timing.cpu_model if timing else None,  # two hosts may share a name, not a CPU model
        hostname=provenance.hostname if provenance else None,
        git_sha=provenance.git_sha if provenance else None,
        time=provenance.time if provenance else None,
    )
    row.update({column: number(getattr(results.exit, column)) for column in EXIT_NUMBERS})
    row.update(_timing_columns(timing))
    row.update(timing_ci_columns(results))
    row.update(calibration_columns(results))
    row.update(task_exit_columns(results))
    row.update(accuracy_columns(results))
    row.update(_exit_columns(results))
    return row


def _calibration_options(results: RunResult) -> str | None:
    recorded = dict(results.artifacts.calibration_config) if results.artifacts else {}
    recorded.pop("method", None)
    return json.dumps(recorded, sort_keys=True) if recorded else None


def _head_budget(results: RunResult) -> int | None:
    """Training tokens the heads were allowed (head.training.max_tokens); None for heads that are not trained."""
    phase = results.heads_training.heads if results.heads_training else None
    return phase.max_tokens if phase else None


def _labelled_frame(runs: list[RunResult | dict]) -> pd.DataFrame:
    """One row per run in the given order, backbone and family labels telling every configuration apart."""
    rows = [run_to_row(results) for results in runs]
    extra = sorted({key for row in rows for key in row} - set(BASE_COLUMNS), key=_extra_column_order)
    frame = pd.DataFrame(rows, columns=BASE_COLUMNS + extra)
    if not frame.empty:
        frame["backbone"] = distinct_backbone_labels(frame)
        frame["family"] = family_labels(frame)
    return frame


def runs_to_frame(runs: list[RunResult | dict]) -> pd.DataFrame:
    """One row per run, base columns first, then per-task and exit-histogram columns (sorted)."""
    frame = _labelled_frame(runs)
    if not frame.empty:
        frame = frame.sort_values(["family", "threshold"], kind="stable").reset_index(drop=True)
    return frame


def _extra_column_order(name: str) -> tuple:
    prefix, _, rest = name.partition(":")
    # Group acc:<task> with baseline:<task> (and their stderr); exit columns by layer number, "final" last.
    order = {"acc": 0, "baseline": 0, "acc_se": 0, "baseline_se": 0, "exit": 1}.get(prefix, 2)
    layer = int(rest) if rest.isdigit() else math.inf
    return (order, layer if prefix == "exit" else 0, rest, prefix)


def task_names(frame: pd.DataFrame) -> list[str]:
    return [column.split(":", 1)[1] for column in frame.columns if column.startswith("acc:")]


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True where no other point is >= in both x and y and > in one (maximising both); NaN never on it."""
    xs = df[x].to_numpy(dtype=float)
    ys = df[y].to_numpy(dtype=float)
    valid = ~(np.isnan(xs) | np.isnan(ys))
    on_front = valid.copy()
    for i in np.flatnonzero(valid):
        at_least = valid & (xs >= xs[i]) & (ys >= ys[i])
        strictly = (xs > xs[i]) | (ys > ys[i])
        on_front[i] = not np.any(at_least & strictly)
    return pd.Series(on_front, index=df.index, name=f"pareto:{x}")


def add_pareto_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``pareto_<kind>`` (front within the family) and ``pareto_backbone_<kind>`` (within the backbone)."""
    frame = frame.copy()
    own = frame["accuracy_decoder"] != EXACT_KV if "accuracy_decoder" in frame else pd.Series(True, index=frame.index)
    for scope, prefix in FRONT_SCOPES.items():
        for kind, speedup in SPEEDUP_COLUMNS.items():
            flags = pd.Series(False, index=frame.index)
            # Across families, only points whose accuracy is their own decoding's compete; an exact-KV
            # accuracy stands in for copy/skip only on its own (labelled) family front.
            rows = frame if scope == "family" else frame[own]
            for _, group in rows.groupby(scope, sort=False):
                flags.loc[group.index] = pareto_front(group, speedup, "acc_delta")
            frame[f"{prefix}_{kind}"] = flags.astype(bool)
    return frame


def pareto_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows on a family front, once per speedup kind, with ``speedup_kind`` saying which front.

    The ``pareto_backbone_*`` columns stay, telling whether the row is also on its backbone's front.
    """
    flagged = frame if "pareto_measured" in frame else add_pareto_flags(frame)
    parts = []
    for kind in SPEEDUP_COLUMNS:
        on_front = flagged[flagged[f"pareto_{kind}"]].copy()
        on_front.insert(0, "speedup_kind", kind)
        parts.append(on_front)
    table = pd.concat(parts, ignore_index=True)
    return table.drop(columns=[f"pareto_{kind}" for kind in SPEEDUP_COLUMNS])
