//! The pure half of the verification flow at `verifyUrl`: PKCE, `state` and
//! `nonce`, the provider URLs and request bodies, parsing what providers
//! answer, the flow record a store keeps between redirects, and the cookie
//! that binds a flow to one browser.
//!
//! The flow: the verify page posts to `start`, which stores a
//! [`FlowRecord`] under a fresh `state` and redirects to Discord (OAuth2 code
//! flow, PKCE S256, scope `identify`); Discord's callback consumes that state
//! (single use), exchanges the code, reads `/users/@me`, stores a second
//! record under a new state and redirects to Roblox (OpenID Connect code flow,
//! PKCE S256, `nonce`, scope `openid profile`); Roblox's callback consumes it,
//! exchanges the code, checks the ID token's `nonce`/`aud`, reads `sub` from
//! userinfo, and completes the session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::{Pid, SessionId};
use crate::time::Timestamp;

/// Path of the flow's pages and callbacks, under the public base URL.
pub const FLOW_PATH: &str = "/v1/api/verify";
/// The Discord redirect URI's path.
pub const DISCORD_CALLBACK_PATH: &str = "/v1/api/verify/discord/callback";
/// The Roblox redirect URI's path.
pub const ROBLOX_CALLBACK_PATH: &str = "/v1/api/verify/roblox/callback";
/// The cookie that binds a flow to the browser that started it, on plain
/// HTTP (local development).
pub const FLOW_COOKIE: &str = "dock_flow";
/// The same cookie on HTTPS: the `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, has `Path=/` and no `Domain`, so a sibling
/// subdomain or a plain-HTTP page cannot plant or overwrite it.
pub const FLOW_COOKIE_SECURE: &str = "__Host-dock_flow";

/// The flow cookie's name when the public base URL is (`secure`) or is not HTTPS.
pub fn flow_cookie_name(secure: bool) -> &'static str {
    if secure {
        FLOW_COOKIE_SECURE
    } else {
        FLOW_COOKIE
    }
}

/// A failure talking to a provider or reading its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The provider answered something we cannot read.
    #[error("{provider} answered an unexpected {what}: {detail}")]
    Malformed {
        /// `Discord` or `Roblox`.
        provider: &'static str,
        /// Which answer.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The ID token is not for this flow.
    #[error("the Roblox ID token does not match this sign-in ({0})")]
    IdToken(&'static str),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An opaque random token (`state`, `nonce`, browser binding): 256 bits, base64url.
pub fn token(entropy: [u8; 32]) -> String {
    b64(&entropy)
}

/// Whether `s` could be a [`token`] (43 base64url characters).
pub fn is_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An OAuth `state`: `<sid>.<token>`, the session a flow belongs to and a
/// single-use [`token`]. The sid lets a store keep one live flow per session
/// (a new start replaces the last, so a flood of starts stays one record);
/// the token is the secret a callback must present. Stores keep only
/// [`binding_hash`] of the token.
pub fn flow_state(sid: &SessionId, token: &str) -> String {
    format!("{sid}.{token}")
}

/// Splits a [`flow_state`]; `None` unless it is a session id and a token.
pub fn parse_flow_state(state: &str) -> Option<(SessionId, &str)> {
    let (sid, token) = state.split_once('.')?;
    let sid = SessionId::parse(sid).ok()?;
    is_token(token).then_some((sid, token))
}

/// Whether a `POST` to the verify page's start form may go on: a defence
/// against cross-site auto-submitted forms (login CSRF), by Fetch Metadata
/// where the browser sends it (`Sec-Fetch-Site` must be `same-origin`, or
/// `none` for a user's own navigation), else by `Origin`, which must be the
/// service's own (`public_base_url`'s origin). A request with neither comes
/// from no browser that could be tricked into sending it.
pub fn start_request_allowed(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    public_base_url: &str,
) -> bool {
    if let Some(site) = sec_fetch_site {
        return matches!(site.trim(), "same-origin" | "none");
    }
    let Some(origin) = origin else {
        return true;
    };
    let ours = match public_base_url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            // Browsers leave the scheme's default port out of `Origin`.
            let authority = match scheme {
                "https" => authority.strip_suffix(":443").unwrap_or(authority),
                "http" => authority.strip_suffix(":80").unwrap_or(authority),
                _ => authority,
            };
            format!("{scheme}://{authority}")
        }
        None => return false,
    };
    origin.trim().eq_ignore_ascii_case(&ours)
}

