// Queue logic of companion/static/js/outbox.js over an in-memory store.
// The IndexedDB store itself is exercised in sw.test.mjs (fake-indexeddb + sync).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Outbox = require("../companion/static/js/outbox.js");

/** In-memory store with the same interface and atomic update() as idbStore(). */
function memoryStore() {
  const records = new Map();
  const clone = (value) => structuredClone(value);
  return {
    records,
    async put(record) {
      records.set(record.id, clone(record));
    },
    async getAll() {
      return [...records.values()].map(clone);
    },
    async delete(id) {
      records.delete(id);
    },
    async update(id, change) {
      const current = records.get(id);
      const next = current ? change(clone(current)) : null;
      if (next) records.set(id, clone(next));
      return next ?? null;
    },
  };
}

function checkin(n, extra = {}) {
  return {
    id: `00000000-0000-4000-8000-00000000000${n}`,
    session_id: 7,
    taken_at: `2024-05-0${n}T08:00:00.000Z`,
    redness: 2,
    swelling: 1,
    pain: 3,
    symptoms: { bruising: false, peeling: true, itching: false, oozing: false, bumps: false, patches: false },
    warning_signs: { spreading_redness: false, fever: false, pus: false, eye_or_breathing: false, blisters: false },
    note: `day ${n}`,
    ...extra,
  };
}

function jsonResponse(status, body, headers = {}) {
  return new Response(body == null ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** fetch that answers from a list of outcomes (Response, Error or function) and records calls. */
function scriptedFetch(...answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    const value = typeof answer === "function" ? await answer(url, init) : answer;
    if (value instanceof Error) throw value;
    return value instanceof Response ? value.clone() : value;
  };
  return { fetch, calls };
}

const stored = (body) => jsonResponse(201, { ...body, assessment: { status: "expected", message: "ok", flags: [] } });

/** A clock the test moves by hand. */
function clock(start = Date.parse("2024-05-01T10:00:00Z")) {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test("enqueue keeps the check-in exactly as built, including id and taken_at", async () => {
  const store = memoryStore();
  const outbox = Outbox.createOutbox({ store, fetch: () => assert.fail("no send"), locks: null });
  const body = checkin(1);
  const record = await outbox.enqueue(body);
  assert.equal(record.id, body.id);
  const [saved] = await store.getAll();
  assert.deepEqual(saved.checkin, body);
  assert.equal(saved.checkin.taken_at, "2024-05-01T08:00:00.000Z");
  assert.equal(saved.attempts, 0);
  assert.equal(await outbox.count(), 1);
});

test("replay sends each queued check-in once, oldest first, with its original body", async () => {
  const store = memoryStore();
  const time = clock();
  const { fetch, calls } = scriptedFetch((url, init) => stored(JSON.parse(init.body)));
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, now: time.now });
  await outbox.enqueue(checkin(1));
  time.advance(1000);
  await outbox.enqueue(checkin(2));

  const { results, remaining } = await outbox.replay();

  assert.equal(remaining, 0);
  assert.deepEqual(
    calls.map((call) => call.body),
    [checkin(1), checkin(2)],
  );
  for (const call of calls) {
    assert.equal(call.url, "/api/checkins");
    assert.equal(call.init.method, "POST");
    assert.equal(call.init.credentials, "same-origin");
    assert.equal(call.init.headers["Content-Type"], "application/json");
  }
  assert.deepEqual(
    results.map((r) => [r.outcome, r.status, r.body.assessment.status]),
    [
      ["sent", 201, "expected"],
      ["sent", 201, "expected"],
    ],
  );
  // A second replay has nothing left to send.
  await outbox.replay();
  assert.equal(calls.length, 2);
});

for (const status of [200, 201, 409, 422, 400, 403, 404, 413]) {
  test(`replay deletes the check-in after HTTP ${status}`, async () => {
    const store = memoryStore();
    const body = status >= 400 ? { error: { code: "x", message: "refused", fields: {} } } : checkin(1);
    const { fetch } = scriptedFetch(jsonResponse(status, body));
    const outbox = Outbox.createOutbox({ store, fetch, locks: null });
    await outbox.enqueue(checkin(1));
    const { results, remaining } = await outbox.replay();
    assert.equal(remaining, 0);
    assert.equal(results[0].outcome, status < 300 ? "sent" : "rejected");
    if (status >= 400) assert.equal(results[0].body.error.message, "refused");
  });
}

