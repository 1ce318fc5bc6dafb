// The queue updates in place: it polls a small summary (counts and a version, no personal
// data) and, only when the version moves, fetches this same page and patches the rows.
// Rows are patched, never re-rendered wholesale, so a note being typed (and its focus and
// cursor) survives every update; a row that left the queue while someone typed in it stays,
// marked, until they are done with it.
(function () {
  "use strict";

  const POLL_MS = 15000;
  const list = document.getElementById("recoveries");
  if (!list) return;
  const live = document.getElementById("queue-live");
  const empty = document.getElementById("queue-empty");
  let version = list.dataset.version;
  const quiet = live.textContent;
  let busy = false;
  let failing = false;

  function waited(since) {
    const minutes = Math.floor((Date.now() - Date.parse(since)) / 60000);
    if (!(minutes >= 1)) return "under a minute";
    if (minutes < 60) return `${minutes} min`;
    if (minutes < 2880) return `${Math.floor(minutes / 60)} h`;
    return `${Math.floor(minutes / 1440)} days`;
  }

  function tickWaits() {
    for (const span of list.querySelectorAll("[data-since]")) {
      const text = waited(span.dataset.since);
      if (span.textContent !== text) span.textContent = text;
    }
  }

  /** True when the person is working in this row: typing a note or focused in it. */
  function inUse(row) {
    const note = row.querySelector("textarea");
    return row.contains(document.activeElement) || Boolean(note && note.value.trim());
  }

  /** Bring an existing row up to date from its fresh copy, leaving the note's textarea alone. */
  function patch(row, fresh) {
    row.className = fresh.className;
    row.dataset.sessionId = fresh.dataset.sessionId;
    row.querySelector(".rec-summary").replaceWith(fresh.querySelector(".rec-summary"));
    const quick = row.querySelector(".quick");
    const freshQuick = fresh.querySelector(".quick");
    if (quick && freshQuick && !quick.contains(document.activeElement)) quick.replaceWith(freshQuick);
    const ids = row.querySelector("form.resolve .ids");
    const freshIds = fresh.querySelector("form.resolve .ids");
    if (ids && freshIds) ids.replaceWith(freshIds);
    row.querySelector(".gone-note")?.remove();
  }

  function markGone(row) {
    if (row.classList.contains("gone")) return;
    row.classList.add("gone");
    const note = document.createElement("p");
    note.className = "gone-note";
    note.textContent =
      "This recovery has left the list (a colleague may have resolved it). Your note is still here.";
    row.querySelector(".rec-summary").prepend(note);
  }

  function apply(doc) {
    const freshList = doc.getElementById("recoveries");
    if (!freshList) return false;
    const fresh = [...freshList.children];
    const rows = new Map([...list.children].map((row) => [row.dataset.key, row]));
    let previous = null;
    for (const freshRow of fresh) {
      let row = rows.get(freshRow.dataset.key);
      if (row) {
        patch(row, freshRow);
        rows.delete(freshRow.dataset.key);
      } else {
        row = document.importNode(freshRow, true);
      }
      // Keep the server's order, but never move the row someone is working in.
      const wanted = previous ? previous.nextElementSibling : list.firstElementChild;
      if (row !== wanted && !inUse(row)) list.insertBefore(row, wanted);
      else if (!row.parentNode) list.append(row);
      previous = row;
    }
    for (const row of rows.values()) {
      if (inUse(row)) markGone(row);
      else row.remove();
    }
    const counts = doc.getElementById("queue-counts");
    if (counts) document.getElementById("queue-counts").innerHTML = counts.innerHTML;
    const freshEmpty = doc.getElementById("queue-empty");
    if (empty && freshEmpty) empty.hidden = list.children.length > 0;
    const badge = doc.querySelector("nav .badge");
    const mine = document.querySelector("nav .badge");
    if (badge && mine) {
      mine.textContent = badge.textContent;
      mine.setAttribute("aria-label", badge.getAttribute("aria-label"));
      mine.hidden = badge.hidden; // a red 0 says nothing: shown from the first flag
    }
    if (doc.title && doc.title !== document.title) {
      document.title = doc.title;
      live.textContent = `Updated: ${doc.title.replace(/ · Companion$/, "")}.`;
    }
    version = freshList.dataset.version;
    list.dataset.version = version;
    return true;
  }

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const summary = await fetch("/api/queue/summary", {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (summary.status === 401 || summary.status === 403) {
        failing = true;
        live.textContent = "You are signed out: sign in again to see new recoveries.";
        return;
      }
      if (!summary.ok) return;
      if (failing) live.textContent = quiet;
      failing = false;
      const { version: latest } = await summary.json();
      if (latest === version) return;
      const page = await fetch(window.location.href, { credentials: "same-origin" });
      if (!page.ok || page.redirected) return;
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      apply(doc);
    } catch {
      // Offline or the server restarting: try again at the next tick.
      failing = true;
      live.textContent = "Cannot reach the server; retrying. What you type is kept.";
    } finally {
      busy = false;
      tickWaits();
    }
  }

  /** Show the messages the server flashed on `doc` where a reload would have put them. */
  function showNotices(doc) {
    const main = document.getElementById("main");
    for (const old of main.querySelectorAll(":scope > p.notice")) old.remove();
    const fresh = [...doc.querySelectorAll("#main > p.notice")].map((n) => document.importNode(n, true));
    main.prepend(...fresh);
  }

  // A row's actions are sent without leaving the page, so a note typed in another row (or
  // in this one, if resolving fails) is never wiped by the reload a form post would cause.
  // Without this script the forms post and redirect back as plain HTML forms.
  list.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.action.includes("/clinic/recoveries/")) return;
    event.preventDefault();
    const row = form.closest("li.recovery");
    const body = new FormData(form);
    body.set("back", window.location.pathname + window.location.search);
    const buttons = [...form.querySelectorAll("button")];
    for (const button of buttons) button.disabled = true;
    busy = true;
    try {
      const response = await fetch(form.action, { method: "POST", body, credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      if (!doc.getElementById("recoveries")) throw new Error("not the queue");
      const stays = doc.querySelector(`#recoveries > li[data-key="${CSS.escape(row.dataset.key)}"]`);
      const failed = doc.querySelector("#main > p.notice.error");
      // Resolved: its note was sent, the row may go. Refused (say a colleague resolved it first):
      // the note stays, and so does the row, marked, until the person is done with it.
      if (form.classList.contains("resolve") && !stays && !failed) {
        form.querySelector("textarea").value = "";
      }
      document.activeElement?.blur();
      apply(doc);
      showNotices(doc);
      if (row.isConnected) row.querySelector(".quick button, textarea")?.focus();
      else document.getElementById("main").focus();
    } catch {
      form.submit(); // the plain post: the server's own answer, whatever went wrong here
    } finally {
      for (const button of buttons) button.disabled = false;
      busy = false;
    }
  });

  setInterval(refresh, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
})();
