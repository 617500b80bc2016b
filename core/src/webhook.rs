//! Webhooks: the events the service pushes to a PID's endpoint when a
//! session ends, how they are signed and verified, and when a failed
//! delivery is tried again. Pure: the clock and entropy are arguments, so
//! the server's signer and the npm client's `verifyWebhook` are this code.
//!
//! - An event is identified by what it reports (its type and session): a
//!   session ends once, so `(type, sid)` names one event, its [`EventKey`].
//!   The event id is derived from it, so every attempt carries the same id.
//! - The body is [`event_json`]: `{id, type, createdAt, data}`, `data` the
//!   session view exactly as `GET …/session/:sid` returns it.
//! - The signature header is [`SIGNATURE_HEADER`]:
//!   `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one `v1`
//!   per signing secret (two while a rotated-out secret is still honoured).
//! - Retries: [`retry_delay_ms`], exponential from `base` (×3 per attempt,
//!   capped at [`MAX_RETRY_DELAY_MS`]) with ±20 % jitter, for at most
//!   [`RETRY_SPAN_MS`] after the first attempt; then the event is failed.

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::id::SessionId;
use crate::origin::{Origin, is_loopback};
use crate::session::{Session, State};
use crate::time::Timestamp;
use crate::wire::SessionView;

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Dock-Signature";
/// What every signing secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a signature's timestamp may be from the verifier's clock (seconds).
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// How long a rotated-out secret keeps signing beside its successor.
pub const ROTATION_OVERLAP_MS: u64 = 24 * 3_600_000;
/// How long after its first attempt an event is retried at most.
pub const RETRY_SPAN_MS: u64 = 24 * 3_600_000;
/// The longest pause between two attempts.
pub const MAX_RETRY_DELAY_MS: u64 = 6 * 3_600_000;
/// The default first pause (the `webhook_retry_base_seconds` variable).
pub const DEFAULT_RETRY_BASE_SECS: u64 = 10;
/// The default limit of one attempt (the `webhook_timeout_seconds` variable).
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// The default share of requests that also drain due events: one in this
/// many (the `webhook_drain_one_in` variable).
pub const DEFAULT_DRAIN_ONE_IN: u64 = 20;

/// Whether a request also drains due events, given `one_in` (0 = never)
/// and a uniformly random `draw`: true for one draw in `one_in`.
pub fn drains(one_in: u64, draw: u32) -> bool {
    one_in != 0 && u64::from(draw) % one_in == 0
}
/// The longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2_048;
/// Recent attempts kept per PID for `GET …/webhook/deliveries`.
pub const MAX_ATTEMPT_LOG: usize = 200;

/// What happened to a session, as a webhook reports it.
#[cfg_attr(
    feature = "ts",
    derive(tsify::Tsify),
    tsify(rename = "WebhookEventType")
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// `session.completed`
    #[serde(rename = "session.completed")]
    Completed,
    /// `session.expired`
    #[serde(rename = "session.expired")]
    Expired,
    /// `session.cancelled`
    #[serde(rename = "session.cancelled")]
    Cancelled,
}

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 3] = [
        EventType::Completed,
        EventType::Expired,
        EventType::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Completed => "session.completed",
            EventType::Expired => "session.expired",
            EventType::Cancelled => "session.cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event: what ended, for which session. Stores keep it as
/// [`EventKey::member`] (`<type>|<sid>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    /// What happened.
    pub kind: EventType,
    /// To which session.
    pub sid: SessionId,
}

impl EventKey {
    /// The stored form.
    pub fn member(&self) -> String {
        format!("{}|{}", self.kind.as_str(), self.sid)
    }

    /// Parses the stored form.
    pub fn parse_member(s: &str) -> Option<EventKey> {
        let (kind, sid) = s.split_once('|')?;
        Some(EventKey {
            kind: EventType::parse(kind)?,
            sid: SessionId::parse(sid).ok()?,
        })
    }

    /// The event id: `evt_` and 32 hex digits derived from the key, the same
    /// on every attempt and unique per event (a session ends once).
    pub fn event_id(&self) -> String {
        let d = Sha256::new()
            .chain_update(b"dock-webhook-event\0")
            .chain_update(self.kind.as_str().as_bytes())
            .chain_update(b"\0")
            .chain_update(self.sid.as_str().as_bytes())
            .finalize();
        format!("evt_{}", hex(&d[..16]))
    }
}

