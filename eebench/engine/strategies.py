"""Generation strategies: the single list of their names and properties.

``generate`` (engine/generate.py) runs the ``engine`` strategies; ``assistant_early_exit`` is transformers' own
``generate(assistant_early_exit=block + 1)`` (benchmarks/engine_speed.py). An experiment's timing stage
(``timing.strategy``) runs the strategies that exit by the calibrated policy; the baselines exit at one fixed block
(``exit_layer``) and are timed side by side with it (``timing.baselines``, eebench/timing/baselines.py, and
benchmarks/engine_speed.py). Layer-wise KV modes are in layerwise.py.
To add a strategy: its code in the engine, an entry here, and a test (tests/test_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from eebench.errors import require
from eebench.registry import Registry


@dataclass(frozen=True, kw_only=True)
class Strategy:
    # Keyword-only: a row of positional booleans in the table below would not say which flag is which.
    name: str
    runner: str  # "engine": eebench.engine.generate; "transformers": transformers' generate
    lossless: bool  # output equals full-depth greedy decoding (speculation verifies every draft)
    baseline: bool  # a published comparison point exiting at one fixed block, not by the exit policy
    speculative: bool = False  # drafts from an exit, verifies with the full model
    description: str = ""

    @property
    def follows_policy(self) -> bool:
        return not self.baseline


STRATEGIES: Registry[Strategy] = Registry("strategy")
for _strategy in (
    Strategy(
        name="full",
        runner="engine",
        lossless=False,
        baseline=False,
        description="exits pick the token, every block still runs (exact KV)",
    ),
    Strategy(
        name="lazy",
        runner="engine",
        lossless=False,
        baseline=False,
        description="exited positions' deeper KV filled with the next deep token",
    ),
    Strategy(
        name="copy",
        runner="engine",
        lossless=False,
        baseline=False,
        description="CALM: the exited hidden state feeds every deeper block's KV",
    ),
    Strategy(
        name="skip",
        runner="engine",
        lossless=False,
        baseline=False,
        description="deeper blocks never see exited positions",
    ),
    Strategy(
        name="dssd",
        runner="engine",
        lossless=True,
        baseline=False,
        speculative=True,
        description="dynamic self-speculative decoding with the heads and policy",
    ),
    Strategy(
        name="static",
        runner="engine",
        lossless=False,
        baseline=True,
        description="every token exits at block exit_layer",
    ),
    Strategy(
        name="layerskip",
        runner="engine",
        lossless=True,
        baseline=True,
        speculative=True,
        description="self-speculation drafting from block exit_layer (LayerSkip)",
    ),
    Strategy(
        name="assistant_early_exit",
        runner="transformers",
        lossless=True,
        baseline=True,
        speculative=True,
        description="transformers' generate(assistant_early_exit=exit_layer + 1): self-speculation from one block",
    ),
):
    STRATEGIES.register(_strategy)


def engine_strategies() -> tuple[str, ...]:
    return tuple(s.name for s in map(STRATEGIES.get, STRATEGIES) if s.runner == "engine")


def speculative_strategies() -> tuple[str, ...]:
    return tuple(s.name for s in map(STRATEGIES.get, STRATEGIES) if s.speculative)


def baseline_strategies() -> tuple[str, ...]:
    return tuple(s.name for s in map(STRATEGIES.get, STRATEGIES) if s.baseline)


def policy_strategies() -> tuple[str, ...]:
    return tuple(s.name for s in map(STRATEGIES.get, STRATEGIES) if s.follows_policy)


def check_timing_strategy(name: str) -> None:
    """An experiment times the strategy under its calibrated exit policy: a fixed-block baseline has no place there."""
    strategy = STRATEGIES.get(name)
    require(
        strategy.follows_policy,
        f"timing.strategy={name} is a baseline exiting at one fixed block (time it with timing.baselines=[{name}]); "
        f"allowed: {', '.join(policy_strategies())}",
    )
