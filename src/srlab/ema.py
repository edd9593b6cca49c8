"""An exponential moving average (EMA) of a model's weights, as BasicSR, traiNNer and neosr keep
one: after every optimiser step, ema = decay * ema + (1 - decay) * weights; buffers (batch-norm
statistics) are copied. Validation, the best checkpoints and the model file use the average, which
is smoother than the last step's weights.

The decay ramps up as min(decay, (1 + t) / (10 + t)) after t updates (TensorFlow's
ExponentialMovingAverage with num_updates), so a short run is not an average dominated by the
initial weights: 0.999 from the first step would leave 0.999^240 = 79% of them in the 240 steps
of the default run.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            mine.lerp_(theirs, 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]
