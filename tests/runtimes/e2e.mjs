// The npm package's end-to-end script, the same under every runtime (Node,
// Bun, Deno, workerd, Chromium): only web APIs (fetch, AbortController,
// crypto.getRandomValues), the package passed in as `dock`.
//
// It talks to `baseUrl`, a fault proxy (proxy.mjs) in front of dock-host:
// - the first `discord-to-roblox` lookup of each id answers 503 (then it forwards);
// - `POST /__fault/no-stream/<sid>` makes the stream endpoint answer that
//   session with JSON, not a stream (so `auto` must fall back to long-poll).
// Completions go through the admin API. Every wait is on a condition; the
// runner bounds the whole script with its own deadline.

/** Runs every scenario; resolves with what each saw, rejects on the first failure. */
export async function run(dock, { baseUrl, apiKey, adminToken, pid }) {
  const base = baseUrl.replace(/\/+$/, "");
  const steps = [];
  const check = (cond, what) => {
    if (!cond) throw new Error(`check failed: ${what}`);
  };
  const digits = () => {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    return "1" + [...b].map((x) => String(x % 10)).join("") + String(Date.now() % 1e9).padStart(9, "0");
  };
  const suffix = digits().slice(-10);
  let n = 0;
  const clientId = (what) => `rt-${what}-${suffix}-${++n}`;
  const complete = async (sid, discordId, robloxId) => {
    const res = await fetch(`${base}/api/v1/admin/sessions/${sid}/complete`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ discordId, robloxId }),
    });
    const text = await res.text();
    check(res.status === 200, `admin complete → ${res.status} ${text}`);
  };

  const client = new dock.DockClient({ apiKey, baseUrl: base, userAgent: "dock-runtime-e2e" });

  // 1. create → SSE wait → completed (complete once the stream has said "pending").
  {
    const created = await client.createSession({ pid, clientId: clientId("sse") });
    check(created.sid.startsWith("vsn_") && created.reusedExisting === false, "created a fresh session");
    const [discordId, robloxId] = [digits(), digits()];
    const seen = [];
    for await (const ev of client.watch(created.sid, { transport: "sse", timeoutMs: 60_000 })) {
      seen.push(`${ev.event}#${ev.id}`);
      if (ev.event === "pending") await complete(created.sid, discordId, robloxId);
      if (ev.event === "complete") {
        check(ev.session.result.discordId === discordId && ev.session.result.robloxId === robloxId, "the result");
      }
    }
    check(seen.join(",") === "pending#1,complete#2", `SSE states: ${seen}`);
    const done = await client.waitForCompletion(created.sid, { transport: "sse", timeoutMs: 30_000 });
    check(done.status === "completed" && done.result.linkChanged === false, "waitForCompletion on a finished session");
    steps.push({ step: "sse", states: seen });

    // 4. a plain call: 503 (the proxy), retried, then the real answer.
    const link = await client.discordToRoblox(discordId);
    check(link.robloxId === robloxId, `lookup after a 503: ${JSON.stringify(link)}`);
    const faults = await (await fetch(`${base}/__fault/count/${discordId}`)).json();
    check(faults.served503 === 1 && faults.forwarded === 1, `the proxy saw ${JSON.stringify(faults)}`);
    steps.push({ step: "retry-503", ...faults });
  }

  // 2. auto falls back to long-poll when the stream endpoint is no stream.
  {
    const created = await client.createSession({ pid, clientId: clientId("lp") });
    const r = await fetch(`${base}/__fault/no-stream/${created.sid}`, { method: "POST" });
    check(r.status === 204, `fault setup → ${r.status}`);
    const [discordId, robloxId] = [digits(), digits()];
    let polls = 0;
    const polling = new dock.DockClient({
      apiKey,
      baseUrl: base,
      retry: { initialDelayMs: 50, maxDelayMs: 200 },
      fetch: (url, init) => {
        // A long-poll is on its way: complete the session while it waits.
        if (url.includes("?wait=") && ++polls === 1) setTimeout(() => complete(created.sid, discordId, robloxId).catch(() => {}), 0);
        return fetch(url, init);
      },
    });
    const done = await polling.waitForCompletion(created.sid, { transport: "auto", timeoutMs: 60_000 });
    check(done.status === "completed" && done.result.robloxId === robloxId, "long-poll fallback result");
    check(polls >= 1, "it long-polled");
    steps.push({ step: "long-poll-fallback", polls });
  }

  // 3. abort: a wait on a pending session rejects with the signal's reason.
  {
    const created = await client.createSession({ pid, clientId: clientId("abort") });
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    let rejected;
    try {
      for await (const ev of client.watch(created.sid, { transport: "sse", signal: controller.signal })) {
        if (ev.event === "pending") controller.abort(reason);
      }
    } catch (e) {
      rejected = e;
    }
    check(rejected === reason, `abort rejects with the reason (got ${rejected})`);
    const view = await client.cancelSession(created.sid);
    check(view.status === "cancelled", "cancelled after the abort");
    let cancelledError;
    try {
      await client.waitForCompletion(created.sid, { timeoutMs: 30_000 });
    } catch (e) {
      cancelledError = e;
    }
    check(cancelledError instanceof dock.SessionCancelledError, `a cancelled session rejects with SessionCancelledError (${cancelledError})`);
    steps.push({ step: "abort" });
  }

  // 5. errors are the package's classes, with the server's request id.
  {
    let e;
    try {
      await client.getSession("vsn_AAAAAAAAAAAAAAAAAAAAAA");
    } catch (err) {
      e = err;
    }
    check(e instanceof dock.DockApiError && e.status === 404 && typeof e.requestId === "string" && e.requestId.length > 0,
      `404 as DockApiError with a request id (${e} ${e?.requestId})`);
    steps.push({ step: "api-error", requestId: e.requestId });
  }
  return steps;
}
