"""Training: same seed same weights, an interrupted run resumes to the same result, bad losses stop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import cli, train_params_file

from srlab import checkpoint
from srlab.data.patches import Degradation, crop_pairs
from srlab.data.store import save_pairs
from srlab.errors import SrlabError
from srlab.models.srcnn import SRCNN
from srlab.params import parse_params
from srlab.training import TrainJob, train


def _job(tmp_path, patches, run: str, loss: dict | None = None, **params) -> TrainJob:
    p = parse_params({"train": {"batch_size": 8, "device": "cpu", **params}, "loss": loss or {}})
    return TrainJob(
        name="t",
        params=p,
        weights={"mse": 1.0, "perceptual": 0.5},
        epochs=p.train.epochs,
        patches=patches,
        model_out=tmp_path / run / "model.pt",
        checkpoint_dir=tmp_path / run / "ckpt",
    )


def _weights(path):
    return checkpoint.load(path)["model"]


def test_same_seed_gives_identical_weights_and_curves(tmp_path, patches):
    logged = []
    a = train(_job(tmp_path, patches, "a", epochs=2), log=logged.append)
    b = train(_job(tmp_path, patches, "b", epochs=2))
    assert a["history"] == b["history"] == logged
    assert set(logged[0]) == {"epoch", "train/loss", "train/objective_l_mse", "train/objective_l_perceptual"} | {
        f"{split}/{k}" for split in ("train", "val") for k in ("l_mse", "l_perceptual", "psnr", "ssim")
    }
    for key, value in _weights(tmp_path / "a" / "model.pt").items():
        assert torch.equal(value, _weights(tmp_path / "b" / "model.pt")[key])
    other = train(
        dataclasses.replace(
            _job(tmp_path, patches, "c", epochs=2),
            params=parse_params({"seed": 1, "train": {"batch_size": 8, "device": "cpu", "epochs": 2}}),
        )
    )
    assert other["history"] != a["history"]  # another seed: other initial weights, batches and flips


def test_curves_reach_dvclive_one_step_per_epoch(tmp_path, patches):
    from dvclive import Live

    from srlab.training import dvclive_logger

    with Live(str(tmp_path / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        train(_job(tmp_path, patches, "a", epochs=2), log=dvclive_logger(live))
    curve = (tmp_path / "live" / "plots" / "metrics" / "val" / "l_perceptual.tsv").read_text().splitlines()
    assert curve[0] == "step\tl_perceptual" and len(curve) == 3


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, patches, monkeypatch):
    train(_job(tmp_path, patches, "straight", epochs=3))

    real_save, saves = checkpoint.save, []

    def save_then_die(path, payload):
        real_save(path, payload)
        saves.append(path)
        if len(saves) == 2:  # killed right after the second epoch's checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_job(tmp_path, patches, "resumed", epochs=3))
    monkeypatch.setattr(checkpoint, "save", real_save)
    replayed = []
    resumed = train(_job(tmp_path, patches, "resumed", epochs=3), log=replayed.append)

    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3]
    assert replayed == resumed["history"]  # the curves of the epochs before the crash are logged again
    straight = _weights(tmp_path / "straight" / "model.pt")
    for key, value in _weights(tmp_path / "resumed" / "model.pt").items():
        assert torch.equal(value, straight[key]), key


_SRCNN_META = {"arch": "srcnn", "scale": 2, "upsample": "bicubic", "residual": True}


@pytest.mark.parametrize("change", ["nothing", "params", "code", "data", "weights", "init"])
def test_a_finished_run_is_resumed_only_with_the_same_params_code_and_data(
    tmp_path, patches, photo, rng, monkeypatch, change
):
    from torchvision.models import vgg16

    import srlab.training as training

    weights = tmp_path / "vgg16.pth"  # loss.vgg_init as a path: the file's content counts, not its name
    torch.save(vgg16(weights=None).state_dict(), weights)
    loss = {"vgg_init": str(weights)} if change in ("nothing", "weights") else None
    start = tmp_path / "start.pt"  # the model a stage starts from (train_perceptual: the MSE model)
    checkpoint.save(start, {"model": SRCNN(scale=2).state_dict(), "meta": _SRCNN_META})
    train(dataclasses.replace(_job(tmp_path, patches, "a", loss, epochs=1), init_from=start))
    real_save, epochs_trained = checkpoint.save, []

    def counting_save(path, payload):
        epochs_trained.extend([payload["meta"]["epoch"]] if path.name == "last.pt" else [])
        real_save(path, payload)

    monkeypatch.setattr(checkpoint, "save", counting_save)
    if change == "code":
        edited = {**training.code_files(), "training.py": "edited"}
        monkeypatch.setattr(training, "code_files", lambda: edited)
    if change == "data":  # the same number of pairs, cut from the photo mirrored
        save_pairs(patches, "train", crop_pairs(photo[:, ::-1], 2, 16, 24, Degradation("bicubic"), rng))
    if change == "weights":  # other weights under the same path
        torch.save(vgg16(weights=None).state_dict(), weights)
    if change == "init":  # another start model under the same path
        checkpoint.save(start, {"model": SRCNN(scale=2).state_dict(), "meta": _SRCNN_META})
    job = _job(tmp_path, patches, "a", loss, epochs=1, **({"lr": 0.01} if change == "params" else {}))
    train(dataclasses.replace(job, init_from=start))
    # the same job resumes after its last epoch and trains nothing; any change trains epoch 1 afresh
    assert epochs_trained == ([] if change == "nothing" else [1])


def test_the_code_record_covers_every_python_file_of_the_package_by_content(tmp_path):
    import shutil

    import srlab
    from srlab.training import changed_files, code_files

    package = Path(srlab.__file__).parent
    copy = tmp_path / "srlab"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_files(copy) == code_files(package)  # by content and relative name, not location
    (copy / "README.txt").write_text("not code")
    assert code_files(copy) == code_files(package)
    for edit in ("losses/perceptual.py", "data/loader.py", "training.py"):  # nested modules too
        original = (copy / edit).read_text()
        (copy / edit).write_text(original + "\n# edited\n")
        assert changed_files(code_files(package), code_files(copy)) == [edit]
        (copy / edit).write_text(original)
    (copy / "models" / "new.py").write_text("")
    (copy / "ema.py").unlink()
    assert changed_files(code_files(package), code_files(copy)) == ["ema.py", "models/new.py"]  # added, removed


def test_a_diverging_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, patches, monkeypatch):
    from srlab import training

    real_forward, calls = training.SRLoss.forward, []

    def nan_from_the_fifth_step(self, output, target):
        calls.append(1)
        total, terms = real_forward(self, output, target)
        return (total * float("nan") if len(calls) >= 5 else total), terms

    monkeypatch.setattr(training.SRLoss, "forward", nan_from_the_fifth_step)
    with pytest.raises(SrlabError, match=r"loss became non-finite at step 5 \(epoch 2\); last good checkpoint kept"):
        train(_job(tmp_path, patches, "boom", epochs=3))  # 24 patches / batch 8: 3 steps per epoch
    kept = checkpoint.load(tmp_path / "boom" / "ckpt" / "last.pt")
    assert kept["meta"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())
    assert not (tmp_path / "boom" / "model.pt").exists()


def test_batch_larger_than_the_data_is_a_parameter_error(tmp_path, patches):
    with pytest.raises(SrlabError, match="train.batch_size: 64 is more than the 24 training pairs per epoch"):
        train(_job(tmp_path, patches, "x", epochs=1, batch_size=64))
    with pytest.raises(SrlabError, match="train.batch_size: 8 is more than the 4 training pairs per epoch"):
        train(_job(tmp_path, patches, "x", epochs=1, epoch_samples=4))


def test_epoch_samples_draws_a_new_random_subset_of_the_pairs_each_epoch(tmp_path, patches, monkeypatch):
    from srlab.data import loader

    seen, batches = [], loader.BatchLoader.batches

    def record(self, indices):
        seen.append(torch.cat(indices).tolist())
        return batches(self, indices)

    monkeypatch.setattr(loader.BatchLoader, "batches", record)
    train(_job(tmp_path, patches, "x", epochs=3, epoch_samples=16))  # of 24 pairs, batches of 8
    assert [len(epoch) for epoch in seen] == [16, 16, 16]
    assert all(len(set(epoch)) == 16 and set(epoch) <= set(range(24)) for epoch in seen)
    assert len({tuple(sorted(epoch)) for epoch in seen}) == 3


def test_model_file_loads_weights_only_and_refuses_other_scales(tmp_path, patches):
    job = _job(tmp_path, patches, "m", {"vgg_weight": 0.5, "vgg_layers": {"relu2_2": 1.0}}, epochs=1, lr=3e-4)
    train(job)
    model, meta = checkpoint.load_model(tmp_path / "m" / "model.pt", scale=2)
    assert meta["arch"] == "srcnn" and "random init" in meta["backbone"]
    # the header holds the params the model was trained with, not the defaults
    assert meta["params"] == job.params.to_dict() and meta["params"]["train"]["lr"] == 3e-4
    assert meta["params"]["loss"]["vgg_layers"]["relu2_2"] == 1.0 and len(meta["history"]) == 1
    with pytest.raises(SrlabError, match="trained for x2, but data.scale is 3"):
        checkpoint.load_model(tmp_path / "m" / "model.pt", scale=3)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("this ran",))

    hostile = tmp_path / "hostile.pt"
    torch.save({"model": Exploit(), "meta": {}}, hostile)
    with pytest.raises(SrlabError, match="never arbitrary pickles"):
        checkpoint.load(hostile)


def test_identical_weights_give_byte_identical_files(tmp_path):
    # dvc.lock hashes model files: the same weights must hash the same
    payload = {"model": {"w": torch.arange(6.0)}, "meta": {"arch": "srcnn"}}
    checkpoint.save(tmp_path / "a.pt", payload)
    checkpoint.save(tmp_path / "b.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


_DRIVER = """
import io, os, signal, sys
from pathlib import Path
import torch
from srlab.params import parse_params
from srlab.training import TrainJob, train

