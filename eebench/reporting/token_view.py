"""Per-token exit view: one generated sequence with each token coloured by the block it left at.

Built from ``timing.exit_sample`` ({prompt, tokens: [[text, layer or "final"], ...]}). The HTML
version goes into report.html; a matplotlib picture of the same layout goes into the PDF, and a
bracketed plain-text version into report.md.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from eebench.analysis.pareto import run_families
from eebench.reporting.formatting import exit_label_order
from eebench.reporting.plots import FINAL_COLOUR, exit_colours, new_figure, save
from eebench.tracking.contract import RunResult

MAX_VIEWS = 12  # one per run; beyond this the section becomes a wall of colour
VIEWS_PER_PICTURE = 4  # per PDF page, so tokens stay legible
CHARS_PER_LINE = 120  # PDF picture: monospace layout width
VISIBLE = {"\n": "↵", "\t": "⇥", "\r": ""}


@dataclass
class ExitSample:
    label: str  # which run: family and threshold
    prompt: str
    tokens: list[tuple[str, str]]  # (token text, exit label: block number or "final")
    exit_labels: list[str]  # every exit this run could use, for the legend


def _exit_sample(results: RunResult, family: str) -> ExitSample | None:
    sample = results.timing.exit_sample if results.timing else None
    if sample is None or not sample.tokens:
        return None
    tokens = [(text, label) for text, label in sample.tokens]
    labels = {str(layer) for layer in results.exit_layers} | {label for _, label in tokens}
    label = f"{family} at threshold {results.threshold}"
    return ExitSample(label, sample.prompt, tokens, sorted(labels | {"final"}, key=exit_label_order))


def collect_samples(runs: list[RunResult]) -> list[ExitSample]:
    """Exit samples of the runs that have one, ordered by family then threshold."""
    ordered = sorted(zip(run_families(runs), runs), key=lambda pair: (pair[0], pair[1].threshold))
    return [sample for sample in (_exit_sample(results, family) for family, results in ordered) if sample is not None]


def visible_token(text: str) -> str:
    """Whitespace-only tokens would be invisible boxes: show them as ␣ (and newlines as ↵)."""
    shown = "".join(VISIBLE.get(char, char) for char in text)
    return shown.replace(" ", "␣") if not shown.strip() else shown


def _legend_name(label: str) -> str:
    return "full model" if label == "final" else f"block {label}"


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on the background (WCAG relative luminance)."""
    red, green, blue = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000000" if luminance > 0.18 else "#ffffff"


# ----------------------------------------------------------------------------- HTML and text


def _html_chip(text: str, background: str, title: str, css_class: str) -> str:
    return (
        f'<span class="{css_class}" style="background:{background};color:{text_colour(background)}" '
        f'title="{html.escape(title)}">{html.escape(text)}</span>'
    )


def sample_html(sample: ExitSample) -> str:
    colours = exit_colours(sample.exit_labels)
    legend = "".join(_html_chip(_legend_name(label), colours[label], "", "tv-chip") for label in sample.exit_labels)
    tokens = "".join(
        _html_chip(visible_token(text), colours.get(label, FINAL_COLOUR), f"left at {_legend_name(label)}", "tv-token")
        for text, label in sample.tokens
    )
    return (
        f'<div class="token-view"><div class="tv-title">{html.escape(sample.label)}</div>'
        f'<div class="tv-legend">{legend}</div>'
        f'<p class="tv-text"><span class="tv-prompt">{html.escape(sample.prompt)}</span>{tokens}</p></div>'
    )


def samples_html(samples: list[ExitSample]) -> str:
    return "\n".join(sample_html(sample) for sample in samples[:MAX_VIEWS])


def sample_text(sample: ExitSample) -> str:
    """Plain version: each token followed by its exit in brackets, e.g. `the[3] cat[final]`."""
    tokens = " ".join(f"{text.strip() or visible_token(text)}[{label}]" for text, label in sample.tokens)
    return f"{sample.label}: prompt `{sample.prompt}` → {tokens}"


# ----------------------------------------------------------------------------- PDF picture


@dataclass
class _Piece:
    text: str
    background: str | None = None
    bold: bool = False
    line_break: bool = False  # start a new line before this piece
    gap: float = 1.0  # character cells before this piece on its line


def _pieces(sample: ExitSample) -> list[_Piece]:
    """Title line, legend line, then the prompt (uncoloured) flowing into the coloured tokens."""
    colours = exit_colours(sample.exit_labels)
    title = [_Piece(sample.label, bold=True, line_break=True)]
    legend = [_Piece(_legend_name(label), colours[label], line_break=i == 0) for i, label in enumerate(sample.exit_labels)]
    prompt = [_Piece(word, line_break=i == 0) for i, word in enumerate(sample.prompt.split())]
    tokens = [
        _token_piece(text, colours.get(label, FINAL_COLOUR), line_break=i == 0 and not prompt)
        for i, (text, label) in enumerate(sample.tokens)
    ]
    return title + legend + prompt + tokens


def _token_piece(text: str, background: str, line_break: bool) -> _Piece:
    # A leading space becomes the gap before the box, so words read as words and sub-word pieces
    # (no leading space) sit almost touching the piece before them.
    word = text.lstrip(" ")
    if not word.strip():
        return _Piece(visible_token(text), background, line_break=line_break)
    return _Piece(visible_token(word), background, line_break=line_break, gap=1.0 if word != text else 0.3)


def _layout(pieces: list[_Piece]) -> list[tuple[float, int, _Piece]]:
    """(column, line, piece) in monospace character cells, wrapping at CHARS_PER_LINE."""
    placed, column, line = [], 0.0, -1
    for piece in pieces:
        piece.text = piece.text[: CHARS_PER_LINE - 1]
        if piece.line_break or column + piece.gap + len(piece.text) > CHARS_PER_LINE:
            column, line = -piece.gap, line + 1 + (piece.bold and line >= 0)
        column += piece.gap
        placed.append((column, line, piece))
        column += len(piece.text)
    return placed


def _plot_picture(samples: list[ExitSample], path: Path) -> Path:
    placed = _layout([piece for sample in samples for piece in _pieces(sample)])
    lines = placed[-1][1] + 1
    figure = new_figure(11, 0.24 * lines + 0.5)
    ax = figure.subplots()
    ax.set_xlim(0, CHARS_PER_LINE)
    ax.set_ylim(lines, -0.5)
    ax.axis("off")
    for column, line, piece in placed:
        box = dict(facecolor=piece.background, edgecolor="none", pad=1.5) if piece.background else None
        colour = text_colour(piece.background) if piece.background else ("black" if piece.bold else "grey")
        ax.text(
            column,
            line,
            piece.text,
            family="sans-serif" if piece.bold else "monospace",
            fontsize=9,
            fontweight="bold" if piece.bold else "normal",
            color=colour,
            bbox=box,
            va="center",
            parse_math=False,
        )
    return save(figure, path)


def plot_token_views(samples: list[ExitSample], stem: str | Path) -> list[Path]:
    """The token views as PNGs ``<stem>_<n>.png`` of VIEWS_PER_PICTURE each (for the PDF), laid out
    on a monospace character grid."""
    shown = samples[:MAX_VIEWS]
    groups = [shown[i : i + VIEWS_PER_PICTURE] for i in range(0, len(shown), VIEWS_PER_PICTURE)]
    return [_plot_picture(group, Path(f"{stem}_{number}.png")) for number, group in enumerate(groups, start=1)]
