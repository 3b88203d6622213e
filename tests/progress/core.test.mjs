// Unit tests of the reader-progress rules (site_theme/assets/javascripts/progress/core.js).
// Run: node --test tests/progress/
import test from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const core = require("../../site_theme/assets/javascripts/progress/core.js");

// Two streams: "cnn" with three lessons (cnn-01 has two exercises), "rnn" with one lesson.
const MANIFEST = {
  version: 1,
  language: "en",
  streams: [
    { id: "cnn", title: "CNN", planned: 12, lessons: ["cnn-01", "cnn-02", "cnn-03"] },
    { id: "rnn", title: "RNN", planned: 4, lessons: ["rnn-01"] },
  ],
  lessons: {
    "cnn-01": { stream: "cnn", number: 1, title: "One", url: "en/cnn/01-one/", exercises: ["a", "b"] },
    "cnn-02": { stream: "cnn", number: 2, title: "Two", url: "en/cnn/02-two/", exercises: [] },
    "cnn-03": { stream: "cnn", number: 3, title: "Three", url: "en/cnn/03-three/", exercises: ["c"] },
    "rnn-01": { stream: "rnn", number: 1, title: "Four", url: "en/rnn/01-four/", exercises: [] },
  },
  xp: { lesson: 30, exercise: 10, all_exercises_bonus: 10 },
  aliases: { "cnn-old": "cnn-02" },
  page: { lesson: null },
};

const T0 = Date.UTC(2026, 11, 1, 3, 0, 0); // Tuesday 2026-12-01 03:00 UTC, 12:00 in Seoul
const DAY = 864e5;

function done(record, kind, key, at, lang = "ko", timeZone = "UTC") {
  return core.setDone(record, kind, key, true, at, lang, timeZone);
}

function unlocked(record, manifest = MANIFEST) {
  return core.derive(record, manifest).achievements.filter((item) => item.unlocked).map((item) => item.id);
}

// --- XP and levels ---------------------------------------------------------------------------------

test("level thresholds at 60·n·(n+1)", () => {
  const expected = [0, 120, 360, 720, 1200, 1800, 2520, 3360, 4320, 5400];
  expected.forEach((xp, level) => {
    assert.equal(core.levelFor(xp).level, level, `level at ${xp} XP`);
    if (xp > 0) assert.equal(core.levelFor(xp - 1).level, level - 1, `level at ${xp - 1} XP`);
  });
  assert.equal(core.levelFor(0).next, 120);
  assert.equal(core.levelFor(5400).next, null);
  assert.equal(core.levelFor(1e9).level, 9);
});

test("xp for lesson exercises and bonus", () => {
  let record = core.emptyRecord();
  assert.equal(core.derive(record, MANIFEST).xp, 0);
  record = done(record, "lesson", "cnn-01", T0);
  assert.equal(core.derive(record, MANIFEST).xp, 30);
  record = done(record, "exercise", "cnn-01/a", T0 + 1);
  assert.equal(core.derive(record, MANIFEST).xp, 40);
  record = done(record, "exercise", "cnn-01/b", T0 + 2);
  assert.equal(core.derive(record, MANIFEST).xp, 60, "both exercises give 2×10 and the +10 bonus");
  record = core.setDone(record, "exercise", "cnn-01/b", false, T0 + 3, "ko", "UTC");
  assert.equal(core.derive(record, MANIFEST).xp, 40, "unticking takes the exercise and the bonus back");
  assert.equal(record.exercises["cnn-01/b"].done, false, "unticking stores not-done");
});

test("xp reaches level 1 at exactly 120", () => {
  let record = core.emptyRecord();
  for (const id of ["cnn-01", "cnn-02", "cnn-03"]) record = done(record, "lesson", id, T0);
  record = done(record, "exercise", "cnn-01/a", T0);
  let result = core.derive(record, MANIFEST);
  assert.equal(result.xp, 100);
  assert.equal(result.level, 0);
  record = done(record, "exercise", "cnn-03/c", T0);
  result = core.derive(record, MANIFEST);
  assert.equal(result.xp, 120, "30·3 + 10 + 10 + 10 bonus for cnn-03");
  assert.equal(result.level, 1);
  assert.equal(result.nextLevelXp, 360);
});

