// @dock-verify/client — the public surface. The CommonJS build of this file
// is the one implementation; the ESM entry (esm/index.mjs) re-exports it, so
// `import` and `require` share classes and `instanceof` works across both.

export {
  DockClient,
  VERSION,
  type CreateSessionInput,
  type CreatedSessionResult,
  type DockClientOptions,
  type RequestOptions,
  type WaitOptions,
} from "./client.js";

export {
  DockApiError,
  DockError,
  DockNetworkError,
  DockProtocolError,
  DockTimeoutError,
  DockValidationError,
  SessionCancelledError,
  SessionExpiredError,
} from "./errors.js";

// core (dock-core compiled to wasm): validation, parsing, SSE, state, retry policy.
export {
  Reconnector,
  SseDecoder,
  backoffDelay,
  eventNameOf,
  isRetryableStatus,
  isTerminal,
  longPollWaitSecs,
  parseCreatedResponse,
  parseDiscordToRobloxResponse,
  parseErrorResponse,
  parseRetryAfter,
  parseRobloxToDiscordResponse,
  parseSessionResponse,
  parseSessionView,
  parseStreamEvent,
  statusOfEvent,
  validateCreateSession,
  validatePlatformId,
  validateSessionId,
} from "../wasm/dock_bindings.js";

export type {
  CompletedSessionView,
  CreateSessionRequest,
  CreatedSession,
  DiscordLink,
  Envelope,
  ErrorBody,
  ErrorEnvelope,
  FailureReport,
  RetryDecision,
  RetryOptions,
  RobloxLinks,
  SessionStateEvent,
  SessionStatus,
  SessionView,
  SseEvent,
  StreamEventName,
  Transport,
  VerificationResult,
} from "../wasm/dock_bindings.js";
