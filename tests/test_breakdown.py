"""The per-part breakdown of a decoded token's time: call counts are exact, parts cannot overlap, weight reads are
those of the modules called (never how fast anything is)."""

import pytest
import torch
from engine_support import timing_setup, tiny_backbone

from eebench.heads import ExitHeads
from eebench.timing.breakdown import PartClock, _weights, matvec_ms, model_parts, time_breakdowns
from eebench.timing.workloads import generate_batches, transformers_greedy
from eebench.tracking.contract_timing import TimeBreakdown
from eebench.tracking.schema import build, unbuild

NEW = 6

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tiny_model_dirs):
    return timing_setup(tiny_model_dirs["llama"], 2)


def _workloads(backbone, heads, policy, prompts, strategy):
    lm, batches = backbone.layered, [[p] for p in prompts]
    return {
        "transformers": transformers_greedy(backbone.model, backbone.tokenizer.pad_token_id, batches),
        "full": lambda n: generate_batches(lm, batches, n),
        "early_exit": lambda n: generate_batches(lm, batches, n, heads=heads, policy=policy, strategy=strategy),
    }


def _by_part(breakdown):
    return {part.part: part for part in breakdown.parts}


@pytest.mark.parametrize("strategy", ["lazy", "dssd"])
def test_calls_per_token_count_every_block_and_readout(setup, strategy):
    backbone, heads, policy, prompts = setup
    layers = backbone.layered.num_layers
    result = time_breakdowns(
        _workloads(backbone, heads, policy, prompts, strategy), backbone.layered, heads, torch.device("cpu"), NEW, repeats=1
    )
    transformers, full, early = result
    assert [b.workload for b in result] == ["transformers", "full", "early_exit"]
    for reference in (transformers, full):  # one full-depth pass per token: every block once, lm_head once
        parts = _by_part(reference)
        assert parts["blocks"].calls_per_token == pytest.approx(layers)
        assert parts["final_readout"].calls_per_token == pytest.approx(1)
        assert "exit_heads" not in parts and reference.exited_steps_per_token == 0
        assert reference.full_steps_per_token == pytest.approx(1)
    parts = _by_part(early)
    # A step either reached lm_head or left at an exit; both happen in the tiny setup.
    assert parts["exit_heads"].calls_per_token > 0
    assert early.exited_steps_per_token > 0 and early.full_steps_per_token > 0
    steps = early.exited_steps_per_token + early.full_steps_per_token
    if strategy == "lazy":  # one step per token; an exited token skips the blocks after its exit
        assert steps == pytest.approx(1)
        assert parts["blocks"].calls_per_token < layers
    else:  # a rejected draft is a step that adds no token
        assert steps >= 1
    for breakdown in result:
        measured = [p for p in breakdown.parts if p.part != "other"]
        assert all(p.ms_per_token > 0 and p.weight_read_ms_per_token > 0 for p in measured), breakdown
        assert breakdown.parts[-1].part == "other" and breakdown.parts[-1].calls_per_token is None
        assert sum(p.ms_per_token for p in breakdown.parts) == pytest.approx(breakdown.ms_per_token)
        assert breakdown.weight_read_ms_per_token == pytest.approx(sum(p.weight_read_ms_per_token for p in breakdown.parts))


def test_dssd_steps_are_its_drafts_and_verifications(setup):
    """At batch 1 a draft step drafts one token and a verification step is one full pass."""
    backbone, heads, policy, prompts = setup
    lm, prompt = backbone.layered, prompts[0]

    def dssd(n):
        return generate_batches(lm, [[prompt]], n, heads=heads, policy=policy, strategy="dssd")

    (breakdown,) = time_breakdowns({"early_exit": dssd}, lm, heads, torch.device("cpu"), NEW, repeats=1)
    stats = dssd(NEW)[0].speculation
    steps = NEW - 1
    assert breakdown.exited_steps_per_token * steps == pytest.approx(stats.drafted)
    assert breakdown.full_steps_per_token * steps == pytest.approx(stats.full_passes)
    assert 0 < breakdown.exited_step_share < 1


