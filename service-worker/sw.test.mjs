// Runs the real sw.js in a node:vm context with fake self, caches, clients,
// registration and fetch, and fake-indexeddb's IndexedDB; collects the listeners
// it registers and fires events at them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { IDBFactory } from "fake-indexeddb";

const ORIGIN = "https://companion.example";
const SW_PATH = fileURLToPath(new URL("./sw.js", import.meta.url));
const OUTBOX_PATH = fileURLToPath(new URL("../companion/static/js/outbox.js", import.meta.url));

// Objects made inside the vm have that realm's prototypes; compare plain copies.
const plain = (value) => JSON.parse(JSON.stringify(value));
const tick = () => new Promise((resolve) => setImmediate(resolve));

// ------------------------------------------------------------------ fakes

class FakeCache {
  constructor() {
    this.entries = new Map();
  }
  key(request) {
    return new URL(typeof request === "string" ? request : request.url, ORIGIN).href;
  }
  async match(request) {
    return this.entries.get(this.key(request))?.clone();
  }
  async put(request, response) {
    this.entries.set(this.key(request), response);
  }
  async delete(request) {
    return this.entries.delete(this.key(request));
  }
  async addAll(requests) {
    for (const request of requests) {
      const response = await this.fetch(request);
      if (!response.ok) throw new TypeError(`addAll: ${request.url} answered ${response.status}`);
      await this.put(request, response);
    }
  }
  keys() {
    return [...this.entries.keys()].map((href) => new URL(href).pathname + new URL(href).search);
  }
}

/** A Response as the browser hands it to a worker: same-origin answers are "basic". */
function basic(body, { status = 200, headers = {}, redirected = false, url = "" } = {}) {
  const response = new Response(body, { status, headers: { "Content-Type": "text/html", ...headers } });
  Object.defineProperty(response, "type", { value: "basic" });
  Object.defineProperty(response, "redirected", { value: redirected });
  Object.defineProperty(response, "url", { value: url });
  return response;
}

/** Copy a response, keeping what basic() set (clone() drops own properties). */
function cloneBasic(response) {
  const copy = response.clone();
  Object.defineProperty(copy, "type", { value: response.type });
  Object.defineProperty(copy, "redirected", { value: response.redirected });
  Object.defineProperty(copy, "url", { value: response.url });
  return copy;
}

/** Load sw.js into a fresh context. `routes` maps "METHOD path" or "path" to answers. */
function loadWorker({ routes = {}, online = true, windows = [], indexedDB = new IDBFactory() } = {}) {
  const listeners = {};
  const fetches = [];
  const notifications = [];
  const cacheStore = new Map();
  const calls = { skipWaiting: 0, claim: 0, preload: 0, opened: [], subscribed: [] };

  const state = { online };
  async function fetch(input, init = {}) {
    const url = new URL(typeof input === "string" ? input : input.url, ORIGIN);
    const method = (init.method ?? input.method ?? "GET").toUpperCase();
    fetches.push({ method, path: url.pathname + url.search, init, body: init.body ? JSON.parse(init.body) : null });
    if (!state.online) throw new TypeError("Failed to fetch");
    const route = routes[`${method} ${url.pathname}`] ?? routes[url.pathname];
    if (!route) return basic("not found", { status: 404 });
    const answer = typeof route === "function" ? await route(url, init) : route;
    return cloneBasic(answer);
  }

  const caches = {
    async open(name) {
      if (!cacheStore.has(name)) {
        const cache = new FakeCache();
        cache.fetch = fetch;
        cacheStore.set(name, cache);
      }
      return cacheStore.get(name);
    },
    async keys() {
      return [...cacheStore.keys()];
    },
    async delete(name) {
      return cacheStore.delete(name);
    },
  };

  const clients = {
    async matchAll() {
      return windows;
    },
    async openWindow(url) {
      calls.opened.push(url);
      return null;
    },
    async claim() {
      calls.claim += 1;
    },
  };

  const registration = {
    scope: `${ORIGIN}/`,
    async showNotification(title, options) {
      notifications.push({ title, options: plain(options) });
    },
    navigationPreload: {
      async enable() {
        calls.preload += 1;
      },
    },
    pushManager: {
      async subscribe(options) {
        calls.subscribed.push(options);
        return {
          endpoint: "https://push.example/new",
          toJSON: () => ({ endpoint: "https://push.example/new", keys: { p256dh: "P", auth: "A" } }),
        };
      },
    },
  };

  // Relative URLs resolve against the worker's location, as in a browser.
  class WorkerRequest extends Request {
    constructor(input, init) {
      super(typeof input === "string" ? new URL(input, ORIGIN) : input, init);
    }
  }

  const context = vm.createContext({
    console,
    setTimeout,
    clearTimeout,
    AbortController,
    URL,
    Headers,
    Response,
    Request: WorkerRequest,
    atob,
    TextEncoder,
    structuredClone,
    caches,
    clients,
    registration,
    fetch,
    indexedDB,
    navigator: {},
    location: new URL(`${ORIGIN}/sw.js`),
    skipWaiting: async () => {
      calls.skipWaiting += 1;
    },
    addEventListener(type, listener) {
      (listeners[type] ??= []).push(listener);
    },
    importScripts(...urls) {
      for (const url of urls) {
        assert.equal(url, "/static/js/outbox.js");
        vm.runInContext(readFileSync(OUTBOX_PATH, "utf8"), context, { filename: OUTBOX_PATH });
      }
    },
  });
  context.self = context;
  vm.runInContext(readFileSync(SW_PATH, "utf8"), context, { filename: SW_PATH });

  /** Fire an event; resolves with what respondWith got and after every waitUntil settled. */
  async function dispatch(type, props = {}) {
    const waits = [];
    let responded = null;
    const event = {
      type,
      ...props,
      // Observe each promise at once, as the browser does, so a rejection is
      // recorded rather than reported as unhandled.
      waitUntil: (promise) =>
        waits.push(
          Promise.resolve(promise).then(
            (value) => ({ status: "fulfilled", value }),
            (reason) => ({ status: "rejected", reason }),
          ),
        ),
      respondWith: (promise) => {
        responded = Promise.resolve(promise);
      },
    };
    for (const listener of listeners[type] ?? []) listener(event);
    const response = responded ? await responded : null;
    // waitUntil may be called while respondWith's promise runs.
    await tick();
    const settled = await Promise.all(waits);
    return { response, settled, waits: waits.length, responded: Boolean(responded) };
  }

  const read = (expression) => vm.runInContext(expression, context);
  return { context, listeners, fetches, notifications, cacheStore, calls, dispatch, read, state, caches };
}

