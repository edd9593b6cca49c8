"""Published checkpoints (SwinIR, HAT, RCAN, ESRGAN, Real-ESRGAN, SPAN, ...) scored beside srlab's models.

spandrel reads the official files, detects the architecture, its hyper-parameters and the scale,
and unpickles .pth files through a restricted unpickler (no code in a file runs). srlab wraps the
result as one of its own models, so that evaluation, the metrics and the results page treat it
exactly as they treat a trained one: the same degradation, the same Y-PSNR / SSIM and the same
border. EDSR-PyTorch's files, which spandrel does not read, go into srlab's own EDSR. Weights are
never downloaded: a user puts the file in data/published/ (DVC hashes that folder) and names it in
eval.models, or hands its path to `srlab evaluate`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
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


class OfficialEDSR(nn.Module):
    """The official EDSR-PyTorch checkpoints (Lim et al.: edsr_baseline_x2-1bc95232.pt, edsr_x4-4f62e9ef.pt,
    ...), which spandrel does not read: srlab's EDSR holds their weights, and this wrapper adds what
    srlab's lacks, their 0-255 input range and the DIV2K mean they subtract and add back."""

    MEAN = (0.4488, 0.4371, 0.4040)  # EDSR-PyTorch's rgb_mean, times rgb_range 255 in its MeanShift

    def __init__(self, state: dict):
        from srlab.models.edsr import EDSR

        super().__init__()
        channels = state["head.0.weight"].shape[0]
        blocks = sum(1 for k in state if k.startswith("body.") and k.endswith(".body.0.weight"))
        ups = [state[k].shape[0] // channels for k in sorted(state) if k.startswith("tail.0.") and k.endswith("weight")]
        self.scale = {(4,): 2, (9,): 3, (4, 4): 4, (4, 4, 4): 8}[tuple(ups)]
        # the paper's full model (256 channels, 32 blocks) scales each residual by 0.1, the baseline by 1
        self.net = EDSR(self.scale, channels, blocks, res_scale=0.1 if channels == 256 else 1.0)
        # srlab's names: head is one conv, not a Sequential; a block's second conv is body.3, not body.2
        ours = {re.sub(r"^head\.0\.", "head.", k).replace(".body.2.", ".body.3."): v for k, v in state.items()}
        self.net.load_state_dict({k: v for k, v in ours.items() if "_mean." not in k})
        self.register_buffer("mean", 255 * torch.tensor(self.MEAN).view(1, 3, 1, 1))

    def forward(self, lr):
        return ((self.net(lr * 255 - self.mean) + self.mean) / 255).clamp(0, 1)


EDSR_BODY = re.compile(r"body\.\d+\.(body\.[02]\.)?(weight|bias)")  # residual blocks, then one conv


def _official_edsr(path: Path) -> tuple[OfficialEDSR, dict] | None:
    """EDSR-PyTorch's layout (sub_mean, head, body.N.body.0/2, tail), or None for any other file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a plain file of tensors: spandrel's loader says why
        return None
    if not isinstance(state, dict) or not {"sub_mean.weight", "add_mean.bias", "head.0.weight"} <= set(state):
        return None
    if not all(EDSR_BODY.fullmatch(k) for k in state if k.startswith("body.")):
        return None  # RCAN and the rest of EDSR-PyTorch's family share the names, not the blocks
    try:
        model = OfficialEDSR(state)
    except (KeyError, RuntimeError) as exc:
        raise SrlabError(f"{path}: EDSR-PyTorch's names, but not its layout ({str(exc).splitlines()[0]})") from None
    return model.eval(), {"arch": "EDSR (EDSR-PyTorch)", "scale": model.scale, "loader": "srlab's EDSR mapping"}


def load_published(path: Path, scale: int | None = None) -> tuple[nn.Module, dict]:
    """The model in `path` and what it is (arch, scale, sha256); one line when spandrel cannot
    read it, does not detect it, or it is not 3-channel super-resolution at `scale`."""
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"{path}: no such checkpoint")
    edsr = _official_edsr(path)
    model, meta = edsr if edsr else _spandrel(path)
    if scale is not None and meta["scale"] != scale:
        raise SrlabError(f"{path}: {meta['arch']} x{meta['scale']}, but data.scale is {scale}")
    return model, {**meta, "file": path.name, "sha256": file_digest(path, "sha256")}


def _spandrel(path: Path) -> tuple[PublishedModel, dict]:
    import spandrel
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

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
    return PublishedModel(descriptor).eval(), {
        "arch": arch,
        "scale": descriptor.scale,
        "loader": f"spandrel {spandrel.__version__}",
    }


def describe(meta: dict) -> str:
    """One line on what a published checkpoint is, for the CLI and the results page."""
    return f"{meta['arch']} x{meta['scale']} ({meta['loader']}), sha256 {meta['sha256']}"


def published_files(names: list[str], folder: Path = FOLDER) -> dict[str, Path]:
    """{row name: file} for eval.models: each file's stem names its row in the metrics."""
    files = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise SrlabError(f"eval.models: {path} not found (put published checkpoints in {folder}/)")
        files[Path(name).stem] = path
    return files
