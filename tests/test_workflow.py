"""The GitHub Actions workflow cannot run here: check its steps' structure, and that CI gates on the committed run."""

import ast
import re

import yaml
from conftest import REPO


def _workflow() -> tuple[dict, list[dict]]:
    workflow = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    return workflow, workflow["jobs"]["reproduce"]["steps"]


def test_workflow_runs_the_ci_script_on_pushes_and_pull_requests_with_the_full_history():
    workflow, steps = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert all(("uses" in step) != ("run" in step) for step in steps)  # each step does one thing
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # the gates and `dvc exp diff` read earlier commits
    ci = [i for i, step in enumerate(steps) if step.get("run", "").strip() == "bash .ci/run"]
    assert len(ci) == 1 and "if" not in steps[ci[0]]  # the very same install / test / pipeline / gates, always
    pr_only = [i for i, step in enumerate(steps) if step.get("if") == "github.event_name == 'pull_request'"]
    assert pr_only and min(pr_only) > ci[0]  # the comparison reads what .ci/run made
    assert any(
        "dvc exp diff" in steps[i].get("run", "") and "srlab compare" in steps[i].get("run", "") for i in pr_only
    )


def test_workflow_caches_the_test_sets_where_ci_downloads_them_and_never_fails_on_a_miss():
    """A fork or a new repository has no cache: its first run downloads the test sets (checksummed)
    and saves them; nothing needs saving by hand first."""
    from srlab.data.sources import TEST_SETS

    _, steps = _workflow()
    cached = [step for step in steps if step.get("uses", "").startswith("actions/cache")]
    assert len(cached) == 1
    cache = cached[0]
    assert cache["uses"].split("@")[0] == "actions/cache"  # restores and saves (not actions/cache/restore alone)
    assert not cache.get("with", {}).get("fail-on-cache-miss", False)
    assert steps.index(cache) < next(i for i, s in enumerate(steps) if s.get("run", "").strip() == "bash .ci/run")
    ci_script = (REPO / ".ci/run").read_text()
    assert '"${SRLAB_DATA_CACHE:-$HOME/.cache/srlab/data}"' in ci_script and "srlab download-test-sets" in ci_script
    assert cache["with"]["path"] == "~/.cache/srlab/data"  # that default, as actions/cache writes $HOME
    assert {remote.md5 for remote in TEST_SETS.values()} == {cache["with"]["key"].rsplit("-", 1)[1]}
    assert "SRLAB_DATA_MIRROR" not in str(_workflow()[0])  # no mirror on GitHub: .ci/run picks the cache


def test_ci_script_runs_the_readme_test_command():
    readme_test = next(line for line in (REPO / "README.md").read_text().splitlines() if "pytest" in line)
    assert readme_test.strip() == ".venv/bin/python -m pytest -q"
    assert "python -m pytest -q" in (REPO / ".ci/run").read_text()


def test_ci_gates_on_the_committed_metrics_and_the_committed_dvc_lock():
    lines = (REPO / ".ci/run").read_text().splitlines()
    metrics_gate = next(line for line in lines if line.startswith("srlab check-metrics"))
    assert (
        "--against HEAD" in metrics_gate
        and "--tolerance srcnn_mse=" in metrics_gate
        and "--tolerance srcnn_perceptual=" in metrics_gate
    )
    assert "srlab check-lock dvc.lock --against HEAD" in lines
    assert lines.index("time dvc repro") < lines.index("srlab check-lock dvc.lock --against HEAD")
    assert "set -euo pipefail" in lines  # any failing gate fails CI


def test_ci_lints_with_the_pinned_ruff_before_the_tests():
    lines = (REPO / ".ci/run").read_text().splitlines()
    assert lines.index("ruff check .") < lines.index("python -m pytest -q")
    assert lines.index("ruff format --check .") < lines.index("python -m pytest -q")
    dev = next(line for line in (REPO / "pyproject.toml").read_text().splitlines() if line.startswith("dev = "))
    assert re.search(r'"ruff==[\d.]+"', dev)  # exact: a new ruff must not fail an unchanged commit


def test_the_readme_stays_a_quickstart():
    """What srlab is, the two commands, a picture of a run, the pipeline, the recipes, the common
    commands, links: within 12 KB, measurements and their history in docs/RESULTS.md."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    order = [
        "```bash",
        "## What a run produces",
        "## The pipeline",
        "## The design notes",
        "## Common commands",
        "## More",
    ]
    assert [readme.index(heading) for heading in order] == sorted(readme.index(heading) for heading in order)


def test_every_function_in_the_package_fits_on_one_screen():
    """A reader sees each function whole (60 lines): long work is split by meaning into named calls."""
    too_long = []
    for path in sorted((REPO / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not too_long


def _heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchor for each heading: lower case, punctuation dropped, spaces to hyphens."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)  # a `# comment` in a code block is no heading
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", prose, re.M)}


def test_every_link_to_a_heading_in_the_docs_finds_it():
    """A renamed heading leaves the links to it dead: each `[..](FILE.md#anchor)` and `[..](#anchor)`
    in the README and docs/ names a heading that exists."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    anchors = {page: _heading_anchors(page.read_text()) for page in pages}
    links = [
        (page, (page.parent / target).resolve() if target else page, anchor)
        for page in pages
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text())
    ]
    assert len(links) >= 5
    dead = [
        f"{page.name} -> {target.name}#{anchor}"
        for page, target, anchor in links
        if anchor not in anchors.get(target, ())
    ]
    assert not dead
