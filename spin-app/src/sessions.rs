//! The integrator endpoints: create, read / long-poll, cancel, stream, and
//! the link lookups; plus health.

use bytes::Bytes;
use dock_core::longpoll::{self, WaitDecision};
use dock_core::request::{CreateSessionRequest, parse_platform_id};
use dock_core::stream::{
    DEFAULT_RETRY_MS, StreamCursor, StreamTimer, TimerAction, heartbeat_frame, reconnect_hint,
};
use dock_core::verify_url::verify_url;
use dock_core::wire::{CreatedSession, DiscordLink, Health, KeyRecord, RobloxLinks};
use dock_core::{ApiError, ErrorCode, Session, SessionId, Settings, Timestamp};
use std::time::Duration;

use futures::SinkExt;
use futures::future::{self, Either};
use http_body_util::BodyExt;
use spin_sdk::http::Request;

use crate::auth::{self, Caller};
use crate::env::{entropy, now};
use crate::http::{Response, event_stream, header, ok, read_json_body, with_pid};
use crate::log::log;
use crate::domain;
use crate::store::{Backend, Cursor, Store};

/// How far a waiter's lease reaches past its next planned renewal: an
/// instance that dies without releasing frees its slots after this.
const LEASE_GRACE_SECS: u64 = 30;

/// Takes one of the key's waiter slots until `lease_until`, under a new waiter id.
async fn acquire_waiter(
    store: &Store,
    key: &KeyRecord,
    settings: &Settings,
    lease_until: Timestamp,
) -> Result<String, ApiError> {
    let waiter = dock_core::oauth::token(entropy());
    domain::acquire_waiter(store, key, &waiter, settings, now(), lease_until).await?;
    Ok(waiter)
}

/// `POST /api/v1/verify/session`.
pub async fn create(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    let store = Store::open(settings).await?;
    let key = auth::api_key(&req, &store).await?;
    let body = read_json_body(req, settings.limits.max_body_bytes).await?;
    let body = CreateSessionRequest::parse(&body, &settings.limits)?;
    let now = now();
    let sid = SessionId::from_entropy(entropy());
    let created = domain::create(&store, &key, body, sid, settings, now).await?;
    let session = created.session;
    let data = CreatedSession {
        verify_url: verify_url(&settings.public_base_url, &session.pid, &session.sid),
        sid: session.sid,
        pid: session.pid,
        client_id: session.client_id,
        expires_at: session.expires_at,
        reused_existing: created.reused,
    };
    Ok(with_pid(ok(data, now, created.remaining), &key.pid))
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
    let mut waiter: Option<String> = None;
    let answer = long_poll(&store, &caller, &sid, deadline, settings, &mut waiter).await;
    let key = caller.key;
    if let Some(w) = waiter {
        // After the answer is on its way, not before it: the release is one
        // more round trip the woken client need not wait for. Best effort: a
        // failed release lapses with its lease.
        spin_sdk::wasip3::spawn(async move {
            let _ = store.release_waiter(&key, &w).await;
        });
    }
    answer
}

/// Answers now, or waits for a change until `deadline`. A wait longer than
/// the heartbeat interval looks at the caller's key once per interval: a key
/// revoked meanwhile ends the wait with `401`.
async fn long_poll(
    store: &Store,
    caller: &Caller,
    sid: &SessionId,
    deadline: Timestamp,
    settings: &'static Settings,
    waiter: &mut Option<String>,
) -> Result<Response, ApiError> {
    let key = &caller.key;
    // The state a wake-up carried, when the store's change feed has it.
    let mut known: Option<(Session, Cursor)> = None;
    let mut key_checked = now();
    loop {
        let (session, cursor) = match known.take() {
            Some(state) => state,
            None => store
                .read_with_cursor(&key.pid, sid)
                .await?
                .ok_or_else(ApiError::session_not_found)?,
        };
        let now = now();
        match longpoll::decide(now, &session, deadline) {
            WaitDecision::AnswerNow => {
                return Ok(with_pid(ok(session.view_at(now), now, None), &key.pid));
            }
            WaitDecision::WaitUntil(until) => {
                if waiter.is_none() {
                    *waiter = Some(
                        acquire_waiter(store, key, settings, deadline.plus_secs(LEASE_GRACE_SECS))
                            .await?,
                    );
                }
                let check_key_at = key_checked.plus_secs(settings.heartbeat_secs);
                known = store
                    .wait_change(&key.pid, sid, &cursor, until.min(check_key_at), settings)
                    .await?;
                let t = crate::env::now();
                if known.is_none() && t >= check_key_at {
                    if !caller.still_valid(store).await? {
                        return Err(ApiError::unauthorized());
                    }
                    key_checked = t;
                }
            }
        }
    }
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
    Ok(with_pid(ok(next.view_at(now), now, None), &key.pid))
}

