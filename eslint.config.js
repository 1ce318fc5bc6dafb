// ESLint flat config: the recommended rules over our hand-written JS, no build step.
// `npx eslint .` runs in scripts/test. CommonJS because package.json has no "type".
const js = require("@eslint/js");
const globals = require("globals");

// The pages and the worker are classic scripts; node:test loads the two shared
// files with require(), behind a `typeof module` guard.
const nodeGuard = { module: "readonly" };
// Declared by outbox.js (loaded first: <script defer> in the pages, importScripts in the worker).
const outbox = { CompanionOutbox: "readonly" };

module.exports = [
  {
    // companion/sw.js is a link to service-worker/sw.js, which is linted.
    ignores: ["companion/sw.js", ".venv/", "instance/", "test-artifacts/", "**/*.egg-info/"],
  },
  js.configs.recommended,
  {
    files: ["companion/static/js/outbox.js"],
    languageOptions: {
      sourceType: "script",
      // Shared with the service worker, so only what both have (plus the node guard).
      globals: { ...globals.browser, ...globals.serviceworker, ...nodeGuard },
    },
  },
  {
    // app.js hands an urgent replayed answer to the check-in page (checkin.js, loaded after it).
    files: ["companion/static/js/app.js"],
    languageOptions: {
      sourceType: "script",
      globals: { ...globals.browser, ...nodeGuard, ...outbox, CompanionCheckin: "readonly" },
    },
  },
  {
    files: ["companion/static/js/checkin.js"],
    languageOptions: {
      sourceType: "script",
      globals: { ...globals.browser, ...nodeGuard, ...outbox, CompanionApp: "readonly" },
    },
  },
  {
    // The queue and the protocol editor (practitioner pages): plain browser scripts.
    files: ["companion/static/js/queue.js", "companion/static/js/protocol.js"],
    languageOptions: { sourceType: "script", globals: { ...globals.browser } },
  },
  {
    files: ["service-worker/sw.js"],
    languageOptions: { sourceType: "script", globals: { ...globals.serviceworker, ...outbox } },
  },
  {
    files: ["service-worker/**/*.test.mjs"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "commonjs", globals: { ...globals.node } },
  },
];