/// A webhook event as sent (the body of a delivery).
#[cfg_attr(
    feature = "ts",
    derive(tsify::Tsify),
    tsify(rename = "WebhookEvent", missing_as_null)
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique per event, stable across attempts.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "ts", tsify(type = "WebhookEventType"))]
    pub kind: EventType,
    /// When it happened (completion, cancel, or expiry time).
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub created_at: Timestamp,
    /// The session view, as the API returns it.
    pub data: SessionView,
}

/// The event `key` reports about `session` (its record as stored), or
/// `None` when the record does not show that end (a record gone or changed).
pub fn event_for(key: &EventKey, session: &Session) -> Option<Event> {
    if session.sid != key.sid {
        return None;
    }
    let at = match (&session.state, key.kind) {
        (State::Completed(c), EventType::Completed) => c.completed_at,
        (State::Cancelled(c), EventType::Cancelled) => c.cancelled_at,
        (State::Expired(e), EventType::Expired) => e.expired_at,
        (State::Pending(_), EventType::Expired) => session.expires_at,
        _ => return None,
    };
    let at = at.max(if key.kind == EventType::Expired {
        session.expires_at
    } else {
        at
    });
    Some(Event {
        id: key.event_id(),
        kind: key.kind,
        created_at: at,
        data: session.view_at(at),
    })
}

/// The body of the event `key` reports about `session` (see [`event_for`]).
pub fn event_json(key: &EventKey, session: &Session) -> Option<String> {
    event_for(key, session).map(|e| serde_json::to_string(&e).unwrap_or_default())
}

/// A new signing secret from 32 bytes of entropy: `whsec_` and 43
/// base64url characters (256 bits).
pub fn new_secret(entropy: [u8; 32]) -> String {
    use base64::Engine as _;
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(entropy)
    )
}

/// `hex(HMAC-SHA256(secret, "<t>.<body>"))`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// The [`SIGNATURE_HEADER`] value for `body` signed at `t` (unix seconds)
/// with each of `secrets`.
pub fn signature_header(secrets: &[&str], t: u64, body: &[u8]) -> String {
    let mut h = format!("t={t}");
    for s in secrets {
        h.push_str(",v1=");
        h.push_str(&signature(s, t, body));
    }
    h
}

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("the Dock-Signature header is malformed")]
    Malformed,
    /// The header names no `v1` signature.
    #[error("the Dock-Signature header has no v1 signature")]
    NoSignature,
    /// The timestamp is further from now than the tolerance.
    #[error("the signature's timestamp {t} is outside the tolerance of {tolerance_secs} s")]
    Expired {
        /// The header's timestamp.
        t: u64,
        /// The allowed distance.
        tolerance_secs: u64,
    },
    /// No `v1` matches a signature of the body with the secret.
    #[error("no signature matches the body and secret")]
    Mismatch,
}

/// Checks a delivery: `header` must carry a timestamp within
/// `tolerance_secs` of `now_secs` and a `v1` that signs `body` with one of
/// `secrets` (compared in constant time). The timestamp on success.
pub fn verify(
    body: &[u8],
    header: &str,
    secrets: &[&str],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<u64, SignatureError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                if t.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                t = Some(v.parse::<u64>().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => sigs.push(v),
            _ => {} // other schemes: ignored, as newer senders may add them
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    if t.abs_diff(now_secs) > tolerance_secs {
        return Err(SignatureError::Expired { t, tolerance_secs });
    }
    for secret in secrets {
        let expected = signature(secret, t, body);
        if sigs
            .iter()
            .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
        {
            return Ok(t);
        }
    }
    Err(SignatureError::Mismatch)
}

/// A signing secret, and when it stops signing (a rotated-out one).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecret {
    /// `whsec_…`.
    pub secret: String,
    /// When it stops signing; `None` for the current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSecret")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A PID's webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// Where events are POSTed.
    pub url: String,
    /// Which events.
    pub events: Vec<EventType>,
    /// The current secret first, then rotated-out ones still honoured.
    pub secrets: Vec<SigningSecret>,
}

