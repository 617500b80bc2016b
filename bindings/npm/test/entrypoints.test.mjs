// The installed package loads through `import` and `require` (Node >= 20.19
// requires ES modules) and they are one module: same classes, so `instanceof`
// holds across them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import * as esm from "@dock-verify/client";

const require = createRequire(import.meta.url);
const cjs = require("@dock-verify/client");

const EXPECTED_EXPORTS = [
  "DockApiError", "DockClient", "DockError", "DockNetworkError", "DockProtocolError", "DockSignatureError", "DockTimeoutError",
  "DockValidationError", "Reconnector", "SessionCancelledError", "SessionExpiredError", "SseDecoder", "StateCursor",
  "VERSION", "backoffDelay", "callRetryDelay", "clientDefaults", "eventNameOf", "isRetryableStatus", "isTerminal", "longPollWaitSecs", "parseCreatedResponse",
  "parseDiscordToRobloxResponse", "parseErrorResponse", "parseRetryAfter", "parseRobloxToDiscordResponse",
  "parseSessionPageResponse", "parseSessionResponse", "parseSessionView", "parseStreamEvent", "statusOfEvent", "validateCreateSession",
  "validatePlatformId", "validateSessionId", "verifyWebhook",
];

test("import and require expose the same complete API", () => {
  assert.deepEqual(Object.keys(esm).sort(), EXPECTED_EXPORTS);
  assert.deepEqual(Object.keys(cjs).sort(), EXPECTED_EXPORTS);
  for (const name of EXPECTED_EXPORTS) assert.equal(esm[name], cjs[name], name);
});

test("an error thrown through one entry is an instance of the other's class", () => {
  assert.throws(() => cjs.validateSessionId("x"), esm.DockValidationError);
  assert.throws(() => esm.validateSessionId("x"), cjs.DockError);
});

test("the package is the installed tarball, not the source tree", () => {
  const entry = require.resolve("@dock-verify/client");
  assert.match(entry, /node_modules[\\/]@dock-verify[\\/]client[\\/]dist[\\/]index\.js$/);
  const pkg = require("@dock-verify/client/package.json");
  assert.equal(pkg.name, "@dock-verify/client");
  assert.equal(pkg.version, esm.VERSION);
  assert.deepEqual(pkg.dependencies ?? {}, {}, "no runtime dependencies");
});

test("a plain CommonJS script and a plain ESM script can load it", () => {
  const cjsOut = execFileSync(process.execPath, ["-e", "const m = require('@dock-verify/client'); console.log(typeof m.DockClient, m.isTerminal('completed'))"], { encoding: "utf8" });
  assert.equal(cjsOut.trim(), "function true");
  const esmOut = execFileSync(process.execPath, ["--input-type=module", "-e", "import { DockClient, isTerminal } from '@dock-verify/client'; console.log(typeof DockClient, isTerminal('pending'))"], { encoding: "utf8" });
  assert.equal(esmOut.trim(), "function false");
});
