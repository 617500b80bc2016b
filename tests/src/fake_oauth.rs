//! Fake Discord and Roblox OAuth providers on loopback, for the flow tests:
//! real HTTP, real redirects, real token exchange with PKCE verified.
//!
//! - `GET  {authorize}`: checks the request (client id, response type, S256
//!   challenge, state, scope; `nonce` for Roblox) and shows a consent page with
//!   a "user id" field and Allow / Deny buttons (plain HTML forms, no script);
//! - `GET  /fake/decide`: Allow → redirect back with a one-time `code`;
//!   Deny → `error=access_denied`;
//! - `POST {token}`: checks client credentials, the code (once), the
//!   redirect URI and `SHA-256(code_verifier) == code_challenge`; answers an
//!   access token (and for Roblox an ID token carrying the nonce);
//! - `GET  {user}`: the user behind the access token (`/users/@me` `id`, or
//!   userinfo `sub`).
//!
//! Knobs: [`FakeProvider::fail_token_requests`] (or `GET /fake/control?fail_tokens=1`
//! from another process) makes the token endpoint answer 500. Counters report how many PKCE checks passed and failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode};
use sha2::{Digest as _, Sha256};

/// Which provider to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/oauth2/authorize`, `/api/oauth2/token`, `/api/users/@me`.
    Discord,
    /// `/oauth/v1/authorize`, `/oauth/v1/token`, `/oauth/v1/userinfo`.
    Roblox,
}

#[derive(Debug, Clone)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    user_id: String,
    nonce: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, String>,
    counter: u64,
}

#[derive(Debug)]
struct Shared {
    kind: Kind,
    client_id: String,
    client_secret: String,
    default_user: String,
    state: Mutex<State>,
    fail_tokens: AtomicBool,
    pkce_ok: AtomicUsize,
    pkce_bad: AtomicUsize,
}

/// A running fake provider. Stops when dropped.
#[derive(Debug)]
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    /// Starts on a free loopback port (inside the current tokio runtime).
    pub async fn start(
        kind: Kind,
        client_id: &str,
        client_secret: &str,
        default_user: &str,
    ) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            kind,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            default_user: default_user.into(),
            state: Mutex::default(),
            fail_tokens: AtomicBool::new(false),
            pkce_ok: AtomicUsize::new(0),
            pkce_bad: AtomicUsize::new(0),
        });
        let task = crate::spawn_http_server(listener, shared.clone(), |s, req| async move {
            handle(&s, req).await
        });
        Ok(FakeProvider { addr, shared, task })
    }

    /// Its origin, e.g. `http://127.0.0.1:41234`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes the token endpoint fail (500) or work again.
    pub fn fail_token_requests(&self, fail: bool) {
        self.shared.fail_tokens.store(fail, Ordering::SeqCst);
    }

    /// Token requests whose PKCE verifier matched / did not match.
    pub fn pkce_counts(&self) -> (usize, usize) {
        (
            self.shared.pkce_ok.load(Ordering::SeqCst),
            self.shared.pkce_bad.load(Ordering::SeqCst),
        )
    }
}

fn paths(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::Discord => ("/oauth2/authorize", "/api/oauth2/token", "/api/users/@me"),
        Kind::Roblox => (
            "/oauth/v1/authorize",
            "/oauth/v1/token",
            "/oauth/v1/userinfo",
        ),
    }
}

fn resp(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(body.into()))
        .expect("response")
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    resp(status, "application/json", v.to_string())
}

fn redirect(to: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(302)
        .header("location", to)
        .body(Full::new(Bytes::new()))
        .expect("response")
}

fn form(q: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(q).into_owned().collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}{}{q}", if base.contains('?') { '&' } else { '?' })
}

