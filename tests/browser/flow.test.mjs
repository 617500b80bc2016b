// The verification flow at verifyUrl in headless Chromium (Debian's), driven
// by playwright-core. Started by tests/tests/flow_browser.rs, which runs
// dock-host (Redis) and two fake OAuth providers and passes their URLs:
//   DOCK_BASE, DOCK_BASE_SHORT_TTL, DOCK_ADMIN_TOKEN, FAKE_DISCORD, FAKE_ROBLOX, DOCK_ARTIFACTS
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set (run through cargo test -p dock-tests --test flow_browser)`);
  return v;
};
const BASE = env("DOCK_BASE");
const BASE_SHORT = env("DOCK_BASE_SHORT_TTL");
const ADMIN = env("DOCK_ADMIN_TOKEN");
const FAKE_DISCORD = env("FAKE_DISCORD");
const ART = env("DOCK_ARTIFACTS");
mkdirSync(ART, { recursive: true });
const T = 20_000;

async function api(base, path, { method = "GET", key, body } = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

async function tenant(base, pid, name) {
  const p = await api(base, "/api/v1/admin/pids", { method: "POST", key: ADMIN, body: { pid, name } });
  assert.ok(p.status === 200 || p.status === 409, JSON.stringify(p));
  const k = await api(base, `/api/v1/admin/pids/${pid}/keys`, { method: "POST", key: ADMIN, body: {} });
  assert.equal(k.status, 200);
  return k.body.data.key;
}

async function createSession(base, key, pid, clientId) {
  const r = await api(base, "/api/v1/verify/session", { method: "POST", key, body: { pid, clientId } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.data;
}

/** Waits on the session's SSE stream (as an integrator's backend does) for a terminal event. */
async function waitStream(base, key, sid) {
  const res = await fetch(`${base}/api/v1/verify/session/${sid}/stream`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new Error("stream closed before a terminal event");
    buffer += decoder.decode(value, { stream: true });
    let i;
    while ((i = buffer.indexOf("\n\n")) !== -1) {
      const raw = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      const ev = raw.split("\n").find((l) => l.startsWith("event:"));
      const data = raw.split("\n").find((l) => l.startsWith("data:"));
      if (!ev || !data) continue;
      const name = ev.slice(6).trim();
      if (name !== "pending") {
        reader.cancel().catch(() => {});
        return { event: name, data: JSON.parse(data.slice(5).trim()) };
      }
    }
  }
}

async function until(what, fn, timeout = T) {
  const deadline = Date.now() + timeout;
  for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pause));
  }
}

let browser;
let key;
let shot = 0;
const snap = (page, name) => page.screenshot({ path: join(ART, `${String(++shot).padStart(2, "0")}-${name}.png`), fullPage: true });

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  key = await tenant(BASE, "pid-acme", "Acme Bot");
});

after(async () => {
  await browser?.close();
});

/** Opens verifyUrl in a fresh browser context and clicks through both providers. */
async function verifyInBrowser(verifyUrl, discordId, robloxId, label) {
  const context = await browser.newContext({ viewport: { width: 390, height: 760 } });
  const page = await context.newPage();
  const resp = await page.goto(verifyUrl);
  assert.equal(resp.status(), 200);
  const h = resp.headers();
  assert.match(h["content-security-policy"], /default-src 'none'/);
  assert.match(h["content-security-policy"], /style-src 'sha256-/);
  assert.equal(h["cache-control"], "no-store");
  assert.match(await page.textContent("main"), /Acme Bot/);
  await snap(page, `${label}-verify-page`);
  await page.click("text=Continue with Discord");
  await page.waitForURL(`${FAKE_DISCORD}/**`);
  const cookies = await context.cookies(`${BASE}/v1/api/verify/discord/callback`);
  const flow = cookies.find((c) => c.name === "dock_flow");
  assert.ok(flow && flow.httpOnly && flow.sameSite === "Lax", JSON.stringify(cookies));
  await snap(page, `${label}-discord-consent`);
  await page.fill("#user_id", discordId);
  await page.click("#allow");
  await page.waitForURL(`${process.env.FAKE_ROBLOX}/**`);
  await snap(page, `${label}-roblox-consent`);
  await page.fill("#user_id", robloxId);
  await page.click("#allow");
  await page.waitForURL(`${BASE}/v1/api/verify/roblox/callback**`);
  await snap(page, `${label}-success`);
  const title = await page.textContent("h1");
  const link = await page.$("a.return");
  lastReturn = link ? { href: await link.getAttribute("href"), text: await link.textContent() } : null;
  await context.close();
  return title;
}

/** The "Return to …" link of the last success page (`null`: none). */
let lastReturn = null;