impl WebhookConfig {
    /// A webhook with one fresh secret.
    pub fn new(url: String, events: Vec<EventType>, secret: String) -> Self {
        WebhookConfig {
            url,
            events,
            secrets: vec![SigningSecret {
                secret,
                expires_at: None,
            }],
        }
    }

    /// Whether it subscribes to `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.contains(&kind)
    }

    /// The secrets that sign at `now`, current first.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| now < e))
            .map(|s| s.secret.as_str())
            .collect()
    }

    /// Makes `secret` the current one; the previous current secret keeps
    /// signing for [`ROTATION_OVERLAP_MS`], older ones end as they were due.
    pub fn rotate(&mut self, secret: String, now: Timestamp) {
        let until = now.plus_millis(ROTATION_OVERLAP_MS);
        let mut kept: Vec<SigningSecret> = self
            .secrets
            .drain(..)
            .filter(|s| s.expires_at.is_none_or(|e| now < e))
            .map(|mut s| {
                s.expires_at = Some(s.expires_at.map_or(until, |e| e.min(until)));
                s
            })
            .collect();
        kept.insert(
            0,
            SigningSecret {
                secret,
                expires_at: None,
            },
        );
        self.secrets = kept;
    }

    /// The events as stores match them: ` <type> <type> ` (a script tests
    /// for ` <type> ` in it).
    pub fn events_field(&self) -> String {
        let mut s = String::from(" ");
        for e in &self.events {
            s.push_str(e.as_str());
            s.push(' ');
        }
        s
    }

    /// What the admin API shows (no secret).
    pub fn view(&self) -> WebhookView {
        WebhookView {
            url: self.url.clone(),
            events: self.events.clone(),
            secret: None,
        }
    }
}

/// `data` of the webhook admin routes; `secret` only when one was just made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    /// Where events are POSTed.
    pub url: String,
    /// Which events.
    pub events: Vec<EventType>,
    /// The new signing secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// An event waiting in a PID's outbox, with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxState {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt_at: Option<Timestamp>,
    /// The body as first sent (every retry sends the same bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// How an attempt ended for its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// Failed; tried again at `nextAttemptAt`.
    Retrying,
    /// Failed for the last time (or could not be built): given up.
    Failed,
}

impl Outcome {
    /// The wire name (`delivered`, `retrying`, `failed`), as stores record it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retrying => "retrying",
            Outcome::Failed => "failed",
        }
    }
}

/// One delivery attempt, as `GET …/webhook/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The event's id.
    pub event_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The session.
    pub sid: SessionId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made.
    pub at: Timestamp,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed, if it did (never a secret).
    pub error: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// When the event is tried again (`retrying` only).
    pub next_attempt_at: Option<Timestamp>,
}

/// `data` of `GET …/webhook/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptList {
    /// Newest first.
    pub deliveries: Vec<Attempt>,
}

