// Reader progress in the page: storage, panel, check boxes, progress page. Listeners are bound
// once; Material's instant navigation (document$) only re-renders.
(() => {
  "use strict";

  const core = window.LessonProgressCore;
  const KEY = "lesson-progress";
  const MAX_IMPORT = 256 * 1024;
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector) => document.querySelectorAll(selector);

  let record = core.emptyRecord();
  let manifest = { lessons: {} };
  let strings = null;
  // Set ("unavailable", "write", "unreadable", "newer") while the record lives in memory only.
  let reason = null;
  let pendingImport = null;
  let announceTimer = 0;

  document.addEventListener("change", onChange);
  document.addEventListener("click", onClick);
  addEventListener("storage", (event) => (event.key == KEY || event.key == null) && sync());
  // A page restored from the back-forward cache may show an older record.
  addEventListener("pageshow", (event) => event.persisted && sync());
  load();
  if (window.document$) document$.subscribe(onPage);
  else onPage();

  // Storage helpers that never throw.
  function read(key) {
    try {
      return { ok: true, value: localStorage.getItem(key) };
    } catch (error) {
      return { ok: false };
    }
  }

  function write(key, value) {
    try {
      localStorage.setItem(key, value);
      return true;
    } catch (error) {
      return false;
    }
  }

  function load() {
    readManifest();
    const stored = read(KEY);
    if (!stored.ok) return (reason = "unavailable");
    const parsed = core.parseStored(stored.value, manifest);
    record = core.applyAliases(parsed.record, manifest.aliases);
    if (parsed.state == "unreadable") {
      // Kept aside once; the stored text is never overwritten.
      if (read(KEY + ".unreadable").value === null) write(KEY + ".unreadable", stored.value);
      reason = "unreadable";
    } else if (parsed.state == "newer") reason = "newer";
    else if (parsed.state == "migrated") {
      const backup = KEY + ".backup-v" + parsed.from;
      if (read(backup).value !== null || write(backup, stored.value)) save();
      else reason = "write";
    }
  }

  function change(update) {
    if (!reason) refresh();
    const before = core.derive(record, manifest);
    record = update(record, Date.now());
    save();
    render();
    announce(before, core.derive(record, manifest));
  }

  function save() {
    if (!reason && !write(KEY, JSON.stringify(record))) reason = "write";
  }

  // Merge in other tabs' changes; true when this tab contains changes storage lacks (a lost write).
  function refresh() {
    const stored = read(KEY);
    const parsed = stored.ok ? core.parseStored(stored.value, manifest) : { state: "unavailable" };
    if (!/ok|empty|migrated/.test(parsed.state)) return !(reason = parsed.state);
    const theirs = core.applyAliases(parsed.record, manifest.aliases);
    record = core.mergeNewer(theirs, record);
    return canonical(record) != canonical(theirs);
  }

  function sync() {
    if (reason) return;
    if (refresh()) save();
    render();
  }

  function onPage() {
    readManifest();
    record = core.applyAliases(record, manifest.aliases);
    const source = $("[data-progress-strings]");
    try {
      strings = JSON.parse(source.getAttribute("data-progress-strings"));
    } catch (error) {
      strings = null;
    }
    pendingImport = null;
    render();
  }

  function readManifest() {
    try {
      const data = JSON.parse($("[data-lesson-manifest]").textContent);
      if (data && data.lessons) manifest = data;
    } catch (error) {
      // Keep the previous page's manifest.
    }
  }

  function render() {
    if (!strings) return;
    const result = core.derive(record, manifest);
    document.documentElement.toggleAttribute("data-progress-game-off", record.settings.hideGame.on);
    $$("[data-progress-panel]").forEach((panel) => fillPanel(panel, result));
    $$("[data-progress-lesson]").forEach((box) => {
      const id = box.getAttribute("data-progress-lesson");
      const done = (item) => !!(item && item.done);
      box.querySelectorAll("[data-progress-complete]").forEach((input) => (input.checked = done(record.lessons[id])));
      box.querySelectorAll("[data-progress-exercise]").forEach((input) => {
        input.checked = done(record.exercises[id + "/" + input.getAttribute("data-progress-exercise")]);
      });
    });
    fillProgressPage(result);
  }

  function fillPanel(panel, result) {
    const s = strings;
    const next = result.nextLevelXp;
    const xp = next === null ? format(s.xpMax, { xp: result.xp }) : format(s.xp, { xp: result.xp, next });
    const toGo = next === null ? s.maxLevel : format(s.toGo, { xp: next - result.xp });
    const percent = format(s.percent, result);
    const text = {
      level: format(s.level, { level: result.level, name: s.levelNames[result.level] }),
      xp,
      "to-go": toGo,
      lessons: format(s.lessons, { done: result.lessonsDone, total: result.lessonsTotal }),
      achievements: format(s.achievements, { unlocked: result.achievementsUnlocked, total: result.achievements.length }),
      percent,
      status: reason ? s.status[reason] : "",
    };
    for (const name in text) {
      const node = $(`[data-progress="${name}"]`, panel);
      if (node) node.textContent = text[name];
    }
    $('[data-progress="status"]', panel).hidden = !reason;
    setBar($('[data-progress="xp-bar"]', panel), result.xp - result.levelFloor, next === null ? 1 : next - result.levelFloor, xp + ", " + toGo);
    setBar($('[data-progress="percent-bar"]', panel), result.percent, 100, percent);
  }

  function setBar(bar, value, max, text) {
    const clamped = Math.max(0, Math.min(value, max));
    bar.setAttribute("aria-valuemax", max);
    bar.setAttribute("aria-valuenow", clamped);
    bar.setAttribute("aria-valuetext", text);
    bar.style.setProperty("--progress", (100 * clamped) / max + "%");
  }

  // The progress page's controls are in its Markdown.
  function fillProgressPage(result) {
    const list = $("[data-progress-achievements]");
    if (!list) return;
    list.replaceChildren(...result.achievements.map((item, index) => {
      const entry = strings.achievementList[index];
      const row = element("li", item.unlocked ? "is-unlocked" : "", [
        element("span", "progress-achievements__state", [item.unlocked ? strings.unlockedLabel : strings.lockedLabel]),
        " ", element("strong", "", [entry.name]), " ", entry.description,
      ]);
      row.setAttribute("data-achievement", item.id);
      return row;
    }));
    $("[data-progress-setting]").checked = record.settings.hideGame.on;
  }

  // String children become text, never markup.
  function element(tag, className, children) {
    const node = document.createElement(tag);
    node.className = className;
    node.append(...children);
    return node;
  }

  function onChange(event) {
    const input = event.target;
    const box = input.closest("[data-progress-lesson]");
    const lesson = box && box.getAttribute("data-progress-lesson");
    const exercise = input.getAttribute("data-progress-exercise");
    const lang = strings && strings.lang;
    if (box && input.hasAttribute("data-progress-complete")) {
      change((current, now) => core.setDone(current, "lesson", lesson, input.checked, now, lang));
    } else if (box && exercise) {
      change((current, now) => core.setDone(current, "exercise", lesson + "/" + exercise, input.checked, now, lang));
    } else if (input.hasAttribute("data-progress-setting")) {
      change((current, now) => core.setHideGame(current, input.checked, now));
    } else if (input.hasAttribute("data-progress-file") && input.files[0]) {
      const file = input.files[0];
      input.value = "";
      if (file.size > MAX_IMPORT) showImport(strings.errors["too-large"]);
      else file.text().then(checkImport, () => showImport(strings.errors["not-ours"]));
    }
  }

  function onClick(event) {
    const target = event.target.closest("[data-progress-action]");
    const actions = {
      download: downloadFile,
      "show-code": showCode,
      "copy-code": copyCode,
      "check-code": () => checkImport($("[data-progress-code-in]").value),
      merge: () => applyImport("merge"),
      replace: () => applyImport("replace"),
      "cancel-import": () => showImport(""),
      reset: () => showReset(true),
      "reset-cancel": () => showReset(false),
      "reset-confirm": () => {
        change(core.reset);
        showReset(false);
        message("reset", strings.resetDone);
      },
    };
    const action = target && actions[target.getAttribute("data-progress-action")];
    if (action && strings) action();
  }

  function downloadFile() {
    change(core.markBackup);
    const now = Date.now();
    const blob = new Blob([JSON.stringify(core.exportFile(record, now), null, 1)], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `lesson-progress-${core.dateKey(now)}.json`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1e3);
    message("export", strings.downloaded);
  }

  function showCode() {
    change(core.markBackup);
    const area = $("[data-progress-code-out]");
    area.value = core.encodeCode(record);
    $("[data-progress-code-box]").hidden = false;
    area.focus();
    area.select();
  }

  function copyCode() {
    const area = $("[data-progress-code-out]");
    const report = (copied) => message("export", copied ? strings.copied : strings.copyFailed);
    area.select();
    navigator.clipboard.writeText(area.value).then(() => report(true), () => {
      // Clipboard refused: copy the selection.
      try {
        report(document.execCommand("copy"));
      } catch (error) {
        report(false);
      }
    });
  }

  function checkImport(text) {
    let incoming;
    try {
      const trimmed = text.trim();
      incoming = trimmed[0] == "{" ? core.readFile(trimmed, MAX_IMPORT) : core.decodeCode(trimmed.slice(0, MAX_IMPORT));
    } catch (error) {
      return showImport(strings.errors[error.code] || strings.errors["invalid-code"]);
    }
    pendingImport = core.applyAliases(incoming, manifest.aliases);
    const now = Date.now();
    const counts = (mode) => core.derive(core.importRecord(record, pendingImport, mode, now), manifest);
    const merged = counts("merge");
    const replaced = counts("replace");
    const current = core.derive(record, manifest);
    $("[data-progress-preview-text]").textContent = format(strings.preview, {
      lessons: current.lessonsDone, exercises: current.exercisesDone,
      mergeLessons: merged.lessonsDone, mergeExercises: merged.exercisesDone,
      replaceLessons: replaced.lessonsDone, replaceExercises: replaced.exercisesDone,
    });
    showImport("", true);
  }

  function applyImport(mode) {
    const incoming = pendingImport;
    if (incoming) change((current, now) => core.importRecord(current, incoming, mode, now));
    showImport(strings.imported);
  }

  function showImport(text, preview) {
    if (!preview) pendingImport = null;
    $("[data-progress-preview]").hidden = !preview;
    message("import", text);
  }

  function showReset(open) {
    $("[data-progress-reset-confirm]").hidden = !open;
    $(`[data-progress-action="${open ? "reset-cancel" : "reset"}"]`).focus();
    message("reset", "");
  }

  function message(name, text) {
    $(`[data-progress-message="${name}"]`).textContent = text;
  }

  // The one polite live region sits outside the content that navigation swaps.
  function announce(before, after) {
    if (!strings || record.settings.hideGame.on) return;
    const news = strings.achievementList
      .filter((entry, index) => after.achievements[index].unlocked && !before.achievements[index].unlocked)
      .map((entry) => format(strings.unlocked, entry));
    if (after.level > before.level) news.unshift(format(strings.levelUp, { level: after.level, name: strings.levelNames[after.level] }));
    if (!news.length) return;
    let region = $("[data-progress-live]");
    if (!region) {
      region = element("div", "progress-toast", []);
      region.setAttribute("aria-live", "polite");
      region.setAttribute("data-progress-live", "");
      document.body.append(region);
    }
    region.textContent = news.join(" · ");
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => (region.textContent = ""), 8e3);
  }

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
  }

  function canonical(value) {
    return JSON.stringify(value, (key, item) =>
      item && typeof item == "object" && !Array.isArray(item) ? Object.fromEntries(Object.entries(item).sort()) : item);
  }
})();
