"""The metric gate CI runs: `dvc metrics diff` reports changes but never fails, this does."""

from __future__ import annotations

import json
from pathlib import Path

from srlab.errors import SrlabError


def read_metrics(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SrlabError(f"{path}: no metrics file (run `dvc repro` first)") from None
    except json.JSONDecodeError as exc:
        raise SrlabError(f"{path}: not valid JSON ({exc})") from None


def check(metrics: dict, set_name: str, min_gain: float) -> tuple[list[str], list[str]]:
    """Return (report lines, failures): the MSE model (`<model>_mse`) must beat bicubic PSNR by
    `min_gain` dB, and the perceptual model (`<model>_perceptual`) must have a lower perceptual
    distance than the MSE model."""
    try:
        scores = metrics[set_name]
        bicubic = scores["bicubic"]
        mse_name = next(name for name in scores if name.endswith("_mse"))
        perceptual_name = next(name for name in scores if name.endswith("_perceptual"))
    except (KeyError, StopIteration) as exc:
        raise SrlabError(f"metrics have no bicubic, <model>_mse and <model>_perceptual entries for {set_name} ({exc!r})") from None
    mse, perceptual = scores[mse_name], scores[perceptual_name]
    gain = mse["psnr"] - bicubic["psnr"]
    lines = [
        f"{set_name}: {mse_name} {mse['psnr']:.3f} dB vs bicubic {bicubic['psnr']:.3f} dB: gain {gain:+.3f} dB (need >= {min_gain})",
        f"{set_name}: perceptual distance {perceptual_name} {perceptual['perceptual']:.6g} vs {mse_name} {mse['perceptual']:.6g} (need lower)",
    ]
    failures = []
    if gain < min_gain:
        failures.append(f"{mse_name} gains {gain:.3f} dB over bicubic on {set_name}, less than {min_gain}")
    if not perceptual["perceptual"] < mse["perceptual"]:
        failures.append(f"{perceptual_name} is not below {mse_name} in perceptual distance on {set_name}")
    return lines, failures
