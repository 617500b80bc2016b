//! Validation of request bodies, with one stable error per way a body can be wrong.
//!
//! Bodies are parsed into a JSON object first and then checked field by field,
//! so that every problem has a precise code (`missing_field`, `invalid_type`,
//! `unknown_field`, …) and names its field. (serde attributes such as
//! `deny_unknown_fields` would give one opaque error, and serde-wasm-bindgen
//! ignores them.)
//!
//! Limits (all in [`Limits`], configurable through Spin variables):
//!
//! | what | default |
//! |---|---|
//! | body | 16 KiB (`max_body_bytes`) |
//! | `clientId` | 256 characters |
//! | `guildId` | 128 characters |
//! | PID display `name` | 100 characters |
//! | `displayLabel` | 100 characters |
//! | `discordId`, `robloxId` | 1–20 decimal digits (Discord snowflakes, Roblox user ids) |
//! | `pid` | see [`Pid::parse`] |
//!
//! Text fields may not contain control characters (U+0000–U+001F, U+007F–U+009F).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::Pid;
use crate::quota::Quota;

/// Size and length limits for request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// Longest `clientId`, in characters.
    pub max_client_id_chars: usize,
    /// Longest `guildId`, in characters.
    pub max_guild_id_chars: usize,
    /// Longest PID display name, in characters.
    pub max_name_chars: usize,
    /// Longest `displayLabel`, in characters.
    pub max_display_label_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024,
            max_client_id_chars: 256,
            max_guild_id_chars: 128,
            max_name_chars: 100,
            max_display_label_chars: 100,
        }
    }
}

/// Longest Discord or Roblox id, in digits (u64::MAX has 20).
pub const MAX_PLATFORM_ID_DIGITS: usize = 20;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not valid JSON.
    #[error("the body is not valid JSON: {detail}")]
    NotJson {
        /// The parser's explanation.
        detail: String,
    },
    /// Valid JSON, but not an object.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// Over the size limit.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A non-JSON Content-Type.
    #[error("Content-Type must be application/json, not {content_type:?}")]
    UnsupportedMediaType {
        /// What the client sent.
        content_type: String,
    },
    /// A required field is absent or null.
    #[error("`{field}` is required")]
    Missing {
        /// The field.
        field: String,
    },
    /// A string field is empty.
    #[error("`{field}` must not be empty")]
    Empty {
        /// The field.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A string field is too long.
    #[error("`{field}` must be at most {max} characters")]
    TooLong {
        /// The field.
        field: String,
        /// Its limit.
        max: usize,
    },
    /// A field we do not know.
    #[error("unknown field `{field}`")]
    Unknown {
        /// The field.
        field: String,
    },
    /// A text field contains control characters.
    #[error("`{field}` must not contain control characters")]
    ControlCharacters {
        /// The field.
        field: String,
    },
    /// A field's value breaks its format.
    #[error("`{field}` is invalid: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What the format is.
        reason: String,
    },
}

/// Refuses a Content-Type that is present and not JSON (`application/json`,
/// any `+json` type, parameters allowed). An absent Content-Type is accepted.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), RequestError> {
    let Some(ct) = content_type else {
        return Ok(());
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(RequestError::UnsupportedMediaType {
            content_type: ct.chars().take(100).collect(),
        })
    }
}

