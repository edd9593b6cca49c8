"""Model files in a format other tools run: ONNX, for onnxruntime, chaiNNer and the like.

The graph takes `lr` (N x 3 x H x W, RGB float32 in [0, 1]) and gives `sr` (N x 3 x sH x sW), with
height and width dynamic; the model's arch and scale are in the file's metadata_props.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from srlab import checkpoint
from srlab.errors import SrlabError
from srlab.fileio import atomic_path

OPSET = 17
CHECK_SHAPE = (1, 3, 37, 53)  # non-square and odd, so a graph that fixed either side shows
TOLERANCE = 1e-4  # largest difference allowed between onnxruntime's and PyTorch's [0, 1] outputs


def export_onnx(model_path: Path, out: Path, opset: int = OPSET) -> tuple[dict, float | None]:
    """Write the model file `model_path` as ONNX to `out`, checked against PyTorch with onnxruntime
    before it replaces anything; return its meta and the largest difference (None: onnxruntime is
    not installed, so it was not checked). A file that differs by more than TOLERANCE is not written."""
    import onnx

    model, meta = checkpoint.load_model(model_path)
    sample = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():  # the TorchScript exporter's notes on tracing; the check below is what counts
            warnings.simplefilter("ignore")
            # the TorchScript-based exporter: no onnxscript needed, dynamic axes by name
            try:
                torch.onnx.export(
                    model,
                    (sample,),
                    str(tmp),
                    input_names=["lr"],
                    output_names=["sr"],
                    opset_version=opset,
                    dynamic_axes={
                        "lr": {0: "batch", 2: "height", 3: "width"},
                        "sr": {0: "batch", 2: "out_height", 3: "out_width"},
                    },
                    dynamo=False,
                )
            except Exception as exc:  # an opset this torch cannot write, an operator ONNX lacks
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise SrlabError(
                    f"{model_path}: ONNX export at opset {opset} failed ({type(exc).__name__}: {first})"
                ) from None
        graph = onnx.load(str(tmp))
        for key, value in {
            "srlab_arch": meta["arch"],
            "srlab_scale": str(meta["scale"]),
            "input": "lr: N x 3 x H x W RGB float32 in [0, 1]; sr: N x 3 x scale*H x scale*W",
        }.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
        difference = check_onnx(model_path, tmp, name=out)
        if difference is not None and difference > TOLERANCE:
            raise SrlabError(
                f"{out}: onnxruntime's output differs from PyTorch's by {difference:.1e} on a "
                f"{CHECK_SHAPE[2]}x{CHECK_SHAPE[3]} input, more than {TOLERANCE:.0e}; nothing written"
            )
    return meta, difference


def check_onnx(model_path: Path, onnx_path: Path, shape: tuple[int, ...] = CHECK_SHAPE, name: Path | None = None):
    """Largest absolute difference between PyTorch's and onnxruntime's outputs, clamped to [0, 1] as
    an image is saved, on one random input of `shape`; None where onnxruntime is not installed.
    Errors name the file as `name` (the file being written, rather than its temporary copy)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    model, _ = checkpoint.load_model(model_path)
    lr = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(lr).clamp(0, 1).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = np.clip(session.run(["sr"], {"lr": lr.numpy()})[0], 0, 1)
    if got.shape != expected.shape:
        raise SrlabError(f"{name or onnx_path}: gives {got.shape} for {shape}, PyTorch gives {expected.shape}")
    return float(np.abs(got - expected).max())
