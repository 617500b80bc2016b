//! Typed settings, parsed from string variables (Spin variables in the app).
//!
//! Core does not know where values come from: the caller passes a lookup
//! function. Every variable has a documented default and range; a bad value
//! is a [`ConfigError`] that names the variable.

use crate::longpoll::DEFAULT_MAX_WAIT_SECS;
use crate::oauth::Provider;
use crate::request::Limits;
use crate::session::DEFAULT_TTL_SECS;
use crate::stream::DEFAULT_HEARTBEAT_SECS;

/// A variable with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable `{variable}` is invalid: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
    /// What it must be.
    pub reason: String,
}

/// Every setting of the service.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `public_base_url`: origin (and optional path prefix) users reach us at; builds `verifyUrl`.
    pub public_base_url: String,
    /// `redis_url`: `redis://[user:pass@]host[:port][/db]`; `None` selects the embedded SQLite store.
    pub redis_url: Option<String>,
    /// `session_ttl_seconds`: session lifetime (1–86400, default 300).
    pub session_ttl_secs: u64,
    /// `max_wait_seconds`: largest long-poll `wait` (0–3600, default 25).
    pub max_wait_secs: u32,
    /// `stream_max_seconds`: longest SSE stream, 0 = until a terminal event (default 0).
    pub stream_max_secs: u64,
    /// `heartbeat_seconds`: SSE heartbeat interval (1–3600, default 15).
    pub heartbeat_secs: u64,
    /// `admin_token`: enables the admin API when set (at least 16 characters).
    pub admin_token: Option<String>,
    /// `max_body_bytes` and the field limits.
    pub limits: Limits,
    /// `max_streams_per_key`: concurrent SSE streams plus long-polls per API key (1–100000, default 100).
    pub max_streams_per_key: u64,
    /// `poll_interval_ms`: how often embedded-store waiters re-check (10–5000, default 200).
    pub poll_interval_ms: u64,
    /// `session_retention_seconds`: how long a finished session stays readable (60–2592000, default 86400).
    pub session_retention_secs: u64,
    /// `discord_oauth_base` + `discord_client_id` + `discord_client_secret`;
    /// `None` (flow disabled) while the client id is empty.
    pub discord: Option<Provider>,
    /// `roblox_oauth_base` + `roblox_client_id` + `roblox_client_secret`.
    pub roblox: Option<Provider>,
    /// `discord_oauth_base` (default `https://discord.com`).
    pub discord_oauth_base: String,
    /// `roblox_oauth_base` (default `https://apis.roblox.com`).
    pub roblox_oauth_base: String,
    /// `flow_requests_per_minute`: requests one client address may make to
    /// the public flow endpoints (verify page, start, callbacks) per minute
    /// (0–100000, default 300; 0 = no limit).
    pub flow_requests_per_minute: u64,
    /// `flow_starts_per_session`: how often one session's flow may be
    /// started (1–1000, default 10); each start replaces the last.
    pub flow_starts_per_session: u64,
    /// `metrics_token`: a bearer token for `GET /metrics` alone (at least 16
    /// characters); the admin token is always accepted there too.
    pub metrics_token: Option<String>,
    /// `metrics_flush_seconds`: how often an instance adds the request
    /// latencies it recorded to the store's (1–3600, default 10).
    pub metrics_flush_secs: u64,
    /// `client_address_header`: the request header that carries the client's
    /// address when a proxy stands in front (e.g. `x-forwarded-for`, of which
    /// the last entry counts); empty = the connection's address as Spin
    /// reports it (`spin-client-addr`).
    pub client_address_header: Option<String>,
    /// `webhook_origin_a` … `webhook_origin_d`: the origins webhooks may be
    /// sent to (`scheme://host[:port]`, a host may start with `*.`); the same
    /// values feed `allowed_outbound_hosts`, one origin per variable because
    /// Spin reads one origin per entry. Empty ones are skipped; none = no webhooks.
    pub webhook_origins: Vec<String>,
    /// `webhook_retry_base_seconds`: the pause after a failed first attempt
    /// (1–3600, default 10); each later one is three times longer.
    pub webhook_retry_base_secs: u64,
    /// `webhook_timeout_seconds`: the limit of one delivery attempt (1–60, default 10).
    pub webhook_timeout_secs: u64,
    /// `webhook_drain_one_in`: one request in this many (at random) also
    /// attempts a bounded batch of due webhook events, after its answer
    /// (0–100000, default 20; 0 = never): retries ride on ordinary traffic
    /// where nothing calls the dispatch route.
    pub webhook_drain_one_in: u64,
    /// `key_cache_seconds`: how long an instance reuses an API key's record
    /// for creates without reading it first (Redis store only; 0–3600,
    /// default 60; 0 = read it on every request). Revocations and quota
    /// changes still apply at once: each create checks the key's mark
    /// inside its own script.
    pub key_cache_secs: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("public_base_url", &self.public_base_url)
            .field("redis", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("max_wait_secs", &self.max_wait_secs)
            .field("stream_max_secs", &self.stream_max_secs)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .field("max_streams_per_key", &self.max_streams_per_key)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("session_retention_secs", &self.session_retention_secs)
            .field("discord", &self.discord)
            .field("roblox", &self.roblox)
            .field("flow_requests_per_minute", &self.flow_requests_per_minute)
            .field("flow_starts_per_session", &self.flow_starts_per_session)
            .field("client_address_header", &self.client_address_header)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("metrics_flush_secs", &self.metrics_flush_secs)
            .field("webhook_origins", &self.webhook_origins)
            .field("webhook_retry_base_secs", &self.webhook_retry_base_secs)
            .field("webhook_timeout_secs", &self.webhook_timeout_secs)
            .field("webhook_drain_one_in", &self.webhook_drain_one_in)
            .field("key_cache_secs", &self.key_cache_secs)
            .finish()
    }
}

