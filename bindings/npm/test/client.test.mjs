// DockClient against a scripted server on 127.0.0.1: requests, waiting over
// SSE and long-poll, reconnects, fallback, Retry-After, abort and timeouts.

import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import {
  DockApiError,
  DockClient,
  DockNetworkError,
  DockProtocolError,
  DockTimeoutError,
  DockValidationError,
  SessionCancelledError,
  SessionExpiredError,
  VERSION,
} from "@dock-verify/client";
import { FakeServer, SID, envelope, errorEnvelope, frame, json, startStream, view, within } from "./helpers/fake-server.mjs";

let server;
let client;

beforeEach(async () => {
  server = await new FakeServer().listen();
  client = new DockClient({ apiKey: "dock_test", baseUrl: server.url + "/" });
});

afterEach(async () => {
  await server.close();
});

const STREAM_PATH = `/api/v1/verify/session/${SID}/stream`;
const isStream = (req) => req.url === STREAM_PATH;
const isLongPoll = (req) => req.url.startsWith(`/api/v1/verify/session/${SID}?wait=`);

function timers() {
  return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
}

test("constructor checks its options", () => {
  assert.throws(() => new DockClient({ apiKey: "", baseUrl: "http://x" }), TypeError);
  assert.throws(() => new DockClient({ apiKey: "k", baseUrl: "not a url" }), TypeError);
  assert.throws(() => new DockClient({ apiKey: "k", baseUrl: "ftp://x" }), TypeError);
  assert.throws(() => new DockClient(), TypeError);
});

test("createSession validates, sends the spec's request and returns data plus verifyRequestsRemaining", async () => {
  const data = { sid: SID, pid: "pid-yourapp", clientId: "user_123", expiresAt: "2026-02-28T19:40:12.108Z", reusedExisting: false, verifyUrl: "http://x/v1/api/verify/discord?pid=pid-yourapp&sid=" + SID };
  server.handler = (req, res) => json(res, 200, envelope(data, { verifyRequestsRemaining: 1999 }));
  const created = await client.createSession({ pid: "pid-yourapp", clientId: "user_123", guildId: "optional" });
  assert.deepEqual(created, { ...data, verifyRequestsRemaining: 1999 });
  const [req] = server.requests;
  assert.equal(req.method, "POST");
  assert.equal(req.url, "/api/v1/verify/session");
  assert.equal(req.headers.authorization, "Bearer dock_test");
  assert.equal(req.headers["content-type"], "application/json");
  assert.equal(req.headers["user-agent"], `@dock-verify/client/${VERSION}`);
  assert.deepEqual(JSON.parse(req.body), { pid: "pid-yourapp", clientId: "user_123", guildId: "optional" });
});

test("invalid input never reaches the server", async () => {
  await assert.rejects(client.createSession({ pid: "pid-yourapp", clientId: "" }), (e) => e instanceof DockValidationError && e.field === "clientId");
  await assert.rejects(client.getSession("nope"), (e) => e instanceof DockValidationError && e.code === "invalid_id");
  await assert.rejects(client.discordToRoblox("12ab"), (e) => e instanceof DockValidationError && e.field === "discordId");
  assert.equal(server.requests.length, 0);
});

test("API errors reject with DockApiError carrying status, code, field and Retry-After", async () => {
  server.handler = (req, res) => json(res, 429, errorEnvelope(429, "quota_exceeded", "used up"), { "retry-after": "42" });
  await assert.rejects(client.createSession({ pid: "p", clientId: "u" }), (e) => {
    assert.ok(e instanceof DockApiError);
    assert.deepEqual([e.status, e.code, e.message, e.retryAfter, e.retryAfterMs], [429, "quota_exceeded", "used up", 42, 42_000]);
    return true;
  });
  server.handler = (req, res) => json(res, 404, errorEnvelope(404, "session_not_found"));
  await assert.rejects(client.getSession(SID), (e) => e instanceof DockApiError && e.status === 404 && e.code === "session_not_found");
});