/// A PKCE pair (RFC 7636, method S256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    /// Sent with the token request; kept secret until then.
    pub verifier: String,
    /// Sent with the authorization request.
    pub challenge: String,
}

/// The S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}

impl Pkce {
    /// A pair from 32 bytes of entropy (a 43-character verifier).
    pub fn from_entropy(entropy: [u8; 32]) -> Self {
        let verifier = b64(&entropy);
        Pkce {
            challenge: pkce_challenge(&verifier),
            verifier,
        }
    }
}

/// The stored hash of a browser-binding cookie value (the store never holds the cookie itself).
pub fn binding_hash(cookie_value: &str) -> String {
    b64(&Sha256::digest(cookie_value.as_bytes()))
}

/// Which redirect a flow record waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "lowercase")]
pub enum Stage {
    /// Waiting for Discord's callback.
    Discord,
    /// Discord done; waiting for Roblox's callback.
    Roblox {
        /// The verified Discord id.
        #[serde(rename = "discordId")]
        discord_id: String,
        /// The OpenID Connect nonce sent to Roblox.
        nonce: String,
    },
}

/// What a store keeps under a `state` between a redirect and its callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    /// The session being verified.
    pub sid: SessionId,
    /// Its PID.
    pub pid: Pid,
    /// The PKCE verifier for this leg.
    pub verifier: String,
    /// [`binding_hash`] of the browser's cookie.
    pub binding: String,
    /// When the record stops being usable (the session's expiry).
    pub expires_at: Timestamp,
    /// Which callback it is for.
    #[serde(flatten)]
    pub stage: Stage,
}

/// Why a callback's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Unknown, already used, or expired.
    #[error("this sign-in link was already used or has expired")]
    UnknownOrUsed,
    /// Started in another browser.
    #[error("this sign-in was started in another browser")]
    OtherBrowser,
    /// A Discord state at the Roblox callback or the reverse.
    #[error("this sign-in step is out of order")]
    WrongStage,
}

impl StateError {
    /// What the page tells the user.
    pub fn user_message(self) -> &'static str {
        match self {
            StateError::UnknownOrUsed => {
                "This sign-in link was already used or has expired. Please start again from your app."
            }
            StateError::OtherBrowser => {
                "This sign-in was started in another browser. Please finish it in the browser where you started, or start again from your app."
            }
            StateError::WrongStage => {
                "This sign-in step is out of order. Please start again from your app."
            }
        }
    }
}

impl FlowRecord {
    /// Checks a record taken for a callback: not expired at `now`, same
    /// browser (the cookie hashes to the stored binding), right stage.
    pub fn check(
        &self,
        now: Timestamp,
        cookie: Option<&str>,
        roblox_stage: bool,
    ) -> Result<(), StateError> {
        if now >= self.expires_at {
            return Err(StateError::UnknownOrUsed);
        }
        let same_browser =
            cookie.is_some_and(|c| crate::id::constant_time_eq(&binding_hash(c), &self.binding));
        if !same_browser {
            return Err(StateError::OtherBrowser);
        }
        match (&self.stage, roblox_stage) {
            (Stage::Discord, false) | (Stage::Roblox { .. }, true) => Ok(()),
            _ => Err(StateError::WrongStage),
        }
    }
}

/// Provider endpoints and client credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    /// Origin, e.g. `https://discord.com`.
    pub base: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The redirect URI registered with a provider: `{public_base_url}{path}`.
