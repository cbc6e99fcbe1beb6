"""Typed experiment configuration: composition, and the checks that span groups.

Each pluggable axis owns its config beside its code: a placement's fields in its module of
``heads/placements/``, a calibration method's in ``exits/calibrators/``, the heads' type, training and gates in
``heads/config.py``, the readout's in ``heads/readouts/``, the confidence metric's in ``exits/metrics/``. Every
variant of an axis is an option of its Hydra group, put in the ConfigStore from the axis's registry
(``register_configs``), so ``conf/`` holds presets and only what differs from the defaults. Hydra composes the
groups onto ``ExperimentConfig`` (``eebench_schema``), so unknown keys and wrong types fail at composition;
``validate(cfg)`` then builds the dataclasses, whose ``__post_init__`` checks values and raises a one-line
``EEBenchError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from eebench.backbones.config import BackboneConfig
from eebench.errors import EEBenchError, require
from eebench.exits.calibrators import CALIBRATORS, CalibrationConfig
from eebench.exits.metrics import METRICS, ConfidenceConfig
from eebench.heads.config import GateConfig, HeadConfig, HeadTrainingConfig
from eebench.heads.placements import PLACEMENTS, PlacementConfig
from eebench.heads.readouts import READOUTS, ReadoutConfig
from eebench.heads.types import HEAD_TYPES
from eebench.registry import Registry, one_of, positive
from eebench.timing.config import TimingConfig

# Re-exported: callers that build a whole experiment in code read every group's config from here.
__all__ = [
    "BackboneConfig",
    "CalibrationConfig",
    "ConfidenceConfig",
    "GateConfig",
    "HeadConfig",
    "HeadTrainingConfig",
    "PlacementConfig",
    "ReadoutConfig",
    "TimingConfig",
]

LOGGERS = ("wandb", "none")


@dataclass
class DataConfig:
    # "bundled:django-docs" (prose from the Django documentation sdist on PyPI), a local .txt file or
    # directory of .txt files, or "hf:<dataset>[:<config>]" for online users.
    source: str = "bundled:django-docs"
    seq_len: int = 256
    train_sequences: int = 800
    calibration_sequences: int = 24
    heldout_sequences: int = 24

    def __post_init__(self) -> None:
        require(self.seq_len >= 8, f"data.seq_len={self.seq_len} is too short; allowed: >= 8")
        for name in ("train_sequences", "calibration_sequences", "heldout_sequences"):
            positive(f"data.{name}", getattr(self, name))


EVAL_SUITES = ("bigbench", "lm_eval")


@dataclass
class EvalConfig:
    # bigbench: eebench's offline tasks by short name (generated arithmetic, prose, BIG-bench given its sdist);
    # lm_eval: task names lm-eval knows, plus any task YAMLs under include_path.
    suite: str = "bigbench"
    tasks: list[str] = field(default_factory=list)
    include_path: str | None = None
    limit: int | None = None  # examples per task; None = all that were built
    batch_size: int = 8
    num_fewshot: int = 0

    def __post_init__(self) -> None:
        one_of("eval.suite", self.suite, EVAL_SUITES)
        positive("eval.batch_size", self.batch_size)
        require(self.limit is None or self.limit > 0, f"eval.limit={self.limit} must be a positive integer or null")


@dataclass
class LoggerConfig:
    kind: str = "wandb"
    project: str = "eebench"
    mode: str = "offline"  # set WANDB_MODE=online (and log in) to sync live
    entity: str | None = None

    def __post_init__(self) -> None:
        one_of("logger.kind", self.kind, LOGGERS)
        one_of("logger.mode", self.mode, ("offline", "online", "disabled"))


@dataclass(frozen=True)
class Axis:
    """A config group whose options are the variants of one registry, each with its config's defaults."""

    group: str  # the config group, e.g. "calibration"
    registry: Registry
    base: type  # the group's config type; its ``<name key>`` field's default names the default variant
    option: Callable[[str], Any]  # variant name -> its config with every default: the group's option of that name

    @property
    def name_key(self) -> str:
        return self.registry.key.split(".")[-1]  # "calibration.method" -> "method"

    def default(self) -> Any:
        return self.option(getattr(self.base, self.name_key))

    def typed(self, fields: dict) -> DictConfig:
        """``fields`` of this group on the config type of the variant they name (unknown keys and types fail)."""
        name = fields.get(self.name_key, getattr(self.base, self.name_key))
        return OmegaConf.merge(OmegaConf.structured(type(self.option(self.registry.get(name).name))), fields)


