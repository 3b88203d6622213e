"""Author mistakes in lesson front matter and in the catalogue stop ``mkdocs build --strict``."""

from __future__ import annotations

import pytest

from support import lesson_text

pytestmark = pytest.mark.light

LESSON = "ko/cnn/01-images-as-tensors.md"
SHOWN = f"content/{LESSON}"


def test_valid_lesson_builds(project):
    project.write(LESSON, lesson_text())
    project.write("en/cnn/01-images-as-tensors.md", lesson_text(title="Images as tensors"))

    result = project.build()

    assert result.returncode == 0, result.output
    assert (result.site / "cnn/01-images-as-tensors/index.html").is_file()
    assert (result.site / "en/cnn/01-images-as-tensors/index.html").is_file()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"colour": "blue"}, f"{SHOWN}:13: key 'colour': unknown key (allowed: id, stream, number, title, minutes, tags, status, exercises, links)"),
        ({"minutes": "eighteen"}, f"{SHOWN}:6: key 'minutes': expected an integer, got 'eighteen'"),
        ({"number": "1"}, f"{SHOWN}:4: key 'number': expected an integer, got '1'"),
        ({"tags": "cnn"}, f"{SHOWN}:7: key 'tags': expected a list, got 'cnn'"),
        ({"title": None}, f"{SHOWN}:1: key 'title': required key is missing"),
        ({"status": "live"}, f"{SHOWN}:9: key 'status': expected one of 'published' or 'draft', got 'live'"),
        ({"stream": "rnn"}, f"{SHOWN}:3: key 'stream': unknown stream 'rnn' (the catalogue lists: cnn)"),
        ({"id": "CNN 01"}, f"{SHOWN}:2: key 'id': 'CNN 01' is not a valid id (lowercase letters, digits and single hyphens)"),
        ({"number": 2}, f"{SHOWN}:4: key 'number': 2 does not match the file name prefix '01'"),
        ({"exercises": [{"id": "x", "name": "y"}]}, f"{SHOWN}:10: key 'exercises.0.name': unknown key (allowed: id, title)"),
    ],
    ids=["unknown-key", "wrong-type", "string-number", "tags-not-list", "missing-key", "bad-status",
         "unknown-stream", "bad-id", "number-vs-filename", "exercise-unknown-key"],
)
def test_front_matter_error_names_file_and_key(project, fields, expected):
    project.write(LESSON, lesson_text(**fields))

    result = project.build()

    assert result.returncode != 0
    assert expected in result.output
    assert "Aborted with" in result.output


def test_duplicate_id_names_both_files(project):
    project.write(LESSON, lesson_text())
    project.write("ko/cnn/02-convolution.md", lesson_text(number=2, title="Convolution"))

    result = project.build()

    assert result.returncode != 0
    assert (
        "content/ko/cnn/02-convolution.md:2: key 'id': duplicate id 'cnn-01': "
        "content/ko/cnn/01-images-as-tensors.md uses it too"
    ) in result.output


def test_duplicate_number_names_both_files(project):
    project.write(LESSON, lesson_text())
    project.write("ko/cnn/01-other.md", lesson_text(id="cnn-99", title="Other"))

    result = project.build()

    assert result.returncode != 0
    assert (
        "content/ko/cnn/01-other.md:4: key 'number': duplicate number 1: "
        "content/ko/cnn/01-images-as-tensors.md uses it too"
    ) in result.output


def test_draft_is_left_out(project):
    project.write(LESSON, lesson_text())
    project.write("ko/cnn/02-draft.md", lesson_text(id="cnn-02", number=2, status="draft", title="Draft"))

    result = project.build()

    assert result.returncode == 0, result.output
    assert not (result.site / "cnn/02-draft").exists()
    assert "Draft" not in (result.site / "search/search_index.json").read_text(encoding="utf-8")


def test_missing_catalogue_is_plugin_error(project):
    project.write(LESSON, lesson_text())
    (project.content / "streams.yml").unlink()

    result = project.build()

    assert result.returncode != 0
    assert "content/streams.yml: stream catalogue not found" in result.output


def test_invalid_catalogue_names_key(project):
    project.write(LESSON, lesson_text())
    project.write("streams.yml", "streams:\n  - id: cnn\n    title: CNN\n    planned: twelve\n")

    result = project.build()

    assert result.returncode != 0
    assert "content/streams.yml:3: key 'streams.0.title': expected a mapping, got 'CNN'" in result.output
    assert "content/streams.yml:4: key 'streams.0.planned': expected an integer, got 'twelve'" in result.output


def test_english_only_lesson_is_error(project):
    project.write("en/cnn/01-images-as-tensors.md", lesson_text())

    result = project.build()

    assert result.returncode != 0
    assert (
        "content/en/cnn/01-images-as-tensors.md:1: lesson has no ko version at "
        "content/ko/cnn/01-images-as-tensors.md; it is left out of the site"
    ) in result.output


def test_translation_of_invalid_lesson_names_it(project):
    project.write(LESSON, lesson_text(minutes="eighteen"))
    project.write("en/cnn/01-images-as-tensors.md", lesson_text())

    result = project.build()

    assert result.returncode != 0
    assert "content/ko/cnn/01-images-as-tensors.md:6: key 'minutes': expected an integer" in result.output
    assert (
        "content/en/cnn/01-images-as-tensors.md:1: its ko version content/ko/cnn/01-images-as-tensors.md "
        "is a draft or has errors; it is left out of the site"
    ) in result.output


def test_korean_only_lesson_falls_back(project):
    project.write(LESSON, lesson_text())

    result = project.build()

    assert result.returncode == 0, result.output
    english = (result.site / "en/cnn/01-images-as-tensors/index.html").read_text(encoding="utf-8")
    assert "not translated into English yet" in english
    assert '<div class="lesson-body" lang="ko">' in english


def test_translation_with_other_exercises_is_error(project):
    project.write(LESSON, lesson_text())
    project.write("en/cnn/01-images-as-tensors.md", lesson_text(exercises=[{"id": "cnn-01-other", "title": "Other"}]))

    result = project.build()

    assert result.returncode != 0
    assert (
        "content/en/cnn/01-images-as-tensors.md:10: key 'exercises': exercise ids differ from those in "
        "content/ko/cnn/01-images-as-tensors.md"
    ) in result.output