/// The variable names, as declared in `spin.toml`.
pub mod names {
    #![allow(missing_docs)]
    pub const PUBLIC_BASE_URL: &str = "public_base_url";
    pub const REDIS_URL: &str = "redis_url";
    pub const SESSION_TTL_SECONDS: &str = "session_ttl_seconds";
    pub const MAX_WAIT_SECONDS: &str = "max_wait_seconds";
    pub const STREAM_MAX_SECONDS: &str = "stream_max_seconds";
    pub const HEARTBEAT_SECONDS: &str = "heartbeat_seconds";
    pub const ADMIN_TOKEN: &str = "admin_token";
    pub const MAX_BODY_BYTES: &str = "max_body_bytes";
    pub const MAX_STREAMS_PER_KEY: &str = "max_streams_per_key";
    pub const POLL_INTERVAL_MS: &str = "poll_interval_ms";
    pub const SESSION_RETENTION_SECONDS: &str = "session_retention_seconds";
    pub const DISCORD_OAUTH_BASE: &str = "discord_oauth_base";
    pub const DISCORD_CLIENT_ID: &str = "discord_client_id";
    pub const DISCORD_CLIENT_SECRET: &str = "discord_client_secret";
    pub const ROBLOX_OAUTH_BASE: &str = "roblox_oauth_base";
    pub const ROBLOX_CLIENT_ID: &str = "roblox_client_id";
    pub const ROBLOX_CLIENT_SECRET: &str = "roblox_client_secret";
    pub const FLOW_REQUESTS_PER_MINUTE: &str = "flow_requests_per_minute";
    pub const FLOW_STARTS_PER_SESSION: &str = "flow_starts_per_session";
    pub const CLIENT_ADDRESS_HEADER: &str = "client_address_header";
    pub const METRICS_TOKEN: &str = "metrics_token";
    pub const METRICS_FLUSH_SECONDS: &str = "metrics_flush_seconds";
    pub const WEBHOOK_ORIGINS: [&str; 4] = [
        "webhook_origin_a",
        "webhook_origin_b",
        "webhook_origin_c",
        "webhook_origin_d",
    ];
    pub const WEBHOOK_RETRY_BASE_SECONDS: &str = "webhook_retry_base_seconds";
    pub const WEBHOOK_TIMEOUT_SECONDS: &str = "webhook_timeout_seconds";
    pub const WEBHOOK_DRAIN_ONE_IN: &str = "webhook_drain_one_in";
    pub const KEY_CACHE_SECONDS: &str = "key_cache_seconds";
    /// Every variable `Settings` reads.
    pub const ALL: [&str; 30] = [
        PUBLIC_BASE_URL,
        REDIS_URL,
        SESSION_TTL_SECONDS,
        MAX_WAIT_SECONDS,
        STREAM_MAX_SECONDS,
        HEARTBEAT_SECONDS,
        ADMIN_TOKEN,
        MAX_BODY_BYTES,
        MAX_STREAMS_PER_KEY,
        POLL_INTERVAL_MS,
        SESSION_RETENTION_SECONDS,
        DISCORD_OAUTH_BASE,
        DISCORD_CLIENT_ID,
        DISCORD_CLIENT_SECRET,
        ROBLOX_OAUTH_BASE,
        ROBLOX_CLIENT_ID,
        ROBLOX_CLIENT_SECRET,
        FLOW_REQUESTS_PER_MINUTE,
        FLOW_STARTS_PER_SESSION,
        CLIENT_ADDRESS_HEADER,
        METRICS_TOKEN,
        METRICS_FLUSH_SECONDS,
        WEBHOOK_ORIGINS[0],
        WEBHOOK_ORIGINS[1],
        WEBHOOK_ORIGINS[2],
        WEBHOOK_ORIGINS[3],
        WEBHOOK_RETRY_BASE_SECONDS,
        WEBHOOK_TIMEOUT_SECONDS,
        WEBHOOK_DRAIN_ONE_IN,
        KEY_CACHE_SECONDS,
    ];
}

