"""Calibration methods, one module each in this package; a module registers its method with ``register``.

Every method maps (uncertainty, agree) of one head on calibration tokens and a target agreement level to one
threshold in uncertainty units; a token exits when its uncertainty <= threshold (``NEVER_EXIT``: no token does).
A method's own fields are ``calibration.<field>`` keys of ``CalibrationConfig``, declared in ``fields`` and
validated by ``check``. To add one: a module here calling ``register(Calibrator(...))``, a
``conf/calibration/<name>.yaml`` and a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from eebench.registry import Registry, discover

NEVER_EXIT = -math.inf


@dataclass(frozen=True)
class Calibrator:
    name: str
    fit: Callable  # (uncertainty [tokens], agree [tokens], target, CalibrationConfig | None) -> threshold
    fields: tuple[str, ...] = ()  # the calibration.<field> keys this method reads
    check: Callable | None = None  # (CalibrationConfig) -> None; raises EEBenchError for a bad field value
    description: str = ""


CALIBRATORS: Registry[Calibrator] = Registry("calibration.method")
register = CALIBRATORS.register


def sorted_with_cuts(uncertainty: torch.Tensor, agree: torch.Tensor):
    """(uncertainty ascending, agree in that order, valid cuts): a threshold must not split tied uncertainties,
    so only the last index of each tie group is a valid cut."""
    order = torch.argsort(uncertainty.double(), stable=True)
    sorted_unc = uncertainty.double()[order]
    last_of_group = torch.ones_like(sorted_unc, dtype=torch.bool)
    last_of_group[:-1] = sorted_unc[1:] != sorted_unc[:-1]
    return sorted_unc, agree[order].double(), last_of_group


discover(__name__, __path__)
