"""The training loop, top to bottom: set-up, resume, epochs, validation, checkpoints, final model.

Both pipeline models come from here: train_mse with the pixel terms of the loss, train_perceptual
with all of them (VGG16 perceptual, VGG19 / ResNet content, adversarial), starting from the MSE
model. Batches come from `data.loader` and are augmented by `data.augment` on the training
device; losses are read back once per epoch, not per step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from srlab import __version__, checkpoint, distributed, interrupts
from srlab.backbones import describe, describe_vgg
from srlab.data import store
from srlab.data.augment import augment, draw_corners, draw_flips, draw_rotations, rotation
from srlab.data.loader import PatchStore, as_float
from srlab.device import describe_device, resolve_device, seed_everything
from srlab.ema import WeightAverage
from srlab.errors import SrlabError
from srlab.fileio import file_md5, remove_stale_temporaries
from srlab.inference import CHANNELS_LAST
from srlab.losses import SRLoss, build_perceptual, build_terms
from srlab.losses.content import SSIMLoss, discriminator_loss
from srlab.models import build_discriminator, build_model, count_parameters
from srlab.params import Params, TrainParams

SCORED_PIXELS = 1024 * 64 * 64  # HR pixels scored per split each epoch: bounds the cached target features and the time
SCORING_BATCH_PIXELS = 64 * 64 * 64  # HR pixels per scoring batch: bounds the VGG activations whatever the patch size
BEST = {"psnr": "best_psnr.pt", "ssim": "best_ssim.pt"}  # kept beside last.pt, as the SRGAN note does


@dataclass(frozen=True)
class TrainJob:
    name: str  # e.g. srcnn_mse; names the curves and the checkpoint folder
    params: Params
    weights: dict  # loss term -> weight, e.g. {"mse": 1.0, "perceptual": 0.3}
    epochs: int
    patches: Path  # folder written by the prepare stage
    model_out: Path
    checkpoint_dir: Path
    init_from: Path | None = None  # a model file whose weights start training
    stage: str = "mse"  # mse | perceptual: which epochs param counts (train.epochs, train.perceptual_epochs)
    live: Path | None = None  # where the curves go (dvclive folder); kept so resume can append to them
    resume_from: Path | None = None  # `srlab resume`: this checkpoint, else checkpoint_dir/last.pt when it fits

    @classmethod
    def for_stage(cls, stage: str, params: Params, patches: Path, model_out: Path, checkpoint_dir: Path,
                  live: Path | None = None, init_from: Path | None = None, name: str | None = None) -> TrainJob:
        """A pipeline stage's job. `mse`: train.epochs on the pixel terms of the loss, from scratch
        or, given `init_from`, from that model (of any scale). `perceptual`: train.perceptual_epochs
        on every term, starting from `init_from` unless train.perceptual_init is scratch."""
        if stage == "mse":
            weights, epochs = params.loss.pixel_weights(), params.train.epochs
        elif stage == "perceptual":
            weights, epochs = params.loss.perceptual_weights(), params.train.perceptual_epochs
            init_from = init_from if params.train.perceptual_init == "mse" else None
        else:
            raise ValueError(f"unknown training stage {stage!r}")
        return cls(name=name or f"{params.model.name}_{stage}", params=params, weights=weights, epochs=epochs,
                   patches=patches, model_out=model_out, checkpoint_dir=checkpoint_dir, init_from=init_from,
                   stage=stage, live=live)

    def describe(self) -> dict:
        """Everything `srlab resume` needs to rebuild this job from a checkpoint."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("params", "resume_from")}
        return {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}


def job_from_checkpoint(meta: dict, params: Params) -> TrainJob:
    """The job a checkpoint was made by, with `params` (the stored ones, possibly overridden)."""
    job = meta["job"]
    path = lambda key: Path(job[key]) if job.get(key) else None
    return TrainJob.for_stage(job["stage"], params, path("patches"), path("model_out"), path("checkpoint_dir"),
                              live=path("live"), init_from=path("init_from"), name=job["name"])


