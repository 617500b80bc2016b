//! What the npm client decides between HTTP calls, from core: which state is
//! news and its event id ([`dock_core::stream::StreamCursor`], the server's
//! own resume rule), the defaults of calls and waits, and whether a failed
//! plain call is tried again ([`dock_core::call`]).

use dock_core::call::{self, CallFailure, CallPolicy};
use dock_core::stream::{StreamCursor, event_name};
use wasm_bindgen::prelude::*;

use crate::error::MAX_SAFE_INTEGER;
use crate::parse::status_from_js;

fn js_ms(ms: u64) -> f64 {
    ms.min(MAX_SAFE_INTEGER) as f64
}

fn set(target: &js_sys::Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    js_sys::Reflect::set(target, &JsValue::from_str(key), value).map(|_| ())
}

/// What one wait has seen: each state is news once, whether a stream or a
/// long-poll reported it, and `lastEventId` is what to resume a stream with.
#[wasm_bindgen(js_name = StateCursor)]
#[derive(Debug, Default)]
pub struct StateCursor {
    inner: StreamCursor,
}

#[wasm_bindgen(js_class = StateCursor)]
impl StateCursor {
    /// A cursor that has seen nothing yet.
    #[wasm_bindgen(constructor)]
    pub fn new() -> StateCursor {
        StateCursor::default()
    }

    /// The `SessionStateEvent` announcing `session` if its state is news
    /// (it then counts as seen), else `undefined`. `session` is returned
    /// inside the event as is.
    #[wasm_bindgen(unchecked_return_type = "SessionStateEvent | undefined")]
    pub fn observe(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "SessionView")] session: JsValue,
    ) -> Result<JsValue, JsValue> {
        let status = js_sys::Reflect::get(&session, &JsValue::from_str("status"))?
            .as_string()
            .unwrap_or_default();
        let status = status_from_js(&status)?;
        if !self.inner.observe(status) {
            return Ok(JsValue::UNDEFINED);
        }
        let event = js_sys::Object::new();
        set(&event, "event", &JsValue::from_str(event_name(status)))?;
        set(
            &event,
            "id",
            &JsValue::from_str(StreamCursor::event_id(status)),
        )?;
        set(&event, "session", &session)?;
        Ok(event.into())
    }

    /// The id of the last state seen (`Last-Event-ID` on reconnect), `""` before any.
    #[wasm_bindgen(getter, js_name = lastEventId)]
    pub fn last_event_id(&self) -> String {
        self.inner.last_event_id().to_owned()
    }
}

/// The client's defaults (`ClientDefaults`), from core.
#[wasm_bindgen(js_name = clientDefaults, unchecked_return_type = "ClientDefaults")]
pub fn client_defaults() -> Result<JsValue, JsValue> {
    let o = js_sys::Object::new();
    let p = CallPolicy::default();
    set(&o, "timeoutMs", &js_ms(call::DEFAULT_TIMEOUT_MS).into())?;
    set(&o, "maxRetries", &f64::from(p.max_retries).into())?;
    set(
        &o,
        "maxWaitSecs",
        &f64::from(call::DEFAULT_LONG_POLL_WAIT_SECS).into(),
    )?;
    set(
        &o,
        "streamIdleTimeoutMs",
        &js_ms(call::DEFAULT_STREAM_IDLE_TIMEOUT_MS).into(),
    )?;
    set(
        &o,
        "minLongPollIntervalMs",
        &js_ms(call::MIN_LONG_POLL_INTERVAL_MS).into(),
    )?;
    Ok(o.into())
}

/// After try number `tries` (1-based) of a plain call failed — `status`
/// `undefined` for a network error, else the HTTP status with its parsed
/// `Retry-After` — how long to pause before trying again, or `undefined` to
/// give up. `remainingMs`: what is left of the call's budget.
#[wasm_bindgen(js_name = callRetryDelay)]
pub fn call_retry_delay(
    tries: u32,
    status: Option<u16>,
    #[wasm_bindgen(js_name = retryAfterMs)] retry_after_ms: Option<f64>,
    #[wasm_bindgen(js_name = maxRetries)] max_retries: u32,
    jitter: f64,
    #[wasm_bindgen(js_name = remainingMs)] remaining_ms: Option<f64>,
) -> Option<f64> {
    let ms = |v: f64| {
        if v.is_finite() && v > 0.0 {
            v as u64
        } else {
            0
        }
    };
    let failure = match status {
        None => CallFailure::Network,
        Some(status) => CallFailure::Http {
            status,
            retry_after_ms: retry_after_ms.map(ms),
        },
    };
    let policy = CallPolicy {
        max_retries,
        ..CallPolicy::default()
    };
    policy
        .retry_delay_ms(tries, failure, jitter, remaining_ms.map(ms))
        .map(js_ms)
}

#[wasm_bindgen(typescript_custom_section)]
const TS_CLIENT_DEFAULTS: &str = r#"
/** The client's defaults, from core (`dock_core::call`). */
export interface ClientDefaults {
  /** Budget of one plain call, retries included (ms). */
  timeoutMs: number;
  /** Retries of a plain call after its first try. */
  maxRetries: number;
  /** The `wait` asked of each long-poll (s): the server's usual maximum. */
  maxWaitSecs: number;
  /** A stream silent this long counts as broken (ms): three missed heartbeats. */
  streamIdleTimeoutMs: number;
  /** A long-poll answered sooner than this is paced to it (ms). */
  minLongPollIntervalMs: number;
}
"#;