/// `GET /api/v1/verify/session/:sid/stream`.
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
    // Look the session up before answering, so an unknown sid is a real 404.
    let (session, cursor) = store
        .read_with_cursor(&key.pid, &sid)
        .await?
        .ok_or_else(ApiError::session_not_found)?;
    let cursor_state = StreamCursor::resume(last_event_id.as_deref());
    let waiter = acquire_waiter(&store, key, settings, lease_end(settings)).await?;
    // A revocation between the key lookup and the lease would leave this
    // lease behind it (revoking deletes the key's leases): look again.
    if !caller.still_valid(&store).await? {
        let _ = store.release_waiter(key, &waiter).await;
        return Err(ApiError::unauthorized());
    }
    let pid = key.pid.clone();
    let (tx, body) = spin_sdk::http::body::stream::<Bytes>();
    spin_sdk::wasip3::spawn(async move {
        let mut task = StreamTask {
            store,
            caller,
            sid,
            settings,
            tx,
            waiter,
        };
        run_stream(&mut task, session, cursor, cursor_state).await;
        let _ = task
            .store
            .release_waiter(&task.caller.key, &task.waiter)
            .await;
    });
    Ok(with_pid(event_stream(body.boxed_unsync()), &pid))
}

/// A stream's lease reaches past the next heartbeat, when it is renewed.
fn lease_end(settings: &Settings) -> Timestamp {
    now().plus_secs(settings.heartbeat_secs + LEASE_GRACE_SECS)
}

struct StreamTask {
    store: Store,
    caller: Caller,
    sid: SessionId,
    settings: &'static Settings,
    tx: futures::channel::mpsc::Sender<Bytes>,
    waiter: String,
}

/// Writes events until the session is terminal, the client leaves, the
/// stream's maximum duration passes or its key is revoked (then a `retry:`
/// hint; a revoked key's reconnect gets `401`), or the store fails (then the
/// stream ends and the client resumes with `Last-Event-ID`).
///
/// One blocking read per change, held across heartbeats: it ends at the
/// change, the session's expiry or the stream's end, so a heartbeat is a
/// frame (and, once per heartbeat interval, a lease renewal), never a new read.
async fn run_stream(
    task: &mut StreamTask,
    mut session: Session,
    mut cursor: Cursor,
    mut seen: StreamCursor,
) {
    let StreamTask {
        store,
        caller,
        sid,
        settings,
        tx,
        waiter,
    } = task;
    let settings: &'static Settings = settings;
    let key = &caller.key;
    let ended_by_store = |e: crate::store::StoreError| {
        log!("stream ended by the store: {e}");
        crate::store::note_error();
    };
    let mut timer = StreamTimer::new(now(), settings.heartbeat_secs, settings.stream_max_secs);
    let mut renewed = now();
    loop {
        let t = now();
        let step = seen.step(&session.view_at(t));
        if !step.frames.is_empty() {
            if tx.send(step.frames.into()).await.is_err() {
                return;
            }
            timer.wrote(t);
        }
        if step.done {
            return;
        }
        let until = [session.next_deadline(t), timer.ends_at()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| t.plus_secs(settings.heartbeat_secs));
        let woke = {
            let mut change =
                std::pin::pin!(store.wait_change(&key.pid, sid, &cursor, until, settings));
            loop {
                let t = now();
                if t >= renewed.plus_secs(settings.heartbeat_secs) {
                    // Once per heartbeat interval: renew the lease. A
                    // revoked key's leases are deleted with it, so a lease
                    // that is gone ends the stream (the reconnect is a 401
                    // if the key was revoked, a fresh lease if it lapsed).
                    match store.renew_waiter(key, waiter, lease_end(settings)).await {
                        Err(e) => return ended_by_store(e),
                        Ok(false) => {
                            log!("stream ended: its lease is gone (key revoked?)");
                            let _ = tx.send(reconnect_hint(DEFAULT_RETRY_MS).into()).await;
                            return;
                        }
                        Ok(true) => {}
                    }
                    renewed = t;
                }
                let at = match timer.poll(t) {
                    TimerAction::End => {
                        let _ = tx.send(reconnect_hint(DEFAULT_RETRY_MS).into()).await;
                        return;
                    }
                    TimerAction::Heartbeat => {
                        if tx.send(heartbeat_frame().into()).await.is_err() {
                            return;
                        }
                        timer.wrote(t);
                        continue;
                    }
                    TimerAction::SleepUntil(at) => at,
                };
                let nap = Duration::from_millis(t.millis_until(at).max(1));
                let sleep = std::pin::pin!(spin_sdk::time::sleep(nap));
                if let Either::Left((r, _)) = future::select(change.as_mut(), sleep).await {
                    break r;
                }
            }
        };
        let state = match woke {
            Ok(Some(state)) => Some(state),
            Ok(None) => match store.read_with_cursor(&key.pid, sid).await {
                Ok(state) => state,
                Err(e) => return ended_by_store(e),
            },
            Err(e) => return ended_by_store(e),
        };
        let Some((s, c)) = state else { return };
        session = s;
        cursor = c;
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
    Ok(ok(
        Health {
            status: "ready".into(),
            store: Some(store.kind().into()),
        },
        now(),
        None,
    ))
}
