//! The operator's admin API (enabled by the secret variable `admin_token`).

use dock_core::request::{
    CompleteSessionRequest, CreateKeyRequest, CreatePidRequest, Limits, PatchKeyRequest,
    PatchPidRequest, RequestError, SetWebhookRequest, parse_page_query,
};
use dock_core::wire::{
    IssuedKey, KeyRecord, PidRecord, RevokedKey, SessionCounters, Stats, WebhookCounters,
};
use dock_core::{ApiError, ApiKeySecret, ErrorCode, KeyId, Pid, SessionId, Settings};
use http::Method;
use spin_sdk::http::Request;

use crate::auth;
use crate::domain;
use crate::env::{entropy, now};
use crate::http::{Response, ok, read_json_body};
use crate::store::{Backend, LinkSide, Store};

/// What every admin handler starts with, in this order: the admin token
/// (so a malformed id or body never reveals more than a 401), the path's
/// id, the JSON body (`()` for none), then the store.
async fn begin<T, B>(
    req: Request,
    settings: &Settings,
    id: impl FnOnce() -> Result<T, ApiError>,
    body: impl FnOnce(&[u8], &Limits) -> Result<B, RequestError>,
) -> Result<(Store, T, B), ApiError> {
    auth::admin(&req, settings)?;
    let id = id()?;
    let body = if req.method() == Method::GET || req.method() == Method::DELETE {
        body(b"{}", &settings.limits)?
    } else {
        let bytes = read_json_body(req, settings.limits.max_body_bytes).await?;
        body(&bytes, &settings.limits)?
    };
    Ok((Store::open(settings).await?, id, body))
}

/// No body.
fn none(_: &[u8], _: &Limits) -> Result<(), RequestError> {
    Ok(())
}

/// No path id.
fn no_id() -> Result<(), ApiError> {
    Ok(())
}

fn pid_of(pid: &str) -> impl FnOnce() -> Result<Pid, ApiError> + '_ {
    move || Ok(Pid::parse(pid)?)
}

fn key_id_of(key_id: &str) -> impl FnOnce() -> Result<KeyId, ApiError> + '_ {
    move || Ok(KeyId::parse(key_id)?)
}

/// `POST /api/v1/admin/pids` `{pid, name}`.
pub async fn create_pid(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    let (store, (), body) = begin(req, settings, no_id, CreatePidRequest::parse).await?;
    let now = now();
    let rec = PidRecord {
        pid: body.pid,
        name: body.name,
        created_at: now,
        return_origins: Vec::new(),
    };
    if !store.create_pid(&rec).await? {
        return Err(
            ApiError::new(ErrorCode::PidExists, "this PID already exists").with_field("pid"),
        );
    }
    Ok(ok(rec, now, None))
}

/// `POST /api/v1/admin/pids/:pid/keys` `{quota?}`.
pub async fn issue_key(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, body) = begin(req, settings, pid_of(pid), CreateKeyRequest::parse).await?;
    if store.load_pid(&pid).await?.is_none() {
        return Err(ApiError::new(ErrorCode::PidNotFound, "no such PID"));
    }
    let now = now();
    let secret = ApiKeySecret::from_entropy(entropy());
    let rec = KeyRecord {
        key_id: KeyId::from_entropy(entropy()),
        pid,
        quota: body.quota,
        created_at: now,
    };
    store.issue_key(secret.hash().as_str(), &rec).await?;
    let data = IssuedKey {
        key_id: rec.key_id,
        pid: rec.pid,
        key: secret.expose().to_owned(),
        quota: rec.quota,
        created_at: now,
    };
    Ok(ok(data, now, None))
}

/// `DELETE /api/v1/admin/keys/:keyId`.
pub async fn revoke_key(
    req: Request,
    key_id: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, key_id, ()) = begin(req, settings, key_id_of(key_id), none).await?;
    if !store.revoke_key(&key_id).await? {
        return Err(ApiError::new(ErrorCode::KeyNotFound, "no such key"));
    }
    Ok(ok(
        RevokedKey {
            key_id,
            revoked: true,
        },
        now(),
        None,
    ))
}

/// `GET /api/v1/admin/stats[?pid=]`: the counters kept in the store, summed
/// over every PID or for one; reading them also counts the sessions that
/// expired since the last create or read.
pub async fn stats(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    auth::admin(&req, settings)?;
    let query = req.uri().query().unwrap_or("");
    let mut pids = form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "pid");
    let pid = match (pids.next(), pids.next()) {
        (None, _) => None,
        (Some((_, v)), None) => Some(Pid::parse(&v)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "query parameter `pid` given twice",
            )
            .with_field("pid"));
        }
    };
    let store = Store::open(settings).await?;
    if let Some(pid) = &pid
        && store.load_pid(pid).await?.is_none()
    {
        return Err(ApiError::new(ErrorCode::PidNotFound, "no such PID"));
    }
    let now = now();
    let snap = crate::store::stats(&store, pid.as_ref(), now).await?;
    let c = snap.counters;
    let data = Stats {
        pid,
        store: store.kind().into(),
        pids: snap.pids,
        sessions: SessionCounters {
            created: c.created,
            reused: c.reused,
            completed: c.completed,
            expired: c.expired,
            cancelled: c.cancelled,
        },
        quota_rejections: c.quota_rejected,
        links_erased: c.links_erased,
        waiters: c.waiters,
        store_errors: snap.store_errors,
        webhooks: WebhookCounters {
            attempts: c.webhook_attempts,
            delivered: c.webhooks_delivered,
            failed: c.webhooks_failed,
        },
    };
    Ok(ok(data, now, None))
}

