//! TypeScript declarations of every JSON shape the bindings produce or take,
//! emitted into `wasm/dock_bindings.d.ts`. They mirror core's wire types
//! (`dock_core::wire`, `dock_core::request`, `dock_core::retry`) field for
//! field; the npm package's type-check test exercises them.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_SHAPES: &str = r#"
/** A session's state. `pending` until the user verifies; then exactly one of the others, forever. */
export type SessionStatus = "pending" | "completed" | "expired" | "cancelled";

/** SSE `event:` names. Note `complete` (event) vs `completed` (status). */
export type StreamEventName = "pending" | "complete" | "expired" | "cancelled";

/** How `waitForCompletion`/`watch` wait. */
export type Transport = "auto" | "sse" | "long-poll";

/** `result` of a completed session. */
export interface VerificationResult {
  /** Verified Discord user id (decimal digits). */
  discordId: string;
  /** Verified Roblox user id (decimal digits). */
  robloxId: string;
  /** Whether this Discord user was linked to a different Roblox account in the PID dataset. */
  linkChanged: boolean;
  /** That previous Roblox id when `linkChanged`, else `null`. */
  previousRobloxId: string | null;
}

/** A session as integrators see it: `data` of GET/DELETE, and each SSE event's data. */
export interface SessionView {
  sid: string;
  pid: string;
  clientId: string;
  guildId: string | null;
  status: SessionStatus;
  /** ISO 8601 UTC with milliseconds. */
  expiresAt: string;
  /** An object exactly when `status` is `completed`. */
  result: VerificationResult | null;
  /** The create's `expectedDiscordId`; absent when it gave none. */
  expectedDiscordId?: string;
  /** The create's `displayLabel`; absent when it gave none. */
  displayLabel?: string;
}

/** A completed session's view. */
export interface CompletedSessionView extends SessionView {
  status: "completed";
  result: VerificationResult;
}

/** `data` of `POST /api/v1/verify/session`. */
export interface CreatedSession {
  sid: string;
  pid: string;
  clientId: string;
  expiresAt: string;
  /** Whether an active session for the same (pid, clientId, guildId) was returned. */
  reusedExisting: boolean;
  /** Where to send the user. */
  verifyUrl: string;
}

/** The body of `POST /api/v1/verify/session`. */
export interface CreateSessionRequest {
  pid: string;
  clientId: string;
  guildId?: string | null;
  /** Only this Discord account (decimal id) may complete the session. */
  expectedDiscordId?: string | null;
  /** Shown on the verify page (at most 100 characters). */
  displayLabel?: string | null;
}

/** `data` of `GET /api/v1/public/discord-to-roblox`. */
export interface DiscordLink {
  discordId: string;
  robloxId: string;
}

/** `data` of `GET /api/v1/public/roblox-to-discord`. */
export interface RobloxLinks {
  robloxId: string;
  discordIds: string[];
}

/** The success envelope every endpoint answers with. */
export interface Envelope<T> {
  status: number;
  data: T;
  timestamp: string;
  version: string;
  /** Creates left in the key's quota window (create responses only). */
  verifyRequestsRemaining?: number;
}

/** The `error` object of the error envelope. */
export interface ErrorBody {
  code: string;
  message: string;
  field?: string;
}

/** The error envelope every failure answers with. */
export interface ErrorEnvelope {
  status: number;
  error: ErrorBody;
  timestamp: string;
  version: string;
}

/** One event from `SseDecoder`. */
export interface SseEvent {
  /** The event type (`message` when the stream gave none). */
  event: string;
  /** The data, lines joined with LF. */
  data: string;
  /** The last event id at dispatch (carries over; `""` before any). */
  id: string;
}

/** A session state from the stream (or from long-poll, with the same ids). */
export interface SessionStateEvent {
  event: StreamEventName;
  /** `"1"` for pending, `"2"` for the terminal state. */
  id: string;
  session: SessionView;
}

/** Tunables of the reconnect policy; absent fields take the defaults. */
export interface RetryOptions {
  /** First back-off step, ms (default 500). */
  initialDelayMs?: number;
  /** Back-off cap, ms (default 30000); `Retry-After` may ask for more and is honoured. */
  maxDelayMs?: number;
  /** Consecutive failures before giving up; 0 = never (default 10). */
  maxAttempts?: number;
  /** Event-less broken streams in a row before `auto` switches to long-poll (default 2). */
  streamFailuresBeforeFallback?: number;
}

/** What happened to one request, for `Reconnector.onFailure`. */
export type FailureReport =
  | { kind: "unreachable" }
  | { kind: "http"; status: number; code?: string | null; retryAfterMs?: number | null }
  | { kind: "not-a-stream" }
  | { kind: "broken"; eventsSeen: boolean };

/** What `Reconnector.onFailure` decided. */
export type RetryDecision =
  | { action: "retry"; delayMs: number; transport: "sse" | "long-poll" }
  | { action: "give-up" };
"#;
