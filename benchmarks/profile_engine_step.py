"""Where the engine's full-depth step spends time that transformers' greedy decoding does not.

Profiles ``generate(lm, prompt, n, strategy="full")`` (no heads: plain full-depth greedy through the
layer-wise engine) against transformers' ``model.generate(do_sample=False)`` on the same prompt at
batch 1, with torch.profiler (operator counts and self CPU time per decode step) and optionally an
interleaved wall-clock A/B. Operator counts are exact; times are only indicative on a shared CPU.

    python benchmarks/profile_engine_step.py --model-dir ~/.cache/eebench/backbones/<key> [--ab-repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile

from eebench.backbones.loader import load_backbone
from eebench.config import BackboneConfig
from eebench.engine.generate import generate

PROMPTS = [
    "The history of the printing press begins in the fifteenth century, when",
    "To make a simple tomato sauce, first heat some olive oil in a pan and",
    "In mathematics, a prime number is a natural number greater than one that",
]


def engine_run(lm, prompt, new_tokens):
    return generate(lm, prompt, new_tokens, strategy="full").tokens[0]


def hf_run(model, prompt, new_tokens, pad):
    out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
    return out[0, prompt.shape[1] :]


def op_table(run, steps: int) -> tuple[Counter, Counter]:
    """Per decode step: operator call counts and self CPU microseconds, by operator name."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    counts, self_us = Counter(), Counter()
    for event in prof.key_averages():
        counts[event.key] = event.count / steps
        self_us[event.key] = event.self_cpu_time_total / steps
    return counts, self_us


def print_profiles(name_runs, steps: int, top: int) -> None:
    tables = {name: op_table(run, steps) for name, run in name_runs}
    for name, (counts, self_us) in tables.items():
        total_ops = sum(c for key, c in counts.items() if key.startswith("aten::"))
        print(
            f"\n== {name}: {total_ops:.0f} aten ops / step, {sum(self_us.values()) / 1000:.2f} ms self CPU / step"
            " (profiler overhead included)"
        )
        print(f"{'op':44s} {'calls/step':>10s} {'self us/step':>12s}")
        for key, us in self_us.most_common(top):
            print(f"{key[:44]:44s} {counts[key]:10.1f} {us:12.1f}")


def interleaved_ab(runs: dict, repeats: int) -> None:
    """Alternate the two runs (order flipped every repeat) and report the ratio per repeat."""
    times = {name: [] for name in runs}
    names = list(runs)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times[names[0]], times[names[1]])]
    for name in names:
        print(f"{name}: median {statistics.median(times[name]):.3f} s over {repeats} repeats")
    print(
        f"{names[0]} / {names[1]} time ratio per repeat: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=16, help="new tokens in the profiled runs")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ab-repeats", type=int, default=0, help="interleaved wall-clock repeats (0: skip)")
    parser.add_argument("--ab-tokens", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone = load_backbone(BackboneConfig(name_or_path=args.model_dir, dtype=args.dtype), device="cpu")
    model, lm, tok = backbone.model, backbone.layered, backbone.tokenizer
    prompts = [tok(p, return_tensors="pt").input_ids for p in PROMPTS]
    pad = tok.eos_token_id
    with torch.no_grad():
        for p in prompts:  # warm up, and check the two agree token for token
            same = torch.equal(engine_run(lm, p, args.steps), hf_run(model, p, args.steps, pad))
            print(f"prompt of {p.shape[1]} tokens: engine == transformers: {same}")
        print_profiles(
            [
                ("engine full", lambda: engine_run(lm, prompts[0], args.steps)),
                ("transformers generate", lambda: hf_run(model, prompts[0], args.steps, pad)),
            ],
            args.steps,
            args.top,
        )
        if args.ab_repeats:
            n = args.ab_tokens
            interleaved_ab(
                {
                    "engine full": lambda: [engine_run(lm, p, n) for p in prompts],
                    "transformers generate": lambda: [hf_run(model, p, n, pad) for p in prompts],
                },
                args.ab_repeats,
            )


if __name__ == "__main__":
    main()