// The shell list as sw.js declares it (a classic worker script exports nothing:
// read it from a loaded copy rather than keep a second list here).
const SHELL_URLS = plain(loadWorker().read("SHELL_URLS"));

const shellRoutes = () => Object.fromEntries(SHELL_URLS.map((path) => [path, basic(`shell ${path}`)]));

async function installed(options = {}) {
  const worker = loadWorker({ ...options, routes: { ...shellRoutes(), ...options.routes } });
  const install = await worker.dispatch("install");
  assert.deepEqual(
    install.settled.map((s) => s.status),
    ["fulfilled"],
  );
  return worker;
}

const navigate = (path) => ({ request: { url: `${ORIGIN}${path}`, method: "GET", mode: "navigate" } });
const get = (path, mode = "no-cors") => ({ request: { url: `${ORIGIN}${path}`, method: "GET", mode } });
const bodyOf = (response) => response.text();

// ------------------------------------------------------------------ tests

test("registers exactly one listener per event", () => {
  const worker = loadWorker();
  const counts = Object.fromEntries(Object.entries(worker.listeners).map(([type, list]) => [type, list.length]));
  assert.deepEqual(counts, {
    install: 1,
    activate: 1,
    fetch: 1,
    push: 1,
    notificationclick: 1,
    pushsubscriptionchange: 1,
    sync: 1,
  });
});

test("install precaches the shell under the versioned cache name", async () => {
  const worker = await installed();
  assert.equal(worker.read("CACHE_VERSION"), "v4");
  assert.equal(worker.read("SHELL_CACHE"), "companion-shell-v4");
  assert.deepEqual([...worker.cacheStore.keys()], ["companion-shell-v4"]);
  const cache = worker.cacheStore.get("companion-shell-v4");
  assert.deepEqual(cache.keys().sort(), [...worker.read("SHELL_URLS")].sort());
  assert.ok(cache.keys().includes("/offline"));
  assert.ok(cache.keys().includes("/static/icons/badge-96.png"));
  assert.equal(worker.calls.skipWaiting, 1);
  // Fetched past the HTTP cache so a new version never precaches stale files.
  assert.ok(worker.fetches.every((f) => f.method === "GET"));
});

test("install fails (and the old worker stays) when a shell file is missing", async () => {
  const routes = shellRoutes();
  delete routes["/static/app.css"];
  const worker = loadWorker({ routes });
  const install = await worker.dispatch("install");
  assert.equal(install.settled[0].status, "rejected");
  assert.equal(worker.calls.skipWaiting, 0);
});

test("activate deletes older companion-* caches only, enables preload and claims clients", async () => {
  const worker = await installed();
  await worker.caches.open("companion-shell-v0");
  await worker.caches.open("companion-old-thing");
  await worker.caches.open("someone-else");
  const activate = await worker.dispatch("activate");
  assert.equal(activate.settled[0].status, "fulfilled");
  assert.deepEqual([...worker.cacheStore.keys()].sort(), ["companion-shell-v4", "someone-else"]);
  assert.equal(worker.calls.claim, 1);
  assert.equal(worker.calls.preload, 1);
});

test("strategyFor: which requests the worker answers and how", () => {
  const worker = loadWorker();
  const strategyFor = worker.context.strategyFor;
  const table = [
    [{ method: "GET", url: `${ORIGIN}/`, mode: "navigate" }, "page"],
    [{ method: "GET", url: `${ORIGIN}/checkin?session=1`, mode: "navigate" }, "page"],
    [{ method: "GET", url: `${ORIGIN}/static/app.css`, mode: "no-cors" }, "static"],
    [{ method: "GET", url: `${ORIGIN}/static/icons/icon-192.png`, mode: "no-cors" }, "static"],
    [{ method: "GET", url: `${ORIGIN}/manifest.webmanifest`, mode: "cors" }, "static"],
    [{ method: "GET", url: `${ORIGIN}/api/checkins`, mode: "cors" }, "network"],
    [{ method: "GET", url: `${ORIGIN}/api/me`, mode: "navigate" }, "network"],
    [{ method: "POST", url: `${ORIGIN}/api/checkins`, mode: "cors" }, "network"],
    [{ method: "POST", url: `${ORIGIN}/settings`, mode: "navigate" }, "network"],
    [{ method: "GET", url: "https://cdn.example/static/x.js", mode: "cors" }, "network"],
    [{ method: "GET", url: `${ORIGIN}/sw.js`, mode: "same-origin" }, "network"],
    [{ method: "GET", url: `${ORIGIN}/uploads/photo.jpg`, mode: "no-cors" }, "network"],
    [{ method: "GET", url: `${ORIGIN}/clinic/logo/1/Ab_9.jpg`, mode: "no-cors" }, "static"],
    [{ method: "GET", url: `${ORIGIN}/clinic/queue`, mode: "cors" }, "network"],
  ];
  for (const [request, expected] of table) {
    assert.equal(strategyFor(request, ORIGIN), expected, `${request.method} ${request.url} ${request.mode}`);
  }
});

