"""Render a report Document as Markdown; figures are linked by path relative to the report.

Markdown viewers render raw HTML, and the report's text carries user-provided names (``backbone.name``, sweep
folders) and generated text, so in every piece of text what opens markup is escaped, as report.html escapes it.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from eebench.reporting.document import Bullets, Callout, Document, Figure, Heading, Paragraph, RawHtml, Table

# What lets text turn into markup in a Markdown viewer: ``<`` opens an HTML tag or comment, and an entity
# (``&lt;``) shows as the character it names. A bare ``&`` (W&B) shows as itself, so it stays readable.
_MARKUP = re.compile(r"<|&(?=#?\w+;)")


def escape(text) -> str:
    """``text`` with markup's openers as entities. Code spans too: a name holding a backtick could end the span it
    was put in and let the rest through as HTML (inside a span an entity shows as typed, a fair price)."""
    return _MARKUP.sub(lambda match: html.escape(match.group(0)), str(text))


def _cell(text) -> str:
    return escape(text).replace("|", "\\|")  # a pipe would split the cell


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _table(block: Table, _base: Path) -> str:
    parts = ([f"### {escape(block.title)}"] if block.title else []) + ([escape(block.caption)] if block.caption else [])
    return "\n\n".join(parts + [markdown_table(block.headers, block.rows)])


def _figure(block: Figure, base: Path) -> str:
    link = Path(os.path.relpath(block.path, base)).as_posix()
    return f"![{escape(block.title)}]({link})" + (f"\n\n{escape(block.caption)}" if block.caption else "")


RENDERERS = {
    Heading: lambda block, _base: f"{'#' * block.level} {escape(block.text)}",
    Paragraph: lambda block, _base: escape(block.text),
    Bullets: lambda block, _base: "\n".join(f"- {escape(item)}" for item in block.items),
    Callout: lambda block, _base: f"> {escape(block.text)}",
    Table: _table,
    Figure: _figure,
    # Markdown viewers drop inline styles, so the coloured view is replaced by its bracketed text.
    RawHtml: lambda block, _base: f"{escape(block.text)}\n\n*The coloured version is in report.html.*",
}


def render_markdown(document: Document, base_dir: Path) -> str:
    parts = [f"# {escape(document.title)}"] + [RENDERERS[type(block)](block, Path(base_dir)) for block in document.blocks]
    return "\n\n".join(part for part in parts if part) + "\n"