/// Shortest accepted admin token.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = lookup(variable).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    let v: u64 = raw.trim().parse().map_err(|_| ConfigError {
        variable,
        reason: format!(
            "expected a whole number, got {:?}",
            raw.chars().take(40).collect::<String>()
        ),
    })?;
    if !range.contains(&v) {
        return Err(ConfigError {
            variable,
            reason: format!(
                "must be between {} and {}, got {v}",
                range.start(),
                range.end()
            ),
        });
    }
    Ok(v)
}

fn text(lookup: &impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    lookup(variable)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Checks an origin: `http(s)://host[:port]`, nothing after it.
fn check_origin(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let base = check_url(variable, raw)?;
    let after_scheme = base.split_once("://").map_or("", |(_, r)| r);
    if after_scheme.contains('/') {
        return Err(ConfigError {
            variable,
            reason: "must be an origin (scheme://host[:port]) without a path".into(),
        });
    }
    // The Roblox ID token is trusted because it comes over TLS from the
    // token endpoint; plain HTTP only to this machine (local fake providers).
    if base.starts_with("http://") && !is_loopback_authority(after_scheme) {
        return Err(ConfigError {
            variable,
            reason: "must use https:// (http:// is allowed only for loopback hosts: localhost, 127.0.0.0/8, [::1])".into(),
        });
    }
    Ok(base)
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => return v6.split(']').next() == Some("::1"),
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
}

/// Reads one OAuth provider; `None` while its client id is empty.
fn provider(
    lookup: &impl Fn(&str) -> Option<String>,
    base: &str,
    id_var: &'static str,
    secret_var: &'static str,
) -> Result<Option<Provider>, ConfigError> {
    let Some(client_id) = text(lookup, id_var) else {
        return Ok(None);
    };
    let client_secret = text(lookup, secret_var).ok_or_else(|| ConfigError {
        variable: secret_var,
        reason: format!("is required when `{id_var}` is set"),
    })?;
    Ok(Some(Provider {
        base: base.to_owned(),
        client_id,
        client_secret,
    }))
}

/// Checks a base URL: `http(s)://host[:port][/path]`, no query, fragment or credentials.
fn check_base_url(raw: &str) -> Result<String, ConfigError> {
    check_url(names::PUBLIC_BASE_URL, raw)
}

fn check_url(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let err = |reason: &str| ConfigError {
        variable,
        reason: reason.to_owned(),
    };
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| err("must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(err("has no host"));
    }
    if host.contains('@') {
        return Err(err("must not contain credentials"));
    }
    if raw.contains(['?', '#']) || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("must not contain a query, fragment or spaces"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

impl Settings {
    /// Reads every setting through `lookup` (absent or blank = default).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use names::*;
        let public_base_url = check_base_url(
            &text(&lookup, PUBLIC_BASE_URL).unwrap_or_else(|| "http://127.0.0.1:3000".to_owned()),
        )?;
        let redis_url = text(&lookup, REDIS_URL);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(ConfigError {
                variable: REDIS_URL,
                reason: "must start with redis:// or rediss://".into(),
            });
        }
        let admin_token = text(&lookup, ADMIN_TOKEN);
        if let Some(t) = &admin_token
            && t.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(ConfigError {
                variable: ADMIN_TOKEN,
                reason: format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
            });
        }
        let metrics_token = text(&lookup, METRICS_TOKEN);
        if let Some(t) = &metrics_token
            && t.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(ConfigError {
                variable: METRICS_TOKEN,
                reason: format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
            });
        }
        let max_body = number(&lookup, MAX_BODY_BYTES, 16 * 1024, 256..=1024 * 1024)?;
        let discord_oauth_base = check_origin(
            DISCORD_OAUTH_BASE,
            &text(&lookup, DISCORD_OAUTH_BASE).unwrap_or_else(|| "https://discord.com".into()),
        )?;
        let roblox_oauth_base = check_origin(
            ROBLOX_OAUTH_BASE,
            &text(&lookup, ROBLOX_OAUTH_BASE).unwrap_or_else(|| "https://apis.roblox.com".into()),
        )?;
        let mut webhook_origins = Vec::new();
        for variable in WEBHOOK_ORIGINS {
            if let Some(o) = text(&lookup, variable) {
                // An origin pattern: what a URL on it would need to pass.
                let probe = format!("{}/", o.replace("://*.", "://x."));
                if o.contains('/') && o.split_once("://").is_some_and(|(_, r)| r.contains('/'))
                    || crate::webhook::check_url(&probe, std::slice::from_ref(&o)).is_err()
                {
                    return Err(ConfigError {
                        variable,
                        reason: "must be an origin, https://host[:port] (a host may start with `*.`; http only for a loopback address)".into(),
                    });
                }
                webhook_origins.push(o);
            }
        }
        Ok(Settings {
            webhook_origins,
            webhook_retry_base_secs: number(
                &lookup,
                WEBHOOK_RETRY_BASE_SECONDS,
                crate::webhook::DEFAULT_RETRY_BASE_SECS,
                1..=3_600,
            )?,
            webhook_timeout_secs: number(
                &lookup,
                WEBHOOK_TIMEOUT_SECONDS,
                crate::webhook::DEFAULT_TIMEOUT_SECS,
                1..=60,
            )?,
            webhook_drain_one_in: number(
                &lookup,
                WEBHOOK_DRAIN_ONE_IN,
                crate::webhook::DEFAULT_DRAIN_ONE_IN,
                0..=100_000,
            )?,
            key_cache_secs: number(&lookup, KEY_CACHE_SECONDS, 60, 0..=3_600)?,
            discord: provider(
                &lookup,
                &discord_oauth_base,
                DISCORD_CLIENT_ID,
                DISCORD_CLIENT_SECRET,
            )?,
            roblox: provider(
                &lookup,
                &roblox_oauth_base,
                ROBLOX_CLIENT_ID,
                ROBLOX_CLIENT_SECRET,
            )?,
            discord_oauth_base,
            roblox_oauth_base,
            public_base_url,
            redis_url,
            session_ttl_secs: number(&lookup, SESSION_TTL_SECONDS, DEFAULT_TTL_SECS, 1..=86_400)?,
            max_wait_secs: number(
                &lookup,
                MAX_WAIT_SECONDS,
                u64::from(DEFAULT_MAX_WAIT_SECS),
                0..=3_600,
            )? as u32,
            stream_max_secs: number(&lookup, STREAM_MAX_SECONDS, 0, 0..=86_400)?,
            heartbeat_secs: number(
                &lookup,
                HEARTBEAT_SECONDS,
                DEFAULT_HEARTBEAT_SECS,
                1..=3_600,
            )?,
            admin_token,
            limits: Limits {
                max_body_bytes: max_body as usize,
                ..Limits::default()
            },
            max_streams_per_key: number(&lookup, MAX_STREAMS_PER_KEY, 100, 1..=100_000)?,
            poll_interval_ms: number(&lookup, POLL_INTERVAL_MS, 200, 10..=5_000)?,
            session_retention_secs: number(
                &lookup,
                SESSION_RETENTION_SECONDS,
                86_400,
                60..=2_592_000,
            )?,
            flow_requests_per_minute: number(&lookup, FLOW_REQUESTS_PER_MINUTE, 300, 0..=100_000)?,
            flow_starts_per_session: number(&lookup, FLOW_STARTS_PER_SESSION, 10, 1..=1_000)?,
            metrics_token,
            metrics_flush_secs: number(&lookup, METRICS_FLUSH_SECONDS, 10, 1..=3_600)?,
            client_address_header: match text(&lookup, CLIENT_ADDRESS_HEADER) {
                Some(h)
                    if !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    return Err(ConfigError {
                        variable: CLIENT_ADDRESS_HEADER,
                        reason: "must be a header name (letters, digits, - and _)".into(),
                    });
                }
                h => h.map(|h| h.to_ascii_lowercase()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(move |k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = with(&[]).unwrap();
        assert_eq!(s.public_base_url, "http://127.0.0.1:3000");
        assert_eq!(s.redis_url, None);
        assert_eq!(
            (
                s.session_ttl_secs,
                s.max_wait_secs,
                s.stream_max_secs,
                s.heartbeat_secs
            ),
            (300, 25, 0, 15)
        );
        assert_eq!(s.admin_token, None);
        assert_eq!(s.limits.max_body_bytes, 16_384);
        assert_eq!(
            (
                s.flow_requests_per_minute,
                s.flow_starts_per_session,
                s.client_address_header.clone()
            ),
            (300, 10, None)
        );
        assert_eq!(s.key_cache_secs, 60);
        assert_eq!(
            with(&[("key_cache_seconds", "0")]).unwrap().key_cache_secs,
            0
        );
        assert_eq!(
            with(&[("client_address_header", "X-Forwarded-For")])
                .unwrap()
                .client_address_header
                .as_deref(),
            Some("x-forwarded-for")
        );
        // Blank means default too (Spin variables default to "").
        assert_eq!(
            with(&[("redis_url", ""), ("admin_token", " ")])
                .unwrap()
                .redis_url,
            None
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            ("session_ttl_seconds", "abc"),
            ("session_ttl_seconds", "0"),
            ("max_wait_seconds", "-1"),
            ("heartbeat_seconds", "0"),
            ("public_base_url", "ftp://x"),
            ("public_base_url", "https://user:pw@x"),
            ("public_base_url", "https://x/?a=1"),
            ("redis_url", "localhost:6379"),
            ("admin_token", "short"),
            ("max_body_bytes", "10"),
            ("discord_oauth_base", "https://discord.com/api"),
            ("roblox_oauth_base", "apis.roblox.com"),
            // Plain HTTP to a provider only on loopback.
            ("discord_oauth_base", "http://discord.com"),
            ("roblox_oauth_base", "http://10.0.0.5:8080"),
            ("roblox_oauth_base", "http://127.0.0.1.evil.example"),
            ("roblox_oauth_base", "http://localhost.evil.example:80"),
            ("discord_oauth_base", "http://[::2]:80"),
            ("flow_requests_per_minute", "x"),
            ("flow_starts_per_session", "0"),
            ("client_address_header", "x-forwarded-for: 1"),
            ("key_cache_seconds", "3601"),
        ];
        for (var, value) in cases {
            let e = with(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var, "{var}={value}");
            assert!(e.to_string().contains(var));
        }
    }

    #[test]
    fn oauth_providers() {
        let s = with(&[]).unwrap();
        assert_eq!(
            (s.discord.clone(), s.discord_oauth_base.as_str()),
            (None, "https://discord.com")
        );
        assert_eq!(s.roblox_oauth_base, "https://apis.roblox.com");
        for loopback in [
            "http://127.0.0.1:9",
            "http://127.10.0.1",
            "http://localhost:8080",
            "http://[::1]:9",
            "https://discord.example",
        ] {
            let s = with(&[("discord_oauth_base", loopback)]).unwrap();
            assert_eq!(s.discord_oauth_base, loopback);
        }
        let e = with(&[("discord_client_id", "1")]).unwrap_err();
        assert_eq!(e.variable, "discord_client_secret");
        let s = with(&[
            ("roblox_client_id", "r"),
            ("roblox_client_secret", "s"),
            ("roblox_oauth_base", "http://127.0.0.1:9/"),
        ])
        .unwrap();
        let r = s.roblox.unwrap();
        assert_eq!(
            (
                r.base.as_str(),
                r.client_id.as_str(),
                r.client_secret.as_str()
            ),
            ("http://127.0.0.1:9", "r", "s")
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = with(&[
            ("admin_token", "0123456789abcdef-secret"),
            ("redis_url", "redis://:pw@h:1"),
        ])
        .unwrap();
        let d = format!("{s:?}");
        assert!(!d.contains("secret") && !d.contains("pw"), "{d}");
        assert_eq!(
            with(&[("public_base_url", "https://v.example.com/")])
                .unwrap()
                .public_base_url,
            "https://v.example.com"
        );
    }
}
