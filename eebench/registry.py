"""A registry of the variants of one pluggable axis (head type, placement, calibration method, ...).

Each variant lives in its own module of the axis's package and registers itself on import; the package
imports all of its modules once (``discover``), so the registry is the single list of names that config
validation, dispatch and error messages read. Adding a variant is one module, one YAML and one test.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from eebench.errors import require

V = TypeVar("V")


def did_you_mean(name: object, allowed: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest allowed name (as lm-eval's task registry suggests), else ""."""
    close = difflib.get_close_matches(str(name), list(allowed), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_name(key: str, name: object, allowed: Iterable[str]) -> str:
    """The one-line error for a name no variant has: the bad value, what is allowed, and the closest match."""
    allowed = list(allowed)
    return f"{key}={name!r} is not supported; allowed: {', '.join(allowed)}{did_you_mean(name, allowed)}"


class Registry(Generic[V]):
    def __init__(self, key: str, name_of: Callable[[V], str] = lambda variant: variant.name):
        self.key = key  # the config key that names a variant, e.g. "head.kind", used in error messages
        self._name_of = name_of  # a variant's name (its ``name`` unless the axis calls it otherwise)
        self._variants: dict[str, V] = {}

    def register(self, variant: V) -> V:
        name = self._name_of(variant)
        require(name not in self._variants, f"{self.key}={name!r} is registered twice")
        self._variants[name] = variant
        return variant

    def get(self, name: str) -> V:
        require(name in self._variants, unknown_name(self.key, name, self._variants))
        return self._variants[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._variants)

    def items(self):
        return self._variants.items()

    def __contains__(self, name: object) -> bool:
        return name in self._variants

    def __iter__(self):
        return iter(self._variants)

    def __len__(self) -> int:
        return len(self._variants)


def discover(package_name: str, package_path) -> None:
    """Import every module of a variant package (sorted, so registration order is stable)."""
    for module in sorted(m.name for m in pkgutil.iter_modules(package_path)):
        importlib.import_module(f"{package_name}.{module}")


def check_options(key: str, variant: str, options: dict, defaults: dict) -> dict:
    """A variant's own config fields (``key`` e.g. "head.options"): unknown names fail, missing ones take its defaults."""
    unknown = sorted(set(options) - set(defaults))
    require(
        not unknown,
        f"{key}.{unknown[0] if unknown else ''} is not an option of {variant}; allowed: {', '.join(defaults) or 'none'}"
        f"{did_you_mean(unknown[0], defaults) if unknown else ''}",
    )
    return {**defaults, **options}


def variant_options(registry: Registry, options_key: str, kind: str, options: dict) -> dict:
    """The options of variant ``kind`` of an axis whose variants declare ``options`` (defaults) and ``check``:
    validated, with the defaults filled in (e.g. ``head.options`` of a head type, ``readout.options`` of a readout)."""
    variant = registry.get(kind)
    options = check_options(options_key, f"{registry.key}={kind}", dict(options), variant.options)
    if variant.check is not None:
        variant.check(options)
    return options


def one_of(key: str, value: object, allowed: Iterable) -> None:
    """A config value must be one of a fixed list (``key`` e.g. "backbone.dtype"); the error suggests the closest."""
    allowed = tuple(allowed)
    require(value in allowed, unknown_name(key, value, map(str, allowed)))


def positive(key: str, value: float) -> None:
    require(value > 0, f"{key}={value!r} must be > 0")
