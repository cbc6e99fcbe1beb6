"""Fonts and inline markup for the PDF report.

The PDF's built-in Helvetica covers only Latin-1, and reports print Δ, √, Σ, ≥, → and ⚠; DejaVu Sans
covers them all and ships with matplotlib (already a dependency), so it is embedded from there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import matplotlib
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from eebench.reporting.document import inline_html

REGULAR, BOLD, ITALIC, BOLD_ITALIC, MONO = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
    "DejaVuSansMono",
)


@cache
def register_fonts() -> None:
    """Embed DejaVu once per process and map <b>/<i> in paragraphs to its bold and oblique faces."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in (REGULAR, BOLD, ITALIC, BOLD_ITALIC, MONO):
        pdfmetrics.registerFont(TTFont(name, str(folder / f"{name}.ttf")))
    for bold, italic, name in ((0, 0, REGULAR), (1, 0, BOLD), (0, 1, ITALIC), (1, 1, BOLD_ITALIC)):
        addMapping(REGULAR, bold, italic, name)


def markup(text: str) -> str:
    """The document's inline Markdown subset as reportlab paragraph markup (which has no <code>)."""
    return inline_html(text).replace("<code>", f'<font face="{MONO}">').replace("</code>", "</font>")
