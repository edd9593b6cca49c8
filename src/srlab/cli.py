"""The `srlab` command: helpers around the DVC pipeline (`srlab --help`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from srlab.entry import run
from srlab.errors import SrlabError
from srlab.params import DEGRADATIONS, PRECISIONS, TEST_SETS


def check_metrics(args) -> None:
    from srlab.gate import check, moves, read_metrics, reference_metrics, tolerances

    metrics = read_metrics(args.metrics)
    lines, failures = check(metrics, args.set, args.min_gain)
    if args.against:
        more_lines, more_failures = moves(
            metrics, reference_metrics(args.against, args.metrics), tolerances(args.tolerance)
        )
        lines, failures = lines + more_lines, failures + more_failures
    print("\n".join(lines))
    if failures:
        raise SrlabError("; ".join(failures))
    print("check-metrics: passed")


def check_lock(args) -> None:
    import yaml

    from srlab.gate import committed_text, lock_drift

    def parse(text: str, where: str) -> dict:
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise SrlabError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None

    if not args.lock.is_file():
        raise SrlabError(f"{args.lock}: no such file (run `dvc repro` first)")
    lock = parse(args.lock.read_text(), str(args.lock))
    reference = (
        Path(args.against).read_text() if Path(args.against).is_file() else committed_text(args.against, args.lock)
    )
    failures = lock_drift(lock, parse(reference, f"{args.against}:{args.lock}"))
    if failures:
        raise SrlabError(
            f"{args.lock} differs from {args.against}'s in what made the outputs: "
            + "; ".join(failures)
            + "; the committed metrics are not this code's: run `dvc repro` and commit dvc.lock and reports/"
        )
    print(f"check-lock: every stage's command, params and code are those of {args.against}'s {args.lock}")


def export(args) -> None:
    from srlab.export import CHECK_SHAPE, export_onnx

    meta, difference = export_onnx(args.model, args.onnx, args.opset)
    print(
        f"{args.model} -> {args.onnx}: {meta['arch']} x{meta['scale']}, ONNX opset {args.opset}, "
        "dynamic height and width"
    )
    if difference is None:
        print("export: not checked: onnxruntime is not installed (pip install onnxruntime)")
        return
    size = f"{CHECK_SHAPE[2]}x{CHECK_SHAPE[3]}"
    print(f"export: onnxruntime matches PyTorch on a {size} input to {difference:.1e} (max absolute difference)")


def download_test_sets(args) -> None:
    from srlab.data.sources import fill_mirror

    for folder in fill_mirror(args.folder, args.sets):
        print(f"{folder}: {sum(1 for _ in folder.iterdir())} images")
    print(
        f"download-test-sets: the pipeline reads {args.folder} when data.mirror names it "
        "(data/mirror by default; or -S data.mirror=DIR)"
    )


def inspect(args) -> None:
    from srlab import checkpoint
    from srlab.models import build_model
    from srlab.params import ModelParams

    meta = checkpoint.architecture(checkpoint.load(args.checkpoint)["meta"])
    for key in (
        "arch",
        "scale",
        "upsample",
        "residual",
        "parameters",
        "epoch",
        "epochs",
        "loss_weights",
        "best",
        "overrides",
        "backbone",
        "device",
        "torch",
        "srlab",
    ):
        if key in meta:
            print(f"{key:>12}: {meta[key]}")
    if meta.get("history"):
        last = meta["history"][-1]
        print(f"{'last epoch':>12}: " + ", ".join(f"{k} {v:.6g}" for k, v in last.items() if k != "epoch"))
    if meta.get("params"):
        print("hyperparameters:")
        for section in ("data", "model", "train", "loss"):
            values = meta["params"].get(section, {})
            print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if meta.get("arch"):
        print("architecture:")
        print(
            build_model(
                ModelParams(
                    name=meta["arch"], upsample=meta.get("upsample", "bicubic"), residual=meta.get("residual", True)
                ),
                meta["scale"],
            )
        )


def evaluate_command(args) -> None:
    """Score one model file, training checkpoint or run folder as the evaluate stage would."""
    import tempfile

    from srlab.checkpoint import architecture, load
    from srlab.data.sources import test_set_dir
    from srlab.evaluation import evaluate
    from srlab.params import parse_params
    from srlab.published import describe, load_published

    path = _model_in(args.model)
    models, published = {path.stem: path}, {}
    try:
        meta = architecture(load(path)["meta"])
    except SrlabError as not_ours:  # a published checkpoint, read by spandrel
        try:
            meta = load_published(path)[1]
        except SrlabError as not_theirs:
            raise SrlabError(f"{not_ours}; nor a published checkpoint: {str(not_theirs).split(': ', 1)[1]}") from None
        models, published = {}, {path.stem: path}
    if args.scale is not None and meta.get("scale") != args.scale:
        raise SrlabError(f"{path}: trained for x{meta.get('scale')}, not x{args.scale} (--scale)")
    p = parse_params(
        {
            "data": {"scale": meta["scale"]},
            "model": {"name": meta["arch"] if models else "srcnn"},  # srlab's own arch, where it is one
            "eval": {"sets": args.sets, "degradation": args.degradation, "precision": args.precision},
            "train": {"device": args.device},
        }
    )
    mirror = Path(p.data.mirror)  # as the download stage looks: data/mirror, $SRLAB_DATA_MIRROR, the network
    with tempfile.TemporaryDirectory(prefix="srlab-evaluate-") as tmp:
        sets = Path(tmp) / "sets"  # evaluate reads <root>/<set>: link each set's folder there
        sets.mkdir()
        for name in args.sets:
            found = test_set_dir(name, Path("data/downloads"), mirror if mirror.is_dir() else None)
            (sets / name).symlink_to(found.resolve(), target_is_directory=True)
        summary, _ = evaluate(p, sets, models, args.out or Path(tmp) / "sr", published)
    print(f"{'set':<10}{'method':<16}{'Y-PSNR':>8}{'Y-SSIM':>9}{'VGG distance':>14}")
    for name in args.sets:
        for method, s in summary[name].items():
            print(f"{name:<10}{method:<16}{s['psnr']:8.2f}{s['ssim']:9.4f}{s['perceptual']:14.6f}")
    about = summary["provenance"]
    print(f"x{about['scale']}, {about['metric']}; LR inputs {about['degradation']}; {about['perceptual_backbone']}")
    for name, made in about.get("published", {}).items():
        print(f"{name}: {describe(made)}")


def _model_in(path: Path) -> Path:
    """A model file or checkpoint as given; for a run folder (`srlab train --out`), its model file,
    else its last checkpoint."""
    if path.is_dir():
        for candidate in (path / "model.safetensors", path / "model.pt", path / "checkpoints" / "last.pt"):
            if candidate.is_file():
                return candidate
        raise SrlabError(f"{path}: a folder without model.safetensors or checkpoints/last.pt")
    if not path.is_file():
        raise SrlabError(f"{path}: no such file")
    return path


def super_resolve(args) -> None:
    from tqdm import tqdm

    from srlab import checkpoint
    from srlab.data.images import UnusableImage, load_rgb, save_png
    from srlab.device import resolve_device
    from srlab.inference import CHANNELS_LAST, histogram_match, self_ensemble
    from srlab.inference import super_resolve as run_model

    if args.tile < 1 or args.overlap < 0:
        raise SrlabError(f"--tile must be at least 1 and --overlap at least 0 (got {args.tile}, {args.overlap})")
    for path in args.inputs:
        if not path.is_file():
            raise SrlabError(f"{path}: no such file")
    device = resolve_device(args.device)
    model, meta = checkpoint.load_model(args.checkpoint)
    model.to(device, memory_format=CHANNELS_LAST).eval()  # as its inputs are: 1.5x faster in fp32, 3x in bf16 here
    for path in tqdm(args.inputs, desc="super-resolve", unit="img", disable=None):
        try:
            lr, _ = load_rgb(path)
        except UnusableImage as exc:
            raise SrlabError(f"{path}: {exc}") from None
        if args.self_ensemble:
            sr = self_ensemble(model, lr, device, tile=args.tile, overlap=args.overlap, precision=args.precision)
        else:
            sr = run_model(model, lr, device, tile=args.tile, overlap=args.overlap, precision=args.precision)
        if args.histogram_match:
            sr = histogram_match(sr, lr)
        out = (args.out or path.parent) / f"{path.stem}_x{meta['scale']}.png"
        save_png(out, sr)
        print(f"{path} -> {out} ({sr.shape[1]}x{sr.shape[0]})")


def compare_command(args) -> None:
    import json

    from srlab.compare import exp_show, experiments, write_report

    if args.from_json:
        try:
            shown = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            raise SrlabError(f"{args.from_json}: not readable JSON ({exc})") from None
    else:
        shown = exp_show(("--all-commits",) if args.all_commits else ())
    runs = experiments(shown)
    picture, markdown = write_report(runs, args.out, args.x)
    print(markdown.read_text().split("\n![")[0])
    print(f"compare: {len(runs)} experiments -> {picture}, {markdown}")


def page_command(args) -> None:
    from srlab.compare import exp_show, experiments
    from srlab.page import Run, at_revision, workspace, write_page

    shown = {run.name: run for run in experiments(exp_show(("--all-commits",) if args.all_commits else ()))}
    unknown = [name for name in args.exps if name not in shown]
    if unknown:
        raise SrlabError(f"no experiment named {', '.join(unknown)} in `dvc exp show` (there: {', '.join(shown)})")
    runs = []
    for name in args.exps:
        rev = shown[name].rev
        runs.append(Run(name, workspace() if rev == "workspace" else at_revision(rev)))
    page = write_page(runs, args.out, f"srlab: {' vs '.join(args.exps)}")
    print(f"page: {len(runs)} experiments -> {page}")


def recipe_command(args) -> None:
    from srlab.recipes import DEFAULT, apply, load_recipe, names

    if not args.name:
        for name in [DEFAULT, *names(args.recipes)]:
            recipe = load_recipe(name, args.recipes)
            print(f"{name:>12}: {recipe.note}")
        return
    recipe = load_recipe(args.name, args.recipes)
    changes = apply(recipe, args.params)
    print("\n".join(f"  {line}" for line in changes) or "  (params.yaml already holds it)")
    print(f"recipe {recipe.name}: {len(changes)} params written into {args.params} ({recipe.note})")
    if recipe.name != DEFAULT:
        print(
            "run it, then the note's other runs (any -S goes on top):\n"
            + "\n".join(f"  {c}" for c in recipe.run_commands())
        )


def train_command(args) -> None:
    from srlab.data.store import read_index
    from srlab.params import load_params
    from srlab.training import TrainJob

    p = load_params(args.params, args.set + note_flags(args, args.stage))
    read_index(args.patches)  # one line before the run folder is made, when prepare has not run
    if args.stage == "perceptual" and p.train.perceptual_init == "mse" and not args.init:
        raise SrlabError(
            "--init MODEL is needed to fine-tune (e.g. models/mse.safetensors), or --set train.perceptual_init=scratch"
        )
    out = args.out or Path("runs") / f"{p.model.name}_{args.stage}"
    job = TrainJob.for_stage(
        args.stage,
        p,
        args.patches,
        out / "model.safetensors",
        out / "checkpoints",
        live=out / "live",
        init_from=args.init,
    )
    _run_job(job, must_resume=False)


def resume_command(args) -> None:
    from srlab import checkpoint
    from srlab.params import apply_overrides, parse_params
    from srlab.training import job_from_checkpoint

    state = checkpoint.load(args.checkpoint)
    meta = state["meta"]
    if "optimizer" not in state:
        raise SrlabError(
            f"{args.checkpoint}: holds weights only (a model file or best_*.pt); resume needs a run's "
            "last.pt or epoch_<N>.pt, which keep the optimiser"
        )
    if "job" not in meta or "params" not in meta:
        raise SrlabError(f"{args.checkpoint}: made by an srlab without resume support; re-run its training instead")
    overrides = args.set + note_flags(args, meta["job"]["stage"])
    for key in overrides:
        if not key.strip().startswith("train."):
            raise SrlabError(
                f"--set {key}: a resume may change train.* params only; the model, data and loss "
                "make another run: train it with `srlab train`"
            )
    params = parse_params(apply_overrides(meta["params"], overrides), source=f"{args.checkpoint} + --set")
    job = _continued_run(args, job_from_checkpoint(meta, params))
    _run_job(dataclasses.replace(job, resume_from=args.checkpoint, new_code=args.new_code), must_resume=True)


def _continued_run(args, job):
    """Where a resume writes: all into one run, never two. The run recorded in the checkpoint when
    the checkpoint is one of its own, or --out; a copy kept elsewhere needs --out while its run is
    still there, so that continuing it cannot replace that run's model file and checkpoints."""
    if args.out is not None:
        out = args.out
        return dataclasses.replace(
            job, model_out=out / "model.safetensors", checkpoint_dir=out / "checkpoints", live=out / "live"
        )
    own = args.checkpoint.resolve().parent == job.checkpoint_dir.resolve()
    if not own and (job.model_out.exists() or job.checkpoint_dir.exists()):
        raise SrlabError(
            f"{args.checkpoint}: a copy of a checkpoint of the run in {job.checkpoint_dir}; resuming it would "
            f"write into that run and replace {job.model_out}: name a folder for the continued run with --out DIR"
        )
    return job


