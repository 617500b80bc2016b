//! The exact JSON wire format of the API.
//!
//! Field names and order follow the spec page (`shared/spec`): the success
//! envelope `{status, data, timestamp, version, verifyRequestsRemaining?}`,
//! the create `data`, the session views, and our one error envelope
//! `{status, error: {code, message, field?}, timestamp, version}`.
//! Serialization is the only way JSON leaves a host: handlers call
//! [`envelope_json`] / [`error_json`], never `format!`.
//!
//! With feature `ts` (the npm bindings only), the types that cross to
//! JavaScript also derive their TypeScript declarations (tsify), from these
//! very serde attributes and doc comments. `tsify(missing_as_null)`: the
//! bindings hand objects to JavaScript as JSON has them (`None` is `null`).

use serde::{Deserialize, Serialize};

use crate::id::{KeyId, Pid, SessionId};
use crate::quota::Quota;
use crate::time::Timestamp;

/// The service's own version string, sent as `version` in every envelope.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A session's state as the API names it: `pending` until the user verifies;
/// then exactly one of the others, forever.
// In TypeScript it keeps the name integrators know it by (each field of this
// type says `tsify(type = "SessionStatus")`: tsify names references by the
// Rust ident).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(rename = "SessionStatus"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the user.
    Pending,
    /// Verified; `result` is populated.
    Completed,
    /// Reached `expiresAt` without completing.
    Expired,
    /// Cancelled by the integrator.
    Cancelled,
}

impl Status {
    /// Whether no further change can happen.
    pub fn is_terminal(self) -> bool {
        self != Status::Pending
    }

    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }
}

/// `result` of a completed session.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationResult {
    /// Verified Discord user id (decimal digits).
    pub discord_id: String,
    /// Verified Roblox user id (decimal digits).
    pub roblox_id: String,
    /// Whether this Discord user was linked to a different Roblox account in the PID dataset.
    pub link_changed: bool,
    /// That previous Roblox id when `linkChanged`, else `null`.
    pub previous_roblox_id: Option<String>,
}

/// A session as integrators see it: `data` of GET/DELETE, and each SSE event's data.
///
/// The spec requires `sid`, `pid`, `status` and `result` (null until
/// completion). We also return `clientId`, `guildId` and `expiresAt`, which the
/// session stores, so an integrator can map a result back to its user without
/// keeping its own table.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Session id.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub sid: SessionId,
    /// The PID it belongs to.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub pid: Pid,
    /// The integrator's user id.
    pub client_id: String,
    /// Optional guild context (`null` when not given).
    pub guild_id: Option<String>,
    /// Current state.
    #[cfg_attr(feature = "ts", tsify(type = "SessionStatus"))]
    pub status: Status,
    /// When it expires (or expired): ISO 8601 UTC with milliseconds.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub expires_at: Timestamp,
    /// The result: an object exactly when `status` is `completed`, else `null`.
    pub result: Option<VerificationResult>,
    /// The create's `expectedDiscordId`; absent when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_discord_id: Option<String>,
    /// The create's `displayLabel`; absent when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_label: Option<String>,
    /// The create's `returnUrl`; absent when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
}

/// `data` of `POST /api/v1/verify/session`, in the spec's field order.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSession {
    /// Session id.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub sid: SessionId,
    /// The PID it belongs to.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub pid: Pid,
    /// The integrator's user id.
    pub client_id: String,
    /// When it expires: ISO 8601 UTC with milliseconds.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub expires_at: Timestamp,
    /// Whether an active session for the same (pid, clientId, guildId) was returned.
    pub reused_existing: bool,
    /// Where to send the user.
    pub verify_url: String,
}

/// The success envelope every endpoint answers with.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// The HTTP status code of the response.
    pub status: u16,
    /// The payload.
    pub data: T,
    /// When the response was produced: ISO 8601 UTC with milliseconds.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub timestamp: Timestamp,
    /// The service's version string.
    pub version: String,
    /// Creates left in the key's quota window (create responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_requests_remaining: Option<u64>,
}

/// The `error` object of the error envelope.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, such as `invalid_field` (core's `ErrorCode`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error envelope every failure answers with.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The HTTP status code of the response.
    pub status: u16,
    /// What went wrong.
    pub error: ErrorBody,
    /// When the response was produced: ISO 8601 UTC with milliseconds.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub timestamp: Timestamp,
    /// The service's version string.
    pub version: String,
}

/// `data` of `POST /api/v1/admin/pids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidRecord {
    /// The PID.
    pub pid: Pid,
    /// Its display name (shown to users on the verify page).
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// The origins its sessions' `returnUrl`s may be on; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub return_origins: Vec<String>,
}

/// `data` of `POST /api/v1/admin/pids/:pid/keys`: the only time `key` is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKey {
    /// The key's public id (for revocation).
    pub key_id: KeyId,
    /// The PID the key is scoped to.
    pub pid: Pid,
    /// The secret bearer key. Stored only as a hash.
    pub key: String,
    /// The key's create quota.
    pub quota: Quota,
    /// When it was issued.
    pub created_at: Timestamp,
}