for (const [label, answer, status] of [
  ["a network error", new TypeError("Failed to fetch"), 0],
  ["HTTP 500", jsonResponse(500, null), 500],
  ["HTTP 502", new Response("bad gateway", { status: 502 }), 502],
  ["HTTP 503", jsonResponse(503, null), 503],
  ["HTTP 401", jsonResponse(401, { error: { code: "unauthorized", message: "sign in" } }), 401],
  ["HTTP 408", jsonResponse(408, null), 408],
  ["HTTP 429", jsonResponse(429, null), 429],
]) {
  test(`replay keeps the check-in after ${label}`, async () => {
    const store = memoryStore();
    const { fetch, calls } = scriptedFetch(answer);
    const outbox = Outbox.createOutbox({ store, fetch, locks: null });
    await outbox.enqueue(checkin(1));
    const { results, remaining } = await outbox.replay();
    assert.equal(calls.length, 1);
    assert.equal(remaining, 1);
    assert.equal(results[0].outcome, "retry");
    assert.equal(results[0].status, status);
    const [record] = await store.getAll();
    assert.deepEqual(record.checkin, checkin(1), "body unchanged for the next replay");
    assert.equal(record.attempts, 1);
    assert.equal(record.lease_until, 0, "lease released so the next replay can send it");
    assert.equal(record.last_status, status);
  });
}

test("a redirected answer (signed out, sent to a login page) keeps the check-in", async () => {
  const store = memoryStore();
  const redirected = new Response("<html>login</html>", { status: 200 });
  Object.defineProperty(redirected, "redirected", { value: true });
  const outbox = Outbox.createOutbox({ store, fetch: async () => redirected, locks: null });
  await outbox.enqueue(checkin(1));
  const { results, remaining } = await outbox.replay();
  assert.equal(results[0].outcome, "retry");
  assert.equal(remaining, 1);
});

test("replay stops at a network error instead of trying every other item", async () => {
  const store = memoryStore();
  const time = clock();
  const { fetch, calls } = scriptedFetch(new TypeError("offline"));
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, now: time.now });
  for (const n of [1, 2, 3]) {
    await outbox.enqueue(checkin(n));
    time.advance(10);
  }
  const { results, remaining } = await outbox.replay();
  assert.equal(calls.length, 1);
  assert.equal(results.length, 1);
  assert.equal(remaining, 3);
});

test("replay goes on past a 5xx and a 422 to the next items", async () => {
  const store = memoryStore();
  const time = clock();
  const { fetch, calls } = scriptedFetch(
    jsonResponse(500, null),
    jsonResponse(422, { error: { code: "invalid", message: "bad", fields: { redness: "0-4" } } }),
    (url, init) => stored(JSON.parse(init.body)),
  );
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, now: time.now });
  for (const n of [1, 2, 3]) {
    await outbox.enqueue(checkin(n));
    time.advance(10);
  }
  const { results, remaining } = await outbox.replay();
  assert.deepEqual(
    results.map((r) => r.outcome),
    ["retry", "rejected", "sent"],
  );
  assert.equal(calls.length, 3);
  assert.equal(remaining, 1);
  assert.deepEqual((await store.getAll()).map((r) => r.id), [checkin(1).id]);
});

test("429 Retry-After is honoured: no resend before the server's time", async () => {
  const store = memoryStore();
  const time = clock();
  const { fetch, calls } = scriptedFetch(jsonResponse(429, null, { "Retry-After": "30" }), (url, init) =>
    stored(JSON.parse(init.body)),
  );
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, now: time.now });
  await outbox.enqueue(checkin(1));

  const first = await outbox.replay();
  assert.equal(first.results[0].retryAfterMs, 30_000);
  assert.equal((await store.getAll())[0].next_attempt_at, time.now() + 30_000);

  assert.equal(first.retryAfterMs, 30_000);

  time.advance(29_000);
  const early = await outbox.replay();
  assert.deepEqual(early.results, []);
  assert.equal(early.retryAfterMs, 1_000);
  assert.equal(calls.length, 1);

  time.advance(1_000);
  const later = await outbox.replay();
  assert.equal(later.results[0].outcome, "sent");
  assert.equal(later.remaining, 0);
  assert.equal(calls.length, 2);
});

