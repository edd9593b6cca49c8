"""Model files: safetensors with their metadata in the header, older .pt files, and ONNX export."""

from __future__ import annotations

import json

import pytest
import torch

from srlab import checkpoint
from srlab.cli import main
from srlab.errors import SrlabError
from srlab.models import MODELS, build_model
from srlab.params import ModelParams, parse_params


def _model_file(path, name="srcnn", scale=2, seed=0):
    """A model file as training writes it, for an untrained `name` network (seeded weights)."""
    torch.manual_seed(seed)
    model = build_model(ModelParams(name=name), scale).eval()
    meta = {
        "arch": name,
        "scale": scale,
        "upsample": "bicubic",
        "residual": True,
        "epochs": 1,
        "params": parse_params({"model": {"name": name}, "data": {"scale": scale, "hr_size": 12 * scale}}).to_dict(),
        "history": [{"epoch": 1, "val/psnr": 30.5}],
    }
    checkpoint.save_model(path, model.state_dict(), meta)
    return model


def test_a_model_file_is_safetensors_that_safetensors_alone_reads_with_arch_scale_and_params(tmp_path):
    from safetensors import safe_open

    model = _model_file(tmp_path / "m.safetensors", "edsr", 3)
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        header = f.metadata()
        weights = {k: f.get_tensor(k) for k in f.keys()}
    assert (header["format"], header["arch"], header["scale"]) == ("srlab-model/1", "edsr", "3")
    meta = json.loads(header["meta"])
    assert meta["params"]["model"]["name"] == "edsr" and meta["params"]["data"]["scale"] == 3
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    loaded, loaded_meta = checkpoint.load_model(tmp_path / "m.safetensors", scale=3)
    assert loaded_meta == meta and isinstance(loaded, type(model))


def test_identical_weights_give_byte_identical_model_files(tmp_path):
    """dvc.lock hashes model files; safetensors' own writer orders the header at random."""
    for name in ("a", "b"):
        _model_file(tmp_path / f"{name}.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    _model_file(tmp_path / "c.safetensors", seed=1)
    assert (tmp_path / "c.safetensors").read_bytes() != (tmp_path / "a.safetensors").read_bytes()


def test_model_files_of_earlier_versions_still_load(tmp_path):
    model = build_model(ModelParams(), 2)
    torch.save(
        {"model": model.state_dict(), "meta": {"arch": "srcnn", "scale": 2, "upsample": "bicubic", "residual": True}},
        tmp_path / "old.pt",
    )
    loaded, meta = checkpoint.load_model(tmp_path / "old.pt", scale=2)
    assert meta["arch"] == "srcnn"
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", b"not a model at all"])
def test_a_broken_or_foreign_safetensors_file_is_one_line(tmp_path, content):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(SrlabError, match=r"m.safetensors: not a loadable srlab model file") as err:
        checkpoint.load_model(path)
    assert "\n" not in str(err.value)
    half = tmp_path / "half.safetensors"
    _model_file(half)
    half.write_bytes(half.read_bytes()[:-100])  # truncated
    with pytest.raises(SrlabError, match="half.safetensors: not a loadable srlab model file"):
        checkpoint.load_model(half)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_exports_to_onnx_that_onnxruntime_runs_like_pytorch(tmp_path, name, capsys):
    """Dynamic height and width: exported from a 32x48 sample, run on a 37x53 input, within 1e-4."""
    import onnx
    import onnxruntime

    scale = 4 if name == "srresnet" else 2
    model = _model_file(tmp_path / "m.safetensors", name, scale)
    main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx")])
    out = capsys.readouterr().out
    assert f"{name} x{scale}, ONNX opset 17, dynamic height and width" in out
    assert "onnxruntime matches PyTorch on a 37x53 input" in out
    lr = torch.rand(2, 3, 19, 26, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(lr).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["sr"], {"lr": lr.numpy()})[0]
    assert got.shape == (2, 3, 19 * scale, 26 * scale)
    assert abs(got - expected).max() < 1e-4
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert (props["srlab_arch"], props["srlab_scale"]) == (name, str(scale))


def test_export_of_a_missing_model_or_at_a_bad_opset_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path / "none.safetensors"), "--onnx", str(tmp_path / "m.onnx")])
    assert "none.safetensors: no such model file" in capsys.readouterr().err
    _model_file(tmp_path / "m.safetensors")
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx"), "--opset", "3"])
    err = capsys.readouterr().err
    assert "ONNX export at opset 3 failed" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.onnx*")) and not list(tmp_path.glob(".m.onnx*"))


def test_an_export_that_onnxruntime_runs_differently_fails_in_one_line_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    """The check must be able to fail: a graph whose last convolution's bias is off by 1e-3 (as a
    wrong export could be) gives outputs 1e-3 away from PyTorch's; `srlab export` exits 1 with one
    line naming the largest difference, and leaves no ONNX file behind."""
    import onnx
    from onnx import numpy_helper

    _model_file(tmp_path / "m.safetensors")
    real_save = onnx.save

    def save_perturbed(graph, path, *args, **kwargs):
        bias = [t for t in graph.graph.initializer if t.name.endswith("bias")][-1]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 1e-3, bias.name))
        return real_save(graph, path, *args, **kwargs)

    monkeypatch.setattr(onnx, "save", save_perturbed)
    (tmp_path / "m.onnx").write_bytes(b"an earlier export")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1
    assert "m.onnx: onnxruntime's output differs from PyTorch's by 1.0e-03" in err and "nothing written" in err
    assert (tmp_path / "m.onnx").read_bytes() == b"an earlier export"  # the earlier file is kept whole
    assert not list(tmp_path.glob(".m.onnx*"))