test("derive counts lessons and percent", () => {
  let record = done(core.emptyRecord(), "lesson", "cnn-02", T0);
  const result = core.derive(record, MANIFEST);
  assert.equal(result.lessonsDone, 1);
  assert.equal(result.lessonsTotal, 4);
  assert.equal(result.maxXp, 30 * 4 + 10 * 3 + 10 * 2);
  assert.equal(result.percent, Math.floor((100 * 30) / 170));
  assert.equal(result.achievements.length, 11);
  assert.equal(core.derive(core.emptyRecord(), { lessons: {}, streams: [] }).percent, 0, "no NaN without lessons");
});

test("unlisted ids kept but not counted", () => {
  let record = done(core.emptyRecord(), "lesson", "gone-01", T0);
  record = done(record, "exercise", "gone-01/x", T0);
  const result = core.derive(record, MANIFEST);
  assert.equal(result.xp, 0);
  assert.equal(result.lessonsDone, 0);
  assert.ok(record.lessons["gone-01"].done, "the entry stays in the record");
  const reread = core.parseStored(JSON.stringify(record), MANIFEST).record;
  assert.ok(reread.lessons["gone-01"], "and survives a round trip through storage");
});

// --- Achievements ----------------------------------------------------------------------------------

test("first lesson and exercise achievements", () => {
  let record = done(core.emptyRecord(), "lesson", "cnn-02", T0);
  assert.deepEqual(unlocked(record), ["first-lesson", "lessons-25"], "one of four lessons is 25 %");
  record = done(record, "exercise", "cnn-01/a", T0);
  assert.ok(unlocked(record).includes("first-exercise"));
  assert.ok(!unlocked(record).includes("lesson-exercises"));
  record = done(record, "exercise", "cnn-01/b", T0);
  assert.ok(unlocked(record).includes("lesson-exercises"));
});

test("achievements kept after unticking", () => {
  let record = done(core.emptyRecord(), "lesson", "cnn-02", T0);
  record = done(record, "exercise", "cnn-03/c", T0);
  record = core.setDone(record, "lesson", "cnn-02", false, T0 + 5, "ko", "UTC");
  record = core.setDone(record, "exercise", "cnn-03/c", false, T0 + 6, "ko", "UTC");
  assert.equal(core.derive(record, MANIFEST).xp, 0);
  assert.deepEqual(unlocked(record), ["first-lesson", "first-exercise", "lesson-exercises", "lessons-25"]);
});

test("stream achievement needs every lesson", () => {
  let record = done(core.emptyRecord(), "lesson", "rnn-01", T0);
  assert.ok(unlocked(record).includes("stream-complete"), "rnn has one lesson");
  record = done(core.emptyRecord(), "lesson", "cnn-01", T0);
  record = done(record, "lesson", "cnn-02", T0);
  assert.ok(!unlocked(record).includes("stream-complete"));
  record = done(record, "lesson", "cnn-03", T0);
  assert.ok(unlocked(record).includes("stream-complete"));
});

test("share achievements round up", () => {
  // Five lessons: 25 % needs ceil(1.25) = 2, 50 % needs 3, 100 % needs 5.
  const lessons = {};
  ["l-1", "l-2", "l-3", "l-4", "l-5"].forEach((id) => (lessons[id] = { stream: "s", exercises: [] }));
  const manifest = { lessons, streams: [{ id: "s", lessons: Object.keys(lessons) }], xp: MANIFEST.xp };
  let record = core.emptyRecord();
  const shares = () => unlocked(record, manifest).filter((id) => id.startsWith("lessons-"));
  record = done(record, "lesson", "l-1", T0);
  assert.deepEqual(shares(), []);
  record = done(record, "lesson", "l-2", T0);
  assert.deepEqual(shares(), ["lessons-25"]);
  record = done(record, "lesson", "l-3", T0);
  assert.deepEqual(shares(), ["lessons-25", "lessons-50"]);
  record = done(record, "lesson", "l-4", T0);
  assert.deepEqual(shares(), ["lessons-25", "lessons-50"]);
  record = done(record, "lesson", "l-5", T0);
  assert.deepEqual(shares(), ["lessons-25", "lessons-50", "lessons-100"]);
});

test("three dates within seven days", () => {
  const at = (days) => T0 + days * DAY;
  let record = core.emptyRecord();
  record = done(record, "lesson", "cnn-01", at(0));
  record = done(record, "lesson", "cnn-02", at(0) + 3600e3);
  record = done(record, "lesson", "cnn-03", at(3));
  assert.ok(!unlocked(record).includes("three-days"), "two dates only");
  record = done(record, "lesson", "rnn-01", at(7));
  assert.ok(!unlocked(record).includes("three-days"), "day 0 to day 7 spans 8 dates");
  record = done(record, "exercise", "cnn-01/a", at(6));
  assert.ok(unlocked(record).includes("three-days"), "days 0, 3, 6");
});