patches, run, epochs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
# DIE_IN=NAME:N: SIGKILL this process half-way through writing the N-th save into a file named NAME
die_in, _, nth = os.environ.get("DIE_IN", ":0").partition(":")
saves, real_save = [], torch.save


def save_then_die(obj, f, *args, **kwargs):
    if die_in and die_in in Path(f.name).name:
        saves.append(f.name)
        if len(saves) == int(nth):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())  # half a file really on disk, wherever it is being written
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)


torch.save = save_then_die
p = parse_params({"train": {"batch_size": 4, "device": "cpu", "epochs": epochs}})
job = TrainJob(name="t", params=p, weights={"mse": 1.0, "perceptual": 0.5}, epochs=epochs, patches=patches,
               model_out=run / "model.pt", checkpoint_dir=run / "ckpt")
train(job, log=lambda row: print("epoch", row["epoch"], flush=True))
"""


@pytest.mark.long
def test_sigkill_mid_epoch_and_inside_every_kind_of_save_then_rerun_gives_the_same_weights(tmp_path, patches):
    """A process killed with SIGKILL (no handler runs): once at a random moment of an epoch, then
    half-way through writing each kind of file training writes (the resume checkpoint, a best
    checkpoint, the final model). Each time the files already there stay whole, and the re-run
    ends with the weights of a run never killed."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    epochs = 8
    killed, ckpt = tmp_path / "killed", tmp_path / "killed" / "ckpt"

    def start(run, die_in=""):
        return subprocess.Popen(
            [sys.executable, str(driver), str(patches), str(tmp_path / run), str(epochs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DIE_IN": die_in},
        )

    assert start("straight").wait(timeout=300) == 0
    proc = start("killed")
    for line in proc.stdout:  # epoch 1 is logged just before its checkpoint is saved
        if line.startswith("epoch 1"):
            break
    deadline = time.monotonic() + 300  # a safety net, not a timing: the event waited for is the first last.pt
    while not (ckpt / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(0).uniform(0, 0.05))  # then a random moment of the second epoch (or of its saves)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert 1 <= checkpoint.load(ckpt / "last.pt")["meta"]["epoch"] < epochs
    # killed inside the 2nd last.pt save of a run (its 1st completed), then inside a best and the model save
    for name, nth in (("last.pt", 2), ("best_psnr.pt", 1), ("model.pt", 1)):
        before = {f.name: f.read_bytes() for f in ckpt.glob("*.pt")}
        epoch = checkpoint.load(ckpt / "last.pt")["meta"]["epoch"]
        proc = start("killed", f"{name}:{nth}")
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, f"{name}: the run was not killed inside that save\n{err}"
        target = killed / name if name == "model.pt" else ckpt / name
        if name == "last.pt":  # the epoch whose save completed, whole
            assert checkpoint.load(target)["meta"]["epoch"] == epoch + 1
        elif name in before:  # killed while replacing it: the old file, byte for byte
            assert target.read_bytes() == before[name], name
        else:  # killed while writing it for the first time: not there at all
            assert not target.exists(), name
        for f in ckpt.glob("*.pt"):
            checkpoint.load(f)  # every checkpoint left behind is whole
    assert checkpoint.load(ckpt / "last.pt")["meta"]["epoch"] == epochs  # trained to the end, killed saving the model
    finish = start("killed")
    out, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert f"resuming from {ckpt / 'last.pt'} after epoch {epochs}" in out
    straight = _weights(tmp_path / "straight" / "model.pt")
    for key, value in _weights(killed / "model.pt").items():
        assert torch.equal(value, straight[key]), key
    assert not list(killed.rglob("*.tmp*"))  # the killed writes' temporary files were cleared


_CTRL_C_DRIVER = """
import os, runpy, signal, sys
import srlab.checkpoint

# Ctrl-C at the n-th lock release after the first last.pt is written: at the start of the next
# epoch, where the batch loader starts its thread and queues its first batches
nth, seen = int(os.environ["CTRL_C_AT"]), 0
save = srlab.checkpoint.save


def save_then_arm(path, payload):
    save(path, payload)
    if path.name == "last.pt" and sys.getprofile() is None:
        sys.setprofile(ctrl_c_at_a_lock_release)


def ctrl_c_at_a_lock_release(frame, event, arg):  # a signal lands between any two bytecodes
    global seen
    if event == "c_call" and getattr(arg, "__name__", "") in ("__exit__", "release"):
        seen += 1
        if seen == nth:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)


srlab.checkpoint.save = save_then_arm
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal starts it, whatever the test runner ignores
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.long
def test_ctrl_c_at_any_of_the_first_lock_releases_of_an_epoch_exits_130(tmp_path, patches):
    """A Ctrl-C that lands inside a library's locking (ThreadPoolExecutor.submit, between its two
    `with` locks, as the loader queued an epoch's first batches) once left a lock held, and the
    interrupted stage waited for it for ever. Each of the first lock releases of an epoch is tried."""
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from conftest import REPO

    driver = tmp_path / "driver.py"
    driver.write_text(_CTRL_C_DRIVER)

    def interrupt_at(nth: int) -> str:
        run = tmp_path / f"run{nth}"
        cmd = [
            sys.executable,
            str(driver),
            str(REPO / "stages" / "train_mse.py"),
            "--params",
            str(train_params_file(tmp_path, epochs=3)),
            "--patches",
            str(patches),
            "--out",
            str(run / "mse.pt"),
            "--live",
            str(run / "live"),
            "--checkpoints",
            str(run / "ckpt"),
        ]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "CTRL_C_AT": str(nth)}
            )
        except subprocess.TimeoutExpired:
            return f"Ctrl-C at lock release {nth}: the stage was still running 120 s later"
        last = (done.stderr.strip().splitlines() or [""])[-1]
        if (
            done.returncode != 130
            or last != "train_mse: interrupted; completed checkpoints are kept and the run can resume"
        ):
            return f"Ctrl-C at lock release {nth}: exit {done.returncode}, {last!r}"
        return ""

    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(interrupt_at, range(1, 9)) if f]
    assert not failures, "\n".join(failures)


def test_ctrl_c_on_a_training_stage_exits_130_in_one_line_and_the_rerun_resumes(tmp_path, patches):
    """SIGINT to the real stage process, as a terminal's Ctrl-C sends it (not an exception raised
    inside the test's own process)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    params = train_params_file(tmp_path, epochs=200)
    cmd = [
        sys.executable,
        str(REPO / "stages" / "train_mse.py"),
        "--params",
        str(params),
        "--patches",
        str(patches),
        "--out",
        str(tmp_path / "mse.pt"),
        "--live",
        str(tmp_path / "live"),
        "--checkpoints",
        str(tmp_path / "ckpt"),
    ]
    # as a terminal starts it: Ctrl-C is delivered even where the test runner was started in the
    # background of a shell, which ignores SIGINT in it and in every child that inherits that
    ctrl_c_delivered = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_delivered)
    deadline = time.monotonic() + 900  # a safety net, not a timing: the event waited for is the first checkpoint
    while not (tmp_path / "ckpt" / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "ckpt" / "last.pt").exists(), "the stage wrote no checkpoint"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert (
        err.strip().splitlines()[-1] == "train_mse: interrupted; completed checkpoints are kept and the run can resume"
    )
    assert "Traceback" not in err and not (tmp_path / "mse.pt").exists()
    done = checkpoint.load(tmp_path / "ckpt" / "last.pt")["meta"]["epoch"]
    assert 1 <= done < 200
    rerun = subprocess.run(
        [*cmd[:3], str(train_params_file(tmp_path, epochs=done + 1)), *cmd[4:]],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming from {tmp_path / 'ckpt' / 'last.pt'} after epoch {done}" in rerun.stdout


def test_cli_train_then_resume_longer_equals_one_long_run(tmp_path, patches, capsys):
    params = train_params_file(tmp_path, epochs=2)
    cli("train", "--params", params, "--patches", patches, "--out", tmp_path / "short")
    cli("resume", tmp_path / "short/checkpoints/last.pt", "--set", "train.epochs=4")
    assert "resuming from" in capsys.readouterr().out
    cli("train", "--params", params, "--set", "train.epochs=4", "--patches", patches, "--out", tmp_path / "long")
    long = _weights(tmp_path / "long/model.safetensors")
    for key, value in _weights(tmp_path / "short/model.safetensors").items():
        assert torch.equal(value, long[key]), key
    best = checkpoint.load(tmp_path / "long/checkpoints/best_psnr.pt")["meta"]
    history = checkpoint.load(tmp_path / "long/model.safetensors")["meta"]["history"]
    assert best["val_psnr"] == max(row["val/psnr"] for row in history)
    assert (tmp_path / "long/checkpoints/best_ssim.pt").is_file()


def test_cli_resume_with_other_model_or_data_params_is_refused_in_one_line(tmp_path, patches, capsys):
    cli("train", "--params", train_params_file(tmp_path, epochs=1), "--patches", patches, "--out", tmp_path / "run")
    for change in ("model.name=edsr", "data.scale=3", "loss.vgg_weight=0.3"):
        with pytest.raises(SystemExit):
            cli("resume", tmp_path / "run/checkpoints/last.pt", "--set", change)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "a resume may change train.* params only" in err[0], err
    with pytest.raises(SystemExit):
        cli("resume", tmp_path / "run/checkpoints/best_psnr.pt", "--num-epoch", "2")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds weights only" in err[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resuming_a_copied_checkpoint_writes_only_into_the_run_named_by_out(tmp_path, patches, capsys):
    """The SRCNN note keeps `checkpoint.x` files where it runs: continuing one must not replace the
    model, checkpoints or curves of the run it was copied from."""
    run = tmp_path / "run"
    cli("train", "--params", train_params_file(tmp_path, epochs=1), "--patches", patches, "--out", run)
    original = _files(run)
    copy = tmp_path / "checkpoint.1"
    copy.write_bytes((run / "checkpoints/last.pt").read_bytes())
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli("resume", copy, "--num-epoch", "2", "--batch-size", "4")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"write into that run and replace {run / 'model.safetensors'}" in err[0], err
    assert "--out DIR" in err[0]

    cli("resume", copy, "--num-epoch", "2", "--batch-size", "4", "--out", tmp_path / "continued")
    assert _files(run) == original  # the run it was copied from: untouched
    continued = tmp_path / "continued"
    assert sorted(_files(continued)) == sorted(original)  # the same kinds of files, all in one run folder
    meta = checkpoint.load(continued / "model.safetensors")["meta"]
    assert [row["epoch"] for row in meta["history"]] == [1, 2]
    assert meta["overrides"] == [{"epoch": 1, "train": {"epochs": [1, 2], "batch_size": [8, 4]}}]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".pt"] == []  # nothing written beside the copy


def test_resume_after_a_code_change_names_the_modules_and_continues_only_when_asked(
    tmp_path, patches, capsys, monkeypatch
):
    import srlab.training as training

    run = tmp_path / "run"
    cli("train", "--params", train_params_file(tmp_path, epochs=1), "--patches", patches, "--out", run)
    edited = {**training.code_files(), "losses/content.py": "edited", "models/new.py": "added"}
    monkeypatch.setattr(training, "code_files", lambda: edited)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli("resume", run / "checkpoints/last.pt", "--num-epoch", "2")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "srlab's code changed since it was saved (losses/content.py, models/new.py)" in err[0]
    assert f"srlab resume {run / 'checkpoints/last.pt'} --new-code" in err[0]
    assert checkpoint.load(run / "checkpoints/last.pt")["meta"]["epoch"] == 1  # nothing written

    cli("resume", run / "checkpoints/last.pt", "--num-epoch", "2", "--new-code")
    assert "code: losses/content.py, models/new.py: from here this run differs" in capsys.readouterr().out
    change = {"epoch": 1, "train": {"epochs": [1, 2]}, "code": ["losses/content.py", "models/new.py"]}
    assert checkpoint.load(run / "checkpoints/last.pt")["meta"]["overrides"] == [change]
    assert checkpoint.load(run / "model.safetensors")["meta"]["overrides"] == [change]


def test_srgan_trains_its_discriminator_and_resumes_it_exactly(tmp_path, patches):
    def job(run, epochs):
        p = parse_params(
            {
                "model": {"name": "srresnet"},
                "loss": {"adversarial_weight": 1e-3},
                "train": {"batch_size": 8, "device": "cpu", "perceptual_epochs": epochs},
            }
        )
        return TrainJob(
            name="g",
            params=p,
            weights=p.loss.second_stage_weights(),
            epochs=epochs,
            patches=patches,
            stage="perceptual",
            model_out=tmp_path / run / "model.pt",
            checkpoint_dir=tmp_path / run / "ckpt",
        )

    meta = train(job("straight", 2))
    assert "train/objective_l_adversarial" in meta["history"][0]
    train(job("resumed", 1))
    state = checkpoint.load(tmp_path / "resumed/ckpt/last.pt")
    assert "discriminator" in state and "optimizer_d" in state
    train(job("resumed", 2), must_resume=True)
    straight = _weights(tmp_path / "straight/model.pt")
    for key, value in _weights(tmp_path / "resumed/model.pt").items():
        assert torch.equal(value, straight[key]), key


def test_cli_train_without_prepared_patches_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli("train", "--params", train_params_file(tmp_path), "--patches", tmp_path / "none", "--out", tmp_path / "run")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none: no prepared store (index.json missing" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()


def test_learning_rate_warms_up_linearly_then_holds_or_follows_a_cosine_to_zero():
    from srlab.training import learning_rate

    constant = parse_params({"train": {"lr": 1e-3, "warmup_steps": 4}}).train
    assert [learning_rate(constant, s, 100) for s in range(6)] == pytest.approx(
        [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]
    )
    cosine = parse_params({"train": {"lr": 1e-3, "lr_schedule": "cosine", "warmup_steps": 10}}).train
    rates = [learning_rate(cosine, s, 110) for s in range(110)]
    assert rates[9] == pytest.approx(1e-3) and rates[10] == pytest.approx(1e-3)  # the peak, where the warm-up ends
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then only down
    assert rates[60] == pytest.approx(5e-4) and 0 < rates[-1] < 1e-6


def test_a_cosine_run_interrupted_resumes_exactly_and_is_not_extended(tmp_path, patches, monkeypatch, capsys):
    cosine = {"lr_schedule": "cosine", "warmup_steps": 2}
    train(_job(tmp_path, patches, "straight", epochs=3, **cosine))
    real_save, saves = checkpoint.save, []

    def save_then_die(path, payload):
        real_save(path, payload)
        saves.append(path.name)
        if saves.count("last.pt") == 2:  # killed after epoch 2, mid-schedule
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_job(tmp_path, patches, "resumed", epochs=3, **cosine))
    monkeypatch.setattr(checkpoint, "save", real_save)
    resumed = train(_job(tmp_path, patches, "resumed", epochs=3, **cosine), must_resume=True)
    lrs = [row["train/lr"] for row in resumed["history"]]  # the rate of each epoch's last step, logged
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * lrs[0]
    straight = _weights(tmp_path / "straight" / "model.pt")
    for key, value in _weights(tmp_path / "resumed" / "model.pt").items():
        assert torch.equal(value, straight[key]), key
    # the decay is shaped by the epoch count: a longer run continues, and says it is another run
    cli(
        "train",
        "--params",
        train_params_file(tmp_path, epochs=1, **cosine),
        "--patches",
        patches,
        "--out",
        tmp_path / "cli",
    )
    capsys.readouterr()
    cli("resume", tmp_path / "cli/checkpoints/last.pt", "--set", "train.epochs=2")
    assert "train.epochs 1 -> 2: from here this run differs from an uninterrupted one" in capsys.readouterr().out
    # a DVC stage (no explicit resume) never continues a checkpoint of other train params: it starts afresh
    fresh = train(_job(tmp_path, patches, "resumed", epochs=4, **cosine))
    assert [row["epoch"] for row in fresh["history"]] == [1, 2, 3, 4] and fresh["history"][0] == resumed["history"][0]


def test_each_stage_derives_its_loss_terms_epochs_and_start(tmp_path):
    p = parse_params({"train": {"epochs": 7, "perceptual_epochs": 2}, "loss": {"l1_weight": 0.5, "vgg_weight": 0.3}})
    mse = TrainJob.for_stage("mse", p, tmp_path, tmp_path / "m.pt", tmp_path / "c")
    assert (mse.name, mse.epochs, mse.init_from) == ("srcnn_mse", 7, None)
    warm = TrainJob.for_stage("mse", p, tmp_path, tmp_path / "m.pt", tmp_path / "c", init_from=tmp_path / "x.pt")
    assert warm.init_from == tmp_path / "x.pt"  # srlab train --init: a warm start
    assert mse.weights == {"mse": 1.0, "l1": 0.5, "ssim": 0.0}
    perceptual = TrainJob.for_stage(
        "perceptual", p, tmp_path, tmp_path / "p.pt", tmp_path / "c", init_from=tmp_path / "m.pt"
    )
    assert (perceptual.epochs, perceptual.init_from, perceptual.weights["perceptual"]) == (2, tmp_path / "m.pt", 0.3)
    scratch = parse_params({"train": {"perceptual_init": "scratch"}})
    assert (
        TrainJob.for_stage("perceptual", scratch, tmp_path, tmp_path, tmp_path, init_from=tmp_path / "m.pt").init_from
        is None
    )


def test_truncated_patch_file_is_one_line_naming_the_file(tmp_path, patches):
    from srlab.data.store import open_pairs

    data = (patches / "val_hr.npy").read_bytes()
    (patches / "val_hr.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        SrlabError, match=r"val_hr.npy: unreadable \(.* bytes, .* expected\); run `dvc repro -f prepare`"
    ):
        open_pairs(patches, "val")


def test_batches_gathered_from_the_memory_map_train_exactly_as_pairs_held_in_memory(tmp_path, patches, monkeypatch):
    from srlab.data import loader

    crop = {"crop_size": 8}  # the crops and flips are drawn alike on every path
    releases, release = [], loader.store.Pairs.release
    monkeypatch.setattr(loader.store.Pairs, "release", lambda self: (releases.append(1), release(self)))
    threads, prefetch = [], loader.prefetch
    monkeypatch.setattr(loader, "prefetch", lambda *args: (threads.append(1), prefetch(*args))[1])
    for run, spare_core in (("thread", True), ("inline", False)):  # gathered beside the step, or in it
        monkeypatch.setattr(loader.BatchLoader, "_spare_core", lambda self, spare=spare_core: spare)
        threads.clear()
        train(_job(tmp_path, patches, run, epochs=2, **crop))
        assert bool(threads) == spare_core
    assert releases  # the memory map's pages were dropped on the way, and the batches did not change
    monkeypatch.setattr(loader, "fits_on_device", lambda nbytes, device: True)  # as if held on a GPU: in memory
    train(_job(tmp_path, patches, "resident", epochs=2, **crop))
    history = checkpoint.load(tmp_path / "resident" / "model.pt")["meta"]["history"]
    resident = _weights(tmp_path / "resident" / "model.pt")
    for run in ("thread", "inline"):
        assert checkpoint.load(tmp_path / run / "model.pt")["meta"]["history"] == history, run
        for key, value in _weights(tmp_path / run / "model.pt").items():
            assert torch.equal(value, resident[key]), (run, key)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_cpu_run_steps_in_the_layout_its_precision_is_fast_in_and_never_pays_the_nan_fill(
    tmp_path, patches, monkeypatch, precision
):
    """bf16 on CPU trains channels_last (oneDNN's bf16 kernels are NHWC), fp32 in the default layout
    (its committed numbers' layout, on either CPU kind); both keep deterministic kernels without
    filling every new tensor with NaN first, and keep freed memory for the next step (glibc)."""
    from srlab import device, training

    layouts, real_step = [], training.optimisation_step

    def recording_step(net, objective, optimizer, autocast, lr, hr):
        layouts.append(
            (lr.is_contiguous(memory_format=torch.channels_last), hr.is_contiguous(memory_format=torch.channels_last))
        )
        weight = next(net.parameters())
        layouts.append((weight.is_contiguous(memory_format=torch.channels_last), not weight.is_contiguous()))
        return real_step(net, objective, optimizer, autocast, lr, hr)

    monkeypatch.setattr(training, "optimisation_step", recording_step)
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)
    train(_job(tmp_path, patches, precision, epochs=1, precision=precision))
    assert set(layouts) == {(precision == "bf16",) * 2}
    assert torch.are_deterministic_algorithms_enabled() and not torch.utils.deterministic.fill_uninitialized_memory
    assert device.keep_freed_memory()  # glibc took both settings (it refuses values out of its range)


