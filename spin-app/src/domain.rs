//! The domain flows: every rule of a session's life, as plain async Rust
//! over a [`Backend`], with the clock and entropy as arguments.
//!
//! Handlers (`sessions`, `admin`, `flow`) only translate HTTP to these calls
//! and their results back; the decisions inside are dock-core's, and the
//! stores compare-and-set what core decided. Run natively against the
//! in-memory backend by `cargo test -p dock-spin-app` (the tests below).
//!
//! | rule | here |
//! |---|---|
//! | a key sees its own PID only | [`create`] (`pid_not_found`), every read scoped by the key's PID |
//! | one live session per (clientId, guildId, expectedDiscordId), reused until it expires | [`create`] (core's `decide_create`, the store's reuse slot) |
//! | quota: every create request is charged once, refused past the limit | [`create`] (core's `Quota`) |
//! | cancel / complete only while pending; completion is idempotent for the same result | [`cancel`], [`complete`] (core's transitions) |
//! | the link dataset changes in the same atomic step as the completion | [`complete`] (`LinkWrite`) |
//! | compare-and-set conflicts retry, then answer 503 `contention` | [`MAX_CAS_ATTEMPTS`] |
//! | a key holds at most `max_streams_per_key` waiter leases | [`acquire_waiter`] |
//! | tenants: list, rename, keys (never secrets), quota changes, link erasure | [`list_pids`], [`patch_pid`], [`keys_of`], [`patch_key`], [`erase_links`] |
//! | a `returnUrl` only on an origin the PID registered (no open redirect) | [`create`], [`patch_pid`] |
//! | a key lists its own PID's sessions only, newest first, pages stable under concurrent creates | [`list_sessions`] (core's `listing`) |
//! | a PID's webhook: set, read (never the secret), rotate (old secret signs 24 h more), delete | [`set_webhook`], [`webhook`], [`rotate_webhook_secret`], [`delete_webhook`] |
//! | an ended session's event is in the outbox in the step that ended it; delivered at least once, retried with back-off for 24 h, then failed | the stores' scripts/triggers; [`dispatch`] |

use dock_core::id::reuse_digest;
use dock_core::quota::QuotaDecision;
use dock_core::request::{
    CreateSessionRequest, PageQuery, PatchKeyRequest, PatchPidRequest, parse_platform_id,
};
use dock_core::wire::{ErasedLinks, KeyInfo, KeyList, KeyRecord, PidPage, PidRecord};
use dock_core::{
    ApiError, Completion, CreateDecision, ErrorCode, KeyId, Pid, Session, SessionId, SessionView,
    Settings, Timestamp,
};

use dock_core::listing::{ListQuery, Page, SessionPage};
use dock_core::request::SetWebhookRequest;
use dock_core::webhook::{
    self, Attempt, AttemptList, OutboxState, Outcome, WebhookConfig, WebhookView,
};

use crate::store::{Backend, Charge, Claim, LinkSide, LinkWrite, StoreError};

/// Compare-and-set attempts before giving up under contention.
pub const MAX_CAS_ATTEMPTS: usize = 16;

/// The answer when every compare-and-set attempt lost to another writer.
fn contention() -> ApiError {
    ApiError::store_unavailable(1).with_field("contention")
}

/// What [`create`] made or found.
#[derive(Debug)]
pub struct Created {
    /// The live session (new, or the pending one reused).
    pub session: Session,
    /// True when it was reused (`reusedExisting`).
    pub reused: bool,
    /// Creates left in the key's quota window (`verifyRequestsRemaining`).
    pub remaining: Option<u64>,
    /// The key's mark as the create saw it (Redis): what an instance may
    /// cache the key's record with ([`crate::key_cache`]).
    pub key_mark: Option<String>,
}

/// What [`create_with_cached_key`] did.
#[allow(
    clippy::large_enum_variant,
    reason = "a transient return value, matched at once; boxing would allocate on every create"
)]
#[derive(Debug)]
pub enum CreateOutcome {
    /// Made or found the live session.
    Done(Created),
    /// The key record was a cached copy and the key has changed (its quota)
    /// or been revoked since: nothing was created or counted; read the key
    /// again and retry.
    KeyChanged,
}

