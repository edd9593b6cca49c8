"""Parameters: params.yaml declares every key, and a bad key or value stops with one clear line."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from srlab.errors import SrlabError
from srlab.params import Params, load_params, parse_params


def _keys(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{key}.")
        else:
            yield prefix + key


def test_params_yaml_declares_every_key_with_the_library_default():
    # dvc exp run -S refuses keys the file lacks, so each one must be there
    on_disk = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(_keys(on_disk)) == set(_keys(Params().to_dict()))
    assert load_params(REPO / "params.yaml") == Params()


def test_the_interface_key_loss_vgg_weight_exists():
    assert load_params(REPO / "params.yaml", ["loss.vgg_weight=0.3"]).loss.vgg_weight == 0.3


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"loss": {"vgg_wieght": 0.3}}, "loss.vgg_wieght: unknown parameter; did you mean loss.vgg_weight?"),
        (
            {"model": {"name": "srcn"}},
            "model.name: 'srcn' is not one of srcnn, srcnn915, rescnn, srresnet, johnson, edsr; did you mean 'srcnn'?",
        ),
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer, got 'ten'"),
        ({"train": {"lr": 0}}, "train.lr: must be greater than 0.0"),
        ({"data": {"scale": 5}}, "data.scale: 5 is not one of 2, 3, 4"),
        ({"loss": {"vgg_layers": {"relu2_2": -1}}}, "loss.vgg_layers.relu2_2: must be at least 0.0"),
        ({"loss": {"vgg_layers": {"relu5_3": 1}}}, "loss.vgg_layers.relu5_3: unknown parameter"),
        (
            {"eval": {"sets": ["Set6"]}},
            "eval.sets: 'Set6' is not one of Set5, Set14, B100, Urban100; did you mean 'Set5'?",
        ),
        (
            {"loss": {"vgg_init": "missing.pth"}},
            "loss.vgg_init: 'missing.pth' is neither 'imagenet' nor 'random' nor an existing file",
        ),
        ({"train": {"residual": True}}, "train.residual: unknown parameter"),
        ({"model": {"residual": "yes"}}, "model.residual: expected true or false, got 'yes'"),
        (
            {"loss": {"mse_weight": 0}},
            "loss: mse_weight, l1_weight and ssim_weight are all 0; train_mse needs at least one above 0",
        ),
        ({"eval": {"vgg_layers": {"relu2_2": 0}}}, "eval.vgg_layers: every layer weight is 0"),
        (
            {"loss": {"vgg_layers": {"relu1_2": 0, "relu2_2": 0, "relu3_3": 0, "relu4_3": 0}}},
            "loss.vgg_layers: every layer weight is 0",
        ),
        ({"train": {"lr_schedule": "step"}}, "train.lr_schedule: 'step' is not one of constant, cosine"),
        ({"data": {"scale": 3}}, "data: hr_size: 64 is not a multiple of scale (3)"),
        (
            {"train": {"crop_size": 33}},
            "train.crop_size: 33 must be a multiple of data.scale (2) and at most data.hr_size (64), or 0",
        ),
        (
            {"train": {"crop_size": 96}},
            "train.crop_size: 96 must be a multiple of data.scale (2) and at most data.hr_size (64), or 0",
        ),
    ],
)
def test_bad_parameters_name_the_key_the_value_and_what_is_allowed(raw, message):
    with pytest.raises(SrlabError) as err:
        parse_params(raw, source="params.yaml")
    assert str(err.value).startswith("params.yaml: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_parse_values_as_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1\n")
    p = load_params(path, ["train.epochs=3", "eval.sets=[Set5]", "model.residual=false"])
    assert (p.seed, p.train.epochs, p.eval.sets, p.model.residual) == (1, 3, ("Set5",), False)


def test_unreadable_params_file_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(SrlabError, match="params.yaml: not valid YAML"):
        load_params(path)
    with pytest.raises(SrlabError, match="no such parameter file"):
        load_params(tmp_path / "nope.yaml")


def test_params_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Params().train.epochs = 3


def _tree(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))
    }


def test_a_typo_stops_every_stage_before_it_writes_anything(tmp_path):
    """Each stage as dvc.yaml runs it, in a folder whose params.yaml has a typo and whose outputs
    hold an earlier run: one line naming the key, exit 1, and not one byte on disk changed."""
    import os
    import shlex
    import subprocess
    import sys

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (tmp_path / "params.yaml").write_text("loss:\n  vgg_wieght: 0.3\n")
    for stage in stages.values():  # an earlier run's outputs, which a failed stage must not touch
        for out in stage.get("outs", []):
            path = tmp_path / (out if isinstance(out, str) else next(iter(out)))
            target = path if path.suffix else path / "kept.txt"  # a file, or a folder holding one
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("an earlier run")
    before = _tree(tmp_path)
    running = {}
    for name, stage in stages.items():  # all at once: each spends its time importing torch
        argv = shlex.split(stage["cmd"])
        assert argv[:2] == ["python", f"stages/{name}.py"], stage["cmd"]
        running[name] = subprocess.Popen(
            [sys.executable, str(REPO / argv[1]), *argv[2:]],
            cwd=tmp_path,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in running.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, (name, err)
        assert (
            err.strip()
            == f"{name}: error: params.yaml: loss.vgg_wieght: unknown parameter; did you mean loss.vgg_weight?"
        ), name
    assert _tree(tmp_path) == before


# the version string, a docstring, the exception class, argv parsing: nothing a stage writes
_CANNOT_CHANGE_OUTPUTS = {"__init__.py", "data/__init__.py", "errors.py", "entry.py"}
_IMPORTED = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # imports only: main() runs under __main__
ours = [m for name, m in sys.modules.items() if name.split(".")[0] == "srlab"]
loaded = [m.__file__ for m in ours if getattr(m, "__file__", None)]
print(json.dumps(sorted(loaded)))
"""


