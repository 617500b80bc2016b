//! Request validation and response parsing through core's wire types.

use dock_core::request::{CreateSessionRequest, Limits, parse_platform_id};
use dock_core::retry::parse_retry_after;
use dock_core::stream::status_of_event;
use dock_core::wire::{
    CreatedSession, DiscordLink, Envelope, ErrorEnvelope, RobloxLinks, SessionView, Status,
};
use dock_core::{ApiError, ErrorCode, SessionId, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::{ErrorKind, JsErrorSpec, MAX_SAFE_INTEGER, UNEXPECTED_RESPONSE};

/// Serializes `value` as the HTTP JSON would look in JS.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsErrorSpec::protocol("value", e).into_js())
}

// ---- input ---------------------------------------------------------------

/// Validates a create-session body as the server would: unknown fields,
/// types, lengths, control characters, the PID format. Returns the normalized
/// request; throws `DockValidationError` with `code`, `status` and `field`.
#[wasm_bindgen(js_name = validateCreateSession, unchecked_return_type = "CreateSessionRequest")]
pub fn validate_create_session(
    #[wasm_bindgen(unchecked_param_type = "unknown")] input: JsValue,
) -> Result<JsValue, JsValue> {
    let json = js_sys::JSON::stringify(&input)
        .ok()
        .and_then(|s| s.as_string());
    let Some(json) = json else {
        let e = ApiError::new(
            ErrorCode::InvalidJson,
            "the create-session input must be a JSON-serializable object",
        );
        return Err(JsErrorSpec::validation(&e).into_js());
    };
    let req = validate_create_json(&json).map_err(|e| JsErrorSpec::validation(&e).into_js())?;
    to_js(&req)
}

/// The pure part of [`validate_create_session`].
pub fn validate_create_json(json: &str) -> Result<CreateSessionRequest, ApiError> {
    Ok(CreateSessionRequest::parse(
        json.as_bytes(),
        &Limits::default(),
    )?)
}

/// Checks a session id (`vsn_` + 22 letters or digits) before it goes into a URL.
#[wasm_bindgen(js_name = validateSessionId)]
pub fn validate_session_id(
    #[wasm_bindgen(unchecked_param_type = "string")] sid: JsValue,
) -> Result<String, JsValue> {
    check_session_id(sid.as_string().as_deref()).map_err(|e| JsErrorSpec::validation(&e).into_js())
}

/// The pure part of [`validate_session_id`].
pub fn check_session_id(sid: Option<&str>) -> Result<String, ApiError> {
    let Some(sid) = sid else {
        return Err(
            ApiError::new(ErrorCode::InvalidType, "`sid` must be a string").with_field("sid"),
        );
    };
    SessionId::parse(sid)
        .map(|s| s.as_str().to_owned())
        .map_err(|e| ApiError::from(e).with_field("sid"))
}

/// Checks a Discord or Roblox id (1 to 20 decimal digits) named `field`.
#[wasm_bindgen(js_name = validatePlatformId)]
pub fn validate_platform_id(
    field: &str,
    #[wasm_bindgen(unchecked_param_type = "string")] value: JsValue,
) -> Result<String, JsValue> {
    check_platform_id(field, value.as_string().as_deref())
        .map_err(|e| JsErrorSpec::validation(&e).into_js())
}

/// The pure part of [`validate_platform_id`]. Numbers are refused: Discord ids
/// do not fit in a JavaScript number.
pub fn check_platform_id(field: &str, value: Option<&str>) -> Result<String, ApiError> {
    let Some(value) = value else {
        return Err(ApiError::new(
            ErrorCode::InvalidType,
            format!("`{field}` must be a string of digits"),
        )
        .with_field(field));
    };
    Ok(parse_platform_id(field, value)?)
}

// ---- output --------------------------------------------------------------

/// A session view that breaks the "`result` exactly when completed" rule.
fn check_view(view: &SessionView) -> Result<(), String> {
    let completed = view.status == Status::Completed;
    match (completed, view.result.is_some()) {
        (true, false) => Err("a completed session without `result`".into()),
        (false, true) => Err(format!(
            "a {} session with a `result`",
            view.status.as_str()
        )),
        _ => Ok(()),
    }
}

