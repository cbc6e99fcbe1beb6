"""Greedy self-speculative decoding: draft with early exits, verify with one full-depth pass.

Each sequence alternates two phases, independently of the others in the batch:

- draft: the sequence's next token runs only up to its exit point; the exited chunk is deferred the
  lazy way (its deeper KV is not computed yet) and the exit's argmax becomes the next draft.
- verify: once the draft budget is used up, or (DSSD) no exit point is confident, the token goes to full
  depth. The deferred positions are run through the deeper blocks with it, exactly as lazy fill does,
  so the last block returns the full model's prediction after every position since the last
  verification in one pass. The longest prefix of drafts equal to those predictions is accepted, then
  the full model's token at the first mismatch (or a bonus token when all match) is taken; rejected
  positions are cropped from every layer's cache.

The output therefore equals plain full-model greedy decoding. DSSD drafts from the first confident
head (at most ``max_draft`` tokens); LayerSkip-style drafts a fixed number of tokens from one block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from eebench.engine.host import to_device
from eebench.engine.layerwise import Chunk, LayerwiseDecoder, Request, final_predictions


@dataclass
class SpeculationStats:
    drafted: int = 0
    accepted: int = 0
    full_passes: int = 0  # full-depth passes after the prompt, with or without drafts to verify
    verifications: int = 0  # full-depth passes that had at least one draft to check
    drafted_at: list[int] = field(default_factory=list)  # per draft position (0 = first after a verification)
    accepted_at: list[int] = field(default_factory=list)  # of those, accepted by the full model

    def merge(self, other: SpeculationStats) -> SpeculationStats:
        """The counts of two runs together (e.g. every prompt batch of a timed workload)."""
        width = max(len(self.drafted_at), len(other.drafted_at))

        def padded(counts: list[int]) -> list[int]:
            return counts + [0] * (width - len(counts))

        return SpeculationStats(
            self.drafted + other.drafted,
            self.accepted + other.accepted,
            self.full_passes + other.full_passes,
            self.verifications + other.verifications,
            [a + b for a, b in zip(padded(self.drafted_at), padded(other.drafted_at))],
            [a + b for a, b in zip(padded(self.accepted_at), padded(other.accepted_at))],
        )

    @property
    def acceptance_by_position(self) -> list[float]:
        """Share of drafts at each position the full model accepted (a draft is only checked once all before it were
        drafted; acceptance stops at the first mismatch, so later positions count only accepted prefixes' drafts)."""
        return [accepted / drafted for accepted, drafted in zip(self.accepted_at, self.drafted_at) if drafted]

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_accepted_length(self) -> float:
        """Accepted drafts per verification pass (the full model's own token not counted)."""
        return self.accepted / self.verifications if self.verifications else 0.0

    @property
    def tokens_per_full_pass(self) -> float:
        """New tokens per full-depth pass (accepted drafts plus the full model's own token)."""
        return (self.accepted + self.full_passes) / self.full_passes if self.full_passes else 0.0

    def to_dict(self) -> dict:
        return {
            "drafted": self.drafted,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "mean_accepted_length": self.mean_accepted_length,
            "tokens_per_full_pass": self.tokens_per_full_pass,
            "full_passes": self.full_passes,
            "verifications": self.verifications,
            "acceptance_by_position": self.acceptance_by_position,
        }


@dataclass
class _Sequence:
    """One sequence's decoding state: committed output, and the drafts awaiting verification."""

    next_token: int
    next_position: int  # position of next_token, which no block has processed yet
    tokens: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    drafts: list[tuple[int, int]] = field(default_factory=list)  # (token, exit label)
    done: bool = False


class SpeculativeDecoder:
    def __init__(self, decoder: LayerwiseDecoder, max_draft: int, max_new_tokens: int, eos_token_id: int | None):
        self.decoder, self.max_draft = decoder, max_draft
        self.max_new_tokens, self.eos_token_id = max_new_tokens, eos_token_id
        self.stats = SpeculationStats()

    def run(self, prompts: list[torch.Tensor]) -> list[_Sequence]:
        full_label = self.decoder.plan.full_label
        prefill = self.decoder.step([Request(row, p, 0, may_exit=False) for row, p in enumerate(prompts)])
        first = final_predictions(self.decoder.lm, [prefill.finals[row] for row in range(len(prompts))], True)
        sequences = [_Sequence(int(token), len(prompt)) for token, prompt in zip(first, prompts)]
        for seq in sequences:
            self._commit(seq, [(seq.next_token, full_label)])
        while True:
            active = [row for row, seq in enumerate(sequences) if not seq.done]
            if not active:
                return sequences
            self._advance(sequences, active)

    def _advance(self, sequences: list[_Sequence], active: list[int]) -> None:
        requests = [self._request(row, sequences[row]) for row in active]
        result = self.decoder.step(requests)
        for row, (label, token) in result.exits.items():
            seq = sequences[row]
            seq.drafts.append((token, label))
            seq.next_token, seq.next_position = token, seq.next_position + 1
        verifying = sorted(result.finals)
        if verifying:
            chunks = [result.finals[row] for row in verifying]
            predictions = final_predictions(self.decoder.lm, chunks, last_only=False)
            for row, chunk, predicted in zip(verifying, chunks, predictions):
                self._verify(row, sequences[row], chunk, predicted.tolist())

    def _request(self, row: int, seq: _Sequence) -> Request:
        # Never draft past the budget: a verification always adds one token of its own.
        budget = min(self.max_draft, self.max_new_tokens - len(seq.tokens) - 1)
        token = to_device([seq.next_token], self.decoder.cache.device)
        return Request(row, token, seq.next_position, may_exit=len(seq.drafts) < budget)

    def _verify(self, row: int, seq: _Sequence, chunk: Chunk, predicted: list[int]) -> None:
        drafts = seq.drafts
        first = seq.next_position - len(drafts)  # position of the token the first draft follows
        if len(predicted) != len(drafts) + 1 or chunk.runs[0][0] != first:
            raise RuntimeError(f"verification of sequence {row} did not cover exactly the drafted positions")
        accepted = 0
        while accepted < len(drafts) and drafts[accepted][0] == predicted[accepted]:
            accepted += 1
        self._record(len(drafts), accepted)
        correction = predicted[accepted]
        seq.drafts = []
        self._commit(seq, drafts[:accepted] + [(correction, self.decoder.plan.full_label)])
        keep_below = first + accepted + 1  # the accepted drafts' positions stay; the rejected ones go
        self.decoder.cache.crop(row, keep_below)
        seq.next_token, seq.next_position = correction, keep_below

    def _record(self, drafted: int, accepted: int) -> None:
        stats = self.stats
        stats.drafted += drafted
        stats.accepted += accepted
        stats.full_passes += 1
        stats.verifications += int(drafted > 0)
        missing = drafted - len(stats.drafted_at)
        if missing > 0:
            stats.drafted_at += [0] * missing
            stats.accepted_at += [0] * missing
        for position in range(drafted):
            stats.drafted_at[position] += 1
            stats.accepted_at[position] += int(position < accepted)

    def _commit(self, seq: _Sequence, entries: list[tuple[int, int]]) -> None:
        for token, label in entries:
            seq.tokens.append(token)
            seq.labels.append(label)
            if token == self.eos_token_id or len(seq.tokens) >= self.max_new_tokens:
                seq.done = True
                return