AXES = (
    Axis("placement", PLACEMENTS, PlacementConfig, lambda name: PLACEMENTS.get(name).default_config()),
    Axis("head", HEAD_TYPES, HeadConfig, lambda name: HeadConfig(kind=name)),
    Axis("readout", READOUTS, ReadoutConfig, lambda name: ReadoutConfig(kind=name)),
    Axis("confidence", METRICS, ConfidenceConfig, lambda name: ConfidenceConfig(metric=name)),
    Axis("calibration", CALIBRATORS, CalibrationConfig, lambda name: CALIBRATORS.get(name).default_config()),
)
_AXIS = {axis.group: axis for axis in AXES}


def _default(group: str) -> Callable[[], Any]:
    return lambda: _AXIS[group].default()


@dataclass
class ExperimentConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # A placement's and a calibration method's fields are their variant's own (e.g. placement.num_heads of equal).
    placement: PlacementConfig = field(default_factory=_default("placement"))
    head: HeadConfig = field(default_factory=HeadConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)
    calibration: CalibrationConfig = field(default_factory=_default("calibration"))
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    threshold: float = 0.9  # target agreement with the full model, in (0, 1]
    seed: int = 0
    device: str = "auto"
    name: str = "default"

    def __post_init__(self) -> None:
        require(
            0.0 < self.threshold <= 1.0,
            f"threshold={self.threshold!r} is outside (0, 1]; it is the target agreement with the full model",
        )
        one_of("device", self.device, ("auto", "cpu", "cuda"))
        require(
            not METRICS.get(self.confidence.metric).needs_gates or self.head.gate.width > 0,
            f"confidence.metric={self.confidence.metric} needs exit gates; set head.gate.width > 0",
        )
        require(
            not self.timing.enabled or self.timing.prompts != "tasks" or bool(self.eval.tasks),
            "timing.prompts=tasks needs evaluation tasks (eval.tasks is empty); allowed here: heldout",
        )
        self._check_budgets()
        self._check_precision()

    def _check_precision(self) -> None:
        """Heads trained under bfloat16 rounding would be deployed in float16, another 16-bit format."""
        require(
            not (self.backbone.dtype == "float16" and self.head.training.precision == "bfloat16"),
            "head.training.precision=bfloat16 does not fit backbone.dtype=float16 (heads would be tuned under bfloat16 "
            "rounding and run in float16); allowed: head.training.precision=auto or float32",
        )

    def _check_budgets(self) -> None:
        """A budget below one batch would train nothing; the validation slice must leave sequences to train on."""
        for key, budget in (("head.training", self.head.training), ("head.gate", self.head.gate)):
            batch_tokens = budget.batch_size * self.data.seq_len
            require(
                budget.max_tokens >= batch_tokens,
                f"{key}.max_tokens={budget.max_tokens} is smaller than one batch ({key}.batch_size={budget.batch_size} x "
                f"data.seq_len={self.data.seq_len} = {batch_tokens} tokens); allowed: >= {batch_tokens}",
            )
        val = self.head.training.val_sequences
        require(
            val < self.data.train_sequences,
            f"head.training.val_sequences={val} leaves no training sequences; allowed: < data.train_sequences="
            f"{self.data.train_sequences}",
        )


def schema() -> ExperimentConfig:
    """What Hydra composes the groups onto: a group whose variants have configs of their own holds its base type
    here, so that any variant's config can be merged onto it (a default variant would refuse a sibling's)."""
    return ExperimentConfig(placement=PlacementConfig(), calibration=CalibrationConfig())


def register_configs() -> None:
    """The schema, and every variant of every axis as an option of its group (``placement=every``)."""
    store = ConfigStore.instance()
    store.store(name="eebench_schema", node=schema())
    for axis in AXES:
        for name in axis.registry.names():
            store.store(group=axis.group, name=name, node=axis.option(name))


def validate(cfg: DictConfig | dict) -> ExperimentConfig:
    """Turn a composed config into typed dataclasses; raise EEBenchError on any invalid value."""
    try:
        plain = OmegaConf.to_container(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg), resolve=True)
        plain = {k: v for k, v in plain.items() if k != "hydra"}
        typed = {axis.group: axis.typed(plain.get(axis.group, {})) for axis in AXES}
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema()), {**plain, **typed}))
    except OmegaConfBaseException as exc:
        if isinstance(exc.__cause__, EEBenchError):
            raise exc.__cause__ from None
        raise EEBenchError(str(exc).splitlines()[0]) from None
