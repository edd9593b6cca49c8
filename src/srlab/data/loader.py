"""The training pairs as batches on the training device: the loader over the prepared store.

On a GPU where the pairs fit they are copied there once; otherwise (and on CPU) each batch is
gathered from the memory-mapped store, by a background thread while the previous step runs where
a core is free for it, so host memory holds a few batches, not the store.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from srlab.data import store

DEVICE_SHARE = 0.5  # of the free GPU memory that the training pairs may take; beyond it they are gathered from the map
PREFETCH = 2  # batches gathered ahead of the step
GATHER_ROWS = 8  # rows read between releases: reading a row maps whole page-cache folios (up to MBs) around it


def prefetch(work: Callable, items: list, ahead: int) -> Iterator:
    """`work(item)` for each of `items`, in order, each computed by a background thread up to
    `ahead` items before it is asked for."""
    with ThreadPoolExecutor(1, thread_name_prefix="srlab-gather") as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > ahead:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _result(future: Future):
    # torch.profiler does not see the gathering thread; what the step loses to it shows here
    with torch.profiler.record_function("srlab::wait_for_batch"):
        return future.result()


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether pairs of `nbytes` may live on a CUDA `device`: up to DEVICE_SHARE of its free memory,
    leaving the rest to the model, its activations and the optimiser."""
    if device.type != "cuda":
        return False  # on CPU the memory map is as close as the data gets
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


class BatchLoader:
    """A split's LR and HR pairs for training, handed out as N x 3 x H x W uint8 batches on the
    training device. On a GPU where they fit they are copied there once (`resident`); otherwise
    each batch is gathered from the memory-mapped store (into pinned memory on CUDA) and the pages
    it mapped are released, so host memory holds a few batches however large the store is."""

    def __init__(self, pairs: store.Pairs, device: torch.device):
        self.pairs, self.device = pairs, device
        self.sources = [torch.from_numpy(a) for a in (pairs.lr, pairs.hr)]  # N x H x W x 3 views of the map
        self.resident = fits_on_device(pairs.nbytes, device)
        if self.resident:
            self.tensors = [self._copy_to_device(t) for t in self.sources]

    def __len__(self) -> int:
        return len(self.sources[0])

    @property
    def patch_size(self) -> int:  # HR side
        return self.sources[1].shape[1]

    def batch(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """The LR and HR pairs at `idx` (a CPU index tensor), on the training device."""
        if self.resident:
            idx = idx.to(self.device)
            return [t[idx] for t in self.tensors]
        return self._on_device(self._gather(idx))

    def batches(self, indices: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
        """`batch(idx)` for each of `indices`, each gathered by a background thread while the
        step before it runs when a core is free for it (the gathering only copies: the batches are
        the same either way)."""
        if self.resident:
            yield from map(self.batch, indices)
            return
        ahead = prefetch(self._gather, indices, PREFETCH) if self._spare_core() else map(self._gather_here, indices)
        for gathered in ahead:
            yield self._on_device(gathered)

    def _spare_core(self) -> bool:
        """Whether a gathering thread runs beside the step without slowing it: on CUDA, or on a CPU
        with a core its compute threads leave free. Otherwise it takes turns with one of them, and
        every parallel kernel waits for the slower thread (a fifth of a bf16 step on 2 cores)."""
        return self.device.type == "cuda" or len(os.sched_getaffinity(0)) > torch.get_num_threads()

    def spread(self, count: int) -> list[torch.Tensor]:
        """`count` evenly spaced pairs (all when there are fewer), on the training device."""
        step = max(1, len(self) // count)
        return self.batch(torch.arange(0, len(self), step)[:count])

    def _gather(self, idx: torch.Tensor) -> list[torch.Tensor]:
        self.pairs.will_need(idx.tolist())  # one read-ahead request per row, rather than a page fault per page
        # a fresh pinned buffer per batch: the caching host allocator will not reuse it while its copy is in flight
        pin = self.device.type == "cuda"
        out = [torch.empty((len(idx), *t.shape[1:]), dtype=t.dtype, pin_memory=pin) for t in self.sources]
        for start in range(0, len(idx), GATHER_ROWS):
            rows = idx[start : start + GATHER_ROWS]
            for source, target in zip(self.sources, out):
                torch.index_select(source, 0, rows, out=target[start : start + len(rows)])
            self.pairs.release()  # the folios those rows mapped: dropped before the next rows map more
        return out

    def _gather_here(self, idx: torch.Tensor) -> list[torch.Tensor]:
        with torch.profiler.record_function("srlab::gather_batch"):  # in the step's thread, named in profiles
            return self._gather(idx)

    def _on_device(self, gathered: list[torch.Tensor]) -> list[torch.Tensor]:
        # N x H x W x 3 bytes seen as N x 3 x H x W: already channels_last, and as_float lays out the rest
        return [g.to(self.device, non_blocking=True).permute(0, 3, 1, 2) for g in gathered]

    def _copy_to_device(self, source: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        n, h, w, c = source.shape
        out = torch.empty((n, c, h, w), dtype=source.dtype, device=self.device)
        for i in range(0, n, chunk):
            out[i : i + chunk] = source[i : i + chunk].to(self.device).permute(0, 3, 1, 2)
            self.pairs.release()
        return out


def as_float(batch: torch.Tensor, layout=torch.contiguous_format) -> torch.Tensor:
    return batch.float().div_(255.0).contiguous(memory_format=layout)