test("four consecutive monday weeks", () => {
  // T0 is Tuesday 2026-12-01; weeks start on Monday 2026-11-30, 12-07, 12-14, 12-21.
  const week = (n, day = 0) => T0 + (7 * n + day) * DAY;
  let record = core.emptyRecord();
  record = done(record, "lesson", "cnn-01", week(0, 5)); // Sunday 12-06, still week 0
  record = done(record, "lesson", "cnn-02", week(1, -1)); // Monday 12-07, week 1
  record = done(record, "lesson", "cnn-03", week(2));
  assert.ok(!unlocked(record).includes("four-weeks"));
  record = done(record, "lesson", "rnn-01", week(4));
  assert.ok(!unlocked(record).includes("four-weeks"), "week 3 is missing");
  record = done(record, "exercise", "cnn-01/a", week(3, 5));
  assert.ok(unlocked(record).includes("four-weeks"));
});

test("bilingual and backup achievements", () => {
  let record = done(core.emptyRecord(), "lesson", "cnn-01", T0, "ko");
  assert.ok(!unlocked(record).includes("bilingual"));
  record = done(record, "exercise", "cnn-01/a", T0, "en");
  assert.ok(unlocked(record).includes("bilingual"));
  assert.ok(!unlocked(record).includes("backup"));
  record = core.markBackup(record, T0);
  assert.ok(unlocked(record).includes("backup"));
});

// --- Dates -------------------------------------------------------------------------------------------

test("date keys in seoul and utc", () => {
  const late = Date.UTC(2026, 11, 4, 15, 30); // 2026-12-04 15:30 UTC = 2026-12-05 00:30 in Seoul
  assert.equal(core.dateKey(late, "UTC"), "2026-12-04");
  assert.equal(core.dateKey(late, "Asia/Seoul"), "2026-12-05");
  const seoul = done(core.emptyRecord(), "lesson", "cnn-01", late, "ko", "Asia/Seoul");
  const utc = done(core.emptyRecord(), "lesson", "cnn-01", late, "ko", "UTC");
  assert.deepEqual(Object.keys(seoul.days), ["2026-12-05"]);
  assert.deepEqual(Object.keys(utc.days), ["2026-12-04"]);
});

test("seoul dates decide three days", () => {
  // 14:00, 16:00 UTC on 12-01 and 14:00 UTC on 12-02: two UTC dates, three Seoul dates (12-01..12-03).
  const times = [Date.UTC(2026, 11, 1, 14), Date.UTC(2026, 11, 1, 16), Date.UTC(2026, 11, 2, 16)];
  const ids = ["cnn-01", "cnn-02", "cnn-03"];
  for (const zone of ["UTC", "Asia/Seoul"]) {
    let record = core.emptyRecord();
    times.forEach((at, index) => (record = done(record, "lesson", ids[index], at, "ko", zone)));
    const expected = zone === "Asia/Seoul";
    assert.equal(unlocked(record).includes("three-days"), expected, zone);
  }
});

// --- Storage, migration, sanitising --------------------------------------------------------------

test("parse empty and unreadable", () => {
  assert.equal(core.parseStored(null, MANIFEST).state, "empty");
  for (const text of ["{not json", "", "42", "[]", "null", '"text"', '{"version":"1"}', '{"version":-1}']) {
    const parsed = core.parseStored(text, MANIFEST);
    assert.equal(parsed.state, "unreadable", JSON.stringify(text));
    assert.deepEqual(parsed.record, core.emptyRecord());
  }
});

test("invalid entries dropped one by one", () => {
  const stored = {
    version: 1,
    since: 0,
    lessons: {
      "cnn-01": { done: true, at: 5, first: 5 },
      "<img src=x onerror=alert(1)>": { done: true, at: 5, first: 5 },
      "cnn-02": { done: "yes", at: 5, first: 5 },
      "cnn-03": { done: true, at: NaN, first: null },
    },
    exercises: { "cnn-01/a": { done: false, at: 7, first: 6 }, "cnn-01": { done: true, at: 1, first: 1 } },
    days: { "2026-12-01": { at: 5, langs: ["ko"] }, yesterday: { at: 5, langs: ["ko"] }, "2026-12-02": { at: 5, langs: ["fr"] } },
    backup: "soon",
    settings: { hideGame: { on: true, at: 3 } },
  };
  const parsed = core.parseStored(JSON.stringify(stored), MANIFEST);
  assert.equal(parsed.state, "ok");
  assert.deepEqual(Object.keys(parsed.record.lessons), ["cnn-01"]);
  assert.deepEqual(Object.keys(parsed.record.exercises), ["cnn-01/a"]);
  assert.deepEqual(Object.keys(parsed.record.days), ["2026-12-01"]);
  assert.equal(parsed.record.backup, 0);
  assert.equal(parsed.record.settings.hideGame.on, true);
  assert.equal(parsed.dropped, 6, "3 lessons, 1 exercise, 2 days; a bad backup time only resets to 0");
});

