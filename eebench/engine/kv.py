"""A KV cache whose sequences and layers may each hold a different set of positions.

Early exit makes the positions a block has seen depend on the sequence and the block: lazy defers
exited positions, ``skip`` never shows them to deeper blocks, speculation drops rejected ones. So every
(layer, sequence) keeps its own slots, filled in increasing position order, and remembers the true
position of each slot. Attention masks are built from those positions (a query sees the slots at or
before its own position; on a sliding-window layer only those less than ``window`` behind it), which also
makes prompts of different lengths need no padding in the cache.

The slot positions are kept on the host as runs of consecutive positions ([start, stop) pairs): a
step's blocks then know, without touching the device, when two calls see the same keys, so one mask
serves every block with the same rows, query positions, stored positions and window (all of them in
full-depth decoding), and a mask that is plain causal attention is not built at all when the attention
implementation applies causality itself (``implicit_causal``).

HF attention modules only call ``cache.update(keys, values, layer_idx, ...)``; the engine announces
before each block call which sequences and positions the call writes (``prepare``), and ``update``
stores exactly those and returns the keys/values of the sequences in the call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eebench.engine.host import to_device

_UNFILLED = torch.iinfo(torch.long).max  # position of a padding key slot: no query ever sees it
_MASK_MEMO = 16  # masks remembered per cache; a step needs one per distinct geometry

Runs = tuple[tuple[int, int], ...]  # consecutive positions [start, stop), in increasing order


def runs_of(positions: list[int]) -> Runs:
    """The runs of an increasing list of positions."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return tuple(runs)


def join_runs(first: Runs, second: Runs) -> Runs:
    if first and second and first[-1][1] == second[0][0]:
        return first[:-1] + ((first[-1][0], second[0][1]),) + second[1:]
    return first + second


def drop_first(runs: Runs, count: int) -> Runs:
    """The runs without their first ``count`` positions."""
    kept = list(runs)
    while count:
        start, stop = kept[0]
        taken = min(count, stop - start)
        kept[0] = (start + taken, stop)
        if kept[0][0] == stop:
            kept.pop(0)
        count -= taken
    return tuple(kept)


def _expand(runs: Runs) -> list[int]:
    return [p for start, stop in runs for p in range(start, stop)]


@dataclass
class _Write:
    layer: int
    rows: slice | torch.Tensor  # the call's sequences: a slice when consecutive (a view suffices), else indices
    spans: list[tuple[int, int, int]]  # per call row: (sequence, first slot, count)
    width: int  # slots returned: the longest sequence in the call after the write
    uniform: bool  # consecutive rows that all write the same slots: one copy for all of them


