"""Render a report Document as Markdown; figures are linked by path relative to the report."""

from __future__ import annotations

import os
from pathlib import Path

from eebench.reporting.document import Bullets, Callout, Document, Figure, Heading, Paragraph, RawHtml, Table


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731 - a pipe would split the cell
    lines = ["| " + " | ".join(escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _table(block: Table, _base: Path) -> str:
    parts = ([f"### {block.title}"] if block.title else []) + ([block.caption] if block.caption else [])
    return "\n\n".join(parts + [markdown_table(block.headers, block.rows)])


def _figure(block: Figure, base: Path) -> str:
    link = Path(os.path.relpath(block.path, base)).as_posix()
    return f"![{block.title}]({link})" + (f"\n\n{block.caption}" if block.caption else "")


RENDERERS = {
    Heading: lambda block, _base: f"{'#' * block.level} {block.text}",
    Paragraph: lambda block, _base: block.text,
    Bullets: lambda block, _base: "\n".join(f"- {item}" for item in block.items),
    Callout: lambda block, _base: f"> {block.text}",
    Table: _table,
    Figure: _figure,
    # Markdown viewers drop inline styles, so the coloured view is replaced by its bracketed text.
    RawHtml: lambda block, _base: f"{block.text}\n\n*The coloured version is in report.html.*",
}


def render_markdown(document: Document, base_dir: Path) -> str:
    parts = [f"# {document.title}"] + [RENDERERS[type(block)](block, Path(base_dir)) for block in document.blocks]
    return "\n\n".join(part for part in parts if part) + "\n"
