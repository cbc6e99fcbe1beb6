"""``max_coverage`` (the paper): largest threshold whose running agreement on calibration data >= target."""

import torch

from eebench.exits.calibrators import NEVER_EXIT, Calibrator, register, sorted_with_cuts


def max_coverage(uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg=None, groups=None) -> float:
    sorted_unc, sorted_agree, cuts, _ = sorted_with_cuts(uncertainty, agree)
    counts = torch.arange(1, len(sorted_unc) + 1, dtype=torch.float64, device=sorted_unc.device)
    running = torch.cumsum(sorted_agree, 0) / counts
    valid = (running >= target - 1e-12) & cuts
    if not bool(valid.any()):
        return NEVER_EXIT
    return float(sorted_unc[valid.nonzero().max()])


register(Calibrator("max_coverage", max_coverage, description=__doc__))