test("concurrent replays without Web Locks never send the same check-in twice", async () => {
  const store = memoryStore();
  const time = clock();
  const pending = [];
  const calls = [];
  const fetch = (url, init) => {
    calls.push(JSON.parse(init.body).id);
    return new Promise((resolve) => pending.push(() => resolve(stored(JSON.parse(init.body)))));
  };
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, now: time.now });
  // A second outbox over the same store plays the service worker's part.
  const worker = Outbox.createOutbox({ store, fetch, locks: null, now: time.now });
  for (const n of [1, 2]) {
    await outbox.enqueue(checkin(n));
    time.advance(10);
  }

  const replays = [outbox.replay(), worker.replay(), outbox.replay()];
  // Answer requests as they arrive until every replay is done.
  let done = false;
  Promise.all(replays).then(() => (done = true));
  while (!done) {
    await new Promise((resolve) => setImmediate(resolve));
    pending.splice(0).forEach((answer) => answer());
  }

  assert.equal(calls.length, 2);
  assert.deepEqual([...calls].sort(), [checkin(1).id, checkin(2).id]);
  assert.equal(await outbox.count(), 0);
});

test("with Web Locks, replays run one after the other", async () => {
  const store = memoryStore();
  let held = 0;
  let maxHeld = 0;
  let tail = Promise.resolve();
  const locks = {
    requested: [],
    request(name, work) {
      this.requested.push(name);
      const run = tail.then(async () => {
        held += 1;
        maxHeld = Math.max(maxHeld, held);
        try {
          return await work();
        } finally {
          held -= 1;
        }
      });
      tail = run.catch(() => undefined);
      return run;
    },
  };
  const { fetch, calls } = scriptedFetch(async (url, init) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return stored(JSON.parse(init.body));
  });
  const page = Outbox.createOutbox({ store, fetch, locks });
  const worker = Outbox.createOutbox({ store, fetch, locks });
  await page.enqueue(checkin(1));
  await Promise.all([page.replay(), worker.replay()]);
  assert.equal(calls.length, 1);
  assert.equal(maxHeld, 1);
  assert.deepEqual(locks.requested, ["checkin-outbox", "checkin-outbox"]);
});

test("submit stores the check-in leased, so a replay meanwhile leaves it alone", async () => {
  const store = memoryStore();
  let answer;
  const calls = [];
  const fetch = (url, init) => {
    calls.push(JSON.parse(init.body));
    return new Promise((resolve) => (answer = () => resolve(stored(JSON.parse(init.body)))));
  };
  const outbox = Outbox.createOutbox({ store, fetch, locks: null });
  const submitting = outbox.submit(checkin(1));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(await outbox.count(), 1, "written before the request completes");

  const replay = await outbox.replay();
  assert.deepEqual(replay.results, []);

  answer();
  const result = await submitting;
  assert.equal(result.outcome, "sent");
  assert.equal(result.body.assessment.status, "expected");
  assert.equal(calls.length, 1);
  assert.equal(await outbox.count(), 0);
});

test("submit offline leaves the check-in queued and releases it for replay", async () => {
  const store = memoryStore();
  const { fetch, calls } = scriptedFetch(new TypeError("offline"), (url, init) => stored(JSON.parse(init.body)));
  const outbox = Outbox.createOutbox({ store, fetch, locks: null });
  const result = await outbox.submit(checkin(1));
  assert.equal(result.outcome, "retry");
  assert.equal(await outbox.count(), 1);
  const { results } = await outbox.replay();
  assert.equal(results[0].outcome, "sent");
  assert.deepEqual(calls[1].body, checkin(1), "replayed with the original id and taken_at");
});

test("a lease left by a context that died expires and the check-in is sent", async () => {
  const store = memoryStore();
  const time = clock();
  const { fetch, calls } = scriptedFetch((url, init) => stored(JSON.parse(init.body)));
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, now: time.now, leaseMs: 30_000 });
  await store.put({ ...(await outbox.enqueue(checkin(1))), lease_until: time.now() + 30_000 });
  const blocked = await outbox.replay();
  assert.deepEqual(blocked.results, []);
  assert.equal(blocked.retryAfterMs, 30_000, "tells the caller when to come back");
  time.advance(30_001);
  assert.equal((await outbox.replay()).results[0].outcome, "sent");
  assert.equal(calls.length, 1);
});

test("with Web Locks, a replay lease left by a closed tab is taken over at once", async () => {
  const store = memoryStore();
  const locks = { request: (name, work) => work() };
  const { fetch, calls } = scriptedFetch((url, init) => stored(JSON.parse(init.body)));
  const outbox = Outbox.createOutbox({ store, fetch, locks });
  const record = await outbox.enqueue(checkin(1));
  await store.put({ ...record, lease_until: Date.now() + 30_000, lease_by: "replay" });
  assert.equal((await outbox.replay()).results[0].outcome, "sent");
  assert.equal(calls.length, 1);
});

