//! core's reconnect policy ([`dock_core::retry`]) for JavaScript.

use dock_core::Timestamp;
use dock_core::retry::{self as policy, Failure, Next, Reconnect, RetryPolicy, TransportChoice};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::MAX_SAFE_INTEGER;
use crate::parse::to_js;

/// Tunables of the reconnect policy; absent fields take the defaults.
#[derive(Debug, Default, Deserialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(missing_as_null)]
struct RetryOptions {
    /// First back-off step, ms (default 500).
    #[tsify(optional)]
    initial_delay_ms: Option<u64>,
    /// Back-off cap, ms (default 30000); `Retry-After` may ask for more and is honoured.
    #[tsify(optional)]
    max_delay_ms: Option<u64>,
    /// Consecutive failures before giving up; 0 = never (default 10).
    #[tsify(optional)]
    max_attempts: Option<u32>,
    /// Event-less broken streams in a row before `auto` switches to long-poll (default 2).
    #[tsify(optional)]
    stream_failures_before_fallback: Option<u32>,
}

fn policy_from_js(options: Option<js_sys::Object>) -> Result<RetryPolicy, JsValue> {
    let o: RetryOptions = match options {
        None => RetryOptions::default(),
        Some(options) => serde_wasm_bindgen::from_value(options.into()).map_err(|e| {
            JsValue::from(js_sys::TypeError::new(&format!(
                "retry options: {e} (initialDelayMs, maxDelayMs, maxAttempts and streamFailuresBeforeFallback are whole numbers)"
            )))
        })?,
    };
    let d = RetryPolicy::default();
    Ok(RetryPolicy {
        initial_delay_ms: o.initial_delay_ms.unwrap_or(d.initial_delay_ms),
        max_delay_ms: o.max_delay_ms.unwrap_or(d.max_delay_ms),
        max_attempts: o.max_attempts.unwrap_or(d.max_attempts),
        stream_failures_before_fallback: o
            .stream_failures_before_fallback
            .unwrap_or(d.stream_failures_before_fallback),
    })
}

/// What happened to one request, for `Reconnector.onFailure`.
// `code` and `retryAfterMs` may be absent or `null` (both are `None`).
#[derive(Debug, Deserialize, tsify::Tsify)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[tsify(missing_as_null)]
enum FailureReport {
    Unreachable,
    #[serde(rename_all = "camelCase")]
    Http {
        status: u16,
        #[tsify(optional, type = "string | null")]
        code: Option<String>,
        #[tsify(optional, type = "number | null")]
        retry_after_ms: Option<u64>,
    },
    NotAStream,
    #[serde(rename_all = "camelCase")]
    Broken {
        events_seen: bool,
    },
}

impl From<FailureReport> for Failure {
    fn from(f: FailureReport) -> Failure {
        match f {
            FailureReport::Unreachable => Failure::Unreachable,
            FailureReport::Http {
                status,
                code,
                retry_after_ms,
            } => Failure::Http {
                status,
                code,
                retry_after_ms,
            },
            FailureReport::NotAStream => Failure::NotAStream,
            FailureReport::Broken { events_seen } => Failure::Broken { events_seen },
        }
    }
}

/// What `Reconnector.onFailure` decided.
#[derive(Debug, Serialize, tsify::Tsify)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[tsify(missing_as_null)]
enum RetryDecision {
    #[serde(rename_all = "camelCase")]
    Retry {
        delay_ms: u64,
        #[tsify(type = "\"sse\" | \"long-poll\"")]
        transport: &'static str,
    },
    GiveUp,
}

fn ms_arg(ms: Option<f64>) -> Option<u64> {
    ms.filter(|m| m.is_finite() && *m >= 0.0)
        .map(|m| (m as u64).min(MAX_SAFE_INTEGER))
}

/// The reconnect state of one wait (core's `Reconnect`): tell it what
/// happened, it says how long to sleep and on which transport to go on.
#[wasm_bindgen(js_name = Reconnector)]
#[derive(Debug)]
pub struct Reconnector {
    inner: Reconnect,
}

