"""`srlab bench`: training throughput against its ceiling and against a seeds-style loader (the seeds:
the design notes' starter scripts, docs/notes.md).

All in one process and one run, so the ratios compare like with like:
  (a) the real training loop (srlab.training.train) on prepared patches, epochs 2..N timed;
  (b) the same model, loss, precision and batch on one batch already on the device: the ceiling;
  (c) the same step fed by a DataLoader like the seeds' (PIL decode, random crop, bicubic down and
      up, ToTensor, 4 workers);
plus the compute rate those images/s mean, peak memory and super-resolve throughput on a
1920x1080 input. With a profile file, (a) runs once more and its second epoch runs under
torch.profiler; the operator table (by self device time on a GPU, self CPU time otherwise) is
written there: what the loop spends its time on.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srlab.data.store import Pairs, save_pairs
from srlab.device import autocast, describe_device, memory_format, resolve_device, uses_bf16
from srlab.errors import SrlabError
from srlab.fileio import write_text
from srlab.inference import CHANNELS_LAST, super_resolve
from srlab.losses import SRLoss, build_terms, build_vgg16_loss
from srlab.losses.perceptual import FrozenNetwork
from srlab.models import build_model, conv_flops, flops_per_output_pixel
from srlab.params import Params, apply_overrides, parse_params
from srlab.training import TrainJob, optimisation_step, train

FULL = {
    "hr_size": 240,
    "batch": 64,
    "patches": 4096,
    "epochs": 3,
    "photos": 64,
    "photo_size": (500, 375),
    "sr_input": (1920, 1080),
}
SMOKE = {
    "hr_size": 48,
    "batch": 8,
    "patches": 256,
    "epochs": 2,
    "photos": 8,
    "photo_size": (160, 120),
    "sr_input": (240, 135),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _photos(folder: Path, count: int, size: tuple[int, int], rng: np.random.Generator) -> list[Path]:
    """Smooth random JPEGs of VOC-like size: decoding cost like real photos, no dataset needed."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(count):
        f = rng.uniform(3, 15, 3)
        img = np.stack([np.sin(x / f[0] + i), np.cos(y / f[1]), np.sin((x + y) / f[2])], -1)
        img = ((img + 1) * 127.5 + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
        paths.append(folder / f"{i:04d}.jpg")
        Image.fromarray(img).save(paths[-1], quality=90)
    return paths


class SeedsStyleDataset(torch.utils.data.Dataset):
    """What the seeds' loaders do every step: decode, crop, bicubic down and back up, ToTensor."""

    def __init__(self, paths: list[Path], hr_size: int, scale: int, length: int):
        self.paths, self.hr_size, self.scale, self.length = paths, hr_size, scale, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        with Image.open(self.paths[i % len(self.paths)]) as img:
            img = img.convert("RGB")
            x, y = (int(rng.integers(0, d - self.hr_size + 1)) for d in img.size)
            hr = img.crop((x, y, x + self.hr_size, y + self.hr_size))
        lr = hr.resize((self.hr_size // self.scale,) * 2, Image.Resampling.BICUBIC)
        lr.resize((self.hr_size,) * 2, Image.Resampling.BICUBIC)  # the seeds' pre-upsampled input: same work
        to_tensor = lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div_(255)
        return to_tensor(lr), to_tensor(hr)


def step_rate(model, objective, batches, steps: int, warmup: int, p: Params, device, layout) -> float:
    """Images/s of training's own step (forward, loss, backward, Adam) over `steps` batches after `warmup`."""
    optimizer = torch.optim.Adam(model.parameters(), lr=p.train.lr)
    precision = autocast(p.train.precision, device)
    images = 0
    for i, (lr, hr) in enumerate(batches):
        if i == warmup:
            _sync(device)
            start, images = time.perf_counter(), 0
        lr = lr.to(device, non_blocking=True).contiguous(memory_format=layout)
        hr = hr.to(device, non_blocking=True).contiguous(memory_format=layout)
        optimisation_step(model, objective, optimizer, precision, lr, hr)
        images += len(lr)
        if i + 1 == warmup + steps:
            break
    _sync(device)
    return images / (time.perf_counter() - start)


def step_under_test(p: Params, device, layout, stage: str = "mse"):
    """The model, the same model as training runs it (compiled when train.compile), and the stage's
    objective (mse: the pixel terms; perceptual: the second stage's, VGG16 included): what (b) and
    (c) time, so that their ratios to (a) compare like with like."""
    model = build_model(p.model, p.data.scale).to(device, memory_format=layout)
    weights = stage_weights(p, stage)
    vgg16 = build_vgg16_loss(p.loss.vgg_init, p.seed, p.loss.vgg_layers) if weights.get("perceptual", 0) > 0 else None
    objective = SRLoss(build_terms(p.loss, weights, p.seed, perceptual=vgg16), weights).to(device)
    return model, torch.compile(model) if p.train.compile else model, objective


def stage_weights(p: Params, stage: str) -> dict[str, float]:
    """The stage's loss weights, as training takes them (TrainJob.for_stage)."""
    if stage == "mse":
        return p.loss.pixel_weights()
    if p.loss.adversarial_weight > 0:
        raise SrlabError(
            "srlab bench --stage perceptual: the adversarial term is not benched (its discriminator "
            "trains in a step of its own); add --set loss.adversarial_weight=0"
        )
    return p.loss.second_stage_weights()


def ceiling_rate(net, objective, p: Params, device, layout, steps: int, warmup: int) -> float:
    """(b): images/s of the step on one batch of the run's shape already on the device."""
    batch, hr_size = p.train.batch_size, p.trained_size()
    lr_size = hr_size // p.data.scale
    fixed = (
        torch.rand(batch, 3, lr_size, lr_size, device=device),
        torch.rand(batch, 3, hr_size, hr_size, device=device),
    )
    return step_rate(net, objective, iter(lambda: fixed, None), steps, warmup, p, device, layout)


def training_flops_per_image(p: Params, objective: SRLoss) -> float:
    """FLOPs of one training image: the model's forward convolutions at the trained HR size, times 3
    for the backward pass (gradients of inputs and of weights), the usual estimate; plus, for each
    frozen feature network of the objective, 3 of its forward passes (the target's, the output's,
    and the backward one to the output, which needs no weight gradients)."""
    size = p.trained_size()
    flops = 3 * flops_per_output_pixel(build_model(p.model, p.data.scale)) * size**2
    for term in objective.terms.values():
        if isinstance(term, FrozenNetwork):
            flops += 3 * conv_flops(term.trunk, torch.zeros(1, 3, size, size))[0]
    return flops


def profile_loop(job: TrainJob, device: torch.device, out: Path) -> None:
    """The real training loop's second epoch (its steps, its scoring and the checkpoints before it)
    under torch.profiler, so that set-up is left out; the operator table goes to `out`."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    prof = torch.profiler.profile(activities=activities)

    def log(row):  # called at the end of each epoch
        _sync(device)
        if row["epoch"] == 1:
            prof.start()
        else:
            prof.stop()

    folder = job.checkpoint_dir.parent / "profiled"
    train(dataclasses.replace(job, epochs=2, model_out=folder / "model.pt", checkpoint_dir=folder / "ckpt"), log=log)
    sort_by = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    # srlab's own ranges (gathering batches, or waiting for the thread that does) whether or not they make the top 30
    ours = [
        f"{e.key}: {e.cpu_time_total / 1e3:.1f} ms over {e.count} calls"
        for e in averages
        if e.key.startswith("srlab::")
    ]
    write_text(out, averages.table(sort_by=sort_by, row_limit=30) + "\n" + "\n".join(ours) + "\n")


def run(
    overrides: list[str],
    smoke: bool,
    workers: int = 4,
    profile: Path | None = None,
    stage: str = "mse",
    versus: list[str] = (),
) -> dict:
    size = SMOKE if smoke else FULL
    defaults = {"train": {"batch_size": size["batch"], "epochs": size["epochs"]}, "data": {"hr_size": size["hr_size"]}}
    p = parse_params(apply_overrides(defaults, overrides), source="srlab bench --set")
    other = parse_params(apply_overrides(defaults, [*overrides, *versus]), source="srlab bench --versus")
    stage_weights(p, stage)  # a stage it cannot bench: one line before any work
    if p.train.compile and not other.train.compile:
        # an eager loop timed after a compiled one in the same process ran 1.7x slower (AMD EPYC, CPU)
        raise SrlabError(
            "srlab bench --versus: time the eager side first, as --set train.compile=false --versus "
            "train.compile=true: after torch.compile an eager loop in the same process runs slower"
        )
    device = resolve_device(p.train.device)
    rng = np.random.default_rng(0)
    result = header(p, device, stage)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, net, objective, steps = rates(p, device, size, rng, tmp, stage, profile, result)
        result["c_seeds_loader"] = seeds_rate(p, device, size, rng, tmp, net, objective, steps, workers)
        if versus:  # (a) and (b) again with the other settings, in this process: a ratio of like with like
            result["versus"] = {"overrides": list(versus)}
            rates(other, device, size, rng, tmp / "versus", stage, None, result["versus"])

    result["a_over_c"] = result["a_loop"] / result["c_seeds_loader"]
    flops = training_flops_per_image(p, objective)
    result["a_tflops"], result["b_tflops"] = (result[k] * flops / 1e12 for k in ("a_loop", "b_ceiling"))
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux

    result["dense"] = dense_rates(device, result["precision"])
    result["dense_tflops"] = max(result["dense"].values())
    result["super_resolve_mpix_per_s"] = super_resolve_rate(model, device, size["sr_input"], rng, result["precision"])
    result["super_resolve_input"] = "{}x{}".format(*size["sr_input"])
    return result


def header(p: Params, device: torch.device, stage: str) -> dict:
    """What is benched: the device, the model and the settings in force."""
    return {
        "device": describe_device(device),
        "torch": torch.__version__,
        "model": p.model.name,
        "scale": p.data.scale,
        "hr_size": p.data.hr_size,
        "batch": p.train.batch_size,
        "precision": "bf16" if uses_bf16(p.train.precision, device) else "fp32",
        "memory_format": str(memory_format(p.train.memory_format, p.train.precision, device)).split(".")[-1],
        "compile": p.train.compile,
        "crop_size": p.train.crop_size,
        "stage": stage,
    }


def seeds_rate(p: Params, device, size: dict, rng, tmp: Path, net, objective, steps: int, workers: int) -> float:
    """(c) the seeds' way: decode and resize JPEGs in worker processes every step."""
    photos = _photos(tmp, size["photos"], size["photo_size"], rng)
    loader = torch.utils.data.DataLoader(
        SeedsStyleDataset(photos, p.trained_size(), p.data.scale, (steps + 5) * p.train.batch_size),
        batch_size=p.train.batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        shuffle=False,
    )
    layout = memory_format(p.train.memory_format, p.train.precision, device)
    return step_rate(net, objective, iter(loader), steps, 2, p, device, layout)


def rates(p: Params, device, size: dict, rng, tmp: Path, stage: str, profile: Path | None, result: dict):
    """(a) and (b) with params `p`, into `result` with their ratio; the step under test and the
    steps (b) timed, for (c) to use."""
    tmp.mkdir(exist_ok=True)
    result["a_loop"] = loop_rate(p, device, size["patches"], rng, tmp, profile, stage)
    if profile:
        result["profile"] = str(profile)
    layout = memory_format(p.train.memory_format, p.train.precision, device)
    model, net, objective = step_under_test(p, device, layout, stage)
    # as many steps as an epoch of (a): a short run is at the mercy of the machine
    steps = max(5, size["patches"] // p.train.batch_size)
    result["b_ceiling"] = ceiling_rate(net, objective, p, device, layout, steps, warmup=5)
    result["a_over_b"] = result["a_loop"] / result["b_ceiling"]
    return model, net, objective, steps


def loop_rate(
    p: Params, device: torch.device, n: int, rng: np.random.Generator, tmp: Path, profile: Path | None, stage: str
) -> float:
    """(a) the real loop, images/s: `n` prepared uint8 patches on disk, train() end to end; epoch 1 is warm-up."""
    scale, hr_size, batch = p.data.scale, p.data.hr_size, p.train.batch_size
    lr_size = hr_size // scale
    hr = rng.integers(0, 256, (n, hr_size, hr_size, 3), dtype=np.uint8)
    lr = rng.integers(0, 256, (n, lr_size, lr_size, 3), dtype=np.uint8)
    corners = np.zeros((n, 2), np.int32)
    save_pairs(tmp / "patches", "train", Pairs(hr, lr, corners))
    save_pairs(tmp / "patches", "val", Pairs(hr[:batch], lr[:batch], corners[:batch]))
    ends = []
    job = TrainJob.for_stage(stage, p, tmp / "patches", tmp / "model.pt", tmp / "ckpt", name="bench")
    train(job, log=lambda row: (_sync(device), ends.append(time.perf_counter())))
    if profile:
        profile_loop(job, device, profile)
    return (len(ends) - 1) * (n // batch) * batch / (ends[-1] - ends[0])


def dense_rates(device: torch.device, precision: str, seconds: float = 1.0) -> dict[str, float]:
    """TFLOP/s of a large matmul and of a wide 3x3 convolution in `precision`. The larger is the
    practical peak that (a) and (b) are read against (a convolution of few channels reaches less).
    Both, because one library can lag: MKL's fp32 matmul reaches 0.18 TFLOP/s on an AVX-512 AMD
    EPYC, where oneDNN's convolutions reach 0.42."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n, batch, channels, size = (8192, 32, 256, 128) if device.type == "cuda" else (2048, 8, 128, 64)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    nhwc = torch.channels_last  # oneDNN's own layout
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, dtype, memory_format=nhwc)
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype).to(memory_format=nhwc)
    with torch.no_grad():
        return {
            f"matmul {n}": _rate(lambda: a @ b, 2 * n**3, device, seconds),
            f"3x3 convolution, {channels} channels": _rate(
                lambda: conv(x), 2 * batch * channels**2 * 9 * size**2, device, seconds
            ),
        }


def _rate(kernel, flops: float, device: torch.device, seconds: float) -> float:
    kernel()  # warm-up
    _sync(device)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        kernel()
        _sync(device)
        count += 1
    return flops * count / (time.perf_counter() - start) / 1e12


def super_resolve_rate(
    model, device: torch.device, size: tuple[int, int], rng: np.random.Generator, precision: str = "fp32"
) -> float:
    """Megapixels out per second for a frame of `size` (full HD; small in smoke mode), tiled as the CLI
    does, in `precision` (the training loop's: `--set train.precision=bf16` measures both in bf16)."""
    w, h = size
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    model.to(memory_format=CHANNELS_LAST).eval()  # as `srlab super-resolve` runs it
    super_resolve(model, frame[:64, :64], device, precision=precision)  # warm-up
    _sync(device)
    start = time.perf_counter()
    out = super_resolve(model, frame, device, tile=256, precision=precision)
    _sync(device)
    return out.shape[0] * out.shape[1] / 1e6 / (time.perf_counter() - start)


def report(result: dict) -> str:
    crop = f" cropped to {result['crop_size']} px" if result["crop_size"] else ""
    lines = [
        f"srlab bench: {result['model']} x{result['scale']}, {result['stage']} stage, "
        f"{result['hr_size']} px HR patches{crop}, "
        f"batch {result['batch']}, "
        f"{result['precision']}, {result['memory_format']}{', compiled' if result['compile'] else ''}, "
        f"on {result['device']} (torch {result['torch']})",
        f"  (a) training loop, end to end  {result['a_loop']:10.1f} img/s",
        f"  (b) on-device ceiling          {result['b_ceiling']:10.1f} img/s",
        f"  (c) seeds-style PIL loader     {result['c_seeds_loader']:10.1f} img/s",
        f"  a/b = {result['a_over_b']:.2f}   a/c = {result['a_over_c']:.2f}",
        f"  compute: (a) {result['a_tflops']:.3g} TFLOP/s, (b) {result['b_tflops']:.3g} TFLOP/s "
        "(3 x the forward convolution FLOPs of the model and of any feature network, per image)",
        f"  dense kernels in {result['precision']}: "
        + ", ".join(f"{kernel} {tflops:.3g}" for kernel, tflops in result["dense"].items())
        + f" TFLOP/s; the larger, {result['dense_tflops']:.3g}, is this device's practical peak",
    ]
    memory = result.get("peak_memory_gib")
    lines.append(
        f"  peak memory {memory:.2f} GiB (CUDA allocated)"
        if memory is not None
        else f"  peak memory {result['peak_rss_gib']:.2f} GiB (process RSS)"
    )
    lines.append(
        f"  super-resolve {result['super_resolve_input']} -> x{result['scale']}, {result['precision']}: "
        f"{result['super_resolve_mpix_per_s']:.2f} MP/s"
    )
    if "versus" in result:
        other = result["versus"]
        lines.append(
            f"  versus {', '.join(other['overrides'])}: (a) {other['a_loop']:.1f} img/s, (b) {other['b_ceiling']:.1f} "
            f"img/s; this run is {result['a_loop'] / other['a_loop']:.2f}x in (a), "
            f"{result['b_ceiling'] / other['b_ceiling']:.2f}x in (b)"
        )
    if "profile" in result:
        lines.append(f"  operator table of one epoch of (a), profiled: {result['profile']}")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    def rounded(value):
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return round(value, 4) if isinstance(value, float) else value

    return json.dumps(rounded(result), indent=2)
