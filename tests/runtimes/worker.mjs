// workerd: a Worker whose fetch handler runs e2e.mjs with the JSON body's
// parameters and answers `{ok, steps | error}`. Bundled by bundle.mjs with
// the conditions wrangler uses, so the package's workerd entry is the one tested.
import * as dock from "@dock-verify/client";
import { run } from "./e2e.mjs";

export default {
  async fetch(request) {
    const params = await request.json();
    try {
      return Response.json({ ok: true, steps: await run(dock, params) });
    } catch (e) {
      return Response.json({ ok: false, error: String(e?.stack ?? e) });
    }
  },
};