/// Creates a session for `key`, or returns the live one for the same
/// (clientId, guildId, expectedDiscordId). `sid` is the new session's id if
/// one is created (from the caller's entropy). `key` was read in this
/// request; a key revoked since is a 401. (The tests' entry: the create
/// route calls [`create_with_cached_key`].)
#[cfg(test)]
pub async fn create(
    store: &impl Backend,
    key: &KeyRecord,
    body: CreateSessionRequest,
    sid: SessionId,
    settings: &Settings,
    now: Timestamp,
) -> Result<Created, ApiError> {
    match create_with_cached_key(store, key, None, body, sid, settings, now).await? {
        CreateOutcome::Done(created) => Ok(created),
        CreateOutcome::KeyChanged => Err(ApiError::unauthorized()),
    }
}

/// [`create`], where `key` may be an instance's cached copy of the key's
/// record, taken at `cached_mark`: the store checks the mark in the step
/// that counts the create, so a revoked or changed key creates nothing.
pub async fn create_with_cached_key(
    store: &impl Backend,
    key: &KeyRecord,
    cached_mark: Option<&str>,
    body: CreateSessionRequest,
    sid: SessionId,
    settings: &Settings,
    now: Timestamp,
) -> Result<CreateOutcome, ApiError> {
    if body.pid != key.pid {
        // A key only ever sees its own PID; others do not exist for it.
        return Err(
            ApiError::new(ErrorCode::PidNotFound, "no such PID for this API key").with_field("pid"),
        );
    }
    if let Some(url) = &body.return_url {
        // Only to an origin the operator registered for the PID: never an open redirect.
        let origin = dock_core::origin::origin_of(url).unwrap_or_default();
        let registered = store
            .load_pid(&body.pid)
            .await?
            .is_some_and(|p| p.return_origins.contains(&origin));
        if !registered {
            return Err(ApiError::new(
                ErrorCode::ReturnUrlNotAllowed,
                format!("`returnUrl` is on {origin}, which is not among this PID's return origins"),
            )
            .with_field("returnUrl"));
        }
    }
    let digest = reuse_digest(
        &body.client_id,
        body.guild_id.as_deref(),
        body.expected_discord_id.as_deref(),
    );
    let candidate = Session::new(
        sid,
        body.pid,
        body.client_id,
        body.guild_id,
        now,
        settings.session_ttl_secs,
    )
    .bound_to(body.expected_discord_id, body.display_label)
    .returning_to(body.return_url);
    let mut expected: Option<SessionId> = None;
    let mut remaining = None;
    let mut key_mark = None;
    for attempt in 0..MAX_CAS_ATTEMPTS {
        // The first attempt also counts the create against the key's quota
        // (and checks a cached key's mark).
        let charge = (attempt == 0).then_some(Charge { key, cached_mark });
        let claimed = store
            .claim_reuse(
                &digest,
                expected.as_ref(),
                &candidate,
                charge,
                settings,
                now,
            )
            .await?;
        if attempt == 0 {
            key_mark = claimed.key_mark;
        }
        if let Some(count) = claimed.quota_count {
            match key.quota.decide(count, now) {
                QuotaDecision::Allowed { remaining: r } => remaining = Some(r),
                QuotaDecision::Exhausted { retry_after_secs } => {
                    return Err(ApiError::quota_exceeded(retry_after_secs));
                }
            }
        }
        match claimed.claim {
            Claim::KeyChanged => return Ok(CreateOutcome::KeyChanged),
            Claim::OverQuota => {
                return Err(StoreError::Corrupt(format!(
                    "the store refused create {} of quota {} as beyond it",
                    claimed.quota_count.unwrap_or(0),
                    key.quota.limit
                ))
                .into());
            }
            Claim::Created => {
                return Ok(CreateOutcome::Done(Created {
                    session: candidate,
                    reused: false,
                    remaining,
                    key_mark,
                }));
            }
            Claim::Taken { sid, session } => {
                match dock_core::session::decide_create(session.as_ref(), now) {
                    CreateDecision::Reuse(existing) => {
                        return Ok(CreateOutcome::Done(Created {
                            session: existing,
                            reused: true,
                            remaining,
                            key_mark,
                        }));
                    }
                    CreateDecision::CreateNew => expected = sid,
                }
            }
        }
    }
    Err(contention())
}

