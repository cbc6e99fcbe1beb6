"""``platt``: logistic fit of P(agree | uncertainty); exit where the fitted probability >= target."""

import math

import torch

from eebench.exits.calibrators import NEVER_EXIT, Calibrator, register


def platt(uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg=None, groups=None) -> float:
    x = uncertainty.double()
    scale = float(x.std()) or 1.0
    z = (x - x.mean()) / scale  # standardise so plain gradient steps converge
    params = torch.zeros(2, dtype=torch.float64, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * z + params[1], agree.double())
        loss.backward()
        return loss

    optimizer.step(closure)
    slope, bias = (float(v) for v in params.detach())
    if slope >= 0 or target >= 1.0:  # agreement does not fall with uncertainty: no threshold is justified
        return NEVER_EXIT
    z_cut = (math.log(target / (1 - target)) - bias) / slope
    return float(z_cut * scale + x.mean())


register(Calibrator("platt", platt, description=__doc__))
