"""The strategy registry is the one list of names: the engine, config validation and the KV modes agree with it."""

import pytest

from eebench.config import validate
from eebench.engine import generate as engine_generate
from eebench.engine.layerwise import MODES
from eebench.engine.strategies import STRATEGIES, engine_strategies, policy_strategies
from eebench.errors import EEBenchError


def test_registry_drives_engine_and_config():
    assert engine_generate.STRATEGIES == engine_strategies()
    assert set(engine_strategies()) == set(STRATEGIES) - {"assistant_early_exit"}
    # Every non-speculative policy strategy is one of the layer-wise decoder's KV modes.
    assert {s for s in policy_strategies() if not STRATEGIES.get(s).speculative} == set(MODES)
    assert {s for s in STRATEGIES if STRATEGIES.get(s).baseline} == {"static", "layerskip", "assistant_early_exit"}
    assert {s for s in STRATEGIES if STRATEGIES.get(s).lossless} == {"dssd", "layerskip", "assistant_early_exit"}
    for name in policy_strategies():
        assert validate({"timing": {"strategy": name}}).timing.strategy == name
    with pytest.raises(EEBenchError, match=r"timing.strategy=static is a baseline .*allowed: full, lazy, copy, skip, dssd$"):
        validate({"timing": {"strategy": "static"}})
    with pytest.raises(EEBenchError, match=r"strategy='warp' is not supported; allowed: full, lazy, copy, skip, dssd, static"):
        validate({"timing": {"strategy": "warp"}})
