"""Shared fixtures: small images made on the fly, the data mirror, tiny parameters."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


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
