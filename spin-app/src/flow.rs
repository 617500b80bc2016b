//! The verification flow at `verifyUrl`: the verify page, then Discord
//! (OAuth2 + PKCE), then Roblox (OpenID Connect + PKCE + nonce), then the
//! same completion as the admin API. Pages are server-rendered by dock-core;
//! `state` is single-use, bound to the browser by an HttpOnly cookie, and
//! expires with the session; provider tokens live only in this request.

use bytes::Bytes;
use dock_core::oauth::{
    self, DISCORD_CALLBACK_PATH, FlowRecord, Pkce, Provider, ROBLOX_CALLBACK_PATH, Stage,
    StateError,
};
use dock_core::pages::{self, Halt, Page};
use dock_core::ratelimit;
use dock_core::{ApiError, ErrorCode, Pid, Session, SessionId, Settings, Status};
use http_body_util::{BodyExt as _, Limited};
use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt as _;

use crate::env::{entropy, now};
use crate::http::{Response, full, header};
use crate::log::log;
use crate::store::{Backend, Store};

/// A flow step that ends in a page rather than a redirect.
struct Stop(Page);

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop(match e.code() {
            ErrorCode::StoreUnavailable => Halt::Unavailable.page(),
            _ => {
                log!("flow error: {}", e.code().as_str());
                Halt::Internal.page()
            }
        })
    }
}

impl From<crate::store::StoreError> for Stop {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

fn page_response(settings: &Settings, page: Page) -> Response {
    let csp = pages::content_security_policy(&[
        &settings.discord_oauth_base,
        &settings.roblox_oauth_base,
    ]);
    let mut b = http::Response::builder();
    if page.status == 429 {
        b = b.header(http::header::RETRY_AFTER, RATE_RETRY_AFTER_SECS.to_string());
    }
    b.status(page.status)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::CONTENT_SECURITY_POLICY, csp)
        .header(http::header::X_FRAME_OPTIONS, "DENY")
        .header(http::header::REFERRER_POLICY, "no-referrer")
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(full(page.html))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut b = http::Response::builder()
        .status(303)
        .header(http::header::LOCATION, location)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::REFERRER_POLICY, "no-referrer");
    if let Some(c) = cookie {
        b = b.header(http::header::SET_COOKIE, c);
    }
    b.body(full(Bytes::new()))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

fn finish(settings: &Settings, r: Result<Response, Stop>) -> Response {
    r.unwrap_or_else(|Stop(page)| page_response(settings, page))
}

/// `Retry-After` of a rate-limited flow page: the rest of a window at most.
const RATE_RETRY_AFTER_SECS: u64 = 60;

impl From<Halt<'_>> for Stop {
    fn from(h: Halt<'_>) -> Self {
        Stop(h.page())
    }
}

/// Counts this request against its client address's allowance of
/// `flow_requests_per_minute` on the public flow endpoints. The address is
/// the connection's (`spin-client-addr`), or a proxy's header when
/// `client_address_header` names one; requests without one count together.
async fn limit_client(req: &Request, store: &Store, settings: &Settings) -> Result<(), Stop> {
    if settings.flow_requests_per_minute == 0 {
        return Ok(());
    }
    let reported = header(
        req,
        settings
            .client_address_header
            .as_deref()
            .unwrap_or("spin-client-addr"),
    );
    let bucket = reported
        .and_then(ratelimit::client_bucket)
        .unwrap_or_else(|| "unknown".to_owned());
    let window = ratelimit::window(now());
    let count = store
        .hit(&bucket, ratelimit::window_end(window), now())
        .await?;
    if ratelimit::allowed(count, settings.flow_requests_per_minute) {
        Ok(())
    } else {
        Err(Halt::TooManyFromNetwork.into())
    }
}

fn invalid_link() -> Stop {
    Halt::InvalidLink.into()
}

