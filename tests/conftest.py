"""Shared fixtures: small images made on the fly, the data mirror, tiny parameters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


ASKED_FOR_BY_NAME = ("recipes", "long")  # CI runs each with -m after the README's tests

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One compute thread per xdist worker, in it and in the processes it starts (dvc repro's
    # stages): two workers of torch's default one-per-core threads on the same cores wait on each
    # other at every parallel kernel. Two bench runs at once took 280 s each so, 135 s each pinned.
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The recipes' end-to-end runs and the longest guarantee checks (minutes) only when asked for
    by name: `pytest -m recipes`, `pytest -m long`. The README's command stays within 10 minutes."""
    asked = config.getoption("markexpr") or ""
    skipped = [m for m in ASKED_FOR_BY_NAME if m not in asked]
    left_out = [item for item in items if any(item.get_closest_marker(m) for m in skipped)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


@pytest.fixture(autouse=True)
def _no_vs_code_signal(monkeypatch):
    """dvclive tells VS Code of each epoch through one file under the repo's .dvc/tmp, and at the end
    checks that it exists, then removes it: test workers training in this repo at once race on it
    (a FileNotFoundError seen on 2026-12-03). Tests leave the signal out; each run's curves stay."""
    import dvclive.vscode

    monkeypatch.setattr(dvclive.vscode, "_find_non_queue_root", lambda: None)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def photo(rng):
    """A smooth-ish 96x120 RGB image (random noise would make every interpolation look equal)."""
    y, x = np.mgrid[0:96, 0:120]
    base = np.stack([np.sin(x / 7.0), np.cos(y / 5.0), np.sin((x + y) / 11.0)], axis=-1)
    noise = rng.normal(0, 0.05, base.shape)
    return np.clip((base + noise + 1.0) * 127.5, 0, 255).astype(np.uint8)


def mirror_or_skip() -> Path:
    """The local data mirror (CI always has it: there a missing mirror is a failure, not a skip)."""
    candidates = [os.environ.get("SRLAB_DATA_MIRROR"), str(REPO.parent / "shared" / "data")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "Set5").is_dir():
            return Path(candidate).resolve()  # the end-to-end tests hand it to processes in other folders
    if os.environ.get("CI"):
        pytest.fail("CI needs the data mirror: set SRLAB_DATA_MIRROR or put shared/data beside the repo")
    pytest.skip("no data mirror (SRLAB_DATA_MIRROR) on this machine")


@pytest.fixture
def mirror() -> Path:
    return mirror_or_skip()


@pytest.fixture
def patches(tmp_path, photo, rng):
    """A prepared store of 24 train and 8 val x2 pairs of 16 px cut from `photo`."""
    from srlab.data.patches import Degradation, crop_pairs
    from srlab.data.store import save_pairs

    folder = tmp_path / "patches"
    save_pairs(folder, "train", crop_pairs(photo, 2, 16, 24, Degradation("bicubic"), rng))
    save_pairs(folder, "val", crop_pairs(photo, 2, 16, 8, Degradation("bicubic"), rng))
    return folder


def page_data(html: Path) -> dict:
    """The data a results page carries (the JSON in its script element)."""
    import json

    return json.loads(html.read_text().split('type="application/json">')[1].split("</script>")[0])


def cli(*args) -> None:
    """`srlab ARGS...` in this process."""
    from srlab.cli import main

    main([str(a) for a in args])


def train_params_file(tmp_path: Path, **train) -> Path:
    """A params.yaml of CPU batches of 8 and these train.* values; every other key its default."""
    import yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"batch_size": 8, "device": "cpu", **train}}))
    return path


def dvc_env(mirror: Path | None) -> dict:
    """The environment of a DVC run in a project copy: this venv's tools first, the mirror, a git author."""
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    env.pop("SRLAB_DATA_MIRROR", None)
    if mirror:
        env["SRLAB_DATA_MIRROR"] = str(mirror)
    return env


def run_ok(cmd: str, cwd: Path, env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    """`cmd` in a shell; with `ok`, a failure fails the test with the end of its output."""
    done = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok and done.returncode:
        pytest.fail(f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def copy_project(repo: Path, mirror: Path | None) -> tuple[Path, dict]:
    """This repository's code, params and recipes (no outputs, tests or docs) in `repo`, as a
    fresh git + DVC project with one commit; and the environment to run DVC there."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    )
    for name in listed.stdout.splitlines():
        if (
            name == "dvc.lock"
            or name.startswith(("reports/", "models/", "tests/", "docs/"))
            or (
                name.startswith("data/")
                and not name.startswith(
                    ("data/photos/", "data/mirror/README", "data/weights/README", "data/published/README")
                )
            )
        ):  # the default folder source, and the tracked mirror and weights folders (empty) stay
            continue
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    env = dvc_env(mirror)
    run_ok("git init -q -b main && git add -A && git commit -qm project", repo, env)
    return repo, env