test("version 0 migrates by page path", () => {
  const old = { read: { "/cnn/01-one/": T0, "en/cnn/03-three/index.html": T0 + DAY, "cnn/99-removed/": T0, "cnn/02-two/": true } };
  const parsed = core.parseStored(JSON.stringify(old), MANIFEST);
  assert.equal(parsed.state, "migrated");
  assert.equal(parsed.from, 0);
  assert.equal(parsed.record.version, 1);
  assert.deepEqual(Object.keys(parsed.record.lessons).sort(), ["cnn-01", "cnn-02", "cnn-03"]);
  assert.deepEqual(parsed.record.lessons["cnn-01"], { done: true, at: T0, first: T0 });
  assert.deepEqual(parsed.record.lessons["cnn-02"], { done: true, at: 0, first: 0 });
  const result = core.derive(parsed.record, MANIFEST);
  assert.equal(result.xp, 90);
  assert.ok(result.achievements.find((item) => item.id === "bilingual").unlocked, "a Korean and an English path");
});

test("newer version read as newer", () => {
  const stored = { version: 2, lessons: { "cnn-01": { done: true, at: 5, first: 5 } }, exercises: {}, days: {} };
  const parsed = core.parseStored(JSON.stringify(stored), MANIFEST);
  assert.equal(parsed.state, "newer");
  assert.equal(core.derive(parsed.record, MANIFEST).xp, 30, "what can be read is shown");
});

test("aliases follow renamed ids", () => {
  let record = done(core.emptyRecord(), "lesson", "cnn-old", T0);
  record = core.setDone(record, "lesson", "cnn-02", false, T0 - 10, "ko", "UTC");
  const renamed = core.applyAliases(record, MANIFEST.aliases);
  assert.deepEqual(Object.keys(renamed.lessons), ["cnn-02"]);
  assert.equal(renamed.lessons["cnn-02"].done, true, "the newer change wins");
  assert.equal(core.derive(renamed, MANIFEST).xp, 30);
  const loop = core.applyAliases(record, { "cnn-old": "cnn-x", "cnn-x": "cnn-old" });
  assert.ok(Object.keys(loop.lessons).length >= 1, "an alias loop ends");
});

// --- Merging --------------------------------------------------------------------------------------

test("merge keeps newer change", () => {
  let a = done(core.emptyRecord(), "lesson", "cnn-01", T0);
  let b = core.parseStored(JSON.stringify(a), MANIFEST).record;
  b = core.setDone(b, "lesson", "cnn-01", false, T0 + 10, "ko", "UTC");
  a = done(a, "lesson", "cnn-02", T0 + 20);
  const ab = core.mergeNewer(a, b);
  const ba = core.mergeNewer(b, a);
  assert.equal(ab.lessons["cnn-01"].done, false, "the later untick wins");
  assert.equal(ab.lessons["cnn-01"].first, T0, "and keeps the first completion");
  assert.equal(ab.lessons["cnn-02"].done, true, "a change made in the other copy survives");
  assert.deepEqual(ab.lessons, ba.lessons, "merge does not depend on order");
});

test("merge drops items older than reset", () => {
  const a = done(core.emptyRecord(), "lesson", "cnn-01", T0);
  const cleared = core.reset(a, T0 + 100);
  const merged = core.mergeNewer(cleared, a);
  assert.deepEqual(merged.lessons, {});
  assert.deepEqual(merged.days, {});
  const after = done(merged, "lesson", "cnn-02", T0 + 50);
  assert.ok(after.lessons["cnn-02"].at >= T0 + 100, "a change after a reset is not older than it");
  assert.equal(core.mergeNewer(after, a).lessons["cnn-02"].done, true);
});

