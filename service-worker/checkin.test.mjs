// Pure helpers of companion/static/js/checkin.js and the set-up helpers of app.js
// (the DOM wiring is covered by tests/test_browser_checkin.py).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { IDBFactory } from "fake-indexeddb";

const require = createRequire(import.meta.url);
const Checkin = require("../companion/static/js/checkin.js");
const Outbox = require("../companion/static/js/outbox.js");
const App = require("../companion/static/js/app.js");

const controls = () => [
  { name: "redness", type: "radio", value: "0", checked: false },
  { name: "redness", type: "radio", value: "2", checked: true },
  { name: "pain", type: "radio", value: "3", checked: false },
  { name: "symptoms.itching", type: "checkbox", value: "on", checked: true },
  { name: "warning_signs.pus", type: "checkbox", value: "on", checked: false },
  { name: "photos", type: "file", value: "C:\\fakepath\\a.jpg" },
  { name: "note", type: "textarea", value: "tight" },
  { name: "", type: "submit", value: "" },
];

test("draftFrom keeps what was answered and nothing else", () => {
  assert.deepEqual(Checkin.draftFrom(controls(), 1000), {
    saved_at: 1000,
    values: { redness: "2", "symptoms.itching": true, note: "tight" },
  });
});

test("applyDraft restores a draft onto blank controls, and clears what it does not hold", () => {
  const fields = controls().map((field) => ({ ...field, checked: false, value: field.type === "textarea" ? "" : field.value }));
  fields[4].checked = true; // pus ticked, but not in the draft: it must end unticked
  Checkin.applyDraft(fields, { redness: "2", "symptoms.itching": true, note: "tight" });
  assert.deepEqual(
    fields.map((f) => [f.name, f.checked ?? null, f.value]),
    [
      ["redness", false, "0"],
      ["redness", true, "2"],
      ["pain", false, "3"],
      ["symptoms.itching", true, "on"],
      ["warning_signs.pus", false, "on"],
      ["photos", false, "C:\\fakepath\\a.jpg"],
      ["note", false, "tight"],
      ["", false, ""],
    ],
  );
});

test("isFresh drops empty, malformed and old drafts", () => {
  const now = 10 * 60 * 60 * 1000;
  assert.equal(Checkin.isFresh({ saved_at: now - 1000, values: { redness: "1" } }, now), true);
  assert.equal(Checkin.isFresh({ saved_at: now - Checkin.DRAFT_MAX_AGE_MS, values: { redness: "1" } }, now), false);
  assert.equal(Checkin.isFresh({ saved_at: now, values: {} }, now), false);
  assert.equal(Checkin.isFresh(null, now), false);
  assert.equal(Checkin.isFresh({ saved_at: "x", values: { a: 1 } }, now), false);
});

test("placeErrors puts known questions in plain words and keeps the rest for the form", () => {
  App.useMessages({ fieldInvalid: { pain: "Choose a number from 0 to 10." } });
  const body = {
    error: {
      code: "invalid",
      message: "Some fields are not valid.",
      fields: { pain: "Must be between 0 and 10.", "symptoms.glow": "Unknown sign.", taken_at: "This is in the future; check the phone's clock." },
    },
  };
  assert.deepEqual(Checkin.placeErrors(body, App.MESSAGES.fieldInvalid), {
    beside: { pain: "Choose a number from 0 to 10.", symptoms: "Unknown sign." },
    general: ["This is in the future; check the phone's clock."],
  });
  assert.deepEqual(Checkin.placeErrors({ error: { message: "Already recorded" } }, {}), { beside: {}, general: ["Already recorded"] });
  assert.deepEqual(Checkin.placeErrors(null, {}), { beside: {}, general: [] });
});

test("setupSteps lists exactly the steps that apply to the browser", () => {
  const steps = (platform) => App.setupSteps({ ios: false, iosSafari: false, standalone: false, installPrompt: false, ...platform });
  assert.deepEqual(steps({ ios: true, iosSafari: true }), ["ios-install", "reminders", "calendar"]);
  assert.deepEqual(steps({ ios: true }), ["ios-safari", "reminders", "calendar"]);
  assert.deepEqual(steps({ ios: true, iosSafari: true, standalone: true }), ["reminders", "calendar"]);
  assert.deepEqual(steps({ installPrompt: true }), ["install", "reminders", "calendar"]);
  assert.deepEqual(steps({}), ["reminders", "calendar"]);
  assert.deepEqual(steps({ installPrompt: true, standalone: true }), ["reminders", "calendar"]);
});

