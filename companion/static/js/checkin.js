// The check-in page: one guided form, a draft kept on this phone until the answers
// are sent, errors beside their question, and the answer shown in place of the form
// (an urgent one takes the whole screen).
//
// Loaded with <script defer> after outbox.js and app.js (it uses CompanionApp's
// helpers and strings). Words the page shows are in the template or in
// CompanionApp.MESSAGES, never built here.

const CompanionCheckin = (() => {
  const DRAFT_KEY = "companion-checkin-draft"; // app.js drops it when the phone is signed out
  // A draft from an earlier day describes skin that has changed since: drop it.
  const DRAFT_MAX_AGE_MS = 12 * 60 * 60 * 1000;
  const MAX_PHOTOS = 3;
  const QUESTIONS = ["redness", "swelling", "pain"];
  // The draft's photos: Blobs in their own IndexedDB database (the answers are small
  // enough for localStorage; pictures are not, and localStorage holds only strings).
  const PHOTO_DB = "companion-checkin-draft";
  const PHOTO_STORE = "photos";

  // ------------------------------------------------------------ pure helpers

  /** Capture the answers of form controls ({name, type, value, checked}) as a draft. */
  function draftFrom(fields, nowMs) {
    const values = {};
    for (const field of fields) {
      const name = field.name ?? "";
      if (!name || field.type === "file" || field.type === "submit" || field.type === "button") continue;
      if (field.type === "radio") {
        if (field.checked) values[name] = String(field.value);
      } else if (field.type === "checkbox") {
        if (field.checked) values[name] = true;
      } else if (String(field.value ?? "").trim()) {
        values[name] = String(field.value);
      }
    }
    return { saved_at: nowMs, values };
  }

  /**
   * When a review answer says the clinic looks: "today", or "tomorrow" from lateHour on in
   * the client's zone (answers.review_day on the server makes the same choice).
   */
  function reviewDay(date, zone, lateHour) {
    let hour;
    try {
      const format = new Intl.DateTimeFormat("en-GB", { timeZone: zone || undefined, hour: "numeric", hourCycle: "h23" });
      hour = Number(format.format(date));
    } catch {
      hour = date.getHours(); // an unknown zone: the phone's own
    }
    return hour >= lateHour ? "tomorrow" : "today";
  }

  /** Tell whether a stored draft is still worth restoring. */
  function isFresh(draft, nowMs) {
    return Boolean(draft?.values) && nowMs - Number(draft.saved_at) < DRAFT_MAX_AGE_MS && Object.keys(draft.values).length > 0;
  }

  /** Set form controls from a draft's values (a missing name means unanswered / off). */
  function applyDraft(fields, values) {
    for (const field of fields) {
      const name = field.name ?? "";
      if (!name || field.type === "file") continue;
      if (field.type === "radio") field.checked = values[name] === String(field.value);
      else if (field.type === "checkbox") field.checked = values[name] === true;
      else if (field.type !== "submit" && field.type !== "button") field.value = values[name] ?? "";
    }
  }

  /**
   * The photos chosen for the draft, over any store with put/getAll/delete (an
   * idbStore in the page): they outlive a reload, a crash and going offline, and go
   * when the check-in is sent or the draft grows stale, like the answers.
   */
  function photoDraft({ store, now = () => Date.now(), newId }) {
    let sequence = 0;
    return {
      /** The fresh photos, in the order they were chosen; stale or broken ones are deleted. */
      async list() {
        const t = now();
        const fresh = [];
        for (const record of await store.getAll()) {
          if (record?.blob && t - Number(record.saved_at) < DRAFT_MAX_AGE_MS) fresh.push(record);
          else await store.delete(record.id);
        }
        fresh.sort((a, b) => a.saved_at - b.saved_at || a.sequence - b.sequence);
        return fresh.slice(0, MAX_PHOTOS);
      },
      async add(blob) {
        const record = { id: newId(), blob, saved_at: now(), sequence: sequence++ };
        await store.put(record);
        return record;
      },
      remove: (id) => store.delete(id),
      async clear() {
        for (const record of await store.getAll()) await store.delete(record.id);
      },
    };
  }

  /**
   * Split an API error body into messages beside questions and one for the whole form.
   * Known questions get the page's own plain words; anything else keeps the server's.
   */
  function placeErrors(body, words = {}) {
    const fields = body?.error?.fields && typeof body.error.fields === "object" ? body.error.fields : {};
    const beside = {};
    const general = [];
    for (const [path, problem] of Object.entries(fields)) {
      const text = Array.isArray(problem) ? problem.join(" ") : String(problem);
      const question = path.split(/[.[]/)[0];
      if (question in words) beside[question] = words[question];
      else if (["symptoms", "warning_signs", "note"].includes(question)) beside[question] = text;
      else general.push(text);
    }
    if (!Object.keys(beside).length && !general.length && body?.error?.message) general.push(body.error.message);
    return { beside, general };
  }

  // ------------------------------------------------------------ page wiring

  function init(doc, win) {
    const form = doc.getElementById("checkin-form");
    if (!form || typeof CompanionApp === "undefined") return;
    const $ = (id) => doc.getElementById(id);
    const M = CompanionApp.MESSAGES;
    const storage = (() => {
      try {
        return win.localStorage;
      } catch {
        return null; // storage blocked: the form still works, without a draft
      }
    })();
    const outbox = typeof CompanionOutbox === "undefined" ? null : CompanionOutbox.createOutbox();
    const formError = $("checkin-error");
    const reducedMotion = win.matchMedia?.("(prefers-reduced-motion: reduce)").matches;
    let photos = [];
    let submitting = false;

    // -------------------------------------------------- draft

    function saveDraft() {
      try {
        storage?.setItem(DRAFT_KEY, JSON.stringify(draftFrom(Array.from(form.elements), Date.now())));
      } catch (error) {
        console.warn("Draft not saved:", error);
      }
    }

    function clearDraft() {
      try {
        storage?.removeItem(DRAFT_KEY);
      } catch {
        // nothing to clear
      }
    }

    function restoreDraft() {
      let draft = null;
      try {
        draft = JSON.parse(storage?.getItem(DRAFT_KEY) ?? "null");
      } catch {
        draft = null;
      }
      if (isFresh(draft, Date.now())) applyDraft(Array.from(form.elements), draft.values);
      else clearDraft();
    }

    // -------------------------------------------------- errors beside questions

    function showFieldError(name, text) {
      const element = $(`err-${name}`);
      if (!element) return false;
      element.textContent = text;
      element.hidden = !text;
      element.closest(".question")?.classList.toggle("has-error", Boolean(text));
      return true;
    }

    function clearErrors() {
      for (const element of form.querySelectorAll(".field-error")) {
        element.textContent = "";
        element.hidden = true;
      }
      for (const element of form.querySelectorAll(".has-error")) element.classList.remove("has-error");
      formError.hidden = true;
      formError.textContent = "";
    }

    function showFormError(text) {
      formError.textContent = text;
      formError.hidden = false;
    }

    function focusFirstError() {
      const first = form.querySelector(".has-error input, .has-error textarea");
      if (first) {
        first.closest(".question, label")?.scrollIntoView({ block: "center", behavior: reducedMotion ? "auto" : "smooth" });
        first.focus({ preventScroll: true });
      } else if (!formError.hidden) {
        formError.focus();
      }
    }

    function showRejection(body) {
      const { beside, general } = placeErrors(body, M.fieldInvalid);
      let unplaced = [...general];
      for (const [name, text] of Object.entries(beside)) {
        if (!showFieldError(name, text)) unplaced.push(text);
      }
      if (Object.keys(beside).length) unplaced = [M.checkAnswers, ...unplaced];
      if (unplaced.length) showFormError(unplaced.join(" "));
      focusFirstError();
    }

    // -------------------------------------------------- the answer, in place of the form

    // next: what became of the answers, "sent" (the server's answer), "saved" (queued on this
    // phone) or "signed-out" (not sent, and not kept); "we have alerted the clinic" only when sent.
    function showAnswer(assessment, note = "", { next = "sent" } = {}) {
      const status = CompanionApp.assessmentView(assessment).status;
      const section = $(`answer-${status}`);
      if (!section) return;
      for (const element of section.querySelectorAll(".urgent-next")) element.hidden = element.dataset.next !== next;
      for (const other of doc.querySelectorAll(".answer")) other.hidden = other !== section;
      const message = section.querySelector(".answer-message");
      if (message) message.textContent = assessment?.message ?? "";
      if (status === "review") {
        const day = reviewDay(new Date(), section.dataset.zone, Number(section.dataset.lateHour ?? 18));
        for (const element of section.querySelectorAll("[data-today]")) element.textContent = element.dataset[day];
      }
      const noteElement = section.querySelector(".answer-note");
      if (noteElement) {
        noteElement.textContent = note;
        noteElement.hidden = !note;
      }
      $("checkin-flow").hidden = true;
      section.hidden = false;
      // An urgent answer takes the screen: nothing else competes with the call button.
      doc.body.classList.toggle("urgent-mode", status === "urgent");
      win.scrollTo(0, 0);
      section.focus();
    }

    function showSaved(text, id = "answer-saved") {
      const section = $(id);
      for (const other of doc.querySelectorAll(".answer")) other.hidden = other !== section;
      const message = section.querySelector(".answer-message");
      if (message) message.textContent = text;
      $("checkin-flow").hidden = true;
      section.hidden = false;
      win.scrollTo(0, 0);
      section.focus();
    }

    // -------------------------------------------------- guided flow

    // After a scale is answered, bring the next question up, without moving focus.
    form.addEventListener("change", (event) => {
      const name = event.target.name ?? "";
      saveDraft();
      if (QUESTIONS.includes(name)) {
        showFieldError(name, "");
        const next = event.target.closest(".question")?.nextElementSibling;
        if (next?.classList.contains("question")) {
          next.scrollIntoView({ block: "start", behavior: reducedMotion ? "auto" : "smooth" });
        }
      }
    });
    form.addEventListener("input", saveDraft);

    // -------------------------------------------------- photos

    const photoInput = $("photos");
    const chosen = $("photos-chosen");
    const count = $("photos-count");
    const photoList = $("photos-list");
    const photoItem = $("photo-item");
    const camera = photoInput ? form.querySelector(`label[for="${photoInput.id}"]`) : null;
    const photoDrafts = (() => {
      if (!photoInput || typeof CompanionOutbox === "undefined") return null;
      const store = CompanionOutbox.idbStore({ indexedDB: win.indexedDB, dbName: PHOTO_DB, storeName: PHOTO_STORE });
      return photoDraft({ store, newId: CompanionApp.newId });
    })();

    // Each photo: {id, blob, url}; url is an object URL for its thumbnail.
    function showPhotos() {
      if (!chosen || !count) return;
      chosen.hidden = photos.length === 0;
      count.textContent = photos.length ? M.photosReady(photos.length) : "";
      if (camera) camera.hidden = photos.length >= MAX_PHOTOS;
      if (!photoList || !photoItem) return;
      photoList.replaceChildren(
        ...photos.map((photo, index) => {
          const item = photoItem.content.firstElementChild.cloneNode(true);
          const image = item.querySelector("img");
          const remove = item.querySelector("button");
          photo.url ??= win.URL.createObjectURL(photo.blob);
          image.src = photo.url;
          image.alt = image.dataset.alt.replace("{n}", index + 1);
          remove.setAttribute("aria-label", remove.dataset.label.replace("{n}", index + 1));
          remove.addEventListener("click", () => removePhoto(photo.id));
          return item;
        }),
      );
    }

    function forgetPhotos() {
      for (const photo of photos) if (photo.url) win.URL.revokeObjectURL(photo.url);
      photos = [];
      photoDrafts?.clear().catch((error) => console.warn("Draft photos not cleared:", error));
    }

    async function removePhoto(id) {
      const photo = photos.find((each) => each.id === id);
      photos = photos.filter((each) => each.id !== id);
      if (photo?.url) win.URL.revokeObjectURL(photo.url);
      showPhotos();
      (camera && !camera.hidden ? photoInput : count)?.focus();
      try {
        await photoDrafts?.remove(id);
      } catch (error) {
        console.warn("Draft photo not removed:", error);
      }
    }

    // A camera input returns one picture per tap: collect them, up to three, each kept
    // in the draft as it comes (in memory only when IndexedDB refuses it).
    photoInput?.addEventListener("change", async () => {
      const files = Array.from(photoInput.files ?? []).slice(0, Math.max(0, MAX_PHOTOS - photos.length));
      photoInput.value = "";
      for (const file of files) {
        let photo = { id: CompanionApp.newId(), blob: file };
        try {
          if (photoDrafts) photo = await photoDrafts.add(file);
        } catch (error) {
          console.warn("Photo not kept in the draft:", error);
        }
        photos.push(photo);
      }
      showPhotos();
    });

    async function restorePhotos() {
      if (!photoDrafts) return;
      try {
        const kept = await photoDrafts.list();
        const known = new Set(photos.map((photo) => photo.id));
        photos = [...kept.filter((photo) => !known.has(photo.id)), ...photos].slice(0, MAX_PHOTOS);
        showPhotos();
      } catch (error) {
        console.warn("Draft photos not restored:", error);
      }
    }

    // Photos follow the check-in from the outbox (outbox.js); they are optional, so a
    // photo failing never loses the check-in, and one not sent yet waits there for a replay.
    function photoNote(counts) {
      if (!counts) return "";
      if (!counts.refused && !counts.left) return M.photosSent(counts.sent);
      // Why one was refused, in the server's plain words (e.g. not a photo it can read).
      return counts.why ? `${M.photosFailed} ${counts.why}` : M.photosFailed;
    }

    async function requestBackgroundSync() {
      // Chromium replays from the worker even with the page closed; browsers
      // without Background Sync (Safari, Firefox) rely on the page's replay.
      try {
        const registration = await win.navigator.serviceWorker?.getRegistration("/");
        await registration?.sync?.register(CompanionOutbox.SYNC_TAG);
      } catch (error) {
        console.warn("Background Sync:", error);
      }
    }

    // -------------------------------------------------- sending

    // A one-tap link from a reminder email (no sign-in) posts to the link's own address;
    // the offline queue replays with the app's sign-in, which this browser may not have.
    const linkUrl = form.dataset.submitUrl;

    async function sendByLink(checkin) {
      try {
        const response = await fetch(linkUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          credentials: "omit",
          body: JSON.stringify(checkin),
        });
        const body = await response.json().catch(() => null);
        const refused = response.status >= 400 && response.status < 500 && response.status !== 429;
        return { outcome: response.ok ? "sent" : refused ? "rejected" : "retry", status: response.status, body };
      } catch {
        return { outcome: "retry", status: 0 };
      }
    }

    async function submit() {
      clearErrors();
      if (!outbox && !linkUrl) {
        showFormError(M.scriptsMissing);
        return formError.focus();
      }
      const checkin = CompanionApp.buildCheckin(Array.from(form.elements), {
        id: CompanionApp.newId(),
        takenAt: new Date().toISOString(),
        sessionId: form.dataset.sessionId,
      });
      const missing = CompanionApp.missingAnswers(checkin);
      if (missing.length) {
        for (const name of missing) showFieldError(name, M.fieldMissing[name]);
        showFormError(M.checkAnswers);
        return focusFirstError();
      }
      let stored = !linkUrl;
      let result;
      const blobs = linkUrl ? [] : photos.map((photo) => photo.blob);
      if (linkUrl) {
        result = await sendByLink(checkin);
      } else {
        try {
          result = await outbox.submit(checkin, blobs, form.dataset.clientId);
        } catch (error) {
          // No IndexedDB (private mode, storage full): still try to send it.
          console.warn("Outbox unavailable:", error);
          stored = false;
          result = await outbox.sendDirect(checkin, blobs, form.dataset.clientId);
        }
      }
      const urgentSigns = Object.values(checkin.warning_signs).some(Boolean);
      if (result.status === 401 && !linkUrl) {
        // Signed out: "try again" or "will send" would be untrue, and a reload leads to the start
        // page. Say so, with the clinic's number (and the urgent screen for a warning sign).
        clearDraft();
        // Not left to a later replay: the client is told to check in again once signed in.
        try {
          // ?.: for one load after an upgrade the worker may still serve the older outbox.js.
          if (stored) await outbox.remove?.(checkin.id);
        } catch (error) {
          console.warn("Outbox:", error);
        }
        form.reset();
        forgetPhotos();
        showPhotos();
        if (urgentSigns) showAnswer({ status: "urgent" }, "", { next: "signed-out" });
        else showSaved("", "answer-signed-out");
      } else if (result.outcome === "sent") {
        clearDraft();
        const note = photoNote(result.photos);
        form.reset();
        forgetPhotos();
        showAnswer(result.body?.assessment ?? { status: "expected", message: M.checkinSent }, note);
      } else if (result.outcome === "rejected") {
        // The answers stay in the form (and in the draft) for the client to correct.
        showRejection(result.body);
      } else if (stored) {
        // The outbox holds it now; the draft's work is done.
        clearDraft();
        // Say why it waits: no connection, or the server busy or down.
        const serverBusy = result.status >= 500 || result.status === 429;
        let text = serverBusy ? M.checkinSavedLater : M.checkinSaved;
        // The photos wait in the outbox with it.
        if (photos.length) text = `${text} ${M.photosOffline}`;
        form.reset();
        forgetPhotos();
        showPhotos();
        // Any warning sign is an urgent rule (U1-U5) whatever else was answered: a client
        // offline at night must read "call your clinic now", not only "saved".
        if (urgentSigns) showAnswer({ status: "urgent" }, "", { next: "saved" });
        else showSaved(text);
        await requestBackgroundSync();
      } else if (urgentSigns) {
        // Not sent and not kept, but a warning sign: call now; the answers stay in the form.
        showAnswer({ status: "urgent" }, "", { next: "not-sent" });
      } else {
        showFormError(M.checkinNotSaved);
        formError.focus();
      }
    }

    for (const button of doc.querySelectorAll("[data-action=back-to-answers]")) {
      button.addEventListener("click", () => {
        for (const section of doc.querySelectorAll(".answer")) section.hidden = true;
        doc.body.classList.remove("urgent-mode");
        $("checkin-flow").hidden = false;
        form.querySelector("button[type=submit]")?.focus();
      });
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      // A double tap must not create two check-ins with two different ids.
      if (submitting) return;
      submitting = true;
      const buttons = form.querySelectorAll("button[type=submit]");
      buttons.forEach((button) => (button.disabled = true));
      try {
        await submit();
      } finally {
        submitting = false;
        buttons.forEach((button) => (button.disabled = false));
        doc.dispatchEvent(new win.Event("companion:outbox-changed"));
      }
    });

    restoreDraft();
    restorePhotos();
    // A replay found the phone signed out (app.js): the card that said "saved on this phone"
    // (or the urgent screen's line saying so) says it was not sent; true when one was shown.
    function showSignedOut() {
      const urgent = $("answer-urgent");
      if (urgent?.hidden === false && urgent.querySelector("[data-next=saved]")?.hidden === false) {
        showAnswer({ status: "urgent" }, "", { next: "signed-out" });
        return true;
      }
      if ($("answer-saved")?.hidden !== false) return false;
      showSaved("", "answer-signed-out");
      return true;
    }

    return { showAnswer, showSignedOut };
  }

  return { DRAFT_KEY, DRAFT_MAX_AGE_MS, MAX_PHOTOS, PHOTO_DB, draftFrom, isFresh, applyDraft, photoDraft, placeErrors, reviewDay, init };
})();

if (typeof document !== "undefined") CompanionCheckin.page = CompanionCheckin.init(document, window);

// node:test loads this file with require(); browsers have no `module`.
if (typeof module === "object" && module.exports) module.exports = CompanionCheckin;