test("navigation online: allow-listed pages are stored, the home page never", async () => {
  const worker = await installed({
    routes: { "/checkin": basic("<form id=checkin-form>"), "/": basic("<p>day 2: redness 3</p>") },
  });
  const cache = worker.cacheStore.get("companion-shell-v4");

  const form = await worker.dispatch("fetch", navigate("/checkin?from=home"));
  assert.equal(await bodyOf(form.response), "<form id=checkin-form>");
  assert.ok(cache.keys().includes("/checkin"), "stored under its path, without the query");

  const home = await worker.dispatch("fetch", navigate("/"));
  assert.equal(await bodyOf(home.response), "<p>day 2: redness 3</p>");
  assert.ok(!cache.keys().includes("/"), "health data stays out of the cache");
});

test("any client page keeps the check-in form for offline use, so the offline page's Check in link works", async () => {
  let face = "Glow";
  const page = (body) => () => basic(body, { headers: { "Content-Language": "en", "X-Companion-Shell": face } });
  const worker = await installed({ routes: { "/": page("<p>home</p>"), "/reminders": page("<ul>"), "/checkin": page("<form>") } });
  const cache = worker.cacheStore.get("companion-shell-v4");
  const formFetches = () => worker.fetches.filter((f) => f.path === "/checkin").length;

  // The form was never opened online: it is fetched once and kept.
  await worker.dispatch("fetch", navigate("/reminders"));
  await worker.dispatch("fetch", navigate("/reminders"));
  assert.equal(await bodyOf(await cache.match("/checkin")), "<form>");
  assert.equal(formFetches(), 1, "not fetched again on every page");

  // The home page refreshes it each time: a session recorded since opens the form offline.
  await worker.dispatch("fetch", navigate("/"));
  assert.equal(formFetches(), 2);

  face = "Glow Skin Studio"; // the clinic's header changed: the kept form follows it
  await worker.dispatch("fetch", navigate("/reminders"));
  assert.equal(formFetches(), 3);
  assert.equal((await cache.match("/checkin")).headers.get("X-Companion-Shell"), "Glow Skin Studio");

  worker.state.online = false;
  const offline = await worker.dispatch("fetch", navigate("/checkin?session=3"));
  assert.equal(await bodyOf(offline.response), "<form>");
});

test("a signed-out phone does not keep the check-in form", async () => {
  const start = basic("<p>start</p>", { headers: { "Content-Language": "en" } });
  const toStart = basic("<p>start</p>", { headers: { "Content-Language": "en" }, redirected: true, url: `${ORIGIN}/start` });
  const worker = await installed({ routes: { "/start": start, "/checkin": toStart } });
  const cache = worker.cacheStore.get("companion-shell-v4");
  await worker.dispatch("fetch", navigate("/start"));
  assert.equal(worker.fetches.filter((f) => f.path === "/checkin").length, 0, "the start page asks for nothing more");
  assert.equal(await cache.match("/checkin"), undefined);
});

test("navigation: no-store, redirected and error answers are never stored", async () => {
  const worker = await installed({
    routes: {
      "/checkin": basic("private", { headers: { "Cache-Control": "private, no-store" } }),
      "/welcome": basic("login page", { redirected: true }),
    },
  });
  const cache = worker.cacheStore.get("companion-shell-v4");
  await worker.dispatch("fetch", navigate("/checkin"));
  await worker.dispatch("fetch", navigate("/welcome"));
  assert.ok(!cache.keys().includes("/checkin"));
  assert.ok(!cache.keys().includes("/welcome"));

  const failing = await installed({ routes: { "/checkin": basic("oops", { status: 500 }) } });
  const answer = await failing.dispatch("fetch", navigate("/checkin"));
  assert.equal(answer.response.status, 500, "a server error is shown, not hidden behind a stale copy");
  assert.ok(!failing.cacheStore.get("companion-shell-v4").keys().includes("/checkin"));
});

test("navigation offline: the stored form shell, else the offline page", async () => {
  const worker = await installed({ routes: { "/checkin": basic("<form id=checkin-form>"), "/": basic("home") } });
  await worker.dispatch("fetch", navigate("/checkin"));
  await worker.dispatch("fetch", navigate("/"));
  worker.state.online = false;

  assert.equal(await bodyOf((await worker.dispatch("fetch", navigate("/checkin"))).response), "<form id=checkin-form>");
  assert.equal(
    await bodyOf((await worker.dispatch("fetch", navigate("/checkin?session=4"))).response),
    "<form id=checkin-form>",
  );
  assert.equal(await bodyOf((await worker.dispatch("fetch", navigate("/"))).response), "shell /offline");
  assert.equal(await bodyOf((await worker.dispatch("fetch", navigate("/reminders"))).response), "shell /offline");
  assert.equal(await bodyOf((await worker.dispatch("fetch", navigate("/welcome"))).response), "shell /offline");
});