/// Parses a body into a JSON object within the size limit.
pub fn parse_object(body: &[u8], limits: &Limits) -> Result<Map<String, Value>, RequestError> {
    if body.len() > limits.max_body_bytes {
        return Err(RequestError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError::NotJson {
        detail: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(RequestError::NotAnObject),
    }
}

/// Field-by-field reader over a parsed object that tracks which fields were used.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn new(map: Map<String, Value>, known: &[&str]) -> Result<Self, RequestError> {
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(RequestError::Unknown {
                field: truncate(unknown),
            });
        }
        Ok(Fields { map })
    }

    fn optional_string(&mut self, field: &str, max: usize) -> Result<Option<String>, RequestError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.is_empty() {
                    return Err(RequestError::Empty {
                        field: field.into(),
                    });
                }
                if s.chars().count() > max {
                    return Err(RequestError::TooLong {
                        field: field.into(),
                        max,
                    });
                }
                if s.chars().any(char::is_control) {
                    return Err(RequestError::ControlCharacters {
                        field: field.into(),
                    });
                }
                Ok(Some(s))
            }
            Some(_) => Err(RequestError::WrongType {
                field: field.into(),
                expected: "a string",
            }),
        }
    }

    fn string(&mut self, field: &str, max: usize) -> Result<String, RequestError> {
        self.optional_string(field, max)?
            .ok_or_else(|| RequestError::Missing {
                field: field.into(),
            })
    }

    fn pid(&mut self, field: &str) -> Result<Pid, RequestError> {
        let s = self.string(field, Pid::MAX_LEN)?;
        Pid::parse(&s).map_err(|e| RequestError::Invalid {
            field: field.into(),
            reason: e.to_string(),
        })
    }

    fn platform_id(&mut self, field: &str) -> Result<String, RequestError> {
        self.optional_platform_id(field)?
            .ok_or_else(|| RequestError::Missing {
                field: field.into(),
            })
    }

    fn optional_platform_id(&mut self, field: &str) -> Result<Option<String>, RequestError> {
        let Some(s) = self.optional_string(field, MAX_PLATFORM_ID_DIGITS)? else {
            return Ok(None);
        };
        if s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Some(s))
        } else {
            Err(RequestError::Invalid {
                field: field.into(),
                reason: "must be decimal digits".into(),
            })
        }
    }

    fn optional_u64(&mut self, field: &str) -> Result<Option<u64>, RequestError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| RequestError::WrongType {
                field: field.into(),
                expected: "a whole number",
            }),
            Some(_) => Err(RequestError::WrongType {
                field: field.into(),
                expected: "a whole number",
            }),
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The body of `POST /api/v1/verify/session`.
// `string | null` below: the body may give `null` for an optional field (the
// parser takes it as absent), which `skip_serializing_if` alone would
// declare as `string`.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    /// The PID the session belongs to.
    #[cfg_attr(feature = "ts", tsify(type = "string"))]
    pub pid: Pid,
    /// The integrator's user id.
    pub client_id: String,
    /// Optional guild context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", tsify(type = "string | null"))]
    pub guild_id: Option<String>,
    /// Optional: the only Discord account (decimal id) that may complete the
    /// session (the Discord callback refuses any other; the session stays
    /// pending). Part of the reuse identity: a create with another value gets
    /// its own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", tsify(type = "string | null"))]
    pub expected_discord_id: Option<String>,
    /// Optional: how the integrator names the user (at most 100 characters),
    /// shown on the verify page so that someone sent another person's link
    /// can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", tsify(type = "string | null"))]
    pub display_label: Option<String>,
    /// Optional: where the verify pages send the user back when the session
    /// ends (`sid` and `status` appended). Its origin must be one the
    /// operator registered for the PID (`returnOrigins`), else 400
    /// `return_url_not_allowed`. Not part of the reuse identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", tsify(type = "string | null"))]
    pub return_url: Option<String>,
}

impl CreateSessionRequest {
    /// Validates a create body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, RequestError> {
        let mut f = Fields::new(
            parse_object(body, limits)?,
            &[
                "pid",
                "clientId",
                "guildId",
                "expectedDiscordId",
                "displayLabel",
                "returnUrl",
            ],
        )?;
        Ok(CreateSessionRequest {
            pid: f.pid("pid")?,
            client_id: f.string("clientId", limits.max_client_id_chars)?,
            guild_id: f.optional_string("guildId", limits.max_guild_id_chars)?,
            expected_discord_id: f.optional_platform_id("expectedDiscordId")?,
            display_label: f.optional_string("displayLabel", limits.max_display_label_chars)?,
            return_url: match f.optional_string("returnUrl", MAX_RETURN_URL_CHARS)? {
                Some(u)
                    if crate::origin::origin_of(&u).is_none()
                        || u.contains(char::is_whitespace) =>
                {
                    return Err(RequestError::Invalid {
                        field: "returnUrl".into(),
                        reason: "must be an absolute http(s) URL without credentials".into(),
                    });
                }
                u => u,
            },
        })
    }
}

/// The longest `returnUrl`.
pub const MAX_RETURN_URL_CHARS: usize = 2_048;
/// Most return origins a PID may register.
pub const MAX_RETURN_ORIGINS: usize = 20;

/// `POST /api/v1/admin/pids` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePidRequest {
    /// The new PID.
    pub pid: Pid,
    /// Its display name, shown to users on the verify page.
    pub name: String,
}

