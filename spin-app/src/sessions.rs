//! The integrator endpoints: create, read / long-poll, cancel, stream, and
//! the link lookups; plus health.

use bytes::Bytes;
use dock_core::longpoll;
use dock_core::request::{CreateSessionRequest, parse_platform_id};
use dock_core::stream::StreamCursor;
use dock_core::verify_url::verify_url;
use dock_core::waiter::{EndReason, Output, Waiter};
use dock_core::wire::{CreatedSession, DiscordLink, Health, KeyRecord, RobloxLinks};
use dock_core::{ApiError, ErrorCode, Session, SessionId, Settings, Timestamp};
use std::time::Duration;

use futures::SinkExt;
use futures::future::{self, Either, LocalBoxFuture};
use http_body_util::BodyExt;
use spin_sdk::http::Request;

use crate::auth::{self, Caller, CreateKey};
use crate::domain::{self, CreateOutcome};
use crate::env::{entropy, now};
use crate::http::{LogCode, Response, error, event_stream, header, ok, read_json_body, with_pid};
use crate::log::log;
use crate::store::{Backend, Cursor, Store, StoreError};

/// `POST /api/v1/verify/session`.
pub async fn create(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    let store = Store::open(settings).await?;
    let mut key = CreateKey::of(&req, &store, settings).await?;
    let body = match read_json_body(req, settings.limits.max_body_bytes).await {
        Ok(body) => CreateSessionRequest::parse(&body, &settings.limits).map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let now = now();
    let outcome = match body {
        Ok(body) => {
            let sid = SessionId::from_entropy(entropy());
            let mut outcome = domain::create_with_cached_key(
                &store,
                &key.record,
                key.cached_mark.as_deref(),
                body.clone(),
                sid.clone(),
                settings,
                now,
            )
            .await;
            if matches!(outcome, Ok(CreateOutcome::KeyChanged)) && key.cached_mark.is_some() {
                // The cached key changed or was revoked: read it again, once.
                key = key.reread(&store).await?;
                outcome = domain::create_with_cached_key(
                    &store,
                    &key.record,
                    None,
                    body,
                    sid,
                    settings,
                    now,
                )
                .await;
            }
            match outcome {
                Ok(CreateOutcome::Done(created)) => Ok(created),
                // Revoked since this request read it.
                Ok(CreateOutcome::KeyChanged) => Err(ApiError::unauthorized()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    // A cached key refused before the store checked its mark (a bad body,
    // another PID, a return URL): a key revoked since gets the 401 an
    // uncached request would. (A 429 was decided under the current mark; a
    // store failure is not asked again.)
    if let Err(e) = &outcome
        && key.cached_mark.is_some()
        && (400..500).contains(&e.status())
        && !matches!(e.code(), ErrorCode::QuotaExceeded | ErrorCode::Unauthorized)
    {
        key.confirm(&store).await?;
    }
    let created = match outcome {
        Ok(created) => {
            key.remember(&store, created.key_mark.as_deref(), settings, now)
                .await;
            created
        }
        Err(e) if e.code() == ErrorCode::QuotaExceeded => {
            // The refusal carries the quota's headers too.
            let mut resp = with_rate_limit(error(&e), &key.record, 0, now);
            resp.extensions_mut().insert(LogCode(e.code().as_str()));
            return Ok(with_pid(resp, &key.record.pid));
        }
        Err(e) => return Err(e),
    };
    let session = created.session;
    let data = CreatedSession {
        verify_url: verify_url(&settings.public_base_url, &session.pid, &session.sid),
        sid: session.sid,
        pid: session.pid,
        client_id: session.client_id,
        expires_at: session.expires_at,
        reused_existing: created.reused,
    };
    let resp = ok(data, now, created.remaining);
    let resp = match created.remaining {
        Some(left) => with_rate_limit(resp, &key.record, left, now),
        None => resp,
    };
    Ok(with_pid(resp, &key.record.pid))
}

/// Adds the key's `RateLimit-*` headers (core computes them).
fn with_rate_limit(
    mut resp: Response,
    key: &KeyRecord,
    remaining: u64,
    now: Timestamp,
) -> Response {
    for (name, value) in key.quota.headers(remaining, now) {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// What every read of one session starts with: the store, the caller's key,
/// the parsed sid and query (auth first, so a bad sid never reveals more than a 401).
async fn open_session_request(
    req: &Request,
    sid: &str,
    settings: &'static Settings,
) -> Result<(Store, Caller, SessionId, longpoll::SessionQuery), ApiError> {
    let store = Store::open(settings).await?;
    let key = auth::caller(req, &store).await?;
    let sid = SessionId::parse(sid)?;
    let query =
        longpoll::parse_session_query(req.uri().query().unwrap_or(""), settings.max_wait_secs)?;
    Ok((store, key, sid, query))
}

/// `GET /api/v1/verify/session/:sid[?wait=N]`.
pub async fn get(
    req: Request,
    sid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, caller, sid, query) = open_session_request(&req, sid, settings).await?;
    let deadline = longpoll::deadline(now(), query.wait_secs.unwrap_or(0));
    let mut lease: Option<String> = None;
    let answer = long_poll(&store, &caller, &sid, deadline, settings, &mut lease).await;
    let key = caller.key;
    if let Some(w) = lease {
        // After the answer is on its way, not before it: the release is one
        // more round trip the woken client need not wait for. Best effort: a
        // failed release lapses with its lease.
        spin_sdk::wasip3::spawn(async move {
            let _ = store.release_waiter(&key, &w).await;
        });
    }
    answer
}

/// The waiter, told when the store wakes a revoked key's waiters itself
/// (Redis): it then renews and checks once a minute, not every heartbeat.
fn pushed(store: &Store, waiter: Waiter) -> Waiter {
    if store.pushes_revocation() {
        waiter.revocation_pushed()
    } else {
        waiter
    }
}

/// Takes one of the key's waiter slots until `until` under a new waiter id;
/// `None` when the key holds all of its slots.
async fn try_lease(
    store: &Store,
    key: &KeyRecord,
    sid: &SessionId,
    settings: &Settings,
    until: Timestamp,
) -> Result<Option<String>, StoreError> {
    let waiter = dock_core::waiter::waiter_id(sid, entropy());
    let granted = domain::acquire_waiter(store, key, &waiter, settings, now(), until).await?;
    Ok(granted.then_some(waiter))
}

/// Keeps a read's cursor; the session for the waiter.
fn keep(cursor: &mut Option<Cursor>, read: Option<(Session, Cursor)>) -> Option<Session> {
    read.map(|(session, c)| {
        *cursor = Some(c);
        session
    })
}

/// The answer to a waiter that ended before it answered.
fn refusal(reason: EndReason, settings: &Settings) -> ApiError {
    match reason {
        EndReason::NotFound => ApiError::session_not_found(),
        EndReason::Unauthorized => ApiError::unauthorized(),
        EndReason::TooManyWaiters => domain::too_many_waiters(settings),
        other => ApiError::new(
            ErrorCode::InternalError,
            format!("the waiter ended without an answer ({other:?})"),
        ),
    }
}

/// Answers now, or waits for a change until `deadline`: drives core's
/// [`Waiter`] (every timing decision is its own) with the store. A wait
/// longer than the heartbeat interval looks at the caller's key once per
/// interval: a key revoked meanwhile ends the wait with `401`.
async fn long_poll(
    store: &Store,
    caller: &Caller,
    sid: &SessionId,
    deadline: Timestamp,
    settings: &'static Settings,
    lease: &mut Option<String>,
) -> Result<Response, ApiError> {
    let key = &caller.key;
    let mut waiter = pushed(
        store,
        Waiter::long_poll(now(), deadline, settings.heartbeat_secs),
    );
    let mut cursor: Option<Cursor> = None;
    while let Some(out) = waiter.poll_output(now()) {
        match out {
            Output::ReadState => {
                let read = store.read_with_cursor(&key.pid, sid).await?;
                waiter.handle_state(now(), keep(&mut cursor, read));
            }
            Output::AcquireLease { until } => {
                *lease = try_lease(store, key, sid, settings, until).await?;
                waiter.handle_lease(lease.is_some());
            }
            Output::ArmRead { until } => {
                let Some(at) = cursor.clone() else {
                    return Err(refusal(EndReason::StoreFailed, settings));
                };
                let read = store
                    .wait_change(&key.pid, sid, &at, until, settings)
                    .await?;
                waiter.handle_read_done(now(), keep(&mut cursor, read));
            }
            Output::CheckKey => {
                let valid = caller.still_valid(store).await?;
                waiter.handle_key(now(), valid);
            }
            Output::Answer { view, at } => return Ok(with_pid(ok(view, at, None), &key.pid)),
            Output::End(reason) => return Err(refusal(reason, settings)),
            // Stream outputs: a long-poll gives none.
            Output::RenewLease { .. } | Output::Open | Output::Write(_) => {}
        }
    }
    Err(refusal(EndReason::StoreFailed, settings))
}

/// `GET /api/v1/verify/sessions?clientId=&status=&limit=&cursor=`: the
/// key's PID's sessions, newest first, a page at a time.
pub async fn list(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    let store = Store::open(settings).await?;
    let key = auth::api_key(&req, &store).await?;
    let query = dock_core::listing::parse_query(
        req.uri().query().unwrap_or(""),
        settings.limits.max_client_id_chars,
    )?;
    let now = now();
    let page = domain::list_sessions(&store, &key.pid, query, now).await?;
    Ok(with_pid(ok(page, now, None), &key.pid))
}

/// `DELETE /api/v1/verify/session/:sid`.
pub async fn cancel(
    req: Request,
    sid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let store = Store::open(settings).await?;
    let key = auth::api_key(&req, &store).await?;
    let sid = SessionId::parse(sid)?;
    let now = now();
    let next = domain::cancel(&store, &key.pid, &sid, settings, now).await?;
    crate::webhooks::after_change(key.pid.clone(), settings);
    Ok(with_pid(ok(next.view_at(now), now, None), &key.pid))
}

/// `GET /api/v1/verify/session/:sid/stream`: looks the session up, takes a
/// waiter lease and checks the key again before answering (so an unknown
/// sid is a real 404 and a refused lease a real 429), then streams from a
/// task of its own.
pub async fn stream(
    req: Request,
    sid: &str,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let (store, caller, sid, query) = open_session_request(&req, sid, settings).await?;
    let key = &caller.key;
    let last_event_id = header(&req, "last-event-id")
        .map(str::to_owned)
        .or(query.last_event_id);
    let mut waiter = pushed(
        &store,
        Waiter::stream(
            settings.heartbeat_secs,
            settings.stream_max_secs,
            StreamCursor::resume(last_event_id.as_deref()),
        ),
    );
    let mut cursor: Option<Cursor> = None;
    let mut lease: Option<String> = None;
    loop {
        match waiter.poll_output(now()) {
            Some(Output::ReadState) => {
                let read = store.read_with_cursor(&key.pid, &sid).await?;
                waiter.handle_state(now(), keep(&mut cursor, read));
            }
            Some(Output::AcquireLease { until }) => {
                lease = try_lease(&store, key, &sid, settings, until).await?;
                waiter.handle_lease(lease.is_some());
            }
            Some(Output::CheckKey) => {
                let valid = caller.still_valid(&store).await?;
                waiter.handle_key(now(), valid);
            }
            Some(Output::Open) => break,
            Some(Output::End(reason)) => {
                if let Some(l) = &lease {
                    let _ = store.release_waiter(key, l).await;
                }
                return Err(refusal(reason, settings));
            }
            _ => return Err(refusal(EndReason::StoreFailed, settings)),
        }
    }
    let (Some(lease), Some(cursor)) = (lease, cursor) else {
        return Err(refusal(EndReason::StoreFailed, settings));
    };
    let pid = key.pid.clone();
    let (tx, body) = spin_sdk::http::body::stream::<Bytes>();
    spin_sdk::wasip3::spawn(async move {
        let task = StreamTask {
            store,
            caller,
            sid,
            settings,
            lease,
        };
        run_stream(&task, waiter, cursor, tx).await;
        let _ = task
            .store
            .release_waiter(&task.caller.key, &task.lease)
            .await;
    });
    Ok(with_pid(event_stream(body.boxed_unsync()), &pid))
}

/// What the change-feed read of a stream returns.
type ChangeRead = Result<Option<(Session, Cursor)>, StoreError>;

struct StreamTask {
    store: Store,
    caller: Caller,
    sid: SessionId,
    settings: &'static Settings,
    lease: String,
}

/// Drives an open stream's [`Waiter`]: writes what it says, renews the
/// lease when it says, and holds one blocking read of the change feed
/// across heartbeats, woken by the read or by the waiter's next timer. Ends
/// when the session is terminal, the client leaves, the stream's maximum
/// duration passes or its lease is gone (then a `retry:` hint; a revoked
/// key's reconnect gets `401`), or the store fails (then the stream ends and
/// the client resumes with `Last-Event-ID`).
async fn run_stream(
    task: &StreamTask,
    mut waiter: Waiter,
    mut cursor: Cursor,
    mut tx: futures::channel::mpsc::Sender<Bytes>,
) {
    let StreamTask {
        store,
        caller,
        sid,
        settings,
        lease,
    } = task;
    let key = &caller.key;
    let failed = |waiter: &mut Waiter, e: StoreError| {
        log!("stream ended by the store: {e}");
        crate::store::note_error();
        waiter.handle_store_failed();
    };
    let mut read: Option<LocalBoxFuture<'_, ChangeRead>> = None;
    loop {
        while let Some(out) = waiter.poll_output(now()) {
            match out {
                Output::Write(frames) => {
                    if tx.send(frames.into()).await.is_err() {
                        waiter.handle_write_failed();
                    }
                }
                Output::RenewLease { until } => match store.renew_waiter(key, lease, until).await {
                    Ok(alive) => {
                        if !alive {
                            log!("stream ended: its lease is gone (key revoked?)");
                        }
                        waiter.handle_lease(alive);
                    }
                    Err(e) => failed(&mut waiter, e),
                },
                Output::ArmRead { until } => {
                    let at = cursor.clone();
                    read = Some(Box::pin(async move {
                        store.wait_change(&key.pid, sid, &at, until, settings).await
                    }));
                }
                Output::ReadState => match store.read_with_cursor(&key.pid, sid).await {
                    Ok(state) => {
                        let session = state.map(|(s, c)| {
                            cursor = c;
                            s
                        });
                        waiter.handle_state(now(), session);
                    }
                    Err(e) => failed(&mut waiter, e),
                },
                Output::End(_) => return,
                // Before the stream opened only.
                Output::AcquireLease { .. }
                | Output::CheckKey
                | Output::Open
                | Output::Answer { .. } => {}
            }
        }
        if waiter.is_done() {
            return;
        }
        let Some(pending) = read.as_mut() else { return };
        let t = now();
        let nap = waiter
            .poll_timeout()
            .map_or(settings.heartbeat_secs * 1000, |at| t.millis_until(at));
        let sleep = std::pin::pin!(spin_sdk::time::sleep(Duration::from_millis(nap.max(1))));
        if let Either::Left((woke, _)) = future::select(pending, sleep).await {
            read = None;
            match woke {
                Ok(state) => {
                    let session = state.map(|(s, c)| {
                        cursor = c;
                        s
                    });
                    waiter.handle_read_done(now(), session);
                }
                Err(e) => failed(&mut waiter, e),
            }
        }
    }
}

fn query_param(req: &Request, name: &str) -> Result<String, ApiError> {
    let q = req.uri().query().unwrap_or("");
    form_value(q, name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingField,
            format!("query parameter `{name}` is required"),
        )
        .with_field(name)
    })
}

fn form_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == name).then(|| v.into_owned()))
}

/// `GET /api/v1/public/discord-to-roblox?discordId=…`.
pub async fn discord_to_roblox(
    req: Request,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let store = Store::open(settings).await?;
    let key = auth::api_key(&req, &store).await?;
    let discord_id = parse_platform_id("discordId", &query_param(&req, "discordId")?)?;
    let roblox_id = store.link_of(&key.pid, &discord_id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::LinkNotFound,
            "this Discord user is not linked in this PID",
        )
    })?;
    let resp = ok(
        DiscordLink {
            discord_id,
            roblox_id,
        },
        now(),
        None,
    );
    Ok(with_pid(resp, &key.pid))
}

