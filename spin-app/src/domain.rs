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
//! | tenants: list, rename, keys (never secrets), quota changes, link erasure | [`list_pids`], [`rename_pid`], [`keys_of`], [`patch_key`], [`erase_links`] |

use dock_core::id::reuse_digest;
use dock_core::quota::QuotaDecision;
use dock_core::request::{CreateSessionRequest, PageQuery, PatchKeyRequest, parse_platform_id};
use dock_core::wire::{ErasedLinks, KeyInfo, KeyList, KeyRecord, PidPage, PidRecord};
use dock_core::{
    ApiError, Completion, CreateDecision, ErrorCode, KeyId, Pid, Session, SessionId, SessionView,
    Settings, Timestamp,
};

use crate::store::{Backend, Claim, LinkSide, LinkWrite, StoreError};

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
}

/// Creates a session for `key`, or returns the live one for the same
/// (clientId, guildId, expectedDiscordId). `sid` is the new session's id if
/// one is created (from the caller's entropy).
pub async fn create(
    store: &impl Backend,
    key: &KeyRecord,
    body: CreateSessionRequest,
    sid: SessionId,
    settings: &Settings,
    now: Timestamp,
) -> Result<Created, ApiError> {
    if body.pid != key.pid {
        // A key only ever sees its own PID; others do not exist for it.
        return Err(
            ApiError::new(ErrorCode::PidNotFound, "no such PID for this API key").with_field("pid"),
        );
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
    .bound_to(body.expected_discord_id, body.display_label);
    let mut expected: Option<SessionId> = None;
    let mut remaining = None;
    for attempt in 0..MAX_CAS_ATTEMPTS {
        // The first attempt also counts the create against the key's quota.
        let charge = (attempt == 0).then_some(key);
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
        if let Some(count) = claimed.quota_count {
            match key.quota.decide(count, now) {
                QuotaDecision::Allowed { remaining: r } => remaining = Some(r),
                QuotaDecision::Exhausted { retry_after_secs } => {
                    return Err(ApiError::quota_exceeded(retry_after_secs));
                }
            }
        }
        match claimed.claim {
            Claim::OverQuota => {
                return Err(StoreError::Corrupt(format!(
                    "the store refused create {} of quota {} as beyond it",
                    claimed.quota_count.unwrap_or(0),
                    key.quota.limit
                ))
                .into());
            }
            Claim::Created => {
                return Ok(Created {
                    session: candidate,
                    reused: false,
                    remaining,
                });
            }
            Claim::Taken { sid, session } => {
                match dock_core::session::decide_create(session.as_ref(), now) {
                    CreateDecision::Reuse(existing) => {
                        return Ok(Created {
                            session: existing,
                            reused: true,
                            remaining,
                        });
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

/// Renames a PID: its new record.
pub async fn rename_pid(
    store: &impl Backend,
    pid: &Pid,
    name: String,
) -> Result<PidRecord, ApiError> {
    let mut rec = self::pid(store, pid).await?;
    rec.name = name;
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

#[cfg(test)]
mod tests;
