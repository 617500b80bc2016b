// Deno with an `npm:` specifier (resolved from node_modules: deno.json sets
// nodeModulesDir "manual"); otherwise as main.mjs.
import { report } from "./report.mjs";

const started = performance.now();
const dock = await import("npm:@dock-verify/client");
await report(dock, performance.now() - started);
