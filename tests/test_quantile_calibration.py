"""The quantile calibrator, from the command line to a threshold."""

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir

from eebench.config import register_configs, validate
from eebench.errors import EEBenchError
from eebench.exits.calibration import calibrate


def test_quantile_lets_its_share_of_tokens_exit():
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = validate(compose("config", overrides=["calibration=quantile", "calibration.quantile=0.25"]))
    uncertainty = torch.arange(101, dtype=torch.float64)[None]
    assert calibrate(cfg.calibration, uncertainty, torch.ones_like(uncertainty), 0.9) == [25.0]
    with pytest.raises(EEBenchError, match=r"calibration.quantile=1.5 must be in \(0, 1\)"):
        validate({"calibration": {"method": "quantile", "quantile": 1.5}})
