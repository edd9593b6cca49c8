"""Choosing the device and the precision, and making CPU runs bit-for-bit repeatable."""

from __future__ import annotations

import ctypes
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

from srlab.errors import SrlabError


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SrlabError("train.device: cuda was asked for, but PyTorch sees no CUDA device here; use auto or cpu")
    if requested == "cpu":
        keep_freed_memory()
    return torch.device(requested)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # the most glibc allows: blocks above it are still mapped and unmapped


def keep_freed_memory() -> bool:
    """Keep the memory a CPU step frees for the next step. Each step frees and allocates the same
    activations again, and glibc hands large freed blocks back to the kernel, which faults them in,
    zeroed, on the next use: on 2 cores that cost a bf16 SRCNN step up to a fifth of its time, varying
    from run to run. False where the C library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def describe_device(device: torch.device) -> str:
    """For provenance: which device, and enough about it to explain a timing or a last digit."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"


CPUINFO = Path("/proc/cpuinfo")
_said: set[str] = set()


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "flags :")
    return set(line.split(":", 1)[1].split())


def uses_bf16(precision: str, device: torch.device) -> bool:
    """bf16 when asked; `auto` only on CUDA with bf16. On CPU `auto` stays fp32 whether or not the
    CPU has AMX, so the same params give the same numbers on every CPU kind (docs/RESULTS.md)."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def memory_format(choice: str, precision: str, device: torch.device) -> torch.memory_format:
    """The layout training keeps images and weights in (train.memory_format). `auto`: channels_last
    (NHWC) on CUDA, and on CPU for bf16, where oneDNN's kernels are NHWC and the default layout costs
    a reorder each way (1.6x a bf16 SRCNN step on an AMX Xeon). fp32 on CPU stays contiguous: the
    layout its committed numbers were made with on either CPU kind (channels_last: docs/RESULTS.md)."""
    if choice == "auto":
        nhwc = device.type == "cuda" or uses_bf16(precision, device)
        choice = "channels_last" if nhwc else "contiguous"
    return torch.channels_last if choice == "channels_last" else torch.contiguous_format


def autocast(precision: str, device: torch.device | str) -> torch.autocast:
    """bf16 autocast for `precision` (fp32, bf16 or auto), else a no-op: training and inference
    alike. bf16 asked for on a CPU without AMX says once what to expect."""
    device = torch.device(device)
    enabled = uses_bf16(precision, device)
    if enabled and device.type == "cpu" and "amx_bf16" not in cpu_flags():
        _say_once(f"precision bf16: {bf16_without_amx(cpu_flags())} (docs/RESULTS.md)")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def bf16_without_amx(flags: set[str]) -> str:
    """What bf16 gives on a CPU without AMX's tiles, measured on an SRCNN step (docs/RESULTS.md): the
    AVX512-BF16 dot product (AMD's Zen 4 and later, Intel's Cooper Lake) is half AMX's speed-up."""
    if "avx512_bf16" in flags:
        return (
            "this CPU has AVX512-BF16 but no AMX (no amx_bf16 in /proc/cpuinfo): expect about 2x fp32's "
            "training speed, not AMX's 4x, and a few hundredths of a dB lower"
        )
    return (
        "this CPU has neither AMX nor AVX512-BF16 (amx_bf16, avx512_bf16 in /proc/cpuinfo), so bf16 is emulated: "
        "expect it no faster than fp32, and a few hundredths of a dB lower"
    )


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if not torch.cuda.is_available():
        # on CPU every kernel has a deterministic path; on GPU some (cuDNN autotuning) trade that for speed
        torch.use_deterministic_algorithms(True)
        # but not its debugging aid, a NaN fill of every new tensor: a third of a bf16 SRCNN step on CPU
        torch.utils.deterministic.fill_uninitialized_memory = False
