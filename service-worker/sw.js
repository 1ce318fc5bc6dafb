// Companion service worker, served by Flask at /sw.js so its scope is the whole app.
//
// What it does, and what it deliberately does not:
// - keeps the app shell (CSS, JS, icons, manifest, the check-in form and the offline
//   page: no health data, no name, no secret) so the app opens offline;
// - never stores API answers, the home page, the welcome page (the client's name and
//   private calendar address), or anything marked no-store: a phone can be shared or
//   lost, and what it keeps must not tell anyone who the client is or how they heal;
// - shows every push as a notification (browsers revoke silent push subscriptions);
// - replays check-ins saved offline when Background Sync says the network is back.
//
// Plain classic script, no build step: importScripts() needs a classic worker.

importScripts("/static/js/outbox.js");

// Bump on every change to the shell list or to how it is cached; activate then
// deletes the older companion-* caches.
const CACHE_VERSION = "v4";
const SHELL_CACHE = `companion-shell-${CACHE_VERSION}`;
const CACHE_PREFIX = "companion-";
const OFFLINE_URL = "/offline";
// Which offline page a client page goes with (its language and the clinic's name and logo in
// the header): the server says it on every client page and on the offline page itself.
const SHELL_HEADER = "X-Companion-Shell";

const SHELL_URLS = [
  OFFLINE_URL,
  "/static/app.css",
  "/static/js/app.js",
  "/static/js/checkin.js",
  "/static/js/outbox.js",
  "/manifest.webmanifest",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
  "/static/icons/maskable-512.png",
  "/static/icons/apple-touch-icon.png",
  "/static/icons/badge-96.png",
  "/static/icons/favicon-32.png",
];

// Pages whose HTML holds no health data, no name and no secret (the check-in form holds
// at most the ids of the latest session and of its client), so a copy may live in the
// cache and the check-in form opens offline. The home page shows the recovery so far and
// the welcome page greets the client by name beside their private calendar address (a
// capability URL): neither is ever stored, and the server sends both as no-store
// (v3 kept /welcome; v4's activate deletes that cache).
const CHECKIN_URL = "/checkin";
const CACHEABLE_PAGES = new Set([CHECKIN_URL, OFFLINE_URL]);
// Of those, the ones made for the signed-in client (the form carries their ids): a phone
// can be lent or lost, so signing out drops them, as the server's Clear-Site-Data asks
// (some browsers ignore that header).
const PERSONAL_PAGES = [...CACHEABLE_PAGES].filter((path) => path !== OFFLINE_URL);
const SIGN_OUT_PATHS = new Set(["/sign-out", "/clinic/logout", "/api/auth/logout", "/api/auth/logout-all"]);
const START_URL = "/start";

// A push without words of its own speaks the client's language through the cached offline
// page (#notification-words), kept in their language by keepOfflinePageIn(). These English
// words are the last resort for when that page is gone: it is precached before the worker
// activates, so only an emptied cache under a live worker (not a sign-out: its
// Clear-Site-Data "storage" unregisters the worker too) reaches them, and then any words the
// pages had stored would be gone with it.
const DEFAULT_NOTIFICATION_TITLE = "New aftercare reminder";
const DEFAULT_NOTIFICATION_BODY = "Open the app to read it.";
const DEFAULT_NOTIFICATION_URL = "/reminders";
const NOTIFICATION_ICON = "/static/icons/icon-192.png";
const NOTIFICATION_BADGE = "/static/icons/badge-96.png";

// ---------------------------------------------------------------- pure helpers

/** Decide how the fetch handler treats a request: "page", "static" or "network". */
function strategyFor(request, origin) {
  // Writes must reach the server (or the outbox), never a cache.
  if (request.method !== "GET") return "network";
  const url = new URL(request.url);
  if (url.origin !== origin) return "network";
  // API answers carry health data and must be fresh: the browser fetches them as
  // if this worker did not exist.
  if (url.pathname.startsWith("/api/")) return "network";
  if (request.mode === "navigate") return "page";
  if (url.pathname.startsWith("/static/") || url.pathname === "/manifest.webmanifest") return "static";
  // The clinic's logo in the header, offline too (each version has its own address).
  if (url.pathname.startsWith("/clinic/logo/")) return "static";
  return "network";
}

