// Shared by the command-line runners: runs the script and prints one line.
import { run } from "./e2e.mjs";

export async function report(dock, importMs) {
  const env = (k) => {
    const v = globalThis.process?.env?.[k] ?? globalThis.Deno?.env.get(k);
    if (!v) throw new Error(`${k} is not set`);
    return v;
  };
  const params = { baseUrl: env("DOCK_BASE_URL"), apiKey: env("DOCK_API_KEY"), adminToken: env("DOCK_ADMIN_TOKEN"), pid: env("DOCK_PID") };
  let out;
  try {
    out = { ok: true, importMs, steps: await run(dock, params) };
  } catch (e) {
    out = { ok: false, importMs, error: String(e?.stack ?? e) };
  }
  console.log(`DOCK_RESULT ${JSON.stringify(out)}`);
  globalThis.process?.exit?.(out.ok ? 0 : 1);
}