async fn handle(s: &Shared, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (authorize, token, user) = paths(s.kind);
    let path = req.uri().path().to_owned();
    let query = form(req.uri().query().unwrap_or("").as_bytes());
    let name = match s.kind {
        Kind::Discord => "Discord",
        Kind::Roblox => "Roblox",
    };
    if path == authorize {
        let need = |k: &str| query.get(k).filter(|v| !v.is_empty()).is_some();
        let scope_ok = match s.kind {
            Kind::Discord => query.get("scope").map(String::as_str) == Some("identify"),
            Kind::Roblox => {
                query.get("scope").map(String::as_str) == Some("openid profile") && need("nonce")
            }
        };
        if query.get("client_id") != Some(&s.client_id)
            || query.get("response_type").map(String::as_str) != Some("code")
            || query.get("code_challenge_method").map(String::as_str) != Some("S256")
            || !need("code_challenge")
            || !need("state")
            || !need("redirect_uri")
            || !scope_ok
        {
            return resp(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "invalid authorization request",
            );
        }
        let hidden: String = ["redirect_uri", "state", "code_challenge", "nonce"]
            .iter()
            .filter_map(|k| {
                query
                    .get(*k)
                    .map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)))
            })
            .collect();
        let page = format!(
            "<!doctype html><html><head><title>Fake {name}</title></head><body><h1>Fake {name}</h1>\
<p>Allow <b>{client}</b> to know who you are?</p><form method=\"get\" action=\"/fake/decide\">{hidden}\
<label>{name} user id <input name=\"user_id\" id=\"user_id\" value=\"{user}\"></label>\
<button name=\"decision\" value=\"allow\" id=\"allow\">Authorize</button>\
<button name=\"decision\" value=\"deny\" id=\"deny\">Cancel</button></form></body></html>",
            client = esc(&s.client_id),
            user = esc(&s.default_user),
        );
        return resp(StatusCode::OK, "text/html; charset=utf-8", page);
    }
    if path == "/fake/control" {
        // Lets a test in another process flip the knobs: `?fail_tokens=1|0`.
        if let Some(v) = query.get("fail_tokens") {
            s.fail_tokens.store(v == "1", Ordering::SeqCst);
        }
        return json(
            StatusCode::OK,
            serde_json::json!({"failTokens": s.fail_tokens.load(Ordering::SeqCst)}),
        );
    }
    if path == "/fake/decide" {
        let (Some(redirect_uri), Some(state)) = (query.get("redirect_uri"), query.get("state"))
        else {
            return resp(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "missing redirect_uri/state",
            );
        };
        if query.get("decision").map(String::as_str) != Some("allow") {
            return redirect(with_query(
                redirect_uri,
                &[("error", "access_denied"), ("state", state)],
            ));
        }
        let code = {
            let mut st = s.state.lock().expect("lock");
            st.counter += 1;
            let code = format!("code-{}-{}", st.counter, state.len());
            st.codes.insert(
                code.clone(),
                Grant {
                    challenge: query.get("code_challenge").cloned().unwrap_or_default(),
                    redirect_uri: redirect_uri.clone(),
                    user_id: query
                        .get("user_id")
                        .cloned()
                        .unwrap_or_else(|| s.default_user.clone()),
                    nonce: query.get("nonce").cloned(),
                },
            );
            code
        };
        return redirect(with_query(
            redirect_uri,
            &[("code", &code), ("state", state)],
        ));
    }
    if path == token && req.method() == hyper::Method::POST {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if s.fail_tokens.load(Ordering::SeqCst) {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "server_error"}),
            );
        }
        let f = form(&body);
        let bad = |e: &str| json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e}));
        if f.get("client_id") != Some(&s.client_id)
            || f.get("client_secret") != Some(&s.client_secret)
        {
            return bad("invalid_client");
        }
        if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return bad("unsupported_grant_type");
        }
        let grant = f
            .get("code")
            .and_then(|c| s.state.lock().expect("lock").codes.remove(c));
        let Some(grant) = grant else {
            return bad("invalid_grant");
        };
        if f.get("redirect_uri") != Some(&grant.redirect_uri) {
            return bad("invalid_grant");
        }
        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
            s.pkce_bad.fetch_add(1, Ordering::SeqCst);
            return bad("invalid_grant");
        }
        s.pkce_ok.fetch_add(1, Ordering::SeqCst);
        let access = {
            let mut st = s.state.lock().expect("lock");
            st.counter += 1;
            let t = format!("at-{}", st.counter);
            st.tokens.insert(t.clone(), grant.user_id.clone());
            t
        };
        let mut answer =
            serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": 600});
        if s.kind == Kind::Roblox {
            let claims = serde_json::json!({
                "iss": "fake-roblox", "aud": s.client_id, "sub": grant.user_id,
                "nonce": grant.nonce, "iat": 0, "exp": 4_000_000_000u64
            });
            answer["id_token"] = format!(
                "eyJhbGciOiJub25lIn0.{}.",
                URL_SAFE_NO_PAD.encode(claims.to_string())
            )
            .into();
        }
        return json(StatusCode::OK, answer);
    }
    if path == user {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let who = token.and_then(|t| s.state.lock().expect("lock").tokens.get(&t).cloned());
        return match who {
            None => json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"message": "401: Unauthorized"}),
            ),
            Some(id) => match s.kind {
                Kind::Discord => json(
                    StatusCode::OK,
                    serde_json::json!({"id": id, "username": "fake"}),
                ),
                Kind::Roblox => json(
                    StatusCode::OK,
                    serde_json::json!({"sub": id, "name": "fake"}),
                ),
            },
        };
    }
    resp(StatusCode::NOT_FOUND, "text/plain", "not found")
}