test("verifyUrl → Discord → Roblox completes the session; the SSE waiter gets the ids", async () => {
  const s = await createSession(BASE, key, "pid-acme", "user-1");
  const waiting = waitStream(BASE, key, s.sid);
  const title = await verifyInBrowser(s.verifyUrl, "80351110224678912", "1001", "first");
  assert.equal(title, "Verification complete");
  const done = await waiting;
  assert.equal(done.event, "complete");
  assert.deepEqual(done.data.result, { discordId: "80351110224678912", robloxId: "1001", linkChanged: false, previousRobloxId: null });
  // The link dataset now answers lookups.
  const l = await api(BASE, "/api/v1/public/discord-to-roblox?discordId=80351110224678912", { key });
  assert.deepEqual(l.body.data, { discordId: "80351110224678912", robloxId: "1001" });
});

test("the same Discord user with another Roblox account: linkChanged with the old id", async () => {
  const s = await createSession(BASE, key, "pid-acme", "user-2");
  const waiting = waitStream(BASE, key, s.sid);
  assert.equal(await verifyInBrowser(s.verifyUrl, "80351110224678912", "2002", "second"), "Verification complete");
  const done = await waiting;
  assert.deepEqual(done.data.result, { discordId: "80351110224678912", robloxId: "2002", linkChanged: true, previousRobloxId: "1001" });
});

test("finished, unknown and malformed links get clear pages", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const s = await createSession(BASE, key, "pid-acme", "user-3");
  await api(BASE, `/api/v1/admin/sessions/${s.sid}/complete`, { method: "POST", key: ADMIN, body: { discordId: "5", robloxId: "6" } });
  let r = await page.goto(s.verifyUrl);
  assert.equal(await page.textContent("h1"), "Already verified");
  await snap(page, "already-verified");
  r = await page.goto(`${BASE}/v1/api/verify/discord?pid=pid-acme&sid=vsn_A1b2C3d4E5f6G7h8J9k0L1`);
  assert.equal(r.status(), 404);
  assert.equal(await page.textContent("h1"), "Link not valid");
  r = await page.goto(`${BASE}/v1/api/verify/discord?pid=%3Cscript%3E&sid=x`);
  assert.equal(r.status(), 404);
  await snap(page, "link-not-valid");
  await context.close();
});

test("denied consent leaves the session pending", async () => {
  const s = await createSession(BASE, key, "pid-acme", "user-4");
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(s.verifyUrl);
  await page.click("text=Continue with Discord");
  await page.waitForURL(`${FAKE_DISCORD}/**`);
  await page.click("#deny");
  await page.waitForURL(`${BASE}/v1/api/verify/discord/callback**`);
  assert.equal(await page.textContent("h1"), "Verification cancelled");
  await snap(page, "denied");
  const g = await api(BASE, `/api/v1/verify/session/${s.sid}`, { key });
  assert.equal(g.body.data.status, "pending");
  await context.close();
});

test("a replayed state is refused", async () => {
  const s = await createSession(BASE, key, "pid-acme", "user-5");
  const context = await browser.newContext();
  const page = await context.newPage();
  let callback;
  page.on("request", (req) => {
    if (req.url().startsWith(`${BASE}/v1/api/verify/discord/callback`)) callback = req.url();
  });
  await page.goto(s.verifyUrl);
  await page.click("text=Continue with Discord");
  await page.click("#allow");
  await page.waitForURL(`${process.env.FAKE_ROBLOX}/**`);
  assert.ok(callback);
  const r = await page.goto(callback);
  assert.equal(r.status(), 400);
  assert.equal(await page.textContent("h1"), "Sign-in not accepted");
  assert.match(await page.textContent("main"), /already used/);
  await snap(page, "replayed-state");
  await context.close();
});