_RSS_DRIVER = """
import json, sys
from pathlib import Path
import srlab.data.loader as loader
from srlab.params import parse_params
from srlab.training import TrainJob, train

patches, run = Path(sys.argv[1]), Path(sys.argv[2])


def resident_mb():
    \"\"\"(this process's resident MB, the resident MB of its mappings of the store's files)\"\"\"
    total = store = 0
    mapping = ""
    for line in open("/proc/self/smaps"):
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            mapping = head[-1] if len(head) >= 6 else ""
        elif head and head[0] == "Rss:":
            total += int(head[1])
            store += int(head[1]) if mapping.startswith(str(patches)) else 0
    return total / 1024, store / 1024


samples, batches = [], loader.BatchLoader.batches


def sampled(self, indices):  # at every training step
    for batch in batches(self, indices):
        samples.append(resident_mb())
        yield batch


loader.BatchLoader.batches = sampled
p = parse_params({"data": {"hr_size": 128}, "train": {"batch_size": 64, "crop_size": 16, "epochs": 1, "device": "cpu"}})
train(TrainJob(name="t", params=p, weights={"mse": 1.0}, epochs=1, patches=patches, model_out=run / "model.pt",
               checkpoint_dir=run / "ckpt"))
print(json.dumps(samples))
"""


