// @dock-verify/client — the public surface. One ES module for every runtime
// and both `import` and `require` (Node >= 20.19 loads ES modules with
// `require`), so there is one set of classes however it is loaded.

// First: instantiates the wasm the rest calls into (per runtime: package.json "imports").
import "#dock-wasm";

export {
  DockClient,
  VERSION,
  type CreateSessionInput,
  type CreatedSessionResult,
  type DockClientOptions,
  type ListSessionsOptions,
  type CallOptions,
  type RequestOptions,
  type WaitOptions,
} from "./client.js";

export { verifyWebhook, type VerifyWebhookOptions } from "./webhook.js";

export {
  DockApiError,
  DockError,
  DockSignatureError,
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
  StateCursor,
  backoffDelay,
  callRetryDelay,
  clientDefaults,
  eventNameOf,
  isRetryableStatus,
  isTerminal,
  longPollWaitSecs,
  parseCreatedResponse,
  parseDiscordToRobloxResponse,
  parseErrorResponse,
  parseRetryAfter,
  parseRobloxToDiscordResponse,
  parseSessionPageResponse,
  parseSessionResponse,
  parseSessionView,
  parseStreamEvent,
  statusOfEvent,
  validateCreateSession,
  validatePlatformId,
  validateSessionId,
} from "../wasm/dock_bindings.js";

export type {
  ClientDefaults,
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
  SessionPage,
  SessionStateEvent,
  SessionStatus,
  SessionView,
  SseEvent,
  StreamEventName,
  Transport,
  VerificationResult,
  WebhookEvent,
  WebhookEventType,
} from "../wasm/dock_bindings.js";
