"""Multi-GPU (or multi-process CPU) training with torchrun: who am I, and averaging across ranks.

`torchrun --nproc_per_node N ...` sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything
here is a no-op and training runs as one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:  # rank 0 logs, checkpoints and writes the model
        return self.rank == 0

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Average per-rank tensors (e.g. an epoch's running losses) so every rank sees the same."""
        if self.world == 1:
            return values
        stacked = torch.stack(list(values.values()))
        dist.all_reduce(stacked)
        return dict(zip(values, stacked / self.world))

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average `module`'s gradients across ranks in one all-reduce, as DDP does for the model it
        wraps: for a second network trained beside it (SRGAN's discriminator), whose forward runs
        more than once per backward and inside the generator's loss, where a DDP wrapper would not do."""
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if self.world == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        for grad, averaged in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(averaged.view_as(grad))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def start(device: torch.device) -> tuple[Ranks, torch.device, bool]:
    """Join the process group torchrun describes; return the ranks, this rank's device, and
    whether this call started the group (and so must end it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size()), device, started


def stop(started: bool) -> None:
    if started:
        dist.destroy_process_group()