test("navigation uses the preloaded response when the browser has one", async () => {
  const worker = await installed();
  const event = { ...navigate("/checkin"), preloadResponse: Promise.resolve(basic("preloaded")) };
  const { response } = await worker.dispatch("fetch", event);
  assert.equal(await bodyOf(response), "preloaded");
  assert.ok(!worker.fetches.some((f) => f.path === "/checkin"), "no second request");
});

test("the welcome page (the client's name, their private calendar address) is never stored", async () => {
  // Even if a server forgot to mark it no-store: the worker keeps only pages without them.
  const welcome = '<h1>Welcome, Alice</h1><input value="https://clinic.example/calendar/s3cret.ics">';
  const worker = await installed({ routes: { "/welcome": basic(welcome, { headers: { "Cache-Control": "no-cache, private" } }) } });
  const online = await worker.dispatch("fetch", navigate("/welcome"));
  assert.equal(await bodyOf(online.response), welcome, "shown online as it came");
  for (const name of worker.cacheStore.keys()) {
    for (const key of worker.cacheStore.get(name).keys()) {
      assert.ok(!(await bodyOf(await worker.cacheStore.get(name).match(key))).includes("Alice"), `${name} ${key}`);
    }
  }
  assert.ok(!worker.cacheStore.get(worker.read("SHELL_CACHE")).keys().includes("/welcome"));
  worker.state.online = false;
  const offline = await worker.dispatch("fetch", navigate("/welcome"));
  assert.equal(await bodyOf(offline.response), "shell /offline");
});

test("an update drops the older cache that still holds a welcome page", async () => {
  const worker = await installed();
  const old = await worker.caches.open("companion-shell-v3");
  await old.put("/welcome", basic("<h1>Welcome, Alice</h1>"));
  await worker.dispatch("activate");
  assert.deepEqual([...worker.cacheStore.keys()], [worker.read("SHELL_CACHE")]);
});

test("signing out drops the cached pages made for the client, and keeps the shell", async () => {
  for (const path of ["/sign-out", "/api/auth/logout", "/api/auth/logout-all"]) {
    const worker = await installed({
      routes: { "/checkin": basic('<form data-client-id="7">'), [`POST ${path}`]: basic("") },
    });
    const cache = worker.cacheStore.get(worker.read("SHELL_CACHE"));
    await worker.dispatch("fetch", navigate("/checkin"));
    assert.ok(cache.keys().includes("/checkin"));
    const out = await worker.dispatch("fetch", { request: { url: `${ORIGIN}${path}`, method: "POST", mode: "navigate" } });
    assert.equal(out.responded, false, "the sign-out itself goes to the network untouched");
    assert.deepEqual(out.settled.map((s) => s.status), ["fulfilled"]);
    assert.ok(!cache.keys().includes("/checkin"), `${path}: the client's form is gone`);
    assert.ok(cache.keys().includes("/offline") && cache.keys().includes("/static/app.css"), "the shell stays");
    worker.state.online = false;
    const offline = await worker.dispatch("fetch", navigate("/checkin"));
    assert.equal(await bodyOf(offline.response), "shell /offline", "offline, the client's form is not shown any more");
  }
});

test("a sign-out from elsewhere (revoked, erased) drops the personal pages on the next page load", async () => {
  // The server answers with Clear-Site-Data: the clinic signed the phone out, or erased the client.
  const form = basic('<form data-client-id="7">');
  const cleared = await installed({
    routes: {
      "/checkin": form,
      "/": basic("start", { headers: { "Clear-Site-Data": '"cache", "storage"' } }),
    },
  });
  await cleared.dispatch("fetch", navigate("/checkin"));
  assert.ok(cleared.cacheStore.get(cleared.read("SHELL_CACHE")).keys().includes("/checkin"));
  await cleared.dispatch("fetch", navigate("/"));
  assert.ok(!cleared.cacheStore.get(cleared.read("SHELL_CACHE")).keys().includes("/checkin"));
  // A page that sends the phone to the start page means the same.
  const redirected = await installed({
    routes: {
      "/checkin": form,
      "/reminders": basic("start page", { redirected: true, url: `${ORIGIN}/start` }),
    },
  });
  await redirected.dispatch("fetch", navigate("/checkin"));
  await redirected.dispatch("fetch", navigate("/reminders"));
  assert.ok(!redirected.cacheStore.get(redirected.read("SHELL_CACHE")).keys().includes("/checkin"));
  // An ordinary answer keeps it.
  const kept = await installed({ routes: { "/checkin": form, "/": basic("home") } });
  await kept.dispatch("fetch", navigate("/checkin"));
  await kept.dispatch("fetch", navigate("/"));
  assert.ok(kept.cacheStore.get(kept.read("SHELL_CACHE")).keys().includes("/checkin"));
});

test("navigation offline before anything was cached still answers", async () => {
  const worker = loadWorker({ online: false });
  const { response } = await worker.dispatch("fetch", navigate("/"));
  assert.equal(response.status, 503);
});

