// End to end against a live Dock server (run by bindings/test.sh only when
// DOCK_TEST_BASE_URL and DOCK_TEST_ADMIN_TOKEN are set). Uses the installed
// tarball. Optional: DOCK_TEST_SESSION_TTL, the server's session_ttl_seconds
// (checked against what the server says; the expiry test needs it short);
// DOCK_TEST_RESTART_CMD, a shell command that restarts the server at the same
// URL keeping its store (Redis) — without it the restart test is reported as
// skipped, with the reason.

import { test, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  DockApiError,
  DockClient,
  SessionCancelledError,
  SessionExpiredError,
  DockValidationError,
} from "@dock-verify/client";

const BASE_URL = process.env.DOCK_TEST_BASE_URL;
const ADMIN_TOKEN = process.env.DOCK_TEST_ADMIN_TOKEN;
const TTL_ENV = process.env.DOCK_TEST_SESSION_TTL;
const RESTART_CMD = process.env.DOCK_TEST_RESTART_CMD;
/** Longest TTL the expiry test will wait out. */
const MAX_EXPIRY_WAIT_SECS = 60;

if (!BASE_URL || !ADMIN_TOKEN) {
  throw new Error("e2e tests need DOCK_TEST_BASE_URL and DOCK_TEST_ADMIN_TOKEN (bindings/test.sh runs this file only when both are set)");
}

const suffix = randomBytes(6).toString("hex");
const PID = `npm-e2e-${suffix}`;
let client;
let apiKey;
let n = 0;
const nextClientId = (what) => `npm-${what}-${suffix}-${++n}`;
/** Distinct 18-digit ids per run, so link assertions are about this run. */
const snowflake = () => BigInt(`0x${randomBytes(7).toString("hex")}`).toString().padStart(17, "1").slice(0, 18);