/// `GET /api/v1/public/roblox-to-discord?robloxId=…`.
pub async fn roblox_to_discord(
    req: Request,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    let store = Store::open(settings).await?;
    let key = auth::api_key(&req, &store).await?;
    let roblox_id = parse_platform_id("robloxId", &query_param(&req, "robloxId")?)?;
    let discord_ids = store.discord_ids_of(&key.pid, &roblox_id).await?;
    if discord_ids.is_empty() {
        return Err(ApiError::new(
            ErrorCode::LinkNotFound,
            "no Discord user is linked to this Roblox account in this PID",
        ));
    }
    let resp = ok(
        RobloxLinks {
            roblox_id,
            discord_ids,
        },
        now(),
        None,
    );
    Ok(with_pid(resp, &key.pid))
}

/// `GET /healthz`: liveness, no store access.
pub fn healthz() -> Response {
    ok(
        Health {
            status: "ok".into(),
            store: None,
        },
        now(),
        None,
    )
}

/// `GET /readyz`: the store answers. A failure is 503 naming the store
/// kind, logged but not counted as a store error (probes poll at a fixed
/// rate and would drown the count).
pub async fn readyz(settings: &'static Settings) -> Result<Response, ApiError> {
    let unready = |e: crate::store::StoreError| {
        log!("readiness: {e}");
        // A deployment that can never become ready says why.
        if let crate::store::StoreError::NotConfigured(_) = e {
            return e.to_api_error();
        }
        let kind = Store::kind_for(settings);
        ApiError::new(
            ErrorCode::StoreUnavailable,
            format!("the {kind} store is unavailable; retry shortly"),
        )
        .with_retry_after(crate::store::UNAVAILABLE_RETRY_AFTER_SECS)
    };
    let store = Store::open(settings).await.map_err(unready)?;
    store.ping().await.map_err(unready)?;
    // A store written by a newer build is never ready for this one.
    store.schema_version().await.map_err(unready)?;
    Ok(ok(
        Health {
            status: "ready".into(),
            store: Some(store.kind().into()),
        },
        now(),
        None,
    ))
}
