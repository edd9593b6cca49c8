"""Scoring models on the test sets beside the bicubic baseline: Y-PSNR, Y-SSIM, VGG distance
(and LPIPS, and RGB PSNR / SSIM without a shaved border when eval.rgb asks for them)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from srlab.backbones import describe_vgg
from srlab.checkpoint import load_model
from srlab.data.degrade import downscale, interpolate, mod_crop
from srlab.data.images import load_rgb, save_png, test_images
from srlab.device import resolve_device
from srlab.inference import CHANNELS_LAST, histogram_match, self_ensemble, super_resolve, to_tensor
from srlab.losses import build_vgg16_loss
from srlab.lpips_score import LPIPS, imagenet_vgg16_file
from srlab.metrics import psnr_rgb, psnr_y, ssim_rgb, ssim_y
from srlab.params import Params
from srlab.published import load_published

BASELINE = "bicubic"


def evaluate(
    params: Params, test_root: Path, models: dict[str, Path], sr_root: Path, published: dict[str, Path] | None = None
) -> tuple[dict, pd.DataFrame]:
    """Score bicubic, each srlab model and each published checkpoint (spandrel) on every image of
    eval.sets; save each output as PNG."""
    scale = params.data.scale
    device = resolve_device(params.train.device)
    perceptual = build_vgg16_loss(params.loss.vgg_init, params.seed, params.eval.vgg_layers)
    perceptual = perceptual.to(device, memory_format=CHANNELS_LAST)
    nets = {name: load_model(path, scale)[0] for name, path in models.items()}
    made = {}  # what each published checkpoint is, for the provenance
    for name, path in (published or {}).items():
        nets[name], made[name] = load_published(path, scale)
    nets = {name: net.to(device, memory_format=CHANNELS_LAST) for name, net in nets.items()}
    lpips, lpips_note = lpips_scorer(params, device)
    rows = []
    for set_name in params.eval.sets:
        for path in tqdm(test_images(test_root / set_name), desc=f"evaluate {set_name}", unit="img", disable=None):
            hr = mod_crop(load_rgb(path)[0], scale)
            lr = downscale(hr, scale, params.eval.degradation, params.data.blur_sigma)
            outputs = {BASELINE: interpolate(lr, scale, "bicubic")}
            run = {"precision": params.eval.precision}  # the models only: scores are computed in fp32 from uint8 images
            outputs.update({name: super_resolve(net, lr, device, **run) for name, net in nets.items()})
            if params.eval.self_ensemble:  # 8 flips and rotations averaged: what "+" means in published tables
                outputs.update({f"{name}_x8": self_ensemble(net, lr, device, **run) for name, net in nets.items()})
            if params.eval.histogram_match:  # the post-process of the assignment note, scored beside each model
                outputs.update({f"{name}_histmatch": histogram_match(outputs[name], lr) for name in nets})
            with torch.no_grad():
                target_features = perceptual.extract(to_tensor(hr, device))
                for method, out in outputs.items():
                    distance = float(perceptual.distance(perceptual.extract(to_tensor(out, device)), target_features))
                    rows.append(
                        {
                            "set": set_name,
                            "image": path.stem,
                            "method": method,
                            "psnr": psnr_y(out, hr, scale),
                            "ssim": ssim_y(out, hr, scale),
                            "perceptual": distance,
                            **({"lpips": lpips(out, hr)} if lpips else {}),
                            **(
                                {"rgb_psnr": psnr_rgb(out, hr), "rgb_ssim": ssim_rgb(out, hr)}
                                if params.eval.rgb
                                else {}
                            ),
                        }
                    )
                    save_png(sr_root / set_name / method / f"{path.stem}.png", out)
    table = pd.DataFrame(rows)
    summary = summarise(table, params)
    summary["provenance"]["lpips"] = lpips_note
    if made:
        summary["provenance"]["published"] = made
    return summary, table


def lpips_scorer(params: Params, device: torch.device) -> tuple[LPIPS | None, str]:
    """LPIPS-VGG when eval.lpips allows it and torchvision's ImageNet VGG16 is on disk, and what
    the metrics say about it either way."""
    if params.eval.lpips == "off":
        return None, "not computed: eval.lpips is off"
    weights, why_not = imagenet_vgg16_file()
    if weights is None:
        return None, f"not computed: {why_not}; LPIPS is never computed on other weights"
    return LPIPS(
        weights, device
    ), f"LPIPS-VGG (lpips {metadata.version('lpips')} linear layers, ImageNet VGG16 {weights.name})"


def summarise(table: pd.DataFrame, params: Params) -> dict:
    scores = [c for c in ("psnr", "ssim", "perceptual", "lpips", "rgb_psnr", "rgb_ssim") if c in table.columns]
    means = table.groupby(["set", "method"], sort=False)[scores].mean()
    summary: dict = {}
    for (set_name, method), row in means.iterrows():
        summary.setdefault(set_name, {})[method] = {k: round(float(v), 6) for k, v in row.items()}
    summary["provenance"] = {
        "model": params.model.name,
        "scale": params.data.scale,
        "degradation": params.eval.degradation
        + (f" (sigma {params.data.blur_sigma})" if params.eval.degradation == "gaussian" else ""),
        "metric": f"Y channel (BT.601), {params.data.scale}px border shaved, uint8 outputs"
        + ("; rgb_psnr and rgb_ssim: RGB, no border shaved" if params.eval.rgb else ""),
        "perceptual_backbone": describe_vgg(params.loss.vgg_init, params.seed),
        "train_data": params.data.train_source
        if params.data.train_source != "folder"
        else f"folder {params.data.train_dir}",
    }
    return summary