async function admin(method, path, body) {
  const res = await fetch(BASE_URL.replace(/\/+$/, "") + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin ${method} ${path} → ${res.status}: ${text}`);
  return JSON.parse(text).data;
}

const complete = (sid, discordId, robloxId) => admin("POST", `/api/v1/admin/sessions/${sid}/complete`, { discordId, robloxId });

/**
 * A client whose fetch reports when a wait on `sid` is in place: for SSE when
 * the stream's headers arrived (the server holds it), for long-poll when the
 * request went out (its answer only comes at the end).
 */
function connectedClient(sid, transport) {
  let resolve;
  const connected = new Promise((r) => (resolve = r));
  const c = new DockClient({
    apiKey,
    baseUrl: BASE_URL,
    fetch: async (url, init) => {
      const mine = url.includes(sid);
      if (mine && transport === "long-poll") resolve();
      const res = await fetch(url, init);
      if (mine) resolve();
      return res;
    },
  });
  return { client: c, connected };
}

before(async () => {
  await admin("POST", "/api/v1/admin/pids", { pid: PID, name: `npm e2e ${suffix}` });
  apiKey = (await admin("POST", `/api/v1/admin/pids/${PID}/keys`)).key;
  assert.match(apiKey, /^dock_/);
  client = new DockClient({ apiKey, baseUrl: BASE_URL });
});

for (const transport of ["sse", "long-poll", "auto"]) {
  test(`create → wait over ${transport} → complete through the admin API → result`, async () => {
    const clientId = nextClientId(transport);
    const created = await client.createSession({ pid: PID, clientId, guildId: "g1" });
    assert.equal(created.pid, PID);
    assert.equal(created.clientId, clientId);
    assert.equal(created.reusedExisting, false);
    assert.match(created.sid, /^vsn_[0-9A-Za-z]{22}$/);
    assert.ok(created.verifyUrl.includes(created.sid));
    assert.equal(typeof created.verifyRequestsRemaining, "number");

    const { client: waiter, connected } = connectedClient(created.sid, transport);
    const waiting = waiter.waitForCompletion(created.sid, { transport, timeoutMs: 30_000 });
    waiting.catch(() => {}); // an early rejection is reported by the `await` below
    await connected; // complete now, while it waits
    const [discordId, robloxId] = [snowflake(), snowflake()];
    await complete(created.sid, discordId, robloxId);
    const done = await waiting;
    assert.equal(done.status, "completed");
    assert.equal(done.sid, created.sid);
    assert.equal(done.clientId, clientId);
    assert.equal(done.guildId, "g1");
    assert.deepEqual(done.result, { discordId, robloxId, linkChanged: false, previousRobloxId: null });
    assert.deepEqual(await client.getSession(created.sid), done);

    assert.deepEqual(await client.discordToRoblox(discordId), { discordId, robloxId });
    assert.deepEqual(await client.robloxToDiscord(robloxId), { robloxId, discordIds: [discordId] });
  });
}

test("watch yields pending, then complete, each once", async () => {
  const created = await client.createSession({ pid: PID, clientId: nextClientId("watch") });
  const events = [];
  for await (const ev of client.watch(created.sid, { timeoutMs: 30_000 })) {
    events.push([ev.event, ev.id, ev.session.status]);
    if (ev.event === "pending") await complete(created.sid, snowflake(), snowflake());
  }
  assert.deepEqual(events, [["pending", "1", "pending"], ["complete", "2", "completed"]]);
});

test("a second create for the same user reuses the active session and counts against the quota", async () => {
  const clientId = nextClientId("reuse");
  const a = await client.createSession({ pid: PID, clientId });
  const b = await client.createSession({ pid: PID, clientId });
  assert.equal(b.sid, a.sid);
  assert.equal(b.reusedExisting, true);
  assert.ok(b.verifyRequestsRemaining < a.verifyRequestsRemaining);
});

test("cancel: a waiting client gets SessionCancelledError; cancelling again is a 409", async () => {
  for (const transport of ["sse", "long-poll"]) {
    const created = await client.createSession({ pid: PID, clientId: nextClientId(`cancel-${transport}`) });
    const { client: waiter, connected } = connectedClient(created.sid, transport);
    const waiting = waiter.waitForCompletion(created.sid, { transport, timeoutMs: 30_000 });
    await connected;
    // Attach the expectation now: the wait may reject before cancelSession resolves.
    const rejected = assert.rejects(waiting, (e) => {
      assert.ok(e instanceof SessionCancelledError, `${transport}: ${e?.name}: ${e?.message}`);
      assert.equal(e.sid, created.sid);
      assert.equal(e.session.status, "cancelled");
      return true;
    });
    const cancelled = await client.cancelSession(created.sid);
    assert.equal(cancelled.status, "cancelled");
    await rejected;
    await assert.rejects(client.cancelSession(created.sid), (e) => e instanceof DockApiError && e.status === 409 && e.code === "session_cancelled");
  }
});

test("expiry: a waiting client gets SessionExpiredError at expiresAt", async () => {
  const created = await client.createSession({ pid: PID, clientId: nextClientId("expiry") });
  const now = Date.now();
  const ttlSecs = Math.round((Date.parse(created.expiresAt) - now) / 1000);
  if (TTL_ENV !== undefined) {
    assert.ok(Math.abs(ttlSecs - Number(TTL_ENV)) <= 2, `DOCK_TEST_SESSION_TTL=${TTL_ENV} but the server's session expires in ${ttlSecs}s`);
  }
  assert.ok(
    ttlSecs <= MAX_EXPIRY_WAIT_SECS,
    `the expiry test needs a short session TTL: this server's sessions live ${ttlSecs}s (> ${MAX_EXPIRY_WAIT_SECS}s). ` +
      "Start it with a small session_ttl_seconds and pass it as DOCK_TEST_SESSION_TTL.",
  );
  const limit = (ttlSecs + 15) * 1000;
  const expectExpired = (name, p) =>
    assert.rejects(p, (e) => {
      assert.ok(e instanceof SessionExpiredError, `${name}: ${e?.name}: ${e?.message}`);
      assert.equal(e.session.status, "expired");
      assert.equal(e.session.result, null);
      return true;
    });
  await Promise.all([
    expectExpired("sse", client.waitForCompletion(created.sid, { transport: "sse", timeoutMs: limit })),
    expectExpired("long-poll", client.waitForCompletion(created.sid, { transport: "long-poll", timeoutMs: limit })),
  ]);
  assert.ok(Date.now() >= Date.parse(created.expiresAt) - 1000, "expired no earlier than expiresAt");
  // A completion after expiry is refused by the server.
  await assert.rejects(complete(created.sid, snowflake(), snowflake()), /409/);
});