@pytest.mark.long
def test_training_over_a_512_mb_store_keeps_its_resident_memory_bounded(tmp_path, photo):
    """Every row of a 512 MB memory-mapped store is read once (an epoch of whole 128 px tiles, each
    cropped to 16 px so the model costs nothing): the store's pages resident in the training
    process stay under 128 MB at every step, and so does the process's growth after its first steps
    (without releasing the pages read, the store's resident pages reach the whole store)."""
    import json
    import subprocess
    import sys

    import numpy as np

    from srlab.data.degrade import downscale
    from srlab.data.store import Pairs

    hr = np.tile(photo, (2, 2, 1))[:128, :128]
    n = 138 * 64  # x (128 x 128 + 64 x 64) x 3 bytes: 543 MB, 518 MiB
    pairs = Pairs(
        np.ascontiguousarray(np.broadcast_to(hr, (n, *hr.shape))),
        np.ascontiguousarray(np.broadcast_to(downscale(hr, 2, "bicubic", 1.0), (n, 64, 64, 3))),
        np.zeros((n, 2), np.int32),
    )
    save_pairs(tmp_path / "patches", "train", pairs)
    del pairs
    save_pairs(tmp_path / "patches", "val", crop_pairs(hr, 2, 128, 4, Degradation("bicubic"), np.random.default_rng(0)))
    assert sum(f.stat().st_size for f in (tmp_path / "patches").glob("train_*.npy")) >= 512 * 2**20
    driver = tmp_path / "driver.py"
    driver.write_text(_RSS_DRIVER)
    done = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "patches"), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    samples = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(samples) == n // 64
    assert max(store for _, store in samples) <= 128, [round(store) for _, store in samples]
    settled = samples[2][0]  # after the first steps have paged in the library code and the optimiser state
    assert max(total for total, _ in samples[2:]) - settled <= 128, [round(total) for total, _ in samples]