/// Cancels a pending session of `pid`: the cancelled record.
pub async fn cancel(
    store: &impl Backend,
    pid: &Pid,
    sid: &SessionId,
    settings: &Settings,
    now: Timestamp,
) -> Result<Session, ApiError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let loaded = store
            .load_session(Some(pid), sid)
            .await?
            .ok_or_else(ApiError::session_not_found)?;
        let next = loaded.session.cancel(now)?;
        if store.commit(&loaded, &next, None, settings, now).await? {
            return Ok(next);
        }
    }
    Err(contention())
}

/// Completes a session (scoped to `pid` when given; the admin API passes
/// none): core's transition and the link-dataset update, committed together,
/// retried on conflict. The admin API and the OAuth flow both complete here.
pub async fn complete(
    store: &impl Backend,
    pid: Option<&Pid>,
    sid: &SessionId,
    discord_id: &str,
    roblox_id: &str,
    settings: &Settings,
    now: Timestamp,
) -> Result<SessionView, ApiError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (loaded, previous) = store
            .load_for_completion(pid, sid, discord_id)
            .await?
            .ok_or_else(ApiError::session_not_found)?;
        match loaded
            .session
            .complete(now, discord_id, roblox_id, previous.as_deref())?
        {
            Completion::AlreadyCompleted => return Ok(loaded.session.view_at(now)),
            Completion::Applied(next) => {
                let link = LinkWrite {
                    discord_id: discord_id.to_owned(),
                    roblox_id: roblox_id.to_owned(),
                    expected_previous: previous,
                };
                if store
                    .commit(&loaded, &next, Some(&link), settings, now)
                    .await?
                {
                    return Ok(next.view_at(now));
                }
            }
        }
    }
    Err(contention())
}

/// Takes one of the key's `max_streams_per_key` waiter slots for `waiter`
/// until `lease_until`; false when all are held (answer
/// [`too_many_waiters`]). Leases that ended by `now` free their slots.
pub async fn acquire_waiter(
    store: &impl Backend,
    key: &KeyRecord,
    waiter: &str,
    settings: &Settings,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<bool, StoreError> {
    store
        .acquire_waiter(key, waiter, settings.max_streams_per_key, now, lease_until)
        .await
}

/// `429 too_many_streams`: the key holds all of its waiter slots.
pub fn too_many_waiters(settings: &Settings) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyStreams,
        format!(
            "this API key already has {} open streams and long-polls; close one or retry later",
            settings.max_streams_per_key
        ),
    )
    .with_retry_after(1)
}

/// Most PIDs on one page of `GET /api/v1/admin/pids`, and the default.
pub const MAX_PIDS_PER_PAGE: usize = 200;
/// The page size of `GET /api/v1/admin/pids` without `limit`.
pub const DEFAULT_PIDS_PER_PAGE: usize = 50;

fn pid_not_found() -> ApiError {
    ApiError::new(ErrorCode::PidNotFound, "no such PID")
}

/// One page of PIDs, in PID order, after `page.cursor` (a PID).
pub async fn list_pids(store: &impl Backend, page: &PageQuery) -> Result<PidPage, ApiError> {
    let after = match &page.cursor {
        Some(c) => Some(Pid::parse(c).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "query parameter `cursor` is not a cursor this API gave",
            )
            .with_field("cursor")
        })?),
        None => None,
    };
    // One more than the page: whether another page follows.
    let mut pids = store.list_pids(after.as_ref(), page.limit + 1).await?;
    let next_cursor = if pids.len() > page.limit {
        pids.truncate(page.limit);
        pids.last().map(|r| r.pid.as_str().to_owned())
    } else {
        None
    };
    Ok(PidPage { pids, next_cursor })
}

/// A PID's record.
pub async fn pid(store: &impl Backend, pid: &Pid) -> Result<PidRecord, ApiError> {
    store.load_pid(pid).await?.ok_or_else(pid_not_found)
}

/// Changes a PID's name and/or its registered return origins: its new record.
pub async fn patch_pid(
    store: &impl Backend,
    pid: &Pid,
    patch: PatchPidRequest,
) -> Result<PidRecord, ApiError> {
    let mut rec = self::pid(store, pid).await?;
    if let Some(name) = patch.name {
        rec.name = name;
    }
    if let Some(origins) = patch.return_origins {
        rec.return_origins = origins;
    }
    if !store.update_pid(&rec).await? {
        return Err(pid_not_found());
    }
    Ok(rec)
}