impl CreatePidRequest {
    /// Validates the body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, RequestError> {
        let mut f = Fields::new(parse_object(body, limits)?, &["pid", "name"])?;
        Ok(CreatePidRequest {
            pid: f.pid("pid")?,
            name: f.string("name", limits.max_name_chars)?,
        })
    }
}

/// `POST /api/v1/admin/pids/:pid/keys` body (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateKeyRequest {
    /// The key's quota; [`Quota::default`] when absent.
    pub quota: Quota,
}

impl CreateKeyRequest {
    /// Validates the body; an empty body means all defaults.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(CreateKeyRequest {
                quota: Quota::default(),
            });
        }
        let mut f = Fields::new(parse_object(body, limits)?, &["quota"])?;
        let quota = match f.map.remove("quota") {
            None | Some(Value::Null) => Quota::default(),
            Some(Value::Object(q)) => {
                let mut q = Fields::new(q, &["limit", "windowSeconds"])?;
                let d = Quota::default();
                let quota = Quota {
                    limit: q.optional_u64("limit")?.unwrap_or(d.limit),
                    window_secs: q.optional_u64("windowSeconds")?.unwrap_or(d.window_secs),
                };
                check_quota(&quota)?;
                quota
            }
            Some(_) => {
                return Err(RequestError::WrongType {
                    field: "quota".into(),
                    expected: "an object",
                });
            }
        };
        Ok(CreateKeyRequest { quota })
    }
}

/// `POST /api/v1/admin/sessions/:sid/complete` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteSessionRequest {
    /// The verified Discord user id.
    pub discord_id: String,
    /// The verified Roblox user id.
    pub roblox_id: String,
}

impl CompleteSessionRequest {
    /// Validates the body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, RequestError> {
        let mut f = Fields::new(parse_object(body, limits)?, &["discordId", "robloxId"])?;
        Ok(CompleteSessionRequest {
            discord_id: f.platform_id("discordId")?,
            roblox_id: f.platform_id("robloxId")?,
        })
    }
}