def note_flags(args, stage: str) -> list[str]:
    """The SRCNN note's flags as --set items: --cuda, --lr, --batch-size, --num-epoch, --save-freq."""
    epochs = "train.epochs" if stage == "mse" else "train.perceptual_epochs"
    flags = {
        "train.device": "cuda" if args.cuda else None,
        "train.lr": args.lr,
        "train.batch_size": args.batch_size,
        epochs: args.num_epoch,
        "train.save_every": args.save_freq,
    }
    return [f"{key}={value}" for key, value in flags.items() if value is not None]


def add_note_flags(parser: argparse.ArgumentParser) -> None:
    note = parser.add_argument_group("the SRCNN note's flags (shortcuts for --set)")
    note.add_argument("--cuda", action="store_true", help="train.device=cuda")
    note.add_argument("--lr", type=float, help="train.lr")
    note.add_argument("--batch-size", type=int, help="train.batch_size")
    note.add_argument("--num-epoch", type=int, help="train.epochs (train.perceptual_epochs for a perceptual run)")
    note.add_argument("--save-freq", type=int, metavar="N", help="train.save_every: keep epoch_<N>.pt every N epochs")


def _run_job(job, must_resume: bool) -> None:
    from srlab.distributed import is_main_process
    from srlab.training import curves, train

    with curves(job.live) as log:
        meta = train(job, log=log, must_resume=must_resume)
    if not is_main_process():  # under torchrun, rank 0 reports
        return
    last = meta["history"][-1]
    print(
        f"{job.name}: {meta['epochs']} epochs on {meta['device']}; val PSNR {last['val/psnr']:.2f} dB, "
        f"best {meta['best']['psnr']:.2f} dB; model {job.model_out}, checkpoints in {job.checkpoint_dir}, "
        f"curves in {job.live}"
    )


