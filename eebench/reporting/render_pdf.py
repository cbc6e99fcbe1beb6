"""Render a report Document as a PDF with matplotlib's PdfPages (no extra dependency).

Layout, in order: text pages (title, what was run, findings, notes, provenance, skipped), then each
table on its own page(s), then each figure on its own page. Pages are landscape A4 so the wide
result tables fit.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.image
from matplotlib.backends.backend_pdf import PdfPages

from eebench.reporting.document import (
    Bullets, Callout, Document, Figure, Heading, Paragraph, RawHtml, Table, plain_text,
)
from eebench.reporting.pdf_tables import GAP, draw_piece, layout_table, pack
from eebench.reporting.plots import new_figure

PAGE = (11.69, 8.27)  # landscape A4, inches
MARGIN = 0.6  # inches
POINTS_PER_INCH = 72
CHAR_WIDTH_EM = 0.56  # average width of DejaVu Sans text, in font sizes; used to wrap lines


# ----------------------------------------------------------------------------- text pages

@dataclass
class _Line:
    text: str
    size: float
    weight: str = "normal"
    colour: str = "black"
    indent: float = 0.0  # inches
    space_before: float = 0.0  # points
    keep_with_next: int = 0  # lines that must share this line's page (a heading is never left alone)


def _wrap(text: str, size: float, indent: float, first_prefix: str = "", later_prefix: str = "") -> list[str]:
    width_pt = (PAGE[0] - 2 * MARGIN - indent) * POINTS_PER_INCH
    chars = max(20, int(width_pt / (size * CHAR_WIDTH_EM)))
    return textwrap.wrap(plain_text(text), chars, initial_indent=first_prefix, subsequent_indent=later_prefix,
                         break_on_hyphens=False) or [""]


def _block_lines(block) -> list[_Line]:
    if isinstance(block, Heading):
        size = {1: 18, 2: 13, 3: 11}.get(block.level, 10)
        return [_Line(text, size, "bold", "#1a1a1a", space_before=10 if i == 0 else 0, keep_with_next=3)
                for i, text in enumerate(_wrap(block.text, size, 0))]
    if isinstance(block, Callout):
        return [_Line(text, 9, colour="#a04000", space_before=4 if i == 0 else 0)
                for i, text in enumerate(_wrap("⚠ " + block.text, 9, 0.1))]
    if isinstance(block, Bullets):
        return [_Line(text, 9, indent=0.15, space_before=2 if i == 0 else 0)
                for item in block.items for i, text in enumerate(_wrap(item, 9, 0.15, "• ", "   "))]
    if isinstance(block, Paragraph):
        return [_Line(text, 9, space_before=4 if i == 0 else 0) for i, text in enumerate(_wrap(block.text, 9, 0))]
    return []  # tables and figures get their own pages


def _line_height(line: _Line) -> float:
    return line.size * 1.4 + line.space_before


def _paginate(lines: list[_Line]) -> list[list[_Line]]:
    usable = (PAGE[1] - 2 * MARGIN) * POINTS_PER_INCH
    pages, current, used = [], [], 0.0
    for index, line in enumerate(lines):
        needed = sum(map(_line_height, lines[index:index + 1 + line.keep_with_next]))
        if current and used + needed > usable:
            pages.append(current)
            current, used = [], 0.0
        current.append(line)
        used += _line_height(line)
    return pages + ([current] if current else [])


def _text_page(pdf: PdfPages, lines: list[_Line], footer: str) -> None:
    figure = new_figure(*PAGE, constrained=False)
    y = MARGIN * POINTS_PER_INCH
    height = PAGE[1] * POINTS_PER_INCH
    for line in lines:
        y += line.space_before
        figure.text((MARGIN + line.indent) / PAGE[0], 1 - y / height, line.text, fontsize=line.size,
                    fontweight=line.weight, color=line.colour, va="top", parse_math=False)
        y += line.size * 1.4
    _footer(figure, footer)
    pdf.savefig(figure)


def _footer(figure, text: str) -> None:
    figure.text(0.5, 0.3 / PAGE[1], text, ha="center", fontsize=7, color="grey", parse_math=False)


# ----------------------------------------------------------------------------- table pages

def _titled_tables(document: Document) -> list[tuple[str, Table]]:
    """Each table with its own title, or the heading it sits under when it has none."""
    tables, heading = [], "Table"
    for block in document.blocks:
        if isinstance(block, Heading):
            heading = block.text
        elif isinstance(block, Table):
            tables.append((block.title or heading, block))
    return tables


def _table_pages(pdf: PdfPages, document: Document, footer: str) -> None:
    width, height = PAGE[0] - 2 * MARGIN, PAGE[1] - 2 * MARGIN - 0.2
    pieces = [piece for title, table in _titled_tables(document)
              for piece in layout_table(plain_text(title), table.caption, table.headers, table.rows, width, height)]
    for page in pack(pieces, height):
        figure = new_figure(*PAGE, constrained=False)
        top = MARGIN
        for piece in page:
            top = draw_piece(figure, piece, MARGIN, top, PAGE) + GAP
        _footer(figure, footer)
        pdf.savefig(figure)


# ----------------------------------------------------------------------------- figure pages

CAPTION_LINE = 8 * 1.4 / POINTS_PER_INCH  # inches per 8-pt caption line
IMAGE_TOP = 0.85  # inches from the page top, below the title


def _figure_page(pdf: PdfPages, block: Figure, footer: str) -> None:
    figure = new_figure(*PAGE, constrained=False)
    caption = _wrap(block.caption, 8, 0) if block.caption else []
    image = matplotlib.image.imread(block.path)
    # Largest size that keeps the aspect ratio and leaves room for the caption right under it.
    room_width = PAGE[0] - 2 * MARGIN
    room_height = PAGE[1] - IMAGE_TOP - 0.6 - CAPTION_LINE * len(caption) - 0.15
    scale = min(room_width / image.shape[1], room_height / image.shape[0])
    width, height = image.shape[1] * scale, image.shape[0] * scale
    left = (PAGE[0] - width) / 2
    ax = figure.add_axes((left / PAGE[0], 1 - (IMAGE_TOP + height) / PAGE[1], width / PAGE[0], height / PAGE[1]))
    # "none" embeds the PNG as is (vector backends pass it through unresampled): sharper and faster.
    ax.imshow(image, interpolation="none")
    ax.axis("off")
    figure.text(MARGIN / PAGE[0], 1 - 0.45 / PAGE[1], plain_text(block.title), fontsize=12, fontweight="bold",
                va="top", parse_math=False)
    if caption:
        figure.text(MARGIN / PAGE[0], 1 - (IMAGE_TOP + height + 0.1) / PAGE[1], "\n".join(caption), fontsize=8,
                    color="#333333", va="top", linespacing=1.25, parse_math=False)
    _footer(figure, footer)
    pdf.savefig(figure)


# ----------------------------------------------------------------------------- document

def _title_lines(document: Document) -> list[_Line]:
    generated = f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by eebench"
    return [_Line(text, 18, "bold") for text in _wrap(document.title, 18, 0)] + [_Line(generated, 9, colour="grey")]


def _figures_of(document: Document) -> list[Figure]:
    figures = []
    for block in document.blocks:
        if isinstance(block, Figure):
            figures.append(block)
        elif isinstance(block, RawHtml):
            figures.extend(block.figures)
    return figures


def _text_blocks(document: Document) -> list:
    """Blocks for the text pages. A warning repeated next to several tables/figures is shown once
    here (the pages of those tables and figures carry it in their captions), and a heading is kept
    only when text follows it in its own section, so table- or figure-only sections leave no bare heading."""
    text, seen = [], set()
    for block in document.blocks:
        if isinstance(block, Callout) and block.text in seen:
            continue
        seen.update(block.items if isinstance(block, Bullets) else [getattr(block, "text", None)])
        if isinstance(block, (Heading, Paragraph, Bullets, Callout)):
            text.append(block)

    def introduces_text(i: int) -> bool:
        following = text[i + 1] if i + 1 < len(text) else None
        return following is not None and not (isinstance(following, Heading) and following.level <= text[i].level)

    return [block for i, block in enumerate(text) if not isinstance(block, Heading) or introduces_text(i)]


def write_pdf(document: Document, path: str | Path) -> Path:
    path = Path(path)
    footer = plain_text(document.title)
    metadata = {"Title": footer, "Creator": "eebench", "CreationDate": datetime.now(timezone.utc)}
    lines = _title_lines(document) + [line for block in _text_blocks(document) for line in _block_lines(block)]
    with PdfPages(path, metadata=metadata) as pdf:
        for page in _paginate(lines):
            _text_page(pdf, page, footer)
        _table_pages(pdf, document, footer)
        for figure in _figures_of(document):
            _figure_page(pdf, figure, footer)
    return path
