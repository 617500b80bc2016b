// DockClient: the HTTP side. Everything that decides or parses is in the
// wasm (dock-core): validation, JSON shapes, the SSE decoder, the reconnect
// policy. This file only does I/O, timers and abort plumbing.

import * as core from "../wasm/dock_bindings.js";
import type {
  CompletedSessionView,
  CreatedSession,
  DiscordLink,
  FailureReport,
  RetryOptions,
  RobloxLinks,
  SessionPage,
  SessionStateEvent,
  SessionStatus,
  SessionView,
  Transport,
} from "../wasm/dock_bindings.js";
import {
  DockApiError,
  DockError,
  DockNetworkError,
  DockProtocolError,
  DockTimeoutError,
  SessionCancelledError,
  SessionExpiredError,
} from "./errors.js";

/** This package's version (sent in the default `User-Agent`). */
export const VERSION = "0.1.0";

/** Filters and paging of {@link DockClient.listSessions}. */
export interface ListSessionsOptions extends RequestOptions {
  /** Only this user's sessions. */
  clientId?: string;
  /** Only sessions in this state (a pending session past `expiresAt` is `expired`). */
  status?: SessionStatus;
  /** Sessions per page, 1 to 100 (server default 20). */
  limit?: number;
  /** Start after this `nextCursor` (from an earlier page). */
  cursor?: string;
}

/** Defaults of calls and waits, from core (`dock_core::call`). */
const DEFAULTS = core.clientDefaults();

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Options of `new DockClient(…)`. */
export interface DockClientOptions {
  /** The API key (`dock_…`), sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  /** Where the API lives, e.g. `https://api.example.com` (paths are appended). */
  baseUrl: string;
  /** A `fetch` to use instead of the global one (tests, proxies, instrumentation). */
  fetch?: FetchLike;
  /** `User-Agent` to send; defaults to `@dock-verify/client/<version>`. */
  userAgent?: string;
  /** Default reconnect policy for `waitForCompletion` and `watch`. */
  retry?: RetryOptions;
  /** Default budget of each plain call, retries included (default 30000 ms). */
  timeoutMs?: number;
  /** Default retries of a plain call after network errors and 408/425/429/502/503/504 (default 2). */
  maxRetries?: number;
  /** The `wait` asked of each long-poll, in seconds (default 25, the server's usual maximum). */
  maxWaitSecs?: number;
  /** A stream silent (not even a heartbeat) this long counts as broken (default 45000 ms). */
  streamIdleTimeoutMs?: number;
}

/** `createSession`'s input: the spec's request body. */
export interface CreateSessionInput {
  /** Your Dock Public Identifier. */
  pid: string;
  /** Your internal user id, stored on the session. */
  clientId: string;
  /** Optional guild context. */
  guildId?: string | null;
  /**
   * Optional: the only Discord account (decimal id) that may complete the
   * session; the flow refuses any other and the session stays pending. Part
   * of the reuse identity with `clientId` and `guildId`.
   */
  expectedDiscordId?: string | null;
  /** Optional: how you name the user (at most 100 characters), shown on the verify page. */
  displayLabel?: string | null;
  /**
   * Optional: where the verify pages send the user back when the session
   * ends (`sid` and `status` are added to its query). Its origin must be one
   * the operator registered for your PID, else `DockApiError`
   * `return_url_not_allowed`. Not part of the reuse identity.
   */
  returnUrl?: string | null;
}

/** `createSession`'s result: the spec's `data` plus `verifyRequestsRemaining`. */
export interface CreatedSessionResult extends CreatedSession {
  /** Creates left in the key's quota window (`null` if the server did not say). */
  verifyRequestsRemaining: number | null;
}

