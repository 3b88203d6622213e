"""A changed model (its registry entry or its weights file) re-runs exactly the blocks that used it."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from lesson_projects import stale_reasons

FIXTURES = Path(__file__).with_name("fixtures") / "models"

USES_TINY = '''
```python run caption="tiny" alt="tiny"
import figures_pipeline as fp
import matplotlib.pyplot as plt
import torch
model = fp.load_model("tiny")
scores = model.module(torch.ones(1, 3, 16, 16)).detach()[0]
plt.bar(model.labels, scores.numpy())
```
'''

USES_TINY_B = USES_TINY.replace('"tiny"', '"tiny_b"')

NO_MODEL = '''
```python run caption="plain" alt="plain"
import matplotlib.pyplot as plt
plt.plot([0, 1, 2], [2, 0, 1])
```
'''


@pytest.fixture
def registry(project, monkeypatch) -> Path:
    """A copy of the fixture registry in the project, on FIGURES_MODEL_REGISTRY, its builder importable."""
    folder = project.root / "models"
    shutil.copytree(FIXTURES, folder)
    monkeypatch.setenv("FIGURES_MODEL_REGISTRY", str(folder))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder


def write_lessons(project) -> None:
    project.lesson("ko/cnn/01-a.md", USES_TINY)
    project.lesson("ko/cnn/02-b.md", NO_MODEL)
    project.lesson("ko/cnn/03-c.md", USES_TINY_B)


def manifest_lines(project) -> set[str]:
    text = (project.root / "figure_store" / "manifest.txt").read_text(encoding="utf-8")
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def retrain(registry: Path, name: str) -> None:
    """Change the weights file of ``name`` and the sha256 its registry entry pins."""
    import torch

    weights = registry / f"{name}.pt"
    state = torch.load(weights, weights_only=True)
    state["4.bias"] = state["4.bias"] + 1.0
    torch.save(state, weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    entry = registry / f"{name}.toml"
    entry.write_text(re.sub(r'sha256 = "[0-9a-f]+"', f'sha256 = "{digest}"', entry.read_text()), encoding="utf-8")


def test_weights_change_reruns_only_its_blocks(project, registry):
    write_lessons(project)
    first = project.engine().run()
    assert first.failures == []
    assert sorted(first.ran) == ["content/ko/cnn/01-a.md", "content/ko/cnn/02-b.md", "content/ko/cnn/03-c.md"]
    before = manifest_lines(project)

    retrain(registry, "tiny")

    engine = project.engine()
    reasons = stale_reasons(engine)
    assert list(reasons) == [("content/ko/cnn/01-a.md", 9)]
    text = "; ".join(reasons[("content/ko/cnn/01-a.md", 9)])
    assert "tiny.pt" in text
    assert "tiny.toml" in text

    second = engine.run()
    assert second.failures == []
    assert second.ran == ["content/ko/cnn/01-a.md"]
    added = manifest_lines(project) - before
    assert len(added) == 1
    assert '"repo:models/tiny.pt"' in next(iter(added))
    assert stale_reasons(project.engine()) == {}


def test_registry_entry_change_reruns_only_its_blocks(project, registry):
    write_lessons(project)
    assert project.engine().run().failures == []

    entry = registry / "tiny_b.toml"
    entry.write_text(entry.read_text().replace("resize = [16, 16]", "resize = [24, 24]"), encoding="utf-8")

    engine = project.engine()
    reasons = stale_reasons(engine)
    assert list(reasons) == [("content/ko/cnn/03-c.md", 9)]
    assert "tiny_b.toml" in "; ".join(reasons[("content/ko/cnn/03-c.md", 9)])
    assert engine.run().ran == ["content/ko/cnn/03-c.md"]


def test_status_and_verify_name_model_change(project, registry):
    write_lessons(project)
    assert project.cli("run", "--quiet").returncode == 0
    retrain(registry, "tiny_b")

    status = project.cli("status")
    verify = project.cli("verify")

    assert status.returncode == 0
    assert "content/ko/cnn/03-c.md:9: stale:" in status.stdout
    assert "tiny_b.pt" in status.stdout
    assert "01-a.md" not in status.stdout
    assert "1 of 3 blocks in 3 pages are stale" in status.stdout
    assert verify.returncode == 1
    assert "content/ko/cnn/03-c.md:9" in verify.stdout + verify.stderr
