"""Host synchronisations per generated token of the engine's decode loop, per strategy (eebench/engine/sync_count.py).

Each one is a point where a CUDA run waits for the device to drain its queue. They are counted on any device: a tiny
random llama with imperfect heads and a median-entropy policy (tests/engine_support.py: exits happen at every head and
drafts are both accepted and rejected), float32, each prompt alone (batch 1) and all together (one ragged batch),
without EOS (what timing runs) and with an EOS test (what lm-eval's generate_until runs). The figures are the marginal
count per decoded token (the prompt pass cancelled out by counting two lengths) and the count per token of a whole call.

    python benchmarks/sync_count.py [--device cuda] [--out benchmarks/results/<date>_sync_count.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny-model setup the engine tests use

from engine_support import single_thread, timing_setup  # noqa: E402

from eebench.backbones.tiny import make_tiny_model  # noqa: E402
from eebench.engine.generate import generate  # noqa: E402
from eebench.engine.sync_count import generation_syncs  # noqa: E402

STRATEGIES = ("full", "lazy", "skip", "copy", "dssd")
# Host reads per decoded token at batch 1 without an EOS test (tests/test_cuda_readiness.py asserts them; gpu_check.py
# compares a CUDA run with them). The engine reads the exit decision and the token back together, once per exit point a
# token is tested at, so a one-token-per-step strategy stays within one read per exit head (this setup has two). DSSD
# also reads each verification's predictions, and every rejected draft cost reads that gave no token, so its bound
# depends on how often these fixed heads' drafts are accepted: set with a margin above what they give, which keeps the
# verdict when another machine's rounding flips a near-tie exit.
SYNCS_PER_TOKEN_BOUND = {"full": 2.0, "lazy": 2.0, "skip": 2.0, "dssd": 5.0}
NEVER_EMITTED = -1  # an EOS id no token equals: the EOS test runs every step and never stops a sequence
SHORT, LONG = 8, 32  # new tokens per sequence of the two counted calls


def strategy_syncs(backbone, heads, policy, batches: list[list], strategy: str, eos_token_id) -> dict:
    """The sync counts of ``strategy`` over ``batches`` (each a list of prompts), per new token."""
    lm = backbone.layered

    def run(new_tokens: int) -> list:
        return [generate(lm, batch, new_tokens, heads, policy, strategy, eos_token_id) for batch in batches]

    return generation_syncs(run, backbone.device, SHORT, LONG)


def measure(model_dir: Path, device: str, strategies=STRATEGIES, grid: bool = True) -> list[dict]:
    """One row per (strategy, batching, EOS test); without ``grid`` only batch 1 without an EOS test (the bound's case)."""
    backbone, heads, policy, prompts = timing_setup(model_dir, prompt_count=4, device=device)
    prompts = [p.reshape(-1).to(backbone.device) for p in prompts]
    batchings = {"batch 1": [[p] for p in prompts], f"batch {len(prompts)}": [prompts]}
    eos_tests = {"no": None, "yes": NEVER_EMITTED}
    if not grid:
        batchings, eos_tests = {"batch 1": batchings["batch 1"]}, {"no": None}
    rows = []
    for strategy in strategies:
        for batching, batches in batchings.items():
            for eos, eos_token_id in eos_tests.items():
                counts = strategy_syncs(backbone, heads, policy, batches, strategy, eos_token_id)
                rows.append({"strategy": strategy, "batching": batching, "eos_test": eos, **counts})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| strategy | batching | EOS test | syncs per decoded token | syncs per token, whole call | calls |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        calls = ", ".join(f"{name} {count}" for name, count in sorted(r["calls"].items()))
        lines.append(
            f"| {r['strategy']} | {r['batching']} | {r['eos_test']} | {r['marginal_syncs_per_token']:.3f} "
            f"| {r['syncs_per_token']:.3f} | {calls} |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="write the rows and provenance as JSON here (and a .md table beside)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, single_thread():
        rows = measure(make_tiny_model("llama", Path(tmp) / "llama"), args.device)
    print(table(rows))
    if args.out:
        from eebench.timing.provenance import timing_provenance

        command = "python benchmarks/sync_count.py " + " ".join(argv if argv is not None else sys.argv[1:])
        out = Path(args.out)
        record = {"command": command.strip(), "short": SHORT, "long": LONG, "rows": rows}
        record["provenance"] = timing_provenance(args.device, 0)
        out.write_text(json.dumps(record, indent=2))
        out.with_suffix(".md").write_text(f"# Host syncs per generated token\n\n    {command.strip()}\n\n{table(rows)}\n")
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