test("API requests are left to the browser and never cached", async () => {
  const worker = await installed({ routes: { "/api/checkins": basic("[]") } });
  const get = await worker.dispatch("fetch", { request: { url: `${ORIGIN}/api/checkins`, method: "GET", mode: "cors" } });
  const post = await worker.dispatch("fetch", {
    request: { url: `${ORIGIN}/api/checkins`, method: "POST", mode: "cors" },
  });
  assert.equal(get.responded, false);
  assert.equal(post.responded, false);
  for (const cache of worker.cacheStore.values()) {
    assert.ok(!cache.keys().some((key) => key.startsWith("/api/")));
  }
});

test("static files: cache first, refreshed in the background", async () => {
  const worker = await installed();
  worker.fetches.length = 0;
  let version = "new css";
  const routes = worker.context.fetch;
  // Serve a changed file from now on.
  worker.context.fetch = async (input, init) => {
    const url = new URL(typeof input === "string" ? input : input.url, ORIGIN);
    if (url.pathname === "/static/app.css") return basic(version);
    return routes(input, init);
  };
  const first = await worker.dispatch("fetch", get("/static/app.css"));
  assert.equal(await bodyOf(first.response), "shell /static/app.css", "answered from the cache");
  const second = await worker.dispatch("fetch", get("/static/app.css"));
  assert.equal(await bodyOf(second.response), "new css", "the background refresh replaced the copy");

  version = "newer";
  worker.state.online = false;
  worker.context.fetch = routes;
  const offline = await worker.dispatch("fetch", get("/static/app.css"));
  assert.equal(await bodyOf(offline.response), "new css", "offline, the cached copy still answers");
  assert.equal(offline.settled.filter((s) => s.status === "rejected").length, 0, "failed refresh is swallowed");
});

test("static files not in the shell are fetched and stored, unless no-store", async () => {
  const worker = await installed({
    routes: {
      "/static/img/scale.png": basic("png"),
      "/static/private.json": basic("{}", { headers: { "Cache-Control": "no-store" } }),
    },
  });
  const cache = worker.cacheStore.get("companion-shell-v4");
  assert.equal(await bodyOf((await worker.dispatch("fetch", get("/static/img/scale.png"))).response), "png");
  assert.ok(cache.keys().includes("/static/img/scale.png"));
  await worker.dispatch("fetch", get("/static/private.json"));
  assert.ok(!cache.keys().includes("/static/private.json"));
});

test("notificationFromPayload maps a reminder and falls back for anything odd", () => {
  const { notificationFromPayload } = loadWorker().context;
  const full = plain(
    notificationFromPayload({ title: "Day 2: gentle cleanse", body: "Lukewarm water only.", url: "/reminders#n-9", tag: "n-9", id: 9 }),
  );
  assert.deepEqual(full, {
    title: "Day 2: gentle cleanse",
    options: {
      body: "Lukewarm water only.",
      tag: "n-9",
      renotify: false,
      icon: "/static/icons/icon-192.png",
      badge: "/static/icons/badge-96.png",
      data: { url: "/reminders#n-9", id: 9 },
    },
  });

  for (const payload of [null, undefined, "text", 42, [], {}, { title: "" }, { title: 3 }]) {
    const { title, options } = plain(notificationFromPayload(payload));
    assert.equal(title, "New aftercare reminder", JSON.stringify(payload));
    assert.equal(options.data.url, "/reminders");
    assert.ok(options.body);
    assert.equal(options.icon, "/static/icons/icon-192.png");
  }

  const untagged = plain(notificationFromPayload({ title: "T", id: 12 }));
  assert.equal(untagged.options.tag, "reminder-12", "duplicates of one reminder replace each other");
  assert.equal(untagged.options.body, "");
  assert.ok(!("tag" in plain(notificationFromPayload({ title: "T" })).options));
});

test("notificationFromPayload takes icon, badge and data.url from the payload (issue 4), same-origin paths only", () => {
  const { notificationFromPayload } = loadWorker().context;
  const shaped = plain(
    notificationFromPayload({
      title: "T",
      body: "B",
      tag: "t-1",
      icon: "/static/icons/icon-512.png",
      badge: "/static/icons/favicon-32.png",
      data: { url: "/checkin?session=4" },
    }),
  );
  assert.equal(shaped.options.icon, "/static/icons/icon-512.png");
  assert.equal(shaped.options.badge, "/static/icons/favicon-32.png");
  assert.equal(shaped.options.data.url, "/checkin?session=4");
  assert.equal(shaped.options.tag, "t-1");
  // The top-level url (the server's own payloads) still wins over data.url.
  const both = plain(notificationFromPayload({ title: "T", url: "/reminders#n-2", data: { url: "/checkin" } }));
  assert.equal(both.options.data.url, "/reminders#n-2");
  // A foreign or odd icon falls back to ours: a push cannot make the phone fetch another site.
  for (const icon of ["https://evil.example/x.png", "//evil.example/x.png", "/\\evil.example/x.png", "javascript:alert(1)", 7, ""]) {
    const { options } = plain(notificationFromPayload({ title: "T", icon, badge: icon }));
    assert.equal(options.icon, "/static/icons/icon-192.png", String(icon));
    assert.equal(options.badge, "/static/icons/badge-96.png", String(icon));
  }
});

