// The protocol editor: add, remove and reorder steps; show "hours after" or "day at time"
// fields; preview a sample session's plan from POST /api/protocol/preview (the server plans
// it with the code real sessions use: nothing about timing is computed here).
(function () {
  "use strict";
  const list = document.getElementById("steps");
  const template = document.getElementById("step-template");
  const preview = document.getElementById("preview");
  const status = document.getElementById("preview-status");
  const options = document.getElementById("preview-form");
  if (!list || !preview) return;
  const editable = Boolean(document.getElementById("protocol-form"));

  function renumber() {
    // Keep every id unique and every label pointing at its own field.
    list.querySelectorAll("li.step").forEach((li, i) => {
      li.querySelectorAll("[id]").forEach((el) => {
        const old = el.id;
        el.id = old.replace(/-\d+$/, "-" + i);
        const label = li.querySelector('label[for="' + old + '"]');
        if (label) label.htmlFor = el.id;
      });
      const up = li.querySelector("button.up");
      const down = li.querySelector("button.down");
      if (up) up.disabled = i === 0;
      if (down) down.disabled = i === list.children.length - 1;
    });
  }

  function showTiming(li) {
    const byDay = li.querySelector("select.timing").value === "day";
    li.querySelectorAll(".after").forEach((el) => (el.hidden = byDay));
    li.querySelectorAll(".on-day").forEach((el) => (el.hidden = !byDay));
  }

  function value(li, name) {
    const el = li.querySelector('[name="' + name + '"]');
    return el ? el.value.trim() : "";
  }

  function number(text) {
    return text === "" || Number.isNaN(Number(text)) ? text : Number(text);
  }

  function stepsFromPage() {
    return Array.from(list.querySelectorAll("li.step")).map((li, i) => {
      const at =
        value(li, "timing") === "day"
          ? { day: number(value(li, "day")), time: value(li, "time") }
          : { offset_hours: number(value(li, "offset_hours") || "0") };
      // With its Spanish, if written: the preview shows the chosen language's titles.
      const texts = (english, name) => {
        const spanish = value(li, name + "_es");
        return spanish ? { en: english, es: spanish } : english;
      };
      const step = {
        key: value(li, "key") || "new-step-" + (i + 1),
        kind: value(li, "kind"),
        title: texts(value(li, "title") || "(untitled)", "title"),
        body: texts(value(li, "body"), "body"),
        at: at,
      };
      if (value(li, "valid_hours") !== "") step.valid_hours = number(value(li, "valid_hours"));
      li.dataset.previewKey = step.key;
      return step;
    });
  }

  function item(row) {
    const li = document.createElement("li");
    li.className = "kind-" + row.kind + (row.status === "pending" ? "" : " skipped");
    const at = document.createElement("span");
    at.className = "at";
    at.textContent = "Day " + row.day + " · " + row.local;
    const title = document.createElement("strong");
    title.textContent = row.title;
    const note = document.createElement("span");
    note.className = "muted";
    let words = row.when;
    if (row.moved_from) words += "; moved from " + row.moved_from;
    if (row.skip_reason) words += "; skipped: " + row.skip_reason;
    note.textContent = "(" + words + ")";
    li.append(at, " ", title, " ", note);
    return li;
  }

  let saved = null;
  async function savedSteps() {
    if (!saved) {
      const response = await fetch("/api/protocol", { credentials: "same-origin" });
      saved = (await response.json()).steps.map((step) => {
        const copy = { ...step };
        delete copy.when; // GET adds it; the preview takes steps as PUT does
        return copy;
      });
    }
    return saved;
  }

  let timer = null;
  let asked = 0;
  async function refresh() {
    const body = {};
    const form = new FormData(options);
    const zone = String(form.get("timezone") || "").trim();
    if (zone) body.timezone = zone;
    const start = String(form.get("performed_at") || "");
    const qs = String(form.get("quiet_start") || "");
    const qe = String(form.get("quiet_end") || "");
    if (qs && qe) {
      body.quiet_start = qs;
      body.quiet_end = qe;
    }
    const language = String(form.get("language") || "");
    if (language) body.language = language;
    const ask = ++asked;
    status.textContent = "Updating the preview…";
    try {
      // Someone who cannot edit previews the saved protocol as it is.
      body.steps = editable ? stepsFromPage() : await savedSteps();
      // The session's wall time in the chosen zone: the server reads it there.
      if (start) body.performed_at = offsetFor(start, zone);
      const response = await fetch("/api/protocol/preview", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      const data = await response.json();
      if (ask !== asked) return; // a newer edit is on its way
      if (!response.ok) {
        const fields = (data.error && data.error.fields) || {};
        const first = Object.entries(fields)[0];
        status.textContent =
          "The preview waits for a fix: " +
          (first ? first[0].replace(/^steps\[(\d+)\]\.?/, (m, n) => "step " + (Number(n) + 1) + " ") + " " + first[1] : data.error.message);
        return;
      }
      preview.replaceChildren(...data.plan.map(item));
      const words = new Map(data.plan.map((row) => [row.key, row.when]));
      list.querySelectorAll("li.step").forEach((li) => {
        // The step's summary (what shows while it is folded) and its fieldset's legend.
        if (!words.has(li.dataset.previewKey)) return;
        li.querySelectorAll(".when").forEach((when) => (when.textContent = words.get(li.dataset.previewKey)));
      });
      status.textContent =
        "Planned for a session on " + data.performed_at.slice(0, 16).replace("T", " ") + " in " + data.timezone + ", quiet hours " + data.quiet_start + "–" + data.quiet_end + ".";
    } catch (error) {
      status.textContent = "The preview could not be updated (" + error.message + ").";
    }
  }

  // A datetime-local value has no zone: give it the chosen zone's UTC offset at about that
  // time (Intl, the browser's tz database), so the server reads the wall time in that zone.
  function offsetFor(local, zone) {
    const guess = new Date(local + ":00Z");
    let offset = 0;
    try {
      const parts = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone || undefined,
        timeZoneName: "longOffset",
      }).formatToParts(guess);
      const name = (parts.find((p) => p.type === "timeZoneName") || {}).value || "GMT";
      const m = /GMT([+-])(\d\d):(\d\d)/.exec(name);
      if (m) offset = (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
    } catch {
      offset = 0; // an unknown zone: the server names the problem
    }
    const sign = offset < 0 ? "-" : "+";
    const abs = Math.abs(offset);
    return local + ":00" + sign + String(Math.floor(abs / 60)).padStart(2, "0") + ":" + String(abs % 60).padStart(2, "0");
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }

  // A folded step shows its kind and title: keep them as typed.
  function relabel(li) {
    const kind = li.querySelector('select[name="kind"]');
    const summaryKind = li.querySelector("summary .kind");
    if (kind && summaryKind) summaryKind.textContent = kind.selectedOptions[0].textContent;
    const title = value(li, "title");
    li.querySelectorAll(".name").forEach((name) => (name.textContent = title || (name.closest("summary") ? "" : "untitled")));
  }

  function wire(li) {
    const timing = li.querySelector("select.timing");
    if (!timing) return; // a read-only list
    timing.addEventListener("change", () => showTiming(li));
    const tools = li.querySelector(".step-tools");
    if (!editable || !tools) return;
    tools.hidden = false;
    tools.querySelector(".remove").addEventListener("click", () => {
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      renumber();
      later();
      // The next step's title if it is open, else its summary (a folded field takes no focus).
      if (next) (next.querySelector("details[open] input.title") || next.querySelector("summary")).focus();
    });
    tools.querySelector(".up").addEventListener("click", (event) => {
      if (li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
      renumber();
      later();
      event.currentTarget.focus();
    });
    tools.querySelector(".down").addEventListener("click", (event) => {
      if (li.nextElementSibling) list.insertBefore(li.nextElementSibling, li);
      renumber();
      later();
      event.currentTarget.focus();
    });
  }

  list.querySelectorAll("li.step").forEach(wire);
  renumber();
  list.addEventListener("input", later);
  list.addEventListener("change", later);
  list.addEventListener("input", (event) => {
    const li = event.target.closest("li.step");
    if (li) relabel(li);
  });
  options.addEventListener("input", later);
  options.addEventListener("change", later);
  options.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });

  const add = document.getElementById("add-step");
  if (add && editable && template) {
    add.hidden = false;
    add.addEventListener("click", () => {
      const li = template.content.querySelector("li.step").cloneNode(true);
      list.append(li);
      wire(li);
      renumber();
      li.querySelector("input.title").focus();
      later();
    });
  }
})();