test("getSession, cancelSession and the link lookups", async () => {
  server.handler = (req, res) => {
    if (req.method === "DELETE") return json(res, 200, envelope(view("cancelled")));
    if (req.url.startsWith("/api/v1/public/discord-to-roblox")) return json(res, 200, envelope({ discordId: "1", robloxId: "2" }));
    if (req.url.startsWith("/api/v1/public/roblox-to-discord")) return json(res, 200, envelope({ robloxId: "2", discordIds: ["1"] }));
    return json(res, 200, envelope(view("pending")));
  };
  assert.deepEqual(await client.getSession(SID), view("pending"));
  assert.deepEqual(await client.cancelSession(SID), view("cancelled"));
  assert.deepEqual(await client.discordToRoblox("1"), { discordId: "1", robloxId: "2" });
  assert.deepEqual(await client.robloxToDiscord("2"), { robloxId: "2", discordIds: ["1"] });
  assert.deepEqual(server.requests.map((r) => `${r.method} ${r.url}`), [
    `GET /api/v1/verify/session/${SID}`,
    `DELETE /api/v1/verify/session/${SID}`,
    "GET /api/v1/public/discord-to-roblox?discordId=1",
    "GET /api/v1/public/roblox-to-discord?robloxId=2",
  ]);
});

test("a response of the wrong shape rejects with DockProtocolError", async () => {
  server.handler = (req, res) => json(res, 200, envelope({ sid: SID }));
  await assert.rejects(client.getSession(SID), (e) => e instanceof DockProtocolError && /missing field/.test(e.message));
});

test("an unreachable server rejects plain calls with DockNetworkError", async () => {
  await server.close();
  await assert.rejects(client.getSession(SID), (e) => e instanceof DockNetworkError && e.code === "network_error" && e.cause !== undefined);
  server = await new FakeServer().listen(); // for afterEach
});

// ---- call discipline: retries, budget, request ids -------------------------

test("a plain call is retried after a 503 and resolves with the later answer", async () => {
  let n = 0;
  server.handler = (req, res) =>
    ++n === 1
      ? json(res, 503, errorEnvelope(503, "store_unavailable"), { "retry-after": "0", "x-request-id": "req-1" })
      : json(res, 200, envelope(view("pending")));
  assert.deepEqual(await client.getSession(SID), view("pending"));
  assert.equal(server.requests.length, 2);
});

test("createSession is retried too (the server reuses the live session), the same body each time", async () => {
  const data = { sid: SID, pid: "pid-yourapp", clientId: "u", expiresAt: "2026-02-28T19:40:12.108Z", reusedExisting: true, verifyUrl: "http://x/v" };
  let n = 0;
  server.handler = (req, res) => (++n < 3 ? req.socket.destroy() : json(res, 200, envelope(data)));
  const created = await client.createSession({ pid: "pid-yourapp", clientId: "u" });
  assert.equal(created.sid, SID);
  assert.equal(server.requests.length, 3, "two network errors, then the answer");
  assert.equal(new Set(server.requests.map((r) => r.body)).size, 1);
});

test("retries stop at maxRetries and the last error carries the server's request id", async () => {
  server.handler = (req, res) => json(res, 502, errorEnvelope(502, "bad_gateway"), { "x-request-id": `req-${server.requests.length}` });
  await assert.rejects(client.getSession(SID, { maxRetries: 1 }), (e) => {
    assert.ok(e instanceof DockApiError);
    assert.deepEqual([e.status, e.code, e.requestId], [502, "bad_gateway", "req-2"]);
    return true;
  });
  assert.equal(server.requests.length, 2);
  const none = new DockClient({ apiKey: "dock_test", baseUrl: server.url, maxRetries: 0 });
  await assert.rejects(none.getSession(SID), DockApiError);
  assert.equal(server.requests.length, 3, "maxRetries: 0 on the client means one try");
});

test("a Retry-After longer than the back-off cap ends the call at once", async () => {
  server.handler = (req, res) => json(res, 429, errorEnvelope(429, "quota_exceeded"), { "retry-after": "3600" });
  const started = Date.now();
  await assert.rejects(client.createSession({ pid: "p", clientId: "u" }), (e) => e instanceof DockApiError && e.retryAfter === 3600);
  assert.equal(server.requests.length, 1);
  assert.ok(Date.now() - started < 5_000);
});