def test_every_stage_depends_on_the_srlab_code_it_imports():
    """DVC re-runs a stage when one of its deps changes: a module the stage imports but dvc.yaml
    does not list would let a code change leave stale outputs (and check-lock would not see it)."""
    import json
    import subprocess
    import sys

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", _IMPORTED, str(REPO / "stages" / f"{name}.py")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in stages
    }
    for name, proc in running.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        deps = [REPO / d for d in stages[name]["deps"]]
        for module in json.loads(out):
            path = Path(module).resolve()
            if path.relative_to(REPO / "src" / "srlab").as_posix() in _CANNOT_CHANGE_OUTPUTS:
                continue
            assert any(path == dep or dep in path.parents for dep in deps), (
                f"stage {name}: dvc.yaml lacks {path.relative_to(REPO)}"
            )


def test_every_path_a_stage_command_names_is_one_of_its_deps_or_outs():
    """A path handed to a stage script (`--test data/raw/test`) is read or written by it: DVC must
    hash it as a dep, or own it as an out, or a change to it leaves the stage's outputs stale. The
    plots stage read data/raw/test without listing it until 2026-12-03. Left out on purpose: the
    resumable checkpoints (outside the outs, so DVC does not delete them) and the download cache."""
    import shlex

    kept_outside = ("checkpoints/", "data/downloads")
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        words = shlex.split(stage["cmd"])
        owned = [*stage["deps"], *(next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"])]
        owned += [next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])]
        for flag, value in zip(words, words[1:]):
            if not flag.startswith("--") or value.startswith(kept_outside):
                continue
            inside = any(value == p or value.startswith(p.rstrip("/") + "/") for p in owned)
            holds_outs = any(p.startswith(value.rstrip("/") + "/") for p in owned)  # plots' --out reports
            assert inside or holds_outs, f"stage {name}: {flag} {value} is neither a dep nor an out"


def test_a_bare_off_reads_as_off_though_yaml_1_1_makes_it_false():
    """`dvc exp run -S eval.lpips=off` and `lpips: off` in params.yaml both reach srlab as False."""
    assert parse_params(yaml.safe_load("eval: {lpips: off}")).eval.lpips == "off"
    with pytest.raises(SrlabError, match="eval.lpips: 'on' is not one of auto, off"):
        parse_params({"eval": {"lpips": True}})


def test_every_stage_that_reads_a_weights_path_depends_on_data_weights():
    """A weights file named by loss.*_init and kept in data/weights is hashed by DVC only for the
    stages that list the folder: every stage that reads one of those params must (download only
    checks that ImageNet files can be had)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    inits = {"loss", "loss.vgg_init", "loss.vgg19_init", "loss.resnet_init"}
    readers = {name for name, stage in stages.items() if inits & set(stage.get("params", []))} - {"download"}
    assert readers == {"train_mse", "train_perceptual", "evaluate", "plots"}
    for name in readers:
        assert "data/weights" in stages[name]["deps"], name
    assert "${data.mirror}" in stages["download"]["deps"] and "${data.train_dir}" in stages["download"]["deps"]


# Read by a stage but deliberately not in its dvc.yaml params: the outputs do not depend on them.
_UNLISTED_READS = {
    "prepare": {"data.workers"},  # the store is byte-identical whatever the number of workers
}
# Listed for a stage that reads them only where this test's switches do not reach.
_LISTED_UNREAD: dict[str, set[str]] = {}


def _stage_commands() -> dict[str, list[str]]:
    import shlex

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: shlex.split(stage["cmd"])[1:] for name, stage in stages.items()}


def _listed(stage: dict) -> set[str]:
    """A stage's dvc.yaml params, a whole section (`loss`) expanded into its keys."""
    sections = {f.name: f.type for f in dataclasses.fields(Params)}
    listed = set()
    for entry in stage.get("params", []):
        if entry in sections and entry != "seed":
            section = getattr(Params(), entry)
            listed |= {f"{entry}.{f.name}" for f in dataclasses.fields(section)}
        else:
            listed.add(entry)
    return listed


