"""Running a trained model on whole images."""

from __future__ import annotations

import numpy as np
import torch


CHANNELS_LAST = torch.channels_last  # NHWC: faster convolutions on CPU (oneDNN) and GPU (cuDNN)


def to_tensor(img: np.ndarray, device) -> torch.Tensor:
    t = torch.tensor(img).permute(2, 0, 1)[None].to(device).float().div_(255.0)  # copy: PIL arrays are read-only
    return t.contiguous(memory_format=CHANNELS_LAST)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """Clamp and round as a saved image would be; scores are computed on this."""
    return t[0].clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr: np.ndarray, device) -> np.ndarray:
    return to_uint8(model(to_tensor(lr, device)))
