"""A tiny format-neutral report document: a list of blocks rendered to Markdown, HTML and PDF.

Sections build blocks once, so the three formats cannot drift apart in content. Inline text may use
a Markdown subset (``**bold**``, ``*italic*``, ```code```), which each renderer translates or strips.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Callout:
    """A warning that must sit next to the numbers it qualifies (e.g. timings from mixed hardware)."""

    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    title: str = ""
    caption: str = ""


@dataclass
class Figure:
    path: Path
    title: str
    caption: str = ""


@dataclass
class RawHtml:
    """HTML for report.html only; ``text`` is what Markdown and PDF show instead."""

    html: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)  # pictures of the same content, for the PDF


Block = Heading | Paragraph | Bullets | Callout | Table | Figure | RawHtml


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# ----------------------------------------------------------------------------- inline markup

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_CODE = re.compile(r"`([^`]+)`")


def inline_html(text: str) -> str:
    """Escape, then turn the Markdown subset into tags; code spans are protected from bold/italic."""
    codes: list[str] = []

    def stash(match: re.Match) -> str:
        codes.append(match.group(1))
        return f"\x00{len(codes) - 1}\x00"

    escaped = html.escape(_CODE.sub(stash, text), quote=False)
    escaped = _ITALIC.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", escaped))
    return re.sub("\x00(\\d+)\x00", lambda m: f"<code>{html.escape(codes[int(m.group(1))])}</code>", escaped)


def plain_text(text: str) -> str:
    """The Markdown subset with its markers removed, for the PDF."""
    return _CODE.sub(r"\1", _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text)))