/// Validates a Discord or Roblox id given outside a body (query parameters).
pub fn parse_platform_id(field: &str, value: &str) -> Result<String, RequestError> {
    let mut map = Map::new();
    map.insert(field.to_owned(), Value::String(value.to_owned()));
    Fields { map }.platform_id(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, ErrorCode};

    fn code(body: &str) -> (ErrorCode, Option<String>) {
        let e: ApiError = CreateSessionRequest::parse(body.as_bytes(), &Limits::default())
            .expect_err(body)
            .into();
        (e.code(), e.field().map(str::to_owned))
    }

    #[test]
    fn create_table() {
        use ErrorCode::*;
        let long = "x".repeat(257);
        let cases: Vec<(String, ErrorCode, Option<&str>)> = vec![
            ("".into(), InvalidJson, None),
            ("{".into(), InvalidJson, None),
            ("[]".into(), InvalidJson, None),
            ("\"pid\"".into(), InvalidJson, None),
            (r#"{"clientId":"u"}"#.into(), MissingField, Some("pid")),
            (
                r#"{"pid":null,"clientId":"u"}"#.into(),
                MissingField,
                Some("pid"),
            ),
            (r#"{"pid":"p"}"#.into(), MissingField, Some("clientId")),
            (
                r#"{"pid":"","clientId":"u"}"#.into(),
                EmptyField,
                Some("pid"),
            ),
            (
                r#"{"pid":"p","clientId":""}"#.into(),
                EmptyField,
                Some("clientId"),
            ),
            (
                r#"{"pid":"p","clientId":"u","guildId":""}"#.into(),
                EmptyField,
                Some("guildId"),
            ),
            (
                r#"{"pid":1,"clientId":"u"}"#.into(),
                InvalidType,
                Some("pid"),
            ),
            (
                r#"{"pid":"p","clientId":["u"]}"#.into(),
                InvalidType,
                Some("clientId"),
            ),
            (
                r#"{"pid":"p","clientId":"u","guildId":5}"#.into(),
                InvalidType,
                Some("guildId"),
            ),
            (
                format!(r#"{{"pid":"p","clientId":"{long}"}}"#),
                FieldTooLong,
                Some("clientId"),
            ),
            (
                format!(r#"{{"pid":"{long}","clientId":"u"}}"#),
                FieldTooLong,
                Some("pid"),
            ),
            (
                r#"{"pid":"p","clientId":"u","extra":1}"#.into(),
                UnknownField,
                Some("extra"),
            ),
            (
                r#"{"pid":"p","clientId":"a\u0000b"}"#.into(),
                InvalidField,
                Some("clientId"),
            ),
            (
                r#"{"pid":"p","clientId":"a\nb"}"#.into(),
                InvalidField,
                Some("clientId"),
            ),
            (
                r#"{"pid":"p x","clientId":"u"}"#.into(),
                InvalidField,
                Some("pid"),
            ),
        ];
        for (body, want, field) in cases {
            assert_eq!(code(&body), (want, field.map(str::to_owned)), "{body}");
        }
    }

    #[test]
    fn create_accepts() {
        let r = CreateSessionRequest::parse(
            br#"{"pid":"pid-yourapp","clientId":"user_123"}"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(r.guild_id, None);
        let r = CreateSessionRequest::parse(
            r#"{"pid":"p","clientId":"Zoë 🎮","guildId":null}"#.as_bytes(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(r.client_id, "Zoë 🎮");
        // 256 characters, more bytes: counted in characters.
        let s = "é".repeat(256);
        assert!(
            CreateSessionRequest::parse(
                format!(r#"{{"pid":"p","clientId":"{s}"}}"#).as_bytes(),
                &Limits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn body_limit() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let e: ApiError = CreateSessionRequest::parse(br#"{"pid":"p","clientId":"u"}"#, &limits)
            .unwrap_err()
            .into();
        assert_eq!(e.code(), ErrorCode::BodyTooLarge);
        assert_eq!(e.status(), 413);
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("application/merge-patch+json")).is_ok());
        let e: ApiError = check_content_type(Some("text/plain")).unwrap_err().into();
        assert_eq!(
            (e.code(), e.status()),
            (ErrorCode::UnsupportedMediaType, 415)
        );
    }

    #[test]
    fn admin_bodies() {
        let l = Limits::default();
        assert_eq!(
            CreateKeyRequest::parse(b"", &l).unwrap().quota,
            Quota::default()
        );
        assert_eq!(
            CreateKeyRequest::parse(b"{}", &l).unwrap().quota,
            Quota::default()
        );
        let q = CreateKeyRequest::parse(br#"{"quota":{"limit":5,"windowSeconds":60}}"#, &l)
            .unwrap()
            .quota;
        assert_eq!(
            q,
            Quota {
                limit: 5,
                window_secs: 60
            }
        );
        for bad in [
            r#"{"quota":{"limit":0}}"#,
            r#"{"quota":{"limit":-1}}"#,
            r#"{"quota":{"limit":1.5}}"#,
            r#"{"quota":{"windowSeconds":0}}"#,
            r#"{"quota":{"limit":1,"burst":2}}"#,
            r#"{"quota":5}"#,
            r#"{"keys":1}"#,
        ] {
            assert!(
                CreateKeyRequest::parse(bad.as_bytes(), &l).is_err(),
                "{bad}"
            );
        }
        let p = CreatePidRequest::parse(br#"{"pid":"pid-a","name":"App A"}"#, &l).unwrap();
        assert_eq!((p.pid.as_str(), p.name.as_str()), ("pid-a", "App A"));
        assert!(CreatePidRequest::parse(br#"{"pid":"pid-a"}"#, &l).is_err());
        let c = CompleteSessionRequest::parse(
            br#"{"discordId":"80351110224678912","robloxId":"1"}"#,
            &l,
        )
        .unwrap();
        assert_eq!(c.discord_id, "80351110224678912");
        for bad in [
            r#"{"discordId":"1","robloxId":"x"}"#,
            r#"{"discordId":"-1","robloxId":"1"}"#,
            r#"{"discordId":"123456789012345678901","robloxId":"1"}"#,
            r#"{"discordId":1,"robloxId":"1"}"#,
        ] {
            assert!(
                CompleteSessionRequest::parse(bad.as_bytes(), &l).is_err(),
                "{bad}"
            );
        }
        assert!(parse_platform_id("discordId", "12").is_ok());
        assert!(parse_platform_id("discordId", "1 2").is_err());
    }
}

/// A quota's bounds: limit 1 ..= [`Quota::MAX_LIMIT`], window 1 ..= [`Quota::MAX_WINDOW_SECS`].
fn check_quota(quota: &Quota) -> Result<(), RequestError> {
    if !(1..=Quota::MAX_LIMIT).contains(&quota.limit) {
        return Err(RequestError::Invalid {
            field: "quota.limit".into(),
            reason: format!("must be 1 to {}", Quota::MAX_LIMIT),
        });
    }
    if !(1..=Quota::MAX_WINDOW_SECS).contains(&quota.window_secs) {
        return Err(RequestError::Invalid {
            field: "quota.windowSeconds".into(),
            reason: format!("must be 1 to {}", Quota::MAX_WINDOW_SECS),
        });
    }
    Ok(())
}

/// `PATCH /api/v1/admin/pids/:pid` body: `{name?, returnOrigins?}`, at least one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchPidRequest {
    /// The new display name.
    pub name: Option<String>,
    /// The origins `returnUrl`s of this PID's sessions may be on (replaces
    /// the list; `[]` clears it), canonical (`scheme://host[:port]`).
    pub return_origins: Option<Vec<String>>,
}

impl PatchPidRequest {
    /// Validates the body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, RequestError> {
        let mut f = Fields::new(parse_object(body, limits)?, &["name", "returnOrigins"])?;
        let name = f.optional_string("name", limits.max_name_chars)?;
        let return_origins = match f.map.remove("returnOrigins") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.len() <= MAX_RETURN_ORIGINS => {
                let mut origins = Vec::new();
                for item in items {
                    let canonical = item
                        .as_str()
                        .filter(|o| {
                            // An origin: nothing after the authority.
                            o.split_once("://")
                                .is_some_and(|(_, r)| !r.contains(['/', '?', '#']))
                        })
                        .and_then(crate::origin::origin_of)
                        .ok_or_else(|| RequestError::Invalid {
                            field: "returnOrigins".into(),
                            reason: "must list origins: scheme://host[:port], http or https".into(),
                        })?;
                    if !origins.contains(&canonical) {
                        origins.push(canonical);
                    }
                }
                Some(origins)
            }
            Some(_) => {
                return Err(RequestError::WrongType {
                    field: "returnOrigins".into(),
                    expected: "an array of at most 20 origins",
                });
            }
        };
        if name.is_none() && return_origins.is_none() {
            return Err(RequestError::Missing {
                field: "name".into(),
            });
        }
        Ok(PatchPidRequest {
            name,
            return_origins,
        })
    }
}

/// `PATCH /api/v1/admin/keys/:keyId` body: `{quota: {limit?, windowSeconds?}}`,
/// at least one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchKeyRequest {
    /// The new limit, if it changes.
    pub limit: Option<u64>,
    /// The new window, if it changes.
    pub window_secs: Option<u64>,
}

impl PatchKeyRequest {
    /// Validates the body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Self, RequestError> {
        let mut f = Fields::new(parse_object(body, limits)?, &["quota"])?;
        let Some(Value::Object(q)) = f.map.remove("quota") else {
            return Err(RequestError::WrongType {
                field: "quota".into(),
                expected: "an object with `limit` and/or `windowSeconds`",
            });
        };
        let mut q = Fields::new(q, &["limit", "windowSeconds"])?;
        let patch = PatchKeyRequest {
            limit: q.optional_u64("limit")?,
            window_secs: q.optional_u64("windowSeconds")?,
        };
        if patch.limit.is_none() && patch.window_secs.is_none() {
            return Err(RequestError::Missing {
                field: "quota.limit".into(),
            });
        }
        // Checked against any valid base: the bounds do not depend on it.
        check_quota(&patch.apply(Quota::default()))?;
        Ok(patch)
    }

    /// `quota` with this patch's fields changed.
    pub fn apply(&self, quota: Quota) -> Quota {
        Quota {
            limit: self.limit.unwrap_or(quota.limit),
            window_secs: self.window_secs.unwrap_or(quota.window_secs),
        }
    }
}

/// The body of `PUT /api/v1/admin/pids/:pid/webhook`: `{url, events?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetWebhookRequest {
    /// Where events are POSTed (checked against the operator's origins by
    /// [`crate::webhook::check_url`]).
    pub url: String,
    /// Which events; every type when absent.
    pub events: Vec<crate::webhook::EventType>,
}

impl SetWebhookRequest {
    /// Validates the body and the URL against the operator's `allowed` origins.
    pub fn parse(
        body: &[u8],
        limits: &Limits,
        allowed: &[String],
    ) -> Result<Self, crate::ApiError> {
        use crate::webhook::EventType;
        let mut f = Fields::new(parse_object(body, limits)?, &["url", "events"])?;
        let url = f.string("url", crate::webhook::MAX_URL_LEN)?;
        crate::webhook::check_url(&url, allowed).map_err(|reason| {
            crate::ApiError::new(
                crate::ErrorCode::WebhookUrlNotAllowed,
                format!("`url` {reason}"),
            )
            .with_field("url")
        })?;
        let events = match f.map.remove("events") {
            None | Some(Value::Null) => EventType::ALL.to_vec(),
            Some(Value::Array(items)) => {
                let mut events = Vec::new();
                for item in items {
                    let t = item.as_str().and_then(EventType::parse).ok_or_else(|| {
                        RequestError::Invalid {
                            field: "events".into(),
                            reason: "must list event types: session.completed, session.expired, session.cancelled".into(),
                        }
                    })?;
                    if !events.contains(&t) {
                        events.push(t);
                    }
                }
                if events.is_empty() {
                    return Err(RequestError::Empty {
                        field: "events".into(),
                    }
                    .into());
                }
                events.sort();
                events
            }
            Some(_) => {
                return Err(RequestError::WrongType {
                    field: "events".into(),
                    expected: "an array of event types",
                }
                .into());
            }
        };
        Ok(SetWebhookRequest { url, events })
    }
}

/// A page request of an admin listing: `?limit=&cursor=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// How many items at most (1 ..= the listing's maximum; its default when absent).
    pub limit: usize,
    /// Where the previous page ended (its `nextCursor`).
    pub cursor: Option<String>,
}

/// Parses `?limit=&cursor=` of a listing whose pages hold at most `max` items.
pub fn parse_page_query(
    query: &str,
    default: usize,
    max: usize,
) -> Result<PageQuery, crate::ApiError> {
    use crate::{ApiError, ErrorCode};
    let invalid = |name: &str, reason: String| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("query parameter `{name}` {reason}"),
        )
        .with_field(name)
    };
    let mut page = PageQuery {
        limit: default,
        cursor: None,
    };
    let (mut seen_limit, mut seen_cursor) = (false, false);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "limit" => {
                if std::mem::replace(&mut seen_limit, true) {
                    return Err(invalid("limit", "is given more than once".into()));
                }
                page.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| invalid("limit", format!("must be 1 to {max}")))?;
            }
            "cursor" => {
                if std::mem::replace(&mut seen_cursor, true) {
                    return Err(invalid("cursor", "is given more than once".into()));
                }
                if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
                    return Err(invalid("cursor", "is not a cursor this API gave".into()));
                }
                page.cursor = Some(value.into_owned());
            }
            _ => {}
        }
    }
    Ok(page)
}

