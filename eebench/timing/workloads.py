"""The workloads a timing schedule runs: the engine over prompt batches, transformers' own greedy ``generate``,
and what their outputs are compared by (token match, decoded exits, speculation acceptance)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from eebench.engine.generate import GenerationOutput, generate

Workload = Callable[[int], list]  # new tokens per sequence -> outputs, one per batch


def prompt_batches(prompts: list[torch.Tensor], batch_size: int) -> list[list[torch.Tensor]]:
    return [prompts[start : start + batch_size] for start in range(0, len(prompts), batch_size)]


def generate_batches(lm, batches: list[list[torch.Tensor]], new_tokens: int, **kwargs) -> list[GenerationOutput]:
    # No EOS stop: every run produces exactly new_tokens per prompt, so token counts match across runs.
    return [generate(lm, batch, new_tokens, **kwargs) for batch in batches]


def transformers_greedy(model, pad_token_id: int, batches: list[list[torch.Tensor]], **kwargs) -> Workload:
    """transformers' own greedy ``generate`` over the batches: the user's alternative to eebench.
    Like the engine it never stops at EOS, so both produce the same number of tokens."""
    config = copy.deepcopy(model.generation_config)
    # No EOS at all: transformers refills a None eos_token_id from the model's own generation config (so it would
    # stop at EOS while the engine goes on), and min_new_tokens would mask EOS out of the argmax, which the engine
    # never does. An empty list is kept as given and matches no token.
    config.eos_token_id = []
    config.do_sample, config.pad_token_id = False, pad_token_id

    def run(new_tokens: int) -> list[torch.Tensor]:
        return [_transformers_batch(model, batch, new_tokens, config, **kwargs) for batch in batches]

    return run


def _transformers_batch(model, batch: list[torch.Tensor], new_tokens: int, config, **kwargs) -> torch.Tensor:
    """[B, new_tokens]: ragged prompts are padded on the left, as transformers' decoder-only generate expects."""
    rows = [p.reshape(-1) for p in batch]
    width = max(len(r) for r in rows)
    ids = torch.stack([torch.nn.functional.pad(r, (width - len(r), 0), value=config.pad_token_id) for r in rows])
    mask = torch.stack([torch.nn.functional.pad(torch.ones_like(r), (width - len(r), 0)) for r in rows])
    config.max_new_tokens = new_tokens  # on the config: transformers deprecates passing both
    out = model.generate(ids, attention_mask=mask, generation_config=config, **kwargs)
    return out[:, width:]


@dataclass(frozen=True)
class Generated:
    """What one repeat of a workload produced."""

    tokens: int  # new tokens, all sequences
    sequences: int
    batches: int
    kv_cache_bytes: int | None  # the largest engine KV cache of one batch; None outside the engine

    @property
    def decode_tokens(self) -> int:
        return self.tokens - self.sequences  # every sequence's first token comes from the prompt pass

    @property
    def decode_steps(self) -> float:
        # Batches run one after another, the sequences of a batch side by side.
        return self.batches * self.decode_tokens / self.sequences

    @classmethod
    def of(cls, outputs: list) -> Generated:
        rows = generated_rows(outputs)
        engine_caches = [o.kv_cache_bytes for o in outputs if isinstance(o, GenerationOutput)]
        return cls(sum(len(row) for row in rows), len(rows), len(outputs), max(engine_caches, default=None))


def generated_rows(outputs: list) -> list[torch.Tensor]:
    """Each sequence's new tokens, in prompt order, from engine outputs or [B, n] token tensors."""
    rows = []
    for output in outputs:
        if isinstance(output, GenerationOutput):
            rows += [tokens[:length] for tokens, length in zip(output.tokens, output.lengths)]
        else:
            rows += list(output)
    return rows


def match_with_reference(reference: list[torch.Tensor], rows: list[torch.Tensor]) -> tuple[float, float]:
    """(share of sequences equal to the reference token for token, share of all tokens equal to it)."""
    exact = sum(torch.equal(ref, row) for ref, row in zip(reference, rows)) / len(rows)
    same = sum(int((ref == row).sum()) for ref, row in zip(reference, rows)) / max(1, sum(map(len, reference)))
    return exact, same


def decoded_exit_indices(outputs: list[GenerationOutput]) -> list[int]:
    """The exit index of every new token but each sequence's first, which the full-depth prompt pass made."""
    return [index for output in outputs for row in output.row_exit_indices for index in row[1:]]


def exit_sample(tokenizer, output: GenerationOutput, exit_layers: list[int]) -> list[list]:
    """[token text, exit layer or "final"] for the first sequence of an output, for the per-token exit view."""
    names = [str(layer) for layer in exit_layers] + ["final"]
    tokens = output.tokens[0, : output.lengths[0]].tolist()
    return [[tokenizer.decode([t]), names[min(i, len(exit_layers))]] for t, i in zip(tokens, output.row_exit_indices[0])]


def speculation_fields(outputs: list) -> dict:
    """The speculative-decoding measures of one run of a workload over its prompt batches (SpeculationStats' fields:
    drafted, accepted, acceptance_rate, mean_accepted_length, tokens_per_full_pass, acceptance_by_position, ...);
    {} for workloads that do not speculate."""
    stats = [o.speculation for o in outputs if isinstance(o, GenerationOutput) and o.speculation is not None]
    if not stats:
        return {}
    total = stats[0]
    for more in stats[1:]:
        total = total.merge(more)
    return total.to_dict()
