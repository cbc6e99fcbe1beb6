"""Draw every report figure and return the document blocks that show them.

A figure that cannot be drawn (older results.json without ``curves`` or ``exit_sample``, no timing,
malformed data) never stops the report: it is left out and a note says which and why, both where
the figure would have been and in the Skipped section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from eebench.analysis.pareto import run_families
from eebench.reporting import diagnostics
from eebench.reporting.comparability import mixed_hardware_caption, mixed_hardware_note
from eebench.reporting.document import Callout, Figure, Heading, Paragraph, RawHtml, inline_html
from eebench.reporting.formatting import slug
from eebench.reporting.plots import FIGURE_DIR, plot_pareto
from eebench.reporting.token_view import MAX_VIEWS, collect_samples, plot_token_views, sample_text, samples_html
from eebench.tracking.contract import RunResult

OVERLAY_FILE = "pareto.png"  # at the top of the output dir, where earlier reports put it
PARETO_CAPTION = (
    "Measured speedup (generation on this hardware, against the speed reference in *What was run*) and "
    "theoretical speedup from the layers skipped (on the tokens named in *What was run*), each in its own panel or "
    "row. With many configuration families, each row has one panel per head type, confidence metric or backbone "
    "(the panel title says what its families share, the legend what tells them apart), and grey dots are the "
    "backbone's configurations drawn in the other panels. Thin lines join each family's Pareto front; numbers next "
    "to points are the target agreement thresholds (left out where they would overlap: every threshold is in the "
    "results tables); vertical bars are ±1 stderr of the accuracy change, horizontal bars (measured, where "
    "recorded) the 95% CI of the measured speedup; a point whose CI crosses the dashed line at 1 shows no "
    "measurable difference in speed. Red rings: flagged measurement errors. Dashed lines mark no accuracy change "
    "and no speedup."
)


@dataclass
class FigureSet:
    blocks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures not drawn, and why

    def skip(self, what: str, why: str) -> None:
        self.notes.append(f"{what}: {why}")
        self.blocks.append(Paragraph(f"*{what} not drawn: {why}.*"))

    def attempt(self, what: str, missing: str, draw: Callable, *args) -> Path | None:
        """Run ``draw``; a None result or an exception becomes a note instead of a figure."""
        try:
            path = draw(*args)
        except Exception as exc:  # noqa: BLE001 - one bad figure must not cost the whole report
            self.skip(what, f"drawing failed ({type(exc).__name__}: {exc})")
            return None
        if path is None:
            self.skip(what, missing)
        return path


def _pareto_blocks(figures: FigureSet, frame: pd.DataFrame, out_dir: Path) -> None:
    figures.blocks.append(Heading("Accuracy vs speedup"))
    note = mixed_hardware_note(frame)
    figures.blocks += [Callout(note)] if note else []
    backbones = sorted(frame["backbone"].unique()) if not frame.empty else []
    single = len(backbones) == 1  # then the overlay is the backbone's figure, with its front drawn
    front_note = " The thick dark line with open rings is the backbone's front across all its families."
    warning = mixed_hardware_caption(frame)
    overlay = figures.attempt("Pareto overlay", "", plot_pareto, frame, out_dir / OVERLAY_FILE, None, single)
    if overlay:
        figures.blocks.append(
            Figure(
                overlay, "Pareto fronts" if single else "All backbones", PARETO_CAPTION + (front_note if single else "") + warning
            )
        )
    for backbone in backbones if not single else []:
        path = out_dir / FIGURE_DIR / f"pareto_{slug(backbone)}.png"
        drawn = figures.attempt(
            f"Pareto for {backbone}",
            "",
            plot_pareto,
            frame[frame["backbone"] == backbone],
            path,
            f"{backbone}: accuracy vs speedup (thick line: front across its families)",
            True,
        )
        if drawn:
            figures.blocks.append(Figure(drawn, f"Backbone {backbone}", PARETO_CAPTION + front_note + warning))


def _figure_section(figures: FigureSet, heading: str, title: str, caption: str, missing: str, draw: Callable, *args) -> None:
    """A section holding one figure, or the note saying why it is missing."""
    figures.blocks.append(Heading(heading))
    path = figures.attempt(title, missing, draw, *args)
    if path:
        figures.blocks.append(Figure(path, title, caption))


def _cost_blocks(figures: FigureSet, frame: pd.DataFrame, out_dir: Path) -> None:
    _figure_section(
        figures,
        "Accuracy vs compute",
        "Accuracy vs per-token compute",
        "Mean task accuracy against the per-token cost of each configuration as a share of the full model's "
        "(100 / theoretical speedup, counting every exit head evaluated). Stars: the full model.",
        "no run has both task accuracy and a theoretical speedup",
        diagnostics.plot_cost_accuracy,
        frame,
        out_dir / FIGURE_DIR / "cost_accuracy.png",
    )


def _exit_blocks(figures: FigureSet, frame: pd.DataFrame, out_dir: Path) -> None:
    _figure_section(
        figures,
        "Where tokens exit",
        "Exit histograms",
        "Share of held-out tokens leaving at each exit head (colour) or running the full model (grey), one bar "
        "per threshold. Colours match the per-token view.",
        "no run recorded `exit.fraction`",
        diagnostics.plot_exit_histograms,
        frame,
        out_dir / FIGURE_DIR / "exit_histograms.png",
    )


def _calibration_inputs(runs: list[RunResult]) -> dict[str, dict]:
    """Per family: curves (from its first run that has them), targets and chosen thresholds per head."""
    families: dict[str, dict] = {}
    for results, label in zip(runs, run_families(runs)):
        family = families.setdefault(label, {"curves": None, "targets": [], "chosen": {}, "metric": results.confidence})
        if family["curves"] is None and results.curves:
            family["curves"] = [dataclasses.asdict(head) for head in results.curves]
        target = results.calibration.target
        family["targets"].append(target)
        for head in results.calibration.per_head_heldout:
            family["chosen"].setdefault(str(head.get("layer")), []).append({**head, "target": target})
    return families


RELIABILITY_CAPTION = (
    "Held-out tokens binned by quantiles of each head's confidence metric: mean metric value vs the share "
    "whose head prediction agrees with the full model. Dotted lines: agreement targets."
)
COVERAGE_CAPTION = (
    "For each head, the share of held-out tokens it would let out at each threshold (solid) and their "
    "agreement with the full model (dashed); dots are the thresholds calibration chose (darker red: "
    "higher agreement target)."
)


def _family_calibration(figures: FigureSet, family: str, inputs: dict, out_dir: Path) -> None:
    targets = sorted({t for t in inputs["targets"] if isinstance(t, (int, float))})
    base = out_dir / FIGURE_DIR
    reliability = figures.attempt(
        f"Reliability for {family}",
        "",
        diagnostics.plot_reliability,
        inputs["curves"],
        base / f"reliability_{slug(family)}.png",
        family,
        inputs["metric"],
        targets,
    )
    if reliability:
        figures.blocks.append(Figure(reliability, f"Reliability: {family}", RELIABILITY_CAPTION))
    coverage = figures.attempt(
        f"Coverage for {family}",
        "",
        diagnostics.plot_coverage,
        inputs["curves"],
        inputs["chosen"],
        base / f"coverage_{slug(family)}.png",
        family,
        inputs["metric"],
    )
    if coverage:
        figures.blocks.append(Figure(coverage, f"Threshold → coverage: {family}", COVERAGE_CAPTION))


def _calibration_blocks(figures: FigureSet, runs: list[RunResult], out_dir: Path) -> None:
    figures.blocks.append(Heading("Calibration"))
    families = _calibration_inputs(runs)
    if not families:
        figures.skip("Calibration curves", "no complete runs")
    for family, inputs in sorted(families.items()):
        if inputs["curves"] is None:
            figures.skip(
                f"Calibration curves for {family}", "its results.json files have no `curves` (written by an older eebench)"
            )
        else:
            _family_calibration(figures, family, inputs, out_dir)


def _token_blocks(figures: FigureSet, runs: list[RunResult], out_dir: Path) -> None:
    figures.blocks.append(Heading("Per-token exits"))
    samples = collect_samples(runs)
    if not samples:
        figures.skip("Per-token exit view", "no run recorded `timing.exit_sample` (timing disabled or an older eebench)")
        return
    pictures = (
        figures.attempt("Per-token exit picture", "", plot_token_views, samples, out_dir / FIGURE_DIR / "token_exits") or []
    )
    shown = samples[:MAX_VIEWS]
    more = f" ({len(samples) - MAX_VIEWS} more runs have a sample in their results.json)" if len(samples) > MAX_VIEWS else ""
    # Part of the view block rather than a paragraph, so the PDF shows it on the pictures' pages only.
    intro = (
        "One generated sequence per run from the timing benchmark (early-exit decoder), each token coloured "
        f"by the block it left at; grey tokens ran the full model. The prompt is uncoloured.{more}"
    )
    figures.blocks.append(
        RawHtml(
            f"<p>{inline_html(intro)}</p>\n{samples_html(shown)}",
            "\n\n".join([intro] + [sample_text(s) for s in shown]),
            [
                Figure(path, "Per-token exits" + (f" ({n} of {len(pictures)})" if len(pictures) > 1 else ""), intro)
                for n, path in enumerate(pictures, start=1)
            ],
        )
    )


def build_figures(frame: pd.DataFrame, runs: list[RunResult], out_dir: Path) -> FigureSet:
    figures = FigureSet()
    sections = {
        "Pareto figures": lambda: _pareto_blocks(figures, frame, out_dir),
        "Accuracy vs compute": lambda: _cost_blocks(figures, frame, out_dir),
        "Exit histograms": lambda: _exit_blocks(figures, frame, out_dir),
        "Calibration figures": lambda: _calibration_blocks(figures, runs, out_dir),
        "Per-token exit view": lambda: _token_blocks(figures, runs, out_dir),
    }
    for what, build in sections.items():
        try:
            build()
        except Exception as exc:  # noqa: BLE001 - malformed results must not cost the rest of the report
            figures.skip(what, f"failed ({type(exc).__name__}: {exc})")
    return figures