def bench_command(args) -> None:
    from srlab.bench import report, run, to_json
    from srlab.fileio import write_text

    result = run(
        args.set, smoke=args.smoke, workers=args.workers, profile=args.profile, stage=args.stage, versus=args.versus
    )
    print(report(result))
    if args.json:
        write_text(args.json, to_json(result) + "\n")


def _add_gates(commands) -> None:
    """CI's checks: the metrics against the baselines and the committed run, dvc.lock against the committed one."""
    gate = commands.add_parser("check-metrics", help="fail unless the trained models beat the baselines")
    gate.add_argument("metrics", nargs="?", type=Path, default=Path("reports/metrics.json"))
    gate.add_argument("--set", default="Set5", help="test set to check (default Set5)")
    gate.add_argument(
        "--min-gain", type=float, default=0.5, help="dB the MSE model must gain over bicubic (default 0.5)"
    )
    gate.add_argument(
        "--against",
        metavar="REV_OR_FILE",
        help="also compare every PSNR with this metrics file, or with the metrics file as a git revision holds it",
    )
    gate.add_argument(
        "--tolerance",
        action="append",
        metavar="[METHOD=]DB",
        help="dB a PSNR may move from --against's: for every method, or for one (repeat it); default 0.05",
    )
    gate.set_defaults(func=check_metrics)

    lock = commands.add_parser(
        "check-lock", help="fail unless dvc.lock's commands, params and code are the committed run's"
    )
    lock.add_argument("lock", nargs="?", type=Path, default=Path("dvc.lock"))
    lock.add_argument(
        "--against",
        metavar="REV_OR_FILE",
        default="HEAD",
        help="a dvc.lock file, or a git revision whose dvc.lock to compare with (default HEAD)",
    )
    lock.set_defaults(func=check_lock)


