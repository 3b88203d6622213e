"""The hosted workflows are valid GitHub Actions files and call commands that exist here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import ROOT

pytestmark = pytest.mark.light

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict:
    # PyYAML reads the key "on" as True (YAML 1.1), so map it back.
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def test_workflows_exist():
    assert [path.name for path in WORKFLOWS] == ["publish.yml", "pull-request.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_schema(workflow):
    # check-jsonschema ships the GitHub workflow schema, so nothing is downloaded.
    executable = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert executable, "check-jsonschema is not installed (it comes with the test extra)"

    completed = subprocess.run(
        [executable, "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_schema_check_rejects_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("jobs:\n  build:\n    runs-on: 3\n    stepz: []\n", encoding="utf-8")
    executable = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))

    completed = subprocess.run(
        [executable, "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True, text=True,
    )

    assert completed.returncode == 1
    assert "'on' is a required property" in completed.stdout


def test_pull_request_runs_light_and_full_jobs():
    workflow = load("pull-request.yml")
    light_steps = " ".join(step.get("run", "") for step in workflow["jobs"]["light"]["steps"])
    full_steps = " ".join(step.get("run", "") for step in workflow["jobs"]["full"]["steps"])

    assert "pull_request" in workflow["on"]
    assert "pip install . " in light_steps
    assert "[figures]" not in light_steps
    assert "python -m figures_pipeline verify" in light_steps
    assert "mkdocs build --strict" in light_steps
    assert "-m light" in light_steps
    assert "make test" in full_steps


def test_publish_shards_cover_every_job():
    workflow = load("publish.yml")
    regenerate = workflow["jobs"]["regenerate"]
    shards = regenerate["strategy"]["matrix"]["shard"]
    run_step = next(step["run"] for step in regenerate["steps"] if "figures_pipeline run" in step.get("run", ""))

    assert shards == list(range(1, int(workflow["env"]["SHARDS"]) + 1))
    assert "--shard ${{ matrix.shard }}/${{ env.SHARDS }}" in run_step
    assert workflow["on"]["push"]["branches"] == ["main"]
    for watched in ("content/**", "figures_pipeline/**", "mkdocs.yml"):
        assert watched in workflow["on"]["push"]["paths"]


def test_publish_caches_pip_weights_times():
    workflow = load("publish.yml")
    steps = workflow["jobs"]["regenerate"]["steps"]
    cached_paths = [step["with"]["path"] for step in steps if step.get("uses", "").startswith("actions/cache@")]
    setup_python = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))

    assert "~/.cache/torch" in cached_paths
    assert ".cache/figures" in cached_paths
    assert setup_python["with"]["cache"] == "pip"


def test_publish_deploys_to_pages_with_site_url():
    deploy = load("publish.yml")["jobs"]["deploy"]
    uses = [step.get("uses", "") for step in deploy["steps"]]
    build = next(step["run"] for step in deploy["steps"] if "mkdocs build" in step.get("run", ""))

    assert any(action.startswith("actions/deploy-pages@") for action in uses)
    assert any(action.startswith("actions/upload-pages-artifact@") for action in uses)
    assert "site_url" in build
    assert "--strict" in build
    assert deploy["permissions"]["pages"] == "write"
