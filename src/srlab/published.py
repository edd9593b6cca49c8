"""Published checkpoints (SwinIR, HAT, RCAN, ESRGAN, Real-ESRGAN, SPAN, ...) scored beside srlab's models.

spandrel reads the official files, detects the architecture, its hyper-parameters and the scale,
and unpickles .pth files through a restricted unpickler (no code in a file runs). srlab wraps the
result as one of its own models, so that evaluation, the metrics and the results page treat it
exactly as they treat a trained one: the same degradation, the same Y-PSNR / SSIM and the same
border. Weights are never downloaded: a user puts the file in data/published/ (DVC hashes that
folder) and names it in eval.models, or hands its path to `srlab evaluate`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from torch import nn

from srlab.errors import SrlabError
from srlab.fileio import file_digest

FOLDER = Path("data/published")  # eval.models names files in here


class PublishedModel(nn.Module):
    """A spandrel model behind srlab's interface: RGB in [0, 1], NCHW, in and out; spandrel pads
    an input its architecture cannot take (a window size) and crops the output back."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model  # registered, so .to() and .eval() reach the weights
        self.descriptor = descriptor
        self.scale = descriptor.scale

    def forward(self, lr):
        return self.descriptor(lr)


def load_published(path: Path, scale: int | None = None) -> tuple[PublishedModel, dict]:
    """The model in `path` and what it is (arch, scale, sha256); one line when spandrel cannot
    read it, does not detect it, or it is not 3-channel super-resolution at `scale`."""
    import spandrel
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"{path}: no such checkpoint")
    try:
        descriptor = ModelLoader("cpu").load_from_file(path)
    except UnsupportedModelError:
        raise SrlabError(f"{path}: spandrel {spandrel.__version__} does not detect this architecture") from None
    except pickle.UnpicklingError as exc:
        refused = f"not a plain state dict, refused by spandrel's restricted unpickler ({exc})"
        raise SrlabError(f"{path}: {refused}") from None
    except (ValueError, RuntimeError, OSError, EOFError, KeyError) as exc:  # extension, truncation, text
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SrlabError(f"{path}: not a checkpoint spandrel can read ({reason})") from None
    arch = descriptor.architecture.name
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR":
        raise SrlabError(f"{path}: a {arch} model for {descriptor.purpose}, not super-resolution")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise SrlabError(f"{path}: {arch} takes {descriptor.input_channels} channels, not RGB")
    if scale is not None and descriptor.scale != scale:
        raise SrlabError(f"{path}: {arch} x{descriptor.scale}, but data.scale is {scale}")
    meta = {
        "arch": arch,
        "scale": descriptor.scale,
        "file": path.name,
        "sha256": file_digest(path, "sha256"),
        "loader": f"spandrel {spandrel.__version__}",
    }
    return PublishedModel(descriptor).eval(), meta


def published_files(names: list[str], folder: Path = FOLDER) -> dict[str, Path]:
    """{row name: file} for eval.models: each file's stem names its row in the metrics."""
    files = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise SrlabError(f"eval.models: {path} not found (put published checkpoints in {folder}/)")
        files[Path(name).stem] = path
    return files