#[cfg(test)]
mod admin_tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn key_patches_change_only_what_they_name_within_the_bounds() {
        let p = PatchKeyRequest::parse(br#"{"quota":{"limit":7}}"#, &limits()).unwrap();
        let q = p.apply(Quota {
            limit: 100,
            window_secs: 60,
        });
        assert_eq!((q.limit, q.window_secs), (7, 60));
        for bad in [
            &br#"{"quota":{}}"#[..],
            br#"{"quota":{"limit":0}}"#,
            br#"{"quota":{"windowSeconds":0}}"#,
            br#"{"quota":7}"#,
            br#"{}"#,
            br#"{"quota":{"limit":1,"other":2}}"#,
        ] {
            assert!(
                PatchKeyRequest::parse(bad, &limits()).is_err(),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn page_queries_are_bounded() {
        assert_eq!(
            parse_page_query("", 50, 200).unwrap(),
            PageQuery {
                limit: 50,
                cursor: None
            }
        );
        assert_eq!(
            parse_page_query("limit=2&cursor=abc", 50, 200).unwrap(),
            PageQuery {
                limit: 2,
                cursor: Some("abc".into())
            }
        );
        for bad in [
            "limit=0",
            "limit=201",
            "limit=x",
            "limit=1&limit=2",
            "cursor=",
            "cursor=a&cursor=b",
        ] {
            let e = parse_page_query(bad, 50, 200).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidQuery, "{bad}");
        }
    }
}
