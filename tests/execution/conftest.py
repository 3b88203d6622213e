"""Fixtures for the execution engine's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesson_projects import LessonProject


@pytest.fixture
def project(tmp_path: Path):
    lessons = LessonProject(tmp_path / "project")
    yield lessons
    lessons.close()