def test_patches_go_to_the_device_only_within_their_share_of_free_memory(monkeypatch):
    from srlab.data import loader

    assert not loader.fits_on_device(1, torch.device("cpu"))  # on CPU batches come from the memory map
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (8 * 2**30, 80 * 2**30))
    assert loader.fits_on_device(4 * 2**30, torch.device("cuda"))
    assert not loader.fits_on_device(4 * 2**30 + 1, torch.device("cuda"))


def _edsr_file(path, scale: int):
    from srlab.models import build_model
    from srlab.params import ModelParams

    torch.manual_seed(scale)
    model = build_model(ModelParams(name="edsr"), scale)
    checkpoint.save(
        path,
        {
            "model": model.state_dict(),
            "meta": {"arch": "edsr", "scale": scale, "upsample": "bicubic", "residual": True},
        },
    )
    return model.state_dict()


@pytest.mark.parametrize("scale", [3, 4])
def test_an_x2_model_starts_another_scale_with_all_but_its_upsampler(tmp_path, scale):
    from srlab.models import build_model
    from srlab.params import ModelParams

    x2 = _edsr_file(tmp_path / "x2.pt", 2)
    model = build_model(ModelParams(name="edsr"), scale)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = checkpoint.initialise_from(model, tmp_path / "x2.pt", "edsr", scale)
    after = model.state_dict()
    assert fresh and all(k.startswith("tail.0.") for k in fresh)  # the pixel-shuffle convolutions
    for key in after:
        expected = before[key] if key in fresh else x2[key]
        assert torch.equal(after[key], expected), key
    assert not any(k.startswith(("head", "body")) for k in fresh)


