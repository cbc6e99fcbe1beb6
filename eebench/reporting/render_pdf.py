"""Render a report Document as a PDF with reportlab's Platypus, in the same order as report.md/.html.

Platypus typesets: paragraphs wrap and break across pages, tables wrap their cells and repeat their
header row on every page they span (see pdf_tables), and headings stay with what follows them.
Pages are landscape A4 so the wide result tables fit; the PDF outline lists the sections and tables.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer

from eebench.reporting.document import (
    Bullets,
    Callout,
    Document,
    Figure,
    Heading,
    RawHtml,
    Table,
    plain_text,
)
from eebench.reporting.document import (
    Paragraph as TextParagraph,
)
from eebench.reporting.pdf_fonts import BOLD, REGULAR, markup, register_fonts
from eebench.reporting.pdf_tables import report_table
from eebench.reporting.plots import DPI

PAGE = landscape(A4)
MARGIN = 0.5 * inch
FOOTER_ROOM = 0.25 * inch
FRAME_WIDTH = PAGE[0] - 2 * MARGIN
FRAME_HEIGHT = PAGE[1] - 2 * MARGIN - FOOTER_ROOM
HEADING_SIZES = {1: 18, 2: 13, 3: 11}
# Height kept free beside a figure's title, picture and caption: paragraph spacing plus a section heading
# that may share the page, so the group never outgrows a page (Platypus would then split it).
FIGURE_SLACK = 80


def _style(name: str, size: float = 9, font: str = REGULAR, **options) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.3, **options)


def _styles() -> dict[str, ParagraphStyle]:
    headings = {
        f"h{level}": _style(
            f"h{level}",
            size,
            BOLD,
            spaceBefore=size * 0.8,
            spaceAfter=size * 0.35,
            keepWithNext=1,
            textColor=colors.HexColor("#1a1a1a"),
        )
        for level, size in HEADING_SIZES.items()
    }
    return {
        **headings,
        "body": _style("body", spaceBefore=2, spaceAfter=4),
        "bullet": _style("bullet", leftIndent=14, bulletIndent=4, spaceAfter=2, bulletFontName=REGULAR),
        "callout": _style(
            "callout",
            textColor=colors.HexColor("#7a3800"),
            backColor=colors.HexColor("#fff4e5"),
            borderColor=colors.HexColor("#e69500"),
            borderWidth=0.75,
            borderPadding=4,
            spaceBefore=6,
            spaceAfter=8,
        ),
        "caption": _style("caption", 8, textColor=colors.HexColor("#333333"), spaceBefore=4, spaceAfter=12),
        "table_caption": _style("table_caption", 8, textColor=colors.HexColor("#333333"), spaceAfter=3, keepWithNext=1),
        "meta": _style("meta", 8, textColor=colors.grey, spaceAfter=6),
    }


class _KeepWithNext(KeepTogether):
    """What Platypus wraps a heading or caption in to keep it with the flowable after it. A group taller
    than a page (a heading over a long table) starts where it stands when a quarter page is left, rather
    than leaving most of this page blank."""

    def split(self, available_width: float, available_height: float) -> list[Flowable]:
        self.wrap(available_width, available_height)
        if self._H > FRAME_HEIGHT and available_height >= FRAME_HEIGHT / 4:
            return self._content[:]
        return super().split(available_width, available_height)


class _ReportTemplate(SimpleDocTemplate):
    """Adds every flowable carrying an ``outline_level`` to the PDF outline (the viewer's sidebar)."""

    def afterFlowable(self, flowable: Flowable) -> None:
        level = getattr(flowable, "outline_level", None)
        if level is not None:
            key = f"section-{id(flowable)}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level, closed=level > 0)


class _Builder:
    """Turns document blocks into flowables; tracks the outline depth, which may deepen one step at a time."""

    def __init__(self) -> None:
        self.styles = _styles()
        self.outline_level = -1

    def heading(self, text: str, level: int) -> Paragraph:
        paragraph = Paragraph(markup(text), self.styles[f"h{min(level, 3)}"])
        paragraph.outline_level = self.outline_level = min(max(level - 2, 0), self.outline_level + 1)
        return paragraph

    def flowables(self, block) -> list[Flowable]:
        if isinstance(block, Heading):
            return [self.heading(block.text, block.level)]
        if isinstance(block, TextParagraph):
            return [Paragraph(markup(block.text), self.styles["body"])]
        if isinstance(block, Bullets):
            return [Paragraph(markup(item), self.styles["bullet"], bulletText="•") for item in block.items]
        if isinstance(block, Callout):
            return [Paragraph("⚠ " + markup(block.text), self.styles["callout"])]
        if isinstance(block, Table):
            return self.table(block)
        if isinstance(block, Figure):
            return self.figure(block)
        if isinstance(block, RawHtml):  # the PDF shows its pictures, or its text when it has none
            return (
                [part for figure in block.figures for part in self.figure(figure)]
                if block.figures
                else [Paragraph(markup(part), self.styles["body"]) for part in block.text.split("\n\n") if part]
            )
        raise TypeError(f"no PDF rendering for {type(block).__name__}")

    def table(self, block: Table) -> list[Flowable]:
        title = [self.heading(block.title, 3)] if block.title else []
        caption = [Paragraph(markup(block.caption), self.styles["table_caption"])] if block.caption else []
        return title + caption + [report_table(block.headers, block.rows, FRAME_WIDTH), Spacer(1, 8)]

    def figure(self, block: Figure) -> list[Flowable]:
        """Title, picture and caption chained by keepWithNext, so Platypus keeps them on one page together
        with a heading right above; the picture is as large as that leaves room for, but never larger than
        its size at the resolution it was drawn."""
        title = Paragraph(markup(block.title), self.styles["h3"])
        caption = Paragraph(markup(block.caption), self.styles["caption"]) if block.caption else Spacer(1, 6)
        text_height = title.wrap(FRAME_WIDTH, FRAME_HEIGHT)[1] + caption.wrap(FRAME_WIDTH, FRAME_HEIGHT)[1]
        room = FRAME_HEIGHT - text_height - FIGURE_SLACK
        pixels_wide, pixels_high = ImageReader(str(block.path)).getSize()
        scale = min(FRAME_WIDTH / pixels_wide, room / pixels_high, 72 / DPI)
        image = Image(str(block.path), width=pixels_wide * scale, height=pixels_high * scale, hAlign="LEFT")
        image.keepWithNext = 1
        return [title, image, caption]


def _footer(text: str):
    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(REGULAR, 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(MARGIN, MARGIN * 0.6, text)
        canvas.drawRightString(PAGE[0] - MARGIN, MARGIN * 0.6, f"page {doc.page}")
        canvas.restoreState()

    return draw


def write_pdf(document: Document, path: str | Path) -> Path:
    register_fonts()
    path = Path(path)
    title = plain_text(document.title)
    builder = _Builder()
    story: list[Flowable] = [
        builder.heading(document.title, 1),
        Paragraph(f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by eebench", builder.styles["meta"]),
    ]
    for block in document.blocks:
        story += builder.flowables(block)
    template = _ReportTemplate(
        str(path),
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + FOOTER_ROOM,
        title=title,
        author="eebench",
        creator="eebench",
        keepTogetherClass=_KeepWithNext,
    )
    template.build(story, onFirstPage=_footer(title), onLaterPages=_footer(title))
    return path
