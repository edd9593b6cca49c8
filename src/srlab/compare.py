"""The perception-distortion report: PSNR against perceptual distance, one point per experiment.

Reads what `dvc exp show --json` prints (the workspace, commits and their experiments), so it
works on queued sweeps, named experiments and branches alike.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from srlab.errors import SrlabError
from srlab.fileio import write_text
from srlab.plotting import plt, save_figure

METRICS_FILE = "reports/metrics.json"
SUFFIX = "_perceptual"  # the model whose trade-off the sweep moves: <model>_perceptual


@dataclass
class Experiment:
    name: str
    params: dict  # flattened, e.g. {"loss.vgg_weight": 0.3}
    metrics: dict  # the metrics.json tree
    rev: str = "workspace"  # the Git commit that holds its outputs (dvc exp show's rev)


def exp_show(extra: tuple[str, ...] = ()) -> list:
    try:
        done = subprocess.run(["dvc", "exp", "show", "--json", *extra], capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise SrlabError("dvc is not on PATH; install srlab's dependencies or pass --from-json") from None
    except subprocess.CalledProcessError as exc:
        raise SrlabError(
            f"dvc exp show failed: {exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}"
        ) from None
    return json.loads(done.stdout)


def experiments(shown: list) -> list[Experiment]:
    """Every workspace / commit / experiment entry that has metrics, in exp show's order."""
    found, seen = [], set()

    def visit(entry: dict, label: str) -> None:
        data = entry.get("data") or {}
        metrics = ((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data")
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
        if metrics and params and entry.get("rev") not in seen:
            seen.add(entry.get("rev"))
            found.append(Experiment(label, _flatten(params), metrics, entry.get("rev") or "workspace"))

    for commit in shown:
        visit(commit, commit.get("name") or _short(commit.get("rev", "?")))
        for group in commit.get("experiments") or []:
            for run in group.get("revs") or []:
                visit(run, run.get("name") or _short(run.get("rev", "?")))
    if len(found) > 1 and found[0].name == "workspace" and _same(found[0], found[1]):
        found.pop(0)  # an unchanged workspace repeats its commit
    if not found:
        raise SrlabError(f"no experiment with {METRICS_FILE} found; run `dvc exp run` (or a queued sweep) first")
    return found


def _short(rev: str) -> str:
    return rev[:7] if len(rev) == 40 else rev  # a commit hash, or "workspace"


def _same(a: Experiment, b: Experiment) -> bool:
    return json.dumps([a.params, a.metrics], sort_keys=True) == json.dumps([b.params, b.metrics], sort_keys=True)


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def varied_params(runs: list[Experiment]) -> list[str]:
    keys = sorted({k for run in runs for k in run.params})
    return [k for k in keys if len({json.dumps(run.params.get(k)) for run in runs}) > 1]


def label(run: Experiment, keys: list[str]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={_value(run.params.get(k))}" for k in keys) or run.name


def scored_sets(runs: list[Experiment]) -> list[str]:
    """The test sets any run was scored on, in the order eval.sets lists them."""
    from srlab.params import TEST_SETS

    return [s for s in TEST_SETS if any(s in run.metrics for run in runs)]


def table(runs: list[Experiment], keys: list[str]) -> str:
    header = ["experiment", *keys]
    with_lpips = any("lpips" in (_perceptual_scores(run, s) or {}) for run in runs for s in scored_sets(runs))
    for s in scored_sets(runs):
        header += [f"{s} PSNR", f"{s} SSIM", f"{s} perceptual", *([f"{s} LPIPS"] if with_lpips else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.name, *(_value(run.params.get(k)) for k in keys)]
        for s in scored_sets(runs):
            score = _perceptual_scores(run, s) or {}
            cells += [
                _fmt(score.get("psnr"), ".2f"),
                _fmt(score.get("ssim"), ".4f"),
                _fmt(score.get("perceptual"), ".6f"),
            ]
            cells += [_fmt(score.get("lpips"), ".4f")] if with_lpips else []
        lines.append("| " + " | ".join(cells) + " |")
    backbone = runs[0].metrics.get("provenance", {}).get("perceptual_backbone", "unknown")
    return (
        f"Scores of the perceptual model (`<model>{SUFFIX}`) per experiment "
        "(Y-PSNR, Y-SSIM, VGG16 perceptual distance; lower is closer).\n"
        f"Perceptual backbone: {backbone}.\n\n" + "\n".join(lines) + "\n"
    )


def _perceptual_scores(run: Experiment, set_name: str) -> dict | None:
    scores = run.metrics.get(set_name, {})
    return next((v for k, v in scores.items() if k.endswith(SUFFIX)), None)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


DISTANCES = {"perceptual": "VGG16 perceptual distance", "lpips": "LPIPS-VGG"}  # lower is closer


def figure(runs: list[Experiment], keys: list[str], out: Path, distance: str = "perceptual") -> None:
    sets = scored_sets(runs)
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, s in zip(axes[0], sets):
        for run in runs:
            score = _perceptual_scores(run, s)
            if not score or distance not in score:
                continue
            ax.scatter(score[distance], score["psnr"], color="tab:orange")
            ax.annotate(
                label(run, keys),
                (score[distance], score["psnr"]),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.set(
            title=f"{s}: perception-distortion (<model>{SUFFIX})",
            xlabel=f"{DISTANCES[distance]} (lower is better)",
            ylabel="Y-PSNR (dB, higher is better)",
        )
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.margins(x=0.2, y=0.1)  # room for the labels
        ax.grid(alpha=0.3)
    save_figure(fig, out)


def write_report(runs: list[Experiment], out_dir: Path, distance: str = "perceptual") -> tuple[Path, Path]:
    """The table of every run, and PSNR against `distance` (perceptual or lpips) per test set."""
    if distance == "lpips" and not any(
        "lpips" in (_perceptual_scores(run, s) or {}) for run in runs for s in scored_sets(runs)
    ):
        notes = {run.metrics.get("provenance", {}).get("lpips", "an srlab without LPIPS") for run in runs}
        raise SrlabError(f"--x lpips: no experiment has LPIPS scores ({'; '.join(sorted(notes))})")
    keys = varied_params(runs)
    picture, markdown = out_dir / "perception_distortion.png", out_dir / "experiments.md"
    figure(runs, keys, picture, distance)
    write_text(markdown, table(runs, keys) + f"\n![perception-distortion]({picture.name})\n")
    return picture, markdown
