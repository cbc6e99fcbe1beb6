"""The meaning of each dataclass field, read from its source comment (for the generated docs in ``docs/``).

A field is documented by the comment at the end of its line (``tokens: int  # held-out tokens simulated``) or,
where it has none, by the block of comment lines directly above it. Keeping the meaning beside the declaration
means the contract and the config stay the one place to read or change it; ``docs/results.md`` and
``docs/configuration.md`` are rendered from here, and tests keep them equal and complete.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from typing import Any, Union


def _comments_by_line(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line (without ``#``)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string.lstrip("#").strip() for tok in tokens if tok.type == tokenize.COMMENT}


def _comment_only_lines(source: str) -> set[int]:
    return {number for number, line in enumerate(source.splitlines(), start=1) if line.strip().startswith("#")}


def _block_above(line: int, comments: dict[int, str], comment_lines: set[int]) -> str:
    """The comment lines directly above ``line`` (no blank line between), joined in order."""
    block = []
    while line - 1 in comment_lines:
        line -= 1
        block.insert(0, comments[line])
    return " ".join(block)


def _class_body(cls: type) -> tuple[str, list[ast.AnnAssign]]:
    source = textwrap.dedent(inspect.getsource(cls))
    (node,) = ast.parse(source).body
    return source, [item for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment (trailing, else the block above it); '' for a field without one."""
    source, fields = _class_body(cls)
    comments, comment_lines = _comments_by_line(source), _comment_only_lines(source)
    docs = {}
    for item in fields:
        docs[item.target.id] = comments.get(item.end_lineno) or _block_above(item.lineno, comments, comment_lines)
    return docs


def class_doc(cls: type) -> str:
    """The class docstring as one paragraph, or '' where the dataclass only has its generated signature."""
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):
        return ""
    first_paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(first_paragraph.split())


def optional_inner(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(hint))
    return hint, False


def type_text(hint: Any, name_of: typing.Callable[[type], str] = lambda cls: cls.__name__) -> str:
    """A readable type: ``float or null``, ``list[int]``, ``dict[str, float]``; dataclasses through ``name_of``."""
    inner, nullable = optional_inner(hint)
    if dataclasses.is_dataclass(inner):
        text = name_of(inner)
    elif typing.get_origin(inner) in (list, dict):
        args = ", ".join(type_text(arg, name_of) for arg in typing.get_args(inner))
        text = f"{typing.get_origin(inner).__name__}[{args}]" if args else typing.get_origin(inner).__name__
    elif inner is Any:
        text = "any"
    else:
        text = getattr(inner, "__name__", str(inner))
    return f"{text} or null" if nullable else text
