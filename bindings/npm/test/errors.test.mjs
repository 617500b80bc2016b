// Validation, response parsing and error mapping: what the wasm throws is a
// real Error subclass carrying the API's code, status and field.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DockApiError,
  DockError,
  DockProtocolError,
  DockValidationError,
  eventNameOf,
  isTerminal,
  parseCreatedResponse,
  parseDiscordToRobloxResponse,
  parseErrorResponse,
  parseRobloxToDiscordResponse,
  parseSessionResponse,
  parseSessionView,
  statusOfEvent,
  validateCreateSession,
  validatePlatformId,
  validateSessionId,
} from "@dock-verify/client";

const SPEC_CREATE_RESPONSE = `{
  "status": 200,
  "data": {
    "sid": "vsn_A1b2C3d4E5f6G7h8J9k0L1",
    "pid": "pid-yourapp",
    "clientId": "user_123",
    "expiresAt": "2026-02-28T19:40:12.108Z",
    "reusedExisting": false,
    "verifyUrl": "https://api.docksys.xyz/v1/api/verify/discord?pid=pid-yourapp&sid=vsn_A1b2C3d4E5f6G7h8J9k0L1"
  },
  "timestamp": "2026-02-28T19:35:12.108Z",
  "version": "1.3.0",
  "verifyRequestsRemaining": 1999
}`;

const VIEW = {
  sid: "vsn_A1b2C3d4E5f6G7h8J9k0L1",
  pid: "pid-yourapp",
  clientId: "user_123",
  guildId: "g1",
  status: "completed",
  expiresAt: "2026-02-28T19:40:12.108Z",
  result: { discordId: "80351110224678912", robloxId: "1", linkChanged: true, previousRobloxId: "2" },
};

function envelope(data) {
  return JSON.stringify({ status: 200, data, timestamp: "2026-02-28T19:35:12.108Z", version: "0.1.0" });
}

function isValidation(code, field, status = 400) {
  return (e) => {
    assert.ok(e instanceof DockValidationError, `${e?.name}: ${e?.message}`);
    assert.ok(e instanceof DockError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, "DockValidationError");
    assert.equal(e.code, code);
    assert.equal(e.status, status);
    assert.equal(e.field, field);
    assert.ok(e.message.length > 0);
    assert.ok(e.stack.includes("DockValidationError"));
    return true;
  };
}

test("validateCreateSession accepts the spec's body and normalizes it", () => {
  assert.deepEqual(validateCreateSession({ pid: "pid-yourapp", clientId: "user_123", guildId: "optional" }), {
    pid: "pid-yourapp",
    clientId: "user_123",
    guildId: "optional",
  });
  assert.deepEqual(validateCreateSession({ pid: "p", clientId: "u", guildId: undefined }), { pid: "p", clientId: "u" });
  assert.deepEqual(validateCreateSession({ pid: "p", clientId: "u", guildId: null }), { pid: "p", clientId: "u" });
});

test("validateCreateSession maps every refusal to the server's code, status and field", () => {
  const long = "x".repeat(257);
  const cases = [
    [{ clientId: "u" }, "missing_field", "pid"],
    [{ pid: null, clientId: "u" }, "missing_field", "pid"],
    [{ pid: "p" }, "missing_field", "clientId"],
    [{ pid: "", clientId: "u" }, "empty_field", "pid"],
    [{ pid: "p", clientId: "u", guildId: "" }, "empty_field", "guildId"],
    [{ pid: 1, clientId: "u" }, "invalid_type", "pid"],
    [{ pid: "p", clientId: ["u"] }, "invalid_type", "clientId"],
    [{ pid: "p", clientId: long }, "field_too_long", "clientId"],
    [{ pid: "p", clientId: "u", extra: 1 }, "unknown_field", "extra"],
    [{ pid: "p", clientId: "a\nb" }, "invalid_field", "clientId"],
    [{ pid: "p x", clientId: "u" }, "invalid_field", "pid"],
  ];
  for (const [input, code, field] of cases) {
    assert.throws(() => validateCreateSession(input), isValidation(code, field), JSON.stringify(input));
  }
  for (const input of [[], "pid", 5, null]) {
    assert.throws(() => validateCreateSession(input), isValidation("invalid_json", null), JSON.stringify(input));
  }
  assert.throws(() => validateCreateSession(undefined), isValidation("invalid_json", null));
  assert.throws(() => validateCreateSession({ pid: "p", clientId: 1n }), isValidation("invalid_json", null));
});

test("ids are checked before they reach a URL", () => {
  assert.equal(validateSessionId("vsn_A1b2C3d4E5f6G7h8J9k0L1"), "vsn_A1b2C3d4E5f6G7h8J9k0L1");
  for (const bad of ["", "vsn_short", "vsn_A1b2C3d4E5f6G7h8J9k0L1/../x", "key_A1b2C3d4E5f6G7h8J9k0L1"]) {
    assert.throws(() => validateSessionId(bad), isValidation("invalid_id", "sid"), bad);
  }
  assert.throws(() => validateSessionId(42), isValidation("invalid_type", "sid"));
  assert.equal(validatePlatformId("discordId", "80351110224678912"), "80351110224678912");
  assert.throws(() => validatePlatformId("discordId", "12a"), isValidation("invalid_field", "discordId"));
  assert.throws(() => validatePlatformId("robloxId", "1".repeat(21)), isValidation("field_too_long", "robloxId"));
  assert.throws(() => validatePlatformId("robloxId", 123), isValidation("invalid_type", "robloxId"));
});