test("push shows the reminder from its JSON payload", async () => {
  const worker = loadWorker();
  const payload = { title: "Sunscreen", body: "SPF 30 today", url: "/reminders", tag: "n-1", id: 1 };
  const push = await worker.dispatch("push", { data: { json: () => payload, text: () => JSON.stringify(payload) } });
  assert.equal(push.waits, 1);
  assert.deepEqual(worker.notifications, [
    {
      title: "Sunscreen",
      options: {
        body: "SPF 30 today",
        tag: "n-1",
        renotify: false,
        icon: "/static/icons/icon-192.png",
        badge: "/static/icons/badge-96.png",
        data: { url: "/reminders", id: 1 },
      },
    },
  ]);
});

test("push with a broken or empty payload still shows a notification", async () => {
  const worker = loadWorker();
  await worker.dispatch("push", {
    data: {
      json: () => JSON.parse("not json"),
      text: () => "not json",
    },
  });
  await worker.dispatch("push", { data: null });
  assert.equal(worker.notifications.length, 2);
  for (const { title } of worker.notifications) assert.equal(title, "New aftercare reminder");
});

test("the offline page follows the language of the client's pages, and so do push fallbacks", async () => {
  const offline = (lang, title) =>
    basic(
      `<html lang="${lang}"><h1>${lang}</h1><script type="application/json" id="notification-words">` +
        `${JSON.stringify({ title, body: `${title}.` })}</script>`,
      { headers: { "Content-Language": lang } },
    );
  const worker = await installed({
    routes: {
      "/offline": (url) => (url.searchParams.get("lang") === "es" ? offline("es", "Nuevo recordatorio") : offline("en", "New reminder")),
      "/checkin": basic("<form>", { headers: { "Content-Language": "es" } }),
      "/reminders": basic("<ul>", { headers: { "Content-Language": "es" } }),
    },
  });
  const cache = worker.cacheStore.get("companion-shell-v4");
  assert.match(await bodyOf(await cache.match("/offline")), /<h1>en<\/h1>/);

  // A Spanish page: the offline copy is fetched again in Spanish, once.
  await worker.dispatch("fetch", navigate("/checkin"));
  await worker.dispatch("fetch", navigate("/reminders"));
  assert.match(await bodyOf(await cache.match("/offline")), /<h1>es<\/h1>/);
  assert.equal(worker.fetches.filter((f) => f.path === "/offline?lang=es").length, 1);

  worker.state.online = false;
  const page = await worker.dispatch("fetch", navigate("/settings"));
  assert.match(await bodyOf(page.response), /<h1>es<\/h1>/);

  // A push without words of its own speaks the client's language too.
  await worker.dispatch("push", { data: null });
  assert.equal(worker.notifications.at(-1).title, "Nuevo recordatorio");
  assert.equal(worker.notifications.at(-1).options.body, "Nuevo recordatorio.");
});

test("the offline page is fetched again when the clinic's header changes, not on every page", async () => {
  // Precached at install, before the phone was signed in: no clinic in its header yet.
  let face = "Companion";
  const offline = () =>
    basic(`<header>${face}</header>`, { headers: { "Content-Language": "en", "X-Companion-Shell": face } });
  const page = () => basic("<form>", { headers: { "Content-Language": "en", "X-Companion-Shell": face } });
  const worker = await installed({ routes: { "/offline": offline, "/checkin": page, "/reminders": page } });
  const cache = worker.cacheStore.get("companion-shell-v4");
  const refetches = () => worker.fetches.filter((f) => f.path === "/offline?lang=en").length;

  face = "Glow Skin Studio"; // signed in: the clinic's pages, same language
  await worker.dispatch("fetch", navigate("/checkin"));
  await worker.dispatch("fetch", navigate("/reminders"));
  assert.equal(await bodyOf(await cache.match("/offline")), "<header>Glow Skin Studio</header>");
  assert.equal(refetches(), 1);

  face = "Glow"; // the owner renamed the clinic
  await worker.dispatch("fetch", navigate("/reminders"));
  assert.equal(await bodyOf(await cache.match("/offline")), "<header>Glow</header>");
  assert.equal(refetches(), 2);
});

test("targetUrl only lets same-origin paths through", () => {
  const { targetUrl } = loadWorker().context;
  const table = [
    [{ url: "/reminders" }, "/reminders"],
    [{ url: "/checkin?session=3#top" }, "/checkin?session=3#top"],
    [{ url: `${ORIGIN}/reminders?x=1` }, "/reminders?x=1"],
    [{ url: "reminders" }, "/reminders"],
    [{ url: "https://evil.example/phish" }, "/"],
    [{ url: "//evil.example/phish" }, "/"],
    [{ url: "javascript:alert(1)" }, "/"],
    [{ url: "data:text/html,hi" }, "/"],
    [{ url: "http://companion.example/reminders" }, "/"],
    [{ url: "" }, "/"],
    [{ url: 42 }, "/"],
    [{}, "/"],
    [null, "/"],
    [undefined, "/"],
  ];
  for (const [data, expected] of table) assert.equal(targetUrl(data, ORIGIN), expected, JSON.stringify(data));
});

function fakeWindow(url) {
  const client = {
    url,
    focused: 0,
    navigatedTo: null,
    async focus() {
      client.focused += 1;
      return client;
    },
    async navigate(target) {
      client.navigatedTo = target;
      client.url = target;
      return client;
    },
  };
  return client;
}

