"""Render a report Document as ONE self-contained HTML file: inline CSS, figures as base64 data URIs,
no external links, so it can be mailed or attached to an issue and still show everything. A report kept beside its
``figures/`` folder (one committed to a repository) can link them instead, so the figures are stored once."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from eebench.reporting.document import (
    Bullets,
    Callout,
    Document,
    Figure,
    Heading,
    Paragraph,
    RawHtml,
    Table,
    inline_html,
)
from eebench.reporting.formatting import numeric_columns, slug

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 1.8em; }
nav { background: #f6f6f6; padding: .5em 1em; border-radius: 4px; font-size: .9em; }
nav a { margin-right: 1em; }
code { background: #f2f2f2; padding: 0 .25em; border-radius: 3px; font-size: .9em; }
.callout { background: #fff4e5; border-left: 4px solid #e69500; padding: .5em .8em; margin: .8em 0; }
.table-wrap { overflow-x: auto; margin: .5em 0 1.2em; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border: 1px solid #d0d0d0; padding: .25em .5em; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
.caption { color: #555; font-size: .9em; margin: .2em 0; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #e0e0e0; }
figcaption { color: #444; font-size: .9em; }
.token-view { margin: .8em 0 1.2em; }
.tv-title { font-weight: bold; font-size: .9em; }
.tv-legend { margin: .3em 0; font-size: .8em; }
.tv-chip { padding: .1em .45em; margin-right: .3em; border-radius: 3px; }
.tv-text { font-family: Menlo, Consolas, monospace; line-height: 2; white-space: pre-wrap; }
.tv-prompt { color: #888; }
.tv-token { padding: .12em .05em; margin: 0 1px; border-radius: 2px; }
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _heading(block: Heading) -> str:
    return f'<h{block.level} id="{slug(block.text)}">{inline_html(block.text)}</h{block.level}>'


def _table(block: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
    classes = [' class="num"' if numeric else "" for numeric in numeric_columns(block.rows, len(block.headers))]
    body = "".join(
        "<tr>" + "".join(f"<td{cls}>{inline_html(str(cell))}</td>" for cls, cell in zip(classes, row)) + "</tr>"
        for row in block.rows
    )
    title = f"<h3>{inline_html(block.title)}</h3>" if block.title else ""
    caption = f'<p class="caption">{inline_html(block.caption)}</p>' if block.caption else ""
    return f'{title}{caption}<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(block: Figure, linked_from: Path | None = None) -> str:
    caption = f"<strong>{inline_html(block.title)}.</strong> {inline_html(block.caption)}"
    source = data_uri(block.path) if linked_from is None else Path(os.path.relpath(block.path, linked_from)).as_posix()
    return (
        f'<figure><img src="{html.escape(source)}" alt="{html.escape(block.title)}"><figcaption>{caption}</figcaption></figure>'
    )


RENDERERS = {
    Heading: _heading,
    Paragraph: lambda block: f"<p>{inline_html(block.text)}</p>",
    Bullets: lambda block: "<ul>" + "".join(f"<li>{inline_html(item)}</li>" for item in block.items) + "</ul>",
    Callout: lambda block: f'<div class="callout">⚠ {inline_html(block.text)}</div>',
    Table: _table,
    Figure: _figure,
    RawHtml: lambda block: block.html,
}


def _contents(document: Document) -> str:
    links = [
        f'<a href="#{slug(b.text)}">{html.escape(b.text)}</a>' for b in document.blocks if isinstance(b, Heading) and b.level == 2
    ]
    return f"<nav>{''.join(links)}</nav>" if links else ""


def render_html(document: Document, linked_from: Path | None = None) -> str:
    """``linked_from``: the report's folder, for figures linked by relative path rather than embedded."""
    renderers = {**RENDERERS, Figure: lambda block: _figure(block, linked_from)}
    body = "\n".join(renderers[type(block)](block) for block in document.blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(document.title)}</title><style>{CSS}</style></head>\n"
        f"<body><h1>{html.escape(document.title)}</h1>{_contents(document)}\n{body}\n</body></html>\n"
    )