/// Whether an answer with this status delivered the event.
pub fn delivered(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The pause before attempt `attempts + 1`, after `attempts` failed ones
/// (≥ 1), the first of them at `first_at`: `base_ms × 3^(attempts-1)`
/// capped at [`MAX_RETRY_DELAY_MS`], times a jitter factor in
/// [0.8, 1.2) drawn from `jitter`. `None` when that attempt would fall
/// after [`RETRY_SPAN_MS`] from the first: give up.
pub fn retry_delay_ms(
    attempts: u32,
    base_ms: u64,
    jitter: u16,
    first_at: Timestamp,
    now: Timestamp,
) -> Option<u64> {
    let exp = attempts.saturating_sub(1).min(30);
    let raw = base_ms
        .saturating_mul(3u64.saturating_pow(exp))
        .min(MAX_RETRY_DELAY_MS);
    // 0.8 + 0.4 × jitter / 65536
    let delay = raw / 5 * 4 + raw * 2 / 5 * u64::from(jitter) / 65_536;
    let next = now.plus_millis(delay);
    (next <= first_at.plus_millis(RETRY_SPAN_MS)).then_some(delay)
}

/// Whether a webhook URL may be called: https (or http to a loopback
/// address), no credentials or fragment, and its origin allowed by one of
/// the operator's `allowed` origins (`scheme://host[:port]`, a host may
/// start with `*.` for any subdomain). The reason when not.
pub fn check_url(url: &str, allowed: &[String]) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let origin = Origin::of_url(url).ok_or("must be an absolute http(s) URL")?;
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    if origin.scheme == "http" && !is_loopback(&origin.host) {
        return Err("must use https (http only to a loopback address)".into());
    }
    if allowed
        .iter()
        .filter_map(|a| Origin::of_url(a))
        .any(|a| a.allows(&origin))
    {
        Ok(())
    } else if allowed.is_empty() {
        Err("no webhook destinations are allowed by the operator (webhook_origin_* variables are empty)".into())
    } else {
        Err("its origin is not in the operator's allowed webhook origins".into())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Pid;
    use proptest::prelude::*;

    fn ts(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    const SECRET: &str = "whsec_test-secret";

    #[test]
    fn one_request_in_n_drains_and_zero_turns_it_off() {
        let share = |one_in| (0..20_000u32).filter(|d| drains(one_in, *d)).count();
        assert_eq!(share(20), 1_000);
        assert_eq!(share(1), 20_000);
        assert_eq!(share(0), 0);
        assert!(drains(7, 0) && drains(7, 14) && !drains(7, 15));
        assert!(!drains(100_000, u32::MAX) && drains(1, u32::MAX));
    }

    #[test]
    fn signature_matches_a_reference_hmac() {
        // Python: hmac.new(b"whsec_test-secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(SECRET, 1_700_000_000, b"{}"),
            "80b42dac3da95f0e6efa0042ecc58b0c697e93163bc8315a556f4efea515f1b9"
        );
    }

    #[test]
    fn verify_accepts_what_it_signed_and_nothing_else() {
        let body = br#"{"id":"evt_1"}"#;
        let h = signature_header(&[SECRET], 1_000, body);
        assert_eq!(verify(body, &h, &[SECRET], 1_000, 300), Ok(1_000));
        assert_eq!(verify(body, &h, &[SECRET], 1_300, 300), Ok(1_000));
        assert_eq!(
            verify(body, &h, &[SECRET], 1_301, 300),
            Err(SignatureError::Expired {
                t: 1_000,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            verify(br#"{"id":"evt_2"}"#, &h, &[SECRET], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(body, &h, &["whsec_other"], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        // A forged timestamp invalidates the signature.
        let forged = h.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(body, &forged, &[SECRET], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "t=1", "v1=ab", "t=x,v1=ab", "t=1,t=2,v1=ab", "garbage"] {
            assert!(verify(body, bad, &[SECRET], 1, 300).is_err(), "{bad}");
        }
        assert_eq!(
            verify(body, "t=1", &[SECRET], 1, 300),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn rotation_signs_with_both_secrets_for_a_day() {
        let mut cfg = WebhookConfig::new(
            "https://h.example/x".into(),
            EventType::ALL.to_vec(),
            "whsec_old".into(),
        );
        cfg.rotate("whsec_new".into(), ts(1_000));
        assert_eq!(
            cfg.signing_secrets(ts(1_000)),
            vec!["whsec_new", "whsec_old"]
        );
        let body = b"{}";
        let h = signature_header(&cfg.signing_secrets(ts(1_000)), 1, body);
        assert_eq!(h.matches("v1=").count(), 2);
        // A receiver that knows only one of them accepts it.
        assert!(verify(body, &h, &["whsec_old"], 1, 300).is_ok());
        assert!(verify(body, &h, &["whsec_new"], 1, 300).is_ok());
        let later = ts(1_000 + ROTATION_OVERLAP_MS);
        assert_eq!(cfg.signing_secrets(later), vec!["whsec_new"]);
        // Rotating twice within the day keeps the first one's deadline.
        cfg.rotate("whsec_newer".into(), ts(2_000));
        assert_eq!(cfg.secrets.len(), 3);
        assert_eq!(
            cfg.secrets[2].expires_at,
            Some(ts(1_000 + ROTATION_OVERLAP_MS))
        );
        assert!(!format!("{cfg:?}").contains("whsec_"));
    }

    #[test]
    fn secrets_carry_256_bits() {
        let s = new_secret([7; 32]);
        assert!(s.starts_with(SECRET_PREFIX));
        assert_eq!(s.len(), SECRET_PREFIX.len() + 43);
        assert_ne!(s, new_secret([8; 32]));
    }

    fn session() -> Session {
        Session::new(
            SessionId::from_entropy([3; 16]),
            Pid::parse("acme").unwrap(),
            "u1".into(),
            None,
            ts(10_000),
            300,
        )
    }

    #[test]
    fn events_are_stable_and_typed_by_the_record() {
        let s = session();
        let k = EventKey {
            kind: EventType::Expired,
            sid: s.sid.clone(),
        };
        let e = event_for(&k, &s).unwrap();
        assert_eq!(e.created_at, s.expires_at);
        assert_eq!(e.data.status, crate::wire::Status::Expired);
        assert_eq!(event_json(&k, &s), event_json(&k, &s));
        assert_eq!(EventKey::parse_member(&k.member()), Some(k.clone()));
        let done = s.complete(ts(11_000), "1", "2", None).unwrap();
        let crate::Completion::Applied(done) = done else {
            panic!()
        };
        assert_eq!(event_for(&k, &done), None);
        let kc = EventKey {
            kind: EventType::Completed,
            sid: s.sid.clone(),
        };
        let body = event_json(&kc, &done).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "session.completed");
        assert_eq!(v["id"], kc.event_id());
        assert_eq!(v["data"]["status"], "completed");
        assert_eq!(v["data"]["result"]["robloxId"], "2");
        assert_ne!(kc.event_id(), k.event_id());
    }

    #[test]
    fn urls_must_be_allowed_by_the_operator() {
        let allowed = vec![
            "https://hooks.example.com".to_string(),
            "https://*.corp.example".to_string(),
            "http://127.0.0.1:9000".to_string(),
        ];
        for ok in [
            "https://hooks.example.com/dock",
            "https://hooks.example.com:443/x?y=1",
            "https://a.corp.example/x",
            "https://b.a.corp.example/x",
            "http://127.0.0.1:9000/hook",
        ] {
            assert_eq!(check_url(ok, &allowed), Ok(()), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/dock",
            "https://hooks.example.com:8443/",
            "https://evil.example.com/",
            "https://corp.example/",
            "https://evilcorp.example/",
            "http://127.0.0.1:9001/",
            "http://10.0.0.1/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#x",
            "ftp://hooks.example.com/",
            "hooks.example.com",
        ] {
            assert!(check_url(bad, &allowed).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/", &[]).is_err());
    }

    #[test]
    fn retries_back_off_for_a_day_then_stop() {
        let first = ts(0);
        let mut now = first;
        let mut delays = vec![];
        let mut n = 1;
        while let Some(d) = retry_delay_ms(n, 10_000, 32_768, first, now) {
            delays.push(d);
            now = now.plus_millis(d);
            n += 1;
        }
        assert_eq!(delays[0], 10_000);
        assert_eq!(delays[1], 30_000);
        assert!(delays.iter().all(|d| *d <= MAX_RETRY_DELAY_MS * 6 / 5));
        assert!(now.as_millis() <= RETRY_SPAN_MS);
        assert!((8..=12).contains(&delays.len()), "{delays:?}");
        // Jitter stays within ±20 %.
        assert_eq!(retry_delay_ms(1, 10_000, 0, first, first), Some(8_000));
        assert!(retry_delay_ms(1, 10_000, u16::MAX, first, first).unwrap() < 12_000);
    }

    proptest! {
        #[test]
        fn tampering_is_always_detected(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            flip in any::<prop::sample::Index>(),
            t in 0u64..4_000_000_000,
        ) {
            let h = signature_header(&[SECRET], t, &body);
            prop_assert_eq!(verify(&body, &h, &[SECRET], t, 300), Ok(t));
            if !body.is_empty() {
                let mut bad = body.clone();
                let i = flip.index(bad.len());
                bad[i] ^= 1;
                prop_assert_eq!(verify(&bad, &h, &[SECRET], t, 300), Err(SignatureError::Mismatch));
            }
        }

        #[test]
        fn headers_never_panic(h in ".{0,200}") {
            let _ = verify(b"x", &h, &[SECRET], 0, 300);
        }
    }
}