function clickEvent(data) {
  const notification = { data, closed: false, close: () => (notification.closed = true) };
  return { notification };
}

test("notificationclick focuses an open window and navigates it to the reminder", async () => {
  const open = fakeWindow(`${ORIGIN}/`);
  const foreign = fakeWindow("https://elsewhere.example/");
  const worker = loadWorker({ windows: [foreign, open] });
  const event = clickEvent({ url: "/reminders#n-4", id: 4 });
  const click = await worker.dispatch("notificationclick", event);
  assert.equal(click.settled[0].status, "fulfilled");
  assert.equal(event.notification.closed, true);
  assert.equal(open.focused, 1);
  assert.equal(open.navigatedTo, `${ORIGIN}/reminders#n-4`);
  assert.equal(foreign.focused, 0);
  assert.deepEqual(worker.calls.opened, []);
});

test("notificationclick prefers a window already showing the target and does not reload it", async () => {
  const home = fakeWindow(`${ORIGIN}/`);
  const inbox = fakeWindow(`${ORIGIN}/reminders`);
  const worker = loadWorker({ windows: [home, inbox] });
  await worker.dispatch("notificationclick", clickEvent({ url: "/reminders" }));
  assert.equal(inbox.focused, 1);
  assert.equal(inbox.navigatedTo, null);
  assert.equal(home.focused, 0);
});

test("notificationclick opens a window when none is open, and never a foreign URL", async () => {
  const worker = loadWorker({ windows: [] });
  await worker.dispatch("notificationclick", clickEvent({ url: "/reminders" }));
  await worker.dispatch("notificationclick", clickEvent({ url: "https://evil.example/" }));
  assert.deepEqual(worker.calls.opened, ["/reminders", "/"]);
});

test("notificationclick falls back to a new window when the open one cannot be navigated", async () => {
  const uncontrolled = fakeWindow(`${ORIGIN}/settings`);
  uncontrolled.navigate = async () => {
    throw new TypeError("not controlled");
  };
  const worker = loadWorker({ windows: [uncontrolled] });
  await worker.dispatch("notificationclick", clickEvent({ url: "/reminders" }));
  assert.equal(uncontrolled.focused, 1);
  assert.deepEqual(worker.calls.opened, ["/reminders"]);
});

const VAPID_KEY = "BPcMbnWQL5GOYX_sjmm2jgcrRnkoNLiAHX3cxpf8TsyMHd5LqzONxUJxa0Ht1oD9iG4fKS-TdC7-B_9eCxXfkdo";
const subscription = (endpoint, key = null) => ({
  endpoint,
  options: { applicationServerKey: key },
  toJSON: () => ({ endpoint, keys: { p256dh: "P", auth: "A" } }),
});

test("pushsubscriptionchange subscribes again with the server's key, saves it and drops the old one", async () => {
  const worker = loadWorker({
    routes: {
      "/api/push/vapid-public-key": basic(JSON.stringify({ public_key: VAPID_KEY })),
      "POST /api/push/subscriptions": basic("{}", { status: 201 }),
      "DELETE /api/push/subscriptions": basic(null, { status: 204 }),
    },
  });
  const change = await worker.dispatch("pushsubscriptionchange", {
    oldSubscription: subscription("https://push.example/old"),
    newSubscription: null,
  });
  assert.equal(change.waits, 1);
  assert.equal(change.settled[0].status, "fulfilled", change.settled[0].reason);

  const [options] = worker.calls.subscribed;
  assert.equal(options.userVisibleOnly, true);
  assert.equal(options.applicationServerKey.length, 65, "uncompressed P-256 point");
  assert.equal(options.applicationServerKey[0], 4);

  const writes = worker.fetches.filter((f) => f.path === "/api/push/subscriptions");
  assert.deepEqual(
    writes.map((f) => [f.method, f.body]),
    [
      ["POST", { endpoint: "https://push.example/new", keys: { p256dh: "P", auth: "A" } }],
      ["DELETE", { endpoint: "https://push.example/old" }],
    ],
  );
  for (const write of writes) {
    assert.equal(write.init.headers["Content-Type"], "application/json");
    assert.equal(write.init.credentials, "same-origin");
  }
});

test("pushsubscriptionchange uses the browser's new subscription when it gives one", async () => {
  const worker = loadWorker({
    routes: { "POST /api/push/subscriptions": basic("{}", { status: 201 }), "DELETE /api/push/subscriptions": basic(null, { status: 204 }) },
  });
  await worker.dispatch("pushsubscriptionchange", {
    oldSubscription: subscription("https://push.example/old"),
    newSubscription: subscription("https://push.example/given"),
  });
  assert.deepEqual(worker.calls.subscribed, []);
  assert.deepEqual(
    worker.fetches.map((f) => [f.method, f.body.endpoint]),
    [
      ["POST", "https://push.example/given"],
      ["DELETE", "https://push.example/old"],
    ],
  );
});

test("pushsubscriptionchange falls back to the old key when the API is unreachable", async () => {
  const oldKey = new Uint8Array([4, 1, 2, 3]).buffer;
  const worker = loadWorker({
    routes: {
      "/api/push/vapid-public-key": basic("down", { status: 503 }),
      "POST /api/push/subscriptions": basic("{}", { status: 201 }),
    },
  });
  const change = await worker.dispatch("pushsubscriptionchange", {
    oldSubscription: subscription("https://push.example/old", oldKey),
  });
  assert.equal(worker.calls.subscribed[0].applicationServerKey, oldKey);
  assert.equal(change.settled[0].status, "fulfilled");
});