test("with Web Locks, a check-in being submitted is still left alone", async () => {
  const store = memoryStore();
  const locks = { request: (name, work) => work() };
  const outbox = Outbox.createOutbox({ store, fetch: () => assert.fail("no send"), locks });
  const record = await outbox.enqueue(checkin(1));
  await store.put({ ...record, lease_until: Date.now() + 30_000, lease_by: "submit" });
  const { results, retryAfterMs } = await outbox.replay();
  assert.deepEqual(results, []);
  assert.ok(retryAfterMs > 29_000);
});

test("a request that hangs is aborted and the check-in stays queued", async () => {
  const store = memoryStore();
  const fetch = (url, init) =>
    new Promise((resolve, reject) => init.signal.addEventListener("abort", () => reject(init.signal.reason)));
  const outbox = Outbox.createOutbox({ store, fetch, locks: null, timeoutMs: 20 });
  await outbox.enqueue(checkin(1));
  const { results, remaining } = await outbox.replay();
  assert.equal(results[0].outcome, "retry");
  assert.equal(remaining, 1);
});

test("sendDirect posts without storing (no IndexedDB)", async () => {
  const { fetch, calls } = scriptedFetch((url, init) => stored(JSON.parse(init.body)));
  const outbox = Outbox.createOutbox({ store: memoryStore(), fetch, locks: null });
  const result = await outbox.sendDirect(checkin(1));
  assert.equal(result.outcome, "sent");
  assert.deepEqual(calls[0].body, checkin(1));
  const offline = Outbox.createOutbox({ store: memoryStore(), fetch: async () => Promise.reject(new TypeError("x")) });
  assert.equal((await offline.sendDirect(checkin(1))).outcome, "retry");
});

test("classifyStatus: which answers end a check-in's stay in the queue", () => {
  const table = {
    200: "sent", 201: "sent", 204: "sent",
    400: "rejected", 403: "rejected", 404: "rejected", 409: "rejected", 413: "rejected", 422: "rejected",
    401: "retry", 408: "retry", 429: "retry",
    500: "retry", 502: "retry", 503: "retry", 504: "retry", 0: "retry",
  };
  for (const [status, outcome] of Object.entries(table)) {
    assert.equal(Outbox.classifyStatus(Number(status)), outcome, `HTTP ${status}`);
  }
});

test("retryAfterMs reads seconds and HTTP dates, ignores junk", () => {
  const now = Date.parse("2024-05-01T10:00:00Z");
  assert.equal(Outbox.retryAfterMs("120", now), 120_000);
  assert.equal(Outbox.retryAfterMs("Wed, 01 May 2024 10:01:00 GMT", now), 60_000);
  assert.equal(Outbox.retryAfterMs("Wed, 01 May 2024 09:00:00 GMT", now), 0);
  assert.equal(Outbox.retryAfterMs(null, now), 0);
  assert.equal(Outbox.retryAfterMs("soon", now), 0);
  assert.equal(Outbox.retryAfterMs("99999999", now), 24 * 60 * 60 * 1000);
});

test("names shared with the service worker and the server", () => {
  assert.equal(Outbox.DB_NAME, "companion");
  assert.equal(Outbox.STORE_NAME, "checkin-outbox");
  assert.equal(Outbox.LOCK_NAME, "checkin-outbox");
  assert.equal(Outbox.SYNC_TAG, "checkin-outbox");
  assert.equal(Outbox.ENDPOINT, "/api/checkins");
});

