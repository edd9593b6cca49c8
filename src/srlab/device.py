"""Choosing the device and making CPU runs bit-for-bit repeatable."""

from __future__ import annotations

import platform
import random

import numpy as np
import torch

from srlab.errors import SrlabError


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise SrlabError("train.device: cuda was asked for, but PyTorch sees no CUDA device here; use auto or cpu")
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    """For provenance: which device, and enough about it to explain a timing or a last digit."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if not torch.cuda.is_available():
        # on CPU every kernel has a deterministic path; on GPU some (cuDNN autotuning) trade that for speed
        torch.use_deterministic_algorithms(True)