/// An API key as stores keep it (indexed by the hash of its secret; the
/// secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// The key's public id.
    pub key_id: KeyId,
    /// The PID it is scoped to.
    pub pid: Pid,
    /// Its create quota.
    pub quota: Quota,
    /// When it was issued.
    pub created_at: Timestamp,
}

/// `data` of `GET /api/v1/public/discord-to-roblox`.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscordLink {
    /// The Discord user id asked about.
    pub discord_id: String,
    /// The Roblox account it is linked to in this PID.
    pub roblox_id: String,
}

/// `data` of `GET /api/v1/public/roblox-to-discord`.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RobloxLinks {
    /// The Roblox user id asked about.
    pub roblox_id: String,
    /// Every Discord account linked to it in this PID.
    pub discord_ids: Vec<String>,
}

/// `data` of `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` (liveness) or `ready`.
    pub status: String,
    /// The store kind (`redis` or `sqlite`), on `/readyz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// Session counters of `GET /api/v1/admin/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounters {
    /// Sessions created (creates that did not reuse).
    pub created: u64,
    /// Creates answered with the live session (`reusedExisting: true`).
    pub reused: u64,
    /// Sessions completed.
    pub completed: u64,
    /// Sessions that reached `expiresAt` while pending, each counted once.
    pub expired: u64,
    /// Sessions cancelled.
    pub cancelled: u64,
}

/// `data` of `GET /api/v1/admin/stats`: counters kept in the store, so they
/// add up across instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// The PID of `?pid=`; absent when the counters sum over every PID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<Pid>,
    /// The store kind (`redis` or `sqlite`).
    pub store: String,
    /// How many PIDs the counters cover.
    pub pids: u64,
    /// Session counters.
    pub sessions: SessionCounters,
    /// Creates refused with 429 `quota_exceeded`.
    pub quota_rejections: u64,
    /// Links erased by the operator (data-protection requests).
    pub links_erased: u64,
    /// Open streams and long-polls now (live waiter leases).
    pub waiters: u64,
    /// Requests and streams that failed on the store, service-wide (not per
    /// PID), as instances reported them once the store answered again.
    pub store_errors: u64,
    /// Webhook deliveries.
    pub webhooks: WebhookCounters,
}

/// The webhook part of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCounters {
    /// Delivery attempts made.
    pub attempts: u64,
    /// Events delivered (a 2xx answer).
    pub delivered: u64,
    /// Events given up on after their retries.
    pub failed: u64,
}

/// `data` of `DELETE /api/v1/admin/keys/:keyId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedKey {
    /// The revoked key's id.
    pub key_id: KeyId,
    /// Always true.
    pub revoked: bool,
}

/// `data` of `GET /api/v1/admin/pids`: one page, by PID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PidPage {
    /// The PIDs of this page, in PID order.
    pub pids: Vec<PidRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A key as the admin API shows it after issuing: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// The key's public id.
    pub key_id: KeyId,
    /// The PID it is scoped to.
    pub pid: Pid,
    /// Its create quota.
    pub quota: Quota,
    /// When it was issued.
    pub created_at: Timestamp,
}

impl From<KeyRecord> for KeyInfo {
    fn from(k: KeyRecord) -> Self {
        KeyInfo {
            key_id: k.key_id,
            pid: k.pid,
            quota: k.quota,
            created_at: k.created_at,
        }
    }
}

/// `data` of `GET /api/v1/admin/pids/:pid/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyList {
    /// The PID's live keys, by key id.
    pub keys: Vec<KeyInfo>,
}

/// One link of a PID's dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountLink {
    /// The Discord user.
    pub discord_id: String,
    /// The Roblox account linked to it.
    pub roblox_id: String,
}

/// `data` of `DELETE /api/v1/admin/pids/:pid/links/{discord,roblox}/:id`:
/// the links erased (both lookup directions of each are gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasedLinks {
    /// The PID.
    pub pid: Pid,
    /// What was erased; empty when nothing was linked.
    pub erased: Vec<AccountLink>,
}

/// Serializes a success envelope for `data`, produced at `now`.
pub fn envelope_json<T: Serialize>(
    status: u16,
    data: T,
    now: Timestamp,
    verify_requests_remaining: Option<u64>,
) -> String {
    let env = Envelope {
        status,
        data,
        timestamp: now,
        version: SERVICE_VERSION.to_owned(),
        verify_requests_remaining,
    };
    // Our types serialize infallibly (string keys, no non-finite floats).
    serde_json::to_string(&env).unwrap_or_else(|e| internal_error_fallback(&e, now))
}

fn internal_error_fallback(e: &serde_json::Error, now: Timestamp) -> String {
    error_json(
        &crate::error::ApiError::internal(format!("serialization failed: {e}")),
        now,
    )
}

