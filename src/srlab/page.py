"""The results page: one HTML file per run, or per set of DVC experiments, with its images beside it.

For each test image a slider between any two of bicubic input / each model / ground truth, zoomed
crops of both around the pointer, drawn pixelated, and each method's per-image scores; a table per
set with the numbers of reports/metrics.json; the training curves. The page opens from the file
system (plain HTML, CSS and JS in page.html; images in images/, lossless WebP), so it can be
zipped, mailed or kept as a CI artefact. An experiment's files are read from DVC's cache at its
revision: nothing is run again.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from srlab.data.degrade import mod_crop
from srlab.data.images import IMAGE_SUFFIXES
from srlab.errors import SrlabError
from srlab.fileio import staged_folder
from srlab.published import describe

TRUTH = "ground truth"
# score column: (heading, decimals shown); the page keeps each exact value in data-value
SCORES = {
    "psnr": ("Y-PSNR (dB)", 2),
    "ssim": ("Y-SSIM", 4),
    "perceptual": ("VGG distance", 6),
    "lpips": ("LPIPS", 4),
    "rgb_psnr": ("RGB PSNR (dB)", 2),
    "rgb_ssim": ("RGB SSIM", 4),
}
CURVES = {"psnr": "Y-PSNR (dB)", "l_mse": "MSE loss", "l_perceptual": "perceptual loss (VGG16)"}


@dataclass(frozen=True)
class Layout:
    """Where a run keeps what the page shows, relative to the project (dvc.yaml's paths)."""

    metrics: str = "reports/metrics.json"
    per_image: str = "reports/per_image.csv"
    test: str = "data/raw/test"
    sr: str = "data/sr"
    lives: tuple[tuple[str, str], ...] = (("mse", "reports/train/mse"), ("perceptual", "reports/train/perceptual"))


@dataclass
class Run:
    """One run's results, read through `read` (a file's bytes by its path in the project)."""

    name: str  # "" for the page of a single run; the experiment's name otherwise
    read: Callable[[str], bytes]
    layout: Layout = field(default_factory=Layout)

    def __post_init__(self):
        self.metrics = json.loads(self.read(self.layout.metrics))
        self.per_image = pd.read_csv(io.BytesIO(self.read(self.layout.per_image)))
        self.scale = int(self.metrics["provenance"]["scale"])

    def label(self, method: str) -> str:
        return f"{self.name}: {method}" if self.name else method

    def image(self, path: str) -> np.ndarray:
        return _decode(self.read(path))

    def curves(self) -> dict[str, dict[str, pd.DataFrame]]:
        """{term: {series label: (step, value) table}} of every stage's train and val curves."""
        found: dict[str, dict[str, pd.DataFrame]] = {}
        model = self.metrics["provenance"]["model"]
        for stage, live in self.layout.lives:
            for term in CURVES:
                for split in ("train", "val"):
                    try:
                        table = pd.read_csv(io.BytesIO(self.read(f"{live}/plots/metrics/{split}/{term}.tsv")), sep="\t")
                    except FileNotFoundError:
                        continue
                    found.setdefault(term, {})[self.label(f"{model}_{stage} {split}")] = table
        return found


def workspace(root: Path = Path(".")) -> Callable[[str], bytes]:
    return lambda path: (root / path).read_bytes()


def at_revision(rev: str, repo: str = ".") -> Callable[[str], bytes]:
    """Files of a Git revision (an experiment's commit): Git-tracked ones from Git, DVC outputs
    from DVC's cache."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(repo, rev=rev)

    def read(path: str) -> bytes:
        if not fs.exists(path):  # not in that revision at all (a curve the run did not log)
            raise FileNotFoundError(path)
        try:
            return fs.read_bytes(path)
        except FileNotFoundError:  # in the revision, but its data is not on this machine
            raise SrlabError(
                f"{path} at {rev[:7]}: not in DVC's cache; "
                "`dvc exp pull <git remote> <experiment>` brings an experiment's outputs"
            ) from None

    return read


def write_page(runs: list[Run], out: Path, title: str) -> Path:
    """Write out/index.html and out/images/; return the HTML file's path."""
    with staged_folder(out) as staging:
        data = {
            "title": title,
            "notes": _notes(runs),
            "scores": [s for s in SCORES if any(s in run.per_image.columns for run in runs)],
            "score_names": {s: name for s, (name, _) in SCORES.items()},
            "digits": {s: digits for s, (_, digits) in SCORES.items()},
            "sets": {s: _set(runs, s, staging) for s in _sets(runs)},
            "curves": [svg_chart(CURVES[term], series, log=term != "psnr") for term, series in _curves(runs).items()],
        }
        text = resources.files("srlab").joinpath("page.html").read_text()
        # "</" inside the JSON would end the script element that carries it
        text = text.replace("__PAGE_DATA__", json.dumps(data).replace("</", "<\\/"))
        (staging / "index.html").write_text(text)
    return out / "index.html"


def _sets(runs: list[Run]) -> list[str]:
    names = [s for run in runs for s in run.metrics if s != "provenance"]
    return list(dict.fromkeys(names))


def _notes(runs: list[Run]) -> list[str]:
    notes = []
    for run in runs:
        prov = run.metrics["provenance"]
        who = f"{run.name}: " if run.name else ""
        notes.append(
            f"{who}{prov['model']} x{prov['scale']}, trained on {prov.get('train_data', '?')}; "
            f"test inputs {prov['degradation']}; {prov['metric']}; "
            f"VGG distance on {prov['perceptual_backbone']}" + (f"; LPIPS {prov['lpips']}" if "lpips" in prov else "")
        )
        for name, made in prov.get("published", {}).items():  # checkpoints from elsewhere: what they are
            notes.append(f"{who}{name}: {describe(made)}")
    return notes


def _set(runs: list[Run], set_name: str, folder: Path) -> dict:
    """The set's summary table and, per test image, the panels (image files) and their scores."""
    summary, images = {}, {}
    for run in runs:
        for method, scores in run.metrics.get(set_name, {}).items():
            summary[run.label(method)] = scores
    stored: dict[str, str] = {}  # content hash -> file: a panel two runs share is kept once
    for run in runs:
        table = run.per_image[run.per_image["set"] == set_name]
        groups = table.groupby("image", sort=False)
        for name, rows in tqdm(groups, desc=f"page {run.label(set_name)}", unit="img", disable=None):
            image = images.setdefault(name, {"name": name, "panels": {}, "scores": {}})
            for _, row in rows.iterrows():
                rgb = run.image(f"{run.layout.sr}/{set_name}/{row['method']}/{name}.png")
                _add_panel(image, run.label(row["method"]), rgb, folder, set_name, stored)
                image["scores"][run.label(row["method"])] = {
                    s: float(row[s]) for s in SCORES if s in row and pd.notna(row[s])
                }
            if TRUTH not in image["panels"]:
                truth = _truth(run, set_name, name, rgb.shape)
                _add_panel(image, TRUTH, truth, folder, set_name, stored)
    for image in images.values():
        labels = [label for label in image["panels"] if label != TRUTH]
        image["panels"][TRUTH] = image["panels"].pop(TRUTH)  # ground truth last in the choices
        image["default"] = [labels[0], labels[-1]]  # the input against the last model
    return {"summary": summary, "images": list(images.values())}


def _truth(run: Run, set_name: str, name: str, shape: tuple) -> np.ndarray:
    for suffix in IMAGE_SUFFIXES:
        try:
            data = run.read(f"{run.layout.test}/{set_name}/{name}{suffix}")
        except FileNotFoundError:
            continue
        hr = mod_crop(_decode(data), run.scale)
        if hr.shape != shape:
            raise SrlabError(f"{run.layout.test}/{set_name}/{name}{suffix}: {hr.shape} is not the outputs' {shape}")
        return hr
    raise SrlabError(f"{run.layout.test}/{set_name}: no ground truth for {name}")


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _add_panel(image: dict, label: str, rgb: np.ndarray, folder: Path, set_name: str, stored: dict) -> None:
    key = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
    if key not in stored:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{image['name']}.{label}")
        path = f"images/{set_name}/{slug}.webp"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        # lossless: the slider and the zoom must show the output's own pixels
        Image.fromarray(rgb).save(folder / path, "WEBP", lossless=True, quality=80, method=2)
        stored[key] = path
    image["panels"][label] = stored[key]
    image["height"], image["width"] = rgb.shape[:2]


def _curves(runs: list[Run]) -> dict[str, dict[str, pd.DataFrame]]:
    merged: dict[str, dict[str, pd.DataFrame]] = {}
    for run in runs:
        for term, series in run.curves().items():
            merged.setdefault(term, {}).update(series)
    return merged


COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def svg_chart(title: str, series: dict[str, pd.DataFrame], log: bool, width: int = 640, height: int = 320) -> str:
    """A line chart as inline SVG: value against epoch, one line per series (train dashed)."""
    left, right, top, bottom = 70, 200, 28, 36
    values = [(row.iloc[0], row.iloc[1]) for t in series.values() for _, row in t.iterrows()]
    xs = [x for x, _ in values]
    ys = [np.log10(y) if log else y for _, y in values if not log or y > 0]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(max(ys), min(ys) + 1e-9)

    def px(x, y):
        y = np.log10(y) if log else y
        return (
            left + (x - x0) / (x1 - x0) * (width - left - right),
            top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom),
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" data-chart="{html.escape(title)}">',
        f'<text x="{left}" y="16">{html.escape(title)} against epoch{" (log scale)" if log else ""}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
        'fill="none" stroke="#999"/>',
    ]
    for tick in np.linspace(y0, y1, 5):
        value = 10**tick if log else tick
        _, y = px(x0, value)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    for step in sorted(set(xs)) if len(set(xs)) <= 12 else np.linspace(x0, x1, 6):
        x, _ = px(step, 10**y0 if log else y0)
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle">{step:g}</text>')
    for i, (name, table) in enumerate(series.items()):
        colour = COLOURS[(i // 2) % len(COLOURS)]
        points = " ".join(
            "{:.1f},{:.1f}".format(*px(x, y)) for x, y in zip(table.iloc[:, 0], table.iloc[:, 1]) if not log or y > 0
        )
        dash = ' stroke-dasharray="5 3"' if name.endswith(" train") else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
        parts.append(
            f'<text x="{width - right + 8}" y="{top + 12 + 14 * i}" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