test("deniedHelp gives each platform its own settings path", () => {
  App.useMessages({
    remindersDenied: "Allow notifications in your browser settings.",
    remindersDeniedAndroid: "Tap the icon left of the address (or ⋮ → Settings → Site settings → Notifications).",
    remindersDeniedIos: "Open the iPhone's Settings → Notifications → Companion.",
  });
  const iphone = { userAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1" };
  const android = { userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/124.0.0.0 Mobile Safari/537.36" };
  const desktop = { userAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.0.0 Safari/537.36" };
  assert.match(App.deniedHelp(iphone), /Settings → Notifications → Companion/);
  assert.match(App.deniedHelp(android), /Site settings → Notifications/);
  assert.doesNotMatch(App.deniedHelp(android), /iPhone/);
  assert.doesNotMatch(App.deniedHelp(desktop), /iPhone|Android|⋮/);
});

test("photoDraft keeps chosen photos as Blobs across a reload, in order, until removed or cleared", async () => {
  const indexedDB = new IDBFactory();
  let t = 1_000_000;
  let n = 0;
  const open = () =>
    Checkin.photoDraft({
      store: Outbox.idbStore({ indexedDB, dbName: Checkin.PHOTO_DB, storeName: "photos" }),
      now: () => t,
      newId: () => `p${++n}`,
    });
  const draft = open();
  await draft.add(new Blob(["first"], { type: "image/jpeg" }));
  await draft.add(new Blob(["second"], { type: "image/png" }));
  await draft.add(new Blob(["third"], { type: "image/jpeg" }));
  // A reload: a new store over the same database finds them, Blobs intact, in order.
  const kept = await open().list();
  assert.deepEqual(kept.map((photo) => photo.id), ["p1", "p2", "p3"]);
  assert.equal(await kept[1].blob.text(), "second");
  assert.equal(kept[1].blob.type, "image/png");
  await open().remove("p2");
  assert.deepEqual((await open().list()).map((photo) => photo.id), ["p1", "p3"]);
  await open().clear();
  assert.deepEqual(await open().list(), []);
});

test("photoDraft drops photos as old as a stale draft", async () => {
  const indexedDB = new IDBFactory();
  let t = 5_000_000;
  const store = Outbox.idbStore({ indexedDB, dbName: Checkin.PHOTO_DB, storeName: "photos" });
  const draft = Checkin.photoDraft({ store, now: () => t, newId: () => String(t) });
  await draft.add(new Blob(["yesterday"]));
  t += Checkin.DRAFT_MAX_AGE_MS - 1;
  await draft.add(new Blob(["now"]));
  assert.equal((await draft.list()).length, 2);
  t += 1;
  const left = await draft.list();
  assert.deepEqual(left.map((photo) => photo.id), [String(5_000_000 + Checkin.DRAFT_MAX_AGE_MS - 1)]);
  assert.equal((await store.getAll()).length, 1, "the stale photo is deleted, not only hidden");
});

test("a signed-out phone (the start page) drops the check-in draft: answers and photos", async () => {
  const indexedDB = new IDBFactory();
  const kept = new Map([[Checkin.DRAFT_KEY, '{"saved_at":1,"values":{"redness":"2"}}'], ["other", "x"]]);
  const localStorage = { removeItem: (key) => kept.delete(key) };
  const store = Outbox.idbStore({ indexedDB, dbName: Checkin.PHOTO_DB, storeName: "photos" });
  await Checkin.photoDraft({ store, newId: () => "p1" }).add(new Blob(["skin"], { type: "image/jpeg" }));
  // Client A's unsent check-in (with a photo) waits in the offline queue.
  const outbox = Outbox.createOutbox({ store: Outbox.idbStore({ indexedDB }), locks: null });
  await outbox.enqueue({ id: "a-1" }, [new Blob(["skin"], { type: "image/jpeg" })], "41");
  const doc = { getElementById: () => null, querySelector: () => null, addEventListener() {} };
  const win = (pathname) => ({ location: { pathname }, navigator: {}, localStorage, indexedDB, addEventListener() {} });
  const names = async () => (await indexedDB.databases()).map((db) => db.name);

  App.init(doc, win("/checkin")); // signed in: the draft stays
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(kept.has(Checkin.DRAFT_KEY));
  assert.deepEqual((await names()).sort(), [Outbox.DB_NAME, Checkin.PHOTO_DB].sort());

  App.init(doc, win("/start"));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual([...kept.keys()], ["other"]);
  assert.deepEqual(await names(), []);
  assert.equal(App.CHECKIN_DRAFT, Checkin.PHOTO_DB); // the name checkin.js keeps it under
  assert.equal(App.CHECKIN_OUTBOX, Outbox.DB_NAME);
});

test("reviewDay: today until 18:00 in the client's zone, tomorrow from 18:00", () => {
  // 16:59 and 17:00 UTC are 17:59 and 18:00 in Madrid (CET, +1) in November.
  assert.equal(Checkin.reviewDay(new Date("2026-11-30T16:59:59Z"), "Europe/Madrid", 18), "today");
  assert.equal(Checkin.reviewDay(new Date("2026-11-30T17:00:00Z"), "Europe/Madrid", 18), "tomorrow");
  // 22:00 in New York is 03:00 UTC the next day: still "tomorrow" there, not "today".
  assert.equal(Checkin.reviewDay(new Date("2026-12-01T03:00:00Z"), "America/New_York", 18), "tomorrow");
  // Just after midnight the clinic's day is today again.
  assert.equal(Checkin.reviewDay(new Date("2026-11-30T23:00:00Z"), "Europe/Madrid", 18), "today");
  // An unknown zone falls back to the phone's, and still answers.
  assert.ok(["today", "tomorrow"].includes(Checkin.reviewDay(new Date(), "Nowhere/Else", 18)));
});