pub fn redirect_uri(public_base_url: &str, path: &str) -> String {
    format!("{}{path}", public_base_url.trim_end_matches('/'))
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Discord's authorization URL (`{base}/oauth2/authorize`).
pub fn discord_authorize_url(p: &Provider, redirect_uri: &str, state: &str, pkce: &Pkce) -> String {
    format!(
        "{}/oauth2/authorize?{}",
        p.base,
        query(&[
            ("response_type", "code"),
            ("client_id", &p.client_id),
            ("scope", "identify"),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("prompt", "consent"),
        ])
    )
}

/// Roblox's authorization URL (`{base}/oauth/v1/authorize`).
pub fn roblox_authorize_url(
    p: &Provider,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    pkce: &Pkce,
) -> String {
    format!(
        "{}/oauth/v1/authorize?{}",
        p.base,
        query(&[
            ("response_type", "code"),
            ("client_id", &p.client_id),
            ("scope", "openid profile"),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ])
    )
}

/// Discord's token endpoint.
pub fn discord_token_url(p: &Provider) -> String {
    format!("{}/api/oauth2/token", p.base)
}

/// Discord's current-user endpoint.
pub fn discord_user_url(p: &Provider) -> String {
    format!("{}/api/users/@me", p.base)
}

/// Roblox's token endpoint.
pub fn roblox_token_url(p: &Provider) -> String {
    format!("{}/oauth/v1/token", p.base)
}

/// Roblox's userinfo endpoint.
pub fn roblox_userinfo_url(p: &Provider) -> String {
    format!("{}/oauth/v1/userinfo", p.base)
}

/// The form body of an authorization-code token request (client credentials in the body).
pub fn token_request_body(p: &Provider, code: &str, redirect_uri: &str, verifier: &str) -> String {
    query(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", &p.client_id),
        ("client_secret", &p.client_secret),
        ("code_verifier", verifier),
    ])
}

/// A token endpoint's answer (what we use of it). `Debug` hides the tokens.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token (used once, never stored).
    pub access_token: String,
    /// OpenID Connect ID token, when the scope asked for one.
    #[serde(default)]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse(<redacted>)")
    }
}

fn malformed(
    provider: &'static str,
    what: &'static str,
    detail: impl std::fmt::Display,
) -> OAuthError {
    OAuthError::Malformed {
        provider,
        what,
        detail: detail.to_string().chars().take(200).collect(),
    }
}

/// Parses a token response.
pub fn parse_token_response(
    provider: &'static str,
    body: &[u8],
) -> Result<TokenResponse, OAuthError> {
    let t: TokenResponse =
        serde_json::from_slice(body).map_err(|e| malformed(provider, "token response", e))?;
    if t.access_token.is_empty() {
        return Err(malformed(provider, "token response", "empty access_token"));
    }
    Ok(t)
}

fn platform_id(
    provider: &'static str,
    what: &'static str,
    v: Option<&serde_json::Value>,
) -> Result<String, OAuthError> {
    let id = match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) if n.is_u64() => n.to_string(),
        other => return Err(malformed(provider, what, format!("no user id ({other:?})"))),
    };
    crate::request::parse_platform_id("id", &id).map_err(|e| malformed(provider, what, e))
}

/// The Discord user id from `/users/@me`.
pub fn parse_discord_user(body: &[u8]) -> Result<String, OAuthError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed("Discord", "user", e))?;
    platform_id("Discord", "user", v.get("id"))
}

/// The Roblox user id (`sub`) from userinfo.
pub fn parse_roblox_userinfo(body: &[u8]) -> Result<String, OAuthError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed("Roblox", "userinfo", e))?;
    platform_id("Roblox", "userinfo", v.get("sub"))
}

