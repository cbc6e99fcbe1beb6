"""Generic, strict conversion between dataclass trees and JSON-ready dicts (used by the results contract).

Rules: a field without a default is required; a key the dataclass does not declare is an error (a renamed
field shows up as one missing and one unknown key, never as a silent NaN); nested dataclasses, optional ones
and lists of them convert recursively. A field whose metadata has ``flatten=True`` holds a dataclass whose keys
are stored one level up with ``<name>_`` in front (``timing.full.tokens_per_s`` <-> ``timing["full_tokens_per_s"]``).
A field with ``on_disk=False`` is never written nor read (e.g. the run directory a result was loaded from); an
optional field holding None or its empty default is not written.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from eebench.errors import EEBenchError


def flattened(default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING, bare: str | None = None) -> Any:
    """A nested dataclass stored at the parent level with ``<field name>_`` prefixed to its keys; its field ``bare``
    (if given) is stored under the field's own name (``speedup`` <-> ``Ratio.value``, ``speedup_ci95`` <-> ``.ci95``)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"flatten": True, "bare": bare})


def stored_key(name: str, key: str, bare: str | None = None) -> str:
    """Where key ``key`` of a dataclass flattened under ``name`` is stored: ``<name>_<key>``, or ``name`` for ``bare``."""
    return name if key == bare else f"{name}_{key}"


def flattened_under(name: str, obj: Any, bare: str | None = None) -> dict:
    """A dataclass's stored keys flattened under ``name`` (what a ``flattened()`` field writes)."""
    return {stored_key(name, k, bare): v for k, v in unbuild(obj).items()}


def _disk_name(parent: dataclasses.Field, key: str) -> str:
    return stored_key(parent.name, key, parent.metadata.get("bare"))


def not_on_disk(default: Any = None) -> Any:
    return dataclasses.field(default=default, metadata={"on_disk": False}, compare=False)


def _child(where: str, name: str) -> str:
    return f"{where} {name}" if where.endswith(":") else f"{where}.{name}"


def _stored_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("on_disk", True)]


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _options(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(hint))
    return hint, hint is Any


def _check_plain(value: Any, hint: Any, where: str) -> Any:
    """Light type check of a leaf value against its annotation (int accepted for float)."""
    origin = typing.get_origin(hint) or hint
    expected = {float: (int, float), int: (int,), str: (str,), bool: (bool,), list: (list, tuple), dict: (dict,)}.get(origin)
    if expected and (not isinstance(value, expected) or (origin in (int, float) and isinstance(value, bool))):
        raise EEBenchError(f"{where} is {type(value).__name__} {value!r}, expected {getattr(origin, '__name__', origin)}")
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _convert(value: Any, hint: Any, where: str) -> Any:
    inner, nullable = _options(hint)
    if value is None:
        if nullable:
            return None
        raise EEBenchError(f"{where} is null, expected a value")
    if dataclasses.is_dataclass(inner):
        # A producer may hand over its typed result as it is; plain data (a results file) is built.
        return value if isinstance(value, inner) else build(inner, value, where)
    return value if inner is Any else _check_plain(value, inner, where)


def build(cls, data: Any, where: str):
    """``cls`` from ``data``; EEBenchError naming ``where`` (e.g. 'results.json: timing') on any mismatch."""
    if not isinstance(data, dict):
        raise EEBenchError(f"{where} is {type(data).__name__}, expected an object")
    hints = typing.get_type_hints(cls)
    data = dict(data)
    values, missing = {}, []
    for f in _stored_fields(cls):
        if f.metadata.get("flatten"):
            nested, _ = _options(hints[f.name])
            if isinstance(data.get(f.name), nested):  # a producer's typed value, as it is
                values[f.name] = data.pop(f.name)
                continue
            names = {_disk_name(f, g.name): g.name for g in _stored_fields(nested)}
            keys = set(names) & set(data)
            if keys or _required(f):
                values[f.name] = build(nested, {names[k]: data.pop(k) for k in keys}, _child(where, f"{f.name}_*"))
        elif f.name in data:
            values[f.name] = _convert(data.pop(f.name), hints[f.name], _child(where, f.name))
        elif _required(f):
            missing.append(f.name)
    if missing or data:
        problems = [f"no field(s) {missing}"] * bool(missing) + [f"unknown field(s) {sorted(data)}"] * bool(data)
        raise EEBenchError(
            f"{where} has {' and '.join(problems)}; renamed? the results schema declares {[f.name for f in _stored_fields(cls)]}"
        )
    return cls(**values)


def _left_out(f: dataclasses.Field, value: Any) -> bool:
    """An optional field holding nothing (None, or an empty default such as {}) is not written: files of
    runs that did not produce it (timing=none, no eval tasks, no gates) stay as they were."""
    if _required(f):
        return False
    return value is None or (f.default_factory is not dataclasses.MISSING and value == f.default_factory())


def unbuild(obj: Any) -> Any:
    """Plain JSON-ready data from a dataclass tree (flattened and not-on-disk fields handled)."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in _stored_fields(type(obj)):
            value = getattr(obj, f.name)
            if _left_out(f, value):
                continue
            if f.metadata.get("flatten"):
                if value is not None:
                    out.update(flattened_under(f.name, value, f.metadata.get("bare")))
            else:
                out[f.name] = unbuild(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [unbuild(v) for v in obj]
    if isinstance(obj, dict):
        return {k: unbuild(v) for k, v in obj.items()}
    return obj


def declared_keys(cls) -> list[str]:
    """Top-level keys as stored on disk (flattened fields expanded), for docs and tests."""
    keys = []
    for f in _stored_fields(cls):
        if f.metadata.get("flatten"):
            nested, _ = _options(typing.get_type_hints(cls)[f.name])
            keys += [_disk_name(f, k) for k in declared_keys(nested)]
        else:
            keys.append(f.name)
    return keys