#[wasm_bindgen(js_class = Reconnector)]
impl Reconnector {
    /// `transport` is `auto`, `sse` or `long-poll`; `options` a `RetryOptions`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Transport")] transport: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "RetryOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> Result<Reconnector, JsValue> {
        let choice = TransportChoice::parse(transport).ok_or_else(|| {
            JsValue::from(js_sys::TypeError::new(&format!(
                "transport must be 'auto', 'sse' or 'long-poll', not {transport:?}"
            )))
        })?;
        Ok(Reconnector {
            inner: Reconnect::new(policy_from_js(options)?, choice),
        })
    }

    /// The transport for the next request: `sse` or `long-poll`.
    #[wasm_bindgen(getter, unchecked_return_type = "'sse' | 'long-poll'")]
    pub fn transport(&self) -> String {
        self.inner.transport().as_str().to_owned()
    }

    /// Consecutive failures so far.
    #[wasm_bindgen(getter)]
    pub fn attempt(&self) -> u32 {
        self.inner.attempt()
    }

    /// An event arrived or a long-poll answered: resets the failure count.
    #[wasm_bindgen(js_name = onProgress)]
    pub fn on_progress(&mut self) {
        self.inner.on_progress();
    }

    /// The server ended a stream cleanly before a terminal event; returns the
    /// delay (ms) before reconnecting: its `retry:` time, else the first step.
    #[wasm_bindgen(js_name = onCleanEnd)]
    pub fn on_clean_end(
        &mut self,
        #[wasm_bindgen(js_name = serverRetryMs)] server_retry_ms: Option<f64>,
    ) -> f64 {
        self.inner.on_clean_end(ms_arg(server_retry_ms)) as f64
    }

    /// A request failed; `random` in [0, 1) (e.g. `Math.random()`), and the
    /// last SSE `retry:` value. Returns a `RetryDecision`.
    #[wasm_bindgen(js_name = onFailure, unchecked_return_type = "RetryDecision")]
    pub fn on_failure(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "FailureReport")] failure: JsValue,
        random: f64,
        #[wasm_bindgen(js_name = serverRetryMs)] server_retry_ms: Option<f64>,
    ) -> Result<JsValue, JsValue> {
        let report: FailureReport = serde_wasm_bindgen::from_value(failure)
            .map_err(|e| JsValue::from(js_sys::TypeError::new(&format!("failure report: {e}"))))?;
        let decision = match self
            .inner
            .on_failure(&report.into(), random, ms_arg(server_retry_ms))
        {
            Next::Retry {
                delay_ms,
                transport,
            } => RetryDecision::Retry {
                delay_ms: delay_ms.min(MAX_SAFE_INTEGER),
                transport: transport.as_str(),
            },
            Next::GiveUp => RetryDecision::GiveUp,
        };
        to_js(&decision)
    }
}

/// The jittered back-off (ms) after the `attempt`-th consecutive failure
/// (1-based), for `random` in [0, 1): in [b/2, b) where
/// b = min(maxDelayMs, initialDelayMs · 2^(attempt-1)).
#[wasm_bindgen(js_name = backoffDelay)]
pub fn backoff_delay(
    attempt: u32,
    random: f64,
    #[wasm_bindgen(unchecked_optional_param_type = "RetryOptions")] options: Option<js_sys::Object>,
) -> Result<f64, JsValue> {
    Ok(policy_from_js(options)?.backoff_ms(attempt, random) as f64)
}

/// A `Retry-After` header value (seconds or HTTP-date) as milliseconds to wait
/// from `nowMs`, or `undefined` when it is neither.
#[wasm_bindgen(js_name = parseRetryAfter)]
pub fn parse_retry_after(value: &str, #[wasm_bindgen(js_name = nowMs)] now_ms: f64) -> Option<f64> {
    let now = Timestamp::from_millis(ms_arg(Some(now_ms)).unwrap_or(0));
    policy::parse_retry_after(value, now).map(|ms| ms.min(MAX_SAFE_INTEGER) as f64)
}

/// Whether an HTTP status is worth retrying (408, 425, 429, 502, 503, 504).
#[wasm_bindgen(js_name = isRetryableStatus)]
pub fn is_retryable_status(status: u16) -> bool {
    policy::is_retryable_status(status)
}

/// The `wait` (seconds) for the next long-poll: `maxWaitSecs`, or less when
/// only `remainingMs` of the caller's deadline is left.
#[wasm_bindgen(js_name = longPollWaitSecs)]
pub fn long_poll_wait_secs(
    #[wasm_bindgen(js_name = maxWaitSecs)] max_wait_secs: u32,
    #[wasm_bindgen(js_name = remainingMs)] remaining_ms: Option<f64>,
) -> u32 {
    policy::long_poll_wait_secs(max_wait_secs, ms_arg(remaining_ms))
}