test("parseCreatedResponse reads the spec's response verbatim", () => {
  const env = parseCreatedResponse(SPEC_CREATE_RESPONSE);
  assert.deepEqual(env, JSON.parse(SPEC_CREATE_RESPONSE));
});

test("session, link and view parsers give the HTTP JSON as plain objects", () => {
  assert.deepEqual(parseSessionResponse(envelope(VIEW)).data, VIEW);
  const pending = { ...VIEW, guildId: null, status: "pending", result: null };
  assert.deepEqual(parseSessionView(JSON.stringify(pending)), pending);
  // `null`s stay `null` (json_compatible), no Map objects.
  const parsed = parseSessionView(JSON.stringify(pending));
  assert.equal(parsed.result, null);
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.deepEqual(parseDiscordToRobloxResponse(envelope({ discordId: "1", robloxId: "2" })).data, { discordId: "1", robloxId: "2" });
  assert.deepEqual(parseRobloxToDiscordResponse(envelope({ robloxId: "2", discordIds: ["1", "3"] })).data, { robloxId: "2", discordIds: ["1", "3"] });
});

test("unexpected shapes throw DockProtocolError saying what is wrong", () => {
  const cases = [
    [() => parseSessionResponse("<html>"), /session response/],
    [() => parseSessionResponse(envelope({ ...VIEW, sid: undefined })), /missing field `sid`/],
    [() => parseSessionResponse(envelope({ ...VIEW, status: "done" })), /unknown variant `done`/],
    [() => parseSessionResponse(envelope({ ...VIEW, result: null })), /completed session without `result`/],
    [() => parseSessionResponse(envelope({ ...VIEW, status: "expired" })), /expired session with a `result`/],
    [() => parseSessionResponse(envelope({ ...VIEW, sid: "vsn_bad" })), /session id/],
    [() => parseSessionResponse(envelope({ ...VIEW, expiresAt: "yesterday" })), /ISO 8601/],
    [() => parseCreatedResponse(JSON.stringify({ status: 200, data: {} })), /create-session response/],
    [() => parseRobloxToDiscordResponse(envelope({ robloxId: "2", discordIds: [] })), /empty `discordIds`/],
  ];
  for (const [fn, message] of cases) {
    assert.throws(fn, (e) => {
      assert.ok(e instanceof DockProtocolError, `${e?.name}: ${e?.message}`);
      assert.ok(e instanceof DockError);
      assert.equal(e.code, "unexpected_response");
      assert.match(e.message, message);
      return true;
    });
  }
});

test("parseErrorResponse maps the error envelope to DockApiError", () => {
  const body = JSON.stringify({
    status: 400,
    error: { code: "missing_field", message: "`clientId` is required", field: "clientId" },
    timestamp: "2026-02-28T19:35:12.108Z",
    version: "0.1.0",
  });
  const e = parseErrorResponse(400, body, undefined, Date.now());
  assert.ok(e instanceof DockApiError);
  assert.ok(e instanceof DockError);
  assert.equal(e.name, "DockApiError");
  assert.deepEqual([e.status, e.code, e.field, e.message, e.retryAfter, e.retryAfterMs], [400, "missing_field", "clientId", "`clientId` is required", null, null]);
});

test("Retry-After: seconds and HTTP-date", () => {
  const body = JSON.stringify({ status: 429, error: { code: "quota_exceeded", message: "used up" }, timestamp: "2026-02-28T19:35:12.108Z", version: "0.1.0" });
  const e = parseErrorResponse(429, body, "30", Date.now());
  assert.deepEqual([e.status, e.code, e.retryAfter, e.retryAfterMs, e.field], [429, "quota_exceeded", 30, 30_000, null]);
  const now = Date.parse("2026-02-28T19:35:12.000Z");
  const d = parseErrorResponse(503, body, "Sat, 28 Feb 2026 19:35:14 GMT", now);
  assert.deepEqual([d.retryAfter, d.retryAfterMs], [2, 2000]);
  const junk = parseErrorResponse(503, body, "soon", now);
  assert.equal(junk.retryAfterMs, null);
});

test("a body that is not an error envelope still gives a DockApiError with the status", () => {
  const e = parseErrorResponse(502, "<html><body>Bad Gateway</body></html>", null, Date.now());
  assert.ok(e instanceof DockApiError);
  assert.equal(e.status, 502);
  assert.equal(e.code, "unexpected_response");
  assert.match(e.message, /HTTP 502 without a Dock error envelope: <html><body>Bad Gateway/);
  assert.match(parseErrorResponse(503, "", null, Date.now()).message, /HTTP 503 with an empty body/);
});

test("state helpers", () => {
  assert.equal(isTerminal("pending"), false);
  for (const s of ["completed", "expired", "cancelled"]) assert.equal(isTerminal(s), true);
  assert.throws(() => isTerminal("done"), DockProtocolError);
  assert.equal(statusOfEvent("complete"), "completed");
  assert.equal(statusOfEvent("pending"), "pending");
  assert.equal(statusOfEvent("message"), undefined);
  assert.equal(eventNameOf("completed"), "complete");
  assert.equal(eventNameOf("cancelled"), "cancelled");
});