def test_a_model_starts_from_its_own_scale_entirely_and_not_from_another_arch(tmp_path):
    from srlab.models import build_model
    from srlab.params import ModelParams

    x2 = _edsr_file(tmp_path / "x2.pt", 2)
    model = build_model(ModelParams(name="edsr"), 2)
    assert checkpoint.initialise_from(model, tmp_path / "x2.pt", "edsr", 2) == []
    assert all(torch.equal(v, x2[k]) for k, v in model.state_dict().items())
    with pytest.raises(SrlabError, match="x2.pt: holds edsr weights, which cannot start a srcnn model"):
        checkpoint.initialise_from(build_model(ModelParams(), 2), tmp_path / "x2.pt", "srcnn", 2)


def test_cli_train_init_warm_starts_an_x3_run_from_an_x2_model(tmp_path, photo, rng, capsys):
    folder = tmp_path / "x3"
    save_pairs(folder, "train", crop_pairs(photo, 3, 24, 16, Degradation("bicubic"), rng))
    save_pairs(folder, "val", crop_pairs(photo, 3, 24, 8, Degradation("bicubic"), rng))
    x2 = _edsr_file(tmp_path / "x2.pt", 2)
    edsr_x3 = ["--set", "model.name=edsr", "--set", "data.scale=3", "--set", "data.hr_size=24", "--patches", folder]
    params = train_params_file(tmp_path, epochs=1, lr=1e-9)  # the weights stay (within 1e-6) where they started
    cli("train", "--params", params, *edsr_x3, "--init", tmp_path / "x2.pt", "--out", tmp_path / "warm")
    assert "tensors made for another scale start fresh (tail.0.0.bias, tail.0.0.weight)" in capsys.readouterr().out
    warm = _weights(tmp_path / "warm/model.safetensors")
    for key in ("head.weight", "body.0.body.0.weight", "tail.1.weight"):  # a fresh init differs by ~1e-2
        assert torch.allclose(warm[key], x2[key], atol=1e-6), key
    with pytest.raises(SystemExit):  # another arch: one line naming the file
        cli("train", "--params", params, *edsr_x3[2:], "--init", tmp_path / "x2.pt", "--out", tmp_path / "bad")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x2.pt: holds edsr weights, which cannot start a srcnn model" in err[0]