/** fetch for a check-in and its photos: the check-in POST answers `checkin`, photos take turns in `photos`. */
function photoFetch(checkinAnswer, ...photoAnswers) {
  const calls = [];
  const fetch = async (url, init) => {
    const isPhoto = url.endsWith("/photos");
    calls.push({ url, init, kind: isPhoto ? "photo" : "checkin", body: isPhoto ? await init.body.text() : JSON.parse(init.body), type: init.headers["Content-Type"] });
    let answer = isPhoto ? photoAnswers.shift() : checkinAnswer;
    if (typeof answer === "function") answer = await answer(url, init);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { fetch, calls };
}

const photo = (text, type = "image/jpeg") => new Blob([text], { type });

test("a check-in's photos follow it once it has landed, in order, then the record goes", async () => {
  const store = memoryStore();
  const body = checkin(1);
  const { fetch, calls } = photoFetch(stored(body), jsonResponse(201, { id: "p1" }), jsonResponse(201, { id: "p2" }));
  const outbox = Outbox.createOutbox({ store, fetch, locks: null });
  const result = await outbox.submit(body, [photo("cheek"), photo("jaw", "image/png")]);
  assert.equal(result.outcome, "sent");
  assert.deepEqual(result.photos, { sent: 2, refused: 0, left: 0 });
  assert.deepEqual(
    calls.map((call) => [call.kind, call.kind === "photo" ? call.body : call.body.id, call.type]),
    [
      ["checkin", body.id, "application/json"],
      ["photo", "cheek", "image/jpeg"],
      ["photo", "jaw", "image/png"],
    ],
  );
  assert.equal(calls[1].url, `/api/checkins/${body.id}/photos`);
  assert.equal(store.records.size, 0);
});

test("photos not sent wait in the outbox; a replay sends only them, not the check-in again", async () => {
  const store = memoryStore();
  const body = checkin(2);
  const first = photoFetch(stored(body), jsonResponse(201, {}), new TypeError("Failed to fetch"));
  const outbox = Outbox.createOutbox({ store, fetch: first.fetch, locks: null });
  const result = await outbox.submit(body, [photo("one"), photo("two"), photo("three")]);
  assert.equal(result.outcome, "sent");
  assert.deepEqual(result.photos, { sent: 1, refused: 0, left: 2 });
  const [waiting] = store.records.values();
  assert.equal(waiting.checkin_sent, true);
  assert.equal(waiting.lease_until, 0, "released for the next replay");
  assert.deepEqual(await Promise.all(waiting.photos.map((blob) => blob.text())), ["two", "three"]);
  assert.equal(await outbox.count(), 0, "no check-in waits: it has landed");
  const later = photoFetch(jsonResponse(500, null), jsonResponse(201, {}), jsonResponse(415, { error: {} }));
  const replayed = await Outbox.createOutbox({ store, fetch: later.fetch, locks: null }).replay();
  assert.deepEqual(later.calls.map((call) => [call.kind, call.body]), [["photo", "two"], ["photo", "three"]]);
  assert.deepEqual(replayed.results, [{ id: body.id, outcome: "photos", status: 0, photos: { sent: 1, refused: 1, left: 0 } }]);
  assert.equal(replayed.remaining, 0, "a refused photo (415) is dropped, not retried for ever");
});

test("a refused photo's reason comes back with the counts, for the page to show", async () => {
  const store = memoryStore();
  const body = checkin(7);
  const notAPhoto = { error: { code: "not_an_image", message: "Esto no es una foto que podamos leer.", fields: {} } };
  const { fetch } = photoFetch(stored(body), jsonResponse(422, notAPhoto), jsonResponse(201, { id: "p2" }));
  const result = await Outbox.createOutbox({ store, fetch, locks: null }).submit(body, [photo("x"), photo("cheek")]);
  assert.deepEqual(result.photos, { sent: 1, refused: 1, left: 0, why: "Esto no es una foto que podamos leer." });
  const direct = photoFetch(stored(checkin(8)), jsonResponse(413, { error: { message: "Too big." } }));
  const sent = await Outbox.createOutbox({ store: memoryStore(), fetch: direct.fetch, locks: null }).sendDirect(checkin(8), [photo("huge")]);
  assert.deepEqual(sent.photos, { sent: 0, refused: 1, left: 0, why: "Too big." });
});

test("a photo whose answer was lost is sent again; the server's 200 (already stored) counts it sent", async () => {
  const store = memoryStore();
  const body = checkin(5);
  // The server stored "cheek" but the phone never heard back.
  const first = photoFetch(stored(body), new TypeError("Failed to fetch"));
  const outbox = Outbox.createOutbox({ store, fetch: first.fetch, locks: null });
  assert.deepEqual((await outbox.submit(body, [photo("cheek")])).photos, { sent: 0, refused: 0, left: 1 });
  const stillThere = jsonResponse(200, { id: "p1", url: "/api/photos/p1", width: 64, height: 48, bytes: 900 });
  const later = photoFetch(jsonResponse(500, null), stillThere);
  const { results, remaining } = await Outbox.createOutbox({ store, fetch: later.fetch, locks: null }).replay();
  assert.deepEqual(later.calls.map((call) => [call.kind, call.body]), [["photo", "cheek"]], "the same bytes again");
  assert.deepEqual(results[0].photos, { sent: 1, refused: 0, left: 0 }, "not shown as refused");
  assert.equal(remaining, 0);
});

test("an offline check-in keeps its photos; a refused check-in sends none", async () => {
  const store = memoryStore();
  const offline = photoFetch(new TypeError("Failed to fetch"));
  const outbox = Outbox.createOutbox({ store, fetch: offline.fetch, locks: null });
  const body = checkin(3);
  assert.equal((await outbox.submit(body, [photo("a")])).outcome, "retry");
  assert.equal(await outbox.count(), 1);
  const online = photoFetch(stored(body), jsonResponse(201, {}));
  const { results } = await Outbox.createOutbox({ store, fetch: online.fetch, locks: null }).replay();
  assert.deepEqual(online.calls.map((call) => call.kind), ["checkin", "photo"]);
  assert.deepEqual(results[0].photos, { sent: 1, refused: 0, left: 0 });
  assert.equal(store.records.size, 0);

  const refused = photoFetch(jsonResponse(422, { error: { fields: { pain: "x" } } }));
  const result = await Outbox.createOutbox({ store, fetch: refused.fetch, locks: null }).submit(checkin(4), [photo("b")]);
  assert.equal(result.outcome, "rejected");
  assert.deepEqual(refused.calls.map((call) => call.kind), ["checkin"]);
  assert.equal(store.records.size, 0);
});

const otherClient = () => jsonResponse(409, { error: { code: "other_client", message: "someone else", fields: {} } });

test("a shared phone: another client's queued check-in is refused (409), dropped with its photos, and the queue goes on", async () => {
  const store = memoryStore();
  const time = clock();
  const outbox = Outbox.createOutbox({ store, fetch: () => assert.fail("no send"), locks: null, now: time.now });
  await outbox.enqueue(checkin(1), [photo("a's cheek")], "41"); // client A, who signed out since
  time.advance(1000);
  await outbox.enqueue(checkin(2), [photo("b's cheek")], "42"); // client B, signed in now
  const { fetch, calls } = photoFetch(
    (url, init) => (init.headers["X-Companion-Client"] === "42" ? stored(JSON.parse(init.body)) : otherClient()),
    (url, init) => (init.headers["X-Companion-Client"] === "42" ? jsonResponse(201, {}) : otherClient()),
  );
  const { results, remaining } = await Outbox.createOutbox({ store, fetch, locks: null, now: time.now }).replay();
  assert.deepEqual(
    calls.map((call) => [call.kind, call.init.headers["X-Companion-Client"]]),
    [
      ["checkin", "41"],
      ["checkin", "42"],
      ["photo", "42"],
    ],
    "A's photo is never sent",
  );
  assert.deepEqual(
    results.map((result) => [result.outcome, result.status, result.body?.error?.code ?? null]),
    [
      ["rejected", 409, "other_client"],
      ["sent", 201, null],
    ],
  );
  assert.equal(remaining, 0);
  assert.equal(store.records.size, 0);
});

test("a shared phone: photos left over for another client are all dropped at the first 409 other_client", async () => {
  const store = memoryStore();
  const body = checkin(3);
  const first = photoFetch(stored(body), new TypeError("Failed to fetch"));
  const outbox = Outbox.createOutbox({ store, fetch: first.fetch, locks: null });
  await outbox.submit(body, [photo("one"), photo("two")], "41");
  assert.equal(store.records.size, 1, "photos wait for the network");
  const later = photoFetch(null, otherClient());
  const { results } = await Outbox.createOutbox({ store, fetch: later.fetch, locks: null }).replay();
  assert.equal(later.calls.length, 1, "one refusal is enough");
  assert.equal(later.calls[0].init.headers["X-Companion-Client"], "41");
  assert.deepEqual(results[0].photos, { sent: 0, refused: 2, left: 0 });
  assert.equal(store.records.size, 0);
});

test("no client named (older pages, API integrations): no header is sent", async () => {
  const store = memoryStore();
  const { fetch, calls } = scriptedFetch((url, init) => stored(JSON.parse(init.body)));
  await Outbox.createOutbox({ store, fetch, locks: null }).submit(checkin(4));
  assert.equal(calls[0].init.headers["X-Companion-Client"], undefined);
  assert.equal(Outbox.CLIENT_HEADER, "X-Companion-Client");
});
