// Pure helpers of companion/static/js/app.js (the DOM wiring is covered by the
// browser tests). Loading the file in Node must not touch any DOM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const App = require("../companion/static/js/app.js");

const IPHONE_SAFARI =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const IPHONE_CHROME =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1";
const IPHONE_INSTAGRAM =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 330.0.0.0";
const IPAD_DESKTOP_MODE =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const ANDROID_CHROME =
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";

const form = [
  { name: "redness", type: "radio", value: "0", checked: false },
  { name: "redness", type: "radio", value: "2", checked: true },
  { name: "swelling", type: "radio", value: "1", checked: true },
  { name: "swelling", type: "radio", value: "3", checked: false },
  { name: "pain", type: "range", value: "4" },
  { name: "symptoms.bruising", type: "checkbox", value: "on", checked: false },
  { name: "symptoms.peeling", type: "checkbox", value: "on", checked: true },
  { name: "warning_signs.fever", type: "checkbox", value: "on", checked: false },
  { name: "warning_signs.pus", type: "checkbox", value: "1", checked: true },
  { name: "note", type: "textarea", value: "  a bit tight  " },
  { name: "", type: "submit", value: "Send" },
];

test("buildCheckin turns the form controls into the API body", () => {
  const body = App.buildCheckin(form, {
    id: "6f1c2a9e-0b7d-4c53-9d8e-1f2a3b4c5d6e",
    takenAt: "2024-05-02T07:30:00.000Z",
    sessionId: "123",
  });
  assert.deepEqual(body, {
    id: "6f1c2a9e-0b7d-4c53-9d8e-1f2a3b4c5d6e",
    taken_at: "2024-05-02T07:30:00.000Z",
    session_id: 123,
    redness: 2,
    swelling: 1,
    pain: 4,
    symptoms: { bruising: false, peeling: true },
    warning_signs: { fever: false, pus: true },
    note: "a bit tight",
  });
});

test("buildCheckin leaves session_id out when the form has none", () => {
  for (const sessionId of ["", undefined, "abc"]) {
    const body = App.buildCheckin(form, { id: "x", takenAt: "t", sessionId });
    assert.ok(!("session_id" in body), JSON.stringify(sessionId));
  }
});

test("missingAnswers names the unanswered scales", () => {
  const empty = App.buildCheckin(
    [
      { name: "redness", type: "radio", value: "1", checked: false },
      { name: "pain", type: "number", value: "" },
    ],
    { id: "x", takenAt: "t" },
  );
  assert.deepEqual(App.missingAnswers(empty), ["redness", "swelling", "pain"]);
  assert.deepEqual(App.missingAnswers(App.buildCheckin(form, { id: "x", takenAt: "t" })), []);
  // 0 is an answer, not a missing one.
  const zero = App.buildCheckin(
    [
      { name: "redness", type: "radio", value: "0", checked: true },
      { name: "swelling", type: "radio", value: "0", checked: true },
      { name: "pain", type: "range", value: "0" },
    ],
    { id: "x", takenAt: "t" },
  );
  assert.deepEqual(App.missingAnswers(zero), []);
});

test("isIosSafari: the install hint shows only in Safari on iOS", () => {
  const table = [
    [{ userAgent: IPHONE_SAFARI, platform: "iPhone", maxTouchPoints: 5 }, true],
    [{ userAgent: IPAD_DESKTOP_MODE, platform: "MacIntel", maxTouchPoints: 5 }, true],
    [{ userAgent: IPAD_DESKTOP_MODE, platform: "MacIntel", maxTouchPoints: 0 }, false],
    [{ userAgent: IPHONE_CHROME, platform: "iPhone", maxTouchPoints: 5 }, false],
    [{ userAgent: IPHONE_INSTAGRAM, platform: "iPhone", maxTouchPoints: 5 }, false],
    [{ userAgent: ANDROID_CHROME, platform: "Linux armv8l", maxTouchPoints: 5 }, false],
  ];
  for (const [nav, expected] of table) assert.equal(App.isIosSafari(nav), expected, nav.userAgent);
  assert.equal(App.isIos({ userAgent: IPHONE_CHROME }), true);
});

test("isStandalone reads display-mode and Safari's navigator.standalone", () => {
  const win = (matches, standalone) => ({ matchMedia: () => ({ matches }), navigator: { standalone } });
  assert.equal(App.isStandalone(win(true, undefined)), true);
  assert.equal(App.isStandalone(win(false, true)), true);
  assert.equal(App.isStandalone(win(false, false)), false);
  assert.equal(App.isStandalone({ navigator: {} }), false);
});

