"""One decoding step for a batch of sequences, block by block, each sequence leaving at its own exit.

A step takes, per sequence, a chunk of new positions (a prompt, or one token) and runs it through the
blocks. At each block only the sequences still "live" there are run, together as one batch (chunks
right-padded to the same width). After an exit block, the sequences whose point is confident leave
with their token; what happens to their deeper KV depends on the mode:

- ``full``: the sequence keeps running every block (its KV stays exact); the exit only picks the token.
- ``lazy``: the exited chunk waits in the next block's queue and is run through the deeper blocks
  together with the sequence's next chunk that goes that deep, so every block's KV ends up exact.
- ``copy`` (CALM): the exited hidden state is queued as the *input* of every deeper block, which
  computes that position's KV from it (approximate); those outputs are dropped.
- ``skip``: deeper blocks never see the position; their caches simply lack it (approximate).

Sequences that reach the last block come back as a final-layer chunk covering every position that
block processed in this step (for lazy: all positions deferred since the last full-depth token).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from eebench.engine.exit_plan import ExitPlan
from eebench.engine.kv import RaggedKVCache

MODES = ("full", "lazy", "copy", "skip")


@dataclass
class Chunk:
    """Hidden states [n, hidden] of consecutive positions [n] of one sequence."""

    hidden: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return self.hidden.shape[0]

    @staticmethod
    def join(chunks: list["Chunk"]) -> "Chunk":
        if len(chunks) == 1:
            return chunks[0]
        return Chunk(torch.cat([c.hidden for c in chunks]), torch.cat([c.positions for c in chunks]))


@dataclass
class Request:
    row: int
    tokens: torch.Tensor  # [n] token ids
    start: int  # true position of tokens[0]
    may_exit: bool = True


@dataclass
class StepResult:
    exits: dict[int, tuple[int, int]] = field(default_factory=dict)  # row -> (exit label, token)
    finals: dict[int, Chunk] = field(default_factory=dict)  # row -> final-layer chunk


def pad_by_repeating_last(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack [n_i, ...] tensors to [r, max n, ...]; padding repeats each row's last entry.

    Repeated positions keep padded queries' masks non-empty (no NaN) and their outputs are discarded.
    """
    width = max(t.shape[0] for t in tensors)
    if all(t.shape[0] == width for t in tensors):
        return torch.stack(tensors)
    return torch.stack([torch.cat([t, t[-1:].expand(width - t.shape[0], *t.shape[1:])]) for t in tensors])


class LayerwiseDecoder:
    def __init__(self, lm, plan: ExitPlan, mode: str, batch: int, capacity: int, device):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.lm, self.plan, self.mode = lm, plan, mode
        self.cache = RaggedKVCache(lm.num_layers, batch, capacity, torch.device(device), lm.sliding_windows)
        self.queues: list[list[list[Chunk]]] = [[[] for _ in range(batch)] for _ in range(lm.num_layers)]
        self.points = {point.block: point for point in plan.points}

    def step(self, requests: list[Request]) -> StepResult:
        result = StepResult()
        live = self._embed(requests)
        may_exit = {req.row: req.may_exit for req in requests}
        for layer in range(self.lm.num_layers):
            if not live:
                break
            live = self._run_block(layer, live)
            if layer in self.points:
                self._take_exits(layer, live, may_exit, result)
        result.finals = {row: chunk for row, chunk in live.items() if row not in result.exits}
        return result

    def _embed(self, requests: list[Request]) -> dict[int, Chunk]:
        device = self.cache.device
        positions = [torch.arange(r.start, r.start + len(r.tokens), device=device) for r in requests]
        ids, pos = pad_by_repeating_last([r.tokens.to(device) for r in requests]), pad_by_repeating_last(positions)
        hidden = self.lm.embed(ids, pos)
        return {r.row: Chunk(hidden[i, : len(r.tokens)], positions[i]) for i, r in enumerate(requests)}

    def _run_block(self, layer: int, live: dict[int, Chunk]) -> dict[int, Chunk]:
        rows = sorted(live)
        queued = [self.queues[layer][row] for row in rows]
        chunks = [Chunk.join(q + [live[row]]) for q, row in zip(queued, rows)]
        # copy mode: queued states are inputs for this block's KV only; just the live part goes deeper.
        drop = [sum(len(c) for c in q) if self.mode == "copy" else 0 for q in queued]
        for row in rows:
            self.queues[layer][row] = []
        hidden = pad_by_repeating_last([c.hidden for c in chunks])
        positions = pad_by_repeating_last([c.positions for c in chunks])
        mask = self.cache.prepare(layer, rows, positions, [len(c) for c in chunks])
        rotary = self.lm.rotary_embeddings(hidden, positions)
        out = self.lm.run_block(layer, hidden, positions, mask, self.cache, rotary)
        self.cache.check_consumed()
        return {row: Chunk(out[i, d : len(c)], c.positions[d:]) for i, (row, c, d) in enumerate(zip(rows, chunks, drop))}

    def _take_exits(self, layer: int, live: dict[int, Chunk], may_exit: dict[int, bool], result: StepResult) -> None:
        candidates = [row for row in sorted(live) if may_exit[row] and row not in result.exits]
        if not candidates:
            return
        point = self.points[layer]
        confident, logits = point.decide(torch.stack([live[row].hidden[-1] for row in candidates]))
        if logits is None:  # a gate said no row exits: the vocabulary projection was skipped
            return
        confident = confident.tolist()
        tokens = logits.argmax(-1).tolist()
        for row, ok, token in zip(candidates, confident, tokens):
            if ok:
                result.exits[row] = (point.label, token)
                self._leave(layer, row, live)

    def _leave(self, layer: int, row: int, live: dict[int, Chunk]) -> None:
        if self.mode == "full":
            return
        chunk = live.pop(row)
        deeper = range(layer + 1, self.lm.num_layers)
        if self.mode == "lazy" and len(deeper):
            self.queues[layer + 1][row].append(chunk)
        elif self.mode == "copy":
            for block in deeper:
                self.queues[block][row].append(chunk)


def final_predictions(lm, chunks: list[Chunk], last_only: bool) -> list[torch.Tensor]:
    """Full-model argmax per chunk (every position, or just the last), one lm_head call for all rows."""
    pieces = [c.hidden[-1:] if last_only else c.hidden for c in chunks]
    predicted = lm.final_logits(torch.cat(pieces)).argmax(-1)
    return list(torch.split(predicted, [p.shape[0] for p in pieces]))
