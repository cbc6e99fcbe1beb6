"""Calibration methods, one module each in this package; a module registers its method with ``register``.

Every method maps (uncertainty, agree) of one head on calibration tokens and a target agreement level to one
threshold in uncertainty units; a token exits when its uncertainty <= threshold (``NEVER_EXIT``: no token does).
Which tokens a head is fit on is the shared ``calibration.conditional`` field (``exits/calibration.py``).
A method's own fields are ``calibration.<field>`` keys of its own config, a subclass of ``CalibrationConfig``
declared beside the method (with its defaults and checks) and named in ``config``; the registry puts every
method in Hydra's ConfigStore as an option of the ``calibration`` group (``eebench.config``). To add one: a
module here calling ``register(Calibrator(...))`` and a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from eebench.registry import Registry, discover

NEVER_EXIT = -math.inf


@dataclass
class CalibrationConfig:
    method: str = "max_coverage"  # a method registered in eebench/exits/calibrators/
    # true: head i is fit on the calibration tokens that no earlier head lets exit, the tokens it decides at run
    # time, so the target holds for the tokens that exit there; false: on every token (each head on its own)
    conditional: bool = True


@dataclass(frozen=True)
class Calibrator:
    name: str
    # (uncertainty [tokens], agree [tokens], target, its config, groups [tokens] or None) -> threshold; groups: the
    # calibration sequence of each token, for methods whose statistics take sequences as the units
    fit: Callable
    config: type[CalibrationConfig] = CalibrationConfig  # the method's own fields: a subclass, checked on creation
    description: str = ""

    def default_config(self) -> CalibrationConfig:
        return self.config(method=self.name)


CALIBRATORS: Registry[Calibrator] = Registry("calibration.method")
register = CALIBRATORS.register


def calibration_config(recorded: dict | str) -> CalibrationConfig:
    """The config of a method from its name or its recorded fields (results.json's ``artifacts``). Fields the method
    does not have are dropped: runs made before each method owned its config recorded every method's fields."""
    recorded = {"method": recorded} if isinstance(recorded, str) else dict(recorded)
    calibrator = CALIBRATORS.get(recorded.get("method", CalibrationConfig.method))
    own = {f.name for f in fields(calibrator.config)}
    return calibrator.config(**{"method": calibrator.name, **{k: v for k, v in recorded.items() if k in own}})


def sorted_with_cuts(uncertainty: torch.Tensor, agree: torch.Tensor):
    """(uncertainty ascending, agree in that order, valid cuts, the order): a threshold must not split tied
    uncertainties, so only the last index of each tie group is a valid cut. The order (ties in token order) sorts
    anything else a method reads per token the same way."""
    order = torch.argsort(uncertainty.double(), stable=True)
    sorted_unc = uncertainty.double()[order]
    last_of_group = torch.ones_like(sorted_unc, dtype=torch.bool)
    last_of_group[:-1] = sorted_unc[1:] != sorted_unc[:-1]
    return sorted_unc, agree[order].double(), last_of_group, order


discover(__name__, __path__)
