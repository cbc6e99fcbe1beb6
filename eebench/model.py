"""EarlyExitModel: a backbone, its exit heads and their calibration, usable from Python.

    model = EarlyExitModel.from_run("multirun/.../0")
    new_tokens = model.generate(input_ids, max_new_tokens=32, threshold=0.9)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from eebench.backbones import Backbone, load_backbone
from eebench.config import BackboneConfig, CalibrationConfig
from eebench.engine.generate import generate
from eebench.errors import EEBenchError, require
from eebench.exits.calibration import calibrate
from eebench.exits.policy import ExitPolicy
from eebench.heads import ExitHeads, load_heads
from eebench.traces.trace import Trace
from eebench.tracking.contract import RESULTS_FILE, read_result


@dataclass
class EarlyExitModel:
    backbone: Backbone
    heads: ExitHeads
    calibration: Trace
    metric: str = "entropy"
    calibration_cfg: CalibrationConfig = field(default_factory=CalibrationConfig)
    _policies: dict = field(default_factory=dict)

    def policy(self, target: float) -> ExitPolicy:
        """Per-head thresholds calibrated so each head agrees with the full model at rate ``target``."""
        require(0.0 < target <= 1.0, f"threshold={target!r} is outside (0, 1]; it is the target agreement with the full model")
        if target not in self._policies:
            unc = self.calibration.uncertainty(self.metric)
            values = calibrate(self.calibration_cfg, unc, self.calibration.agree, target)
            self._policies[target] = ExitPolicy(self.heads.exit_layers, self.metric, values)
        return self._policies[target]

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 32, strategy: str = "lazy",
                 threshold: float = 0.9) -> torch.Tensor:
        """Greedy early-exit decoding of one sequence; returns the new token ids [1, n]."""
        policy = self.policy(threshold)
        ids = input_ids.to(self.backbone.device)
        return generate(self.backbone.layered, ids, max_new_tokens, self.heads, policy, strategy,
                        self.backbone.tokenizer.eos_token_id).tokens

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto") -> EarlyExitModel:
        require((Path(run_dir) / RESULTS_FILE).exists(),
                f"run dir {str(run_dir)!r} has no {RESULTS_FILE}; give the directory of a finished eebench run")
        results = read_result(run_dir)
        heads_dir, trace_dir = results.artifacts.heads_dir, results.artifacts.calibration_trace_dir
        if not Path(heads_dir).exists():
            raise EEBenchError(f"run dir {str(run_dir)!r} names no existing heads (artifacts.heads_dir={heads_dir!r}); "
                               "re-run it to rebuild the cache")
        backbone = load_backbone(BackboneConfig(**results.artifacts.backbone_config), device)
        heads = load_heads(Path(heads_dir), backbone.layered)
        calibration_cfg = CalibrationConfig(**results.artifacts.calibration_config)
        return cls(backbone, heads, Trace.load(Path(trace_dir)), results.confidence, calibration_cfg)
