"""Typed experiment configuration.

Hydra composes YAML groups onto these dataclasses (registered in the ConfigStore as ``eebench_schema``),
so unknown keys and wrong types fail at composition; ``validate(cfg)`` then builds the dataclasses,
whose ``__post_init__`` checks values and raises a one-line ``EEBenchError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from eebench.errors import EEBenchError, require

LOGGERS = ("wandb", "none")


def _one_of(name: str, value: Any, allowed: tuple) -> None:
    require(value in allowed, f"{name}={value!r} is not supported; allowed: {', '.join(map(str, allowed))}")


def _positive(name: str, value: float) -> None:
    require(value > 0, f"{name}={value!r} must be > 0")


BACKBONE_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class BackboneConfig:
    # The label in results and reports; null: the model's own name (bundled name, GGUF file stem, directory, hub id).
    name: str | None = None
    # A hub id, a local model directory, or "bundled:smollm2-135m" (the offline default from PyPI).
    name_or_path: str = "bundled:smollm2-135m"
    gguf_file: str | None = None
    revision: str | None = None
    # auto: the faster of float32 and bfloat16 where bfloat16 is native (a short probe decides), else float32
    # (eebench/backbones/precision.py). Exactness (engine == transformers, lossless strategies) holds in float32 only.
    dtype: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _one_of("backbone.dtype", self.dtype, BACKBONE_DTYPES)


@dataclass
class PlacementConfig:
    kind: str = "equal"  # a placement registered in eebench/heads/placements/ (each declares the fields below it reads)
    num_heads: int = 4  # for kind=equal: heads at the interior points of linspace(0, L, n+2)
    layers: list[int] = field(default_factory=list)  # for kind=explicit: 0-based block indices
    every: int = 4  # for kind=every: blocks every-1, 2*every-1, ... below the last block

    def __post_init__(self) -> None:
        from eebench.heads.placements import PLACEMENTS

        placement = PLACEMENTS.get(self.kind)
        if placement.check is not None:
            placement.check(self)


STATE_DTYPES = ("float16", "bfloat16", "float32")
TRAINING_PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass
class HeadTrainingConfig:
    max_tokens: int = 1_000_000  # token budget per head (training stops earlier once the held-out KL stops improving)
    batch_size: int = 4  # sequences per step
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    eval_every: int = 65_536  # tokens between held-out KL evaluations
    patience: int = 3  # evaluations without an improvement of at least min_delta before a head stops
    min_delta: float = 1e-3
    val_sequences: int = 16  # validation slice carved from the end of the training split (never trained on)
    state_dtype: str = "float16"  # how cached hidden states are stored on disk
    precision: str = "auto"  # heads train with float32 weights; auto: bf16 autocast exactly when the backbone is bf16
    probe_target: float = 0.9  # each held-out evaluation also measures coverage of an entropy exit calibrated to this

    def __post_init__(self) -> None:
        _positive("head.training.max_tokens", self.max_tokens)
        _positive("head.training.batch_size", self.batch_size)
        _positive("head.training.lr", self.lr)
        _positive("head.training.eval_every", self.eval_every)
        require(self.patience >= 1, f"head.training.patience={self.patience} must be >= 1 (evaluations without improvement)")
        require(self.min_delta >= 0, f"head.training.min_delta={self.min_delta} must be >= 0")
        require(self.warmup_steps >= 0, f"head.training.warmup_steps={self.warmup_steps} must be >= 0")
        require(
            self.val_sequences >= 2,
            f"head.training.val_sequences={self.val_sequences} must be >= 2 (half calibrates the exit probe, half judges it)",
        )
        require(0 < self.probe_target < 1, f"head.training.probe_target={self.probe_target} is outside (0, 1)")
        _one_of("head.training.state_dtype", self.state_dtype, STATE_DTYPES)
        _one_of("head.training.precision", self.precision, TRAINING_PRECISIONS)


@dataclass
class GateConfig:
    width: int = 64  # 0: no gates
    max_tokens: int = 30_720  # token budget per gate (stops earlier once the held-out loss stops improving)
    batch_size: int = 4
    lr: float = 3e-3

    def __post_init__(self) -> None:
        require(self.width >= 0, f"head.gate.width={self.width} must be >= 0 (0 disables gates)")
        _positive("head.gate.max_tokens", self.max_tokens)
        _positive("head.gate.batch_size", self.batch_size)


@dataclass
class HeadConfig:
    kind: str = "linear"  # a head type registered in eebench/heads/types/
    init_from_lm_head: bool = True
    training: HeadTrainingConfig = field(default_factory=HeadTrainingConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    # The head type's own fields (e.g. low_rank: rank), declared with defaults on the type; filled in here.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from eebench.heads.types import head_options

        self.options = head_options(self.kind, self.options)


@dataclass
class ReadoutConfig:
    kind: str = "full"  # a readout registered in eebench/heads/readouts/: which vocabulary rows the heads project onto
    # The readout's own fields (e.g. shortlist: k), declared with defaults on the readout; filled in here.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from eebench.heads.readouts import readout_options

        self.options = readout_options(self.kind, self.options)


@dataclass
class ConfidenceConfig:
    metric: str = "entropy"  # a name registered in eebench/exits/metrics/

    def __post_init__(self) -> None:
        from eebench.exits.metrics import METRICS

        _one_of("confidence.metric", self.metric, tuple(METRICS))


@dataclass
class CalibrationConfig:
    method: str = "max_coverage"  # a method registered in eebench/exits/calibrators/
    # The fields below belong to risk_controlled (its module declares and validates them); other methods ignore them.
    delta: float = 0.1  # allowed probability that held-out agreement misses the target
    bound: str = "binomial"  # "binomial" (exact) or "hb" (Hoeffding-Bentkus)
    grid: int = 200  # candidate thresholds tested in sequence

    def __post_init__(self) -> None:
        from eebench.exits.calibrators import CALIBRATORS

        method = CALIBRATORS.get(self.method)
        if method.check is not None:
            method.check(self)


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
            _positive(f"data.{name}", getattr(self, name))


EVAL_SUITES = ("bigbench", "lm_eval")


@dataclass
class EvalConfig:
    # bigbench: eebench's offline BIG-bench tasks (short names); lm_eval: task names lm-eval knows,
    # plus any task YAMLs under include_path.
    suite: str = "bigbench"
    tasks: list[str] = field(default_factory=list)
    include_path: str | None = None
    limit: int | None = None  # examples per task; None = all that were built
    batch_size: int = 8
    num_fewshot: int = 0

    def __post_init__(self) -> None:
        _one_of("eval.suite", self.suite, EVAL_SUITES)
        _positive("eval.batch_size", self.batch_size)
        require(self.limit is None or self.limit > 0, f"eval.limit={self.limit} must be a positive integer or null")


TIMING_PROMPTS = ("heldout", "tasks")
MIN_TIMING_REPEATS = 5  # fewer paired repeats give a bootstrap CI with too few distinct resamples to mean anything


@dataclass
class TimingConfig:
    enabled: bool = True
    strategy: str = "lazy"  # a strategy in eebench/engine/strategies.py that follows the exit policy
    # heldout: the start of held-out prose documents; tasks: the evaluation tasks' own request contexts.
    prompts: str = "heldout"
    num_prompts: int = 4
    prompt_tokens: int = 64  # heldout: prompt length; tasks: each context keeps its last prompt_tokens tokens
    max_new_tokens: int = 48
    warmup: int = 1
    repeats: int = 20  # paired repeats behind every CI; why 20: benchmarks/results/README.md (estimate_ci)
    batch_size: int = 1  # prompts generated together; 1 times per-sequence latency
    threads: int | None = None  # torch intra-op threads while timing; null = this machine's physical cores
    seed: int = 0  # order of the workloads in each repeat, and the bootstrap resamples
    # Fixed-block baselines timed in the same schedule as the strategy (eebench/timing/baselines.py):
    # static, layerskip, assistant_early_exit; they exit at baseline_exit_layer (null: the deepest exit head's block).
    baselines: list[str] = field(default_factory=list)
    baseline_exit_layer: int | None = None  # 0-based block; null = the deepest exit head's block
    baseline_draft_length: int = 4  # tokens drafted per verification by layerskip and assistant_early_exit
    # dssd: at most this many drafts per verification (drafting also stops at the first token no exit is confident of)
    max_draft: int = 5
    # profiled runs per workload after the schedule, for the per-part breakdown of a decoded token's time
    # (eebench/timing/breakdown.py); 0: none
    breakdown_repeats: int = 2

    def __post_init__(self) -> None:
        from eebench.engine.strategies import baseline_strategies, check_timing_strategy

        check_timing_strategy(self.strategy)
        for name in self.baselines:
            _one_of("timing.baselines", name, baseline_strategies())
        require(len(set(self.baselines)) == len(self.baselines), f"timing.baselines={list(self.baselines)} names one twice")
        _positive("timing.baseline_draft_length", self.baseline_draft_length)
        _positive("timing.max_draft", self.max_draft)
        _one_of("timing.prompts", self.prompts, TIMING_PROMPTS)
        require(
            self.threads is None or self.threads > 0,
            f"timing.threads={self.threads} must be a positive integer or null (null = physical cores)",
        )
        require(
            self.repeats >= MIN_TIMING_REPEATS,
            f"timing.repeats={self.repeats} is too few for a bootstrap CI; allowed: >= {MIN_TIMING_REPEATS}",
        )
        for name in ("num_prompts", "prompt_tokens", "batch_size"):
            _positive(f"timing.{name}", getattr(self, name))
        # Decode time is the whole generation minus the prompt pass, which already yields the first token.
        require(
            self.max_new_tokens >= 2,
            f"timing.max_new_tokens={self.max_new_tokens!r} must be >= 2 "
            "(the first token comes from the prompt pass; decode timing needs more)",
        )
        require(self.warmup >= 0, f"timing.warmup={self.warmup} must be >= 0")
        require(
            isinstance(self.breakdown_repeats, int) and self.breakdown_repeats >= 0,
            f"timing.breakdown_repeats={self.breakdown_repeats!r} is invalid; allowed: an integer >= 0 (0: no breakdown)",
        )


@dataclass
class LoggerConfig:
    kind: str = "wandb"
    project: str = "eebench"
    mode: str = "offline"  # set WANDB_MODE=online (and log in) to sync live
    entity: str | None = None

    def __post_init__(self) -> None:
        _one_of("logger.kind", self.kind, LOGGERS)
        _one_of("logger.mode", self.mode, ("offline", "online", "disabled"))


@dataclass
class ExperimentConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
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
        _one_of("device", self.device, ("auto", "cpu", "cuda"))
        from eebench.exits.metrics import get_metric

        require(
            not get_metric(self.confidence.metric).needs_gates or self.head.gate.width > 0,
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


def register_configs() -> None:
    ConfigStore.instance().store(name="eebench_schema", node=ExperimentConfig)


def validate(cfg: DictConfig | dict) -> ExperimentConfig:
    """Turn a composed config into typed dataclasses; raise EEBenchError on any invalid value."""
    try:
        if not isinstance(cfg, DictConfig):
            cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), cfg)
        plain = OmegaConf.to_container(cfg, resolve=True)
        plain = {k: v for k, v in plain.items() if k != "hydra"}
        merged = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), plain)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        if isinstance(exc.__cause__, EEBenchError):
            raise exc.__cause__ from None
        raise EEBenchError(str(exc).splitlines()[0]) from None
