// verifyWebhook: checks a webhook delivery's Dock-Signature with core's own
// code (the server signs with the same) and returns the parsed event.

import * as core from "../wasm/dock_bindings.js";
import type { WebhookEvent } from "../wasm/dock_bindings.js";

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** How far the signature's timestamp may be from now, in seconds (default 300). */
  toleranceSec?: number;
  /** "Now" in Unix seconds (default: the clock); for replaying a stored delivery. */
  nowSec?: number;
}

/**
 * Verifies a webhook delivery and returns its event.
 *
 * `rawBody` must be the request body exactly as received (a string or the
 * bytes) — not re-serialized JSON. `header` is the `Dock-Signature` request
 * header. `secret` is the webhook's `whsec_…` signing secret (or several,
 * e.g. while you roll a rotation out). Throws `DockSignatureError` when the
 * signature is missing, malformed, too old (beyond `toleranceSec`) or does
 * not match. De-duplicate by `event.id`: delivery is at least once.
 */
export function verifyWebhook(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string | readonly string[],
  options: VerifyWebhookOptions = {},
): WebhookEvent {
  const now = options.nowSec ?? Math.floor(Date.now() / 1000);
  return core.verifyWebhookAt(rawBody, header ?? undefined, secret as string | string[], now, options.toleranceSec ?? 300);
}