/// Checks an ID token received directly from the token endpoint over TLS
/// (OpenID Connect Core 3.1.3.7 lets the TLS channel stand in for the
/// signature then): its `nonce` must be ours and its `aud` our client id.
/// Returns its `sub`.
pub fn check_id_token(id_token: &str, nonce: &str, client_id: &str) -> Result<String, OAuthError> {
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or(OAuthError::IdToken("not a JWT"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| OAuthError::IdToken("payload is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| OAuthError::IdToken("payload is not JSON"))?;
    if claims.get("nonce").and_then(|n| n.as_str()) != Some(nonce) {
        return Err(OAuthError::IdToken("nonce"));
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == client_id,
        Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(OAuthError::IdToken("aud"));
    }
    platform_id("Roblox", "ID token", claims.get("sub")).map_err(|_| OAuthError::IdToken("sub"))
}

/// `Set-Cookie` for the browser binding, living as long as the session:
/// HttpOnly, SameSite=Lax; on HTTPS `__Host-dock_flow` (Secure, `Path=/`, as
/// the prefix requires), on plain HTTP `dock_flow` scoped to the flow's path.
pub fn binding_cookie(value: &str, secure: bool, max_age_secs: u64) -> String {
    let (name, path, flag) = if secure {
        (FLOW_COOKIE_SECURE, "/", "; Secure")
    } else {
        (FLOW_COOKIE, FLOW_PATH, "")
    };
    format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{flag}")
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        Provider {
            base: "https://discord.com".into(),
            client_id: "cid".into(),
            client_secret: "sec".into(),
        }
    }

    #[test]
    fn start_form_refuses_cross_site_posts() {
        let base = "https://verify.example.com/prefix";
        // Fetch Metadata decides when present.
        assert!(start_request_allowed(Some("same-origin"), None, base));
        assert!(start_request_allowed(Some("none"), None, base));
        assert!(!start_request_allowed(Some("cross-site"), None, base));
        assert!(!start_request_allowed(Some("same-site"), None, base));
        assert!(!start_request_allowed(
            Some("cross-site"),
            Some("https://verify.example.com"),
            base
        ));
        // Else the Origin, which must be ours.
        assert!(start_request_allowed(
            None,
            Some("https://verify.example.com"),
            base
        ));
        assert!(!start_request_allowed(
            None,
            Some("https://evil.example"),
            base
        ));
        assert!(!start_request_allowed(None, Some("null"), base));
        assert!(!start_request_allowed(
            None,
            Some("http://verify.example.com"),
            base
        ));
        // Neither: no browser sent it.
        assert!(start_request_allowed(None, None, base));
        // A base with the default port: browsers send the origin without it.
        assert!(start_request_allowed(
            None,
            Some("https://verify.example.com"),
            "https://verify.example.com:443"
        ));
        assert!(start_request_allowed(
            None,
            Some("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/"
        ));
    }

    #[test]
    fn flow_state_carries_the_session() {
        let sid = SessionId::from_entropy([7; 16]);
        let tok = token([3; 32]);
        let state = flow_state(&sid, &tok);
        assert_eq!(parse_flow_state(&state), Some((sid.clone(), tok.as_str())));
        for bad in [
            tok.clone(),
            format!("{sid}"),
            format!("{sid}.short"),
            format!("vsn_x.{tok}"),
            format!("{sid}.{tok}.x"),
            format!(".{tok}"),
        ] {
            assert_eq!(parse_flow_state(&bad), None, "{bad}");
        }
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        // RFC 7636 Appendix B's example verifier and challenge.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::from_entropy([1; 32]);
        assert_eq!(p.verifier.len(), 43);
        assert!(is_token(&p.verifier));
        assert_eq!(pkce_challenge(&p.verifier), p.challenge);
    }

    #[test]
    fn urls_and_bodies() {
        let pkce = Pkce::from_entropy([2; 32]);
        let redirect = redirect_uri("https://v.example.com/", DISCORD_CALLBACK_PATH);
        assert_eq!(
            redirect,
            "https://v.example.com/v1/api/verify/discord/callback"
        );
        let url = discord_authorize_url(&provider(), &redirect, "st", &pkce);
        assert!(url.starts_with("https://discord.com/oauth2/authorize?response_type=code&client_id=cid&scope=identify&redirect_uri=https%3A%2F%2Fv.example.com%2Fv1%2Fapi%2Fverify%2Fdiscord%2Fcallback&state=st&code_challenge="), "{url}");
        assert!(url.contains("code_challenge_method=S256"));
        let r = roblox_authorize_url(
            &Provider {
                base: "https://apis.roblox.com".into(),
                ..provider()
            },
            "x",
            "st",
            "nn",
            &pkce,
        );
        assert!(
            r.starts_with("https://apis.roblox.com/oauth/v1/authorize?"),
            "{r}"
        );
        assert!(
            r.contains("scope=openid+profile") && r.contains("nonce=nn"),
            "{r}"
        );
        let body = token_request_body(&provider(), "c&d", "https://x/cb", "ver");
        assert_eq!(
            body,
            "grant_type=authorization_code&code=c%26d&redirect_uri=https%3A%2F%2Fx%2Fcb&client_id=cid&client_secret=sec&code_verifier=ver"
        );
        assert!(!format!("{:?}", provider()).contains("sec"));
    }

    #[test]
    fn provider_answers() {
        assert_eq!(
            parse_token_response("Discord", br#"{"access_token":"a","token_type":"Bearer"}"#)
                .unwrap()
                .access_token,
            "a"
        );
        assert!(parse_token_response("Discord", br#"{"error":"invalid_grant"}"#).is_err());
        assert_eq!(
            parse_discord_user(br#"{"id":"80351110224678912","username":"x"}"#).unwrap(),
            "80351110224678912"
        );
        assert!(parse_discord_user(br#"{"id":"abc"}"#).is_err());
        assert_eq!(
            parse_roblox_userinfo(br#"{"sub":"1234","name":"n"}"#).unwrap(),
            "1234"
        );
        assert!(parse_roblox_userinfo(b"nope").is_err());
    }

    fn jwt(claims: serde_json::Value) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn id_token_checks() {
        let ok = jwt(serde_json::json!({"nonce": "n1", "aud": "cid", "sub": "55"}));
        assert_eq!(check_id_token(&ok, "n1", "cid").unwrap(), "55");
        assert_eq!(
            check_id_token(&ok, "n2", "cid"),
            Err(OAuthError::IdToken("nonce"))
        );
        assert_eq!(
            check_id_token(&ok, "n1", "other"),
            Err(OAuthError::IdToken("aud"))
        );
        let arr = jwt(serde_json::json!({"nonce": "n1", "aud": ["x", "cid"], "sub": "55"}));
        assert!(check_id_token(&arr, "n1", "cid").is_ok());
        assert!(check_id_token("garbage", "n1", "cid").is_err());
    }

    #[test]
    fn flow_record_checks() {
        let cookie = token([5; 32]);
        let rec = FlowRecord {
            sid: SessionId::from_entropy([1; 16]),
            pid: Pid::parse("p").unwrap(),
            verifier: "v".into(),
            binding: binding_hash(&cookie),
            expires_at: Timestamp::from_millis(1000),
            stage: Stage::Discord,
        };
        let t = Timestamp::from_millis;
        assert_eq!(rec.check(t(1), Some(&cookie), false), Ok(()));
        assert_eq!(
            rec.check(t(1), Some("other"), false),
            Err(StateError::OtherBrowser)
        );
        assert_eq!(rec.check(t(1), None, false), Err(StateError::OtherBrowser));
        assert_eq!(
            rec.check(t(1), Some(&cookie), true),
            Err(StateError::WrongStage)
        );
        assert_eq!(
            rec.check(t(1000), Some(&cookie), false),
            Err(StateError::UnknownOrUsed)
        );
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<FlowRecord>(&json).unwrap(), rec);
        let r2 = FlowRecord {
            stage: Stage::Roblox {
                discord_id: "1".into(),
                nonce: "n".into(),
            },
            ..rec
        };
        assert_eq!(
            serde_json::from_str::<FlowRecord>(&serde_json::to_string(&r2).unwrap()).unwrap(),
            r2
        );
    }

    #[test]
    fn cookies() {
        assert_eq!(
            binding_cookie("abc", true, 60),
            "__Host-dock_flow=abc; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            binding_cookie("abc", false, 60),
            "dock_flow=abc; Path=/v1/api/verify; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        assert_eq!(flow_cookie_name(true), "__Host-dock_flow");
        assert_eq!(flow_cookie_name(false), "dock_flow");
        // The HTTPS cookie is read under its own name only.
        assert_eq!(
            cookie_value(
                Some("dock_flow=planted; __Host-dock_flow=real"),
                flow_cookie_name(true)
            ),
            Some("real")
        );
        assert_eq!(
            cookie_value(Some("a=1; dock_flow=xyz; b=2"), FLOW_COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie_value(Some("a=1"), FLOW_COOKIE), None);
        assert_eq!(cookie_value(None, FLOW_COOKIE), None);
    }
}