def _add_model_tools(commands) -> None:
    """Model files and data outside the pipeline: export, test sets, inspect."""
    ex = commands.add_parser("export", help="write a model file as ONNX (onnxruntime, chaiNNer)")
    ex.add_argument("model", type=Path, help="a model file, e.g. models/mse.safetensors")
    ex.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="the ONNX file to write")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ex.set_defaults(func=export)

    dl = commands.add_parser(
        "download-test-sets",
        help="make a data mirror of the test sets from their official archive (or $SRLAB_DATA_MIRROR)",
    )
    dl.add_argument(
        "folder",
        type=Path,
        help="the mirror folder: data/mirror, which DVC tracks, or one that data.mirror or SRLAB_DATA_MIRROR names",
    )
    dl.add_argument("--sets", nargs="+", default=["Set5", "Set14"], choices=TEST_SETS)
    dl.set_defaults(func=download_test_sets)

    show = commands.add_parser(
        "inspect", help="print the hyperparameters and architecture of a model file or any checkpoint"
    )
    show.add_argument("checkpoint", type=Path)
    show.set_defaults(func=inspect)


def _add_inference(commands) -> None:
    """Running a trained model: score it on the test sets, or upscale any image with it."""
    ev = commands.add_parser(
        "evaluate",
        help="score a model file, checkpoint, run folder or published checkpoint (spandrel: SwinIR, HAT, "
        "RCAN, ESRGAN, ...) on the test sets, bicubic beside",
    )
    ev.add_argument(
        "model",
        type=Path,
        metavar="MODEL_OR_RUN",
        help="e.g. runs/srcnn_mse, models/mse.safetensors, data/published/RealESRGAN_x2plus.pth",
    )
    ev.add_argument("--sets", nargs="+", default=["Set5", "Set14"], choices=TEST_SETS)
    ev.add_argument("--scale", type=int, help="refuse a model trained for another scale")
    ev.add_argument("--degradation", default="bicubic", choices=DEGRADATIONS, help="how the LR inputs are made")
    ev.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ev.add_argument("--out", type=Path, help="also keep each output image here (<out>/<set>/<method>/)")
    ev.set_defaults(func=evaluate_command)

    sr = commands.add_parser("super-resolve", help="upscale images of any size with a trained model")
    sr.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="image files (any mode: grey, RGBA, 16-bit...)"
    )
    sr.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a model file (models/mse.safetensors, an older .pt) "
        "or a training checkpoint (last.pt, best_psnr.pt, epoch_<N>.pt)",
    )
    sr.add_argument("--out", type=Path, help="folder for <name>_x<scale>.png (default: each input's own folder)")
    sr.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sr.add_argument("--tile", type=int, default=256, help="LR tile side; memory grows with its square (default 256)")
    sr.add_argument("--overlap", type=int, default=16, help="LR context around each tile (default 16)")
    sr.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="bf16: bfloat16 convolutions, fast on GPUs and on CPUs with AMX or AVX512-BF16 (cost: docs/RESULTS.md)",
    )
    sr.add_argument(
        "--histogram-match", action="store_true", help="match each output's colour histogram to its input's"
    )
    sr.add_argument(
        "--self-ensemble", action="store_true", help="average the outputs of the 8 flips and rotations (8x slower)"
    )
    sr.set_defaults(func=super_resolve)


