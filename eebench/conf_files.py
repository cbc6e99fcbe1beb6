"""What the YAML files of ``conf/`` say beyond their values: each file's leading comment and the comment beside
each key, read for the generated configuration reference (``eebench/config_doc.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def group_files(group: str) -> list[Path]:
    return sorted((CONF_DIR / group).glob("*.yaml"))


def leading_comment(path: Path) -> str:
    """The comment lines a YAML file starts with (``@package`` lines skipped), as one sentence."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return " ".join(lines)


def yaml_key_comments(path: Path) -> dict[str, str]:
    """Dotted key -> the comment at the end of its line, from the file's indentation."""
    comments, stack = {}, []  # stack of (indent, key)
    for line in path.read_text(encoding="utf-8").splitlines():
        body = line.split(" #", 1)[0].rstrip()
        if not body.strip() or body.lstrip().startswith(("#", "-")) or ":" not in body:
            continue
        indent = len(body) - len(body.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = body.strip().split(":", 1)[0]
        stack.append((indent, key))
        if " #" in line:
            comments[".".join(k for _, k in stack)] = line.split(" #", 1)[1].strip()
    return comments


def group_yaml_comments(group: str) -> dict[str, str]:
    """``group.key`` -> the first comment any of the group's files gives that key."""
    comments: dict[str, str] = {}
    for path in group_files(group):
        for key, text in yaml_key_comments(path).items():
            comments.setdefault(f"{group}.{key}", text)
    return comments


def file_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def flat_settings(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf a YAML file sets."""
    items = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            items += flat_settings(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items