/** Say whether a response may be written to the cache at all. */
function isStorable(response) {
  if (!response || response.status !== 200 || response.type !== "basic") return false;
  // A redirected response cannot answer a navigation in Safari, and a redirect
  // usually means "signed out", not the page that was asked for.
  if (response.redirected) return false;
  const cacheControl = response.headers.get("Cache-Control") ?? "";
  return !/\bno-store\b/i.test(cacheControl);
}

/** Say whether a request signs this browser out. */
function isSignOut(request, origin) {
  if (request.method !== "POST") return false;
  const url = new URL(request.url);
  return url.origin === origin && SIGN_OUT_PATHS.has(url.pathname);
}

/** Say whether an answer means the phone is signed out: the server asked the browser
 * to clear what it kept (revoked, expired, erased), or a page sent it to the start page. */
function meansSignedOut(response) {
  if (!response) return false;
  if (response.headers.has("Clear-Site-Data")) return true;
  return Boolean(response.redirected && response.url && new URL(response.url).pathname === START_URL);
}

/** Map a push payload to showNotification() arguments, with a generic fallback in the
 * client's language (`words`: {title, body} read from the cached offline page). */
function notificationFromPayload(payload, words = {}) {
  const data = payload && typeof payload === "object" ? payload : {};
  const text = (value) => (typeof value === "string" && value.trim() ? value : undefined);
  const fallback = words && typeof words === "object" ? words : {};
  const id = data.id ?? null;
  // Delivery is at least once: the tag makes a duplicate replace, not stack.
  const tag = text(data.tag) ?? (id != null ? `reminder-${id}` : undefined);
  // Icons only from our own paths: a payload cannot make the phone fetch another site.
  const ownPath = (value) => (text(value) && /^\/(?![/\\])/.test(value) ? value : undefined);
  const nested = data.data && typeof data.data === "object" ? data.data : {};
  const options = {
    body: text(data.body) ?? (text(data.title) ? "" : (text(fallback.body) ?? DEFAULT_NOTIFICATION_BODY)),
    renotify: false,
    icon: ownPath(data.icon) ?? NOTIFICATION_ICON,
    badge: ownPath(data.badge) ?? NOTIFICATION_BADGE,
    // The server's payloads carry `url`; `data.url` (the Notification's own shape) is read too.
    data: { url: text(data.url) ?? text(nested.url) ?? DEFAULT_NOTIFICATION_URL, id },
  };
  if (tag) options.tag = tag;
  return { title: text(data.title) ?? text(fallback.title) ?? DEFAULT_NOTIFICATION_TITLE, options };
}

/** Read the fallback words the offline page carries (its #notification-words JSON). */
function wordsFromOfflinePage(html) {
  const found = /<script type="application\/json" id="notification-words">([^<]*)<\/script>/.exec(html ?? "");
  try {
    return found ? JSON.parse(found[1]) : {};
  } catch {
    return {};
  }
}

/** Return a same-origin path to open for a notification; anything else opens "/". */
function targetUrl(notificationData, origin) {
  const raw = notificationData?.url;
  if (typeof raw !== "string" || raw === "") return "/";
  try {
    // Relative paths resolve against our origin; "//evil.example", "https://…" and
    // "javascript:" do not, and are refused so a push cannot open a foreign page.
    const url = new URL(raw, origin);
    if (url.origin !== origin) return "/";
    return url.pathname + url.search + url.hash;
  } catch {
    return "/";
  }
}

/** Decode a base64url VAPID key into the bytes pushManager.subscribe() wants. */
function base64UrlToBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

// ---------------------------------------------------------------- strategies

async function precacheShell() {
  const cache = await caches.open(SHELL_CACHE);
  // cache: "reload" skips the HTTP cache, so a new version never precaches stale files.
  await cache.addAll(SHELL_URLS.map((url) => new Request(url, { cache: "reload" })));
}

async function forgetPersonalPages() {
  const cache = await caches.open(SHELL_CACHE);
  await Promise.all(PERSONAL_PAGES.map((path) => cache.delete(path)));
}

/** Keep the offline page in the language the client's pages now come in (a client page
 * says it in Content-Language) and with their clinic's header (`shell`, X-Companion-Shell):
 * fetch that language's copy, as the signed-in client, when the cached one differs. */