/// `POST /api/v1/admin/sessions/:sid/complete` `{discordId, robloxId}`: the
/// "bring your own flow" completion, through the same core transition and
/// link-dataset update as the built-in OAuth flow.
pub async fn complete(
    req: Request,
    sid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let sid_of = || Ok(SessionId::parse(sid)?);
    let (store, sid, body) = begin(req, settings, sid_of, CompleteSessionRequest::parse).await?;
    let now = now();
    let view = domain::complete(
        &store,
        None,
        &sid,
        &body.discord_id,
        &body.roblox_id,
        settings,
        now,
    )
    .await?;
    crate::webhooks::after_change(view.pid.clone(), settings);
    Ok(ok(view, now, None))
}

/// `GET /api/v1/admin/pids[?limit=&cursor=]`: every PID, a page at a time.
pub async fn list_pids(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    auth::admin(&req, settings)?;
    let page = parse_page_query(
        req.uri().query().unwrap_or(""),
        domain::DEFAULT_PIDS_PER_PAGE,
        domain::MAX_PIDS_PER_PAGE,
    )?;
    let store = Store::open(settings).await?;
    Ok(ok(domain::list_pids(&store, &page).await?, now(), None))
}

/// `GET /api/v1/admin/pids/:pid`.
pub async fn get_pid(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, ()) = begin(req, settings, pid_of(pid), none).await?;
    Ok(ok(domain::pid(&store, &pid).await?, now(), None))
}

/// `PATCH /api/v1/admin/pids/:pid` `{name?, returnOrigins?}`.
pub async fn patch_pid(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, body) = begin(req, settings, pid_of(pid), PatchPidRequest::parse).await?;
    let rec = domain::patch_pid(&store, &pid, body).await?;
    Ok(ok(rec, now(), None))
}

/// `GET /api/v1/admin/pids/:pid/keys`: the PID's live keys, never their secrets.
pub async fn list_keys(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, ()) = begin(req, settings, pid_of(pid), none).await?;
    Ok(ok(domain::keys_of(&store, &pid).await?, now(), None))
}

/// `PATCH /api/v1/admin/keys/:keyId` `{quota: {limit?, windowSeconds?}}`.
pub async fn patch_key(
    req: Request,
    key_id: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, key_id, patch) =
        begin(req, settings, key_id_of(key_id), PatchKeyRequest::parse).await?;
    Ok(ok(
        domain::patch_key(&store, &key_id, &patch).await?,
        now(),
        None,
    ))
}

/// `DELETE /api/v1/admin/pids/:pid/links/{discord|roblox}/:id`: erasure.
pub async fn erase_links(
    req: Request,
    pid: &str,
    side: LinkSide,
    id: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, ()) = begin(req, settings, pid_of(pid), none).await?;
    Ok(ok(
        domain::erase_links(&store, &pid, side, id).await?,
        now(),
        None,
    ))
}

/// `PUT /api/v1/admin/pids/:pid/webhook` `{url, events?}`: a new webhook
/// answers its signing secret (once); replacing one keeps its secrets.
pub async fn put_webhook(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    auth::admin(&req, settings)?;
    let pid = Pid::parse(pid)?;
    let bytes = read_json_body(req, settings.limits.max_body_bytes).await?;
    let body = SetWebhookRequest::parse(&bytes, &settings.limits, &settings.webhook_origins)?;
    let store = Store::open(settings).await?;
    let view = domain::set_webhook(&store, &pid, body, entropy()).await?;
    Ok(ok(view, now(), None))
}

/// `GET /api/v1/admin/pids/:pid/webhook`: url and events, never the secret.
pub async fn get_webhook(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, ()) = begin(req, settings, pid_of(pid), none).await?;
    Ok(ok(domain::webhook(&store, &pid).await?, now(), None))
}

/// `DELETE /api/v1/admin/pids/:pid/webhook`: the removed webhook.
pub async fn delete_webhook(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, pid, ()) = begin(req, settings, pid_of(pid), none).await?;
    Ok(ok(domain::delete_webhook(&store, &pid).await?, now(), None))
}

/// `POST /api/v1/admin/pids/:pid/webhook/rotate-secret`: the new secret
/// (once); the old one signs beside it for 24 hours.
pub async fn rotate_webhook_secret(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    auth::admin(&req, settings)?;
    let pid = Pid::parse(pid)?;
    let store = Store::open(settings).await?;
    let now = now();
    let view = domain::rotate_webhook_secret(&store, &pid, entropy(), now).await?;
    Ok(ok(view, now, None))
}

/// `GET /api/v1/admin/pids/:pid/webhook/deliveries?limit=`: recent attempts, newest first.
pub async fn webhook_deliveries(
    req: Request,
    pid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let (store, pid, ()) = begin(req, settings, pid_of(pid), none).await?;
    let page = parse_page_query(
        &query,
        domain::DEFAULT_ATTEMPTS_PER_PAGE,
        domain::MAX_ATTEMPTS_PER_PAGE,
    )?;
    Ok(ok(
        domain::deliveries(&store, &pid, page.limit).await?,
        now(),
        None,
    ))
}
