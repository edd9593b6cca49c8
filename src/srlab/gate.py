"""The metric gate CI runs: `dvc metrics diff` reports changes but never fails, this does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from srlab.errors import SrlabError


def read_metrics(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SrlabError(f"{path}: no metrics file (run `dvc repro` first)") from None
    except json.JSONDecodeError as exc:
        raise SrlabError(f"{path}: not valid JSON ({exc})") from None


def reference_metrics(against: str, path: Path) -> dict:
    """The metrics to compare with: the file `against`, or `path` as git revision `against` holds it."""
    if Path(against).is_file():
        return read_metrics(Path(against))
    try:
        return json.loads(committed_text(against, path))
    except json.JSONDecodeError as exc:
        raise SrlabError(f"--against {against}: {path} there is not valid JSON ({exc})") from None


def committed_text(against: str, path: Path) -> str:
    """`path` as git revision `against` holds it."""
    relative = Path(os.path.relpath(path)).as_posix()  # git reads `REV:./x` relative to the current folder
    shown = subprocess.run(["git", "show", f"{against}:./{relative}"], capture_output=True, text=True)
    if shown.returncode:
        reason = shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else "git failed"
        raise SrlabError(f"--against {against}: neither a file nor a revision holding {relative} ({reason})")
    return shown.stdout


def lock_inputs(lock: dict) -> dict[str, dict]:
    """Per stage of a dvc.lock, what made it and must be the same on every machine: its command,
    its params and the hashes of its code (deps under src/ and stages/). Data, models and metrics
    are left out: across CPU kinds they differ in the last bits (the metrics have `moves`)."""
    inputs = {}
    for name, stage in (lock or {}).get("stages", {}).items():
        code = {d["path"]: d.get("md5") for d in stage.get("deps", []) if d["path"].startswith(("src/", "stages/"))}
        inputs[name] = {"command": stage.get("cmd"), "params": stage.get("params", {}), "code": code}
    return inputs


def lock_drift(lock: dict, reference: dict) -> list[str]:
    """One line per stage whose command, params or code differ between two dvc.lock files: the
    reference's outputs (the committed metrics) were not made by this code and these params."""
    ours, theirs = lock_inputs(lock), lock_inputs(reference)
    failures = []
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            failures.append(f"stage {name} is in only one of the two dvc.lock files")
            continue
        for part in ("command", "params", "code"):
            a, b = ours[name][part], theirs[name][part]
            if a != b:
                what = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if isinstance(a, dict) else []
                failures.append(f"stage {name}: its {part} changed{' (' + ', '.join(what) + ')' if what else ''}")
    return failures


def tolerances(values: list[str] | None, default: float = 0.05) -> dict[str, float]:
    """`--tolerance` values, each `DB` (every method) or `METHOD=DB`, as {method or "*": dB}."""
    parsed = {"*": default}
    for value in values or []:
        method, _, number = value.rpartition("=")
        try:
            parsed[method or "*"] = float(number)
        except ValueError:
            raise SrlabError(f"--tolerance {value}: expected dB or METHOD=dB, e.g. 0.05 or srcnn_mse=0.02") from None
    return parsed


def moves(metrics: dict, reference: dict, tolerance: dict[str, float]) -> tuple[list[str], list[str]]:
    """Return (report lines, failures): every PSNR of every set and method in `reference` must be
    within its method's tolerance (`tolerance[method]`, else `tolerance["*"]`) of the run's, either
    way: a run that moved is not the committed one."""
    lines, failures = [], []
    for set_name, methods in reference.items():
        if set_name == "provenance" or not isinstance(methods, dict):
            continue
        for method, ref in methods.items():
            run = metrics.get(set_name, {}).get(method)
            if run is None:
                failures.append(f"{set_name} {method} is in the reference but not in this run")
                continue
            delta, allowed = run["psnr"] - ref["psnr"], tolerance.get(method, tolerance["*"])
            lines.append(
                f"{set_name}: {method} {run['psnr']:.4f} dB vs {ref['psnr']:.4f} dB: {delta:+.4f} (tolerance {allowed})"
            )
            if abs(delta) > allowed:
                failures.append(f"{set_name} {method} PSNR moved {delta:+.4f} dB from the reference, past {allowed}")
    return lines, failures


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
        raise SrlabError(
            f"metrics have no bicubic, <model>_mse and <model>_perceptual entries for {set_name} ({exc!r})"
        ) from None
    mse, perceptual = scores[mse_name], scores[perceptual_name]
    gain = mse["psnr"] - bicubic["psnr"]
    lines = [
        f"{set_name}: {mse_name} {mse['psnr']:.3f} dB vs bicubic {bicubic['psnr']:.3f} dB: "
        f"gain {gain:+.3f} dB (need >= {min_gain})",
        f"{set_name}: perceptual distance {perceptual_name} {perceptual['perceptual']:.6g} "
        f"vs {mse_name} {mse['perceptual']:.6g} (need lower)",
    ]
    failures = []
    if gain < min_gain:
        failures.append(f"{mse_name} gains {gain:.3f} dB over bicubic on {set_name}, less than {min_gain}")
    if not perceptual["perceptual"] < mse["perceptual"]:
        failures.append(f"{perceptual_name} is not below {mse_name} in perceptual distance on {set_name}")
    return lines, failures
