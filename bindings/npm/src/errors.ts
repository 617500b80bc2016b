// The package's error classes. The wasm (dock-bindings) builds its errors
// through `coreError` below, so what it throws is an instance of these very
// classes: `instanceof` works for errors from validation, parsing and HTTP.

import type { SessionView } from "../wasm/dock_bindings.js";

/** Base class of every error this package throws (aborts reject with the signal's reason). */
export class DockError extends Error {
  /** A stable machine-readable code: the API's `error.code`, or one of this package's. */
  readonly code: string;
  /** The HTTP status involved, if any. */
  readonly status: number | null;
  /**
   * The server's `X-Request-Id` for the answer this error comes from (quote it
   * when reporting a problem: the server logs it), or `null`.
   */
  requestId: string | null = null;

  constructor(message: string, code: string, status: number | null = null, options?: ErrorOptions) {
    super(message, options);
    this.name = "DockError";
    this.code = code;
    this.status = status;
  }
}

/** Input the server would refuse (same rules, same codes, checked locally by core). */
export class DockValidationError extends DockError {
  /** The field at fault (`clientId`, `sid`, `discordId`…), when one is. */
  readonly field: string | null;

  constructor(message: string, code: string, status: number, field: string | null) {
    super(message, code, status);
    this.name = "DockValidationError";
    this.field = field;
  }
}

/** A response that is not what the Dock API sends (wrong shape, inconsistent state). */
export class DockProtocolError extends DockError {
  constructor(message: string, code = "unexpected_response", status: number | null = null, options?: ErrorOptions) {
    super(message, code, status, options);
    this.name = "DockProtocolError";
  }
}

/** The server answered with an error (its envelope's `code` and `message`). */
export class DockApiError extends DockError {
  declare readonly status: number;
  /** The request field at fault, for validation errors. */
  readonly field: string | null;
  /** `Retry-After` in seconds (rounded up), or `null` when the server sent none. */
  readonly retryAfter: number | null;
  /** `Retry-After` in milliseconds, or `null`. */
  readonly retryAfterMs: number | null;

  constructor(message: string, status: number, code: string, field: string | null = null, retryAfterMs: number | null = null) {
    super(message, code, status);
    this.name = "DockApiError";
    this.field = field;
    this.retryAfterMs = retryAfterMs;
    this.retryAfter = retryAfterMs === null ? null : Math.ceil(retryAfterMs / 1000);
  }
}

/** The session reached `expiresAt` before the user verified. */
export class SessionExpiredError extends DockError {
  readonly sid: string;
  /** The session's final view (`status: "expired"`). */
  readonly session: SessionView;

  constructor(session: SessionView) {
    super(`verification session ${session.sid} expired at ${session.expiresAt} before completion`, "session_expired");
    this.name = "SessionExpiredError";
    this.sid = session.sid;
    this.session = session;
  }
}

/** The session was cancelled (`DELETE`) before the user verified. */
export class SessionCancelledError extends DockError {
  readonly sid: string;
  /** The session's final view (`status: "cancelled"`). */
  readonly session: SessionView;

  constructor(session: SessionView) {
    super(`verification session ${session.sid} was cancelled`, "session_cancelled");
    this.name = "SessionCancelledError";
    this.sid = session.sid;
    this.session = session;
  }
}

/** `timeoutMs` passed: before the session finished (a wait), or before a call got its answer. */
export class DockTimeoutError extends DockError {
  readonly timeoutMs: number;

  constructor(timeoutMs: number, what = "no final session state") {
    super(`${what} within ${timeoutMs} ms`, "timeout");
    this.name = "DockTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/** The server could not be reached (after the retries the policy allows); `cause` has the details. */
export class DockNetworkError extends DockError {
  constructor(message: string, cause: unknown) {
    super(message, "network_error", null, { cause });
    this.name = "DockNetworkError";
  }
}

/**
 * A webhook delivery that does not verify (`verifyWebhook`): `code` says why —
 * `no_signature`, `malformed_signature`, `timestamp_out_of_tolerance`,
 * `signature_mismatch`, `invalid_event` (signed, but not an event) or
 * `no_secret`. Answer such a request with 400 and do not act on it.
 */
export class DockSignatureError extends DockError {
  constructor(message: string, code: string) {
    super(message, code, null);
    this.name = "DockSignatureError";
  }
}

interface CoreErrorDetails {
  code?: string;
  status?: number | null;
  field?: string | null;
  retryAfterMs?: number | null;
}

/**
 * Called by the wasm to build its errors. `kind` is `validation`, `protocol`
 * or `api`. Not part of the public API.
 * @internal
 */
export function coreError(kind: string, message: string, details: CoreErrorDetails | null): DockError {
  const d = details ?? {};
  const code = d.code ?? "unexpected_response";
  switch (kind) {
    case "validation":
      return new DockValidationError(message, code, d.status ?? 400, d.field ?? null);
    case "signature":
      return new DockSignatureError(message, code);
    case "api":
      return new DockApiError(message, d.status ?? 0, code, d.field ?? null, d.retryAfterMs ?? null);
    default:
      return new DockProtocolError(message, code, d.status ?? null);
  }
}
