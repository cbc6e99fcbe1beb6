"""EarlyExitModel: a backbone, its exit heads and their calibration, usable from Python.

model = EarlyExitModel.from_run("multirun/.../0")
new_tokens = model.generate(input_ids, max_new_tokens=32, threshold=0.9)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from eebench.backbones import Backbone, load_backbone
from eebench.cache import MANIFEST, cache_root, entry_problem
from eebench.config import BackboneConfig
from eebench.engine.generate import generate
from eebench.errors import require
from eebench.exits.calibration import calibrate
from eebench.exits.calibrators import CalibrationConfig, calibration_config
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
    calibration_sequence_len: int | None = None  # tokens per calibration sequence (calibrate's units)
    _policies: dict = field(default_factory=dict)

    def policy(self, target: float) -> ExitPolicy:
        """Per-head thresholds calibrated so each head agrees with the full model at rate ``target``."""
        require(0.0 < target <= 1.0, f"threshold={target!r} is outside (0, 1]; it is the target agreement with the full model")
        if target not in self._policies:
            unc = self.calibration.uncertainty(self.metric)
            values = calibrate(self.calibration_cfg, unc, self.calibration.agree, target, self.calibration_sequence_len)
            self._policies[target] = ExitPolicy(self.heads.exit_layers, self.metric, values)
        return self._policies[target]

    def generate(
        self, input_ids: torch.Tensor, max_new_tokens: int = 32, strategy: str = "lazy", threshold: float = 0.9
    ) -> torch.Tensor:
        """Greedy early-exit decoding of one sequence; returns the new token ids [1, n]."""
        policy = self.policy(threshold)
        ids = input_ids.to(self.backbone.device)
        return generate(
            self.backbone.layered, ids, max_new_tokens, self.heads, policy, strategy, self.backbone.tokenizer.eos_token_id
        ).tokens

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        device: str = "auto",
        trust_remote_code: bool = False,
        backbone: str | None = None,
        dtype: str | None = None,
    ) -> EarlyExitModel:
        """Load a finished run. A run directory is data, never code: ``trust_remote_code`` comes only from this
        argument (never from results.json), and the heads, trace and a local backbone (and its GGUF file) it names
        must lie in the eebench cache or the run directory; ``backbone=`` names the backbone explicitly instead.
        ``dtype``: load the backbone (and cast the heads) in this precision instead of the run's own."""
        run_dir = Path(run_dir)
        results_path = run_dir / RESULTS_FILE
        require(
            results_path.exists(), f"run dir {str(run_dir)!r} has no results.json; give the directory of a finished eebench run"
        )
        results = read_result(run_dir)  # strict: a file off the results contract is a one-line error naming it
        artifacts = results.artifacts
        backbone_fields = dict(artifacts.backbone_config)
        heads_dir = trusted_artifact(run_dir, "heads_dir", artifacts.heads_dir)
        trace_dir = trusted_artifact(run_dir, "calibration_trace_dir", artifacts.calibration_trace_dir)
        if backbone is not None:
            backbone_fields["name_or_path"] = backbone
        else:
            check_backbone_path(run_dir, backbone_fields.get("name_or_path", ""))
        check_gguf_file(run_dir, backbone_fields, named=backbone is not None)
        backbone_fields["trust_remote_code"] = bool(trust_remote_code)
        # The dtype the run resolved and trained its heads for, not its "auto" resolved afresh on this machine.
        backbone_fields["dtype"] = dtype or results.backbone_dtype
        loaded = load_backbone(BackboneConfig(**backbone_fields), device)
        heads = load_heads(heads_dir, loaded.layered)
        calibration_cfg = calibration_config(artifacts.calibration_config)
        return cls(loaded, heads, Trace.load(trace_dir), results.confidence, calibration_cfg, artifacts.calibration_sequence_len)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    resolved = path.resolve()  # follows symlinks: a link in the run dir to elsewhere does not count as inside
    return any(resolved == root or root in resolved.parents for root in roots)


def _trusted_roots(run_dir: Path) -> tuple[Path, ...]:
    return cache_root(), run_dir.resolve()


def trusted_artifact(run_dir: Path, key: str, value) -> Path:
    """An artifact folder named by results.json: inside the cache or the run dir, present and intact."""
    where = f"run dir {str(run_dir)!r}: artifacts.{key}={value!r}"
    require(isinstance(value, str) and value, f"{where} names no artifact; re-run the point to rebuild it")
    path = Path(value)
    require(
        _inside(path, _trusted_roots(run_dir)),
        f"{where} lies outside the eebench cache ({cache_root()}) and the run dir; allowed: artifacts in either",
    )
    require(path.is_dir(), f"{where} does not exist; re-run the point to rebuild the cache")
    if (path / MANIFEST).exists():
        problem = entry_problem(path)
        require(problem is None, f"{where} is corrupt ({problem}); re-run the point to rebuild it")
    return path


def check_backbone_path(run_dir: Path, name_or_path: str) -> None:
    """A local backbone named by results.json must lie in the cache or the run dir (hub ids and bundled names pass)."""
    path = Path(name_or_path).expanduser()
    if name_or_path.startswith("bundled:") or not (path.exists() or name_or_path.startswith(("/", ".", "~"))):
        return
    require(
        _inside(path, _trusted_roots(run_dir)),
        f"run dir {str(run_dir)!r}: backbone_config.name_or_path={name_or_path!r} lies outside the eebench cache and "
        "the run dir; to trust it, pass it yourself: from_run(run_dir, backbone=PATH) or model_args backbone=PATH",
    )


def check_gguf_file(run_dir: Path, backbone_fields: dict, named: bool) -> None:
    """The loader joins a GGUF file named by results.json to the backbone folder: the file itself must lie in the
    cache or the run dir too, or in the backbone folder the caller ``named``."""
    gguf_file = backbone_fields.get("gguf_file")
    if not gguf_file:
        return
    folder = Path(str(backbone_fields.get("name_or_path", ""))).expanduser()
    roots = (*_trusted_roots(run_dir), *((folder.resolve(),) if named else ()))
    require(
        isinstance(gguf_file, str) and _inside(folder / gguf_file, roots),
        f"run dir {str(run_dir)!r}: backbone_config.gguf_file={gguf_file!r} lies outside the eebench cache"
        + (", the backbone folder given" if named else "")
        + " and the run dir; allowed: a GGUF file inside them",
    )