/// The live keys of a PID (never their secrets).
pub async fn keys_of(store: &impl Backend, pid: &Pid) -> Result<KeyList, ApiError> {
    self::pid(store, pid).await?;
    let keys = store.keys_of(pid).await?;
    Ok(KeyList {
        keys: keys.into_iter().map(KeyInfo::from).collect(),
    })
}

/// Changes a live key's quota; the next create is decided under it (the
/// current window's count stands).
pub async fn patch_key(
    store: &impl Backend,
    key_id: &KeyId,
    patch: &PatchKeyRequest,
) -> Result<KeyInfo, ApiError> {
    let not_found = || ApiError::new(ErrorCode::KeyNotFound, "no such key");
    let mut rec = store.key_by_id(key_id).await?.ok_or_else(not_found)?;
    rec.quota = patch.apply(rec.quota);
    if !store.update_key(&rec).await? {
        return Err(not_found());
    }
    Ok(rec.into())
}

/// Erases a PID's links of one Discord user or one Roblox account (a
/// data-protection request): both lookup directions, counted in stats.
pub async fn erase_links(
    store: &impl Backend,
    pid: &Pid,
    side: LinkSide,
    id: &str,
) -> Result<ErasedLinks, ApiError> {
    let field = match side {
        LinkSide::Discord => "discordId",
        LinkSide::Roblox => "robloxId",
    };
    let id = parse_platform_id(field, id)?;
    self::pid(store, pid).await?;
    let erased = store.erase_links(pid, side, &id).await?;
    Ok(ErasedLinks {
        pid: pid.clone(),
        erased,
    })
}

/// One page of a PID's sessions, newest first (core's `listing::Page`
/// decides what the store's batches make of it).
pub async fn list_sessions(
    store: &impl Backend,
    pid: &Pid,
    query: ListQuery,
    now: Timestamp,
) -> Result<SessionPage, ApiError> {
    let client = query.client_id.clone();
    let mut page = Page::new(query, now);
    while let Some((after, n)) = page.next_batch() {
        let after = after.cloned();
        let batch = store
            .list_sessions(pid, client.as_deref(), after.as_ref(), n)
            .await?;
        page.take(batch, n);
    }
    Ok(page.finish())
}

fn webhook_not_found() -> ApiError {
    ApiError::new(ErrorCode::WebhookNotFound, "this PID has no webhook")
}

/// Sets a PID's webhook (`body` checked by core against the operator's
/// origins). A new webhook gets a signing secret from `secret_entropy`,
/// shown in the answer once; replacing one keeps its secrets (no `secret`
/// in the answer).
pub async fn set_webhook(
    store: &impl Backend,
    pid: &Pid,
    body: SetWebhookRequest,
    secret_entropy: [u8; 32],
) -> Result<WebhookView, ApiError> {
    let (cfg, secret) = match store.webhook(pid).await? {
        Some(mut cfg) => {
            cfg.url = body.url;
            cfg.events = body.events;
            (cfg, None)
        }
        None => {
            let secret = webhook::new_secret(secret_entropy);
            (
                WebhookConfig::new(body.url, body.events, secret.clone()),
                Some(secret),
            )
        }
    };
    if !store.put_webhook(pid, &cfg).await? {
        return Err(pid_not_found());
    }
    Ok(WebhookView {
        secret,
        ..cfg.view()
    })
}

/// A PID's webhook, without its secrets.
pub async fn webhook(store: &impl Backend, pid: &Pid) -> Result<WebhookView, ApiError> {
    self::pid(store, pid).await?;
    let cfg = store.webhook(pid).await?.ok_or_else(webhook_not_found)?;
    Ok(cfg.view())
}

/// Gives a PID's webhook a new signing secret (in the answer, once); the
/// previous one keeps signing beside it for 24 hours.
pub async fn rotate_webhook_secret(
    store: &impl Backend,
    pid: &Pid,
    secret_entropy: [u8; 32],
    now: Timestamp,
) -> Result<WebhookView, ApiError> {
    self::pid(store, pid).await?;
    let mut cfg = store.webhook(pid).await?.ok_or_else(webhook_not_found)?;
    let secret = webhook::new_secret(secret_entropy);
    cfg.rotate(secret.clone(), now);
    if !store.put_webhook(pid, &cfg).await? {
        return Err(pid_not_found());
    }
    Ok(WebhookView {
        secret: Some(secret),
        ..cfg.view()
    })
}

