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

Per-block work is kept to the block: consecutive calls with the same rows and positions (every block
of a full-depth step) share one padded batch, one set of rotary embeddings and one attention mask, and
chunks carry their positions on the host too, so none of this needs the device to answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from eebench.engine.exit_plan import ExitPlan
from eebench.engine.kv import RaggedKVCache, Runs, drop_first, join_runs

MODES = ("full", "lazy", "copy", "skip")


@dataclass
class Chunk:
    """Hidden states [n, hidden] of increasing positions [n] of one sequence (``runs``: the same on the host)."""

    hidden: torch.Tensor
    positions: torch.Tensor
    runs: Runs

    def __len__(self) -> int:
        return self.hidden.shape[0]

    @staticmethod
    def join(chunks: list[Chunk]) -> Chunk:
        if len(chunks) == 1:
            return chunks[0]
        runs: Runs = ()
        for c in chunks:
            runs = join_runs(runs, c.runs)
        return Chunk(torch.cat([c.hidden for c in chunks]), torch.cat([c.positions for c in chunks]), runs)

    def output(self, out: torch.Tensor, dropped: int) -> Chunk:
        """This chunk's block output ``out`` [>= n, hidden] (padded), without its first ``dropped`` positions."""
        if not dropped:
            return Chunk(out[: len(self)], self.positions, self.runs)
        return Chunk(out[dropped : len(self)], self.positions[dropped:], drop_first(self.runs, dropped))


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
    if len(tensors) == 1:
        return tensors[0][None]  # a view: nothing to pad
    width = max(t.shape[0] for t in tensors)
    if all(t.shape[0] == width for t in tensors):
        return torch.stack(tensors)
    return torch.stack([torch.cat([t, t[-1:].expand(width - t.shape[0], *t.shape[1:])]) for t in tensors])


class LayerwiseDecoder:
    def __init__(self, lm, plan: ExitPlan, mode: str, batch: int, capacity: int, device):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.lm, self.plan, self.mode = lm, plan, mode
        # sdpa applies causality itself when given no mask; eager attention needs every mask spelled out.
        self.cache = RaggedKVCache(
            lm.num_layers, batch, capacity, torch.device(device), lm.sliding_windows, implicit_causal=not lm.additive_mask
        )
        self.queues: list[list[list[Chunk]]] = [[[] for _ in range(batch)] for _ in range(lm.num_layers)]
        self.points = {point.block: point for point in plan.points}
        self._geometry = None  # (rows, runs) of the last block call -> its padded positions and rotary embeddings
        self._carried = None  # (output chunks, padded output) of the last block call, reused as the next input

    def step(self, requests: list[Request]) -> StepResult:
        result = StepResult()
        self._carried = None
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
        return {
            r.row: Chunk(hidden[i, : len(r.tokens)], positions[i], ((r.start, r.start + len(r.tokens)),))
            for i, r in enumerate(requests)
        }

    def _run_block(self, layer: int, live: dict[int, Chunk]) -> dict[int, Chunk]:
        rows = sorted(live)
        chunks, drop = self._block_inputs(layer, rows, live)
        hidden = self._batched(chunks)
        positions, rotary = self._positions(rows, chunks, hidden)
        mask = self.cache.prepare(layer, rows, positions, [len(c) for c in chunks], [c.runs for c in chunks])
        out = self.lm.run_block(layer, hidden, positions, mask, self.cache, rotary)
        self.cache.check_consumed()
        outputs = [c.output(out[i], d) for i, (c, d) in enumerate(zip(chunks, drop))]
        self._carried = None if any(drop) else (outputs, out)
        return dict(zip(rows, outputs))

    def _block_inputs(self, layer: int, rows: list[int], live: dict[int, Chunk]) -> tuple[list[Chunk], list[int]]:
        """Per row, the queued chunks joined with the live one, and how many leading positions to drop after."""
        queues = self.queues[layer]
        chunks, drop = [], []
        for row in rows:
            queued = queues[row]
            if queued:
                queues[row] = []
            chunks.append(Chunk.join(queued + [live[row]]) if queued else live[row])
            # copy mode: queued states are inputs for this block's KV only; just the live part goes deeper.
            drop.append(sum(len(c) for c in queued) if self.mode == "copy" else 0)
        return chunks, drop

    def _batched(self, chunks: list[Chunk]) -> torch.Tensor:
        """The padded input [r, w, hidden]; the previous block's padded output when it is exactly these chunks."""
        carried = self._carried
        if carried is not None and len(carried[0]) == len(chunks) and all(a is b for a, b in zip(carried[0], chunks)):
            return carried[1]  # its padding holds outputs of padding: as unused as repeated inputs
        return pad_by_repeating_last([c.hidden for c in chunks])

    def _positions(self, rows: list[int], chunks: list[Chunk], hidden: torch.Tensor):
        """Padded positions [r, w] and rotary embeddings, computed once for consecutive calls with the same ones."""
        key = (rows, [c.runs for c in chunks])
        if self._geometry is None or self._geometry[0] != key:
            positions = pad_by_repeating_last([c.positions for c in chunks])
            self._geometry = (key, positions, self.lm.rotary_embeddings(hidden, positions))
        return self._geometry[1], self._geometry[2]

    def _take_exits(self, layer: int, live: dict[int, Chunk], may_exit: dict[int, bool], result: StepResult) -> None:
        candidates = [row for row in sorted(live) if may_exit[row] and row not in result.exits]
        if not candidates:
            return
        point = self.points[layer]
        confident, logits = point.decide(torch.stack([live[row].hidden[-1] for row in candidates]))
        if logits is None:  # a gate said no row exits: the vocabulary projection was skipped
            return
        # One host read for the decision and the token: the argmax of confident rows, -1 for the others.
        tokens = torch.where(confident, logits.argmax(-1), -1).tolist()
        for row, token in zip(candidates, tokens):
            if token >= 0:
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
    """Full-model argmax per chunk (every position, or just the last), one lm_head call for all rows.

    The final norm runs over the whole chunk, as in transformers' forward: a norm kernel over a different
    number of rows may round the last one differently, and at batch 1 the logits are then bit-identical.
    """
    pieces = [lm.norm(c.hidden)[-1:] if last_only else lm.norm(c.hidden) for c in chunks]
    predicted = lm.logits_of_readout(pieces[0] if len(pieces) == 1 else torch.cat(pieces)).argmax(-1)
    return list(torch.split(predicted, [p.shape[0] for p in pieces]))
