"""`srlab bench` is checked for running and reporting, never for speed (speed is what it measures)."""

import json

from srlab.cli import main


def test_bench_smoke_runs_on_cpu_and_reports_every_number(tmp_path, capsys):
    main(["bench", "--smoke", "--workers", "2", "--set", "train.device=cpu", "--json", str(tmp_path / "bench.json")])
    printed = capsys.readouterr().out
    for label in ("(a) training loop", "(b) on-device ceiling", "(c) seeds-style PIL loader", "a/b =", "peak memory", "MP/s"):
        assert label in printed
    numbers = json.loads((tmp_path / "bench.json").read_text())
    for key in ("a_loop", "b_ceiling", "c_seeds_loader", "a_over_b", "a_over_c", "super_resolve_mpix_per_s", "peak_rss_gib"):
        assert numbers[key] > 0, key
    assert numbers["precision"] == "fp32" and numbers["device"].startswith("cpu")
