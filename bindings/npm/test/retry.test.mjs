// The reconnect policy (core's dock_core::retry through the wasm).

import { test } from "node:test";
import assert from "node:assert/strict";
import { Reconnector, backoffDelay, isRetryableStatus, longPollWaitSecs, parseRetryAfter } from "@dock-verify/client";

test("backoff: equal jitter, doubling, capped", () => {
  assert.equal(backoffDelay(1, 0), 250);
  assert.equal(backoffDelay(1, 0.5), 375);
  assert.equal(backoffDelay(2, 0), 500);
  assert.equal(backoffDelay(3, 0), 1000);
  assert.equal(backoffDelay(20, 0), 15_000);
  assert.equal(backoffDelay(20, 0.999999), 29_999);
  assert.equal(backoffDelay(2, 0, { initialDelayMs: 100, maxDelayMs: 150 }), 75);
  for (let attempt = 1; attempt < 40; attempt++) {
    for (const r of [0, 0.25, 0.5, 0.75, 0.9999]) {
      const d = backoffDelay(attempt, r);
      const step = Math.min(30_000, 500 * 2 ** (attempt - 1));
      assert.ok(d >= step / 2 && d < step, `attempt ${attempt} random ${r}: ${d} not in [${step / 2}, ${step})`);
    }
  }
  // Out-of-range randoms are clamped, not trusted.
  assert.equal(backoffDelay(1, -1), 250);
  assert.equal(backoffDelay(1, NaN), 250);
  assert.equal(backoffDelay(1, 5), 499);
  assert.throws(() => backoffDelay(1, 0, { maxDelayMs: "soon" }), TypeError);
});

test("parseRetryAfter: delta-seconds or IMF-fixdate", () => {
  const now = Date.parse("1994-11-06T08:49:37Z");
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Sat, 05 Nov 1994 08:49:37 GMT", now), 0);
  for (const bad of ["", "-1", "1.5", "tomorrow", "Sunday, 06-Nov-94 08:49:37 GMT"]) {
    assert.equal(parseRetryAfter(bad, now), undefined, bad);
  }
});

test("retryable statuses", () => {
  for (const s of [408, 425, 429, 502, 503, 504]) assert.equal(isRetryableStatus(s), true, String(s));
  for (const s of [400, 401, 404, 409, 500]) assert.equal(isRetryableStatus(s), false, String(s));
});

test("Reconnector: unreachable server backs off on the same transport, then gives up", () => {
  const r = new Reconnector("auto", { maxAttempts: 3 });
  assert.equal(r.transport, "sse");
  const got = [0, 1, 2, 3].map(() => r.onFailure({ kind: "unreachable" }, 0));
  assert.deepEqual(got, [
    { action: "retry", delayMs: 250, transport: "sse" },
    { action: "retry", delayMs: 500, transport: "sse" },
    { action: "retry", delayMs: 1000, transport: "sse" },
    { action: "give-up" },
  ]);
  assert.equal(r.attempt, 4);
  r.onProgress();
  assert.equal(r.attempt, 0);
});

test("Reconnector: Retry-After and SSE retry are floors", () => {
  const r = new Reconnector("sse");
  assert.deepEqual(r.onFailure({ kind: "http", status: 503, code: "store_unavailable", retryAfterMs: 7000 }, 0), { action: "retry", delayMs: 7000, transport: "sse" });
  assert.deepEqual(r.onFailure({ kind: "unreachable" }, 0, 4000), { action: "retry", delayMs: 4000, transport: "sse" });
  assert.deepEqual(r.onFailure({ kind: "http", status: 404, code: "session_not_found" }, 0), { action: "give-up" });
  assert.equal(r.onCleanEnd(1000), 1000);
  assert.equal(r.onCleanEnd(undefined), 500);
});

test("Reconnector: auto falls back to long-poll when streaming does not work", () => {
  for (const failure of [{ kind: "not-a-stream" }, { kind: "http", status: 404, code: "not_found" }, { kind: "http", status: 405 }]) {
    const auto = new Reconnector("auto");
    assert.deepEqual(auto.onFailure(failure, 0.3), { action: "retry", delayMs: 0, transport: "long-poll" }, JSON.stringify(failure));
    assert.equal(auto.transport, "long-poll");
    assert.deepEqual(new Reconnector("sse").onFailure(failure, 0.3), { action: "give-up" });
  }
  const auto = new Reconnector("auto");
  assert.deepEqual(auto.onFailure({ kind: "broken", eventsSeen: false }, 0), { action: "retry", delayMs: 250, transport: "sse" });
  assert.deepEqual(auto.onFailure({ kind: "broken", eventsSeen: false }, 0), { action: "retry", delayMs: 0, transport: "long-poll" });
  const lp = new Reconnector("long-poll");
  assert.equal(lp.transport, "long-poll");
  assert.deepEqual(lp.onFailure({ kind: "broken", eventsSeen: false }, 0, 9000), { action: "retry", delayMs: 250, transport: "long-poll" });
});

test("Reconnector refuses bad input with TypeError", () => {
  assert.throws(() => new Reconnector("websocket"), (e) => e instanceof TypeError && /auto.*sse.*long-poll/.test(e.message));
  assert.throws(() => new Reconnector("auto").onFailure({ kind: "meteor" }, 0), TypeError);
});

test("long-poll wait follows the caller's deadline", () => {
  assert.equal(longPollWaitSecs(25, undefined), 25);
  assert.equal(longPollWaitSecs(25, 60_000), 25);
  assert.equal(longPollWaitSecs(25, 3001), 4);
  assert.equal(longPollWaitSecs(25, 0), 0);
});
