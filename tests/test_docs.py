"""The README stays a short front door, and the links of README.md and docs/ lead somewhere that exists."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {heading_anchor(h) for h in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)}


def local_links(path: Path) -> list[str]:
    return [link for link in LINK.findall(path.read_text(encoding="utf-8")) if not re.match(r"[a-z]+:", link)]


def broken_link(source: Path, link: str) -> str | None:
    target, _, anchor = link.partition("#")
    file = (source.parent / target).resolve() if target else source
    if not file.exists():
        return f"{source.name}: {link} (no such file)"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"{source.name}: {link} (no such heading)"
    return None


def shell_commands(text: str) -> list[str]:
    """Commands of the ```bash blocks, in order, comments and prompts stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = (line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines())
    return [line for line in lines if line]


def test_readme_is_a_short_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    commands = shell_commands(text)
    assert commands[0] == "make smoke", "the first command the README shows is make smoke"
    assert {"make demo", "make test"} <= set(commands)  # CI (.ci/run) runs the README's test command
    assert "## Precision" in text


def test_readme_links_every_doc():
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in local_links(README)}
    assert [path.name for path in sorted(DOCS.glob("*.md")) if path.resolve() not in linked] == []


def test_local_links_lead_to_existing_files_and_headings():
    problems = [problem for path in markdown_files() for link in local_links(path) if (problem := broken_link(path, link))]
    assert problems == []


def test_the_readme_headline_is_the_reference_report():
    text = README.read_text(encoding="utf-8")
    assert "reports/smollm2-135m-cpu/report.md" in text and (ROOT / "reports" / "smollm2-135m-cpu" / "report.md").exists()
    # Every measured speedup the headline quotes, with its CI, is a timed point of the committed report.
    headline = text[text.index("## Headline") : text.index("\n## ", text.index("## Headline") + 1)]
    quoted = re.findall(r"(\d\.\d{3})x \[(?:95% CI )?(\d\.\d{3})-(\d\.\d{3})\]", headline)
    with open(ROOT / "reports" / "smollm2-135m-cpu" / "summary.csv", newline="", encoding="utf-8") as handle:
        timed = {
            tuple(f"{float(row[key]):.3f}" for key in ("measured_speedup", "speedup_ci_lo", "speedup_ci_hi"))
            for row in csv.DictReader(handle)
            if row["measured_speedup"]
        }
    assert quoted and set(quoted) <= timed, f"headline speedups {quoted} are not timed points of the report: {timed}"
