// Reader progress rules, without DOM or storage: the record (format in README.md), migration,
// merging, backup code, and XP, level and achievements. Browsers: window.LessonProgressCore.
((root, api) => {
  if (typeof module == "object" && module.exports) module.exports = api;
  else root.LessonProgressCore = api;
})(globalThis, (() => {
  "use strict";

  const VERSION = 1;
  const ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
  const LANGS = ["ko", "en"];
  const TABLES = ["lessons", "exercises"];
  // STEPS[n] upgrades version n to n+1.
  const STEPS = [fromVersion0];

  const emptyRecord = () =>
    ({ version: VERSION, since: 0, lessons: {}, exercises: {}, days: {}, backup: 0, settings: { hideGame: { on: false, at: 0 } } });

  // Parse stored text. The state is "empty", "ok", "migrated", "newer" (show, never write) or "unreadable".
  function parseStored(text, manifest) {
    const none = (state) => ({ state, record: emptyRecord(), dropped: 0 });
    if (text == null) return none("empty");
    let data = null;
    try {
      data = JSON.parse(text);
    } catch (error) {}
    if (!isObject(data)) return none("unreadable");
    const from = data.version === undefined ? 0 : data.version;
    if (!isTime(from)) return none("unreadable");
    for (let step = from; step < VERSION; step++) data = STEPS[step](data, manifest || {});
    const state = from == VERSION ? "ok" : from > VERSION ? "newer" : "migrated";
    return { state, from, ...sanitize(data) };
  }

  function sanitize(data) {
    const record = emptyRecord();
    let dropped = 0;
    const keep = (table, test, copy) => {
      for (const [key, value] of Object.entries(isObject(data[table]) ? data[table] : {})) {
        if (test(key, value)) record[table][key] = copy(value);
        else dropped++;
      }
    };
    if (isTime(data.since)) record.since = data.since;
    if (isTime(data.backup)) record.backup = data.backup;
    const hide = isObject(data.settings) && data.settings.hideGame;
    if (isObject(hide) && typeof hide.on == "boolean" && isTime(hide.at)) record.settings.hideGame = { on: hide.on, at: hide.at };
    keep("lessons", (key, value) => ID.test(key) && isItem(value), copyItem);
    keep("exercises", (key, value) => /^[^/]+\/[^/]+$/.test(key) && key.split("/").every((id) => ID.test(id)) && isItem(value), copyItem);
    keep("days", (key, value) => /^\d{4}-\d\d-\d\d$/.test(key) && isObject(value) && isTime(value.at) &&
      Array.isArray(value.langs) && value.langs.every((lang) => LANGS.includes(lang)),
    (value) => ({ at: value.at, langs: unique(value.langs) }));
    return { record, dropped };
  }

  // Paths the manifest does not list are left out; the caller keeps the old text.
  function fromVersion0(data, manifest) {
    const byPath = {};
    for (const [id, lesson] of Object.entries(manifest.lessons || {})) byPath[normalPath(lesson.url)] = id;
    const next = emptyRecord();
    for (const [path, value] of Object.entries(isObject(data.read) ? data.read : {})) {
      const id = byPath[normalPath(path)];
      if (!id || (value !== true && !isTime(value))) continue;
      const at = value === true ? 0 : value;
      next.lessons[id] = { done: true, at, first: at };
      if (at) addDay(next, at, /^\/?en\//.test(path) ? "en" : "ko");
    }
    return next;
  }

  const normalPath = (path) => String(path).replace(/^\/+|index\.html$/g, "").replace(/^(ko|en)\//, "").replace(/\/?$/, "/");

  function applyAliases(record, aliases) {
    const resolve = (id) => {
      for (let hops = 0; hops < 9 && typeof aliases[id] == "string"; hops++) id = aliases[id];
      return id;
    };
    if (!isObject(aliases)) return record;
    const out = { ...clone(record), lessons: {}, exercises: {} };
    for (const [id, item] of Object.entries(record.lessons)) putNewer(out.lessons, resolve(id), item);
    for (const [key, item] of Object.entries(record.exercises)) putNewer(out.exercises, key.split("/").map(resolve).join("/"), item);
    return out;
  }

  // kind: "lesson" (key: id) or "exercise" (key: "lessonId/exerciseId").
  function setDone(record, kind, key, done, now, lang, timeZone) {
    const out = clone(record);
    const table = out[kind == "lesson" ? "lessons" : "exercises"];
    const old = table[key];
    if (old && old.done == done) return out;
    const at = Math.max(now, old ? old.at + 1 : 0, out.since);
    table[key] = { done, at, first: old && old.first != null ? old.first : done ? at : null };
    if (done) addDay(out, at, lang, timeZone);
    return out;
  }

  function setHideGame(record, on, now) {
    const out = clone(record);
    out.settings.hideGame = { on, at: Math.max(now, out.settings.hideGame.at + 1) };
    return out;
  }

  const markBackup = (record, now) => ({ ...clone(record), backup: Math.max(now, record.since) });

  const reset = (record, now) => ({ ...emptyRecord(), since: Math.max(now, record.since + 1), settings: clone(record.settings) });

  // Each item keeps its newer change; items older than the later reset go.
  function mergeNewer(a, b) {
    const out = emptyRecord();
    out.since = Math.max(a.since, b.since);
    out.backup = Math.max(a.backup, b.backup);
    if (out.backup < out.since) out.backup = 0;
    out.settings.hideGame = clone((b.settings.hideGame.at > a.settings.hideGame.at ? b : a).settings.hideGame);
    for (const table of TABLES) {
      for (const source of [a, b]) {
        for (const [key, item] of Object.entries(source[table])) if (item.at >= out.since) putNewer(out[table], key, item);
      }
    }
    joinDays(out, a.days, out.since);
    joinDays(out, b.days, out.since);
    return out;
  }

  // "merge" never lowers progress. Changed items are stamped `now`, so older copies cannot undo them.
  function importRecord(local, incoming, mode, now) {
    if (mode == "replace") {
      const out = { ...clone(incoming), since: Math.max(now, local.since + 1), settings: clone(local.settings) };
      for (const table of TABLES) for (const item of Object.values(out[table])) item.at = out.since;
      for (const day of Object.values(out.days)) day.at = Math.max(day.at, out.since);
      if (out.backup) out.backup = out.since;
      return out;
    }
    const out = clone(local);
    const stamp = Math.max(now, local.since);
    for (const table of TABLES) {
      for (const [key, theirs] of Object.entries(incoming[table])) {
        const mine = out[table][key];
        const first = earliest(mine && mine.first, theirs.first);
        const done = !!(mine && mine.done) || theirs.done;
        if (!mine || mine.done != done || mine.first !== first) out[table][key] = { done, at: Math.max(stamp, mine ? mine.at + 1 : 0), first };
      }
    }
    joinDays(out, Object.fromEntries(Object.entries(incoming.days).map(([key, day]) => [key, { at: stamp, langs: day.langs }])), 0);
    if (incoming.backup && !out.backup) out.backup = stamp;
    return out;
  }

  // Ids the manifest does not list count for nothing.
  function derive(record, manifest) {
    const rules = manifest.xp || { lesson: 30, exercise: 10, all_exercises_bonus: 10 };
    const lessons = manifest.lessons || {};
    const ids = Object.keys(lessons);
    const result = { xp: 0, maxXp: 0, lessonsDone: 0, lessonsTotal: ids.length, exercisesDone: 0 };
    const ever = {};
    let everLessons = 0;
    let everExercise = false;
    let everAllExercises = false;

    for (const id of ids) {
      const item = record.lessons[id];
      const exercises = Array.isArray(lessons[id].exercises) ? lessons[id].exercises : [];
      let allNow = exercises.length > 0;
      let allEver = allNow;
      result.maxXp += rules.lesson + exercises.length * rules.exercise + (allNow ? rules.all_exercises_bonus : 0);
      if (item && item.done) {
        result.xp += rules.lesson;
        result.lessonsDone++;
      }
      if (item && item.first != null) everLessons += ever[id] = 1;
      for (const exercise of exercises) {
        const tick = record.exercises[id + "/" + exercise];
        if (tick && tick.done) {
          result.xp += rules.exercise;
          result.exercisesDone++;
        } else allNow = false;
        if (tick && tick.first != null) everExercise = true;
        else allEver = false;
      }
      if (allNow) result.xp += rules.all_exercises_bonus;
      if (allEver) everAllExercises = true;
    }

    const level = levelFor(result.xp);
    result.level = level.level;
    result.levelFloor = level.floor;
    result.nextLevelXp = level.next;
    result.percent = result.maxXp ? Math.floor((100 * result.xp) / result.maxXp) : 0;

    const share = (fraction) => ids.length > 0 && everLessons >= Math.ceil(ids.length * fraction);
    const streamDone = (manifest.streams || []).some((stream) => {
      const listed = (stream.lessons || []).filter((id) => lessons[id]);
      return listed.length > 0 && listed.every((id) => ever[id]);
    });
    const dates = Object.keys(record.days).sort();
    const langs = new Set(dates.flatMap((date) => record.days[date].langs));
    const unlocked = {
      "first-lesson": everLessons > 0,
      "first-exercise": everExercise,
      "lesson-exercises": everAllExercises,
      "stream-complete": streamDone,
      "lessons-25": share(0.25),
      "lessons-50": share(0.5),
      "lessons-100": share(1),
      "three-days": runWithin(dates.map(dayNumber), 3, 6),
      // Weeks start on Monday (1970-01-05 is day 4).
      "four-weeks": runWithin(unique(dates.map((date) => Math.floor((dayNumber(date) - 4) / 7))), 4, 3),
      bilingual: langs.has("ko") && langs.has("en"),
      backup: record.backup > 0,
    };
    // The order of the eleven achievements is that of the strings' achievementList.
    result.achievements = Object.entries(unlocked).map(([id, value]) => ({ id, unlocked: value }));
    result.achievementsUnlocked = result.achievements.filter((item) => item.unlocked).length;
    return result;
  }

  // Level n starts at 60·n·(n+1) XP, up to level 9.
  function levelFor(xp) {
    const threshold = (n) => 60 * n * (n + 1);
    let level = 0;
    while (level < 9 && xp >= threshold(level + 1)) level++;
    return { level, floor: threshold(level), next: level < 9 ? threshold(level + 1) : null };
  }

  // "YYYY-MM-DD" in `timeZone` (default: the browser's).
  function dateKey(ms, timeZone) {
    const parts = {};
    for (const part of new Intl.DateTimeFormat("en", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(ms)) {
      parts[part.type] = part.value;
    }
    return `${parts.year}-${parts.month}-${parts.day}`;
  }

  const dayNumber = (date) => Date.UTC(date.slice(0, 4), date.slice(5, 7) - 1, date.slice(8)) / 864e5;

  // True when `count` of the sorted distinct `numbers` lie within `span`.
  function runWithin(numbers, count, span) {
    for (let i = 0; i + count <= numbers.length; i++) if (numbers[i + count - 1] - numbers[i] <= span) return true;
    return false;
  }

  // "LP1.<base64url of compact JSON>.<CRC-32 of it>"
  function encodeCode(record) {
    const rows = (table) => Object.entries(table).map(([key, item]) => [key, +item.done, item.at, item.first]);
    const days = Object.entries(record.days).map(([key, day]) => [key, day.at, day.langs.join()]);
    const body = base64url(JSON.stringify({ v: VERSION, s: record.since, b: record.backup, l: rows(record.lessons), e: rows(record.exercises), d: days }));
    return `LP1.${body}.${crc32(body)}`;
  }

  // Any changed character or invalid entry rejects the whole code.
  function decodeCode(code) {
    const invalid = () => importError("invalid-code");
    const parts = String(code).replace(/\s+/g, "").split(".");
    if (parts.length != 3 || parts[0] != "LP1" || crc32(parts[1]) != parts[2]) throw invalid();
    let data;
    try {
      data = JSON.parse(unbase64url(parts[1]));
    } catch (error) {
      throw invalid();
    }
    const rows = (list, width, make) => {
      if (!Array.isArray(list)) throw invalid();
      return Object.fromEntries(list.map((row) => {
        if (!Array.isArray(row) || row.length != width || typeof row[0] != "string") throw invalid();
        return [row[0], make(row)];
      }));
    };
    const item = (row) => ({ done: [false, true][row[1]], at: row[2], first: row[3] });
    if (!isObject(data) || data.v !== VERSION) throw invalid();
    return strict({
      since: data.s, backup: data.b, lessons: rows(data.l, 4, item), exercises: rows(data.e, 4, item),
      days: rows(data.d, 3, (row) => ({ at: row[1], langs: String(row[2]).split(",").filter(Boolean) })),
    });
  }

  const exportFile = (record, now) => ({ format: "lesson-progress", exported: new Date(now).toISOString(), record });

  function readFile(text, maxLength) {
    if (text.length > maxLength) throw importError("too-large");
    let data = null;
    try {
      data = JSON.parse(text);
    } catch (error) {}
    if (!isObject(data) || data.format != "lesson-progress" || !isObject(data.record)) throw importError("not-ours");
    const version = data.record.version;
    if (version !== VERSION) throw importError(isTime(version) && version > VERSION ? "newer" : "not-ours");
    return strict(data.record);
  }

  function strict(data) {
    const clean = sanitize(data);
    const times = [data.since, data.backup].every((time) => time === undefined || isTime(time));
    if (clean.dropped || !times) throw importError("invalid-content");
    return clean.record;
  }

  function importError(code) {
    return Object.assign(new Error("progress import rejected: " + code), { code });
  }

  function addDay(record, at, lang, timeZone) {
    const key = dateKey(at, timeZone);
    joinDays(record, { [key]: { at, langs: LANGS.includes(lang) ? [lang] : [] } }, 0);
  }

  function joinDays(out, days, since) {
    for (const [key, day] of Object.entries(days)) {
      const mine = out.days[key];
      if (day.at >= since) out.days[key] = mine ? { at: Math.max(mine.at, day.at), langs: unique([...mine.langs, ...day.langs]) } : clone(day);
    }
  }

  // On equal times a completion wins, so both merge orders agree.
  function putNewer(table, key, item) {
    const old = table[key];
    const winner = !old || item.at > old.at || (item.at == old.at && item.done) ? item : old;
    table[key] = { done: winner.done, at: winner.at, first: earliest(old && old.first, item.first) };
  }

  function earliest(a, b) {
    if (a == null) return b == null ? null : b;
    if (b == null) return a;
    return Math.min(a, b);
  }
  const isItem = (value) => isObject(value) && typeof value.done == "boolean" && isTime(value.at) && (value.first === null || isTime(value.first));
  const copyItem = (value) => ({ done: value.done, at: value.at, first: value.first });
  const isObject = (value) => value !== null && typeof value == "object" && !Array.isArray(value);
  const isTime = (value) => Number.isSafeInteger(value) && value >= 0;
  const unique = (list) => [...new Set(list)];
  const clone = (value) => JSON.parse(JSON.stringify(value));

  function base64url(text) {
    const binary = String.fromCharCode(...new TextEncoder().encode(text));
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function unbase64url(text) {
    if (!/^[\w-]*$/.test(text)) throw Error("invalid base64url");
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
  }

  // CRC-32 (IEEE, as in zip) of a string of code units below 256.
  function crc32(text) {
    let crc = -1;
    for (let i = 0; i < text.length; i++) {
      crc ^= text.charCodeAt(i);
      for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
    }
    return ((crc ^ -1) >>> 0).toString(16).padStart(8, "0");
  }

  return {
    VERSION, emptyRecord, parseStored, sanitize, applyAliases, setDone, setHideGame, markBackup, reset,
    mergeNewer, importRecord, derive, levelFor, dateKey, encodeCode, decodeCode, exportFile, readFile, crc32,
  };
})());