const queued = (n) => ({
  id: `00000000-0000-4000-8000-00000000000${n}`,
  taken_at: `2024-05-0${n}T08:00:00.000Z`,
  redness: 1,
  swelling: 1,
  pain: 2,
  symptoms: { peeling: true },
  warning_signs: { fever: false },
  note: "",
});

async function queueInWorker(worker, ...checkins) {
  const outbox = worker.context.CompanionOutbox ?? worker.read("CompanionOutbox");
  const store = outbox.idbStore({ indexedDB: worker.context.indexedDB });
  const queue = outbox.createOutbox({ store, fetch: () => assert.fail("not here"), locks: null });
  for (const checkin of checkins) await queue.enqueue(checkin);
  return store;
}

test("sync 'checkin-outbox' replays the queue from IndexedDB with the original bodies", async () => {
  const windowClient = fakeWindow(`${ORIGIN}/`);
  windowClient.messages = [];
  windowClient.postMessage = (message) => windowClient.messages.push(plain(message));
  const worker = loadWorker({
    windows: [windowClient],
    routes: {
      "POST /api/checkins": (url, init) =>
        basic(JSON.stringify({ ...JSON.parse(init.body), assessment: { status: "urgent", message: "Call the clinic" } }), {
          status: 201,
        }),
    },
  });
  const store = await queueInWorker(worker, queued(1), queued(2));

  const sync = await worker.dispatch("sync", { tag: "checkin-outbox", lastChance: false });

  assert.equal(sync.waits, 1);
  assert.equal(sync.settled[0].status, "fulfilled", sync.settled[0].reason);
  const posts = worker.fetches.filter((f) => f.path === "/api/checkins");
  assert.deepEqual(
    posts.map((p) => p.body),
    [queued(1), queued(2)],
  );
  assert.deepEqual(await store.getAll(), []);
  assert.equal(windowClient.messages.length, 1);
  assert.equal(windowClient.messages[0].type, "checkin-outbox-replayed");
  assert.equal(windowClient.messages[0].remaining, 0);
  assert.equal(windowClient.messages[0].results[0].body.assessment.status, "urgent");
});

test("sync rejects while check-ins remain so the browser retries, except on its last chance", async () => {
  const worker = loadWorker({ online: false });
  const store = await queueInWorker(worker, queued(1));

  const retry = await worker.dispatch("sync", { tag: "checkin-outbox", lastChance: false });
  assert.equal(retry.settled[0].status, "rejected");
  assert.equal((await store.getAll()).length, 1);

  const last = await worker.dispatch("sync", { tag: "checkin-outbox", lastChance: true });
  assert.equal(last.settled[0].status, "fulfilled");
  assert.equal((await store.getAll()).length, 1, "kept for the page's own replay");
});

test("sync ignores other tags", async () => {
  const worker = loadWorker();
  const other = await worker.dispatch("sync", { tag: "something-else" });
  assert.equal(other.waits, 0);
  assert.equal(worker.fetches.length, 0);
});

/** Open an existing IndexedDB database at its current version. */
function opened(indexedDB, name) {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

test("idbStore: put, getAll, update and delete through IndexedDB", async () => {
  const worker = loadWorker();
  const { idbStore } = worker.read("CompanionOutbox");
  const indexedDB = new IDBFactory();
  const store = idbStore({ indexedDB });
  await store.put({ id: "a", n: 1 });
  await store.put({ id: "b", n: 2 });
  assert.deepEqual(plain(await store.getAll()), [
    { id: "a", n: 1 },
    { id: "b", n: 2 },
  ]);
  assert.deepEqual(plain(await store.update("a", (r) => ({ ...r, n: 10 }))), { id: "a", n: 10 });
  assert.equal(await store.update("a", () => null), null, "no change requested");
  assert.equal(await store.update("missing", () => assert.fail("not called")), null);
  await store.delete("b");
  assert.deepEqual(plain(await store.getAll()), [{ id: "a", n: 10 }]);
  const db = await opened(indexedDB, "companion");
  assert.equal(db.version, 1);
  assert.ok(db.objectStoreNames.contains("checkin-outbox"));
  assert.equal(db.transaction("checkin-outbox").objectStore("checkin-outbox").keyPath, "id");
  db.close();
});

test("idbStore: concurrent claims by page and worker lease a record once", async () => {
  const worker = loadWorker();
  const { idbStore } = worker.read("CompanionOutbox");
  const indexedDB = new IDBFactory();
  const page = idbStore({ indexedDB });
  const sw = idbStore({ indexedDB });
  await page.put({ id: "a", lease_until: 0 });
  const claim = (store) => store.update("a", (r) => (r.lease_until > 0 ? null : { ...r, lease_until: 1 }));
  const results = await Promise.all([claim(page), claim(sw), claim(page)]);
  assert.equal(results.filter(Boolean).length, 1);
});

test("idbStore: a missing IndexedDB fails loudly, so the page can fall back", async () => {
  const { idbStore } = loadWorker().read("CompanionOutbox");
  await assert.rejects(idbStore({ indexedDB: null }).getAll(), /IndexedDB is not available/);
});
