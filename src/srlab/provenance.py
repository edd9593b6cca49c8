"""What made a run: the data, the backbone, the device and the software versions, in one file."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import torch

from srlab import checkpoint
from srlab.backbones import describe_vgg
from srlab.device import describe_device
from srlab.params import Params

PACKAGES = ("srlab", "torch", "torchvision", "numpy", "pillow", "scipy", "scikit-image", "dvc", "dvclive")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["torch"] = torch.__version__  # with its build tag (+cpu, +cu130): CPU and CUDA builds differ in the last bits
    return found


def run_summary(params: Params, manifest: dict, models: dict[str, Path], device: torch.device) -> dict:
    """Everything a reader needs to trust (or re-run) the numbers in reports/metrics.json."""
    made_by = {}
    for name, path in models.items():
        meta = checkpoint.load(path)["meta"]
        made_by[name] = {k: v for k, v in meta.items() if k != "history"}
    return {
        "data": {
            "train_source": manifest["source"],
            "train_photos": len(manifest["train"]),
            "val_photos": len(manifest["val"]),
            "test_sets": {name: entry["from"] for name, entry in manifest["test"].items()},
            "scale": params.data.scale,
            "degradation": params.data.degradation,
            "hr_size": params.data.hr_size,
        },
        "models": made_by,
        "evaluation": {
            "device": describe_device(device),
            "perceptual_backbone": describe_vgg(params.loss.vgg_init, params.seed),
            "lr_inputs": params.eval.degradation,
        },
        "versions": versions(),
        "seed": params.seed,
    }