/// Removes a PID's webhook; events not yet delivered are dropped.
pub async fn delete_webhook(store: &impl Backend, pid: &Pid) -> Result<WebhookView, ApiError> {
    self::pid(store, pid).await?;
    let cfg = store.webhook(pid).await?.ok_or_else(webhook_not_found)?;
    store.delete_webhook(pid).await?;
    Ok(cfg.view())
}

/// Most attempts on one page of `GET …/webhook/deliveries`, and the default.
pub const MAX_ATTEMPTS_PER_PAGE: usize = webhook::MAX_ATTEMPT_LOG;
/// The page size of `GET …/webhook/deliveries` without `limit`.
pub const DEFAULT_ATTEMPTS_PER_PAGE: usize = 50;

/// A PID's most recent delivery attempts, newest first.
pub async fn deliveries(
    store: &impl Backend,
    pid: &Pid,
    limit: usize,
) -> Result<AttemptList, ApiError> {
    self::pid(store, pid).await?;
    Ok(AttemptList {
        deliveries: store.attempts(pid, limit).await?,
    })
}

/// Sends one webhook request: the component's outbound HTTP (with the
/// attempt's timeout), or a test's fake receiver.
#[allow(async_fn_in_trait)]
pub trait Deliver {
    /// POSTs `body` to `url` with `signature` as `Dock-Signature`: the
    /// answer's status, or why none came (timeout, network error).
    async fn post(&self, url: &str, body: &str, signature: &str) -> Result<u16, String>;
}

/// What one [`dispatch`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchReport {
    /// PIDs visited.
    pub pids: u64,
    /// Attempts made.
    pub attempted: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Events that failed and wait for a retry.
    pub retrying: u64,
    /// Events given up on.
    pub failed: u64,
}

impl DispatchReport {
    fn add(&mut self, o: &DispatchReport) {
        self.pids += o.pids;
        self.attempted += o.attempted;
        self.delivered += o.delivered;
        self.retrying += o.retrying;
        self.failed += o.failed;
    }
}

/// How much longer than an attempt's timeout a taken event stays held.
pub const HOLD_MARGIN_SECS: u64 = 10;

/// Most events one dispatch attempts per PID.
pub const DISPATCH_BATCH: usize = 50;

/// Most events one [`drain`] attempts.
pub const DRAIN_BATCH: usize = 10;

/// Delivers the due events of `pids` (every PID with a webhook when `None`).
/// With `sweep`, first counts the sessions that expired unobserved (which
/// puts their `session.expired` events in the outbox): what the periodic
/// dispatch does; the dispatch right after a change skips it. Each event is
/// held for the attempt (another dispatcher skips it), sent concurrently
/// with the batch, and recorded: delivered (2xx), retried after core's
/// back-off, or failed after 24 h. `now` is read per step; `jitter` draws
/// the back-off's jitter.
pub async fn dispatch(
    store: &impl Backend,
    sender: &impl Deliver,
    pids: Option<&[Pid]>,
    sweep: bool,
    settings: &Settings,
    now: impl Fn() -> Timestamp,
    mut jitter: impl FnMut() -> u16,
) -> Result<DispatchReport, StoreError> {
    let pids = match pids {
        Some(p) => p.to_vec(),
        None => store.webhook_pids().await?,
    };
    let mut report = DispatchReport::default();
    for pid in &pids {
        let Some(cfg) = store.webhook(pid).await? else {
            continue;
        };
        if sweep {
            store.counters(pid, now()).await?;
        }
        let r = dispatch_pid(
            store,
            sender,
            pid,
            &cfg,
            settings,
            &now,
            &mut jitter,
            DISPATCH_BATCH,
        )
        .await?;
        report.add(&r);
    }
    Ok(report)
}

