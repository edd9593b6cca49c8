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
    """Return (report lines, failures): srcnn_mse must beat bicubic PSNR by `min_gain` dB, and
    srcnn_perceptual must have a lower perceptual distance than srcnn_mse."""
    try:
        scores = metrics[set_name]
        bicubic, mse, perceptual = scores["bicubic"], scores["srcnn_mse"], scores["srcnn_perceptual"]
    except KeyError as exc:
        raise SrlabError(f"metrics have no entry {exc} for {set_name}") from None
    gain = mse["psnr"] - bicubic["psnr"]
    lines = [
        f"{set_name}: srcnn_mse {mse['psnr']:.3f} dB vs bicubic {bicubic['psnr']:.3f} dB: gain {gain:+.3f} dB (need >= {min_gain})",
        f"{set_name}: perceptual distance srcnn_perceptual {perceptual['perceptual']:.6g} vs srcnn_mse {mse['perceptual']:.6g} (need lower)",
    ]
    failures = []
    if gain < min_gain:
        failures.append(f"srcnn_mse gains {gain:.3f} dB over bicubic on {set_name}, less than {min_gain}")
    if not perceptual["perceptual"] < mse["perceptual"]:
        failures.append(f"srcnn_perceptual is not below srcnn_mse in perceptual distance on {set_name}")
    return lines, failures
