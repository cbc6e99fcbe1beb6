"""A KV cache whose sequences and layers may each hold a different set of positions.

Early exit makes the positions a block has seen depend on the sequence and the block: lazy defers
exited positions, ``skip`` never shows them to deeper blocks, speculation drops rejected ones. So every
(layer, sequence) keeps its own slots, filled in increasing position order, and remembers the true
position of each slot. Attention masks are built from those positions (a query sees the slots at or
before its own position; on a sliding-window layer only those less than ``window`` behind it), which also
makes prompts of different lengths need no padding in the cache.

HF attention modules only call ``cache.update(keys, values, layer_idx, ...)``; the engine announces
before each block call which sequences and positions the call writes (``prepare``), and ``update``
stores exactly those and returns the keys/values of the sequences in the call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

_UNFILLED = torch.iinfo(torch.long).max  # position of an empty slot: no query ever sees it


@dataclass
class _Write:
    layer: int
    rows: torch.Tensor | None  # sequences in the call; None means all of them, in order (a view suffices)
    spans: list[tuple[int, int, int]]  # per call row: (sequence, first slot, count)
    width: int  # slots returned: the longest sequence in the call after the write


class RaggedKVCache:
    def __init__(self, num_layers: int, batch: int, capacity: int, device: torch.device,
                 windows: list[int | None] | None = None):
        self.batch, self.capacity, self.device = batch, capacity, device
        self.windows = list(windows) if windows is not None else [None] * num_layers  # per layer, None = global
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.positions = torch.full((num_layers, batch, capacity), _UNFILLED, dtype=torch.long, device=device)
        self.lengths = [[0] * batch for _ in range(num_layers)]  # filled slots per (layer, sequence)
        self._write: _Write | None = None

    def prepare(self, layer: int, rows: list[int], query_positions: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Announce the next block call; return its boolean attention mask [r, 1, w, keys].

        ``query_positions`` [r, w] holds each row's true positions, right-padded by repeating the last one;
        only the first ``counts[i]`` entries of row i are real and get stored.
        """
        spans = []
        for i, (row, count) in enumerate(zip(rows, counts)):
            start = self.lengths[layer][row]
            if start + count > self.capacity:
                raise RuntimeError(f"KV cache capacity {self.capacity} exceeded at layer {layer}")
            # Per-row slice copies: cheaper than building scatter indices at the small batches used here.
            self.positions[layer, row, start : start + count] = query_positions[i, :count]
            self.lengths[layer][row] = start + count
            spans.append((row, start, count))
        width = max(start + count for _, start, count in spans)
        all_rows = rows == list(range(self.batch))
        rows_t = None if all_rows else torch.tensor(rows, device=self.device)
        self._write = _Write(layer, rows_t, spans, width)
        keys = (self.positions[layer, :, :width] if all_rows else self.positions[layer, rows_t, :width])[:, None, :]
        queries = query_positions[:, :, None]
        mask = keys <= queries
        if self.windows[layer] is not None:  # sliding window: keys in (p - window, p], as transformers masks them
            mask &= keys > queries - self.windows[layer]
        return mask[:, None]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        write, self._write = self._write, None
        if write is None or write.layer != layer_idx:
            raise RuntimeError(f"KV cache update for layer {layer_idx} was not prepared by the engine")
        keys = self._stored(self.keys, layer_idx, key_states)
        values = self._stored(self.values, layer_idx, value_states)
        for i, (row, start, count) in enumerate(write.spans):
            keys[row, :, start : start + count] = key_states[i, :, :count]
            values[row, :, start : start + count] = value_states[i, :, :count]
        if write.rows is None:
            return keys[:, :, : write.width], values[:, :, : write.width]
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
            kept = int((self.positions[layer, row, : lengths[row]] < keep_below).sum())
            self.positions[layer, row, kept : lengths[row]] = _UNFILLED
            lengths[row] = kept

    def allocated_bytes(self) -> int:
        """Bytes this cache holds: keys and values of every block that ran, plus the slot positions."""
        tensors = [t for t in self.keys + self.values if t is not None] + [self.positions]
        return sum(t.numel() * t.element_size() for t in tensors)

    def stored_positions(self, layer: int, row: int) -> list[int]:
        return self.positions[layer, row, : self.lengths[layer][row]].tolist()
