// verifyWebhook against signatures made with Node's own crypto (an
// independent HMAC-SHA256), so the scheme is checked, not only round-tripped.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { DockError, DockSignatureError, verifyWebhook } from "@dock-verify/client";

const SECRET = "whsec_nodeTestSecret_0123456789abcdefghijklmnopq";
const BODY = JSON.stringify({
  id: "evt_0123456789abcdef0123456789abcdef",
  type: "session.completed",
  createdAt: "2026-12-03T10:00:00.000Z",
  data: {
    sid: "vsn_A1b2C3d4E5f6G7h8J9k0L1",
    pid: "pid-yourapp",
    clientId: "user_123",
    guildId: null,
    status: "completed",
    expiresAt: "2026-12-03T10:05:00.000Z",
    result: { discordId: "111", robloxId: "900", linkChanged: false, previousRobloxId: null },
  },
});
const sign = (secret, t, body) => createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
const now = () => Math.floor(Date.now() / 1000);

test("a delivery signed with the secret verifies, as a string or as bytes, and parses", () => {
  const t = now();
  const header = `t=${t},v1=${sign(SECRET, t, BODY)}`;
  const event = verifyWebhook(BODY, header, SECRET);
  assert.equal(event.type, "session.completed");
  assert.equal(event.data.result.robloxId, "900");
  assert.deepEqual(verifyWebhook(new TextEncoder().encode(BODY), header, SECRET), event);
});

test("during a rotation either secret verifies a delivery signed with both", () => {
  const t = now();
  const header = `t=${t},v1=${sign("whsec_new", t, BODY)},v1=${sign(SECRET, t, BODY)}`;
  assert.equal(verifyWebhook(BODY, header, SECRET).id, "evt_0123456789abcdef0123456789abcdef");
  assert.equal(verifyWebhook(BODY, header, ["whsec_other", "whsec_new"]).type, "session.completed");
});

test("tampered, foreign, stale, missing and malformed signatures throw DockSignatureError", () => {
  const t = now();
  const good = `t=${t},v1=${sign(SECRET, t, BODY)}`;
  const cases = [
    [BODY.replace("900", "901"), good, SECRET, {}, "signature_mismatch"],
    [BODY, good, "whsec_wrong", {}, "signature_mismatch"],
    [BODY, `t=${t - 301},v1=${sign(SECRET, t - 301, BODY)}`, SECRET, {}, "timestamp_out_of_tolerance"],
    [BODY, undefined, SECRET, {}, "no_signature"],
    [BODY, `t=${t}`, SECRET, {}, "no_signature"],
    [BODY, "v1=abc", SECRET, {}, "malformed_signature"],
    ["{}", `t=${t},v1=${sign(SECRET, t, "{}")}`, SECRET, {}, "invalid_event"],
  ];
  for (const [body, header, secret, opts, code] of cases) {
    assert.throws(
      () => verifyWebhook(body, header, secret, opts),
      (e) => e instanceof DockSignatureError && e instanceof DockError && e.code === code,
      code,
    );
  }
  // A stored delivery replays with its own clock and a wider tolerance.
  const old = 1_700_000_000;
  const header = `t=${old},v1=${sign(SECRET, old, BODY)}`;
  assert.equal(verifyWebhook(BODY, header, SECRET, { nowSec: old + 60 }).type, "session.completed");
  assert.equal(verifyWebhook(BODY, header, SECRET, { nowSec: old + 900, toleranceSec: 1000 }).type, "session.completed");
});