test("abort: a waiting client stops at once with the signal's reason", async () => {
  for (const transport of ["sse", "long-poll"]) {
    const created = await client.createSession({ pid: PID, clientId: nextClientId(`abort-${transport}`) });
    const ac = new AbortController();
    const { client: waiter, connected } = connectedClient(created.sid, transport);
    const waiting = waiter.waitForCompletion(created.sid, { transport, signal: ac.signal });
    await connected;
    const t0 = Date.now();
    ac.abort();
    await assert.rejects(waiting, (e) => e.name === "AbortError");
    assert.ok(Date.now() - t0 < 1000, `${transport}: abort took ${Date.now() - t0} ms`);
    // The session is untouched and still pending.
    assert.equal((await client.getSession(created.sid)).status, "pending");
    await client.cancelSession(created.sid);
  }
});

test("errors from the live server map to typed errors", async () => {
  await assert.rejects(client.getSession("vsn_0000000000000000000000"), (e) => e instanceof DockApiError && e.status === 404 && e.code === "session_not_found");
  const stranger = new DockClient({ apiKey: "dock_" + "x".repeat(44), baseUrl: BASE_URL });
  await assert.rejects(stranger.getSession("vsn_0000000000000000000000"), (e) => e instanceof DockApiError && e.status === 401 && e.code === "unauthorized");
  await assert.rejects(client.createSession({ pid: PID, clientId: "" }), DockValidationError);
});

/** Polls `fn` until it resolves truthy, up to `ms`. */
async function eventually(ms, what, fn) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

test(
  "the server restarts while a client waits: the client resumes and still gets the result",
  { skip: RESTART_CMD ? false : "DOCK_TEST_RESTART_CMD is not set (a command restarting the server at the same URL, keeping its Redis store)" },
  async () => {
    const created = await client.createSession({ pid: PID, clientId: nextClientId("restart") });
    const { client: waiter, connected } = connectedClient(created.sid, "sse");
    const waiting = waiter.waitForCompletion(created.sid, {
      transport: "auto",
      timeoutMs: 180_000,
      retry: { maxDelayMs: 1000, maxAttempts: 0 },
    });
    waiting.catch(() => {}); // an early rejection is reported by the `await` below
    await connected;
    const restartStarted = Date.now();
    const child = spawn(RESTART_CMD, { shell: true, stdio: "inherit" });
    const [code] = await once(child, "exit");
    assert.equal(code, 0, `DOCK_TEST_RESTART_CMD exited with ${code}`);
    await eventually(120_000, "the restarted server's /healthz", async () => (await fetch(BASE_URL.replace(/\/+$/, "") + "/healthz")).ok);
    const restartSecs = (Date.now() - restartStarted) / 1000;
    const [discordId, robloxId] = [snowflake(), snowflake()];
    let done;
    try {
      await complete(created.sid, discordId, robloxId);
      done = await waiting;
    } catch (e) {
      if (Date.now() >= Date.parse(created.expiresAt)) {
        throw new Error(
          `the session expired during the restart (restart took ${restartSecs.toFixed(1)}s, session expired at ${created.expiresAt}): ` +
            "restart faster (e.g. SIGKILL instead of a graceful shutdown that waits for open streams) or use a longer session TTL",
          { cause: e },
        );
      }
      throw e;
    }
    assert.equal(done.sid, created.sid);
    assert.equal(done.result.robloxId, robloxId);
  },
);

