"""``quantile``: per head, the ``calibration.quantile``-th quantile of the calibration tokens' uncertainty, whatever
their agreement (a coverage-first baseline: about that share of tokens exits at each head)."""

from dataclasses import dataclass

import torch

from eebench.errors import require
from eebench.exits.calibrators import CalibrationConfig, Calibrator, register


@dataclass
class QuantileConfig(CalibrationConfig):
    method: str = "quantile"
    quantile: float = 0.5  # share of calibration tokens each head lets exit, in (0, 1)

    def __post_init__(self) -> None:
        require(0 < self.quantile < 1, f"calibration.quantile={self.quantile!r} must be in (0, 1)")


def quantile(uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg: QuantileConfig | None = None) -> float:
    cfg = cfg or QuantileConfig()
    return float(torch.quantile(uncertainty.double(), cfg.quantile))


register(Calibrator("quantile", quantile, QuantileConfig, __doc__))