class RaggedKVCache:
    def __init__(
        self,
        num_layers: int,
        batch: int,
        capacity: int,
        device: torch.device,
        windows: list[int | None] | None = None,
        implicit_causal: bool = False,
    ):
        self.batch, self.capacity, self.device = batch, capacity, device
        self.windows = list(windows) if windows is not None else [None] * num_layers  # per layer, None = global
        # True when the attention implementation, given no mask, lets every query see every key (one query)
        # or applies the top-left causal mask (as many queries as keys): then such masks are returned as None.
        self.implicit_causal = implicit_causal
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.runs: list[list[Runs]] = [[() for _ in range(batch)] for _ in range(num_layers)]
        self.lengths = [[0] * batch for _ in range(num_layers)]  # filled slots per (layer, sequence)
        self._write: _Write | None = None
        self._masks: dict = {}

    def prepare(
        self, layer: int, rows: list[int], query_positions: torch.Tensor, counts: list[int], query_runs: list[Runs] | None = None
    ) -> torch.Tensor | None:
        """Announce the next block call; return its boolean attention mask [r, 1, w, keys] (or None, see above).

        ``query_positions`` [r, w] holds each row's true positions, right-padded by repeating the last one;
        only the first ``counts[i]`` entries of row i are real and get stored. ``query_runs`` describes
        those real positions on the host (the engine always knows them); without it they are read back.
        """
        if query_runs is None:
            query_runs = [runs_of(query_positions[i, :count].tolist()) for i, count in enumerate(counts)]
        lengths, runs = self.lengths[layer], self.runs[layer]
        spans = []
        for row, count, new in zip(rows, counts, query_runs):
            start = lengths[row]
            if start + count > self.capacity:
                raise RuntimeError(f"KV cache capacity {self.capacity} exceeded at layer {layer}")
            lengths[row] = start + count
            runs[row] = join_runs(runs[row], new)
            spans.append((row, start, count))
        width = max(lengths[row] for row in rows)
        first = rows[0]
        consecutive = rows == list(range(first, first + len(rows)))
        uniform = consecutive and all(s[1] == spans[0][1] and s[2] == spans[0][2] for s in spans)
        selected = slice(first, first + len(rows)) if consecutive else to_device(rows, self.device)
        self._write = _Write(layer, selected, spans, width, uniform)
        return self._mask(layer, rows, query_positions, query_runs, width)

    def _mask(self, layer, rows, query_positions, query_runs, width) -> torch.Tensor | None:
        window = self.windows[layer]
        key_runs = tuple(self.runs[layer][row] for row in rows)
        memo_key = (window, tuple(rows), tuple(query_runs), key_runs, query_positions.shape[1])
        if memo_key in self._masks:
            return self._masks[memo_key]
        if len(self._masks) >= _MASK_MEMO:
            self._masks.clear()
        mask = None
        if not (self.implicit_causal and self._plain_causal(key_runs, query_runs, width, window)):
            table = [_expand(r) for r in key_runs]
            keys = to_device([t + [_UNFILLED] * (width - len(t)) for t in table], self.device)[:, None, :]
            queries = query_positions[:, :, None]
            mask = keys <= queries
            if window is not None:  # sliding window: keys in (p - window, p], as transformers masks them
                mask &= keys > queries - window
            mask = mask[:, None]
        self._masks[memo_key] = mask
        return mask

    @staticmethod
    def _plain_causal(key_runs, query_runs, width, window) -> bool:
        """Whether the mask is what the attention does unmasked: every row holds exactly ``width`` consecutive
        positions, the window covers them, and the queries are either the last position alone (it sees all)
        or all of them (top-left causal, as many queries as keys)."""
        for keys, queries in zip(key_runs, query_runs):
            if len(keys) != 1 or len(queries) != 1 or keys[0][1] - keys[0][0] != width:
                return False
            if queries[0][1] != keys[0][1] or (window is not None and width > window):
                return False
            if queries[0][1] - queries[0][0] not in (1, width):
                return False
        return len({q[0][1] - q[0][0] for q in query_runs}) == 1  # same query count in every row: no padding

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        write, self._write = self._write, None
        if write is None or write.layer != layer_idx:
            raise RuntimeError(f"KV cache update for layer {layer_idx} was not prepared by the engine")
        keys = self._stored(self.keys, layer_idx, key_states)
        values = self._stored(self.values, layer_idx, value_states)
        if write.uniform:
            _, start, count = write.spans[0]
            if write.rows != slice(0, self.batch):  # a subset of the sequences: a view of their rows
                keys, values = keys[write.rows], values[write.rows]
            keys[:, :, start : start + count] = key_states  # equal counts: the call has no padding
            values[:, :, start : start + count] = value_states
            return keys[:, :, : write.width], values[:, :, : write.width]
        for i, (row, start, count) in enumerate(write.spans):
            keys[row, :, start : start + count] = key_states[i, :, :count]
            values[row, :, start : start + count] = value_states[i, :, :count]
        return keys[write.rows, :, : write.width], values[write.rows, :, : write.width]

    def check_consumed(self) -> None:
        """Every prepared write must have reached ``update``, or the cache and the masks disagree."""
        if self._write is not None:
            raise RuntimeError(f"block {self._write.layer} did not write its KV cache")

    def _stored(self, store: list, layer: int, like: torch.Tensor) -> torch.Tensor:
        if store[layer] is None:  # shapes (heads, head_dim) are only known once a block runs
            shape = (self.batch, like.shape[1], self.capacity, like.shape[3])
            store[layer] = torch.zeros(shape, dtype=like.dtype, device=like.device)
        return store[layer]

    def crop(self, row: int, keep_below: int) -> None:
        """Drop every position >= ``keep_below`` of sequence ``row`` from every layer."""
        for layer, lengths in enumerate(self.lengths):
            # Slots are filled in increasing position order, so the kept ones are a prefix.
            kept = tuple((start, min(stop, keep_below)) for start, stop in self.runs[layer][row] if start < keep_below)
            self.runs[layer][row] = kept
            lengths[row] = sum(stop - start for start, stop in kept)

    def allocated_bytes(self) -> int:
        """Bytes this cache holds: keys and values of every block that ran."""
        tensors = [t for t in self.keys + self.values if t is not None]
        return sum(t.numel() * t.element_size() for t in tensors)

    def stored_positions(self, layer: int, row: int) -> list[int]:
        return _expand(self.runs[layer][row])