test("a Retry-After within the cap is waited out before the retry", async () => {
  let n = 0;
  server.handler = (req, res) =>
    ++n === 1 ? json(res, 503, errorEnvelope(503, "busy"), { "retry-after": "1" }) : json(res, 200, envelope(view("pending")));
  await client.getSession(SID);
  const [a, b] = server.requests;
  assert.ok(b.at - a.at >= 990, `retried after ${b.at - a.at} ms`);
});

test("timeoutMs bounds a plain call, retries included, with DockTimeoutError", async () => {
  server.handler = () => {}; // never answers
  const started = Date.now();
  await assert.rejects(client.getSession(SID, { timeoutMs: 300 }), (e) => e instanceof DockTimeoutError && e.timeoutMs === 300);
  assert.ok(Date.now() - started < 5_000);
  server.handler = (req, res) => json(res, 503, errorEnvelope(503, "busy"), { "retry-after": "2" });
  await assert.rejects(client.getSession(SID, { timeoutMs: 1_000 }), (e) => e instanceof DockApiError && e.status === 503,
    "a pause that would outlast the budget is not taken: the server's error comes back");
  assert.throws(() => new DockClient({ apiKey: "k", baseUrl: "http://x", timeoutMs: 0 }), TypeError);
  assert.throws(() => new DockClient({ apiKey: "k", baseUrl: "http://x", maxRetries: -1 }), TypeError);
});

test("waitForCompletion over SSE resolves with the completed view", async () => {
  let finish;
  server.handler = (req, res) => {
    assert.ok(isStream(req), req.url);
    assert.equal(req.headers.accept, "text/event-stream");
    startStream(res);
    res.write(": keep-alive\n\n");
    res.write(frame(view("pending")));
    finish = () => res.end(frame(view("completed")));
  };
  const done = client.waitForCompletion(SID, { transport: "sse" });
  await server.nthRequest(1);
  finish();
  assert.deepEqual(await done, view("completed"));
  assert.equal(server.requests.length, 1);
});

test("watch yields each state once and closes the stream when the loop breaks", async () => {
  server.handler = (req, res) => {
    startStream(res);
    res.write(frame(view("pending")));
  };
  const seen = [];
  for await (const ev of client.watch(SID)) {
    seen.push(ev);
    break;
  }
  assert.deepEqual(seen, [{ event: "pending", id: "1", session: view("pending") }]);
  const [req] = server.requests;
  await within(2000, req.closed, "the stream's connection to close");
});

test("SSE reconnects with Last-Event-ID after the connection drops", async () => {
  server.handler = (req, res, _entry, i) => {
    startStream(res);
    if (i === 0) {
      res.write(frame(view("pending")));
      setImmediate(() => res.destroy());
    } else {
      res.end(frame(view("completed")));
    }
  };
  const events = [];
  for await (const ev of client.watch(SID, { transport: "sse", retry: { initialDelayMs: 20 } })) events.push(ev.event);
  assert.deepEqual(events, ["pending", "complete"]);
  assert.equal(server.requests[0].headers["last-event-id"], undefined);
  assert.equal(server.requests[1].headers["last-event-id"], "1");
});

test("a clean end with retry: reconnects after the server's time, not as a failure", async () => {
  server.handler = (req, res, _entry, i) => {
    startStream(res);
    if (i === 0) res.end(frame(view("pending")) + "retry: 150\n\n");
    else res.end(frame(view("completed")));
  };
  const result = await client.waitForCompletion(SID, { transport: "sse" });
  assert.equal(result.status, "completed");
  const [first, second] = server.requests;
  assert.ok(second.at - first.at >= 140, `reconnected after ${second.at - first.at} ms`);
  assert.equal(second.headers["last-event-id"], "1");
});

test("Retry-After on a retryable error is honoured", async () => {
  server.handler = (req, res, _entry, i) => {
    if (i === 0) return json(res, 503, errorEnvelope(503, "store_unavailable"), { "retry-after": "1" });
    startStream(res);
    res.end(frame(view("completed")));
  };
  const result = await client.waitForCompletion(SID, { retry: { initialDelayMs: 10 } });
  assert.equal(result.status, "completed");
  const gap = server.requests[1].at - server.requests[0].at;
  assert.ok(gap >= 950, `retried after ${gap} ms despite Retry-After: 1`);
});