async function keepOfflinePageIn(language, shell = null) {
  const cache = await caches.open(SHELL_CACHE);
  const cached = await cache.match(OFFLINE_URL);
  const same = cached && cached.headers.get("Content-Language") === language;
  if (same && (!shell || cached.headers.get(SHELL_HEADER) === shell)) return;
  const response = await fetch(`${OFFLINE_URL}?lang=${encodeURIComponent(language)}`, {
    credentials: "same-origin",
    cache: "no-store",
  });
  if (isStorable(response)) await cache.put(OFFLINE_URL, response);
}

/** Keep the check-in form ready offline once any client page has loaded, so the offline
 * page's "Check in" link works even when the form was never opened online. Fetched again
 * when missing, when its language or clinic header changed (as the offline page), and on
 * every home page (`always`): the form a new session opens must not wait for a visit. */
async function keepCheckinForm(language, shell = null, always = false) {
  const cache = await caches.open(SHELL_CACHE);
  const cached = await cache.match(CHECKIN_URL);
  const same = cached && cached.headers.get("Content-Language") === language;
  if (!always && same && (!shell || cached.headers.get(SHELL_HEADER) === shell)) return;
  const response = await fetch(CHECKIN_URL, { credentials: "same-origin", cache: "no-store" });
  if (isStorable(response) && !meansSignedOut(response)) await cache.put(CHECKIN_URL, response);
}

async function fallbackWords() {
  try {
    const page = await (await caches.open(SHELL_CACHE)).match(OFFLINE_URL);
    return page ? wordsFromOfflinePage(await page.text()) : {};
  } catch {
    return {};
  }
}

async function deleteOldCaches() {
  const names = await caches.keys();
  await Promise.all(
    names.filter((name) => name.startsWith(CACHE_PREFIX) && name !== SHELL_CACHE).map((name) => caches.delete(name)),
  );
}

// Network first: a page is only as good as its freshest copy. Offline, the form
// shell from the cache still works (check-ins go to the outbox); every other page
// falls back to the generic offline page.
async function networkFirstPage(event) {
  const { pathname } = new URL(event.request.url);
  const cacheable = CACHEABLE_PAGES.has(pathname);
  try {
    const response = (await event.preloadResponse) ?? (await fetch(event.request));
    const language = response.ok ? response.headers.get("Content-Language") : null;
    if (language && !meansSignedOut(response)) {
      const shell = response.headers.get(SHELL_HEADER);
      event.waitUntil(keepOfflinePageIn(language, shell).catch((error) => console.warn("Offline page:", error)));
      // The start page is shown only to a signed-out phone: nothing to keep there.
      if (pathname !== CHECKIN_URL && pathname !== START_URL) {
        event.waitUntil(keepCheckinForm(language, shell, pathname === "/").catch((error) => console.warn("Check-in form:", error)));
      }
    }
    if (meansSignedOut(response)) {
      event.waitUntil(forgetPersonalPages());
    } else if (cacheable && isStorable(response)) {
      // Keyed by path: "/checkin?x=1" and "/checkin" are the same shell.
      const copy = response.clone();
      event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.put(pathname, copy)));
    }
    return response;
  } catch {
    const cache = await caches.open(SHELL_CACHE);
    const cached = (cacheable && (await cache.match(pathname))) || (await cache.match(OFFLINE_URL));
    return cached ?? new Response("You are offline.", { status: 503, headers: { "Content-Type": "text/plain" } });
  }
}

// Cache first, then refresh the copy in the background (stale-while-revalidate):
// static files have no hashed names (no build step), so without the refresh an
// edited app.css would stay stale until the next CACHE_VERSION bump.
async function cacheFirstStatic(event) {
  const cache = await caches.open(SHELL_CACHE);
  const refresh = fetch(event.request).then((response) => {
    if (isStorable(response)) return cache.put(event.request, response.clone()).then(() => response);
    return response;
  });
  const cached = await cache.match(event.request);
  if (cached) {
    // Offline the refresh fails; the cached copy has already answered.
    event.waitUntil(refresh.catch(() => undefined));
    return cached;
  }
  return refresh;
}

// ---------------------------------------------------------------- push

async function fetchVapidKey() {
  const response = await fetch("/api/push/vapid-public-key", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`VAPID key: HTTP ${response.status}`);
  const { public_key: publicKey } = await response.json();
  return base64UrlToBytes(publicKey);
}