fn query_map(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn providers(settings: &Settings) -> Result<(&Provider, &Provider), Stop> {
    match (&settings.discord, &settings.roblox) {
        (Some(d), Some(r)) => Ok((d, r)),
        _ => Err(Halt::NotConfigured.into()),
    }
}

/// Loads the session of a flow step and requires it to be pending at `now`.
async fn pending_session(store: &Store, pid: &Pid, sid: &SessionId) -> Result<Session, Stop> {
    let loaded = store
        .load_session(Some(pid), sid)
        .await?
        .ok_or_else(invalid_link)?;
    let status = loaded.session.status_at(now());
    if status != Status::Pending {
        let page = Halt::NotPending(status).page();
        return Err(Stop(returning(store, &loaded.session, status, page).await));
    }
    Ok(loaded.session)
}

/// `page` with the session's "Return to <app>" link when its create gave a
/// `returnUrl` (best effort: without the app's name the page goes as it is).
async fn returning(store: &Store, session: &Session, status: Status, page: Page) -> Page {
    let Some(url) = &session.return_url else {
        return page;
    };
    match app_name(store, &session.pid).await {
        Ok(name) => page.with_return_link(&name, &pages::return_url(url, &session.sid, status)),
        Err(_) => page,
    }
}

async fn app_name(store: &Store, pid: &Pid) -> Result<String, Stop> {
    Ok(store
        .load_pid(pid)
        .await?
        .map_or_else(|| pid.as_str().to_owned(), |p| p.name))
}

/// `GET /v1/api/verify/discord?pid=…&sid=…`: the page at `verifyUrl`.
pub async fn verify_page(req: Request, settings: &'static Settings) -> Response {
    finish(settings, verify_page_inner(req, settings).await)
}

async fn verify_page_inner(req: Request, settings: &'static Settings) -> Result<Response, Stop> {
    let params = query_map(req.uri().query().unwrap_or(""));
    let pid = param(&params, "pid")
        .and_then(|p| Pid::parse(p).ok())
        .ok_or_else(invalid_link)?;
    let sid = param(&params, "sid")
        .and_then(|s| SessionId::parse(s).ok())
        .ok_or_else(invalid_link)?;
    let store = Store::open(settings).await?;
    limit_client(&req, &store, settings).await?;
    let session = pending_session(&store, &pid, &sid).await?;
    providers(settings)?;
    let name = app_name(&store, &pid).await?;
    Ok(page_response(
        settings,
        pages::verify_page(
            &name,
            &session.pid,
            &session.sid,
            session.display_label.as_deref(),
        ),
    ))
}

/// `POST /v1/api/verify/discord/start` (the verify page's form): binds a new
/// flow to this browser and redirects to Discord.
pub async fn start(req: Request, settings: &'static Settings) -> Response {
    finish(settings, start_inner(req, settings).await)
}

async fn start_inner(req: Request, settings: &'static Settings) -> Result<Response, Stop> {
    let (discord, _) = providers(settings)?;
    // A cross-site page must not be able to start a flow in the user's
    // browser (and so bind the session to the attacker's accounts).
    if !oauth::start_request_allowed(
        header(&req, "sec-fetch-site"),
        header(&req, "origin"),
        &settings.public_base_url,
    ) {
        return Err(Halt::NotFromVerifyPage.into());
    }
    let store = Store::open(settings).await?;
    limit_client(&req, &store, settings).await?;
    let form = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map_err(|_| invalid_link())?
        .to_bytes();
    let params: Vec<(String, String)> = form_urlencoded::parse(&form).into_owned().collect();
    let pid = param(&params, "pid")
        .and_then(|p| Pid::parse(p).ok())
        .ok_or_else(invalid_link)?;
    let sid = param(&params, "sid")
        .and_then(|s| SessionId::parse(s).ok())
        .ok_or_else(invalid_link)?;
    let session = pending_session(&store, &pid, &sid).await?;
    let t = now();
    let browser = oauth::token(entropy());
    let token = oauth::token(entropy());
    let state = oauth::flow_state(&session.sid, &token);
    let pkce = Pkce::from_entropy(entropy());
    let record = FlowRecord {
        sid: session.sid,
        pid: session.pid,
        verifier: pkce.verifier.clone(),
        binding: oauth::binding_hash(&browser),
        expires_at: session.expires_at,
        stage: Stage::Discord,
    };
    let started = store
        .put_flow(
            &record,
            &oauth::binding_hash(&token),
            t,
            t.millis_until(session.expires_at),
            Some(settings.flow_starts_per_session),
        )
        .await?;
    if !started {
        return Err(Halt::TooManyStarts.into());
    }
    let redirect_uri = oauth::redirect_uri(&settings.public_base_url, DISCORD_CALLBACK_PATH);
    let secure = settings.public_base_url.starts_with("https://");
    let cookie = oauth::binding_cookie(&browser, secure, t.secs_until_ceil(session.expires_at));
    Ok(redirect(
        &oauth::discord_authorize_url(discord, &redirect_uri, &state, &pkce),
        Some(cookie),
    ))
}

/// Takes (single use) and checks the flow record a callback's `state` names.
async fn take_state(
    store: &Store,
    req: &Request,
    params: &[(String, String)],
    roblox_stage: bool,
    secure: bool,
) -> Result<FlowRecord, Stop> {
    let (sid, token) = param(params, "state")
        .and_then(oauth::parse_flow_state)
        .ok_or_else(invalid_link)?;
    let record = store
        .take_flow(&sid, &oauth::binding_hash(token), now())
        .await?
        .filter(|r| r.sid == sid);
    let cookie = oauth::cookie_value(header(req, "cookie"), oauth::flow_cookie_name(secure));
    let refused = |e: StateError| Stop::from(Halt::SignInNotAccepted(e.user_message()));
    let record = record.ok_or_else(|| refused(StateError::UnknownOrUsed))?;
    record.check(now(), cookie, roblox_stage).map_err(refused)?;
    Ok(record)
}

/// A provider's `error=` answer (consent denied, or its own failure).
fn provider_refused(provider: &str, params: &[(String, String)]) -> Option<Stop> {
    let error = param(params, "error")?;
    Some(Stop::from(if error == "access_denied" {
        Halt::ProviderDeclined(provider)
    } else {
        Halt::ProviderRefused(provider)
    }))
}

fn provider_failed(provider: &str, detail: impl std::fmt::Display) -> Stop {
    // The detail names what failed, never a token or code.
    log!("{provider} exchange failed: {detail}");
    Halt::ProviderFailed(provider).into()
}

/// Sends a request to a provider and reads a successful answer's body.
async fn call(
    provider: &'static str,
    what: &str,
    req: http::Request<crate::http::Body>,
) -> Result<Bytes, Stop> {
    let resp = spin_sdk::http::send(req)
        .await
        .map_err(|e| provider_failed(provider, format!("{e:?}")))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .bytes()
        .await
        .map_err(|e| provider_failed(provider, format!("{e:?}")))?;
    if !status.is_success() {
        return Err(provider_failed(
            provider,
            format!("{what} answered {status}"),
        ));
    }
    Ok(bytes)
}

/// POSTs a token request and reads the answer.
async fn exchange(
    provider: &'static str,
    url: &str,
    body: String,
) -> Result<oauth::TokenResponse, Stop> {
    let req = http::Request::post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(full(body))
        .map_err(|e| provider_failed(provider, e))?;
    let bytes = call(provider, "the token endpoint", req).await?;
    oauth::parse_token_response(provider, &bytes).map_err(|e| provider_failed(provider, e))
}

/// GETs a user endpoint with the access token.
async fn user(provider: &'static str, url: &str, access_token: &str) -> Result<Bytes, Stop> {
    let req = http::Request::get(url)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {access_token}"),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(full(Bytes::new()))
        .map_err(|e| provider_failed(provider, e))?;
    call(provider, "the user endpoint", req).await
}

/// What both callbacks start with: their query, the store, the flow record
/// their `state` names (taken once and checked), and the provider's refusal
/// if it sent `error=` instead of a code.
async fn callback_start(
    req: &Request,
    settings: &'static Settings,
    roblox_stage: bool,
) -> Result<(Vec<(String, String)>, Store, FlowRecord), Stop> {
    let params = query_map(req.uri().query().unwrap_or(""));
    let store = Store::open(settings).await?;
    limit_client(req, &store, settings).await?;
    let secure = settings.public_base_url.starts_with("https://");
    let record = take_state(&store, req, &params, roblox_stage, secure).await?;
    let provider = if roblox_stage { "Roblox" } else { "Discord" };
    if let Some(stop) = provider_refused(provider, &params) {
        return Err(stop);
    }
    Ok((params, store, record))
}

/// `GET /v1/api/verify/discord/callback`: Discord done; on to Roblox.
pub async fn discord_callback(req: Request, settings: &'static Settings) -> Response {
    finish(settings, discord_callback_inner(req, settings).await)
}

async fn discord_callback_inner(
    req: Request,
    settings: &'static Settings,
) -> Result<Response, Stop> {
    let (discord, roblox) = providers(settings)?;
    let (params, store, record) = callback_start(&req, settings, false).await?;
    let session = pending_session(&store, &record.pid, &record.sid).await?;
    let code = param(&params, "code").ok_or_else(invalid_link)?;
    let redirect_uri = oauth::redirect_uri(&settings.public_base_url, DISCORD_CALLBACK_PATH);
    let body = oauth::token_request_body(discord, code, &redirect_uri, &record.verifier);
    let token = exchange("Discord", &oauth::discord_token_url(discord), body).await?;
    let me = user(
        "Discord",
        &oauth::discord_user_url(discord),
        &token.access_token,
    )
    .await?;
    let discord_id = oauth::parse_discord_user(&me).map_err(|e| provider_failed("Discord", e))?;
    if !session.accepts_discord(&discord_id) {
        // The session stays pending: the right person can still finish it.
        return Err(Halt::WrongDiscordAccount.into());
    }

    let token = oauth::token(entropy());
    let state = oauth::flow_state(&session.sid, &token);
    let nonce = oauth::token(entropy());
    let pkce = Pkce::from_entropy(entropy());
    let next = FlowRecord {
        verifier: pkce.verifier.clone(),
        stage: Stage::Roblox {
            discord_id,
            nonce: nonce.clone(),
        },
        ..record
    };
    let t = now();
    store
        .put_flow(
            &next,
            &oauth::binding_hash(&token),
            t,
            t.millis_until(session.expires_at),
            None,
        )
        .await?;
    let redirect_uri = oauth::redirect_uri(&settings.public_base_url, ROBLOX_CALLBACK_PATH);
    Ok(redirect(
        &oauth::roblox_authorize_url(roblox, &redirect_uri, &state, &nonce, &pkce),
        None,
    ))
}

/// `GET /v1/api/verify/roblox/callback`: Roblox done; complete the session.
pub async fn roblox_callback(req: Request, settings: &'static Settings) -> Response {
    finish(settings, roblox_callback_inner(req, settings).await)
}

async fn roblox_callback_inner(
    req: Request,
    settings: &'static Settings,
) -> Result<Response, Stop> {
    let (_, roblox) = providers(settings)?;
    let (params, store, record) = callback_start(&req, settings, true).await?;
    let Stage::Roblox { discord_id, nonce } = &record.stage else {
        return Err(invalid_link());
    };
    pending_session(&store, &record.pid, &record.sid).await?;
    let code = param(&params, "code").ok_or_else(invalid_link)?;
    let redirect_uri = oauth::redirect_uri(&settings.public_base_url, ROBLOX_CALLBACK_PATH);
    let body = oauth::token_request_body(roblox, code, &redirect_uri, &record.verifier);
    let token = exchange("Roblox", &oauth::roblox_token_url(roblox), body).await?;
    let id_token = token
        .id_token
        .as_deref()
        .ok_or_else(|| provider_failed("Roblox", "no ID token"))?;
    let token_sub = oauth::check_id_token(id_token, nonce, &roblox.client_id)
        .map_err(|e| provider_failed("Roblox", e))?;
    let info = user(
        "Roblox",
        &oauth::roblox_userinfo_url(roblox),
        &token.access_token,
    )
    .await?;
    let roblox_id =
        oauth::parse_roblox_userinfo(&info).map_err(|e| provider_failed("Roblox", e))?;
    if roblox_id != token_sub {
        return Err(provider_failed(
            "Roblox",
            "userinfo and ID token name different users",
        ));
    }
    let view = match crate::domain::complete(
        &store,
        Some(&record.pid),
        &record.sid,
        discord_id,
        &roblox_id,
        settings,
        now(),
    )
    .await
    {
        Ok(view) => view,
        Err(e) => {
            let (halt, status) = match e.code() {
                ErrorCode::SessionExpired => (Halt::ExpiredBeforeFinish, Status::Expired),
                ErrorCode::SessionCancelled => {
                    (Halt::NotPending(Status::Cancelled), Status::Cancelled)
                }
                ErrorCode::CompletionConflict => (Halt::CompletedWithOthers, Status::Completed),
                _ => return Err(e.into()),
            };
            let page = halt.page();
            return Err(Stop(
                match store.load_session(Some(&record.pid), &record.sid).await {
                    Ok(Some(l)) => returning(&store, &l.session, status, page).await,
                    _ => page,
                },
            ));
        }
    };
    crate::webhooks::after_change(record.pid.clone(), settings);
    let name = app_name(&store, &record.pid).await?;
    let result = view
        .result
        .as_ref()
        .ok_or_else(|| Stop::from(ApiError::internal("completed without a result")))?;
    let mut page = pages::success_page(&name, result);
    if let Some(url) = &view.return_url {
        page = page.with_return_link(&name, &pages::return_url(url, &view.sid, view.status));
    }
    Ok(page_response(settings, page))
}