def test_random_crops_cut_each_pair_at_one_aligned_corner():
    from srlab.data.augment import augment, crop_at, draw_corners

    generator = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)
    lr = hr[..., ::3, ::3].clone()  # a pair whose LR pixel (i, j) is HR pixel (3i, 3j)
    corners = draw_corners(6, 24, 12, 3, generator)
    assert corners.min() >= 0 and corners.max() <= (24 - 12) // 3 and len(set(map(tuple, corners.T.tolist()))) > 1
    cropped = crop_at(hr, corners * 3, 12)
    for n, (y, x) in enumerate(corners.T.tolist()):
        assert torch.equal(cropped[n], hr[n, :, 3 * y : 3 * y + 12, 3 * x : 3 * x + 12])
    no_flips = torch.zeros(3, 6, dtype=torch.bool)
    lr_out, hr_out = augment(lr, hr, no_flips, corners, 12, 3, torch.contiguous_format)
    assert lr_out.shape == (6, 3, 4, 4) and hr_out.shape == (6, 3, 12, 12)
    assert torch.equal(lr_out, hr_out[..., ::3, ::3])  # still a pair


def test_each_of_the_8_symmetries_is_drawn_and_turns_lr_and_hr_alike():
    from srlab.data.augment import augment, draw_flips

    lr = torch.randint(
        0, 256, (1, 3, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )  # random: no symmetry of its own
    hr = lr.repeat_interleave(3, -1).repeat_interleave(3, -2)  # nearest x3: it commutes with every flip
    codes = torch.arange(8)
    flips = torch.stack([(codes >> bit) & 1 for bit in range(3)]).bool()  # every combination once
    lr_out, hr_out = augment(
        lr.expand(8, -1, -1, -1), hr.expand(8, -1, -1, -1), flips, None, 0, 3, torch.contiguous_format
    )
    assert torch.equal(hr_out, lr_out.repeat_interleave(3, -1).repeat_interleave(3, -2))  # each pair turned alike
    # the 8 outputs are the 8 symmetries of the square (4 rotations, each with and without a mirror)
    expected = [torch.rot90(t, k, (-2, -1)) for t in (hr[0], hr[0].transpose(-1, -2)) for k in range(4)]
    made = [t.mul(255).round().to(torch.uint8) for t in hr_out]
    for want in expected:
        assert sum(torch.equal(m, want) for m in made) == 1
    # and training draws each of them about equally often
    drawn = draw_flips(8000, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn[0].long() + 2 * drawn[1].long() + 4 * drawn[2].long(), minlength=8)
    assert counts.min() > 850 and counts.max() < 1150, counts.tolist()


def test_train_flips_horizontal_flips_half_the_samples_and_nothing_else_and_none_turns_none():
    from srlab.data.augment import draw_flips

    every = draw_flips(8000, torch.Generator().manual_seed(0))
    horizontal = draw_flips(8000, torch.Generator().manual_seed(0), "horizontal")
    none = draw_flips(8000, torch.Generator().manual_seed(0), "none")
    assert torch.equal(horizontal[0], every[0]) and not horizontal[1:].any()  # the same draws, the rest kept off
    assert 3800 < int(horizontal[0].sum()) < 4200 and not none.any()
    generator = torch.Generator().manual_seed(0)
    draw_flips(8, generator, "horizontal")  # later draws of a run do not depend on the kind
    again = torch.Generator().manual_seed(0)
    draw_flips(8, again)
    assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=again))


