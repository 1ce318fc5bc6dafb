// Client pages: service worker registration, turning reminders on, the set-up steps
// that apply to this browser, the offline outbox's replay, and the settings' time zone.
// The check-in form itself is checkin.js.
//
// Loaded with <script defer> after outbox.js; the strict CSP forbids inline
// scripts, so every hook is found by id and is optional: a page without the
// element simply skips that part.

const CompanionApp = (() => {
  const PUSH_TIMEOUT_MS = 10_000;
  const SERVER_RETRY_MS = 60_000;

  // The words, in the client's language: every client page renders them from the gettext
  // catalogs (companion/client_words.py) as JSON in #client-messages, read by useMessages().
  // The scripts hold none of their own.
  const MESSAGES = {
    photosSent: (n) => (n === 1 ? MESSAGES.photoSent : MESSAGES.photosSentMany.replace("{n}", n)),
    photosReady: (n) => (n === 1 ? MESSAGES.photoReady : MESSAGES.photosReadyMany.replace("{n}", n)),
    // How many check-ins wait on this phone; "" when none.
    queued: (n) => (!n ? "" : n === 1 ? MESSAGES.queuedOne : MESSAGES.queuedMany.replace("{n}", n)),
  };
  const ASSESSMENT_STATUSES = ["expected", "review", "urgent"];

  /** Take the page's words (the functions above stay: they pick among them). */
  function useMessages(words) {
    for (const [key, value] of Object.entries(words ?? {})) {
      if (typeof MESSAGES[key] !== "function") MESSAGES[key] = value;
    }
  }

  /** Read the words the page carries (#client-messages); "{app}" is the app's name on an
   * iPhone's Home Screen, which the page declares (apple-mobile-web-app-title). */
  function readMessages(doc) {
    const app = doc.querySelector?.('meta[name="apple-mobile-web-app-title"]')?.content || "Companion";
    const named = (key, value) => (typeof value === "string" ? value.replaceAll("{app}", app) : value);
    try {
      useMessages(JSON.parse(doc.getElementById("client-messages")?.textContent ?? "{}", named));
    } catch (error) {
      console.warn("Messages:", error);
    }
  }
  const SEVERITY = { expected: 0, review: 1, urgent: 2 };
  const GROUPS = new Set(["symptoms", "warning_signs"]);
  const REQUIRED = { redness: "redness", swelling: "swelling", pain: "pain" };

  // ------------------------------------------------------------ pure helpers

  /** Tell whether this is iOS/iPadOS (iPadOS 13+ says "Macintosh" but has touch). */
  function isIos({ userAgent = "", platform = "", maxTouchPoints = 0 } = {}) {
    return /iPad|iPhone|iPod/.test(userAgent) || (platform === "MacIntel" && maxTouchPoints > 1);
  }

  /** Tell whether this is Safari itself on iOS, the browser whose Share sheet installs the app. */
  function isIosSafari(nav = {}) {
    const ua = nav.userAgent ?? "";
    // Other iOS browsers and in-app views lack "Safari/" or name themselves.
    return isIos(nav) && /Safari\//.test(ua) && !/CriOS|FxiOS|EdgiOS|OPiOS|OPT\/|GSA\/|YaBrowser|DuckDuckGo|Ddg\//.test(ua);
  }

  /** Tell whether the app runs installed (Home Screen / standalone window). */
  function isStandalone(win) {
    return Boolean(win.matchMedia?.("(display-mode: standalone)").matches || win.navigator?.standalone === true);
  }

  /**
   * List the set-up steps that apply to this browser, in order: on iOS the Home Screen
   * comes first (web push works only there), elsewhere an install step when the
   * browser offers its prompt; reminders and the calendar always.
   */
  function setupSteps({ ios, iosSafari, standalone, installPrompt }) {
    const steps = [];
    if (ios && !standalone) steps.push(iosSafari ? "ios-install" : "ios-safari");
    else if (!standalone && installPrompt) steps.push("install");
    steps.push("reminders");
    // The phone's own calendar works everywhere, also where push cannot (shown when offered).
    steps.push("calendar");
    return steps;
  }

  /** Tell whether two zone names are one zone. Browsers name some zones by their old alias
   * (Chromium: Asia/Calcutta for Asia/Kolkata, America/Buenos_Aires for
   * America/Argentina/Buenos_Aires), so a phone in the saved zone must not be told it is
   * "set to a different time zone". Intl resolves both names to the same one. */
  function sameZone(a, b) {
    const resolved = (zone) => {
      try {
        return new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
      } catch {
        return zone; // a name this browser does not know: only itself is the same
      }
    };
    return a === b || resolved(a) === resolved(b);
  }

  /** Pick the "notifications are blocked" help that matches this platform's settings. */
  function deniedHelp(nav = {}) {
    if (isIos(nav)) return MESSAGES.remindersDeniedIos;
    if (/Android/.test(nav.userAgent ?? "")) return MESSAGES.remindersDeniedAndroid;
    return MESSAGES.remindersDenied;
  }

  /** Decode a base64url VAPID key into bytes. */
  function base64UrlToBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
    return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
  }

  /** Compare a subscription's applicationServerKey (ArrayBuffer) with key bytes. */
  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    const existing = new Uint8Array(buffer);
    return existing.length === bytes.length && existing.every((byte, i) => byte === bytes[i]);
  }

  function toNumber(value) {
    if (value == null || String(value).trim() === "") return null;
    const number = Number(value);
    return Number.isFinite(number) ? number : null;
  }

  /**
   * Build the POST /api/checkins body from form controls ({name, type, value, checked}).
   * Every checkbox present counts (unchecked = false), so the body says "no" explicitly.
   */
  function buildCheckin(fields, { id, takenAt, sessionId }) {
    const checkin = {
      id,
      taken_at: takenAt,
      redness: null,
      swelling: null,
      pain: null,
      symptoms: {},
      warning_signs: {},
      note: "",
    };
    const session = Number.parseInt(sessionId ?? "", 10);
    if (Number.isInteger(session)) checkin.session_id = session;
    for (const field of fields) {
      const name = field.name ?? "";
      const [group, key] = name.split(".");
      if (key && GROUPS.has(group) && field.type === "checkbox") {
        checkin[group][key] = Boolean(field.checked);
      } else if (name in REQUIRED) {
        // Radios report only the chosen one; a range or number always has a value.
        if ((field.type === "radio" || field.type === "checkbox") && !field.checked) continue;
        checkin[name] = toNumber(field.value);
      } else if (name === "note") {
        checkin.note = String(field.value ?? "").trim();
      }
    }
    return checkin;
  }

  /** List the scales left unanswered, so an incomplete report never reaches the queue. */
  function missingAnswers(checkin) {
    return Object.keys(REQUIRED).filter((name) => checkin[name] == null);
  }

  /** Map an assessment to its CSS class and a text label (never colour alone). */
  function assessmentView(assessment) {
    const status = ASSESSMENT_STATUSES.includes(assessment?.status) ? assessment.status : "review";
    return {
      status,
      className: `assessment-${status}`,
      label: MESSAGES.assessmentLabels?.[status] ?? status,
      message: assessment?.message ?? "",
    };
  }

  /** Turn an error answer {"error": {message, fields}} into one readable line. */
  function errorText(body, status) {
    const error = body?.error;
    const fields = error?.fields && typeof error.fields === "object" ? Object.entries(error.fields) : [];
    const details = fields.map(([field, problem]) => `${field}: ${Array.isArray(problem) ? problem.join(", ") : problem}`);
    const message = error?.message ?? `HTTP ${status}`;
    return details.length ? `${message} (${details.join("; ")})` : message;
  }

  /** Pick the most severe assessment among replay results, or null. */
  function mostSevere(results) {
    return results
      .filter((result) => result.outcome === "sent" && result.body?.assessment)
      .map((result) => result.body.assessment)
      .sort((a, b) => (SEVERITY[b.status] ?? 1) - (SEVERITY[a.status] ?? 1))[0] ?? null;
  }

  /** Settle with `promise`, or reject with `message` after `ms` (some promises never settle). */
  function withTimeout(promise, ms, message) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new UserFacingError(message)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  class UserFacingError extends Error {}

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Older Safari: RFC 4122 version 4 from random bytes.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // The check-in draft: answers in localStorage, photos in IndexedDB (checkin.js).
  const CHECKIN_DRAFT = "companion-checkin-draft";
  // The offline queue of unsent check-ins and their photos (outbox.js DB_NAME).
  const CHECKIN_OUTBOX = "companion";

  function deleteDatabase(win, name) {
    return new Promise((resolve) => {
      const request = win.indexedDB?.deleteDatabase(name);
      if (!request) return resolve(false);
      request.onsuccess = () => resolve(true);
      // Blocked: it goes once another tab closes its connection.
      request.onerror = request.onblocked = () => resolve(false);
    });
  }

  /**
   * Drop the check-in draft and the unsent check-ins kept on this phone. The start page is
   * only shown signed out: a phone lent or shared must not keep one client's answers and skin
   * photos for the next to see and send, also where the browser ignores the sign-out's
   * Clear-Site-Data. (A queued check-in also names its client: the server refuses it for another.)
   */
  async function forgetCheckinDraft(win) {
    try {
      win.localStorage?.removeItem(CHECKIN_DRAFT);
    } catch {
      // storage blocked: nothing was kept there
    }
    const [draft, outbox] = await Promise.all([deleteDatabase(win, CHECKIN_DRAFT), deleteDatabase(win, CHECKIN_OUTBOX)]);
    return draft && outbox;
  }

  // ------------------------------------------------------------ page wiring

  function init(doc, win) {
    if (win.location?.pathname === "/start") {
      forgetCheckinDraft(win).catch((error) => console.warn("Check-in draft:", error));
    }
    const $ = (id) => doc.getElementById(id);
    readMessages(doc);
    const nav = win.navigator;
    const outbox = typeof CompanionOutbox === "undefined" ? null : CompanionOutbox.createOutbox();

    function setText(element, text) {
      if (element) element.textContent = text;
    }

    // -------------------------------------------------- service worker

    if ("serviceWorker" in nav) {
      nav.serviceWorker.register("/sw.js", { scope: "/" }).catch((error) => console.warn("Service worker:", error));
      // The worker tells open pages what its Background Sync replay did.
      nav.serviceWorker.addEventListener("message", (event) => {
        if (event.data?.type === "checkin-outbox-replayed") showReplay(event.data.results ?? []);
      });
    }

    // -------------------------------------------------- reminders

    const remindersButton = $("enable-reminders");
    const remindersStatus = $("reminders-status");
    const pushSupported = "serviceWorker" in nav && "PushManager" in win && "Notification" in win;

    async function showReminderState() {
      // Reading the state is fine on load; asking for permission waits for a tap.
      if (!pushSupported) return;
      if (win.Notification.permission === "denied") return setText(remindersStatus, deniedHelp(nav));
      const registration = await nav.serviceWorker.getRegistration("/");
      const subscription = await registration?.pushManager.getSubscription();
      if (subscription && win.Notification.permission === "granted") setText(remindersStatus, MESSAGES.remindersOn);
    }

    async function fetchVapidKey() {
      let response;
      try {
        response = await fetch("/api/push/vapid-public-key", { credentials: "same-origin" });
      } catch {
        throw new UserFacingError(MESSAGES.remindersOffline);
      }
      if (response.status === 401) throw new UserFacingError(MESSAGES.remindersSignedOut);
      if (!response.ok) throw new UserFacingError(MESSAGES.subscriptionNotSaved);
      const { public_key: publicKey } = await response.json();
      return base64UrlToBytes(publicKey);
    }

    async function subscribe(applicationServerKey) {
      const registration = await withTimeout(nav.serviceWorker.ready, PUSH_TIMEOUT_MS, MESSAGES.remindersNotReady);
      let subscription = await registration.pushManager.getSubscription();
      // A subscription made with an older server key would never receive anything.
      if (subscription && !sameKey(subscription.options?.applicationServerKey, applicationServerKey)) {
        await subscription.unsubscribe();
        subscription = null;
      }
      if (subscription) return subscription;
      // subscribe() needs the browser vendor's push service and may never settle
      // (it does not in headless Chromium), hence the race.
      const subscribing = registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
      try {
        return await withTimeout(subscribing, PUSH_TIMEOUT_MS, MESSAGES.pushServiceUnreachable);
      } catch (error) {
        throw error instanceof UserFacingError ? error : new UserFacingError(MESSAGES.pushRefused);
      }
    }

    async function saveSubscription(subscription) {
      let response;
      try {
        response = await fetch("/api/push/subscriptions", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          credentials: "same-origin",
          body: JSON.stringify(subscription.toJSON()),
        });
      } catch {
        throw new UserFacingError(MESSAGES.remindersOffline);
      }
      if (response.status === 401) throw new UserFacingError(MESSAGES.remindersSignedOut);
      if (!response.ok) throw new UserFacingError(MESSAGES.subscriptionNotSaved);
    }

    async function turnOnReminders() {
      if (!pushSupported) {
        const onIosBrowser = isIos(nav) && !isStandalone(win);
        return setText(remindersStatus, onIosBrowser ? MESSAGES.remindersIos : MESSAGES.remindersUnsupported);
      }
      // Ask first, before any other await: Safari only shows the prompt while
      // the tap's user activation is still fresh.
      const permission = await win.Notification.requestPermission();
      if (permission === "denied") return setText(remindersStatus, deniedHelp(nav));
      if (permission !== "granted") return setText(remindersStatus, MESSAGES.remindersDismissed);
      setText(remindersStatus, MESSAGES.remindersStarting);
      const key = await fetchVapidKey();
      await saveSubscription(await subscribe(key));
      setText(remindersStatus, MESSAGES.remindersOn);
    }

    if (remindersButton) {
      showReminderState().catch((error) => console.warn("Reminder state:", error));
      remindersButton.addEventListener("click", async () => {
        remindersButton.disabled = true;
        try {
          await turnOnReminders();
        } catch (error) {
          setText(remindersStatus, error instanceof UserFacingError ? error.message : MESSAGES.pushRefused);
          if (!(error instanceof UserFacingError)) console.warn("Reminders:", error);
        } finally {
          remindersButton.disabled = false;
        }
      });
    }

    // -------------------------------------------------- set-up steps

    const setupList = $("setup-steps");
    if (setupList) {
      const installButton = $("install-button");
      let deferredPrompt = null;
      const platform = { ios: isIos(nav), iosSafari: isIosSafari(nav), standalone: isStandalone(win) };
      const show = (installPrompt) => {
        const wanted = new Set(setupSteps({ ...platform, installPrompt }));
        for (const step of setupList.querySelectorAll(":scope > li")) step.hidden = !wanted.has(step.id.replace(/^step-/, ""));
      };
      show(false);
      // Only take over the browser's own install UI when we have a button for it.
      if (installButton && !platform.standalone) {
        win.addEventListener("beforeinstallprompt", (event) => {
          event.preventDefault();
          deferredPrompt = event;
          show(true);
        });
        installButton.addEventListener("click", async () => {
          const prompt = deferredPrompt;
          if (!prompt) return;
          // A prompt event can be used once.
          deferredPrompt = null;
          await prompt.prompt();
          const choice = await prompt.userChoice;
          if (choice?.outcome === "accepted") show(false);
        });
        win.addEventListener("appinstalled", () => {
          deferredPrompt = null;
          show(false);
        });
      }
    }

    // -------------------------------------------------- outbox status and replay

    const outboxStatus = $("outbox-status");
    const checkinResult = $("checkin-result");
    let retryTimer = null;

    async function refreshOutboxStatus() {
      if (!outbox || !outboxStatus) return;
      try {
        setText(outboxStatus, MESSAGES.queued(await outbox.count()));
      } catch (error) {
        console.warn("Outbox:", error);
      }
    }

    function renderResult({ className, label, text, focus }) {
      if (!checkinResult) return;
      for (const name of [...checkinResult.classList]) {
        if (name.startsWith("assessment-") || name.startsWith("checkin-")) checkinResult.classList.remove(name);
      }
      if (className) checkinResult.classList.add(className);
      const parts = [];
      if (label) {
        const strong = doc.createElement("strong");
        strong.className = "assessment-label";
        strong.textContent = `${label}: `;
        parts.push(strong);
      }
      parts.push(doc.createTextNode(text));
      checkinResult.replaceChildren(...parts);
      if (focus) checkinResult.focus();
    }

    function renderAssessment(assessment, { intro = "", focus }) {
      const view = assessmentView(assessment);
      checkinResult?.setAttribute("data-status", view.status);
      renderResult({ className: view.className, label: view.label, text: `${intro}${view.message}`.trim(), focus });
    }

    // Results of a replay by this page or by the worker. An urgent answer to a
    // check-in sent late must still reach the client.
    async function showReplay(results) {
      await refreshOutboxStatus();
      const assessment = mostSevere(results);
      // An urgent answer to a check-in sent late takes the screen like one sent at once, and
      // any answer replaces the "Saved on this phone, will send when online" card it was sent from.
      const checkinPage = typeof CompanionCheckin === "undefined" ? null : CompanionCheckin.page;
      const savedCardShown = $("answer-saved")?.hidden === false;
      if (assessment && checkinPage && (assessment.status === "urgent" || savedCardShown)) {
        checkinPage.showAnswer(assessment, MESSAGES.savedCheckinSent);
      } else if (assessment && checkinResult) renderAssessment(assessment, { intro: `${MESSAGES.savedCheckinSent} `, focus: false });
      for (const result of results.filter((item) => item.outcome === "rejected")) {
        const text = `${MESSAGES.savedCheckinRefused} ${errorText(result.body, result.status)}`;
        if (checkinResult) renderResult({ className: "checkin-error", text, focus: false });
        else setText(outboxStatus, text);
      }
    }

    // The phone's sign-in ended while check-ins waited here (it expired, or the clinic signed
    // the phone out): the server will never take them from this phone (the start page drops
    // them too), so "will send when online" would stay untrue. Say so, and who to ask.
    async function showSignedOut() {
      try {
        for (const record of await outbox.pending()) await outbox.remove(record.id);
      } catch (error) {
        console.warn("Outbox:", error); // Clear-Site-Data has dropped them already
      }
      await refreshOutboxStatus();
      const checkinPage = typeof CompanionCheckin === "undefined" ? null : CompanionCheckin.page;
      if (!checkinPage?.showSignedOut?.()) setText(outboxStatus, MESSAGES.queuedSignedOut);
    }

    async function replayOutbox() {
      if (!outbox || nav.onLine === false) return;
      clearTimeout(retryTimer);
      try {
        const { results, remaining, retryAfterMs } = await outbox.replay();
        if (results.some((result) => result.outcome === "retry" && result.status === 401)) return await showSignedOut();
        await showReplay(results);
        // Come back when the server asked (Retry-After) or a stale lease ends; a
        // server error gets a slow retry, since iOS has no Background Sync to do it.
        const serverDown = results.some((result) => result.outcome === "retry" && result.status >= 500);
        const wait = retryAfterMs || (remaining && serverDown ? SERVER_RETRY_MS : 0);
        if (wait) retryTimer = setTimeout(replayOutbox, wait + 100);
      } catch (error) {
        console.warn("Outbox replay:", error);
        // Chromium honours the 401's Clear-Site-Data at once, closing the outbox mid-replay.
        const me = await fetch("/api/me", { headers: { Accept: "application/json" } }).catch(() => null);
        if (me?.status === 401) await showSignedOut();
      }
    }

    if (outbox) {
      refreshOutboxStatus();
      replayOutbox();
      win.addEventListener("online", replayOutbox);
      doc.addEventListener("companion:outbox-changed", refreshOutboxStatus);
    }

    // -------------------------------------------------- settings

    // The saved zone stays selected (saving quiet hours must not move it); when the
    // phone is elsewhere, say so and offer the switch as one tap.
    const timezoneField = doc.querySelector('#settings-form [name="timezone"]');
    const zoneHint = $("tz-hint");
    if (timezoneField && zoneHint) {
      const detected = Intl.DateTimeFormat().resolvedOptions().timeZone;
      const known = [...(timezoneField.options ?? [])].some((option) => option.value === detected);
      if (detected && known && !sameZone(detected, timezoneField.value)) {
        setText($("detected-tz"), detected);
        zoneHint.hidden = false;
        $("use-phone-tz")?.addEventListener("click", () => {
          timezoneField.value = detected;
          timezoneField.form.requestSubmit();
        });
      }
    }
  }

  return {
    MESSAGES,
    useMessages,
    readMessages,
    isIos,
    isIosSafari,
    isStandalone,
    setupSteps,
    sameZone,
    deniedHelp,
    base64UrlToBytes,
    sameKey,
    buildCheckin,
    missingAnswers,
    assessmentView,
    errorText,
    mostSevere,
    withTimeout,
    newId,
    CHECKIN_DRAFT,
    CHECKIN_OUTBOX,
    forgetCheckinDraft,
    init,
  };
})();

if (typeof document !== "undefined") CompanionApp.init(document, window);

// node:test loads this file with require(); browsers have no `module`.
if (typeof module === "object" && module.exports) module.exports = CompanionApp;
