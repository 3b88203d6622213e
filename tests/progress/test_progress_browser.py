"""Reader progress in headless Chromium, on a small site built from lessons written here.

The site has one stream with four lessons in Korean and English; cnn-01 has two exercises and cnn-03
one, so the maximum is 4·30 + 3·10 + 2·10 = 170 XP and level 1 (120 XP) is reached by cnn-01 with
both exercises (60), cnn-02 (90) and cnn-03 (120).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import ROOT, Project, lesson_text, serve_directory

pytestmark = pytest.mark.browser

KEY = "lesson-progress"
LESSONS = [
    ("01-alpha", "cnn-01", 1, [{"id": "a", "title": "Exercise A"}, {"id": "b", "title": "Exercise B"}]),
    ("02-beta", "cnn-02", 2, []),
    ("03-gamma", "cnn-03", 3, [{"id": "c", "title": "Exercise C"}]),
    ("04-delta", "cnn-04", 4, []),
]


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    project = Project(tmp_path_factory.mktemp("progress") / "project")
    for slug, lesson_id, number, exercises in LESSONS:
        for language in ("ko", "en"):
            title = f"{'레슨' if language == 'ko' else 'Lesson'} {number}"
            project.write(
                f"{language}/cnn/{slug}.md",
                lesson_text(id=lesson_id, number=number, title=title, exercises=exercises or None, body=f"Body of {lesson_id}.\n"),
            )
    project.write("ko/cnn/index.md", "# CNN\n\n스트림.\n")
    project.write("en/cnn/index.md", "# CNN\n\nStream.\n")
    for language in ("ko", "en"):
        project.write(f"{language}/progress.md", (ROOT / "content" / language / "progress.md").read_text(encoding="utf-8"))
    # Material's instant navigation only follows links listed in the sitemap, whose addresses come
    # from site_url, so the server starts first and the site is built for its exact address.
    site = project.root / "site"
    site.mkdir()
    with serve_directory(site) as url:
        result = project.build(env={"FIGURES_ENABLED": "false"}, site_url=url)
        assert result.returncode == 0, result.output
        yield url


@pytest.fixture
def context(chromium, site_url):
    context = chromium.new_context(accept_downloads=True)
    # Only the test server is reachable (Material would ask the repository host for star counts).
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site_url) else route.abort())
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    assert page.errors == [], "uncaught errors in the page"


def lesson(site_url: str, number: int, language: str = "en") -> str:
    slug = LESSONS[number - 1][0]
    return f"{site_url}{'en/' if language == 'en' else ''}cnn/{slug}/"


def panel_text(page, name: str) -> str:
    return page.locator(f'[data-progress-panel] [data-progress="{name}"]').inner_text()


def stored(page) -> str | None:
    return page.evaluate(f"() => localStorage.getItem({KEY!r})")


def complete(page):
    return page.locator("[data-progress-complete]")


def exercise(page, exercise_id: str):
    return page.locator(f'[data-progress-exercise="{exercise_id}"]')


def expect_xp(page, text: str):
    from playwright.sync_api import expect

    expect(page.locator('[data-progress-panel] [data-progress="xp"]')).to_have_text(text)


# --- The panel and lessons -------------------------------------------------------------------------


def test_fresh_profile_zero_state(page, site_url):
    page.goto(lesson(site_url, 1))

    assert panel_text(page, "level") == "Level 0 · Curious"
    assert panel_text(page, "xp") == "0/120 XP"
    assert panel_text(page, "to-go") == "120 XP to go"
    assert panel_text(page, "lessons") == "0/4 lessons"
    assert panel_text(page, "achievements") == "0/11 achievements"
    assert panel_text(page, "percent") == "0% complete"
    assert page.locator('[data-progress="status"]').is_hidden()
    assert stored(page) is None, "looking writes nothing"


def test_korean_panel_in_korean(page, site_url):
    page.goto(lesson(site_url, 1, "ko"))

    assert panel_text(page, "level") == "레벨 0 · 호기심"
    assert panel_text(page, "lessons") == "레슨 0/4"
    assert complete(page).locator("xpath=..").inner_text().strip() == "이 레슨을 완료로 표시"


@pytest.mark.parametrize("path", ["", "en/", "cnn/", "en/progress/"])
def test_panel_on_every_page(page, site_url, path):
    page.goto(lesson(site_url, 1))
    complete(page).check()
    page.goto(site_url + path)

    assert page.locator("[data-progress-panel]").count() == 1
    assert panel_text(page, "lessons") in ("1/4 lessons", "레슨 1/4")


def test_panel_size_unchanged_by_script(chromium, site_url):
    sizes = []
    for javascript in (False, True):
        context = chromium.new_context(java_script_enabled=javascript)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site_url) else route.abort())
        page = context.new_page()
        page.goto(lesson(site_url, 1))
        sizes.append(page.locator("[data-progress-panel]").bounding_box())
        context.close()

    assert sizes[0] == sizes[1]


def test_progressbar_semantics(page, site_url):
    page.goto(lesson(site_url, 1))
    complete(page).check()

    bar = page.locator('[data-progress="xp-bar"]')
    assert bar.get_attribute("role") == "progressbar"
    assert bar.get_attribute("aria-valuenow") == "30"
    assert bar.get_attribute("aria-valuemax") == "120"
    assert bar.get_attribute("aria-valuetext") == "30/120 XP, 90 XP to go"
    percent = page.locator('[data-progress="percent-bar"]')
    assert percent.get_attribute("aria-valuenow") == str(100 * 30 // 170)


def test_mark_complete_and_reload(page, site_url):
    page.goto(lesson(site_url, 1))
    complete(page).check()
    expect_xp(page, "30/120 XP")
    page.reload()

    assert complete(page).is_checked()
    assert panel_text(page, "xp") == "30/120 XP"
    assert panel_text(page, "lessons") == "1/4 lessons"
    assert panel_text(page, "achievements") == "2/11 achievements", "first lesson and 25 % (1 of 4)"
    assert json.loads(stored(page))["lessons"]["cnn-01"]["done"] is True


def test_exercises_and_bonus(page, site_url):
    page.goto(lesson(site_url, 1))
    exercise(page, "a").check()
    expect_xp(page, "10/120 XP")
    exercise(page, "b").check()
    expect_xp(page, "30/120 XP")
    exercise(page, "b").uncheck()
    expect_xp(page, "10/120 XP")

    record = json.loads(stored(page))
    assert record["exercises"]["cnn-01/b"]["done"] is False
    assert record["exercises"]["cnn-01/a"]["done"] is True


def test_level_up_at_exactly_120(page, site_url):
    page.goto(lesson(site_url, 1))
    exercise(page, "a").check()
    exercise(page, "b").check()
    complete(page).check()
    page.goto(lesson(site_url, 2))
    complete(page).check()
    page.goto(lesson(site_url, 3))
    expect_xp(page, "90/120 XP")
    assert panel_text(page, "level") == "Level 0 · Curious"
    complete(page).check()

    expect_xp(page, "120/360 XP")
    assert panel_text(page, "level") == "Level 1 · Explorer"
    assert panel_text(page, "to-go") == "240 XP to go"
    live = page.locator("[data-progress-live]")
    assert live.get_attribute("aria-live") == "polite"
    assert "Level up: Level 1 · Explorer" in live.inner_text()
    assert page.locator("[aria-live]").count() == 1


def test_instant_navigation_counts_once(page, site_url):
    # Instant navigation changes the address before it swaps the content, so each check names the
    # lesson whose box it means: the previous page's box may still be there.
    def complete_box(number: int):
        return page.locator(f'[data-progress-lesson="cnn-0{number}"] [data-progress-complete]')

    page.goto(lesson(site_url, 1))
    page.evaluate("() => { window.sameDocument = true; }")
    complete_box(1).check()
    page.locator("a.lesson-nav__next").click()
    page.wait_for_url(lesson(site_url, 2))
    expect_xp(page, "30/120 XP")
    complete_box(2).check()
    expect_xp(page, "60/120 XP")

    for _ in range(3):
        page.go_back()
        page.wait_for_url(lesson(site_url, 1))
        expect_xp(page, "60/120 XP")
        assert complete_box(1).is_checked()
        page.go_forward()
        page.wait_for_url(lesson(site_url, 2))
        expect_xp(page, "60/120 XP")
        assert complete_box(2).is_checked()

    assert page.evaluate("() => window.sameDocument") is True, "Material's instant navigation was used"
    assert page.locator("[data-progress-panel]").count() == 1
    record = json.loads(stored(page))
    assert sorted(record["lessons"]) == ["cnn-01", "cnn-02"]


def test_korean_and_english_share(page, site_url):
    page.goto(lesson(site_url, 1, "ko"))
    complete(page).check()
    page.goto(lesson(site_url, 1, "en"))
    assert complete(page).is_checked()
    exercise(page, "a").check()
    page.goto(lesson(site_url, 1, "ko"))

    assert exercise(page, "a").is_checked()
    assert panel_text(page, "xp") == "40/120 XP"
    assert panel_text(page, "achievements") == "업적 4/11", "first lesson, first exercise, 25 %, both languages"


@pytest.mark.parametrize(("zone", "date"), [("Asia/Seoul", "2026-12-05"), ("UTC", "2026-12-04")])
def test_completion_date_in_local_zone(chromium, site_url, zone, date):
    context = chromium.new_context(timezone_id=zone)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site_url) else route.abort())
    page = context.new_page()
    page.clock.set_fixed_time("2026-12-04T15:30:00Z")
    page.goto(lesson(site_url, 1))
    complete(page).check()
    expect_xp(page, "30/120 XP")

    assert list(json.loads(stored(page))["days"]) == [date]
    context.close()


# --- Storage problems ----------------------------------------------------------------------------


def test_corrupt_value(page, site_url):
    page.goto(lesson(site_url, 1))
    page.evaluate(f"() => localStorage.setItem({KEY!r}, '{{oops')")
    page.reload()

    assert "could not be read" in panel_text(page, "status")
    assert panel_text(page, "xp") == "0/120 XP"
    complete(page).check()
    expect_xp(page, "30/120 XP")
    assert stored(page) == "{oops", "the unreadable text is not overwritten"
    assert page.evaluate(f"() => localStorage.getItem({KEY + '.unreadable'!r})") == "{oops"

    page.evaluate(f"() => localStorage.setItem({KEY!r}, 'second')")
    page.reload()
    assert page.evaluate(f"() => localStorage.getItem({KEY + '.unreadable'!r})") == "{oops", "kept aside once"


def test_old_version_migrates(page, site_url):
    old = json.dumps({"version": 0, "read": {"/cnn/01-alpha/": 1_790_000_000_000, "/cnn/99-gone/": True}})
    page.goto(lesson(site_url, 1))
    page.evaluate(f"(text) => localStorage.setItem({KEY!r}, text)", old)
    page.reload()

    assert complete(page).is_checked()
    assert panel_text(page, "xp") == "30/120 XP"
    assert json.loads(stored(page))["version"] == 1
    assert page.evaluate(f"() => localStorage.getItem({KEY + '.backup-v0'!r})") == old
    assert page.locator('[data-progress="status"]').is_hidden()


def test_newer_version_read_only(page, site_url):
    newer = json.dumps({"version": 2, "lessons": {"cnn-01": {"done": True, "at": 5, "first": 5}}, "future": [1]})
    page.goto(lesson(site_url, 1))
    page.evaluate(f"(text) => localStorage.setItem({KEY!r}, text)", newer)
    page.reload()

    assert panel_text(page, "xp") == "30/120 XP"
    assert "newer version" in panel_text(page, "status")
    exercise(page, "a").check()
    expect_xp(page, "40/120 XP")
    assert stored(page) == newer, "never written"


def test_storage_throws_on_write(page, site_url):
    page.add_init_script(
        "Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };"
    )
    page.goto(lesson(site_url, 1))
    complete(page).check()

    expect_xp(page, "30/120 XP")
    assert "not being saved" in panel_text(page, "status")
    assert panel_text(page, "lessons") == "1/4 lessons"


def test_storage_throws_on_access(page, site_url):
    page.add_init_script(
        "Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('denied', 'SecurityError'); }});"
    )
    page.goto(lesson(site_url, 1))

    assert "not being saved" in panel_text(page, "status")
    assert panel_text(page, "xp") == "0/120 XP"
    exercise(page, "a").check()
    expect_xp(page, "10/120 XP")
    page.goto(f"{site_url}en/progress/")
    assert page.locator("[data-achievement]").count() == 11


# --- Two tabs ------------------------------------------------------------------------------------


def test_two_tabs_share_changes(context, site_url):
    first = context.new_page()
    second = context.new_page()
    first.goto(lesson(site_url, 1))
    second.goto(lesson(site_url, 2))

    complete(first).check()
    expect_xp(second, "30/120 XP")
    complete(second).check()
    exercise(first, "a").check()

    expect_xp(first, "70/120 XP")
    expect_xp(second, "70/120 XP")
    complete(first).uncheck()
    expect_xp(second, "40/120 XP")


def test_two_tabs_lost_write_restored(context, site_url):
    # The second tab writes a record that lacks the first tab's change, as when both write at once;
    # the first tab receives the storage event and writes its change back.
    first = context.new_page()
    second = context.new_page()
    first.goto(lesson(site_url, 1))
    second.goto(lesson(site_url, 2))
    complete(first).check()
    expect_xp(second, "30/120 XP")
    second.evaluate(
        f"""() => {{
          const record = JSON.parse(localStorage.getItem({KEY!r}));
          delete record.lessons['cnn-01'];
          record.lessons['cnn-02'] = {{done: true, at: Date.now(), first: Date.now()}};
          localStorage.setItem({KEY!r}, JSON.stringify(record));
        }}"""
    )

    first.wait_for_function(f"() => JSON.parse(localStorage.getItem({KEY!r})).lessons['cnn-01']?.done === true")
    record = json.loads(stored(first))
    assert record["lessons"]["cnn-02"]["done"] is True
    expect_xp(first, "60/120 XP")


# --- Moving progress -----------------------------------------------------------------------------


def progress_page(page, site_url, language="en"):
    page.goto(f"{site_url}{'en/' if language == 'en' else ''}progress/")
    return page.locator("article")


def action(page, name):
    return page.locator(f'[data-progress-action="{name}"]')


def test_progress_page_lists_achievements(page, site_url):
    page.goto(lesson(site_url, 1))
    complete(page).check()
    root = progress_page(page, site_url)

    rows = root.locator("[data-achievement]")
    assert rows.count() == 11
    assert "Unlocked" in root.locator('[data-achievement="first-lesson"]').inner_text()
    assert "Locked" in root.locator('[data-achievement="backup"]').inner_text()
    assert root.locator(".is-unlocked").count() == 2
    # The page pairs the rules' achievements with the strings' names by position.
    rule_ids = page.evaluate("() => LessonProgressCore.derive(LessonProgressCore.emptyRecord(), {lessons: {}}).achievements.map((a) => a.id)")
    string_ids = page.evaluate(
        "() => JSON.parse(document.querySelector('[data-progress-strings]').dataset.progressStrings).achievementList.map((a) => a.id)"
    )
    assert rule_ids == string_ids


def test_reset_needs_confirmation(page, site_url):
    page.goto(lesson(site_url, 1))
    complete(page).check()
    progress_page(page, site_url)
    action(page, "reset").click()

    assert json.loads(stored(page))["lessons"]["cnn-01"]["done"] is True, "one click erases nothing"
    action(page, "reset-cancel").click()
    assert page.locator("[data-progress-reset-confirm]").is_hidden()
    action(page, "reset").click()
    action(page, "reset-confirm").click()
    expect_xp(page, "0/120 XP")
    assert json.loads(stored(page))["lessons"] == {}


def test_hide_game_setting(page, site_url):
    progress_page(page, site_url)
    page.locator("[data-progress-setting]").check()
    page.goto(lesson(site_url, 1))

    assert page.locator('[data-progress="level"]').is_hidden()
    assert page.locator('[data-progress="achievements"]').is_hidden()
    assert page.locator('[data-progress="lessons"]').is_visible()
    complete(page).check()
    assert page.locator("[data-progress-live]").count() == 0, "no unlock notices while hidden"


def test_export_file_and_code_round_trip(page, site_url):
    page.goto(lesson(site_url, 1))
    complete(page).check()
    exercise(page, "a").check()
    root = progress_page(page, site_url)

    with page.expect_download() as download_info:
        action(page, "download").click()
    backup_file = Path(download_info.value.path()).read_text(encoding="utf-8")
    action(page, "show-code").click()
    code = root.locator("[data-progress-code-out]").input_value()
    assert code.startswith("LP1.")
    assert json.loads(backup_file)["format"] == "lesson-progress"
    assert "Unlocked" in root.locator('[data-achievement="backup"]').inner_text()

    action(page, "reset").click()
    action(page, "reset-confirm").click()
    expect_xp(page, "0/120 XP")
    root.locator("[data-progress-code-in]").fill(code)
    action(page, "check-code").click()
    preview = root.locator("[data-progress-preview-text]").inner_text()
    assert "Done now: 0 lessons and 0 exercises" in preview
    assert "Merge gives 1 lessons and 1 exercises" in preview
    action(page, "replace").click()
    expect_xp(page, "40/120 XP")
    assert "Unlocked" in root.locator('[data-achievement="backup"]').inner_text()

    action(page, "reset").click()
    action(page, "reset-confirm").click()
    expect_xp(page, "0/120 XP")
    root.locator("[data-progress-file]").set_input_files(
        files=[{"name": "backup.json", "mimeType": "application/json", "buffer": backup_file.encode()}]
    )
    action(page, "merge").click()
    expect_xp(page, "40/120 XP")
    page.goto(lesson(site_url, 1))
    assert complete(page).is_checked()
    assert exercise(page, "a").is_checked()


HOSTILE_FILE = json.dumps(
    {
        "format": "lesson-progress",
        "record": {"version": 1, "lessons": {"<img src=x onerror=window.pwned=1>": {"done": True, "at": 1, "first": 1}}},
    }
)


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("code", "truncated", "incomplete or altered"),
        ("code", "altered", "incomplete or altered"),
        ("code", "<img src=x onerror=window.pwned=1>", "incomplete or altered"),
        ("file", HOSTILE_FILE, "invalid entries"),
        ("file", '{"some": "other file"}', "not a progress backup"),
        ("file", "x" * (300 * 1024), "too large"),
    ],
)
def test_hostile_import_changes_nothing(page, site_url, kind, payload, message):
    page.goto(lesson(site_url, 1))
    complete(page).check()
    root = progress_page(page, site_url)
    action(page, "show-code").click()
    code = root.locator("[data-progress-code-out]").input_value()
    before = stored(page)
    if payload == "truncated":
        payload = code[:-5]
    elif payload == "altered":
        payload = code[:12] + ("A" if code[12] != "A" else "B") + code[13:]

    if kind == "code":
        root.locator("[data-progress-code-in]").fill(payload)
        action(page, "check-code").click()
    else:
        root.locator("[data-progress-file]").set_input_files(
            files=[{"name": "backup.json", "mimeType": "application/json", "buffer": payload.encode()}]
        )

    status = root.locator("[data-progress-message=\"import\"]")
    from playwright.sync_api import expect

    expect(status).to_contain_text(message)
    assert root.locator("[data-progress-preview]").is_hidden()
    assert root.locator("img").count() == 0
    assert page.evaluate("() => window.pwned") is None
    assert stored(page) == before


# --- Keyboard ------------------------------------------------------------------------------------


def tab_to(page, selector: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only(page, site_url):
    page.goto(lesson(site_url, 1))
    tab_to(page, "[data-progress-exercise='a']")
    page.keyboard.press("Space")
    expect_xp(page, "10/120 XP")
    tab_to(page, "[data-progress-complete]")
    page.keyboard.press("Space")
    expect_xp(page, "40/120 XP")

    progress_page(page, site_url)
    tab_to(page, "[data-progress-action='reset']")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.dataset.progressAction") == "reset-cancel"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.dataset.progressAction") == "reset-confirm"
    page.keyboard.press("Enter")
    expect_xp(page, "0/120 XP")
    tab_to(page, "[data-progress-setting]")
    page.keyboard.press("Space")
    assert page.locator('[data-progress="level"]').is_hidden()