def test_training_on_random_crops_is_seeded_and_differs_from_whole_patches(tmp_path, patches):
    a = train(_job(tmp_path, patches, "a", epochs=1, crop_size=8))
    b = train(_job(tmp_path, patches, "b", epochs=1, crop_size=8))
    whole = train(_job(tmp_path, patches, "whole", epochs=1))
    assert a["history"] == b["history"] and a["history"] != whole["history"]
    for key, value in _weights(tmp_path / "a" / "model.pt").items():
        assert torch.equal(value, _weights(tmp_path / "b" / "model.pt")[key])


def test_a_crop_larger_than_the_prepared_patches_is_one_line(tmp_path, patches):
    p = parse_params(
        {"data": {"hr_size": 32}, "train": {"batch_size": 8, "device": "cpu", "epochs": 1, "crop_size": 24}}
    )
    job = TrainJob.for_stage("mse", p, patches, tmp_path / "m.pt", tmp_path / "c")
    with pytest.raises(SrlabError, match="train.crop_size: 24 is larger than the 16 px patches in"):
        train(job)
    assert not (tmp_path / "c").exists()


def test_ema_weights_are_validated_saved_and_resumed_exactly(tmp_path, patches, monkeypatch):
    """train.ema_decay: the model file and the curves are the moving average's, which a run that
    was interrupted and resumed reproduces bit for bit; 0 leaves today's run as it was."""
    from srlab.ema import WeightAverage

    plain = train(_job(tmp_path, patches, "plain", epochs=3))
    straight = train(_job(tmp_path, patches, "ema", epochs=3, ema_decay=0.9, save_every=1))
    assert straight["history"] != plain["history"]
    assert train(_job(tmp_path, patches, "off", epochs=3, ema_decay=0.0))["history"] == plain["history"]
    # the model file holds the average: not the last step's weights, which last.pt keeps
    state = checkpoint.load(tmp_path / "ema" / "ckpt" / "last.pt")
    model_file = _weights(tmp_path / "ema" / "model.pt")
    assert all(torch.equal(model_file[k], v) for k, v in state["ema"]["model"].items())
    assert not all(torch.equal(model_file[k], v) for k, v in state["model"].items())
    assert state["ema"]["updates"] == 3 * 24 // 8  # one update per step
    # each best checkpoint holds the average of its epoch, which made the score it records
    for metric in ("psnr", "ssim"):
        best = checkpoint.load(tmp_path / "ema" / "ckpt" / f"best_{metric}.pt")
        epoch = best["meta"]["epoch"]
        averaged = checkpoint.load(tmp_path / "ema" / "ckpt" / f"epoch_{epoch:04d}.pt")["ema"]["model"]
        assert all(torch.equal(best["model"][k], v) for k, v in averaged.items()), metric
        assert best["meta"][f"val_{metric}"] == max(row[f"val/{metric}"] for row in straight["history"])
        assert straight["history"][epoch - 1][f"val/{metric}"] == best["meta"][f"val_{metric}"]

    calls = []  # interrupted after 2 epochs, resumed to 3
    real_save = checkpoint.save

    def stop_after_two(path, payload):
        real_save(path, payload)
        if path.name == "last.pt" and payload["meta"]["epoch"] == 2:
            calls.append(path)
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(_job(tmp_path, patches, "resumed", epochs=3, ema_decay=0.9))
    monkeypatch.setattr(checkpoint, "save", real_save)
    resumed = train(_job(tmp_path, patches, "resumed", epochs=3, ema_decay=0.9))
    assert calls and resumed["history"] == straight["history"]
    again = _weights(tmp_path / "resumed" / "model.pt")
    assert all(torch.equal(again[k], v) for k, v in model_file.items())

    # the decay ramps up, so the average of a short run is not mostly the initial weights
    layer = torch.nn.Linear(1, 1, bias=False)
    layer.weight.data.fill_(0.0)
    average = WeightAverage(layer, 0.999)
    layer.weight.data.fill_(1.0)
    for _ in range(10):
        average.update(layer)
    assert 0.5 < float(average.model.weight) < 1.0


def test_an_ema_decay_of_1_or_more_is_refused():
    with pytest.raises(SrlabError, match="train.ema_decay: must be less than 1.0, got 1"):
        parse_params({"train": {"ema_decay": 1}})


def test_the_weight_average_follows_the_ramped_formula_step_by_step():
    """ema = d * ema + (1 - d) * weights with d = min(decay, (1 + t) / (10 + t)) after t updates,
    against a hand-computed average of a weight that moves every step (an average that moved the
    other way, towards the newest weights, or ramped wrongly, would drift from it)."""
    from srlab.ema import WeightAverage

    layer = torch.nn.Linear(1, 1, bias=False).double()
    layer.weight.data.fill_(0.0)
    average, expected = WeightAverage(layer, 0.9), 0.0
    for t in range(1, 41):
        layer.weight.data.fill_(float(t % 7))  # weights that jump around
        average.update(layer)
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * float(t % 7)
        assert float(average.model.weight) == pytest.approx(expected, abs=1e-12), t
    assert average.updates == 40
