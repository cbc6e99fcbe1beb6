"""Report tables as reportlab Platypus tables that wrap their cells and repeat the header on every page.

Platypus measures and wraps text itself but does not choose widths for columns of wrapping
paragraphs, so columns get the share the HTML "auto" table layout would give them, measured with the
font's real glyph widths: each column gets at least its longest unbreakable piece and the remaining
width goes to the columns whose text is longest. When even the unbreakable pieces do not fit, the
font shrinks; at the smallest size the widest columns break inside words rather than run over the
page edge.
"""

from __future__ import annotations

import re

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Paragraph, Table, TableStyle

from eebench.reporting.document import plain_text
from eebench.reporting.formatting import numeric_columns
from eebench.reporting.pdf_fonts import BOLD, REGULAR, markup, register_fonts

FONT_SIZES = (8, 7, 6)  # the largest whose unbreakable pieces fit the page width wins
CELL_PAD = 3  # points, left and right of the text in a cell
# Long names (families a/b/c/d, device@host, lists a,b,c) may break after these characters.
BREAK_AFTER = re.compile(r"(?<=[/@,])(?=\S)")
BREAK_MARK = "\x01"  # survives inline markup conversion, then becomes a line break


def _pieces(text: str, kind: str) -> list[str]:
    """The parts of a cell's plain text that are never split across lines (unless nothing else fits).
    A number with its error or range (``40.0 ± 3.0``, ``1.50 (1.45–1.55)``) is one piece; a header
    breaks only at spaces (``tok/s`` stays whole); names may also break after / @ and commas."""
    if kind == "number":
        return [text]
    return [piece for word in text.split() for piece in ([word] if kind == "header" else BREAK_AFTER.split(word))]


def _width(text: str, font: str, size: float) -> float:
    return stringWidth(text, font, size)


def _column_extents(headers: list[str], rows: list[list[str]], size: float):
    """Per column: (narrowest width without breaking a piece, width with no wrapping at all), in points."""
    extents = []
    for column, (header, numeric) in enumerate(zip(headers, numeric_columns(rows, len(headers)))):
        kind = "number" if numeric else "text"
        cells = [(plain_text(header), BOLD, "header")] + [(plain_text(str(row[column])), REGULAR, kind) for row in rows]
        narrowest = max(
            _width(piece, font, size) for text, font, cell_kind in cells for piece in _pieces(text, cell_kind) or [""]
        )
        widest = max(_width(text, font, size) for text, font, _ in cells)
        extents.append((narrowest + 2 * CELL_PAD, widest + 2 * CELL_PAD))
    return extents


def column_widths(extents: list[tuple[float, float]], available: float) -> list[float] | None:
    """Widths for ``extents`` within ``available`` points, or None when even the narrowest do not fit."""
    narrow = [low for low, _ in extents]
    wide = [high for _, high in extents]
    if sum(wide) <= available:
        return wide
    if sum(narrow) > available:
        return None
    slack = [high - low for low, high in extents]
    share = (available - sum(narrow)) / sum(slack)
    return [low + extra * share for low, extra in zip(narrow, slack)]


def _capped(narrow: list[float], available: float) -> list[float]:
    """Columns narrower than a common cap keep their width; the wider ones share what is left equally
    (and break inside their long pieces), so one long name cannot squeeze every other column."""
    remaining, left = available, len(narrow)
    for width in sorted(narrow):
        cap = remaining / left
        if width > cap:
            return [min(w, cap) for w in narrow]
        remaining, left = remaining - width, left - 1
    return narrow


def _fit(headers: list[str], rows: list[list[str]], available: float) -> tuple[float, list[float]]:
    """(font size, column widths): the largest size at which no piece must break, else the smallest."""
    for size in FONT_SIZES:
        extents = _column_extents(headers, rows, size)
        widths = column_widths(extents, available)
        if widths is not None:
            return size, widths
    return FONT_SIZES[-1], _capped([low for low, _ in extents], available)


def _breakable(text: str, width: float, font: str, size: float) -> str:
    """Mark line breaks inside words wider than ``width`` (after / @ ,), filling each line greedily."""
    words = []
    for word in str(text).split(" "):
        if _width(plain_text(word), font, size) <= width:
            words.append(word)
            continue
        lines = [""]
        for piece in BREAK_AFTER.split(word):
            if lines[-1] and _width(plain_text(lines[-1] + piece), font, size) > width:
                lines.append("")
            lines[-1] += piece
        words.append(BREAK_MARK.join(lines))
    return " ".join(words)


def cell_markup(text: str, width: float, font: str, size: float) -> str:
    """A cell's inline Markdown as reportlab paragraph markup, with forced breaks in over-wide words."""
    return markup(_breakable(text, width - 2 * CELL_PAD, font, size)).replace(BREAK_MARK, "<br/>")


def _cell_style(name: str, font: str, size: float, align: int) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.2, alignment=align, splitLongWords=1)


def report_table(headers: list[str], rows: list[list[str]], available: float) -> Table:
    """A Platypus table of paragraphs (``available``: page width in points): wrapped cells, numbers
    right-aligned, the header row repeated on every page the table spans."""
    register_fonts()  # the widths below are measured in these fonts
    size, widths = _fit(headers, rows, available)
    head_style = _cell_style("table-head", BOLD, size, TA_CENTER)
    aligns = [TA_RIGHT if numeric else TA_LEFT for numeric in numeric_columns(rows, len(headers))]
    styles = [_cell_style(f"table-cell-{align}", REGULAR, size, align) for align in aligns]
    data = [[Paragraph(cell_markup(header, width, BOLD, size), head_style) for header, width in zip(headers, widths)]]
    data += [
        [Paragraph(cell_markup(str(cell), width, REGULAR, size), style) for cell, width, style in zip(row, widths, styles)]
        for row in rows
    ]
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f6f6")]),
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#b0b0b0")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
                ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table
