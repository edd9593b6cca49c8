"""The GitHub Actions workflow cannot run here; check that it parses and runs what .ci/run runs."""

import yaml

from conftest import REPO


def test_workflow_parses_and_runs_the_ci_script():
    workflow = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    steps = workflow["jobs"]["reproduce"]["steps"]
    commands = [step["run"] for step in steps if "run" in step]
    assert "bash .ci/run" in commands  # the very same install / test / pipeline / gate steps
    pr_only = [step for step in steps if step.get("if") == "github.event_name == 'pull_request'"]
    assert any("dvc exp diff" in s.get("run", "") and "srlab compare" in s.get("run", "") for s in pr_only)
    assert all("uses" in step or "run" in step for step in steps)


def test_ci_script_runs_the_readme_test_command():
    readme_test = next(line for line in (REPO / "README.md").read_text().splitlines() if "pytest" in line)
    assert readme_test.strip() == ".venv/bin/python -m pytest -q"
    assert "python -m pytest -q" in (REPO / ".ci/run").read_text()


def test_ci_gate_compares_the_run_with_the_committed_metrics():
    gate = next(line for line in (REPO / ".ci/run").read_text().splitlines() if line.startswith("srlab check-metrics"))
    assert "--against HEAD" in gate and "--tolerance 0.05" in gate