test("assessmentView gives a class and a text label for every status", () => {
  App.useMessages({ assessmentLabels: { expected: "As expected", review: "Needs review", urgent: "Urgent" } });
  assert.deepEqual(App.assessmentView({ status: "urgent", message: "Contact your clinic now." }), {
    status: "urgent",
    className: "assessment-urgent",
    label: "Urgent",
    message: "Contact your clinic now.",
  });
  assert.equal(App.assessmentView({ status: "expected", message: "" }).label, "As expected");
  assert.equal(App.assessmentView({ status: "review", message: "" }).className, "assessment-review");
  // An unknown status is shown as needing review rather than as fine.
  assert.equal(App.assessmentView({ status: "weird" }).status, "review");
});

test("mostSevere picks the urgent answer among replayed check-ins", () => {
  const sent = (status) => ({ outcome: "sent", body: { assessment: { status, message: status } } });
  assert.equal(App.mostSevere([sent("expected"), sent("urgent"), sent("review")]).status, "urgent");
  assert.equal(App.mostSevere([{ outcome: "retry" }]), null);
});

test("errorText reads the API's error shape", () => {
  const body = { error: { code: "invalid", message: "Check the answers", fields: { redness: "must be 0-4", pain: ["required"] } } };
  assert.equal(App.errorText(body, 422), "Check the answers (redness: must be 0-4; pain: required)");
  assert.equal(App.errorText({ error: { message: "Already recorded" } }, 409), "Already recorded");
  assert.equal(App.errorText(null, 413), "HTTP 413");
});

test("base64UrlToBytes and sameKey compare VAPID keys", () => {
  const key = "BPcMbnWQL5GOYX_sjmm2jgcrRnkoNLiAHX3cxpf8TsyMHd5LqzONxUJxa0Ht1oD9iG4fKS-TdC7-B_9eCxXfkdo";
  const bytes = App.base64UrlToBytes(key);
  assert.equal(bytes.length, 65);
  assert.equal(Buffer.from(bytes).toString("base64url"), key);
  assert.equal(App.sameKey(bytes.buffer, bytes), true);
  assert.equal(App.sameKey(new Uint8Array(65).buffer, bytes), false);
  assert.equal(App.sameKey(null, bytes), false);
});

test("withTimeout reports a promise that never settles", async () => {
  await assert.rejects(App.withTimeout(new Promise(() => {}), 10, "Could not reach the push service"), {
    message: "Could not reach the push service",
  });
  assert.equal(await App.withTimeout(Promise.resolve(7), 10, "late"), 7);
});

test("the iPhone's help names the app as its Home Screen does (the page's apple-mobile-web-app-title)", () => {
  const page = (title) => ({
    querySelector: (selector) => (selector === 'meta[name="apple-mobile-web-app-title"]' && title ? { content: title } : null),
    getElementById: (id) =>
      id === "client-messages" ? { textContent: JSON.stringify({ remindersDeniedIos: "Settings → Notifications → {app}, then" }) } : null,
  });
  App.readMessages(page("Glow Skin Studio"));
  assert.equal(App.deniedHelp({ userAgent: "iPhone" }), "Settings → Notifications → Glow Skin Studio, then");
  App.readMessages(page(null));
  assert.equal(App.MESSAGES.remindersDeniedIos, "Settings → Notifications → Companion, then");
});

test("sameZone: a phone in the saved zone under its old name is in the same zone", () => {
  assert.equal(App.sameZone("Asia/Calcutta", "Asia/Kolkata"), true);
  assert.equal(App.sameZone("America/Buenos_Aires", "America/Argentina/Buenos_Aires"), true);
  assert.equal(App.sameZone("Europe/London", "Europe/London"), true);
  assert.equal(App.sameZone("Europe/Paris", "Europe/Berlin"), false, "same offset, another zone");
  assert.equal(App.sameZone("Europe/London", "UTC"), false);
  assert.equal(App.sameZone("Not/AZone", "Europe/London"), false);
});

test("the words come from the page, plurals and all", () => {
  // The page renders them from the gettext catalogs (companion/client_words.py).
  App.useMessages({ remindersOn: "Recordatorios activados", photoSent: "1 foto enviada.", photosSentMany: "{n} fotos enviadas.", photosSent: "ignored" });
  assert.equal(App.MESSAGES.remindersOn, "Recordatorios activados");
  assert.equal(App.MESSAGES.photosSent(1), "1 foto enviada.");
  assert.equal(App.MESSAGES.photosSent(3), "3 fotos enviadas.", "a page cannot replace the plural functions");
  App.useMessages({ queuedOne: "1 registro guardado", queuedMany: "{n} registros guardados" });
  assert.equal(App.MESSAGES.queued(0), "");
  assert.equal(App.MESSAGES.queued(1), "1 registro guardado");
  assert.equal(App.MESSAGES.queued(3), "3 registros guardados");
});
