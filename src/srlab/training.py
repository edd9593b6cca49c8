"""The training loop: both pipeline models come from here, train_mse with the pixel terms of the
loss, train_perceptual with all of them (VGG16 perceptual, VGG19 / ResNet content, adversarial),
starting from the MSE model.

`_train` reads top to bottom: it sets up the `Loop` (data, network, objective, precision), the
`RunState` (model, optimiser, average, adversary, random generator, history: what last.pt holds)
and the `Checkpoints`, resumes when it may, then per epoch calls `train_one_epoch`, scores the
probes and saves. Batches come from `data.loader` and are augmented by `data.augment` on the
training device; losses are read back once per epoch, not per step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from srlab import __version__, checkpoint, distributed, interrupts
from srlab.backbones import describe, describe_vgg, used_by
from srlab.data import store
from srlab.data.augment import augment, draw_corners, draw_flips, draw_rotations, rotation
from srlab.data.loader import BatchLoader, as_float
from srlab.device import autocast, describe_device, memory_format, resolve_device, seed_everything
from srlab.ema import WeightAverage
from srlab.errors import SrlabError
from srlab.fileio import file_md5, remove_stale_temporaries
from srlab.losses import SRLoss, build_terms, build_vgg16_loss
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
    new_code: bool = False  # `srlab resume --new-code`: continue although srlab's code changed (recorded)

    @classmethod
    def for_stage(
        cls,
        stage: str,
        params: Params,
        patches: Path,
        model_out: Path,
        checkpoint_dir: Path,
        live: Path | None = None,
        init_from: Path | None = None,
        name: str | None = None,
    ) -> TrainJob:
        """A pipeline stage's job. `mse`: train.epochs on the pixel terms of the loss, from scratch
        or, given `init_from`, from that model (of any scale). `perceptual`: train.perceptual_epochs
        on every term, starting from `init_from` unless train.perceptual_init is scratch."""
        if stage == "mse":
            weights, epochs = params.loss.pixel_weights(), params.train.epochs
        elif stage == "perceptual":
            weights, epochs = params.loss.second_stage_weights(), params.train.perceptual_epochs
            init_from = init_from if params.train.perceptual_init == "mse" else None
        else:
            raise ValueError(f"unknown training stage {stage!r}")
        return cls(
            name=name or f"{params.model.name}_{stage}",
            params=params,
            weights=weights,
            epochs=epochs,
            patches=patches,
            model_out=model_out,
            checkpoint_dir=checkpoint_dir,
            init_from=init_from,
            stage=stage,
            live=live,
        )

    def describe(self) -> dict:
        """Everything `srlab resume` needs to rebuild this job from a checkpoint."""
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("params", "resume_from", "new_code")
        }
        return {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}


def job_from_checkpoint(meta: dict, params: Params) -> TrainJob:
    """The job a checkpoint was made by, with `params` (the stored ones, possibly overridden)."""
    job = meta["job"]
    path = lambda key: Path(job[key]) if job.get(key) else None
    return TrainJob.for_stage(
        job["stage"],
        params,
        path("patches"),
        path("model_out"),
        path("checkpoint_dir"),
        live=path("live"),
        init_from=path("init_from"),
        name=job["name"],
    )


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


def _initial_model(job: TrainJob, main: bool) -> torch.nn.Module:
    """The network as training starts it: fresh, or from `job.init_from` (another stage's model)."""
    model = build_model(job.params.model, job.params.data.scale)
    if job.init_from is not None:
        fresh = checkpoint.initialise_from(model, job.init_from, job.params.model.name, job.params.data.scale)
        if fresh and main:
            print(
                f"{job.name}: started from {job.init_from}; {len(fresh)} tensors made for another scale start fresh "
                f"({', '.join(fresh[:4])}{', ...' if len(fresh) > 4 else ''})"
            )
    return model


def _train(
    job: TrainJob, log, must_resume: bool, ranks: distributed.Ranks, device: torch.device, honour_ctrl_c
) -> dict:
    p = job.params
    loop = Loop.build(job, ranks, device)
    model = _initial_model(job, ranks.main).to(device, memory_format=loop.layout)
    vgg16 = build_vgg16_loss(p.loss.vgg_init, p.seed, p.loss.vgg_layers).to(device, memory_format=loop.layout)
    adversary = Adversary.build(p, device, loop.layout) if job.weights.get("adversarial", 0) > 0 else None
    loop.objective = SRLoss(
        build_terms(p.loss, job.weights, p.seed, vgg16, adversary and adversary.net), job.weights
    ).to(device)
    probes = loop.probes(vgg16)
    run = RunState.start(model, p, adversary)
    loop.net = DistributedDataParallel(model) if ranks.world > 1 else model  # averages gradients across ranks
    loop.net = torch.compile(loop.net) if p.train.compile else loop.net
    checkpoints = Checkpoints(job, ranks.main)
    checkpoints.resume(run, must_resume, ranks.main)

    log = log if ranks.main else (lambda row: None)
    for row in run.history:  # DVC cleared the outs before this run: replay the curves we keep
        log(row)
    bar = tqdm(
        range(run.epoch, job.epochs),
        desc=job.name,
        unit="epoch",
        initial=run.epoch,
        total=job.epochs,
        disable=None if ranks.main else True,
    )
    for epoch in bar:
        row = train_one_epoch(run, loop, epoch, job.epochs, honour_ctrl_c)
        if not math.isfinite(row["train/loss"]):
            raise SrlabError(
                f"{job.name}: loss became non-finite at step {row['first_bad_step']} (epoch {epoch + 1}); "
                f"last good checkpoint kept at {checkpoints.last}"
            )
        honour_ctrl_c()
        if not ranks.main:
            continue  # rank 0 scores, logs and checkpoints; the others go on to the next epoch
        for split, probe in probes.items():
            row.update({f"{split}/{k}": v for k, v in probe.score(run.evaluated).items()})
        run.epoch = epoch + 1
        run.history.append(row)
        log(row)
        bar.set_postfix(loss=f"{row['train/loss']:.4g}", val_psnr=f"{row['val/psnr']:.2f}")
        checkpoints.save(run, row, device)

    meta = {
        **_model_meta(job, run.evaluated, device),
        "epochs": job.epochs,
        "best": run.best,
        "history": run.history,
        **({"overrides": run.overrides} if run.overrides else {}),
    }
    if ranks.main:
        checkpoint.save_model(job.model_out, {k: v.cpu() for k, v in run.evaluated.state_dict().items()}, meta)
    return meta


@dataclass
class Loop:
    """What every step of a run uses and never changes: the data, the network as it is stepped
    (wrapped for torchrun, compiled), the objective, the precision, the memory layout."""

    params: Params
    ranks: distributed.Ranks
    device: torch.device
    layout: torch.memory_format
    autocast: torch.autocast
    train_set: BatchLoader
    val_set: BatchLoader
    per_epoch: int  # pairs drawn each epoch
    net: torch.nn.Module | None = None
    objective: SRLoss | None = None

    @classmethod
    def build(cls, job: TrainJob, ranks: distributed.Ranks, device: torch.device) -> Loop:
        p = job.params
        layout = memory_format(p.train.memory_format, p.train.precision, device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch sizes: autotuning pays off after one step
        if p.train.batch_size % ranks.world:
            raise SrlabError(
                f"train.batch_size: {p.train.batch_size} does not split evenly over {ranks.world} processes"
            )
        # data: uint8 pairs, memory-mapped, on the device when they fit, converted per batch
        train_set = BatchLoader(store.open_pairs(job.patches, "train"), device)
        val_set = BatchLoader(store.open_pairs(job.patches, "val"), device)
        per_epoch = min(p.train.epoch_samples or len(train_set), len(train_set))
        if p.train.batch_size > per_epoch:
            raise SrlabError(
                f"train.batch_size: {p.train.batch_size} is more than the {per_epoch} training pairs per epoch"
            )
        if p.train.crop_size > train_set.patch_size:
            raise SrlabError(
                f"train.crop_size: {p.train.crop_size} is larger than the {train_set.patch_size} px patches "
                f"in {job.patches}"
            )
        return cls(p, ranks, device, layout, autocast(p.train.precision, device), train_set, val_set, per_epoch)

    @property
    def steps(self) -> int:  # per epoch
        return self.per_epoch // self.params.train.batch_size

    def probes(self, vgg16) -> dict[str, _Scored]:
        """The fixed samples the curves are scored on: evenly spaced (all of val when it is small, or
        when it is the val photos' centre crops), and as many train pairs, scored like val, so the
        two curves compare."""
        whole = len(self.val_set) if self.params.data.val_crop else SCORED_PIXELS // self.val_set.patch_size**2
        val = self.val_set.spread(max(1, whole))
        train = self.train_set.spread(len(val[0]))
        return {"train": _Scored(train, vgg16, self.layout), "val": _Scored(val, vgg16, self.layout)}


def train_one_epoch(run: RunState, loop: Loop, epoch: int, epochs: int, honour_ctrl_c) -> dict:
    """One pass over `loop.per_epoch` pairs in a new random order; the epoch's mean losses."""
    p, ranks, batch = loop.params, loop.ranks, loop.params.train.batch_size
    run.model.train()
    order = torch.randperm(len(loop.train_set), generator=run.generator)[: loop.per_epoch]
    # every rank draws the whole batch, its flips and crops (same generator), then takes its share,
    # so N processes see exactly the batches one process would
    share = slice(ranks.rank, None, ranks.world)
    batches = [order[step * batch : (step + 1) * batch][share] for step in range(loop.steps)]
    running = {
        name: torch.zeros((), device=loop.device) for name in ["loss", *(f"l_{t}" for t in loop.objective.terms)]
    }
    if run.adversary:
        running["discriminator"] = torch.zeros((), device=loop.device)
    first_bad = torch.full((), -1, device=loop.device)  # step of the first non-finite loss, read once per epoch
    for step, pair in enumerate(loop.train_set.batches(batches)):
        honour_ctrl_c()  # between steps, where no lock is held (srlab.interrupts)
        lr, hr = augmented(pair, p, run.generator, loop.train_set.patch_size, share, loop.layout)
        rate = learning_rate(p.train, epoch * loop.steps + step, epochs * loop.steps)
        for group in run.optimizer.param_groups:
            group["lr"] = rate
        sr, loss, terms = optimisation_step(loop.net, loop.objective, run.optimizer, loop.autocast, lr, hr)
        if run.average:
            run.average.update(run.model)
        if run.adversary:  # then the discriminator learns to tell this batch's outputs from HR
            running["discriminator"] += run.adversary.step(hr, sr, rate, loop.autocast, ranks)
        for name, value in [("loss", loss), *terms.items()]:
            running[name] += value.detach()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
    running = ranks.mean(running)  # the one read-back of the epoch
    row = {
        "epoch": epoch + 1,
        **{
            f"train/{'' if k in ('loss', 'discriminator') else 'objective_'}{k}": float(v) / loop.steps
            for k, v in running.items()
        },
    }  # train/discriminator: its own loss, SRGAN only
    if not math.isfinite(row["train/loss"]):
        row["first_bad_step"] = epoch * loop.steps + int(first_bad) + 1
    if p.train.lr_schedule != "constant" or p.train.warmup_steps:  # a curve worth plotting only when it moves
        row["train/lr"] = rate
    return row


def augmented(
    pair: list[torch.Tensor], p: Params, generator: torch.Generator, patch_size: int, share: slice, layout
) -> list[torch.Tensor]:
    """This rank's share of a uint8 batch as the model trains on it: flipped, cropped and rotated
    as drawn from `generator` (for the whole batch, so every rank draws alike)."""
    batch, crop = p.train.batch_size, p.train.crop_size
    flips = draw_flips(batch, generator, p.train.flips)[:, share]
    corners = draw_corners(batch, patch_size, crop, p.data.scale, generator)[:, share] if crop else None
    remake = None
    if p.train.rotate_degrees:
        angles, kernels = draw_rotations(p, generator)
        remake = rotation(p, angles[share], kernels[share])
    return augment(*pair, flips, corners, crop, p.data.scale, layout, remake)


@dataclass
class Adversary:
    """SRGAN's discriminator and its optimiser: after each generator step it learns to tell that
    batch's outputs from the HR images. A run without an adversarial loss term has none."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    rate: float  # its learning rate over the generator's: it follows the same schedule, scaled

    @classmethod
    def build(cls, p: Params, device: torch.device, layout) -> Adversary:
        net = build_discriminator(p.model.discriminator, p.trained_size()).to(device, memory_format=layout)
        lr = p.train.discriminator_lr or p.train.lr
        return cls(net, torch.optim.Adam(net.parameters(), lr=lr), lr / p.train.lr)

    def step(self, hr: torch.Tensor, sr: torch.Tensor, rate: float, autocast, ranks: distributed.Ranks) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = rate * self.rate
        self.optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = discriminator_loss(self.net, hr, sr.float())
        loss.backward()
        ranks.average_gradients(self.net)  # under torchrun; the generator's are averaged by DDP
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict:
        return {"discriminator": self.net.state_dict(), "optimizer_d": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer_d"])


@dataclass
class RunState:
    """Everything a run carries from one epoch to the next. last.pt holds it whole, written by
    `state_dict` and read back by `load_state_dict`, so that save and resume cannot drift apart."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    average: WeightAverage | None  # train.ema_decay > 0
    adversary: Adversary | None  # an adversarial loss term
    generator: torch.Generator  # every random draw of training: batch order, flips, crops, rotations
    epoch: int = 0  # epochs done
    history: list = dataclasses.field(default_factory=list)  # a row per epoch: the curves
    best: dict = dataclasses.field(default_factory=lambda: {"psnr": -math.inf, "ssim": -math.inf})  # on val
    overrides: list = dataclasses.field(default_factory=list)  # train.* and code changes `srlab resume` made

    @classmethod
    def start(cls, model: torch.nn.Module, p: Params, adversary: Adversary | None) -> RunState:
        average = WeightAverage(model, p.train.ema_decay) if p.train.ema_decay > 0 else None
        return cls(
            model,
            torch.optim.Adam(model.parameters(), lr=p.train.lr),
            average,
            adversary,
            torch.Generator().manual_seed(p.seed),
        )

    @property
    def evaluated(self) -> torch.nn.Module:
        """What is validated, kept as best and written as the model file: the average, if any."""
        return self.average.model if self.average else self.model

    def state_dict(self, meta: dict) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **(self.adversary.state_dict() if self.adversary else {}),
            **({"ema": self.average.state_dict()} if self.average else {}),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "meta": {
                "epoch": self.epoch,
                "history": self.history,
                "best": self.best,
                "overrides": self.overrides,
                **meta,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.adversary:
            self.adversary.load_state_dict(state)
        if self.average:
            self.average.load_state_dict(state["ema"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        meta = state["meta"]
        self.epoch, self.history, self.best = meta["epoch"], meta["history"], meta["best"]
        self.overrides = meta.get("overrides", [])


class Checkpoints:
    """A run's checkpoint folder: last.pt (the whole run state, to resume from), best_psnr.pt and
    best_ssim.pt (the evaluated weights at their best val score), and epoch_<N>.pt every
    train.save_every epochs."""

    def __init__(self, job: TrainJob, main: bool):
        self.job, self.last = job, job.checkpoint_dir / "last.pt"
        self.fingerprint, self.lineage = _fingerprint(job), _fingerprint(job, training=False)
        self.code = code_files()
        if main:  # a run killed inside a save left its temporary file: this run owns the folder now
            remove_stale_temporaries(job.checkpoint_dir)

    def resume(self, run: RunState, must_resume: bool, main: bool) -> None:
        """Continue from a checkpoint made by exactly this job on exactly this data and code (more
        epochs are fine while the rate is constant: see _fingerprint). `srlab resume` may also change
        train.* params and, with --new-code, continue under changed code; both are recorded."""
        job, path = self.job, self.job.resume_from or self.last
        state = checkpoint.load(path) if path.exists() else None
        meta = state["meta"] if state is not None else {}
        code = changed_files(meta["code"], self.code) if "code" in meta else []
        refusal = self._refusal(path, meta, state is not None, code, must_resume)
        if refusal:
            if must_resume:
                raise SrlabError(f"{path}: cannot resume from it: {refusal}")
            return
        run.load_state_dict(state)
        if main:
            print(f"{job.name}: resuming from {path} after epoch {run.epoch}")
        changes = {
            "train": train_difference(meta["params"]["train"], dataclasses.asdict(job.params.train)),
            "code": code,
        }
        changes = {kind: change for kind, change in changes.items() if change}
        if changes:
            run.overrides = [*run.overrides, {"epoch": run.epoch, **changes}]
            if main:
                print(
                    f"{job.name}: {_describe_changes(changes)}: from here this run differs from an uninterrupted one "
                    "(recorded in its checkpoints)"
                )

    def _refusal(self, path: Path, meta: dict, exists: bool, code: list[str], must_resume: bool) -> str | None:
        """Why the checkpoint at `path` (its meta, the srlab files changed since) cannot be continued
        by this job; None when it can. The pipeline continues only the very same job; `srlab resume`
        also one with other train.* params."""
        if not exists:
            return "it does not exist"
        if meta.get("lineage") != self.lineage:
            return "it was made by other model, data or loss params, or other data"
        if meta["epoch"] > self.job.epochs:
            return f"it has {meta['epoch']} epochs, more than {self.job.epochs}"
        if code and not self.job.new_code:
            return (
                f"srlab's code changed since it was saved ({', '.join(code)}); to continue with this code "
                f"anyway: srlab resume {path} --new-code (recorded in the run)"
            )
        if not must_resume and (code or meta["fingerprint"] != self.fingerprint):
            return "it was made by another job"
        return None

    def save(self, run: RunState, row: dict, device: torch.device) -> None:
        """After an epoch: the best-so-far on val first, then last.pt, so a crash keeps them consistent."""
        job = self.job
        for metric, filename in BEST.items():
            if row[f"val/{metric}"] > run.best[metric]:
                run.best[metric] = row[f"val/{metric}"]
                checkpoint.save(
                    job.checkpoint_dir / filename,
                    {
                        "model": run.evaluated.state_dict(),
                        **({"discriminator": run.adversary.net.state_dict()} if run.adversary else {}),
                        "meta": {
                            **_model_meta(job, run.evaluated, device),
                            "epoch": run.epoch,
                            f"val_{metric}": run.best[metric],
                        },
                    },
                )
        state = run.state_dict(
            {
                "fingerprint": self.fingerprint,
                "lineage": self.lineage,
                "code": self.code,
                "job": job.describe(),
                "params": job.params.to_dict(),
                **_arch_meta(job.params),
            }
        )
        checkpoint.save(self.last, state)
        if job.params.train.save_every and run.epoch % job.params.train.save_every == 0:  # the SRCNN note's --save-freq
            checkpoint.save(job.checkpoint_dir / f"epoch_{run.epoch:04d}.pt", state)


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


def train_difference(before: dict, after: dict) -> dict[str, list]:
    """The train.* params a resume changed: {key: (saved, now)}."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The modules of srlab edited, added or removed between two `code_files()`."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def _describe_changes(changes: dict) -> str:
    train = [f"train.{k} {a} -> {b}" for k, (a, b) in changes.get("train", {}).items()]
    code = [f"code: {', '.join(changes['code'])}"] if "code" in changes else []
    return ", ".join(train + code)


def _arch_meta(p: Params) -> dict:
    """What rebuilds the network (checkpoint.load_model reads it from any checkpoint)."""
    return {"arch": p.model.name, "scale": p.data.scale, "upsample": p.model.upsample, "residual": p.model.residual}


def _model_meta(job: TrainJob, model, device) -> dict:
    p = job.params
    return {
        **_arch_meta(p),
        "parameters": count_parameters(model),
        "loss_weights": {k: w for k, w in job.weights.items() if w > 0},
        "backbone": describe_vgg(p.loss.vgg_init, p.seed),
        "device": describe_device(device),
        "torch": str(torch.__version__),
        "srlab": __version__,
        "params": p.to_dict(),
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
            total["l_perceptual"] += float(
                self.perceptual.distance(self.perceptual.extract(out), target_features)
            ) * len(lr)
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


def code_files(package: Path = Path(__file__).parent) -> dict[str, str]:
    """srlab's own source, module by module (SHA-256): a checkpoint made by other code is not resumed
    unless asked, and then the changed modules are named and recorded."""
    return {
        path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(package.rglob("*.py"))
    }


def _fingerprint(job: TrainJob, training: bool = True) -> str:
    """What a checkpoint must share with this job to be resumed, besides the code (`code_files`).
    Not the epoch count when the learning rate is constant: a longer run then continues a shorter
    one exactly. A cosine schedule is shaped by the epoch count, so there it counts. With `training`
    False, none of the train.* params: the run's lineage, which `srlab resume` may continue with
    other ones."""
    params = job.params.to_dict()
    if not training:
        params.pop("train")
    elif job.params.train.lr_schedule == "constant":
        params["train"] = {k: v for k, v in params["train"].items() if k not in ("epochs", "perceptual_epochs")}
    parts = {
        "params": params,
        "weights": job.weights,
        "data": store.digest(job.patches),
        "init": file_md5(job.init_from) if job.init_from else None,
        "backbones": [
            describe(name, init, job.params.seed)  # a weights file's SHA-256, not its name
            for name, _, init in used_by(job.params.loss)
            if init != "random"
        ],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
