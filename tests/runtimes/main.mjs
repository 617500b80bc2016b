// Node, Bun and Deno: imports the installed package by its bare name (from
// node_modules), times the import, runs e2e.mjs, prints `DOCK_RESULT <json>`.
// Env: DOCK_BASE_URL, DOCK_API_KEY, DOCK_ADMIN_TOKEN, DOCK_PID.
import { report } from "./report.mjs";

const started = performance.now();
const dock = await import("@dock-verify/client");
await report(dock, performance.now() - started);
