"""The training loop, top to bottom: set-up, resume, epochs, validation, checkpoint, final model.

Both pipeline models come from here: train_mse with vgg_weight 0, train_perceptual with the
configured weight, starting from the MSE model. The patches live on the training device and
batches are sampled and augmented there; losses are read back once per epoch, not per step.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from srlab import __version__, checkpoint
from srlab.backbones import describe_vgg
from srlab.data.download import file_md5
from srlab.data.patches import load_pairs
from srlab.device import describe_device, resolve_device, seed_everything
from srlab.errors import SrlabError
from srlab.inference import CHANNELS_LAST
from srlab.losses import SRLoss, build_perceptual
from srlab.models import build_model, count_parameters
from srlab.params import Params


SCORED_PATCHES = 1024  # bounds the cached target features (~1 GB at 240 px) on large datasets


@dataclass(frozen=True)
class TrainJob:
    name: str  # e.g. srcnn_mse; names the curves and the checkpoint folder
    params: Params
    vgg_weight: float  # 0 trains with MSE alone
    epochs: int
    patches: Path  # folder written by the prepare stage
    model_out: Path
    checkpoint_dir: Path
    init_from: Path | None = None  # a model file whose weights start training


def train(job: TrainJob, log: Callable[[dict], None] = lambda row: None) -> dict:
    """Train, calling `log(row)` once per epoch (also for epochs replayed from a checkpoint)."""
    p = job.params
    seed_everything(p.seed)
    device = resolve_device(p.train.device)
    # NHWC speeds cuDNN up; on CPU it slows the backward pass, so CPU keeps the default layout
    layout = CHANNELS_LAST if device.type == "cuda" else torch.contiguous_format

    # data: uint8 patches on the device, converted per batch
    train_set, val_set = _to_device(load_pairs(job.patches, "train"), device), _to_device(load_pairs(job.patches, "val"), device)
    if p.train.batch_size > len(train_set[0]):
        raise SrlabError(f"train.batch_size: {p.train.batch_size} is more than the {len(train_set[0])} training patches")
    # curves are scored on fixed, evenly spaced samples (all of val when it is small), and the
    # train sample is scored like val, so the two curves compare
    val_probe = _spread(val_set, SCORED_PATCHES)
    train_probe = _spread(train_set, len(val_probe[0]))

    model = build_model(p.model, p.data.scale).to(device, memory_format=layout)
    if job.init_from is not None:
        start_model, _ = checkpoint.load_model(job.init_from, p.data.scale)
        model.load_state_dict(start_model.state_dict())
    perceptual = build_perceptual(p.loss.vgg_init, p.seed, p.loss.vgg_layers).to(device, memory_format=layout)
    objective = SRLoss(perceptual, job.vgg_weight)
    scored = {"train": _Scored(train_probe, perceptual, layout), "val": _Scored(val_probe, perceptual, layout)}
    optimizer = torch.optim.Adam(model.parameters(), lr=p.train.lr)
    generator = torch.Generator().manual_seed(p.seed)

    # resume only from a checkpoint made by exactly this job on exactly this data
    fingerprint = _fingerprint(job)
    last_path = job.checkpoint_dir / "last.pt"
    start_epoch, history = 0, []
    if last_path.exists():
        state = checkpoint.load(last_path)
        if state["meta"].get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, history = state["meta"]["epoch"], state["meta"]["history"]
            print(f"{job.name}: resuming from {last_path} after epoch {start_epoch}")

    for row in history:  # DVC cleared the outs before this run: replay the curves we keep
        log(row)
    n = len(train_set[0])
    steps = n // p.train.batch_size
    bar = tqdm(range(start_epoch, job.epochs), desc=job.name, unit="epoch", initial=start_epoch, total=job.epochs, disable=None)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=generator)
        running = torch.zeros((), device=device)
        first_bad = torch.full((), -1, device=device)  # step of the first non-finite loss, read once per epoch
        for step in range(steps):
            idx = order[step * p.train.batch_size : (step + 1) * p.train.batch_size].to(device)
            lr, hr = _augment(_as_float(train_set[0][idx]), _as_float(train_set[1][idx]), generator, layout)
            loss, _ = objective(model(lr), hr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
        row = {"epoch": epoch + 1, "train/loss": float(running) / steps}
        if not math.isfinite(row["train/loss"]):
            at = epoch * steps + int(first_bad) + 1
            raise SrlabError(f"{job.name}: loss became non-finite at step {at} (epoch {epoch + 1}); "
                             f"last good checkpoint kept at {last_path}")
        for split, patches in scored.items():
            row.update({f"{split}/{k}": v for k, v in patches.score(model).items()})
        history.append(row)
        log(row)
        bar.set_postfix(loss=f"{row['train/loss']:.4g}", val_mse=f"{row['val/l_mse']:.4g}")
        checkpoint.save(last_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "meta": {"fingerprint": fingerprint, "epoch": epoch + 1, "history": history},
        })

    meta = {
        "arch": p.model.name, "scale": p.data.scale, "upsample": p.model.upsample, "residual": p.model.residual,
        "parameters": count_parameters(model), "vgg_weight": job.vgg_weight, "epochs": job.epochs,
        "backbone": describe_vgg(p.loss.vgg_init, p.seed), "device": describe_device(device), "torch": str(torch.__version__),
        "srlab": __version__, "history": history,
    }
    checkpoint.save(job.model_out, {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta})
    return meta


def _to_device(pairs, device) -> tuple[torch.Tensor, torch.Tensor]:
    # N x H x W x 3 uint8 -> N x 3 x H x W uint8, kept compact until a batch is drawn
    return tuple(torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().to(device) for a in (pairs.lr, pairs.hr))


def _spread(pairs, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    step = max(1, len(pairs[0]) // count)
    return tuple(t[::step][:count] for t in pairs)


def _as_float(batch: torch.Tensor, layout=torch.contiguous_format) -> torch.Tensor:
    return batch.float().div_(255.0).contiguous(memory_format=layout)


def _augment(lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator, layout):
    """The same random flip / transpose (the 8 symmetries of a square) for each LR/HR pair."""
    flips = torch.randint(0, 2, (3, lr.shape[0]), generator=generator).bool().to(lr.device)
    out = []
    for x in (lr, hr):
        x = torch.where(flips[0, :, None, None, None], x.flip(-1), x)
        x = torch.where(flips[1, :, None, None, None], x.flip(-2), x)
        x = torch.where(flips[2, :, None, None, None], x.transpose(-1, -2), x)
        out.append(x.contiguous(memory_format=layout))
    return out


class _Scored:
    """A fixed set of patches scored every epoch on both loss terms, whatever the training weight,
    so the MSE and perceptual runs share curves. Target features never change: computed once."""

    def __init__(self, pairs, perceptual, layout, batch: int = 64):
        self.perceptual, self.layout = perceptual, layout
        self.batches = []
        with torch.no_grad():
            for i in range(0, len(pairs[0]), batch):
                lr, hr = pairs[0][i : i + batch], _as_float(pairs[1][i : i + batch], layout)
                self.batches.append((lr, hr, perceptual.extract(hr)))

    @torch.no_grad()
    def score(self, model) -> dict[str, float]:
        model.eval()
        total, count = {"l_mse": 0.0, "l_perceptual": 0.0}, 0
        for lr, hr, target_features in self.batches:
            out = model(_as_float(lr, self.layout)).clamp(0, 1)
            total["l_mse"] += float(torch.nn.functional.mse_loss(out, hr)) * len(lr)
            total["l_perceptual"] += float(self.perceptual.distance(self.perceptual.extract(out), target_features)) * len(lr)
            count += len(lr)
        model.train()
        return {k: v / count for k, v in total.items()}


def dvclive_logger(live) -> Callable[[dict], None]:
    """Per-epoch rows into a dvclive.Live: the step is the epoch (1, 2, ...), `split/term` metric names."""

    def log(row: dict) -> None:
        live.step = row["epoch"]
        for key, value in row.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()

    return log


def _code_digest() -> str:
    """srlab's own source: after a code change DVC re-runs the stage, and it must not resume."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _fingerprint(job: TrainJob) -> str:
    parts = {
        "params": job.params.to_dict(), "vgg_weight": job.vgg_weight, "epochs": job.epochs, "code": _code_digest(),
        "data": [file_md5(job.patches / f"{s}_{k}.npy") for s in ("train", "val") for k in ("hr", "lr")],
        "init": file_md5(job.init_from) if job.init_from else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