/// Serializes the error envelope for `err`, produced at `now`.
pub fn error_json(err: &crate::error::ApiError, now: Timestamp) -> String {
    let env = ErrorEnvelope {
        status: err.status(),
        error: ErrorBody {
            code: err.code().as_str().to_owned(),
            message: err.message().to_owned(),
            field: err.field().map(str::to_owned),
        },
        timestamp: now,
        version: SERVICE_VERSION.to_owned(),
    };
    serde_json::to_string(&env).unwrap_or_else(|_| {
        // Unreachable for these types; keep a valid JSON answer regardless.
        String::from(
            r#"{"status":500,"error":{"code":"internal_error","message":"serialization failed"}}"#,
        )
    })
}

/// Serializes a bare session view: the `data:` line of an SSE event.
pub fn view_json(view: &SessionView) -> String {
    serde_json::to_string(view).unwrap_or_else(|_| String::from("null"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The create response exactly as the spec page shows it.
    const SPEC_CREATE_RESPONSE: &str = r#"{
  "status": 200,
  "data": {
    "sid": "vsn_A1b2C3d4E5f6G7h8J9k0L1",
    "pid": "pid-yourapp",
    "clientId": "user_123",
    "expiresAt": "2026-02-28T19:40:12.108Z",
    "reusedExisting": false,
    "verifyUrl": "https://api.docksys.xyz/v1/api/verify/discord?pid=pid-yourapp&sid=vsn_A1b2C3d4E5f6G7h8J9k0L1"
  },
  "timestamp": "2026-02-28T19:35:12.108Z",
  "version": "1.3.0",
  "verifyRequestsRemaining": 1999
}"#;

    /// The create request body of the spec's curl call.
    const SPEC_CREATE_REQUEST: &str = r#"{
    "pid": "pid-yourapp",
    "clientId": "user_123",
    "guildId": "optional"
  }"#;

    fn same_json_same_order<T: Serialize + for<'de> Deserialize<'de>>(text: &str) {
        let parsed: T = serde_json::from_str(text).expect("parses into core's type");
        let original: Value = serde_json::from_str(text).unwrap();
        // serde_json's preserve_order keeps the spec's field order in `original`;
        // comparing the compact strings checks values *and* order.
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            serde_json::to_string(&original).unwrap()
        );
    }

    #[test]
    fn golden_spec_create_response() {
        same_json_same_order::<Envelope<CreatedSession>>(SPEC_CREATE_RESPONSE);
    }

    #[test]
    fn golden_spec_create_request() {
        let req = crate::request::CreateSessionRequest::parse(
            SPEC_CREATE_REQUEST.as_bytes(),
            &crate::request::Limits::default(),
        )
        .unwrap();
        assert_eq!(req.pid.as_str(), "pid-yourapp");
        assert_eq!(req.client_id, "user_123");
        assert_eq!(req.guild_id.as_deref(), Some("optional"));
        same_json_same_order::<crate::request::CreateSessionRequest>(SPEC_CREATE_REQUEST);
    }

    #[test]
    fn golden_views() {
        same_json_same_order::<SessionView>(
            r#"{"sid":"vsn_A1b2C3d4E5f6G7h8J9k0L1","pid":"pid-yourapp","clientId":"user_123","guildId":null,"status":"pending","expiresAt":"2026-02-28T19:40:12.108Z","result":null}"#,
        );
        same_json_same_order::<SessionView>(
            r#"{"sid":"vsn_A1b2C3d4E5f6G7h8J9k0L1","pid":"pid-yourapp","clientId":"user_123","guildId":"g1","status":"completed","expiresAt":"2026-02-28T19:40:12.108Z","result":{"discordId":"80351110224678912","robloxId":"1","linkChanged":true,"previousRobloxId":"2"}}"#,
        );
        same_json_same_order::<SessionView>(
            r#"{"sid":"vsn_A1b2C3d4E5f6G7h8J9k0L1","pid":"pid-yourapp","clientId":"user_123","guildId":null,"status":"expired","expiresAt":"2026-02-28T19:40:12.108Z","result":null}"#,
        );
    }

    #[test]
    fn envelope_builds_the_spec_shape() {
        let now = Timestamp::parse_iso8601("2026-02-28T19:35:12.108Z").unwrap();
        let data = CreatedSession {
            sid: SessionId::parse("vsn_A1b2C3d4E5f6G7h8J9k0L1").unwrap(),
            pid: Pid::parse("pid-yourapp").unwrap(),
            client_id: "user_123".into(),
            expires_at: now.plus_secs(300),
            reused_existing: false,
            verify_url: crate::verify_url::verify_url(
                "https://api.docksys.xyz",
                &Pid::parse("pid-yourapp").unwrap(),
                &SessionId::parse("vsn_A1b2C3d4E5f6G7h8J9k0L1").unwrap(),
            ),
        };
        let json: Value = serde_json::from_str(&envelope_json(200, data, now, Some(1999))).unwrap();
        let mut spec: Value = serde_json::from_str(SPEC_CREATE_RESPONSE).unwrap();
        spec["version"] = Value::String(SERVICE_VERSION.into());
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            serde_json::to_string(&spec).unwrap()
        );
    }

    #[test]
    fn reads_omit_verify_requests_remaining() {
        let s = envelope_json(200, Value::Null, Timestamp::from_millis(0), None);
        assert!(!s.contains("verifyRequestsRemaining"), "{s}");
    }
}