def _add_experiment_tools(commands) -> None:
    """Comparing experiments and switching params.yaml to a design note's recipe."""
    cmp = commands.add_parser("compare", help="perception-distortion picture and table across DVC experiments")
    cmp.add_argument("--out", type=Path, default=Path("reports/compare"), help="folder for the PNG and markdown")
    cmp.add_argument("--all-commits", action="store_true", help="include experiments of every commit, not just HEAD")
    cmp.add_argument("--from-json", type=Path, help="read saved `dvc exp show --json` output instead of running it")
    cmp.add_argument(
        "--x",
        choices=("perceptual", "lpips"),
        default="perceptual",
        help="the distance to plot PSNR against: the VGG16 perceptual distance, or LPIPS where it was computed",
    )
    cmp.set_defaults(func=compare_command)

    pg = commands.add_parser(
        "page", help="one HTML page of DVC experiments side by side: sliders between their outputs, scores, curves"
    )
    pg.add_argument("exps", nargs="+", metavar="EXP", help="experiments as `dvc exp show` names them, or workspace")
    pg.add_argument("--out", type=Path, default=Path("reports/compare/page"), help="folder for index.html and images/")
    pg.add_argument("--all-commits", action="store_true", help="look for experiments of every commit, not just HEAD")
    pg.set_defaults(func=page_command)

    rc = commands.add_parser("recipe", help="write a design note's params into params.yaml (no NAME: list the recipes)")
    rc.add_argument(
        "name",
        nargs="?",
        help="a recipe of recipes/ (assignment, srcnn-cli, rescnn, srgan, johnson), "
        "default (srlab's own params) or a recipe file",
    )
    rc.add_argument("--params", type=Path, default=Path("params.yaml"))
    rc.add_argument("--recipes", type=Path, default=Path("recipes"), help="the recipes folder (default recipes/)")
    rc.set_defaults(func=recipe_command)


