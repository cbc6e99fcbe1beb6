"""``timing.*``: how greedy generation is timed against transformers' greedy decoding (eebench/timing/generation.py).

The strategies it names are those of eebench/engine/strategies.py; checks spanning other groups (task prompts
need evaluation tasks) are in eebench/config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eebench.engine.strategies import baseline_strategies, check_timing_strategy
from eebench.errors import require
from eebench.registry import one_of, positive

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
    # dssd: the blocks whose heads may draft (null: every head). A draft from a deep head costs nearly a full pass, so
    # it pays only when almost always accepted; the heads at other blocks are not evaluated while drafting.
    draft_exits: list[int] | None = None
    # profiled runs per workload after the schedule, for the per-part breakdown of a decoded token's time
    # (eebench/timing/breakdown.py); 0: none
    breakdown_repeats: int = 2

    def __post_init__(self) -> None:
        check_timing_strategy(self.strategy)
        for name in self.baselines:
            one_of("timing.baselines", name, baseline_strategies())
        require(len(set(self.baselines)) == len(self.baselines), f"timing.baselines={list(self.baselines)} names one twice")
        positive("timing.baseline_draft_length", self.baseline_draft_length)
        positive("timing.max_draft", self.max_draft)
        require(
            self.draft_exits is None
            or (len(self.draft_exits) > 0 and all(isinstance(b, int) and b >= 0 for b in self.draft_exits)),
            f"timing.draft_exits={self.draft_exits!r} is invalid; allowed: null or a non-empty list of 0-based blocks "
            "that carry exit heads",
        )
        one_of("timing.prompts", self.prompts, TIMING_PROMPTS)
        require(
            self.threads is None or self.threads > 0,
            f"timing.threads={self.threads} must be a positive integer or null (null = physical cores)",
        )
        require(
            self.repeats >= MIN_TIMING_REPEATS,
            f"timing.repeats={self.repeats} is too few for a bootstrap CI; allowed: >= {MIN_TIMING_REPEATS}",
        )
        for name in ("num_prompts", "prompt_tokens", "batch_size"):
            positive(f"timing.{name}", getattr(self, name))
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


def check_draft_exits(cfg: TimingConfig, exit_layers: list[int]) -> None:
    """``timing.draft_exits`` names blocks that carry heads: checked once the placement is known, before training."""
    unknown = sorted(set(cfg.draft_exits or ()) - set(exit_layers))
    require(
        not (cfg.enabled and unknown),
        f"timing.draft_exits={cfg.draft_exits} names blocks without an exit head ({unknown}); allowed: blocks of {exit_layers}",
    )
