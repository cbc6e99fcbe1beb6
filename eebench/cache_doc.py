"""The cache-key table of ``docs/caching.md``, generated from the artifacts' declarations (``eebench.cache.Artifact``).

    python -m eebench.cache_doc

rewrites the table between its two markers in docs/caching.md (the prose around it is written by hand);
``tests/test_cache_doc.py`` keeps the committed table equal to this output. A new artifact kind joins ``ARTIFACTS``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from eebench.cache import Artifact
from eebench.evaluation.runner import BASELINES, SCORES
from eebench.heads.artifact import HEADS
from eebench.heads.states import HIDDEN_STATES
from eebench.traces.artifact import TRACES

ARTIFACTS: tuple[Artifact, ...] = (HEADS, HIDDEN_STATES, TRACES, SCORES, BASELINES)
DOC = Path(__file__).resolve().parents[1] / "docs" / "caching.md"
GENERATE_COMMAND = "python -m eebench.cache_doc"
BEGIN = f"<!-- cache-key table: generated from the artifacts' declarations by `{GENERATE_COMMAND}`; do not edit -->"
END = "<!-- end of the cache-key table -->"
PACKAGE_DIR = Path(__file__).resolve().parent


def source_path(module: str) -> str:
    """A module's file relative to the eebench package (``eebench.heads.modules`` -> ``heads/modules.py``)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ValueError(f"artifact code: no source for module {module!r}")
    return Path(spec.origin).resolve().relative_to(PACKAGE_DIR).as_posix()


def row(artifact: Artifact) -> str:
    keyed_on = "; ".join(f"`{name}`: {meaning}" for name, meaning in artifact.inputs.items())
    code = ", ".join(f"`{source_path(module)}`" for module in sorted(set(artifact.modules)))
    if artifact.variant_code:
        code += f", and {artifact.variant_code}"
    return f"| `{artifact.kind}` | `{source_path(artifact.builder)}` | {keyed_on} | {code} |"


def cache_key_table() -> str:
    """The table with its markers: one row per declared artifact kind."""
    lines = [
        BEGIN,
        "",
        "| artifact | built by | keyed on | code in the key |",
        "|---|---|---|---|",
        *(row(artifact) for artifact in ARTIFACTS),
        "",
        END,
    ]
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """``text`` with the part from BEGIN to END replaced by ``table``; one line naming what is missing otherwise."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC.name} has no cache-key table markers; allowed: a file with {BEGIN!r} ... {END!r}")
    return text[:start] + table + text[end + len(END) :]


def main() -> int:
    DOC.write_text(with_table(DOC.read_text(encoding="utf-8"), cache_key_table()), encoding="utf-8")
    print(f"wrote the cache-key table of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
