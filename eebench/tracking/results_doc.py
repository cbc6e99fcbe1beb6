"""``docs/results.md``, generated from the results contract: one table per dataclass of ``results.json``.

    python -m eebench.tracking.results_doc > docs/results.md

Each table lists a type's fields as stored on disk (a flattened field as ``<name>_*``), their type, whether every
file has them, and their meaning, read from the comment beside the field in ``contract.py`` /
``contract_training.py`` / ``contract_timing.py`` (``eebench.field_docs``). ``tests/test_contract.py`` keeps the file
equal to this output and every field documented.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass

from eebench.field_docs import class_doc, field_comments, optional_inner, type_text
from eebench.tracking.contract import RunResult

GENERATE_COMMAND = "python -m eebench.tracking.results_doc > docs/results.md"

INTRO = """\
Each point of a sweep writes `results.json`, `config.yaml` (the composed config) and `run.log` (what it logged,
timestamped) into its run directory. `results.json` follows one typed schema, `eebench/tracking/contract.py`
(`RunResult`, version in `schema_version`): every reader loads it through that schema, so a missing or renamed key
is an error naming the file, and `eebench report` lists such a file (or one from an older schema) as skipped with
the reason. `status` is `complete` once everything is written.

How the numbers are measured (timing protocol, teacher-forced accuracy, calibration checked on held-out
documents) is in [measurement.md](measurement.md).

Reading the tables: *where* is the key's path in `results.json` (`[]`: each element of a list; `name_*`: the
type's keys stored one level up with `name_` in front, e.g. `timing.transformers_tokens_per_s`). *always*: every
file has the key; *optional*: left out when it holds nothing (null or empty), e.g. `timing` with `timing=none`.
"""


@dataclass
class Section:
    """One dataclass of the contract and the places in results.json where it is stored."""

    cls: type
    places: list[str]


def stored_fields(cls: type) -> list[dataclasses.Field]:
    """The fields written to results.json (``not_on_disk`` ones, such as ``run_dir``, are not)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("on_disk", True)]


def is_flattened(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("flatten"))


def disk_key(f: dataclasses.Field) -> str:
    return f"{f.name}_*" if is_flattened(f) else f.name


def nested_dataclass(hint: typing.Any) -> tuple[type | None, bool]:
    """(the dataclass a field holds, directly or as a list of them, or None; whether it is a list)."""
    inner, _ = optional_inner(hint)
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        return (item if dataclasses.is_dataclass(item) else None), True
    return (inner if dataclasses.is_dataclass(inner) else None), False


def child_place(parent: str, f: dataclasses.Field, is_list: bool) -> str:
    key = f"{parent}.{disk_key(f)}" if parent else disk_key(f)
    return f"{key}[]" if is_list else key


def contract_sections(root: type = RunResult) -> list[Section]:
    """Every dataclass reachable from ``root``, breadth first, with each place it is stored at."""
    sections: dict[type, Section] = {root: Section(root, ["(top level)"])}
    queue: list[tuple[type, str]] = [(root, "")]
    while queue:
        cls, place = queue.pop(0)
        hints = typing.get_type_hints(cls)
        for f in stored_fields(cls):
            child, is_list = nested_dataclass(hints[f.name])
            if child is None:
                continue
            where = child_place(place, f, is_list)
            if child in sections:
                sections[child].places.append(where)
            else:
                sections[child] = Section(child, [where])
                queue.append((child, where))
    return list(sections.values())


def anchor(cls: type) -> str:
    return cls.__name__.lower()


def linked_name(cls: type) -> str:
    return f"[{cls.__name__}](#{anchor(cls)})"


def presence(f: dataclasses.Field) -> str:
    has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    return "optional" if has_default else "always"


def table_cell(text: str) -> str:
    return text.replace("|", "\\|")


def field_rows(cls: type) -> list[str]:
    hints, meanings = typing.get_type_hints(cls), field_comments(cls)
    rows = ["| field | type | present | meaning |", "|---|---|---|---|"]
    for f in stored_fields(cls):
        kind = type_text(hints[f.name], linked_name)
        rows.append(f"| `{disk_key(f)}` | {table_cell(kind)} | {presence(f)} | {table_cell(meanings.get(f.name, ''))} |")
    return rows


def section_markdown(section: Section) -> list[str]:
    where = ", ".join(f"`{place}`" if place != "(top level)" else place for place in section.places)
    lines = [f"## {section.cls.__name__}", "", f"Where: {where}."]
    if doc := class_doc(section.cls):
        lines += ["", doc]
    return lines + [""] + field_rows(section.cls) + [""]


def results_markdown() -> str:
    """The whole of docs/results.md."""
    lines = [
        "# results.json reference",
        "",
        f"<!-- Generated from eebench/tracking/contract.py by `{GENERATE_COMMAND}`; do not edit by hand. -->",
        "",
        INTRO,
    ]
    sections = contract_sections()
    lines += ["Types: " + ", ".join(linked_name(section.cls) for section in sections) + ".", ""]
    for section in sections:
        lines += section_markdown(section)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    sys.stdout.write(results_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