/// The bounded dispatch that rides on an ordinary request (one in
/// `webhook_drain_one_in`, after its answer): one PID with a webhook, picked
/// by `pick`, has its unobserved expiries counted and at most
/// [`DRAIN_BATCH`] due events attempted. Where nothing calls the dispatch
/// route (a Spin host with no scheduler), traffic alone keeps retries and
/// expiry events moving; every PID gets its turn at random.
pub async fn drain(
    store: &impl Backend,
    sender: &impl Deliver,
    settings: &Settings,
    now: impl Fn() -> Timestamp,
    mut jitter: impl FnMut() -> u16,
    pick: u32,
) -> Result<DispatchReport, StoreError> {
    let pids = store.webhook_pids().await?;
    let Some(pid) = pids.get(pick as usize % pids.len().max(1)) else {
        return Ok(DispatchReport::default());
    };
    let Some(cfg) = store.webhook(pid).await? else {
        return Ok(DispatchReport::default());
    };
    store.counters(pid, now()).await?;
    dispatch_pid(
        store,
        sender,
        pid,
        &cfg,
        settings,
        &now,
        &mut jitter,
        DRAIN_BATCH,
    )
    .await
}

#[expect(
    clippy::too_many_arguments,
    reason = "the store, the sender, one PID's webhook and the run's clock, jitter and bound"
)]
async fn dispatch_pid(
    store: &impl Backend,
    sender: &impl Deliver,
    pid: &Pid,
    cfg: &WebhookConfig,
    settings: &Settings,
    now: &impl Fn() -> Timestamp,
    jitter: &mut impl FnMut() -> u16,
    batch: usize,
) -> Result<DispatchReport, StoreError> {
    let mut report = DispatchReport {
        pids: 1,
        ..DispatchReport::default()
    };
    let started = now();
    // Held for the batch's attempts (concurrent, each bounded by the
    // timeout) and a margin: past it, another dispatcher may take them (a
    // dispatcher that died, or lost the store before recording, leaves
    // them due again then: at least once).
    let hold = started.plus_secs(settings.webhook_timeout_secs + HOLD_MARGIN_SECS);
    let due = store.take_due(pid, started, hold, batch).await?;
    if due.is_empty() {
        return Ok(report);
    }
    // Build (or reuse) each body and sign it, then send the batch together.
    let mut prepared = Vec::with_capacity(due.len());
    for (key, state) in due {
        let mut state = state.unwrap_or(OutboxState {
            attempts: 0,
            first_attempt_at: None,
            body: None,
        });
        if state.body.is_none() {
            let session = store.load_session(Some(pid), &key.sid).await?;
            state.body = session.and_then(|l| webhook::event_json(&key, &l.session));
        }
        prepared.push((key, state));
    }
    let t = now();
    let secrets = cfg.signing_secrets(t);
    let sends = prepared.iter().map(|(_, state)| async {
        match &state.body {
            Some(body) => {
                let sig =
                    webhook::signature_header(&secrets, t.as_millis() / 1000, body.as_bytes());
                sender.post(&cfg.url, body, &sig).await
            }
            None => Err(String::from(
                "the session's record is gone (past its retention)",
            )),
        }
    });
    let results = futures::future::join_all(sends).await;
    let done = now();
    for ((key, mut state), result) in prepared.into_iter().zip(results) {
        state.attempts += 1;
        let first = *state.first_attempt_at.get_or_insert(t);
        let (status_code, error) = match result {
            Ok(code) if webhook::delivered(code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("the receiver answered {code}"))),
            Err(e) => (None, Some(e)),
        };
        let (outcome, next) = if error.is_none() {
            (Outcome::Delivered, None)
        } else if state.body.is_none() {
            (Outcome::Failed, None)
        } else {
            match webhook::retry_delay_ms(
                state.attempts,
                settings.webhook_retry_base_secs * 1000,
                jitter(),
                first,
                done,
            ) {
                Some(d) => (Outcome::Retrying, Some(done.plus_millis(d))),
                None => (Outcome::Failed, None),
            }
        };
        match outcome {
            Outcome::Delivered => report.delivered += 1,
            Outcome::Retrying => report.retrying += 1,
            Outcome::Failed => report.failed += 1,
        }
        report.attempted += 1;
        let attempt = Attempt {
            event_id: key.event_id(),
            kind: key.kind,
            sid: key.sid.clone(),
            attempt: state.attempts,
            at: t,
            status_code,
            error,
            outcome,
            next_attempt_at: next,
        };
        store.record_attempt(pid, &key, &state, &attempt).await?;
    }
    Ok(report)
}

pub mod transfer;

#[cfg(test)]
mod tests;