test("the README's integration example works as written against this server", async () => {
  const { createRequire } = await import("node:module");
  const { readFile } = await import("node:fs/promises");
  const net = await import("node:net");
  const require = createRequire(import.meta.url);
  const readme = await readFile(require.resolve("@dock-verify/client/package.json").replace(/package\.json$/, "README.md"), "utf8");
  const block = /## Integration example[^\n]*\n+```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "the README has an Integration example js block");
  // A free port for the example's server.
  const probe = net.createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = probe.address().port;
  probe.close();
  await once(probe, "close");
  const code = block[1]
    .replace('"https://api.example.com"', JSON.stringify(BASE_URL))
    .replace('"pid-yourapp"', JSON.stringify(PID))
    .replace(".listen(3000)", `.listen(${port}, "127.0.0.1")`);
  assert.notEqual(code, block[1]);
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], {
    env: { ...process.env, DOCK_API_KEY: apiKey },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  try {
    const user = nextClientId("readme");
    let res;
    await eventually(10_000, "the example's server", async () => {
      res = await fetch(`http://127.0.0.1:${port}/?user=${user}`, { redirect: "manual" });
      return true;
    });
    assert.equal(res.status, 302, out);
    const sid = new URL(res.headers.get("location")).searchParams.get("sid");
    assert.match(sid, /^vsn_/);
    const robloxId = snowflake();
    await complete(sid, snowflake(), robloxId);
    await eventually(10_000, "the example to log the result", () => out.includes(`${user} is Roblox user ${robloxId}`));
  } catch (e) {
    throw new Error(`${e.message}\nthe example's output: ${out}`, { cause: e });
  } finally {
    child.kill();
  }
});

test("webhook: a completion is POSTed to the PID's webhook, signed, and verifyWebhook accepts it", async (t) => {
  const port = Number(process.env.DOCK_TEST_WEBHOOK_PORT);
  if (!port) {
    t.skip("DOCK_TEST_WEBHOOK_PORT not set (the server must allow http://127.0.0.1:<port> as a webhook origin)");
    return;
  }
  const { createServer } = await import("node:http");
  const deliveries = [];
  let arrived;
  const got = new Promise((r) => (arrived = r));
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      deliveries.push({ body: Buffer.concat(chunks), signature: req.headers["dock-signature"] });
      res.end("ok");
      arrived();
    });
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  try {
    const hook = await admin("PUT", `/api/v1/admin/pids/${PID}/webhook`, {
      url: `http://127.0.0.1:${port}/dock`,
      events: ["session.completed"],
    });
    assert.match(hook.secret, /^whsec_/);
    const created = await client.createSession({ pid: PID, clientId: nextClientId("webhook") });
    const [discordId, robloxId] = [snowflake(), snowflake()];
    await complete(created.sid, discordId, robloxId);
    await got;
    const { verifyWebhook, DockSignatureError } = await import("@dock-verify/client");
    const event = verifyWebhook(deliveries[0].body, deliveries[0].signature, hook.secret);
    assert.equal(event.type, "session.completed");
    assert.deepEqual(event.data, await client.getSession(created.sid));
    assert.throws(() => verifyWebhook(deliveries[0].body, deliveries[0].signature, "whsec_not-it"), DockSignatureError);
  } finally {
    server.close();
    await admin("DELETE", `/api/v1/admin/pids/${PID}/webhook`).catch(() => {});
  }
});

test("listSessions pages through a user's sessions newest first; returnUrl is kept in the view", async () => {
  const clientId = nextClientId("list");
  await admin("PATCH", `/api/v1/admin/pids/${PID}`, { returnOrigins: ["https://app.example"] });
  const made = [];
  for (const guildId of ["g1", "g2", "g3"]) {
    made.push((await client.createSession({ pid: PID, clientId, guildId, returnUrl: "https://app.example/done" })).sid);
  }
  const pages = [];
  for await (const page of client.listSessions({ clientId, limit: 2 })) pages.push(page);
  assert.deepEqual(pages.map((p) => p.sessions.length), [2, 1]);
  assert.deepEqual(pages.flatMap((p) => p.sessions.map((s) => s.sid)), made.reverse());
  assert.equal(pages[0].sessions[0].returnUrl, "https://app.example/done");
  await assert.rejects(
    client.createSession({ pid: PID, clientId, returnUrl: "https://evil.example/" }),
    (e) => e instanceof DockApiError && e.status === 400 && e.code === "return_url_not_allowed",
  );
});