def _add_training(commands) -> None:
    """Training outside DVC: train and resume."""
    tr = commands.add_parser("train", help="train outside DVC, with parameter overrides")
    tr.add_argument("--params", type=Path, default=Path("params.yaml"))
    tr.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter, e.g. model.name=edsr"
    )
    tr.add_argument("--stage", choices=("mse", "perceptual"), default="mse", help="pixel terms only, or all loss terms")
    tr.add_argument("--patches", type=Path, default=Path("data/patches"), help="prepared patches (dvc repro prepare)")
    tr.add_argument(
        "--init",
        type=Path,
        help="model file to start from: the MSE model to fine-tune (perceptual stage), "
        "or a model of the same arch at any scale, e.g. x2 to start x3 (mse stage)",
    )
    tr.add_argument("--out", type=Path, help="run folder (default runs/<model>_<stage>)")
    add_note_flags(tr)
    tr.set_defaults(func=train_command)

    rs = commands.add_parser("resume", help="continue a run from a checkpoint where it stopped")
    rs.add_argument("checkpoint", type=Path, help="<run>/checkpoints/last.pt, or any epoch_<N>.pt it kept")
    rs.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change train.* params: more epochs continue bit for bit; any other change "
        "(batch size, rate, device...) continues from the saved state and is recorded",
    )
    rs.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="continue the run in DIR (DIR/model.safetensors, DIR/checkpoints, DIR/live); default: the run the "
        "checkpoint belongs to (a copy kept elsewhere needs --out)",
    )
    rs.add_argument(
        "--new-code",
        action="store_true",
        help="continue although srlab's code changed since the checkpoint (the changed modules are recorded)",
    )
    add_note_flags(rs)
    rs.set_defaults(func=resume_command)


def _add_bench(commands) -> None:
    """The throughput benchmark of the training step."""
    bn = commands.add_parser("bench", help="training images/s against the on-device ceiling and a seeds-style loader")
    bn.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. train.precision=bf16, train.compile=true, model.name=edsr, data.hr_size=96",
    )
    bn.add_argument(
        "--stage",
        choices=("mse", "perceptual"),
        default="mse",
        help="which stage's step to time: mse (the pixel terms, train_mse) or perceptual (train_perceptual's "
        "terms, the VGG16 perceptual loss included)",
    )
    bn.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also time (a) and (b) with this setting on top of --set, in the same run, and print the speed-up: "
        "e.g. --set train.precision=bf16 --versus train.precision=fp32",
    )
    bn.add_argument("--smoke", action="store_true", help="small sizes: a check that it runs (CI, CPU)")
    bn.add_argument("--workers", type=int, default=4, help="DataLoader workers of the seeds-style loader (c)")
    bn.add_argument("--json", type=Path, help="also write the numbers to this file")
    bn.add_argument(
        "--profile", type=Path, help="profile an epoch of (a) and write torch.profiler's operator table here"
    )
    bn.set_defaults(func=bench_command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="srlab", description="Reproducible super-resolution experiments on DVC.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_gates, _add_model_tools, _add_inference, _add_experiment_tools, _add_training, _add_bench):
        add(commands)
    args = parser.parse_args(argv)
    run(lambda: args.func(args), f"srlab {args.command}")


if __name__ == "__main__":
    sys.exit(main())