def train(job: TrainJob, log: Callable[[dict], None] = lambda row: None, must_resume: bool = False) -> dict:
    """Train, calling `log(row)` once per epoch (also for epochs replayed from a checkpoint)."""
    p = job.params
    seed_everything(p.seed)
    ranks, device, started = distributed.start(resolve_device(p.train.device))
    try:
        with interrupts.deferred() as honour_ctrl_c:
            return _train(job, log, must_resume, ranks, device, honour_ctrl_c)
    finally:
        distributed.stop(started)


def _train(job: TrainJob, log, must_resume: bool, ranks: distributed.Ranks, device: torch.device, honour_ctrl_c) -> dict:
    p = job.params
    # NHWC speeds cuDNN up; on CPU it slows the backward pass, so CPU keeps the default layout
    layout = CHANNELS_LAST if device.type == "cuda" else torch.contiguous_format
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch sizes: autotuning pays off after one step
    autocast = autocast_for(p.train.precision, device)
    if p.train.batch_size % ranks.world:
        raise SrlabError(f"train.batch_size: {p.train.batch_size} does not split evenly over {ranks.world} processes")

    # data: uint8 pairs, memory-mapped, on the device when they fit, converted per batch
    train_set = PatchStore(store.open_pairs(job.patches, "train"), device)
    val_set = PatchStore(store.open_pairs(job.patches, "val"), device)
    per_epoch = min(p.train.epoch_samples or len(train_set), len(train_set))
    if p.train.batch_size > per_epoch:
        raise SrlabError(f"train.batch_size: {p.train.batch_size} is more than the {per_epoch} training pairs per epoch")
    crop = p.train.crop_size
    if crop > train_set.patch_size:
        raise SrlabError(f"train.crop_size: {crop} is larger than the {train_set.patch_size} px patches in {job.patches}")
    # curves are scored on fixed, evenly spaced samples (all of val when it is small), and the
    # train sample is scored like val, so the two curves compare
    val_probe = val_set.spread(max(1, SCORED_PIXELS // val_set.patch_size ** 2))
    train_probe = train_set.spread(len(val_probe[0]))

    model = build_model(p.model, p.data.scale).to(device, memory_format=layout)
    if job.init_from is not None:
        fresh = checkpoint.initialise_from(model, job.init_from, p.model.name, p.data.scale)
        if fresh and ranks.main:
            print(f"{job.name}: started from {job.init_from}; {len(fresh)} tensors made for another scale start fresh "
                  f"({', '.join(fresh[:4])}{', ...' if len(fresh) > 4 else ''})")
    perceptual = build_perceptual(p.loss.vgg_init, p.seed, p.loss.vgg_layers).to(device, memory_format=layout)
    adversarial = job.weights.get("adversarial", 0) > 0
    discriminator = build_discriminator(p.model.discriminator, p.trained_size()).to(device, memory_format=layout) if adversarial else None
    objective = SRLoss(build_terms(p.loss, job.weights, p.seed, perceptual, discriminator), job.weights).to(device)
    scored = {"train": _Scored(train_probe, perceptual, layout), "val": _Scored(val_probe, perceptual, layout)}
    average = WeightAverage(model, p.train.ema_decay) if p.train.ema_decay > 0 else None
    evaluated = average.model if average else model  # what is validated, kept as best and written as the model file
    net = DistributedDataParallel(model) if ranks.world > 1 else model  # averages gradients across ranks
    net = torch.compile(net) if p.train.compile else net
    optimizer = torch.optim.Adam(model.parameters(), lr=p.train.lr)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=p.train.discriminator_lr or p.train.lr) if adversarial else None
    d_rate = (p.train.discriminator_lr or p.train.lr) / p.train.lr  # the discriminator follows the same schedule, scaled
    generator = torch.Generator().manual_seed(p.seed)

    # resume from a checkpoint made by exactly this job on exactly this data (more epochs are fine
    # while the rate is constant: see _fingerprint); `srlab resume` may also change train.* params
    fingerprint, lineage = _fingerprint(job), _fingerprint(job, training=False)
    last_path = job.checkpoint_dir / "last.pt"
    state_path = job.resume_from or last_path
    if ranks.main:  # a run killed inside a save left its temporary file: this run owns the folder now
        remove_stale_temporaries(job.checkpoint_dir)
    start_epoch, history, best, overrides = 0, [], {"psnr": -math.inf, "ssim": -math.inf}, []
    state = checkpoint.load(state_path) if state_path.exists() else None
    exact = state is not None and state["meta"].get("fingerprint") == fingerprint
    changed = must_resume and state is not None and not exact and state["meta"].get("lineage") == lineage
    if (exact or changed) and state["meta"]["epoch"] <= job.epochs:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if adversarial:
            discriminator.load_state_dict(state["discriminator"])
            optimizer_d.load_state_dict(state["optimizer_d"])
        if average:
            average.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, history, best = state["meta"]["epoch"], state["meta"]["history"], state["meta"]["best"]
        overrides = state["meta"].get("overrides", [])
        if ranks.main:
            print(f"{job.name}: resuming from {state_path} after epoch {start_epoch}")
        if changed:
            difference = train_difference(state["meta"]["params"]["train"], dataclasses.asdict(p.train))
            overrides = [*overrides, {"epoch": start_epoch, "train": difference}]
            if ranks.main:
                print(f"{job.name}: " + ", ".join(f"train.{k} {a} -> {b}" for k, (a, b) in difference.items())
                      + ": from here this run differs from an uninterrupted one (recorded in its checkpoints)")
    elif must_resume:
        why = ("it does not exist" if state is None else f"it has {state['meta']['epoch']} epochs, more than {job.epochs}"
               if state["meta"].get("lineage") == lineage else "it was made by other model, data or loss params, code or data")
        raise SrlabError(f"{state_path}: cannot resume from it: {why}")

    log = log if ranks.main else (lambda row: None)
    for row in history:  # DVC cleared the outs before this run: replay the curves we keep
        log(row)
    steps = per_epoch // p.train.batch_size
    share = slice(ranks.rank, None, ranks.world)
    bar = tqdm(range(start_epoch, job.epochs), desc=job.name, unit="epoch", initial=start_epoch, total=job.epochs,
               disable=None if ranks.main else True)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_set), generator=generator)[:per_epoch]
        # every rank draws the whole batch, its flips and crops (same generator), then takes its share,
        # so N processes see exactly the batches one process would
        batches = [order[step * p.train.batch_size : (step + 1) * p.train.batch_size] for step in range(steps)]
        running = {name: torch.zeros((), device=device) for name in ["loss", *(f"l_{t}" for t in objective.terms)]}
        if adversarial:
            running["discriminator"] = torch.zeros((), device=device)
        first_bad = torch.full((), -1, device=device)  # step of the first non-finite loss, read once per epoch
        for step, pair in enumerate(train_set.batches([idx[share] for idx in batches])):
            honour_ctrl_c()  # between steps, where no lock is held (srlab.interrupts)
            flips = draw_flips(p.train.batch_size, generator)[:, share]
            corners = draw_corners(p.train.batch_size, train_set.patch_size, crop, p.data.scale, generator)[:, share] if crop else None
            remake = None
            if p.train.rotate_degrees:
                angles, kernels = draw_rotations(p, generator)
                remake = rotation(p, angles[share], kernels[share])
            lr, hr = augment(*pair, flips, corners, crop, p.data.scale, layout, remake)
            rate = learning_rate(p.train, epoch * steps + step, job.epochs * steps)
            for group in optimizer.param_groups:
                group["lr"] = rate
            for group in optimizer_d.param_groups if adversarial else ():
                group["lr"] = rate * d_rate
            sr, loss, terms = optimisation_step(net, objective, optimizer, autocast, lr, hr)
            if average:
                average.update(model)
            if adversarial:  # then the discriminator learns to tell this batch's outputs from HR
                optimizer_d.zero_grad(set_to_none=True)
                with autocast:
                    d_loss = discriminator_loss(discriminator, hr, sr.float())
                d_loss.backward()
                ranks.average_gradients(discriminator)  # under torchrun; the generator's are averaged by DDP
                optimizer_d.step()
                running["discriminator"] += d_loss.detach()
            for name, value in [("loss", loss), *terms.items()]:
                running[name] += value.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
        running = ranks.mean(running)  # the one read-back of the epoch
        row = {"epoch": epoch + 1, **{f"train/{'' if k in ('loss', 'discriminator') else 'objective_'}{k}": float(v) / steps
                                      for k, v in running.items()}}  # train/discriminator: its own loss, SRGAN only
        if not math.isfinite(row["train/loss"]):
            at = epoch * steps + int(first_bad) + 1
            raise SrlabError(f"{job.name}: loss became non-finite at step {at} (epoch {epoch + 1}); "
                             f"last good checkpoint kept at {last_path}")
        if p.train.lr_schedule != "constant" or p.train.warmup_steps:  # a curve worth plotting only when it moves
            row["train/lr"] = rate
        honour_ctrl_c()
        if not ranks.main:
            continue  # rank 0 scores, logs and checkpoints; the others go on to the next epoch
        for split, patches in scored.items():
            row.update({f"{split}/{k}": v for k, v in patches.score(evaluated).items()})
        history.append(row)
        log(row)
        bar.set_postfix(loss=f"{row['train/loss']:.4g}", val_psnr=f"{row['val/psnr']:.2f}")
        for metric, filename in BEST.items():  # best-so-far on val, before last.pt so a crash keeps them consistent
            if row[f"val/{metric}"] > best[metric]:
                best[metric] = row[f"val/{metric}"]
                checkpoint.save(job.checkpoint_dir / filename, {
                    "model": evaluated.state_dict(), **({"discriminator": discriminator.state_dict()} if adversarial else {}),
                    "meta": {**_model_meta(job, evaluated, device), "epoch": epoch + 1, f"val_{metric}": best[metric]}})
        full_state = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            **({"discriminator": discriminator.state_dict(), "optimizer_d": optimizer_d.state_dict()} if adversarial else {}),
            **({"ema": average.state_dict()} if average else {}),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "meta": {"fingerprint": fingerprint, "lineage": lineage, "epoch": epoch + 1, "history": history, "best": best,
                     "overrides": overrides, "job": job.describe(), "params": p.to_dict(), **_arch_meta(p)},
        }
        checkpoint.save(last_path, full_state)
        if p.train.save_every and (epoch + 1) % p.train.save_every == 0:  # the SRCNN note's --save-freq
            checkpoint.save(job.checkpoint_dir / f"epoch_{epoch + 1:04d}.pt", full_state)

    meta = {**_model_meta(job, evaluated, device), "epochs": job.epochs, "best": best, "history": history,
            **({"overrides": overrides} if overrides else {})}
    if ranks.main:
        checkpoint.save_model(job.model_out, {k: v.cpu() for k, v in evaluated.state_dict().items()}, meta)
    return meta