test("import merge never lowers", () => {
  let local = done(core.emptyRecord(), "lesson", "cnn-01", T0);
  local = done(local, "exercise", "cnn-01/a", T0);
  let backup = done(core.emptyRecord(), "lesson", "cnn-02", T0 - DAY);
  backup = core.setDone(backup, "lesson", "cnn-01", false, T0 + DAY, "ko", "UTC");
  const merged = core.importRecord(local, backup, "merge", T0 + 2 * DAY);
  assert.equal(merged.lessons["cnn-01"].done, true, "a newer untick in the backup does not lower");
  assert.equal(merged.lessons["cnn-02"].done, true);
  assert.equal(merged.exercises["cnn-01/a"].done, true);
  const counts = core.derive(merged, MANIFEST);
  assert.equal(counts.lessonsDone, 2);
  assert.equal(counts.exercisesDone, 1);
});

test("import replace takes the backup", () => {
  const local = done(core.emptyRecord(), "lesson", "cnn-01", T0);
  const backup = done(core.emptyRecord(), "lesson", "cnn-02", T0 - DAY);
  const now = T0 + DAY;
  const replaced = core.importRecord(local, backup, "replace", now);
  assert.deepEqual(Object.keys(replaced.lessons), ["cnn-02"]);
  assert.equal(replaced.lessons["cnn-02"].first, T0 - DAY, "first completion is kept");
  assert.deepEqual(core.mergeNewer(local, replaced).lessons, replaced.lessons, "another tab's older copy cannot undo it");
  assert.equal(core.derive(replaced, MANIFEST).lessonsDone, 1);
});

// --- Backup code and file ---------------------------------------------------------------------------

function sampleRecord() {
  let record = done(core.emptyRecord(), "lesson", "cnn-01", T0, "ko", "Asia/Seoul");
  record = done(record, "exercise", "cnn-01/a", T0 + 1, "en", "Asia/Seoul");
  record = core.setDone(record, "exercise", "cnn-01/a", false, T0 + 2, "en", "Asia/Seoul");
  return core.markBackup(record, T0 + 3);
}

test("code round trip", () => {
  const record = sampleRecord();
  const code = core.encodeCode(record);
  assert.match(code, /^LP1\.[A-Za-z0-9_-]+\.[0-9a-f]{8}$/);
  assert.deepEqual(core.decodeCode(code), record);
  assert.deepEqual(core.decodeCode(`  ${code.slice(0, 20)}\n${code.slice(20)}  `), record, "whitespace from copying is ignored");
});

test("altered or truncated code rejected", () => {
  const code = core.encodeCode(sampleRecord());
  const flipped = code.slice(0, 10) + (code[10] === "A" ? "B" : "A") + code.slice(11);
  const cases = [code.slice(0, -1), code.slice(0, code.length - 12), flipped, "LP2" + code.slice(3), "", "hello", "LP1..00000000"];
  for (const bad of cases) {
    assert.throws(() => core.decodeCode(bad), (error) => error.code === "invalid-code", JSON.stringify(bad));
  }
});

test("code with html ids rejected", () => {
  // A well-formed code, with a valid checksum, whose id contains markup.
  const body = Buffer.from(JSON.stringify({ v: 1, s: 0, b: 0, l: [["<b>x</b>", 1, 5, 5]], e: [], d: [] })).toString("base64url");
  const code = `LP1.${body}.${core.crc32(body)}`;
  assert.throws(() => core.decodeCode(code), (error) => error.code === "invalid-content");
});

test("file round trip", () => {
  const record = sampleRecord();
  const text = JSON.stringify(core.exportFile(record, T0));
  const read = core.readFile(text, 256 * 1024);
  assert.deepEqual(read, record);
});

test("hostile files rejected", () => {
  const good = core.exportFile(sampleRecord(), T0);
  const withHtml = JSON.parse(JSON.stringify(good));
  withHtml.record.lessons["<script>alert(1)</script>"] = { done: true, at: 1, first: 1 };
  const newer = JSON.parse(JSON.stringify(good));
  newer.record.version = 7;
  const cases = [
    ["not json", "not-ours"],
    [JSON.stringify({ lessons: {} }), "not-ours"],
    [JSON.stringify({ format: "other", record: {} }), "not-ours"],
    [JSON.stringify(withHtml), "invalid-content"],
    [JSON.stringify(newer), "newer"],
    ["x".repeat(300 * 1024), "too-large"],
  ];
  for (const [text, code] of cases) {
    assert.throws(() => core.readFile(text, 256 * 1024), (error) => error.code === code, code);
  }
});

test("crc32 matches known value", () => {
  // Standard check value of CRC-32/ISO-HDLC.
  assert.equal(core.crc32("123456789"), "cbf43926");
});
