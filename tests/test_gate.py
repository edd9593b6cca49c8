"""The metric gate that CI runs after the pipeline."""

import json

import pytest

from srlab.cli import main


def _metrics(tmp_path, mse_psnr, mse_perc=0.3, perc_perc=0.2):
    scores = {
        "bicubic": {"psnr": 33.0, "perceptual": 0.5},
        "srcnn_mse": {"psnr": mse_psnr, "perceptual": mse_perc},
        "srcnn_perceptual": {"psnr": mse_psnr - 0.1, "perceptual": perc_perc},
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"Set5": scores}))
    return str(path)


def test_gate_passes_when_both_claims_hold(tmp_path, capsys):
    main(["check-metrics", _metrics(tmp_path, 33.6), "--min-gain", "0.5"])
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("psnr, perc, message", [(33.2, 0.2, "gains 0.200 dB"), (34.0, 0.4, "not below srcnn_mse")])
def test_gate_fails_with_one_line(tmp_path, capsys, psnr, perc, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["check-metrics", _metrics(tmp_path, psnr, perc_perc=perc)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_gate_on_a_missing_file_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["check-metrics", str(tmp_path / "none.json")])
    assert "run `dvc repro` first" in capsys.readouterr().err


def test_against_a_reference_file_passes_within_the_tolerance_and_fails_past_it(tmp_path, capsys):
    run = _metrics(tmp_path, 33.6)
    reference = tmp_path / "reference.json"
    scores = json.loads((tmp_path / "metrics.json").read_text())
    scores["Set5"]["srcnn_mse"]["psnr"] += 0.03  # another CPU's rounding
    reference.write_text(json.dumps(scores))
    main(["check-metrics", run, "--against", str(reference), "--tolerance", "0.05"])
    assert "srcnn_mse 33.6000 dB vs 33.6300 dB: -0.0300 (tolerance 0.05)" in capsys.readouterr().out
    scores["Set5"]["srcnn_mse"]["psnr"] += 0.1  # the run now falls 0.13 dB short of it
    reference.write_text(json.dumps(scores))
    with pytest.raises(SystemExit) as exit_info:
        main(["check-metrics", run, "--against", str(reference), "--tolerance", "0.05"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1
    assert "Set5 srcnn_mse PSNR moved -0.1300 dB from the reference, past 0.05" in err


def test_against_a_git_revision_reads_the_committed_metrics(tmp_path, capsys, monkeypatch):
    import subprocess

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    committed = _metrics(tmp_path / "reports", 33.6)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "reports/metrics.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "metrics"], check=True)
    main(["check-metrics", "reports/metrics.json", "--against", "HEAD"])
    assert "+0.0000 (tolerance 0.05)" in capsys.readouterr().out
    _metrics(tmp_path / "reports", 33.5)  # a regression of 0.1 dB in the workspace
    with pytest.raises(SystemExit):
        main(["check-metrics", committed, "--against", "HEAD"])
    assert "srcnn_mse PSNR moved -0.1000 dB" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-metrics", committed, "--against", "no-such-rev"])
    err = capsys.readouterr().err
    assert "--against no-such-rev: neither a file nor a revision holding reports/metrics.json" in err
    assert err.count("\n") == 1


def _lock_changed(tmp_path, change) -> str:
    """The committed dvc.lock with one edit applied, written to a file."""
    import yaml
    from conftest import REPO

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    change(lock["stages"])
    path = tmp_path / "dvc.lock"
    path.write_text(yaml.safe_dump(lock, sort_keys=False))
    return str(path)


def _set_out_md5(stages):
    stages["train_mse"]["outs"][0]["md5"] = "0" * 32  # the model another CPU made, bits apart


def _set_code_md5(stages):
    next(d for d in stages["train_mse"]["deps"] if d["path"] == "src/srlab/training.py")["md5"] = "0" * 32


def _set_command(stages):
    stages["evaluate"]["cmd"] += " --per-image reports/other.csv"


def _set_param(stages):
    stages["train_perceptual"]["params"]["params.yaml"]["loss.vgg_weight"] = 0.3


def test_check_lock_passes_other_outputs_and_fails_other_code_or_params(tmp_path, capsys):
    """What CI runs after `dvc repro`: the committed metrics must have been made by the committed
    code and params; the outputs themselves may differ in the last bits on another CPU."""
    from conftest import REPO

    committed = str(REPO / "dvc.lock")
    main(["check-lock", committed, "--against", committed])
    main(["check-lock", _lock_changed(tmp_path, _set_out_md5), "--against", committed])
    assert capsys.readouterr().out.count("check-lock: every stage's command, params and code are those of") == 2
    for change, message in (
        (_set_code_md5, "stage train_mse: its code changed (src/srlab/training.py)"),
        (_set_param, "stage train_perceptual: its params changed (params.yaml)"),
        (_set_command, "stage evaluate: its command changed"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["check-lock", _lock_changed(tmp_path, change), "--against", committed])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.count("\n") == 1 and message in err
        assert "run `dvc repro` and commit dvc.lock and reports/" in err


def _shown(tmp_path, with_lpips: bool) -> str:
    """`dvc exp show --json` of a commit and two experiments varying loss.vgg_weight."""

    def run(rev, weight, psnr, lpips):
        scores = {
            "psnr": psnr,
            "ssim": 0.9,
            "perceptual": 0.001 / (1 + weight),
            **({"lpips": lpips} if with_lpips else {}),
        }
        note = (
            "LPIPS-VGG (lpips 0.1.4 linear layers, ImageNet VGG16 vgg16-397923af.pth)"
            if with_lpips
            else "not computed: no ImageNet VGG16 weights"
        )
        metrics = {
            s: {"bicubic": {"psnr": 30.0, "ssim": 0.8, "perceptual": 0.002}, "srcnn_perceptual": scores}
            for s in ("Set5", "Set14")
        }
        return {
            "rev": rev,
            "name": rev,
            "data": {
                "metrics": {"reports/metrics.json": {"data": {**metrics, "provenance": {"lpips": note}}}},
                "params": {"params.yaml": {"data": {"loss": {"vgg_weight": weight}}}},
            },
        }

    commit = run("a" * 40, 1.0, 35.0, 0.10)
    commit["experiments"] = [{"revs": [run("exp-low", 0.3, 35.1, 0.12)]}, {"revs": [run("exp-high", 3.0, 34.8, 0.08)]}]
    path = tmp_path / "shown.json"
    path.write_text(json.dumps([commit]))
    return str(path)


def test_compare_plots_psnr_against_lpips_when_the_runs_have_it(tmp_path, capsys):
    main(["compare", "--from-json", _shown(tmp_path, True), "--out", str(tmp_path / "lpips"), "--x", "lpips"])
    table = (tmp_path / "lpips" / "experiments.md").read_text()
    assert "Set5 LPIPS" in table and "| 0.0800 |" in table and "| exp-high | 3 |" in table
    assert (tmp_path / "lpips" / "perception_distortion.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):  # runs scored without ImageNet weights have no LPIPS: say why, plot nothing
        main(["compare", "--from-json", _shown(tmp_path, False), "--out", str(tmp_path / "none"), "--x", "lpips"])
    err = capsys.readouterr().err
    assert "--x lpips: no experiment has LPIPS scores (not computed: no ImageNet VGG16 weights)" in err
    assert not (tmp_path / "none").exists()


def _ci_gate_args() -> list[str]:
    """The arguments of the `srlab check-metrics` line .ci/run gates with, as it runs them."""
    import shlex
    from pathlib import Path

    line = next(
        line
        for line in (Path(__file__).parents[1] / ".ci" / "run").read_text().splitlines()
        if line.startswith("srlab check-metrics")
    )
    return shlex.split(line)[2:]  # after `srlab check-metrics`


def test_ci_gate_passes_the_committed_metrics_moved_as_far_as_measured_across_cpus_and_catches_regressions(
    tmp_path, capsys
):
    """The committed metrics and a run of the same commit on another CPU kind differ by at most the
    largest move measured between CPU kinds (docs/results: an AMD EPYC and an Intel Xeon run of one
    commit, and bench/gate_spread.py's runs with the vector ISA pinned to AVX2 and not):
    CI's gate, with .ci/run's own arguments, passes such a run whichever way each figure moved, and
    fails a run whose srcnn_mse lost 0.1 dB on Set5, or whose perceptual model lost more than its
    tolerance."""
    from pathlib import Path

    repo = Path(__file__).parents[1]
    committed = json.loads((repo / "reports" / "metrics.json").read_text())
    results = repo / "docs" / "results"
    moves = json.loads((results / "gate_spread.json").read_text())["largest_move"]["same seed, other ISA"]
    amd, intel = (
        json.loads((results / f"metrics_0893778_{kind}.json").read_text()) for kind in ("amd_epyc", "intel_xeon")
    )
    for figure in moves:  # the same commit's run on each CPU kind
        set_name, method = figure.split("/")
        moves[figure] = max(moves[figure], abs(amd[set_name][method]["psnr"] - intel[set_name][method]["psnr"]))
    args = _ci_gate_args()
    assert args[0] == "reports/metrics.json" and args[args.index("--against") + 1] == "HEAD"
    reference = tmp_path / "committed.json"
    reference.write_text(json.dumps(committed))

    def gate(changes: dict[str, float]) -> bool:
        run = json.loads(json.dumps(committed))
        for figure, delta in changes.items():
            set_name, method = figure.split("/")
            run[set_name][method]["psnr"] += delta
        (tmp_path / "run.json").write_text(json.dumps(run))
        gate_args = [str(tmp_path / "run.json"), *args[1:]]
        gate_args[gate_args.index("--against") + 1] = str(reference)
        try:
            main(["check-metrics", *gate_args])
            return True
        except SystemExit:
            return False
        finally:
            capsys.readouterr()

    for sign in (1, -1):
        assert gate({figure: sign * move for figure, move in moves.items()}), (
            f"a run moved by {sign} x the measured spread"
        )
    assert not gate({"Set5/srcnn_mse": -0.1})
    perceptual = float(next(a for a in args if a.startswith("srcnn_perceptual=")).split("=")[1])
    assert gate({"Set5/srcnn_perceptual": -perceptual + 0.0005}) and not gate(
        {"Set5/srcnn_perceptual": -perceptual - 0.0005}
    )
