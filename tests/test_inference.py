"""Whole-image super-resolution: tiles that agree with the untiled result, any size, any mode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from srlab import checkpoint
from srlab.cli import main
from srlab.inference import CHANNELS_LAST, super_resolve
from srlab.models.srcnn import SRCNN


@pytest.fixture
def srcnn():
    torch.manual_seed(0)
    return SRCNN(scale=2).eval()


@pytest.mark.parametrize("scale", [2, 3])
def test_tiled_and_whole_image_outputs_agree(photo, scale):
    torch.manual_seed(0)
    model = SRCNN(scale=scale).eval()
    whole = super_resolve(model, photo, "cpu", raw=True)
    tiled = super_resolve(model, photo, "cpu", tile=32, overlap=16, raw=True)
    assert whole.shape == tiled.shape == (photo.shape[0] * scale, photo.shape[1] * scale, 3)
    assert np.abs(whole - tiled).max() < 1e-5


def test_a_one_pixel_image_is_upscaled(srcnn):
    out = super_resolve(srcnn, np.full((1, 1, 3), 200, np.uint8), "cpu", tile=256)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8


class _Nearest(torch.nn.Module):
    """A stand-in model as cheap as a copy, that records the largest input it is given."""

    scale = 2

    def __init__(self):
        super().__init__()
        self.largest = 0

    def forward(self, x):
        self.largest = max(self.largest, x.shape[-1] * x.shape[-2])
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def test_a_large_image_never_reaches_the_model_whole():
    lr = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    model = _Nearest()
    out = super_resolve(model, lr, "cpu", tile=256, overlap=16)
    assert out.shape == (4000, 6000, 3)
    assert model.largest <= (256 + 2 * 16) ** 2  # memory is set by the tile, not the image
    assert np.array_equal(out[::2, ::2], lr)


def _model_file(tmp_path, srcnn):
    path = tmp_path / "m.pt"
    meta = {"arch": "srcnn", "scale": 2, "upsample": "bicubic", "residual": True}
    checkpoint.save(path, {"model": srcnn.state_dict(), "meta": meta})
    return path


def _cli_super_resolve(tmp_path, srcnn, *args) -> None:
    """`srlab super-resolve` with a model file of `srcnn`, writing into tmp_path/out."""
    main(
        [
            "super-resolve",
            "--checkpoint",
            str(_model_file(tmp_path, srcnn)),
            "--out",
            str(tmp_path / "out"),
            *map(str, args),
        ]
    )


def test_cli_upscales_grey_and_rgba_inputs(tmp_path, srcnn, photo, capsys):
    Image.fromarray(photo[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])).save(tmp_path / "rgba.png")
    _cli_super_resolve(tmp_path, srcnn, "--tile", 40, "--histogram-match", tmp_path / "grey.png", tmp_path / "rgba.png")
    for name in ("grey_x2.png", "rgba_x2.png"):
        with Image.open(tmp_path / "out" / name) as img:
            assert img.size == (2 * photo.shape[1], 2 * photo.shape[0]) and img.mode == "RGB"


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing input", "nope.png: no such file"),
        ("not an image", "fake.png: cannot decode"),
        ("hostile checkpoint", "not a loadable srlab checkpoint"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, srcnn, photo, capsys, case, message):
    model = _model_file(tmp_path, srcnn)
    target = tmp_path / "nope.png"
    if case == "not an image":
        target = tmp_path / "fake.png"
        target.write_text("hello")
    if case == "hostile checkpoint":
        model.write_bytes(b"\x80\x04cos\nsystem\n.")
        target = tmp_path / "ok.png"
        Image.fromarray(photo).save(target)
    with pytest.raises(SystemExit) as stop:
        main(["super-resolve", "--checkpoint", str(model), "--out", str(tmp_path / "out"), str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 1 and len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def _cdf_matched(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Histogram matching of one channel by hand: each source value goes to the reference value at
    the same quantile, interpolated, then rounded."""
    values, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = np.unique(reference.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    ref_quantiles = np.cumsum(ref_counts) / reference.size
    return np.rint(np.interp(quantiles, ref_quantiles, ref_values))[inverse].reshape(source.shape)


def test_histogram_matching_matches_each_channel_on_its_own_and_rounds(photo):
    from srlab.inference import histogram_match

    source = np.ascontiguousarray(np.dstack([photo[..., 2] // 2, photo[..., 0], 255 - photo[..., 1]]))
    matched = histogram_match(source, photo)
    assert matched.shape == source.shape and matched.dtype == np.uint8
    for c in range(3):  # a joint matching would mix the channels' values; a truncating one is 0.5 darker
        assert np.array_equal(matched[..., c], _cdf_matched(source[..., c], photo[..., c])), c


def test_histogram_matched_scores_match_each_output_to_its_lr_input_made_by_eval_degradation(tmp_path, srcnn, photo):
    """Matching to the ground truth would leak it into the score; eval.degradation, not
    data.degradation, makes the input."""
    from srlab.data.degrade import downscale
    from srlab.evaluation import evaluate
    from srlab.inference import histogram_match
    from srlab.params import parse_params

    (tmp_path / "test" / "Set5").mkdir(parents=True)
    hr = photo[:48, :40]
    Image.fromarray(hr).save(tmp_path / "test" / "Set5" / "a.png")
    params = parse_params(
        {
            "data": {"degradation": "bicubic"},
            "eval": {"sets": ["Set5"], "histogram_match": True, "degradation": "bilinear"},
            "train": {"device": "cpu"},
        }
    )
    evaluate(params, tmp_path / "test", {"srcnn_mse": _model_file(tmp_path, srcnn)}, tmp_path / "sr")
    out = {
        m: np.asarray(Image.open(tmp_path / "sr" / "Set5" / m / "a.png")) for m in ("srcnn_mse", "srcnn_mse_histmatch")
    }
    lr = downscale(hr, 2, "bilinear", 1.0)
    assert np.array_equal(out["srcnn_mse"], super_resolve(srcnn, lr, "cpu"))
    assert np.array_equal(out["srcnn_mse_histmatch"], histogram_match(out["srcnn_mse"], lr))
    assert not np.array_equal(out["srcnn_mse_histmatch"], histogram_match(out["srcnn_mse"], hr))


class _Recording(torch.nn.Module):
    """A model that records the largest input it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.scale, self.largest = model, model.scale, 0

    def forward(self, x):
        self.largest = max(self.largest, x.shape[-1] * x.shape[-2])
        return self.model(x)


def test_cli_tile_and_histogram_match_take_effect(tmp_path, srcnn, photo, monkeypatch):
    from srlab.inference import histogram_match

    lr = photo[:40, :30]
    Image.fromarray(lr).save(tmp_path / "a.png")
    model = _Recording(srcnn)
    monkeypatch.setattr(checkpoint, "load_model", lambda path: (model, {"scale": 2}))

    def run(*options):
        main(
            ["super-resolve", "--checkpoint", "m.pt", "--out", str(tmp_path / "out"), *options, str(tmp_path / "a.png")]
        )
        return np.asarray(Image.open(tmp_path / "out" / "a_x2.png"))

    plain = run()
    assert model.largest == 40 * 30 and np.array_equal(plain, super_resolve(srcnn, lr, "cpu"))
    model.largest = 0
    tiled = run("--tile", "16", "--overlap", "4")
    assert model.largest <= (16 + 2 * 4) ** 2 and np.abs(tiled.astype(int) - plain).max() <= 1
    matched = run("--histogram-match")
    assert np.array_equal(matched, histogram_match(plain, lr)) and not np.array_equal(matched, plain)


@pytest.mark.parametrize(
    "option, method", [("histogram_match", "srcnn_mse_histmatch"), ("self_ensemble", "srcnn_mse_x8")]
)
def test_evaluate_scores_post_processed_outputs_when_asked(tmp_path, srcnn, photo, option, method):
    from srlab.evaluation import evaluate
    from srlab.params import parse_params

    (tmp_path / "test" / "Set5").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "test" / "Set5" / "a.png")
    params = parse_params({"eval": {"sets": ["Set5"], option: True}, "train": {"device": "cpu"}})
    summary, table = evaluate(params, tmp_path / "test", {"srcnn_mse": _model_file(tmp_path, srcnn)}, tmp_path / "sr")
    assert set(summary["Set5"]) == {"bicubic", "srcnn_mse", method}
    assert summary["Set5"][method]["psnr"] != summary["Set5"]["srcnn_mse"]["psnr"]
    assert (tmp_path / "sr" / "Set5" / method / "a.png").is_file()


def test_self_ensemble_undoes_each_transform_and_averages(photo, srcnn):
    from srlab.inference import self_ensemble

    lr = photo[:37, :29]  # not square: a transform left undone would change the shape
    # nearest-neighbour x2 commutes with every flip and rotation: its self-ensemble is itself
    assert np.array_equal(self_ensemble(_Nearest(), lr, "cpu"), super_resolve(_Nearest(), lr, "cpu"))
    views = []
    for k in range(4):
        for mirrored in (False, True):
            x = np.ascontiguousarray(np.rot90(lr, k)[:, ::-1] if mirrored else np.rot90(lr, k))
            y = super_resolve(srcnn, x, "cpu", raw=True)
            views.append(np.rot90(y[:, ::-1] if mirrored else y, -k))
    expected = np.clip(np.rint(np.mean(views, axis=0) * 255), 0, 255)
    ensembled = self_ensemble(srcnn, lr, "cpu")
    assert ensembled.shape == (74, 58, 3) and np.abs(ensembled.astype(int) - expected).max() <= 1
    assert not np.array_equal(ensembled, super_resolve(srcnn, lr, "cpu"))  # SRCNN is not rotation-invariant
    assert np.abs(self_ensemble(srcnn, lr, "cpu", tile=16).astype(int) - ensembled).max() <= 1  # tiles agree


def test_cli_self_ensemble_writes_the_ensembled_image(tmp_path, srcnn, photo):
    from srlab.inference import self_ensemble

    Image.fromarray(photo[:40, :30]).save(tmp_path / "a.png")
    _cli_super_resolve(tmp_path, srcnn, "--self-ensemble", tmp_path / "a.png")
    written = np.asarray(Image.open(tmp_path / "out" / "a_x2.png"))
    assert np.array_equal(written, self_ensemble(srcnn, photo[:40, :30], "cpu", tile=256))


def _vgg16_file(folder, seed=0):
    """A VGG16 state dict under torchvision's ImageNet file name, made here (random weights), and
    the sha256 prefix it has: what a test patches in, so the code path runs without calling these
    weights ImageNet's anywhere else."""
    import hashlib

    from torchvision.models import vgg16

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vgg16-397923af.pth"
    features = {k: v for k, v in vgg16(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(features, path)  # LPIPS reads the convolutions alone (the classifier is 90% of the file)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def test_lpips_is_reported_per_set_method_and_image_when_the_imagenet_backbone_is_there(
    tmp_path, srcnn, photo, monkeypatch
):
    from srlab import lpips_score
    from srlab.backbones import Backbone
    from srlab.evaluation import evaluate
    from srlab.params import parse_params

    (tmp_path / "test" / "Set5").mkdir(parents=True)
    for name, image in (("a", photo), ("b", photo[::-1, ::-1])):
        Image.fromarray(np.ascontiguousarray(image)).save(tmp_path / "test" / "Set5" / f"{name}.png")
    _, prefix = _vgg16_file(tmp_path / "mirror")
    monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setattr(Backbone, "sha256_prefix", property(lambda self: prefix))
    params = parse_params({"eval": {"sets": ["Set5"]}, "train": {"device": "cpu"}})
    summary, table = evaluate(params, tmp_path / "test", {"srcnn_mse": _model_file(tmp_path, srcnn)}, tmp_path / "sr")
    assert (
        summary["provenance"]["lpips"].startswith("LPIPS-VGG (lpips 0.1")
        and "vgg16-397923af.pth" in summary["provenance"]["lpips"]
    )
    for method in ("bicubic", "srcnn_mse"):
        per_image = table[(table.method == method)]["lpips"]
        assert len(per_image) == 2 and (per_image > 0).all()
        assert summary["Set5"][method]["lpips"] == pytest.approx(per_image.mean(), abs=1e-6)
    scorer = lpips_score.LPIPS(tmp_path / "mirror" / "vgg16-397923af.pth", torch.device("cpu"))
    assert scorer(photo, photo) == pytest.approx(0.0, abs=1e-6)  # a distance: 0 for the same image
    assert scorer(photo, photo // 2) > scorer(photo, np.clip(photo.astype(int) + 3, 0, 255).astype(np.uint8))


def test_without_the_imagenet_backbone_the_metrics_say_lpips_was_not_computed_and_why(
    tmp_path, srcnn, photo, monkeypatch
):
    from srlab.evaluation import evaluate
    from srlab.params import parse_params

    (tmp_path / "test" / "Set5").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "test" / "Set5" / "a.png")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model = _model_file(tmp_path, srcnn)
    cases = {  # mirror folder, eval.lpips -> what the metrics must say
        "none": ("empty", "auto", "not computed: no ImageNet VGG16 weights (vgg16-397923af.pth in"),
        "foreign": ("other", "auto", "is not torchvision's ImageNet VGG16 (sha256"),
        "off": ("other", "off", "not computed: eval.lpips is off"),
    }
    (tmp_path / "empty").mkdir()
    _vgg16_file(tmp_path / "other")  # random weights under the ImageNet name: their hash gives them away
    for mirror, setting, message in cases.values():
        monkeypatch.setenv("SRLAB_DATA_MIRROR", str(tmp_path / mirror))
        params = parse_params({"eval": {"sets": ["Set5"], "lpips": setting}, "train": {"device": "cpu"}})
        summary, table = evaluate(params, tmp_path / "test", {"srcnn_mse": model}, tmp_path / "sr")
        assert message in summary["provenance"]["lpips"]
        assert "lpips" not in table.columns and all("lpips" not in s for s in summary["Set5"].values())


def test_lpips_equals_the_lpips_package_called_directly_on_inputs_in_minus_one_to_one(tmp_path, photo):
    """srlab hands uint8 images to the `lpips` package as it documents: tensors in [-1, 1] (or in
    [0, 1] with normalize=True). The reference here builds the same network on the same backbone
    and scales the inputs by hand; inputs left in [0, 1] as if in [-1, 1] would score far lower."""
    import warnings

    import lpips

    from srlab.lpips_score import LPIPS

    weights, _ = _vgg16_file(tmp_path)
    scorer = LPIPS(weights, torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    state = torch.load(weights, weights_only=True)
    for block in reference.net.children():
        for index, layer in block.named_children():
            prefix = f"features.{index}."
            layer.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def minus_one_to_one(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1

    other = np.clip(photo.astype(int) * 3 // 4 + 20, 0, 255).astype(np.uint8)
    with torch.no_grad():
        expected = float(reference(minus_one_to_one(photo), minus_one_to_one(other)))
    assert expected > 1e-3  # random backbone weights give small distances, but not none
    assert scorer(photo, other) == pytest.approx(expected, rel=1e-5)


def test_bf16_inference_runs_the_model_in_bfloat16_and_stays_within_a_grey_level(photo, srcnn):
    # laid out as the CLI and evaluate run it: without AMX, oneDNN's bf16 convolutions in the default
    # layout took 17.8 s for this photo, against 0.6 s channels_last (AMD EPYC, 2026-12-03)
    srcnn.to(memory_format=CHANNELS_LAST)
    seen = []
    srcnn.extract.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    fp32 = super_resolve(srcnn, photo, "cpu")
    bf16 = super_resolve(srcnn, photo, "cpu", precision="bf16")
    tiled = super_resolve(srcnn, photo, "cpu", tile=32, precision="bf16")
    assert seen[0] == torch.float32 and set(seen[1:]) == {torch.bfloat16}  # autocast reached the convolutions
    assert bf16.dtype == np.uint8 and bf16.shape == fp32.shape and not np.array_equal(bf16, fp32)
    difference = np.abs(bf16.astype(int) - fp32)
    assert difference.mean() < 1.0 and difference.max() <= 8  # bfloat16 keeps 8 bits of mantissa
    assert np.abs(tiled.astype(int) - bf16).max() <= 1
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        super_resolve(srcnn, photo, "cpu", precision="fp16")


def test_bf16_reaches_the_cli_and_the_evaluate_stage_and_scores_stay_fp32(tmp_path, srcnn, photo, monkeypatch):
    from srlab.data.degrade import downscale
    from srlab.evaluation import evaluate
    from srlab.metrics import psnr_y
    from srlab.params import parse_params

    lr = photo[:40, :30]
    Image.fromarray(lr).save(tmp_path / "a.png")
    _cli_super_resolve(tmp_path, srcnn, "--precision", "bf16", tmp_path / "a.png")
    written = np.asarray(Image.open(tmp_path / "out" / "a_x2.png"))
    # laid out as the CLI and evaluate lay their models out: without AMX (oneDNN's AVX2 bf16 path)
    # the two layouts' bf16 convolutions differ in the last bits
    srcnn = copy.deepcopy(srcnn).to(memory_format=CHANNELS_LAST)
    assert np.array_equal(written, super_resolve(srcnn, lr, "cpu", tile=256, precision="bf16"))

    (tmp_path / "test" / "Set5").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "test" / "Set5" / "a.png")
    params = parse_params({"eval": {"sets": ["Set5"], "precision": "bf16"}, "train": {"device": "cpu"}})
    summary, _ = evaluate(params, tmp_path / "test", {"srcnn_mse": _model_file(tmp_path, srcnn)}, tmp_path / "sr")
    out = np.asarray(Image.open(tmp_path / "sr" / "Set5" / "srcnn_mse" / "a.png"))
    assert np.array_equal(out, super_resolve(srcnn, downscale(photo, 2, "bicubic", 1.0), "cpu", precision="bf16"))
    assert summary["Set5"]["srcnn_mse"]["psnr"] == pytest.approx(psnr_y(out, photo, 2))


PRECS = ("auto", "fp32", "bf16")


# The three CPU kinds these machines come in, by their bf16 flags, and what asking for bf16 says
CPU_KINDS = {
    "intel-xeon-amx": (" avx512f avx512_bf16 amx_bf16 amx_tile", None),
    "amd-epyc-avx512": (" avx512f avx512_bf16", "this CPU has AVX512-BF16 but no AMX (no amx_bf16 in /proc/cpuinfo)"),
    "amd-epyc-avx2": ("", "this CPU has neither AMX nor AVX512-BF16 (amx_bf16, avx512_bf16 in /proc/cpuinfo)"),
}


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_bf16_on_a_cpu_without_amx_says_what_to_expect_once_and_auto_stays_fp32_on_every_kind(
    tmp_path, monkeypatch, capsys, kind
):
    """The CPU's flags are faked, so this gives the same verdict on each of the three CPU kinds."""
    from srlab import device

    flags, expected = "fpu sse2 avx2" + CPU_KINDS[kind][0], CPU_KINDS[kind][1]
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.setattr(device, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(device, "_said", set())
    assert ("amx_bf16" in device.cpu_flags()) == (expected is None)
    cpu = torch.device("cpu")
    assert not device.autocast("auto", cpu)._enabled and not device.autocast("fp32", cpu)._enabled
    # the layout follows the precision, not the CPU kind: the committed fp32 run is laid out alike on both
    layout = {(f, p): device.memory_format(f, p, cpu) for f in ("auto", "channels_last", "contiguous") for p in PRECS}
    assert layout == {
        **{(f, p): torch.contiguous_format for f in ("auto", "contiguous") for p in PRECS},
        ("auto", "bf16"): torch.channels_last,
        **{("channels_last", p): torch.channels_last for p in PRECS},
    }
    assert capsys.readouterr().err == ""  # fp32 and auto say nothing
    for _ in range(3):
        assert device.autocast("bf16", cpu)._enabled
    err = capsys.readouterr().err.strip().splitlines()
    if expected is None:
        assert err == []
    else:
        assert len(err) == 1 and expected in err[0], err