def optimisation_step(net, objective, optimizer, autocast, lr: torch.Tensor, hr: torch.Tensor):
    """Forward, loss, backward, optimiser step: the one step that training and `srlab bench` time."""
    with autocast:
        sr = net(lr)
        loss, terms = objective(sr.float(), hr)  # losses in fp32 whatever the model ran in
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return sr, loss, terms


def learning_rate(train: TrainParams, step: int, total_steps: int) -> float:
    """Step `step`'s rate (0-based): a linear warm-up over train.warmup_steps, then train.lr held
    constant or following a cosine to 0 at `total_steps`. A function of the step alone, so a
    resumed run follows the same schedule exactly."""
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    if train.lr_schedule == "cosine":
        progress = (step - train.warmup_steps) / max(1, total_steps - train.warmup_steps)
        return train.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return train.lr


def uses_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast_for(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast when train.precision asks for it (auto: CUDA with bf16), else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(precision, device))


def train_difference(before: dict, after: dict) -> dict[str, list]:
    """The train.* params a resume changed: {key: (saved, now)}."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def _arch_meta(p: Params) -> dict:
    """What rebuilds the network (checkpoint.load_model reads it from any checkpoint)."""
    return {"arch": p.model.name, "scale": p.data.scale, "upsample": p.model.upsample, "residual": p.model.residual}


def _model_meta(job: TrainJob, model, device) -> dict:
    p = job.params
    return {
        **_arch_meta(p),
        "parameters": count_parameters(model), "loss_weights": {k: w for k, w in job.weights.items() if w > 0},
        "backbone": describe_vgg(p.loss.vgg_init, p.seed), "device": describe_device(device),
        "torch": str(torch.__version__), "srlab": __version__, "params": p.to_dict(),
    }


class _Scored:
    """A fixed set of patches scored every epoch on both loss terms, whatever the training weight,
    so the MSE and perceptual runs share curves. Target features never change: computed once."""

    def __init__(self, pairs, perceptual, layout):
        self.perceptual, self.layout = perceptual, layout
        batch = max(1, SCORING_BATCH_PIXELS // pairs[1].shape[-1] ** 2)
        self.ssim = SSIMLoss().to(pairs[0].device)
        self.batches = []
        with torch.no_grad():
            for i in range(0, len(pairs[0]), batch):
                lr, hr = pairs[0][i : i + batch], as_float(pairs[1][i : i + batch], layout)
                self.batches.append((lr, hr, perceptual.extract(hr)))

    @torch.no_grad()
    def score(self, model) -> dict[str, float]:
        """Mean MSE, perceptual distance, RGB PSNR (of the mean MSE) and SSIM of clamped outputs."""
        model.eval()
        total, count = {"l_mse": 0.0, "l_perceptual": 0.0, "ssim": 0.0}, 0
        for lr, hr, target_features in self.batches:
            out = model(as_float(lr, self.layout)).clamp(0, 1)
            total["l_mse"] += float(torch.nn.functional.mse_loss(out, hr)) * len(lr)
            total["l_perceptual"] += float(self.perceptual.distance(self.perceptual.extract(out), target_features)) * len(lr)
            total["ssim"] += (1 - float(self.ssim(out, hr))) * len(lr)
            count += len(lr)
        model.train()
        means = {k: v / count for k, v in total.items()}
        means["psnr"] = 10 * math.log10(1 / max(means["l_mse"], 1e-12))
        return means


@contextmanager
def curves(live_dir: Path):
    """A `log` callable writing dvclive curves to `live_dir` on the main process; a no-op on other
    torchrun ranks, so N processes write one set of curves."""
    if not distributed.is_main_process():
        yield lambda row: None
        return
    from dvclive import Live

    with Live(str(live_dir), dvcyaml=None, save_dvc_exp=False) as live:
        yield dvclive_logger(live)


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


def _fingerprint(job: TrainJob, training: bool = True) -> str:
    """What a checkpoint must share with this job to be resumed. Not the epoch count when the
    learning rate is constant: a longer run then continues a shorter one exactly. A cosine
    schedule is shaped by the epoch count, so there it counts. With `training` False, none of
    the train.* params: the run's lineage, which `srlab resume` may continue with other ones."""
    params, loss = job.params.to_dict(), job.params.loss
    if not training:
        params.pop("train")
    elif job.params.train.lr_schedule == "constant":
        params["train"] = {k: v for k, v in params["train"].items() if k not in ("epochs", "perceptual_epochs")}
    parts = {
        "params": params, "weights": job.weights, "code": _code_digest(),
        "data": store.digest(job.patches),
        "init": file_md5(job.init_from) if job.init_from else None,
        "backbones": [describe(name, init, job.params.seed) for name, init in  # a weights file's SHA-256, not its name
                      (("vgg16", loss.vgg_init), ("vgg19", loss.vgg19_init), ("resnet18", loss.resnet_init)) if init != "random"],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