test("a final HTTP error is not retried", async () => {
  server.handler = (req, res) => json(res, 404, errorEnvelope(404, "session_not_found"));
  await assert.rejects(client.waitForCompletion(SID), (e) => e instanceof DockApiError && e.code === "session_not_found");
  assert.equal(server.requests.length, 1);
});

test("auto falls back to long-poll when the stream endpoint is not a stream", async () => {
  server.handler = (req, res) => {
    if (isStream(req)) return json(res, 200, "{}"); // e.g. a proxy that rewrites the stream
    assert.ok(isLongPoll(req), req.url);
    json(res, 200, envelope(view("completed")));
  };
  const result = await client.waitForCompletion(SID);
  assert.equal(result.status, "completed");
  assert.deepEqual(server.requests.map((r) => isStream(r) ? "stream" : "long-poll"), ["stream", "long-poll"]);
  assert.match(server.requests[1].url, /\?wait=25$/);
  // With transport 'sse' the same server is an error.
  await assert.rejects(client.waitForCompletion(SID, { transport: "sse" }), DockProtocolError);
});

test("auto falls back to long-poll after streams that break before any event", async () => {
  server.handler = (req, res) => {
    if (isStream(req)) {
      startStream(res);
      setImmediate(() => res.destroy());
      return;
    }
    json(res, 200, envelope(view("completed")));
  };
  const result = await client.waitForCompletion(SID, { retry: { initialDelayMs: 10 } });
  assert.equal(result.status, "completed");
  assert.deepEqual(server.requests.map((r) => (isStream(r) ? "stream" : "long-poll")), ["stream", "stream", "long-poll"]);
});

test("long-poll yields pending once, re-polls, and ends on the final state", async () => {
  server.handler = (req, res, _entry, i) => {
    assert.ok(isLongPoll(req), req.url);
    json(res, 200, envelope(view(i < 2 ? "pending" : "completed")));
  };
  const events = [];
  for await (const ev of client.watch(SID, { transport: "long-poll" })) events.push([ev.event, ev.id]);
  assert.deepEqual(events, [["pending", "1"], ["complete", "2"]]);
  assert.equal(server.requests.length, 3);
  // A server answering "pending" at once is paced to one poll a second.
  assert.ok(server.requests[2].at - server.requests[1].at >= 900);
});

test("expired and cancelled sessions reject with their own errors", async () => {
  for (const transport of ["sse", "long-poll"]) {
    for (const [status, Err, code] of [["expired", SessionExpiredError, "session_expired"], ["cancelled", SessionCancelledError, "session_cancelled"]]) {
      server.handler = (req, res) => {
        if (isStream(req)) {
          startStream(res);
          return res.end(frame(view(status)));
        }
        json(res, 200, envelope(view(status)));
      };
      await assert.rejects(client.waitForCompletion(SID, { transport }), (e) => {
        assert.ok(e instanceof Err, `${transport}: ${e?.name}`);
        assert.equal(e.code, code);
        assert.equal(e.sid, SID);
        assert.deepEqual(e.session, view(status));
        return true;
      });
    }
  }
});

test("abort rejects at once with the signal's reason, closes the connection and leaves no timer", async () => {
  server.handler = (req, res) => {
    startStream(res);
    res.write(frame(view("pending")));
  };
  const before = timers();
  const ac = new AbortController();
  const wait = client.waitForCompletion(SID, { signal: ac.signal, timeoutMs: 60_000 });
  const req = await server.nthRequest(1);
  const reason = new Error("user went away");
  const t0 = Date.now();
  ac.abort(reason);
  await assert.rejects(wait, (e) => e === reason);
  assert.ok(Date.now() - t0 < 500);
  await within(2000, req.closed, "the aborted stream's connection to close");
  assert.equal(timers(), before, `timers left: ${process.getActiveResourcesInfo()}`);
});

