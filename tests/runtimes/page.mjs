// Chromium: the page's module (bundled by bundle.mjs for the browser); runs
// e2e.mjs with the page URL's query as parameters and leaves the outcome in
// `window.dockResult` for browser.mjs.
import { run } from "./e2e.mjs";

const started = performance.now();
const dock = await import("@dock-verify/client");
const importMs = performance.now() - started;
const params = Object.fromEntries(new URLSearchParams(location.search));
try {
  window.dockResult = { ok: true, importMs, steps: await run(dock, params) };
} catch (e) {
  window.dockResult = { ok: false, importMs, error: String(e?.stack ?? e) };
}
