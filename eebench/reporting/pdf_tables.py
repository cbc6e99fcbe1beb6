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
from eebench.reporting.formatting import numeric_columns

CHAR_WIDTH_EM = 0.56
POINTS_PER_INCH = 72
FONT_SIZES = (9, 8, 7, 6, 5)  # the largest that fits the page width wins
HEADER_WRAP = 14  # characters per header line
CELL_WRAP = 24  # when a table is too wide even at the smallest font, longer cells wrap
LINE_UNITS = 0.75  # height of each extra text line in a cell, in single-line row heights
ROW_HEIGHT_EM = 1.8
CELL_PAD_PT = 8
BOLD_WIDTH = 1.12  # header text is bold, hence wider
TITLE_HEIGHT = 0.32  # inches
CAPTION_SIZE = 8
CAPTION_LINE = CAPTION_SIZE * 1.4 / POINTS_PER_INCH
GAP = 0.3  # inches between tables on one page


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
    def header_units(self) -> float:
        return 0.3 + LINE_UNITS * _lines(self.headers)

    @property
    def row_height(self) -> float:
        return self.size * ROW_HEIGHT_EM / POINTS_PER_INCH

    @property
    def table_height(self) -> float:
        return self.row_height * (self.header_units + sum(map(row_units, self.rows)))

    @property
    def height(self) -> float:
        return TITLE_HEIGHT + CAPTION_LINE * len(self.caption) + self.table_height


def _lines(cells: list[str]) -> int:
    return max((cell.count("\n") + 1 for cell in cells), default=1)


def row_units(row: list[str]) -> float:
    """A row's height in single-line row heights: one, plus a bit per extra wrapped line."""
    return 1.0 + LINE_UNITS * (_lines(row) - 1)


def _longest_line(text: str) -> int:
    return max(map(len, text.split("\n")))


def _column_widths(headers: list[str], rows: list[list[str]], size: float) -> list[float]:
    widths = []
    for column, header in enumerate(headers):
        characters = max([_longest_line(header) * BOLD_WIDTH] + [_longest_line(row[column]) for row in rows])
        widths.append((characters * size * CHAR_WIDTH_EM + CELL_PAD_PT) / POINTS_PER_INCH)
    return widths


def _chunks(rows: list[list[str]], units: float) -> list[list[list[str]]]:
    """Consecutive rows whose heights add up to at most ``units`` (at least one row each)."""
    chunks: list[list[list[str]]] = [[]]
    used = 0.0
    for row in rows:
        if chunks[-1] and used + row_units(row) > units:
            chunks.append([])
            used = 0.0
        chunks[-1].append(row)
        used += row_units(row)
    return chunks


def _wrap(text: str, chars: int) -> list[str]:
    return textwrap.wrap(plain_text(text), chars, break_on_hyphens=False) or [""]


def _wrap_cell(text: str, chars: int) -> str:
    """Greedy wrap that may break after a space, '/' or '@' (family names, device@host), never inside a word."""
    lines = [""]
    for part in re.split(r"(?<=[ /@])", text):
        if lines[-1] and len(lines[-1]) + len(part) > chars:
            lines.append("")
        lines[-1] += part
    return "\n".join(line.strip() for line in lines)


def _fitting_size(headers: list[str], rows: list[list[str]], width: float) -> float | None:
    return next((s for s in FONT_SIZES if sum(_column_widths(headers, rows, s)) <= width), None)


def layout_table(title: str, caption: str, headers: list[str], rows: list[list[str]], width: float,
                 height: float) -> list[TablePiece]:
    """Pieces of one table that each fit a ``width`` x ``height`` (inches) page area."""
    headers = ["\n".join(_wrap(h, HEADER_WRAP)) for h in headers]
    rows = [[plain_text(str(cell)) for cell in row] for row in rows]
    size = _fitting_size(headers, rows, width)
    if size is None:  # too wide even in the smallest font: wrap long cells, then take what fits best
        rows = [[_wrap_cell(cell, CELL_WRAP) for cell in row] for row in rows]
        size = _fitting_size(headers, rows, width) or FONT_SIZES[-1]
    widths = _column_widths(headers, rows, size)
    caption_lines = _wrap(caption, int(width * POINTS_PER_INCH / (CAPTION_SIZE * CHAR_WIDTH_EM))) if caption else []
    aligns = ["right" if numeric else "left" for numeric in numeric_columns(rows, len(headers))]
    piece = TablePiece(title, caption_lines, headers, [], size, widths, aligns)
    chunks = _chunks(rows, max(1.0, (height - piece.height) / piece.row_height - 1))
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
    header_height = piece.header_units
    for column, (header, width) in enumerate(zip(piece.headers, piece.widths)):
        cell = table.add_cell(0, column, width, header_height, text=header, loc="center", facecolor="#e8e8e8")
        cell.get_text().set_fontweight("bold")
    for number, row in enumerate(piece.rows, start=1):
        shade = "#f6f6f6" if number % 2 == 0 else "white"
        for column, (text, width) in enumerate(zip(row, piece.widths)):
            table.add_cell(number, column, width, row_units(row), text=text, loc=piece.aligns[column],
                           facecolor=shade)
    table.auto_set_font_size(False)
    table.set_fontsize(piece.size)
    for (_, column), cell in table.get_celld().items():
        # Cell.PAD is a fraction of the cell width; a fixed few points keeps wide cells from indenting.
        cell.PAD = CELL_PAD_PT / 2 / (piece.widths[column] * POINTS_PER_INCH)
        cell.set_edgecolor("#b0b0b0")
        cell.set_linewidth(0.5)
        cell.get_text().set_parse_math(False)
    return table
