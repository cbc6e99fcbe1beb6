"""How far the heads trained, and what more tokens bought: held-out KL and the exit probe against tokens seen.

The trainer evaluates every head every ``head.training.eval_every`` tokens on validation sequences it never trains on:
the KL to the final layer, and the probe (``heads.train.exit_probe``): an entropy exit calibrated for maximum
coverage at ``head.training.probe_target`` on half of those sequences and judged on the other half. Read along the
token axis, these curves are the training-budget study: what coverage and agreement a head had after 16k, 32k, ...
tokens of the same run (one learning-rate schedule over the whole budget, so an early point is a checkpoint of a
longer run, not a run with that budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eebench.reporting.document import Figure, Heading, Paragraph, Table
from eebench.reporting.formatting import MISSING, fmt
from eebench.reporting.plots import FIGURE_DIR, exit_colours, new_figure, save
from eebench.tracking.contract import RunResult
from eebench.tracking.contract_training import LossCurve, TrainingPhase

FIGURE_FILE = "head_training.png"
MAX_COLUMNS = 7  # evaluation points shown in the table; the figure has all of them


@dataclass(frozen=True)
class TrainedHeads:
    """One set of trained heads (several sweep points share it): its head curves and training summary."""

    backbone: str
    head: str
    probe_target: float | None
    curves: list[LossCurve]
    phase: TrainingPhase

    @property
    def label(self) -> str:
        return f"{self.backbone}/{self.head} (budget {self.phase.max_tokens:,} tokens)"  # sweeps may compare budgets


def trained_heads(runs: list[RunResult]) -> list[TrainedHeads]:
    """Distinct heads (by their cached folder) that recorded head curves, in the order first met."""
    seen: dict[str, TrainedHeads] = {}
    for run in runs:
        training = run.heads_training
        curves = [c for c in training.curves if c.module == "head"]
        if training.heads is None or not curves or run.artifacts.heads_dir in seen:
            continue
        seen[run.artifacts.heads_dir] = TrainedHeads(run.backbone, run.head, training.probe_target, curves, training.heads)
    return list(seen.values())


def shown_points(tokens: list[int]) -> list[int]:
    """Indexes of the evaluation points the table shows: all of them, or evenly spread ones with the first and last."""
    if len(tokens) <= MAX_COLUMNS:
        return list(range(len(tokens)))
    return sorted({int(round(i)) for i in np.linspace(0, len(tokens) - 1, MAX_COLUMNS)})


def _probe_cell(curve: LossCurve, index: int) -> str:
    kl = fmt(curve.heldout[index], ".2f")
    if not curve.coverage:
        return f"KL {kl}"
    agreement = curve.agreement[index] if curve.agreement else None
    return f"KL {kl} · {curve.coverage[index]:.0%} ({fmt(agreement, '.2f')})"


STOPPED = "stopped"  # the cell of a head that early stopping ended before that many tokens


def _cell_at(curve: LossCurve, tokens: int) -> str:
    """The head's evaluation after ``tokens`` tokens; heads stop at different counts, so it may have none."""
    if tokens in curve.tokens:
        return _probe_cell(curve, curve.tokens.index(tokens))
    return STOPPED if not curve.tokens or tokens > curve.tokens[-1] else MISSING


def budget_table(heads: TrainedHeads) -> Table:
    # Columns from every head's evaluations, so a row is never shorter than the header when early stopping
    # ends the heads at different token counts.
    tokens = sorted({t for curve in heads.curves for t in curve.tokens})
    columns = [tokens[i] for i in shown_points(tokens)]
    rows = [[f"block {c.exit_layer}"] + [_cell_at(c, t) for t in columns] for c in heads.curves]
    target = fmt(heads.probe_target, "g")
    return Table(
        ["head"] + [f"{t:,} tokens" for t in columns],
        rows,
        title=heads.label,
        caption=f"Held-out KL to the final layer · coverage of an entropy exit at target {target} (agreement of the "
        f"tokens that exit, on validation sequences not used to calibrate it); {STOPPED}: early stopping had ended "
        "that head's training before this many tokens.",
    )


def _phase_sentence(heads: TrainedHeads) -> str:
    phase = heads.phase
    stops = sorted({m.stop_reason for m in phase.modules})
    speed = f", {phase.tokens_per_s:,.0f} tokens/s" if phase.tokens_per_s else ""
    return (
        f"**{heads.label}**: {phase.mean_tokens_per_module:,.0f} tokens per head of a {phase.max_tokens:,}-token budget "
        f"({phase.steps} steps of {phase.batch_tokens:,} tokens, {phase.precision}{speed}); stopped: {', '.join(stops)}."
    )


def plot_head_training(all_heads: list[TrainedHeads], path: str | Path) -> Path:
    """Per trained head set, a row of two panels: held-out KL, and the exit probe's coverage (solid) and agreement."""
    figure = new_figure(9.5, 2.9 * len(all_heads) + 0.4)
    axes = figure.subplots(len(all_heads), 2, squeeze=False)
    for (kl_ax, probe_ax), heads in zip(axes, all_heads):
        colours = exit_colours([str(c.exit_layer) for c in heads.curves])
        for curve in heads.curves:
            colour = colours[str(curve.exit_layer)]
            kl_ax.plot(curve.tokens, curve.heldout, marker="o", ms=3, color=colour, label=f"block {curve.exit_layer}")
            if curve.coverage:
                probe_ax.plot(curve.tokens, curve.coverage, marker="o", ms=3, color=colour)
                agreement = [np.nan if a is None else a for a in curve.agreement or []]
                probe_ax.plot(curve.tokens, agreement, ls="--", color=colour, alpha=0.7)
        kl_ax.set(title=f"{heads.label}: held-out KL", xlabel="training tokens per head", ylabel="KL (nats)")
        kl_ax.legend(fontsize=7)
        target = fmt(heads.probe_target, "g")
        probe_ax.set(
            title=f"entropy exit at target {target}",
            xlabel="training tokens per head",
            ylabel="coverage (solid) / agreement (dashed)",
            ylim=(0, 1.02),
        )
        if heads.probe_target:
            probe_ax.axhline(heads.probe_target, color="grey", lw=0.8, ls=":")
    return save(figure, path)


def training_section(runs: list[RunResult], out_dir: Path) -> tuple[list, list[str]]:
    """The report's "Head training" blocks and the notes of anything not drawn."""
    all_heads = trained_heads(runs)
    if not all_heads:
        return [], []
    blocks: list = [
        Heading("Head training"),
        Paragraph(
            "Every head is evaluated on validation sequences of the training text it never trains on (not the "
            "calibration or held-out documents): its KL to the final layer and, as a probe of what it is worth as an "
            "exit, the share of tokens an entropy exit calibrated for maximum coverage at the probe target lets out "
            "(calibrated on half of those sequences, counted on the other half) and how often those tokens agree with "
            "the final layer. Earlier columns are checkpoints of the same run (one learning-rate schedule over the "
            "whole budget): the training-budget study."
        ),
        Paragraph(" ".join(_phase_sentence(h) for h in all_heads)),
    ]
    notes: list[str] = []
    try:
        path = plot_head_training(all_heads, Path(out_dir) / FIGURE_DIR / FIGURE_FILE)
        blocks.append(Figure(path, "Head training", "Held-out KL (left) and the entropy-exit probe (right) vs tokens."))
    except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the report
        notes.append(f"Head training figure: drawing failed ({type(exc).__name__}: {exc})")
    return blocks + [budget_table(h) for h in all_heads], notes
