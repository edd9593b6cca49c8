"""The metric gate that CI runs after the pipeline."""

import json

import pytest

from srlab.cli import main


def _metrics(tmp_path, mse_psnr, mse_perc=0.3, perc_perc=0.2):
    scores = {"bicubic": {"psnr": 33.0, "perceptual": 0.5},
              "srcnn_mse": {"psnr": mse_psnr, "perceptual": mse_perc},
              "srcnn_perceptual": {"psnr": mse_psnr - 0.1, "perceptual": perc_perc}}
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