def test_each_stage_reads_exactly_the_params_dvc_yaml_lists_for_it(tmp_path, photo, monkeypatch):
    """DVC re-runs a stage only for the params it lists: a param read but not listed leaves stale
    outputs after `dvc exp run -S`, one listed but never read re-runs it for nothing. Each stage is
    run from its dvc.yaml command on tiny data with every switch that changes what is read turned on
    (both store layouts; perceptual, adversarial, EMA, rotation, crops, self-ensemble, histogram
    matching, LPIPS, RGB scores), recording every field of params read through the library. The
    whole params go into model-file headers and the resume fingerprint on purpose (not recorded as
    reads): a model file describes its run on its own, and `srlab resume` rebuilds the run from it."""
    import runpy
    import sys

    from PIL import Image

    import srlab.params as params_module
    import srlab.training as training

    reads: dict[str, set[str]] = {}
    current, paused = [None], [0]
    owned: set[int] = set()  # the params the stage loaded, not e.g. a ModelParams rebuilt from a model file

    def record(section: str, cls) -> None:
        fields = {f.name for f in dataclasses.fields(cls)}

        def __getattribute__(self, name):
            if name in fields and current[0] and not paused[0] and id(self) in owned:
                reads.setdefault(current[0], set()).add(f"{section}.{name}" if section else name)
            return object.__getattribute__(self, name)

        monkeypatch.setattr(cls, "__getattribute__", __getattribute__)

    def unrecorded(fn):
        def call(*args, **kwargs):
            paused[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                paused[0] -= 1

        return call

    for f in dataclasses.fields(Params):
        if f.name != "seed":
            record(f.name, type(getattr(Params(), f.name)))
    monkeypatch.setattr(
        Params,
        "__getattribute__",
        lambda self, name: (
            reads.setdefault(current[0], set()).add("seed")
            if name == "seed" and current[0] and not paused[0]
            else None,
            object.__getattribute__(self, name),
        )[1],
    )
    monkeypatch.setattr(Params, "to_dict", unrecorded(Params.to_dict))  # headers, fingerprints: the whole record

    alive = []  # every loaded Params kept alive: a freed one's id could be reused by a ModelParams rebuilt from a file

    def loaded(*args, **kwargs):
        p = unrecorded(load_params)(*args, **kwargs)  # its validation is not a read
        owned.update(id(object.__getattribute__(p, f.name)) for f in dataclasses.fields(Params))
        owned.add(id(p))
        alive.append(p)
        return p

    monkeypatch.setattr(params_module, "load_params", loaded)
    monkeypatch.setattr(training, "_fingerprint", unrecorded(training._fingerprint))  # resume's, not an output's

    photos, mirror = tmp_path / "photos", tmp_path / "data" / "mirror" / "Set5"
    for folder in (photos, mirror, tmp_path / "data" / "weights"):
        folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(photo[i * 8 :, i * 8 :]).save(photos / f"{i}.png")
    Image.fromarray(photo[:40, :48]).save(mirror / "a.png")
    switches = {
        "seed": 1,
        "data": {
            "train_source": "folder",
            "train_dir": str(photos),
            "hr_size": 24,
            "patches_per_image": 4,
            "degradation": "gaussian",
            "workers": 1,
        },
        "model": {"discriminator": "dense"},
        "train": {
            "epochs": 1,
            "perceptual_epochs": 1,
            "batch_size": 4,
            "device": "cpu",
            "crop_size": 16,
            "ema_decay": 0.9,
            "rotate_degrees": 5.0,
            "epoch_samples": 8,
            "save_every": 1,
            "lr_schedule": "cosine",
            "warmup_steps": 1,
        },
        "loss": {
            "adversarial_weight": 0.001,
            "vgg19_weight": 0.5,
            "resnet_weight": 0.5,
            "l1_weight": 0.5,
            "ssim_weight": 0.5,
        },
        "eval": {
            "sets": ["Set5"],
            "degradation": "gaussian",
            "self_ensemble": True,
            "histogram_match": True,
            "rgb": True,
        },
        "plots": {"crop": 16},
    }
    monkeypatch.chdir(tmp_path)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    commands = _stage_commands()

    def run_stage(name: str, params: dict, extra: list[str] = ()) -> None:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        script, *args = commands[name]
        monkeypatch.setattr(sys, "argv", [script, *args, *extra])
        current[0] = name
        try:
            runpy.run_path(str(REPO / script), run_name="__main__")
        except SystemExit as stop:
            assert not stop.code, f"stage {name} failed"
        finally:
            current[0] = None

    for name in stages:
        run_stage(name, switches)
    tiles = {**switches, "data": {**switches["data"], "layout": "tiles", "tile_step": 12}}
    run_stage("prepare", tiles, ["--out", "data/tiles", "--report", "tiles.json"])  # the later --out wins

    problems = []
    for name, stage in stages.items():
        listed, read = _listed(stage), reads.get(name, set())
        missing = read - listed - _UNLISTED_READS.get(name, set())
        unread = listed - read - _LISTED_UNREAD.get(name, set())
        problems += [f"stage {name} reads params dvc.yaml does not list: {sorted(missing)}"] if missing else []
        problems += [f"stage {name} lists params it never read here: {sorted(unread)}"] if unread else []
    assert not problems, "\n".join(problems)
