// Offline check-in queue, shared by the pages (loaded with <script defer>) and the
// service worker (importScripts). A check-in is written here *before* it is sent,
// so closing the tab or losing the network mid-request never loses it; the server
// deduplicates by the phone-made id, so sending the same record twice is harmless
// but wasteful, which is what the per-item lease and the Web Lock avoid.
// Its photos (Blobs) wait in the same record and follow once the check-in has landed,
// each dropped from the record as the server takes (or refuses) it.
//
// Classic script on purpose: service workers can only importScripts() classic
// scripts in every browser we support, and there is no build step.

const CompanionOutbox = (() => {
  const DB_NAME = "companion";
  const DB_VERSION = 1;
  const STORE_NAME = "checkin-outbox";
  const LOCK_NAME = "checkin-outbox";
  const SYNC_TAG = "checkin-outbox";
  const ENDPOINT = "/api/checkins";
  // A request is aborted before its lease ends, so a lease only expires early
  // when the context that held it died (tab closed, worker killed).
  const REQUEST_TIMEOUT_MS = 20_000;
  const LEASE_MS = 30_000;
  // A phone photo is megabytes on a slow uplink: more time, and a lease renewed per photo.
  const PHOTO_TIMEOUT_MS = 90_000;
  const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;
  // Who made a queued check-in, sent on replay: on a shared phone the server refuses
  // (409 other_client) what another client queued before signing out.
  const CLIENT_HEADER = "X-Companion-Client";

  /** Tell what to do with a queued check-in after the server answered `status`. */
  function classifyStatus(status) {
    if (status >= 200 && status < 300) return "sent";
    // Signed out, request timeout, rate limited: the same request can succeed later.
    if (status === 401 || status === 408 || status === 429) return "retry";
    // Any other 4xx is the server refusing this check-in for good (422, 409, ...):
    // replaying it would fail forever and block the queue.
    if (status >= 400 && status < 500) return "rejected";
    return "retry";
  }

  /** Turn a Retry-After header (seconds or HTTP date) into milliseconds from now. */
  function retryAfterMs(value, nowMs) {
    if (value == null || value === "") return 0;
    const text = String(value).trim();
    const ms = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - nowMs;
    if (!Number.isFinite(ms) || ms <= 0) return 0;
    return Math.min(ms, MAX_RETRY_AFTER_MS);
  }

  /** Wrap a store record around a check-in body (kept exactly as built), its photos and its maker. */
  function newRecord(checkin, nowMs, photos = [], clientId = null) {
    return {
      id: checkin.id,
      checkin,
      // the signed-in client who made it (the page knows; the service worker does not)
      client_id: clientId || null,
      photos: [...photos],
      // true once the server has the check-in and only photos remain to send
      checkin_sent: false,
      queued_at: new Date(nowMs).toISOString(),
      attempts: 0,
      lease_until: 0,
      lease_by: null,
      next_attempt_at: 0,
      last_status: null,
    };
  }

  /**
   * IndexedDB-backed store: put / getAll / delete / update(id, change).
   * update() is a read-modify-write inside one readwrite transaction; IndexedDB
   * serialises overlapping readwrite transactions across the page and the worker,
   * which is what makes claiming a record atomic.
   */
  function idbStore({ indexedDB = globalThis.indexedDB, dbName = DB_NAME, storeName = STORE_NAME } = {}) {
    let opening = null;

    function open() {
      opening ??= new Promise((resolve, reject) => {
        if (!indexedDB) throw new Error("IndexedDB is not available");
        const request = indexedDB.open(dbName, DB_VERSION);
        request.onupgradeneeded = () => {
          const db = request.result;
          if (!db.objectStoreNames.contains(storeName)) db.createObjectStore(storeName, { keyPath: "id" });
        };
        request.onsuccess = () => {
          const db = request.result;
          // Let a newer version of this script (in another tab or the worker) upgrade.
          db.onversionchange = () => {
            db.close();
            opening = null;
          };
          resolve(db);
        };
        request.onerror = () => reject(request.error);
        request.onblocked = () => reject(new Error("IndexedDB upgrade blocked by another tab"));
      }).catch((error) => {
        opening = null;
        throw error;
      });
      return opening;
    }

    // Resolve only when the transaction commits: "Saved on this phone" must be true.
    async function transact(mode, work) {
      const db = await open();
      return new Promise((resolve, reject) => {
        const tx = db.transaction(storeName, mode);
        let result;
        tx.oncomplete = () => resolve(result);
        tx.onabort = tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
        work(tx.objectStore(storeName), (value) => {
          result = value;
        });
      });
    }

    return {
      put: (record) => transact("readwrite", (store) => store.put(record)),
      delete: (id) => transact("readwrite", (store) => store.delete(id)),
      getAll: () =>
        transact("readonly", (store, done) => {
          const request = store.getAll();
          request.onsuccess = () => done(request.result);
        }),
      update: (id, change) =>
        transact("readwrite", (store, done) => {
          const request = store.get(id);
          request.onsuccess = () => {
            const next = request.result ? change(request.result) : null;
            if (next) store.put(next);
            done(next ?? null);
          };
        }),
    };
  }

  /**
   * The queue logic, over any store with put/getAll/delete/update.
   * fetch, locks and now are injectable so node:test can drive every path.
   */
  function createOutbox({
    store = idbStore(),
    fetch = globalThis.fetch?.bind(globalThis),
    locks = globalThis.navigator?.locks,
    now = () => Date.now(),
    timeoutMs = REQUEST_TIMEOUT_MS,
    leaseMs = LEASE_MS,
    photoTimeoutMs = PHOTO_TIMEOUT_MS,
  } = {}) {
    function whose(clientId) {
      return clientId ? { [CLIENT_HEADER]: String(clientId) } : {};
    }

    async function post(checkin, clientId) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      try {
        return await fetch(ENDPOINT, {
          method: "POST",
          // The JSON content type is half of the server's CSRF defence.
          headers: { "Content-Type": "application/json", Accept: "application/json", ...whose(clientId) },
          credentials: "same-origin",
          body: JSON.stringify(checkin),
          signal: controller.signal,
        });
      } finally {
        clearTimeout(timer);
      }
    }

    /**
     * Send one photo of a landed check-in, as its raw image body; "sent", "rejected", "retry",
     * or "other_client" when it was made by another client than the one signed in now. A
     * refusal's reason (the server's words, in the client's language) goes to `why(message)`.
     */
    async function postPhoto(checkinId, photo, clientId, why = () => {}) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), photoTimeoutMs);
      try {
        const response = await fetch(`${ENDPOINT}/${encodeURIComponent(checkinId)}/photos`, {
          method: "POST",
          headers: { "Content-Type": photo.type || "image/jpeg", Accept: "application/json", ...whose(clientId) },
          credentials: "same-origin",
          body: photo,
          signal: controller.signal,
        });
        if (response.status === 409 && (await readJson(response))?.error?.code === "other_client") return "other_client";
        const outcome = response.redirected ? "retry" : classifyStatus(response.status);
        if (outcome === "rejected") {
          const message = (await readJson(response))?.error?.message;
          if (typeof message === "string" && message) why(message);
        }
        return outcome;
      } catch {
        return "retry";
      } finally {
        clearTimeout(timer);
      }
    }

    /**
     * Send the photos of a leased record whose check-in has landed, in order. Each leaves
     * the record once the server decided (a refused one, e.g. not an image, for good); the
     * record goes with the last. A network or server failure keeps the rest for a replay.
     */
    async function sendPhotos(record) {
      const counts = { sent: 0, refused: 0, left: 0 };
      // The first refusal's reason, for the page to show beside "some photos could not be sent".
      const why = (message) => {
        counts.why ??= message;
      };
      for (const photo of record.photos ?? []) {
        await store.update(record.id, (current) => ({ ...current, lease_until: now() + photoTimeoutMs + leaseMs }));
        const outcome = await postPhoto(record.id, photo, record.client_id, why);
        if (outcome === "other_client") {
          // Someone else signed in since: none of these photos is theirs to receive.
          counts.refused = record.photos.length - counts.sent;
          break;
        }
        if (outcome === "retry") {
          counts.left = record.photos.length - counts.sent - counts.refused;
          await release(record.id, {});
          return counts;
        }
        counts[outcome === "sent" ? "sent" : "refused"] += 1;
        await store.update(record.id, (current) => ({ ...current, photos: current.photos.slice(1) }));
      }
      await store.delete(record.id);
      return counts;
    }

    async function readJson(response) {
      try {
        return await response.json();
      } catch {
        return null;
      }
    }

    /**
     * Send a record this context has leased; delete it once the server decided, or once
     * its photos have followed. A record with only photos left answers outcome "photos".
     */
    async function sendLeased(record) {
      if (record.checkin_sent) {
        return { id: record.id, outcome: "photos", status: 0, photos: await sendPhotos(record) };
      }
      let response;
      try {
        response = await post(record.checkin, record.client_id);
      } catch {
        await release(record.id, { last_status: 0 });
        return { id: record.id, outcome: "retry", status: 0, reason: "network" };
      }
      // An API call redirected to a sign-in page is not an acceptance.
      const outcome = response.redirected ? "retry" : classifyStatus(response.status);
      const body = await readJson(response);
      if (outcome === "retry") {
        const wait = retryAfterMs(response.headers.get("Retry-After"), now());
        await release(record.id, { last_status: response.status, next_attempt_at: wait ? now() + wait : 0 });
        return { id: record.id, outcome, status: response.status, retryAfterMs: wait, body };
      }
      if (outcome === "sent" && record.photos?.length) {
        await store.update(record.id, (current) => ({ ...current, checkin_sent: true }));
        const photos = await sendPhotos(record);
        return { id: record.id, outcome, status: response.status, body, photos };
      }
      await store.delete(record.id);
      return { id: record.id, outcome, status: response.status, body };
    }

    function release(id, change) {
      return store.update(id, (record) => ({
        ...record,
        ...change,
        attempts: record.attempts + 1,
        lease_until: 0,
      }));
    }

    /** Lease a queued record unless someone else holds it or it must wait (429). */
    function claim(id) {
      const t = now();
      return store.update(id, (record) => {
        // Replays hold the Web Lock while they send, and a dead tab's lock is
        // released at once: a replay lease seen under the lock is a leftover.
        const leftover = Boolean(locks?.request) && record.lease_by === "replay";
        const leased = record.lease_until > t && !leftover;
        return leased || record.next_attempt_at > t ? null : { ...record, lease_until: t + leaseMs, lease_by: "replay" };
      });
    }

    // The Web Lock serialises replays of the page and the worker when the browser
    // has it; without it the per-record lease alone prevents double sends.
    function exclusively(work) {
      return locks?.request ? locks.request(LOCK_NAME, work) : work();
    }

    async function pending() {
      const records = await store.getAll();
      return records.sort((a, b) => a.queued_at.localeCompare(b.queued_at));
    }

    return {
      /** Queue a check-in (and its photos, Blobs) by the client clientId, without sending it. */
      async enqueue(checkin, photos = [], clientId = null) {
        const record = newRecord(checkin, now(), photos, clientId);
        await store.put(record);
        return record;
      },

      /**
       * Queue a check-in and send it at once. It is stored already leased so a
       * replay starting meanwhile leaves it to us.
       */
      async submit(checkin, photos = [], clientId = null) {
        const record = { ...newRecord(checkin, now(), photos, clientId), lease_until: now() + leaseMs, lease_by: "submit" };
        await store.put(record);
        return sendLeased(record);
      },

      /** Send a check-in, then its photos, without storing them (when storage is unavailable). */
      async sendDirect(checkin, photos = [], clientId = null) {
        try {
          const response = await post(checkin, clientId);
          const outcome = response.redirected ? "retry" : classifyStatus(response.status);
          const result = { id: checkin.id, outcome, status: response.status, body: await readJson(response) };
          if (outcome === "sent" && photos.length) {
            result.photos = { sent: 0, refused: 0, left: 0 };
            const why = (message) => {
              result.photos.why ??= message;
            };
            for (const photo of photos) {
              const sent = await postPhoto(checkin.id, photo, clientId, why);
              result.photos[sent === "sent" ? "sent" : sent === "retry" ? "left" : "refused"] += 1;
            }
          }
          return result;
        } catch {
          return { id: checkin.id, outcome: "retry", status: 0, reason: "network" };
        }
      },

      /**
       * Send every queued check-in once, oldest first, with its original body.
       * Returns {results, remaining, retryAfterMs}; stops early when the network
       * or the server says later (no point hammering it with the rest).
       * retryAfterMs > 0 says when a record held back (Retry-After, or a lease
       * left by a tab closed mid-send) becomes sendable, so the caller can come back.
       */
      replay() {
        return exclusively(async () => {
          const results = [];
          let retryAfterMs = 0;
          const soonest = (ms) => {
            if (ms > 0) retryAfterMs = retryAfterMs ? Math.min(retryAfterMs, ms) : ms;
          };
          for (const queued of await pending()) {
            const record = await claim(queued.id);
            if (!record) {
              soonest(Math.max(queued.lease_until, queued.next_attempt_at) - now());
              continue;
            }
            const result = await sendLeased(record);
            results.push(result);
            soonest(result.retryAfterMs ?? 0);
            if (result.outcome === "retry" && [0, 401, 429].includes(result.status)) break;
          }
          return { results, remaining: (await store.getAll()).length, retryAfterMs };
        });
      },

      pending,
      /** Forget a queued check-in and its photos (one the server will never take from here). */
      remove: (id) => store.delete(id),
      /** How many check-ins wait (a record whose check-in landed, with photos left, is none). */
      async count() {
        return (await store.getAll()).filter((record) => !record.checkin_sent).length;
      },
    };
  }

  return {
    DB_NAME,
    DB_VERSION,
    STORE_NAME,
    LOCK_NAME,
    SYNC_TAG,
    ENDPOINT,
    CLIENT_HEADER,
    classifyStatus,
    retryAfterMs,
    idbStore,
    createOutbox,
  };
})();

// node:test loads this file with require(); browsers have no `module`.
if (typeof module === "object" && module.exports) module.exports = CompanionOutbox;