/// Parses a success envelope of `T`, running `check` on `data`.
pub fn parse_envelope<T: DeserializeOwned>(
    what: &str,
    body: &str,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<Envelope<T>, JsErrorSpec> {
    let env: Envelope<T> =
        serde_json::from_str(body).map_err(|e| JsErrorSpec::protocol(what, e))?;
    check(&env.data).map_err(|e| JsErrorSpec::protocol(what, e))?;
    if let Some(n) = env.verify_requests_remaining
        && n > MAX_SAFE_INTEGER
    {
        return Err(JsErrorSpec::protocol(
            what,
            "verifyRequestsRemaining is out of range",
        ));
    }
    Ok(env)
}

fn envelope_to_js<T: DeserializeOwned + Serialize>(
    what: &str,
    body: &str,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<JsValue, JsValue> {
    let env = parse_envelope(what, body, check).map_err(JsErrorSpec::into_js)?;
    to_js(&env)
}

/// Parses the body of a 2xx `POST /api/v1/verify/session`.
#[wasm_bindgen(js_name = parseCreatedResponse, unchecked_return_type = "Envelope<CreatedSession>")]
pub fn parse_created_response(body: &str) -> Result<JsValue, JsValue> {
    envelope_to_js::<CreatedSession>("create-session response", body, |_| Ok(()))
}

/// Parses the body of a 2xx `GET`/`DELETE /api/v1/verify/session/:sid`.
#[wasm_bindgen(js_name = parseSessionResponse, unchecked_return_type = "Envelope<SessionView>")]
pub fn parse_session_response(body: &str) -> Result<JsValue, JsValue> {
    envelope_to_js::<SessionView>("session response", body, check_view)
}

/// Parses the body of a 2xx `GET /api/v1/verify/sessions`.
#[wasm_bindgen(js_name = parseSessionPageResponse, unchecked_return_type = "Envelope<SessionPage>")]
pub fn parse_session_page_response(body: &str) -> Result<JsValue, JsValue> {
    envelope_to_js::<dock_core::listing::SessionPage>("session listing response", body, |p| {
        p.sessions.iter().try_for_each(check_view)
    })
}

/// Parses the body of a 2xx `GET /api/v1/public/discord-to-roblox`.
#[wasm_bindgen(js_name = parseDiscordToRobloxResponse, unchecked_return_type = "Envelope<DiscordLink>")]
pub fn parse_discord_to_roblox_response(body: &str) -> Result<JsValue, JsValue> {
    envelope_to_js::<DiscordLink>("discord-to-roblox response", body, |_| Ok(()))
}

/// Parses the body of a 2xx `GET /api/v1/public/roblox-to-discord`.
#[wasm_bindgen(js_name = parseRobloxToDiscordResponse, unchecked_return_type = "Envelope<RobloxLinks>")]
pub fn parse_roblox_to_discord_response(body: &str) -> Result<JsValue, JsValue> {
    envelope_to_js::<RobloxLinks>("roblox-to-discord response", body, |d| {
        if d.discord_ids.is_empty() {
            Err("an empty `discordIds`".into())
        } else {
            Ok(())
        }
    })
}

/// Parses one bare session view (an SSE event's `data`).
#[wasm_bindgen(js_name = parseSessionView, unchecked_return_type = "SessionView")]
pub fn parse_session_view(json: &str) -> Result<JsValue, JsValue> {
    let view = view_from_json("session view", json).map_err(JsErrorSpec::into_js)?;
    to_js(&view)
}

fn view_from_json(what: &str, json: &str) -> Result<SessionView, JsErrorSpec> {
    let view: SessionView =
        serde_json::from_str(json).map_err(|e| JsErrorSpec::protocol(what, e))?;
    check_view(&view).map_err(|e| JsErrorSpec::protocol(what, e))?;
    Ok(view)
}

/// Turns an error response into the `DockApiError` to throw (it is returned,
/// not thrown). `retryAfter` is the raw `Retry-After` header, read at `nowMs`.
/// A body that is not a Dock error envelope (a proxy's HTML page, say) gives
/// code `unexpected_response` and quotes the start of the body.
#[wasm_bindgen(js_name = parseErrorResponse, unchecked_return_type = "Error")]
pub fn parse_error_response(
    status: u16,
    body: &str,
    #[wasm_bindgen(js_name = retryAfter)] retry_after: Option<String>,
    #[wasm_bindgen(js_name = nowMs)] now_ms: f64,
) -> JsValue {
    error_response_spec(status, body, retry_after.as_deref(), now_ms).into_js()
}

/// The pure part of [`parse_error_response`].
pub fn error_response_spec(
    status: u16,
    body: &str,
    retry_after: Option<&str>,
    now_ms: f64,
) -> JsErrorSpec {
    let now = Timestamp::from_millis(if now_ms.is_finite() && now_ms > 0.0 {
        now_ms as u64
    } else {
        0
    });
    let retry_after_ms = retry_after
        .and_then(|v| parse_retry_after(v, now))
        .map(|ms| ms.min(MAX_SAFE_INTEGER));
    match serde_json::from_str::<ErrorEnvelope>(body) {
        Ok(env) => JsErrorSpec {
            kind: ErrorKind::Api,
            message: env.error.message,
            code: env.error.code,
            status: Some(status),
            field: env.error.field,
            retry_after_ms,
        },
        Err(_) => {
            let snippet: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
            JsErrorSpec {
                kind: ErrorKind::Api,
                message: if snippet.is_empty() {
                    format!("HTTP {status} with an empty body")
                } else {
                    format!("HTTP {status} without a Dock error envelope: {snippet}")
                },
                code: UNEXPECTED_RESPONSE.to_owned(),
                status: Some(status),
                field: None,
                retry_after_ms,
            }
        }
    }
}

// ---- SSE events ----------------------------------------------------------

/// One event from `SseDecoder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, tsify::Tsify)]
#[tsify(missing_as_null)]
pub struct SseEvent {
    /// The event type (`message` when the stream gave none).
    pub event: String,
    /// The data, lines joined with LF.
    pub data: String,
    /// The last event id at dispatch (carries over; `""` before any).
    pub id: String,
}

/// A session state from the stream (or from long-poll, with the same ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, tsify::Tsify)]
#[tsify(missing_as_null)]
pub struct SessionStateEvent {
    /// `pending`, `complete`, `expired` or `cancelled`.
    #[tsify(type = "StreamEventName")]
    pub event: String,
    /// `"1"` for pending, `"2"` for the terminal state.
    pub id: String,
    /// The session's view.
    pub session: SessionView,
}

/// The pure part of [`parse_stream_event`]: `None` for event types that are
/// not ours (ignored, as EventSource ignores unknown types).
pub fn state_event(ev: SseEvent) -> Result<Option<SessionStateEvent>, JsErrorSpec> {
    let Some(status) = status_of_event(&ev.event) else {
        return Ok(None);
    };
    let what = format!("`{}` stream event", ev.event);
    let session = view_from_json(&what, &ev.data)?;
    if session.status != status {
        return Err(JsErrorSpec::protocol(
            &what,
            format!(
                "it carries a session whose status is `{}`",
                session.status.as_str()
            ),
        ));
    }
    Ok(Some(SessionStateEvent {
        event: ev.event,
        id: ev.id,
        session,
    }))
}

/// Interprets a decoded SSE event: a `SessionStateEvent` for `pending`,
/// `complete`, `expired` and `cancelled`; `undefined` for any other type.
/// Throws `DockProtocolError` when a known event's data is not a matching view.
#[wasm_bindgen(js_name = parseStreamEvent, unchecked_return_type = "SessionStateEvent | undefined")]
pub fn parse_stream_event(
    #[wasm_bindgen(unchecked_param_type = "SseEvent")] event: JsValue,
) -> Result<JsValue, JsValue> {
    let ev: SseEvent = serde_wasm_bindgen::from_value(event)
        .map_err(|e| JsErrorSpec::protocol("SSE event object", e).into_js())?;
    match state_event(ev).map_err(JsErrorSpec::into_js)? {
        Some(s) => to_js(&s),
        None => Ok(JsValue::UNDEFINED),
    }
}

// ---- state helpers -------------------------------------------------------

pub(crate) fn status_from_js(status: &str) -> Result<Status, JsValue> {
    serde_json::from_value::<Status>(serde_json::Value::String(status.to_owned())).map_err(|_| {
        JsErrorSpec::protocol(
            "session status",
            format!("{status:?} is not one of pending, completed, expired, cancelled"),
        )
        .into_js()
    })
}

/// Whether a status is final (`completed`, `expired`, `cancelled`).
#[wasm_bindgen(js_name = isTerminal)]
pub fn is_terminal(
    #[wasm_bindgen(unchecked_param_type = "SessionStatus")] status: &str,
) -> Result<bool, JsValue> {
    Ok(status_from_js(status)?.is_terminal())
}

/// The status an SSE event name announces (`complete` → `completed`), or
/// `undefined` for names that are not ours.
#[wasm_bindgen(js_name = statusOfEvent, unchecked_return_type = "SessionStatus | undefined")]
pub fn status_of_event_js(name: &str) -> JsValue {
    status_of_event(name).map_or(JsValue::UNDEFINED, |s| JsValue::from_str(s.as_str()))
}

/// The SSE event name for a status (`completed` → `complete`).
#[wasm_bindgen(js_name = eventNameOf, unchecked_return_type = "StreamEventName")]
pub fn event_name_of(
    #[wasm_bindgen(unchecked_param_type = "SessionStatus")] status: &str,
) -> Result<String, JsValue> {
    Ok(dock_core::stream::event_name(status_from_js(status)?).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_validation_maps_codes() {
        let e = validate_create_json(r#"{"pid":"p","clientId":""}"#).unwrap_err();
        let spec = JsErrorSpec::validation(&e);
        assert_eq!(
            (spec.code.as_str(), spec.status, spec.field.as_deref()),
            ("empty_field", Some(400), Some("clientId"))
        );
        assert_eq!(
            validate_create_json(r#"{"pid":"p","clientId":"u"}"#)
                .unwrap()
                .client_id,
            "u"
        );
    }

    #[test]
    fn ids() {
        assert!(check_session_id(Some("vsn_A1b2C3d4E5f6G7h8J9k0L1")).is_ok());
        let e = check_session_id(Some("vsn_short")).unwrap_err();
        assert_eq!((e.code(), e.field()), (ErrorCode::InvalidId, Some("sid")));
        assert_eq!(
            check_session_id(None).unwrap_err().code(),
            ErrorCode::InvalidType
        );
        assert_eq!(check_platform_id("discordId", Some("123")).unwrap(), "123");
        assert_eq!(
            check_platform_id("discordId", Some("12a"))
                .unwrap_err()
                .field(),
            Some("discordId")
        );
        assert_eq!(
            check_platform_id("robloxId", None).unwrap_err().code(),
            ErrorCode::InvalidType
        );
    }

    #[test]
    fn views_must_be_consistent() {
        let pending = r#"{"sid":"vsn_A1b2C3d4E5f6G7h8J9k0L1","pid":"p","clientId":"u","guildId":null,"status":"pending","expiresAt":"2026-02-28T19:40:12.108Z","result":null}"#;
        assert!(view_from_json("v", pending).is_ok());
        let bad = pending.replace("\"pending\"", "\"completed\"");
        assert!(
            view_from_json("v", &bad)
                .unwrap_err()
                .message
                .contains("without `result`")
        );
        let ev = SseEvent {
            event: "complete".into(),
            data: pending.into(),
            id: "2".into(),
        };
        assert!(
            state_event(ev)
                .unwrap_err()
                .message
                .contains("status is `pending`")
        );
        let ev = SseEvent {
            event: "message".into(),
            data: "x".into(),
            id: String::new(),
        };
        assert_eq!(state_event(ev).unwrap(), None);
    }

    #[test]
    fn error_responses() {
        let body = r#"{"status":429,"error":{"code":"too_many_streams","message":"slow down"},"timestamp":"2026-02-28T19:35:12.108Z","version":"0.1.0"}"#;
        let s = error_response_spec(429, body, Some("3"), 0.0);
        assert_eq!(
            (
                s.code.as_str(),
                s.status,
                s.retry_after_ms,
                s.message.as_str()
            ),
            ("too_many_streams", Some(429), Some(3000), "slow down")
        );
        let s = error_response_spec(502, "<html>\nBad gateway</html>", None, 0.0);
        assert_eq!(s.code, UNEXPECTED_RESPONSE);
        assert!(
            s.message.contains("<html>Bad gateway</html>"),
            "{}",
            s.message
        );
        assert_eq!(
            error_response_spec(503, "", Some("99999999999999999999"), 0.0).retry_after_ms,
            Some(MAX_SAFE_INTEGER)
        );
    }
}