def test_a_head_calling_the_shared_lm_head_is_the_heads_time(tiny_model_dirs):
    """The outermost hooked module owns a call: a logit-lens head runs lm_head inside itself."""
    backbone, _ = tiny_backbone(tiny_model_dirs["llama"])
    lm = backbone.layered
    heads = ExitHeads.create(lm, [1], kind="logit_lens")

    def one_step(n):
        lm.token_embedding(torch.tensor([[1]]))  # a step starts at its token embedding
        return [heads.logits(0, torch.randn(1, lm.hidden_size))]

    with PartClock(model_parts(lm, heads), lm.token_embedding, torch.device("cpu")) as clock:
        (step,), _ = clock.run(one_step, 1)
    assert step.calls["exit_heads"] == 1 and step.calls["final_readout"] == 0 and not step.reached_full


def test_weight_reads_are_the_matrices_a_call_multiplies(tiny_model_dirs):
    lm = tiny_backbone(tiny_model_dirs["llama"])[0].layered
    block = lm.blocks[0]
    linears = [m.weight for m in block.modules() if isinstance(m, torch.nn.Linear)]
    assert [w for w, _ in _weights(block)] == linears and len(linears) == 7  # q k v o, gate up down
    gpt2 = tiny_backbone(tiny_model_dirs["gpt2"])[0].layered
    found = _weights(gpt2.blocks[0])
    assert found and all(transposed for _, transposed in found)  # GPT-2's Conv1D stores [in, out]
    assert matvec_ms(list(gpt2.blocks)) > 0 and matvec_ms([torch.nn.Embedding(5, 3)]) == 0


def test_breakdown_lands_in_the_timing_result_and_round_trips(setup):
    backbone, heads, policy, prompts = setup
    lm = backbone.layered
    result = time_breakdowns(_workloads(backbone, heads, policy, prompts, "lazy"), lm, heads, torch.device("cpu"), NEW, 1)
    assert time_breakdowns({}, lm, heads, torch.device("cpu"), NEW, repeats=0) == []
    stored = unbuild(result)
    assert [build(TimeBreakdown, b, "timing.breakdown") for b in stored] == result


def test_measured_point_carries_the_breakdown_into_results_and_report(setup):
    """measure_generation -> results.json -> the report's "Where the time goes" table, numbers unchanged."""
    from results_factory import make_results

    from eebench.engine.flops import CostModel
    from eebench.reporting.time_breakdown import time_breakdown_section
    from eebench.timing.config import TimingConfig
    from eebench.timing.generation import measure_generation
    from eebench.tracking.contract import RunResult

    backbone, heads, policy, prompts = setup
    cfg = TimingConfig(num_prompts=2, prompt_tokens=8, max_new_tokens=NEW, warmup=0, repeats=5, threads=1)
    timing = measure_generation(backbone, heads, policy, prompts, cfg, CostModel.from_layered(backbone.layered, heads))
    assert [b.workload for b in timing.breakdown] == ["transformers", "full", "early_exit"]
    run = RunResult.from_dict({**make_results(backbone="tiny"), "timing": unbuild(timing)})
    assert run.timing == timing  # measured, written and read back unchanged
    heading, _, table = time_breakdown_section([run])
    assert heading.text == "Where the time goes"
    assert table.headers[1:] == ["transformers greedy", "engine, full depth", "early exit"]
    blocks = next(row for row in table.rows if row[0] == "blocks")
    assert blocks[2].startswith(f"{timing.breakdown[1].parts[0].ms_per_token:.1f} ({backbone.layered.num_layers:.1f})")
    untimed = RunResult.from_dict({**make_results(backbone="tiny"), "timing": None})
    assert time_breakdown_section([untimed]) == []


def test_breakdown_repeats_must_be_a_count():
    from eebench.errors import EEBenchError
    from eebench.timing.config import TimingConfig

    with pytest.raises(EEBenchError, match="timing.breakdown_repeats=-1 is invalid"):
        TimingConfig(breakdown_repeats=-1)