function sendSubscription(method, body) {
  return fetch("/api/push/subscriptions", {
    method,
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body),
  });
}

// The push service replaced or expired our subscription (browser update, key
// rotation). Without this, reminders silently stop until the client taps the
// button again.
async function renewSubscription(oldSubscription, newSubscription) {
  let subscription = newSubscription;
  if (!subscription) {
    // The server's current key wins (it may have been rotated); the old key
    // still works when the API cannot be reached.
    const applicationServerKey = await fetchVapidKey().catch((error) => {
      const oldKey = oldSubscription?.options?.applicationServerKey;
      if (!oldKey) throw error;
      return oldKey;
    });
    subscription = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
  }
  const saved = await sendSubscription("POST", subscription.toJSON());
  if (!saved.ok) throw new Error(`Saving the new subscription failed: HTTP ${saved.status}`);
  if (oldSubscription && oldSubscription.endpoint !== subscription.endpoint) {
    await sendSubscription("DELETE", { endpoint: oldSubscription.endpoint });
  }
}

function readPushPayload(data) {
  try {
    return data ? data.json() : null;
  } catch {
    return null;
  }
}

async function openNotificationTarget(path) {
  const target = new URL(path, self.location.origin).href;
  const windows = await clients.matchAll({ type: "window", includeUncontrolled: true });
  const same = windows.filter((client) => new URL(client.url).origin === self.location.origin);
  const existing = same.find((client) => client.url === target) ?? same[0];
  if (!existing) return clients.openWindow(path);
  // Focus first: the click's permission to focus a window does not outlast awaits.
  const focused = await existing.focus().catch(() => existing);
  if (focused.url === target) return focused;
  try {
    return (await focused.navigate(target)) ?? focused;
  } catch {
    // navigate() refuses windows this worker does not control yet.
    return clients.openWindow(path);
  }
}

// ---------------------------------------------------------------- outbox

async function replayOutbox(event) {
  const outbox = CompanionOutbox.createOutbox({
    store: CompanionOutbox.idbStore({ indexedDB: self.indexedDB }),
    fetch: (...args) => fetch(...args),
    locks: self.navigator?.locks,
  });
  const { results, remaining } = await outbox.replay();
  // Open pages update their "saved on this phone" line and show refusals.
  const windows = await clients.matchAll({ type: "window" });
  for (const client of windows) client.postMessage({ type: "checkin-outbox-replayed", results, remaining });
  // Rejecting makes the browser schedule another sync with backoff; on the last
  // chance the pages' own replay (on load and "online") takes over.
  const retryLater = results.some((result) => result.outcome === "retry");
  if (retryLater && !event.lastChance) throw new Error(`${remaining} check-in(s) still queued`);
}

// ---------------------------------------------------------------- listeners
// One listener per event; every asynchronous path sits inside waitUntil or
// respondWith so the browser keeps the worker alive until it finishes.

self.addEventListener("install", (event) => {
  // Take over at once: the shell is backwards compatible with open pages.
  event.waitUntil(precacheShell().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      await deleteOldCaches();
      // Preload starts the navigation request while the worker boots.
      await self.registration.navigationPreload?.enable();
      await clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const strategy = strategyFor(event.request, self.location.origin);
  // Signing out: the pages that name the client go now, whatever the network says.
  if (isSignOut(event.request, self.location.origin)) event.waitUntil(forgetPersonalPages());
  // Not calling respondWith leaves the request to the browser, untouched.
  if (strategy === "page") event.respondWith(networkFirstPage(event));
  else if (strategy === "static") event.respondWith(cacheFirstStatic(event));
});

self.addEventListener("push", (event) => {
  const payload = readPushPayload(event.data);
  event.waitUntil(
    fallbackWords().then((words) => {
      const { title, options } = notificationFromPayload(payload, words);
      return self.registration.showNotification(title, options);
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openNotificationTarget(targetUrl(event.notification.data, self.location.origin)));
});

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(renewSubscription(event.oldSubscription, event.newSubscription));
});

self.addEventListener("sync", (event) => {
  if (event.tag === CompanionOutbox.SYNC_TAG) event.waitUntil(replayOutbox(event));
});
