"""Tables as PDF pages: each table sized from its text, split when too tall, several packed per page.

Sizes are estimated from character counts instead of drawing and measuring, which keeps a report
with dozens of tables fast; CHAR_WIDTH_EM is a slightly generous average for DejaVu Sans.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from matplotlib.table import Table as MplTable

from eebench.reporting.document import plain_text

CHAR_WIDTH_EM = 0.56
POINTS_PER_INCH = 72
FONT_SIZES = (9, 8, 7, 6, 5)  # the largest that fits the page width wins
HEADER_WRAP = 14  # characters per header line
ROW_HEIGHT_EM = 1.8
CELL_PAD_PT = 8
TITLE_HEIGHT = 0.32  # inches
CAPTION_SIZE = 8
CAPTION_LINE = CAPTION_SIZE * 1.4 / POINTS_PER_INCH
GAP = 0.3  # inches between tables on one page
_NUMERIC = re.compile(r"^[+\-–]?(\d|\.\d|–$)")


@dataclass
class TablePiece:
    """A table, or a slice of its rows, laid out for one page; sizes in inches."""

    title: str
    caption: list[str]  # wrapped lines
    headers: list[str]  # wrapped with newlines
    rows: list[list[str]]
    size: float  # font size
    widths: list[float]  # column widths in inches
    aligns: list[str]

    @property
    def header_lines(self) -> int:
        return max((h.count("\n") + 1 for h in self.headers), default=1)

    @property
    def row_height(self) -> float:
        return self.size * ROW_HEIGHT_EM / POINTS_PER_INCH

    @property
    def table_height(self) -> float:
        return self.row_height * (len(self.rows) + 0.3 + 0.75 * self.header_lines)

    @property
    def height(self) -> float:
        return TITLE_HEIGHT + CAPTION_LINE * len(self.caption) + self.table_height


def _column_widths(headers: list[str], rows: list[list[str]], size: float) -> list[float]:
    widths = []
    for column, header in enumerate(headers):
        texts = header.split("\n") + [row[column] for row in rows]
        widths.append((max(map(len, texts)) * size * CHAR_WIDTH_EM + CELL_PAD_PT) / POINTS_PER_INCH)
    return widths


def _alignments(rows: list[list[str]], columns: int) -> list[str]:
    # Numbers right-aligned so digits line up; names and lists left-aligned so they read naturally.
    return ["right" if rows and all(_NUMERIC.match(row[c] or "–") for row in rows) else "left"
            for c in range(columns)]


def _wrap(text: str, chars: int) -> list[str]:
    return textwrap.wrap(plain_text(text), chars, break_on_hyphens=False) or [""]


def layout_table(title: str, caption: str, headers: list[str], rows: list[list[str]], width: float,
                 height: float) -> list[TablePiece]:
    """Pieces of one table that each fit a ``width`` x ``height`` (inches) page area."""
    headers = ["\n".join(_wrap(h, HEADER_WRAP)) for h in headers]
    rows = [[plain_text(str(cell)) for cell in row] for row in rows]
    size = next((s for s in FONT_SIZES if sum(_column_widths(headers, rows, s)) <= width), FONT_SIZES[-1])
    widths = _column_widths(headers, rows, size)
    caption_lines = _wrap(caption, int(width * POINTS_PER_INCH / (CAPTION_SIZE * CHAR_WIDTH_EM))) if caption else []
    piece = TablePiece(title, caption_lines, headers, [], size, widths, _alignments(rows, len(headers)))
    per_piece = max(1, int((height - piece.height) / piece.row_height) - 1)
    chunks = [rows[i:i + per_piece] for i in range(0, len(rows), per_piece)] or [[]]
    return [TablePiece(title + (f" (part {n} of {len(chunks)})" if len(chunks) > 1 else ""), caption_lines,
                       headers, chunk, size, widths, piece.aligns) for n, chunk in enumerate(chunks, start=1)]


def pack(pieces: list[TablePiece], height: float) -> list[list[TablePiece]]:
    """Greedy: tables in order, a new page when the next one does not fit below the previous."""
    pages: list[list[TablePiece]] = []
    used = height + 1  # forces a first page
    for piece in pieces:
        if used + GAP + piece.height > height:
            pages.append([])
            used = -GAP
        pages[-1].append(piece)
        used += GAP + piece.height
    return pages


def draw_piece(figure, piece: TablePiece, left: float, top: float, page: tuple[float, float]) -> float:
    """Draw ``piece`` with its top-left at (left, top) inches from the page's top-left; return its bottom."""
    page_width, page_height = page
    figure.text(left / page_width, 1 - top / page_height, piece.title, fontsize=11, fontweight="bold",
                va="top", parse_math=False)
    y = top + TITLE_HEIGHT
    if piece.caption:
        figure.text(left / page_width, 1 - y / page_height, "\n".join(piece.caption), fontsize=CAPTION_SIZE,
                    color="#333333", va="top", linespacing=1.25, parse_math=False)
        y += CAPTION_LINE * len(piece.caption)
    bottom = y + piece.table_height
    ax = figure.add_axes((left / page_width, 1 - bottom / page_height, sum(piece.widths) / page_width,
                          piece.table_height / page_height))
    ax.axis("off")
    ax.add_table(_mpl_table(ax, piece))
    return bottom


def _mpl_table(ax, piece: TablePiece) -> MplTable:
    # bbox (0, 0, 1, 1) scales the cells to fill the axes, which was sized from the same estimates.
    table = MplTable(ax, bbox=(0, 0, 1, 1))
    header_height = 0.75 * piece.header_lines + 0.3
    for column, (header, width) in enumerate(zip(piece.headers, piece.widths)):
        cell = table.add_cell(0, column, width, header_height, text=header, loc="center", facecolor="#e8e8e8")
        cell.get_text().set_fontweight("bold")
    for number, row in enumerate(piece.rows, start=1):
        shade = "#f6f6f6" if number % 2 == 0 else "white"
        for column, (text, width) in enumerate(zip(row, piece.widths)):
            table.add_cell(number, column, width, 1.0, text=text, loc=piece.aligns[column], facecolor=shade)
    table.auto_set_font_size(False)
    table.set_fontsize(piece.size)
    for cell in table.get_celld().values():
        cell.set_edgecolor("#b0b0b0")
        cell.set_linewidth(0.5)
        cell.get_text().set_parse_math(False)
    return table