test("abort during a back-off sleep rejects at once", async () => {
  server.handler = (req, res) => json(res, 503, errorEnvelope(503, "store_unavailable"), { "retry-after": "3600" });
  const ac = new AbortController();
  const before = timers();
  const wait = client.waitForCompletion(SID, { signal: ac.signal });
  await server.nthRequest(1);
  ac.abort();
  await assert.rejects(wait, (e) => e.name === "AbortError");
  assert.equal(timers(), before);
});

test("an already-aborted signal rejects without a request", async () => {
  await assert.rejects(client.waitForCompletion(SID, { signal: AbortSignal.abort() }), (e) => e.name === "AbortError");
  await assert.rejects(client.getSession(SID, { signal: AbortSignal.abort() }), (e) => e.name === "AbortError");
  assert.equal(server.requests.length, 0);
});

test("timeoutMs rejects with DockTimeoutError and closes the stream", async () => {
  server.handler = (req, res) => {
    startStream(res);
    res.write(frame(view("pending")));
  };
  const before = timers();
  await assert.rejects(client.waitForCompletion(SID, { timeoutMs: 200 }), (e) => e instanceof DockTimeoutError && e.code === "timeout" && e.timeoutMs === 200);
  await within(2000, server.requests[0].closed, "the timed-out stream's connection to close");
  assert.equal(timers(), before);
});

test("a silent stream (no heartbeat) counts as broken and is reconnected", async () => {
  const idleClient = new DockClient({ apiKey: "k", baseUrl: server.url, streamIdleTimeoutMs: 150 });
  server.handler = (req, res, _entry, i) => {
    startStream(res);
    if (i === 0) res.write(frame(view("pending"))); // then silence
    else res.end(frame(view("completed")));
  };
  const result = await idleClient.waitForCompletion(SID, { transport: "sse", retry: { initialDelayMs: 10 } });
  assert.equal(result.status, "completed");
  assert.equal(server.requests[1].headers["last-event-id"], "1");
});

test("the server restarting while a client waits: the client resumes and gets the result", async () => {
  const port = server.port;
  server.handler = (req, res) => {
    startStream(res);
    res.write(frame(view("pending")));
  };
  const events = [];
  let sawPending;
  const pendingSeen = new Promise((r) => (sawPending = r));
  const watching = (async () => {
    for await (const ev of client.watch(SID, { transport: "sse", retry: { initialDelayMs: 50, maxDelayMs: 200 } })) {
      events.push(ev.event);
      if (ev.event === "pending") sawPending();
    }
  })();
  await within(5000, pendingSeen, "the pending event");
  await server.close(); // connections dropped; reconnects are refused for a while
  const restarted = new FakeServer();
  restarted.handler = (req, res) => {
    startStream(res);
    res.end(frame(view("completed")));
  };
  await restarted.listen(port);
  server = restarted;
  await within(10_000, watching, "the watch to finish after the restart");
  assert.deepEqual(events, ["pending", "complete"]);
  assert.equal(restarted.requests[0].headers["last-event-id"], "1");
});

test("an unreachable server is retried per policy, then rejects with DockNetworkError", async () => {
  await server.close();
  await assert.rejects(
    client.waitForCompletion(SID, { retry: { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 } }),
    (e) => e instanceof DockNetworkError,
  );
  server = await new FakeServer().listen();
});

test("abort cancels a plain request in flight and closes its connection", async () => {
  server.handler = () => {}; // never answers
  const ac = new AbortController();
  const pending = client.getSession(SID, { signal: ac.signal });
  const req = await server.nthRequest(1);
  ac.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  await within(2000, req.closed, "the aborted request's connection to close");
});

test("a custom fetch and userAgent are used", async () => {
  const calls = [];
  const custom = new DockClient({
    apiKey: "k",
    baseUrl: server.url,
    userAgent: "my-backend/2.0",
    fetch: (url, init) => {
      calls.push([url, init.method]);
      return fetch(url, init);
    },
  });
  server.handler = (req, res) => json(res, 200, envelope(view("pending")));
  await custom.getSession(SID);
  assert.deepEqual(calls, [[`${server.url}/api/v1/verify/session/${SID}`, "GET"]]);
  assert.equal(server.requests[0].headers["user-agent"], "my-backend/2.0");
});
