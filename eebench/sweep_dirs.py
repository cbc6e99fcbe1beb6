"""Sweep points are folders named by their configuration, never by their index in one launch.

``hydra.sweep.subdir: ${eebench_point:${hydra.overrides.task}}`` names each job's folder
``<short overrides>_<hash of the composed config>``, so relaunching a different sweep into an existing
sweep directory adds its points beside the old ones instead of overwriting ``0/``, ``1/``, ...; the same
point relaunched lands in its old folder and is skipped when finished.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

RESOLVER = "eebench_point"
# Keys that do not change a point's results: where it is logged and what the sweep is called.
NOT_IDENTITY = ("hydra", "logger", "name")
_MAX_READABLE = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


def point_identity(config: dict) -> str:
    """Short hash of a point's composed configuration, without the keys that do not change its results."""
    kept = {key: value for key, value in config.items() if key not in NOT_IDENTITY}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _readable(overrides: list[str]) -> str:
    """The short, path-free overrides, sorted so the same point gets the same name from any launch."""
    parts = []
    for override in sorted(str(o) for o in overrides):
        key, _, value = override.lstrip("+~").partition("=")
        if key.split(".")[0] in NOT_IDENTITY or "/" in value or len(value) > 24:
            continue
        parts.append(_UNSAFE.sub("-", f"{key}={value}"))
    return ",".join(parts)[:_MAX_READABLE].rstrip(",")


def _task_config(root: DictConfig) -> dict | None:
    try:
        task = OmegaConf.masked_copy(root, [key for key in root if key != "hydra"])
        return OmegaConf.to_container(task, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation into hydra: fall back to the overrides alone
        return None


def point_dir_name(overrides: Any, _root_: DictConfig) -> str:
    overrides = list(overrides or [])
    config = _task_config(_root_)
    identity = point_identity(config) if config is not None else point_identity({"overrides": sorted(map(str, overrides))})
    readable = _readable(overrides)
    return f"{readable}_{identity}" if readable else identity


def register_resolvers() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, point_dir_name)


register_resolvers()  # on import: Hydra launchers that run jobs in other processes import the pipeline