test("a state from another browser is refused", async () => {
  const s = await createSession(BASE, key, "pid-acme", "user-6");
  const a = await browser.newContext();
  const pageA = await a.newPage();
  await pageA.goto(s.verifyUrl);
  await pageA.click("text=Continue with Discord");
  await pageA.waitForURL(`${FAKE_DISCORD}/**`);
  // Browser A consents, but the callback URL (code + state) lands in browser B.
  const decide = await pageA.evaluate(() => {
    const f = document.querySelector("form");
    return `${f.action}?${new URLSearchParams(new FormData(f))}&decision=allow`;
  });
  const res = await fetch(decide, { redirect: "manual" });
  const callback = res.headers.get("location");
  assert.ok(callback?.startsWith(`${BASE}/v1/api/verify/discord/callback`), callback);
  const b = await browser.newContext();
  const pageB = await b.newPage();
  const r = await pageB.goto(callback);
  assert.equal(r.status(), 400);
  assert.match(await pageB.textContent("main"), /another browser/);
  await snap(pageB, "other-browser");
  const g = await api(BASE, `/api/v1/verify/session/${s.sid}`, { key });
  assert.equal(g.body.data.status, "pending");
  await a.close();
  await b.close();
});

test("a provider failure is a clear page and the session stays pending", async () => {
  const s = await createSession(BASE, key, "pid-acme", "user-7");
  await fetch(`${FAKE_DISCORD}/fake/control?fail_tokens=1`);
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(s.verifyUrl);
    await page.click("text=Continue with Discord");
    await page.click("#allow");
    await page.waitForURL(`${BASE}/v1/api/verify/discord/callback**`);
    assert.equal(await page.textContent("h1"), "Sign-in failed");
    await snap(page, "provider-error");
    await context.close();
  } finally {
    await fetch(`${FAKE_DISCORD}/fake/control?fail_tokens=0`);
  }
  const g = await api(BASE, `/api/v1/verify/session/${s.sid}`, { key });
  assert.equal(g.body.data.status, "pending");
});

test("a session that expires mid-flow ends on a clear page", async () => {
  const shortKey = await tenant(BASE_SHORT, "pid-acme", "Acme Bot");
  const s = await createSession(BASE_SHORT, shortKey, "pid-acme", "user-8");
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(s.verifyUrl);
  await page.click("text=Continue with Discord");
  await page.waitForURL(`${FAKE_DISCORD}/**`);
  await until("the session to expire", async () => {
    const g = await api(BASE_SHORT, `/api/v1/verify/session/${s.sid}`, { key: shortKey });
    return g.body.data.status === "expired";
  });
  await page.click("#allow");
  await page.waitForURL(`${BASE_SHORT}/v1/api/verify/discord/callback**`);
  assert.match(await page.textContent("main"), /expired/i);
  await snap(page, "expired-mid-flow");
  await context.close();
});

test("a returnUrl on a registered origin: the success and cancelled pages link back with sid and status", async () => {
  const origin = new URL(BASE).origin;
  const patched = await api(BASE, "/api/v1/admin/pids/pid-acme", { method: "PATCH", key: ADMIN, body: { returnOrigins: [origin] } });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  const returnUrl = `${BASE}/healthz?from=dock`;
  // A foreign origin is refused at create: never an open redirect.
  const refused = await api(BASE, "/api/v1/verify/session", { method: "POST", key, body: { pid: "pid-acme", clientId: "user-r0", returnUrl: "https://evil.example/" } });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, "return_url_not_allowed");

  const r = await api(BASE, "/api/v1/verify/session", { method: "POST", key, body: { pid: "pid-acme", clientId: "user-r1", returnUrl } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const s = r.body.data;
  assert.equal(await verifyInBrowser(s.verifyUrl, "80351110224678913", "3003", "return"), "Verification complete");
  assert.equal(lastReturn.text, "Return to Acme Bot");
  const back = new URL(lastReturn.href);
  assert.equal(back.origin, origin);
  assert.equal(back.searchParams.get("from"), "dock");
  assert.equal(back.searchParams.get("sid"), s.sid);
  assert.equal(back.searchParams.get("status"), "completed");

  // Cancelled: the page the user sees at verifyUrl links back too, and the link works.
  const c = await api(BASE, "/api/v1/verify/session", { method: "POST", key, body: { pid: "pid-acme", clientId: "user-r2", returnUrl } });
  await api(BASE, `/api/v1/verify/session/${c.body.data.sid}`, { method: "DELETE", key });
  const context = await browser.newContext({ viewport: { width: 390, height: 760 } });
  const page = await context.newPage();
  const resp = await page.goto(c.body.data.verifyUrl);
  assert.equal(resp.status(), 410);
  assert.equal(await page.textContent("h1"), "Verification cancelled");
  await snap(page, "cancelled-with-return-link");
  await page.click("a.return");
  await page.waitForURL(`${BASE}/healthz**`);
  const landed = new URL(page.url());
  assert.equal(landed.searchParams.get("sid"), c.body.data.sid);
  assert.equal(landed.searchParams.get("status"), "cancelled");
  await context.close();
});