/** Options every call and wait takes. */
export interface CallOptions {
  /** Aborts the call; it then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Options of the plain calls (`createSession`, `getSession`, `cancelSession`,
 * lookups). A call is tried again after a network error or a 408, 425, 429,
 * 502, 503 or 504 answer, after core's back-off and never sooner than the
 * server's `Retry-After` (one longer than 30 s ends the call with that error).
 */
export interface RequestOptions extends CallOptions {
  /** This call's budget, every try and pause included; then it rejects with `DockTimeoutError`. */
  timeoutMs?: number;
  /** Retries after the first try (0: none). */
  maxRetries?: number;
}

/** Options of `waitForCompletion` and `watch`. */
export interface WaitOptions extends CallOptions {
  /** `auto` (default): SSE, falling back to long-poll when streaming does not work. */
  transport?: Transport;
  /** Give up after this long with a `DockTimeoutError`. */
  timeoutMs?: number;
  /** Overrides the client's reconnect policy for this wait. */
  retry?: RetryOptions;
}

/** A dependency-free abortable sleep that leaves no timer behind. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** An AbortController that also aborts when `parent` does, until `dispose()`. */
function childController(parent: AbortSignal | undefined): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  if (parent === undefined) return { controller, dispose: () => {} };
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { controller, dispose: () => {} };
  }
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener("abort", onAbort, { once: true });
  return { controller, dispose: () => parent.removeEventListener("abort", onAbort) };
}

function isEventStream(contentType: string | null): boolean {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase() === "text/event-stream";
}

function terminalError(session: SessionView): DockError | null {
  switch (session.status) {
    case "expired":
      return new SessionExpiredError(session);
    case "cancelled":
      return new SessionCancelledError(session);
    default:
      return null;
  }
}

/** A client of the Dock verification-sessions API. */
export class DockClient {
  readonly #apiKey: string;
  readonly #baseUrl: string;
  readonly #fetch: FetchLike;
  readonly #userAgent: string;
  readonly #retry: RetryOptions | undefined;
  readonly #maxWaitSecs: number;
  readonly #idleTimeoutMs: number;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;

  constructor(options: DockClientOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("DockClient: options { apiKey, baseUrl } are required");
    }
    const { apiKey, baseUrl } = options;
    if (typeof apiKey !== "string" || apiKey.length === 0 || /[\s]/.test(apiKey)) {
      throw new TypeError("DockClient: `apiKey` must be a non-empty string without whitespace");
    }
    if (typeof baseUrl !== "string") {
      throw new TypeError("DockClient: `baseUrl` must be a string such as https://api.example.com");
    }
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch (cause) {
      throw new TypeError(`DockClient: \`baseUrl\` is not a URL: ${JSON.stringify(baseUrl)}`, { cause });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`DockClient: \`baseUrl\` must be http or https, not ${url.protocol}`);
    }
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (typeof f !== "function") {
      throw new TypeError("DockClient: no global fetch (Node >= 20 has one); pass `fetch`");
    }
    this.#apiKey = apiKey;
    this.#baseUrl = (url.origin + url.pathname).replace(/\/+$/, "");
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#userAgent = options.userAgent ?? `@dock-verify/client/${VERSION}`;
    this.#retry = options.retry;
    this.#maxWaitSecs = options.maxWaitSecs ?? DEFAULTS.maxWaitSecs;
    this.#idleTimeoutMs = options.streamIdleTimeoutMs ?? DEFAULTS.streamIdleTimeoutMs;
    this.#timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULTS.timeoutMs, "DockClient: `timeoutMs`");
    this.#maxRetries = checkRetries(options.maxRetries ?? DEFAULTS.maxRetries, "DockClient: `maxRetries`");
    if (!Number.isInteger(this.#maxWaitSecs) || this.#maxWaitSecs < 1) {
      throw new TypeError("DockClient: `maxWaitSecs` must be a whole number >= 1");
    }
    if (!(this.#idleTimeoutMs > 0)) {
      throw new TypeError("DockClient: `streamIdleTimeoutMs` must be > 0");
    }
  }

  // ---- plain requests ----------------------------------------------------

  /** `POST /api/v1/verify/session`: the input is validated locally first (core's rules). */
  async createSession(input: CreateSessionInput, options: RequestOptions = {}): Promise<CreatedSessionResult> {
    const body = core.validateCreateSession(input);
    const text = await this.#request("POST", "/api/v1/verify/session", options, JSON.stringify(body));
    const env = core.parseCreatedResponse(text);
    return { ...env.data, verifyRequestsRemaining: env.verifyRequestsRemaining ?? null };
  }

  /** `GET /api/v1/verify/session/:sid`: the session's current view. */
  async getSession(sid: string, options: RequestOptions = {}): Promise<SessionView> {
    const id = core.validateSessionId(sid);
    const text = await this.#request("GET", `/api/v1/verify/session/${id}`, options);
    return core.parseSessionResponse(text).data;
  }

  /**
   * `GET /api/v1/verify/sessions`: your PID's sessions, newest first, one
   * page per iteration (it follows `nextCursor` until the last page). Pages
   * are stable while new sessions are created. Each page is one plain call
   * (`timeoutMs`, retries).
   *
   * ```js
   * for await (const page of client.listSessions({ clientId: "user_123", status: "completed" })) {
   *   for (const s of page.sessions) console.log(s.sid, s.result);
   * }
   * ```
   */
  async *listSessions(options: ListSessionsOptions = {}): AsyncGenerator<SessionPage, void, void> {
    let cursor = options.cursor;
    do {
      const q = new URLSearchParams();
      if (options.clientId !== undefined) q.set("clientId", options.clientId);
      if (options.status !== undefined) q.set("status", options.status);
      if (options.limit !== undefined) q.set("limit", String(options.limit));
      if (cursor !== undefined) q.set("cursor", cursor);
      const qs = q.toString();
      const text = await this.#request("GET", `/api/v1/verify/sessions${qs ? `?${qs}` : ""}`, options);
      const page = core.parseSessionPageResponse(text).data;
      yield page;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  /** `DELETE /api/v1/verify/session/:sid`: cancels a pending session; resolves with its cancelled view. */
  async cancelSession(sid: string, options: RequestOptions = {}): Promise<SessionView> {
    const id = core.validateSessionId(sid);
    const text = await this.#request("DELETE", `/api/v1/verify/session/${id}`, options);
    return core.parseSessionResponse(text).data;
  }

  /** `GET /api/v1/public/discord-to-roblox`: the Roblox account a Discord user is linked to in your PID. */
  async discordToRoblox(discordId: string, options: RequestOptions = {}): Promise<DiscordLink> {
    const id = core.validatePlatformId("discordId", discordId);
    const text = await this.#request("GET", `/api/v1/public/discord-to-roblox?discordId=${id}`, options);
    return core.parseDiscordToRobloxResponse(text).data;
  }

  /** `GET /api/v1/public/roblox-to-discord`: every Discord user linked to a Roblox account in your PID. */
  async robloxToDiscord(robloxId: string, options: RequestOptions = {}): Promise<RobloxLinks> {
    const id = core.validatePlatformId("robloxId", robloxId);
    const text = await this.#request("GET", `/api/v1/public/roblox-to-discord?robloxId=${id}`, options);
    return core.parseRobloxToDiscordResponse(text).data;
  }

  // ---- waiting -------------------------------------------------------------

  /**
   * Waits until the session finishes. Resolves with the completed view;
   * rejects with `SessionExpiredError`, `SessionCancelledError`,
   * `DockTimeoutError`, `DockApiError` (a final HTTP error, or a retryable one
   * after the policy's attempts), `DockNetworkError`, or the signal's reason.
   */
  async waitForCompletion(sid: string, options: WaitOptions = {}): Promise<CompletedSessionView> {
    for await (const ev of this.watch(sid, options)) {
      const err = terminalError(ev.session);
      if (err) throw err;
      if (ev.session.status === "completed") return ev.session as CompletedSessionView;
    }
    // watch() only ends after a terminal state.
    throw new DockProtocolError(`the wait for ${sid} ended without a final state`);
  }

  /**
   * The session's states as they happen: `pending` (if it is), then exactly
   * one of `complete`, `expired`, `cancelled`, after which iteration ends.
   * Each state is yielded once, whatever reconnects or fallbacks happen
   * underneath. Breaking out of the loop closes the connection.
   */
  watch(sid: string, options: WaitOptions = {}): AsyncGenerator<SessionStateEvent, void, undefined> {
    // Validate eagerly so a bad sid or transport throws at the call.
    const id = core.validateSessionId(sid);
    const reconnector = new core.Reconnector(options.transport ?? "auto", options.retry ?? this.#retry);
    return this.#watch(id, reconnector, options);
  }

  async *#watch(sid: string, rc: core.Reconnector, options: WaitOptions): AsyncGenerator<SessionStateEvent, void, undefined> {
    const outer = options.signal;
    if (outer?.aborted) throw outer.reason;
    const controller = new AbortController();
    const signal = controller.signal;
    const onOuterAbort = () => controller.abort(outer!.reason);
    outer?.addEventListener("abort", onOuterAbort, { once: true });
    const timeoutMs = options.timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let deadline: number | undefined;
    if (timeoutMs !== undefined) {
      if (!(timeoutMs >= 0) || !Number.isFinite(timeoutMs)) {
        outer?.removeEventListener("abort", onOuterAbort);
        throw new TypeError("`timeoutMs` must be a finite number >= 0");
      }
      deadline = Date.now() + timeoutMs;
      timer = setTimeout(() => controller.abort(new DockTimeoutError(timeoutMs)), timeoutMs);
    }

    const state: WatchState = { cursor: new core.StateCursor(), serverRetryMs: undefined };
    try {
      for (;;) {
        if (signal.aborted) throw signal.reason;
        const attempt =
          rc.transport === "sse"
            ? this.#streamOnce(sid, state, rc, signal)
            : this.#longPollOnce(sid, state, rc, signal, deadline);
        // Re-yield the attempt's states (yield* also forwards an early
        // `return()` so the attempt closes its connection); its return value
        // says what comes next.
        const outcome: AttemptOutcome = yield* attempt;
        if (outcome.kind === "done") return;
        if (outcome.kind === "again") {
          if (outcome.delayMs > 0) await sleep(outcome.delayMs, signal);
          continue;
        }
        const decision = rc.onFailure(outcome.failure, Math.random(), state.serverRetryMs);
        if (decision.action === "give-up") throw outcome.error;
        if (decision.delayMs > 0) await sleep(decision.delayMs, signal);
      }
    } catch (e) {
      // Whatever failed underneath, an abort or timeout wins.
      if (signal.aborted) throw signal.reason;
      throw e;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuterAbort);
      // Tears down any request still open (e.g. a stream after its final event).
      if (!signal.aborted) controller.abort(new DOMException("the wait is over", "AbortError"));
      rc.free();
      state.cursor.free();
    }
  }

  /** One SSE connection: yields new states; returns what to do next. */
  async *#streamOnce(
    sid: string,
    state: WatchState,
    rc: core.Reconnector,
    signal: AbortSignal,
  ): AsyncGenerator<SessionStateEvent, AttemptOutcome, undefined> {
    const { controller, dispose } = childController(signal);
    let idle: ReturnType<typeof setTimeout> | undefined;
    const decoder = new core.SseDecoder();
    try {
      const headers: Record<string, string> = { accept: "text/event-stream" };
      const lastEventId = state.cursor.lastEventId;
      if (lastEventId) headers["last-event-id"] = lastEventId;
      let res: Response;
      try {
        res = await this.#fetch(this.#url(`/api/v1/verify/session/${sid}/stream`), {
          method: "GET",
          headers: this.#headers(headers),
          signal: controller.signal,
        });
      } catch (cause) {
        if (signal.aborted) throw signal.reason;
        return { kind: "failed", failure: { kind: "unreachable" }, error: this.#networkError(cause) };
      }
      if (!res.ok) return this.#httpFailure(res, signal);
      if (!isEventStream(res.headers.get("content-type")) || res.body === null) {
        await res.body?.cancel().catch(() => {});
        return {
          kind: "failed",
          failure: { kind: "not-a-stream" },
          error: new DockProtocolError(
            `the stream endpoint answered ${res.status} with Content-Type ${JSON.stringify(res.headers.get("content-type"))}, not text/event-stream`,
          ),
        };
      }
      const reader = res.body.getReader();
      let eventsSeen = false;
      const idleTimeoutMs = this.#idleTimeoutMs;
      // Re-armed on every chunk. (Not `timer.refresh()`: only Node's timers
      // have it; browsers and workerd return a number.)
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(
          () => controller.abort(new Error(`no data (not even a heartbeat) for ${idleTimeoutMs} ms`)),
          idleTimeoutMs,
        );
      };
      armIdle();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          armIdle();
          const events = done ? decoder.finish() : decoder.feed(value);
          for (const raw of events) {
            // A known event whose data is not a matching view throws DockProtocolError: final.
            const ev = core.parseStreamEvent(raw);
            if (ev === undefined) continue;
            eventsSeen = true;
            rc.onProgress();
            const news = state.cursor.observe(ev.session);
            if (news !== undefined) yield news;
            if (core.isTerminal(ev.session.status)) return { kind: "done" };
          }
          if (decoder.retryMs !== undefined) state.serverRetryMs = decoder.retryMs;
          if (done) break;
        }
      } catch (cause) {
        if (signal.aborted) throw signal.reason;
        if (cause instanceof DockError) throw cause;
        const reason = controller.signal.aborted ? controller.signal.reason : cause;
        return { kind: "failed", failure: { kind: "broken", eventsSeen }, error: this.#networkError(reason) };
      } finally {
        reader.cancel().catch(() => {});
      }
      // The server closed the stream before a final state.
      if (decoder.retryMs !== undefined) {
        // It said when to come back (`stream_max_seconds`): not a failure.
        return { kind: "again", delayMs: rc.onCleanEnd(decoder.retryMs) };
      }
      return {
        kind: "failed",
        failure: { kind: "broken", eventsSeen },
        error: new DockNetworkError("the event stream ended before a final state", null),
      };
    } finally {
      clearTimeout(idle);
      decoder.free();
      // Closes the connection if anything is still open.
      controller.abort(new DOMException("stream attempt over", "AbortError"));
      dispose();
    }
  }

  /** One long-poll: yields a new state if there is one; returns what to do next. */
  async *#longPollOnce(
    sid: string,
    state: WatchState,
    rc: core.Reconnector,
    signal: AbortSignal,
    deadline: number | undefined,
  ): AsyncGenerator<SessionStateEvent, AttemptOutcome, undefined> {
    const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
    const wait = core.longPollWaitSecs(this.#maxWaitSecs, remaining);
    const started = Date.now();
    let res: Response;
    try {
      res = await this.#fetch(this.#url(`/api/v1/verify/session/${sid}?wait=${wait}`), {
        method: "GET",
        headers: this.#headers({ accept: "application/json" }),
        signal,
      });
    } catch (cause) {
      if (signal.aborted) throw signal.reason;
      return { kind: "failed", failure: { kind: "unreachable" }, error: this.#networkError(cause) };
    }
    if (!res.ok) return this.#httpFailure(res, signal);
    let text: string;
    try {
      text = await res.text();
    } catch (cause) {
      if (signal.aborted) throw signal.reason;
      return { kind: "failed", failure: { kind: "broken", eventsSeen: false }, error: this.#networkError(cause) };
    }
    const view = core.parseSessionResponse(text).data;
    rc.onProgress();
    // Core names the state and its id exactly as the stream would have.
    const news = state.cursor.observe(view);
    if (news !== undefined) yield news;
    if (core.isTerminal(view.status)) return { kind: "done" };
    // A server that answers "pending" at once (wait=0, or a proxy) is paced.
    const elapsed = Date.now() - started;
    return { kind: "again", delayMs: Math.max(0, Math.min(wait * 1000, DEFAULTS.minLongPollIntervalMs) - elapsed) };
  }

  // ---- HTTP plumbing -------------------------------------------------------

  #url(path: string): string {
    return this.#baseUrl + path;
  }

  #headers(extra: Record<string, string>): Record<string, string> {
    return { authorization: `Bearer ${this.#apiKey}`, "user-agent": this.#userAgent, ...extra };
  }

  #networkError(cause: unknown): DockNetworkError {
    const detail = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
    return new DockNetworkError(`cannot reach the Dock API at ${this.#baseUrl}: ${detail}`, cause);
  }

  async #apiError(res: Response, signal: AbortSignal | undefined): Promise<DockApiError> {
    let text = "";
    try {
      text = await res.text();
    } catch (cause) {
      if (signal?.aborted) throw signal.reason;
      // Keep the status even if the body broke.
    }
    const error = core.parseErrorResponse(res.status, text, res.headers.get("retry-after") ?? undefined, Date.now()) as DockApiError;
    error.requestId = res.headers.get("x-request-id");
    return error;
  }

  async #httpFailure(res: Response, signal: AbortSignal): Promise<AttemptOutcome> {
    const error = await this.#apiError(res, signal);
    const failure: FailureReport = {
      kind: "http",
      status: res.status,
      code: error.code,
      retryAfterMs: error.retryAfterMs,
    };
    return { kind: "failed", failure, error };
  }

  /**
   * One plain call: tries, and retries what core says to retry, within the
   * call's budget. Resolves with the 2xx body's text.
   */
  async #request(method: string, path: string, options: RequestOptions, body?: string): Promise<string> {
    const outer = options.signal;
    if (outer?.aborted) throw outer.reason;
    const timeoutMs = checkTimeout(options.timeoutMs ?? this.#timeoutMs, "`timeoutMs`");
    const maxRetries = checkRetries(options.maxRetries ?? this.#maxRetries, "`maxRetries`");
    const { controller, dispose } = childController(outer);
    const signal = controller.signal;
    const deadline = Date.now() + timeoutMs;
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => controller.abort(new DockTimeoutError(timeoutMs, `no answer to ${method} ${path.split("?")[0]}`)), timeoutMs)
      : undefined;
    const headers = this.#headers(
      body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
    );
    try {
      for (let tries = 1; ; tries++) {
        let error: DockError;
        let status: number | undefined;
        try {
          const res = await this.#fetch(this.#url(path), { method, headers, body: body ?? null, signal });
          if (res.ok) return await res.text();
          error = await this.#apiError(res, signal);
          status = res.status;
        } catch (cause) {
          if (signal.aborted) throw signal.reason;
          if (cause instanceof DockError) throw cause;
          error = this.#networkError(cause);
        }
        const retryAfterMs = error instanceof DockApiError ? (error.retryAfterMs ?? undefined) : undefined;
        const remaining = Number.isFinite(timeoutMs) ? Math.max(0, deadline - Date.now()) : undefined;
        const delay = core.callRetryDelay(tries, status, retryAfterMs, maxRetries, Math.random(), remaining);
        if (delay === undefined) throw error;
        await sleep(delay, signal);
      }
    } catch (e) {
      // An abort or the call's timeout wins over whatever failed underneath.
      if (signal.aborted) throw signal.reason;
      throw e;
    } finally {
      clearTimeout(timer);
      dispose();
    }
  }
}

function checkTimeout(ms: number, what: string): number {
  if (typeof ms !== "number" || !(ms > 0)) throw new TypeError(`${what} must be a number > 0 (Infinity: no limit)`);
  return ms;
}

function checkRetries(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 100) throw new TypeError(`${what} must be a whole number from 0 to 100`);
  return n;
}

/** What one watch keeps across attempts. */
interface WatchState {
  /** What has been yielded (each state once) and the `Last-Event-ID` to resume with. */
  cursor: core.StateCursor;
  /** The server's last `retry:` (ms), a floor for reconnect delays. */
  serverRetryMs: number | undefined;
}

/** How one attempt ended. */
type AttemptOutcome =
  | { kind: "done" }
  | { kind: "again"; delayMs: number }
  | { kind: "failed"; failure: FailureReport; error: Error };


