//! The Redis store, through Spin's outbound Redis (`spin:redis@3.0.0`).
//!
//! Parts: this file (connections, commands, reply parsing), [`keys`] (every
//! key name), and one Lua file per atomic step (`*.lua`, sent by `EVALSHA`).
//!
//! ## Key layout
//!
//! Every key is built in [`keys`], which documents the layout.
//!
//! Channel `dock:{P}:events` receives every session change (the bare view
//! JSON), for subscribers outside Spin (components cannot SUBSCRIBE).
//!
//! ## Round trips
//!
//! Scripts are sent by `EVALSHA` (the full text only when Redis answers
//! `NOSCRIPT`). A create is the key lookup, then the `CREATE` script (quota
//! count, reuse slot and session in one step) sent together with the
//! `dock:sid:` index write; a woken waiter takes the new state from the
//! stream entry that woke it, without reading it again.
//!
//! ## Counters
//!
//! The operator's counters (`GET /api/v1/admin/stats`) change inside the
//! scripts that make the change they count, so they cost no round trip and
//! add up across instances: `CREATE` counts `created`, and `reused` when the
//! slot holds a session still in `dock:{P}:p` (pending and unexpired: what
//! core reuses), and `quota_rejected` when the create it charges is beyond
//! the key's limit; `COMMIT` counts the new status. A session is counted `expired` exactly once, when a
//! `CREATE` of its PID or a stats read finds it in `dock:{P}:p` past its
//! `expiresAt` and removes it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;

use dock_core::listing::ListCursor;
use dock_core::oauth::FlowRecord;
use dock_core::webhook::{Attempt, EventKey, OutboxState, WebhookConfig};
use dock_core::wire::{AccountLink, KeyRecord, PidRecord};
use dock_core::{KeyId, Pid, Session, SessionId, Settings, Timestamp};
use sha1::{Digest as _, Sha1};

mod keys;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

use super::{
    Backend, Charge, Claim, Claimed, Counters, Cursor, LinkSide, LinkWrite, Loaded, StoreError,
    Version, parse_record, parse_session, record_json, retention_ms, session_json,
};

/// Counts a create against its key's quota window when charged (nothing
/// more when beyond the limit), then creates the live session for a reuse
/// slot if the slot holds what the caller expects; else returns what it
/// holds. Every reply ends with the quota count (-1: not charged).
static CREATE: Script = Script::new(concat!(
    include_str!("sweep.lua"),
    include_str!("create.lua")
));

/// Replaces a session record if unchanged (and the link, if given, too).
static COMMIT: Script = Script::new(include_str!("commit.lua"));

/// Reads a session and its change-feed position in one step.
static READ: Script = Script::new(include_str!("read.lua"));

/// Reads a session and what the link dataset holds for a Discord id ('' = none).
static READ_FOR_COMPLETION: Script = Script::new(include_str!("read_for_completion.lua"));

/// Wakes a revoked key's waiters through their sessions' change feeds,
/// then deletes the key's leases.
static REVOKE_WAITERS: Script = Script::new(include_str!("revoke_waiters.lua"));

/// One PID's counters: first counts the pending sessions that expired by
/// `now` (as `CREATE` does), then reads the hash and the live waiter leases
/// of every key of the PID.
static STATS: Script = Script::new(concat!(
    include_str!("sweep.lua"),
    include_str!("stats.lua")
));

/// A page of a session listing with the records.
static LIST: Script = Script::new(include_str!("list.lua"));

/// Takes the webhook events due for delivery, holding them for the taker.
static TAKE_DUE: Script = Script::new(include_str!("take_due.lua"));

/// Records a delivery attempt and its outcome.
static RECORD_ATTEMPT: Script = Script::new(include_str!("record_attempt.lua"));

/// Registers a waiter if the key has fewer than the maximum live leases.
static ACQUIRE: Script = Script::new(include_str!("acquire.lua"));

/// One session's live flow: a new one replaces the last, starts are counted.
static PUT_FLOW: Script = Script::new(include_str!("put_flow.lua"));

/// Takes the session's live flow if `state` names it (once).
static TAKE_FLOW: Script = Script::new(include_str!("take_flow.lua"));

/// Erases the links of one Discord user or one Roblox account, counted.
static ERASE_LINKS: Script = Script::new(include_str!("erase_links.lua"));

/// The key layout version this build writes and reads ([`keys::SCHEMA`]).
pub const SCHEMA_VERSION: u32 = 1;

/// Sets one link in both lookup directions (an import).
static PUT_LINK: Script = Script::new(include_str!("put_link.lua"));

/// Raises a key's quota counter of one window (an import).
static RAISE_QUOTA: Script = Script::new(include_str!("raise_quota.lua"));

/// Changes a key's mark when its record changes ('bump'), before it is
/// deleted ('revoke') and when it is issued ('issue').
static MARK_KEY: Script = Script::new(include_str!("mark_key.lua"));

/// How long a revoked key's mark stays: far longer than any instance keeps
/// a cached key record (`key_cache_seconds` ≤ 3600), so no cached copy of a
/// revoked key outlives its mark.
const REVOKED_MARK_MS: i64 = 86_400_000;

/// Adds an instance's request metrics to the service-wide sums.
static ADD_METRICS: Script = Script::new(include_str!("add_metrics.lua"));

/// Counts one request in a rate-limit window.
static HIT: Script = Script::new(include_str!("hit.lua"));

/// A Lua script, sent by its SHA-1 once Redis has it.
struct Script {
    text: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    const fn new(text: &'static str) -> Self {
        Script {
            text,
            sha: OnceLock::new(),
        }
    }

    /// The hex SHA-1 Redis knows the script by.
    fn sha(&self) -> &str {
        self.sha.get_or_init(|| {
            Sha1::digest(self.text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
    }
}

/// Redis's answer to an `EVALSHA` of a script it does not hold.
/// Whether a failed command means the connection itself is gone (so sending
/// it again on a new one is safe: Redis never ran it, or ran nothing of it),
/// as opposed to Redis answering with an error (`OOM`, `WRONGTYPE`, a script
/// error), which must not be repeated.
fn connection_lost(e: &spin_sdk::redis::Error) -> bool {
    let text = format!("{e:?} {e}").to_ascii_lowercase();
    [
        "broken pipe",
        "connection reset",
        "connection closed",
        "connection refused",
        "connection aborted",
        "not connected",
        "unexpected eof",
        "end of file",
        "io error",
        "os error",
        "timed out",
        "terminated",
        "dropped",
    ]
    .iter()
    .any(|m| text.contains(m))
}

fn is_noscript(e: &spin_sdk::redis::Error) -> bool {
    let text = format!("{e:?} {e}").to_ascii_lowercase();
    text.contains("noscript") || text.contains("no script")
}

/// How long a session's change feed outlives a change. Every change is
/// terminal (completed, cancelled), and a woken waiter takes the new state
/// from the entry that woke it at once; later readers see the terminal
/// record and never wait. So the feed only has to outlive the wake-ups in
/// flight, not the session's retention.
const FEED_AFTER_CHANGE_MS: i64 = 60_000;

fn p(v: impl AsRef<[u8]>) -> RedisParameter {
    RedisParameter::Binary(v.as_ref().to_vec())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn text(r: &RedisResult) -> Option<String> {
    match r {
        RedisResult::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RedisResult::Status(s) => Some(s.clone()),
        RedisResult::Int64(n) => Some(n.to_string()),
        RedisResult::Nil => None,
    }
}

/// The session and cursor an `XREAD COUNT 1` reply carries: flattened, one
/// entry is `[stream key, entry id, field, value, …]`; nil at the timeout.
/// `None` (read again) for a timeout or an entry without a `session` field.
fn changed(pid: &Pid, sid: &SessionId, reply: &[RedisResult]) -> Option<(Session, Cursor)> {
    let [_, RedisResult::Binary(id), fields @ ..] = reply else {
        return None;
    };
    let json = fields.chunks(2).find_map(|pair| match pair {
        [RedisResult::Binary(f), RedisResult::Binary(v)] if f.as_slice() == b"session" => {
            std::str::from_utf8(v).ok()
        }
        _ => None,
    })?;
    let loaded = checked(pid, sid, json).ok()??;
    let id = String::from_utf8(id.clone()).ok()?;
    Some((loaded.session, Cursor::Stream(id)))
}

/// A stored session record read under `pid` ('' = none), if it is that
/// session of that PID (defence in depth: keys are PID-scoped, and so must
/// the records be).
fn checked(pid: &Pid, sid: &SessionId, json: &str) -> Result<Option<Loaded>, StoreError> {
    if json.is_empty() {
        return Ok(None);
    }
    let session = parse_session(json)?;
    if &session.pid != pid || &session.sid != sid {
        return Ok(None);
    }
    Ok(Some(Loaded {
        session,
        version: Version::Json(json.to_owned()),
    }))
}

/// A connection to Redis as the store uses it: Spin's `spin:redis`
/// connection in the component; a native client in the store's tests.
#[allow(async_fn_in_trait)]
pub trait Link: Sized + 'static {
    /// Opens a connection to `url`.
    async fn open(url: &str) -> Result<Self, spin_sdk::redis::Error>;
    /// Runs one command; the reply flattened as Spin flattens it.
    async fn execute(
        &self,
        cmd: &str,
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, spin_sdk::redis::Error>;
}

impl Link for Connection {
    async fn open(url: &str) -> Result<Self, spin_sdk::redis::Error> {
        Connection::open(url).await
    }

    async fn execute(
        &self,
        cmd: &str,
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, spin_sdk::redis::Error> {
        Connection::execute(self, cmd, args).await
    }
}

thread_local! {
    /// This instance's connection for non-blocking commands, shared by its
    /// concurrent requests (commands on one connection may be in flight
    /// together, as `futures::join!` of two `execute`s is): one `open` per
    /// instance instead of one per request. Forgotten after an error, so the
    /// next request opens a new one. (`dyn Any`: one slot whatever the [`Link`].)
    static SHARED: RefCell<Option<(String, Rc<dyn Any>)>> = const { RefCell::new(None) };
}

/// A Redis-backed store for one request.
pub struct RedisStore<C: Link = Connection> {
    url: String,
    conn: RefCell<Rc<C>>,
    /// True while `conn` is a connection an earlier request opened and this
    /// one has not used yet: it may have died in between (Redis restarted,
    /// an idle socket was cut), which only its first command can tell.
    inherited: Cell<bool>,
    /// A second connection for blocking `XREAD`s, opened on first wait, so a
    /// blocked read never delays this request's other commands.
    blocking: RefCell<Option<C>>,
}

impl<C: Link> RedisStore<C> {
    /// Takes this instance's shared connection, opening it on first use
    /// (Spin opens a new socket per `open`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shared = SHARED.with_borrow(|s| {
            s.as_ref()
                .filter(|(u, _)| u == url)
                .and_then(|(_, c)| c.clone().downcast::<C>().ok())
        });
        let inherited = shared.is_some();
        let conn = match shared {
            Some(c) => c,
            None => Self::open_shared(url).await.map_err(unavailable)?,
        };
        Ok(RedisStore {
            url: url.to_owned(),
            conn: RefCell::new(conn),
            inherited: Cell::new(inherited),
            blocking: RefCell::new(None),
        })
    }

    /// Opens a connection and makes it this instance's shared one.
    async fn open_shared(url: &str) -> Result<Rc<C>, spin_sdk::redis::Error> {
        let c = Rc::new(C::open(url).await?);
        SHARED.set(Some((url.to_owned(), c.clone() as Rc<dyn Any>)));
        Ok(c)
    }

    /// Forgets `conn` as the instance's shared connection (if it still is):
    /// the next request opens a new one.
    fn forget(conn: &Rc<C>) {
        SHARED.with_borrow_mut(|s| {
            if s.as_ref()
                .is_some_and(|(_, c)| std::ptr::addr_eq(Rc::as_ptr(c), Rc::as_ptr(conn)))
            {
                *s = None;
            }
        });
    }

    /// Runs one command. When it fails on an inherited connection because
    /// that connection is gone, it is replaced by a fresh one and the command
    /// sent once more:
    /// a connection that died while the instance sat idle (a Redis restart)
    /// costs the request that finds it one round trip, not a 503. A failure
    /// on a connection this request already used is reported as it is.
    async fn run(
        &self,
        cmd: &str,
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, spin_sdk::redis::Error> {
        let conn = self.conn.borrow().clone();
        if !self.inherited.replace(false) {
            return conn.execute(cmd, args).await;
        }
        match conn.execute(cmd, args.clone()).await {
            Err(e) if connection_lost(&e) => {
                Self::forget(&conn);
                let Ok(fresh) = Self::open_shared(&self.url).await else {
                    return Err(e);
                };
                *self.conn.borrow_mut() = fresh.clone();
                fresh.execute(cmd, args).await
            }
            r => r,
        }
    }

    /// A command failed: the next request opens a new connection.
    fn failed(&self, e: spin_sdk::redis::Error) -> StoreError {
        Self::forget(&self.conn.borrow());
        unavailable(e)
    }

    async fn exec(
        &self,
        cmd: &str,
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, StoreError> {
        self.run(cmd, args).await.map_err(|e| self.failed(e))
    }

    /// Runs a script by `EVALSHA`, and by `EVAL` (which also loads it) when
    /// Redis does not hold it yet.
    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, StoreError> {
        let mut all = Vec::with_capacity(2 + keys.len() + args.len());
        all.push(p(script.sha()));
        all.push(RedisParameter::Int64(keys.len() as i64));
        all.extend(keys.iter().map(p));
        all.extend(args);
        match self.run("EVALSHA", all.clone()).await {
            Err(e) if is_noscript(&e) => {
                all[0] = p(script.text);
                self.exec("EVAL", all).await
            }
            r => r.map_err(|e| self.failed(e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let r = self.exec("GET", vec![p(key)]).await?;
        Ok(r.first().and_then(text))
    }

    async fn set_sid_index(&self, pid: &Pid, sid: &SessionId, px: i64) -> Result<(), StoreError> {
        self.exec(
            "SET",
            vec![
                p(keys::sid_index(sid)),
                p(pid.as_str()),
                p("PX"),
                RedisParameter::Int64(px),
            ],
        )
        .await
        .map(drop)
    }

    /// Changes a key's mark (`bump`, `revoke` or `issue`): see `mark_key.lua`.
    async fn mark_key(&self, key: &KeyRecord, how: &str) -> Result<(), StoreError> {
        self.eval(
            &MARK_KEY,
            &[keys::key_mark(&key.pid, &key.key_id)],
            vec![p(how), RedisParameter::Int64(REVOKED_MARK_MS)],
        )
        .await
        .map(drop)
    }

    /// After `rec` replaced the record `before` (JSON) under a key hash:
    /// when `before` belonged to another key or PID, bumps that key's mark,
    /// which is what copies of `before` cached under the hash check.
    async fn bump_replaced(&self, before: Option<&str>, rec: &KeyRecord) -> Result<(), StoreError> {
        let Some(old) = before.and_then(|j| serde_json::from_str::<KeyRecord>(j).ok()) else {
            return Ok(());
        };
        if old.key_id == rec.key_id && old.pid == rec.pid {
            return Ok(());
        }
        self.mark_key(&old, "bump").await
    }

    /// `pid`, or (the admin API) the PID the sid index names.
    async fn pid_of(&self, pid: Option<&Pid>, sid: &SessionId) -> Result<Option<Pid>, StoreError> {
        Ok(match pid {
            Some(p) => Some(p.clone()),
            None => self
                .get(&keys::sid_index(sid))
                .await?
                .and_then(|s| Pid::parse(&s).ok()),
        })
    }
}

impl<C: Link> Backend for RedisStore<C> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.exec("PING", vec![]).await.map(drop)
    }

    async fn lookup_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        parse_record("key record", self.get(&keys::key(hash)).await?)
    }

    async fn load_pid(&self, pid: &Pid) -> Result<Option<PidRecord>, StoreError> {
        parse_record("pid record", self.get(&keys::meta(pid)).await?)
    }

    async fn create_pid(&self, rec: &PidRecord) -> Result<bool, StoreError> {
        let (pid, json) = (&rec.pid, record_json(rec));
        // The index first (idempotent): a half-created PID is listed with zero counters.
        self.exec("SADD", vec![p(keys::PIDS), p(pid.as_str())])
            .await?;
        let r = self
            .exec("SET", vec![p(keys::meta(pid)), p(json), p("NX")])
            .await?;
        Ok(!matches!(r.first(), None | Some(RedisResult::Nil)))
    }

    async fn issue_key(&self, hash: &str, rec: &KeyRecord) -> Result<(), StoreError> {
        let (pid, key_id, json) = (&rec.pid, &rec.key_id, record_json(rec));
        // A mark no cached copy holds, even when this key id was revoked
        // (an import re-issuing it) and its mark says so.
        self.mark_key(rec, "issue").await?;
        // The key id index first: a half-issued key is revocable and never usable.
        self.exec("SET", vec![p(keys::key_id(key_id)), p(hash)])
            .await?;
        self.exec("SADD", vec![p(keys::key_ids(pid)), p(key_id.as_str())])
            .await?;
        let before = self.get(&keys::key(hash)).await?;
        self.exec("SET", vec![p(keys::key(hash)), p(json)]).await?;
        // The same secret held another key's record (an import): copies of
        // that one, cached under this hash, check its mark.
        self.bump_replaced(before.as_deref(), rec).await
    }

    async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, StoreError> {
        let idx = keys::key_id(key_id);
        let Some(hash) = self.get(&idx).await? else {
            return Ok(false);
        };
        // The usable record first, so a failure in between leaves the key
        // revoked; before it, the key's mark, so that no instance's cached
        // copy of the record creates again (a retry after a failure in
        // between finds the record and marks again).
        let record = self.get(&keys::key(&hash)).await?;
        let key = record
            .as_deref()
            .and_then(|j| serde_json::from_str::<KeyRecord>(j).ok());
        if let Some(key) = &key {
            self.mark_key(key, "revoke").await?;
        }
        self.exec("DEL", vec![p(keys::key(&hash))]).await?;
        self.exec("DEL", vec![p(idx)]).await?;
        // Its waiters: woken through their sessions' change feeds, each
        // finds its lease gone and ends (a stream's reconnect is then a 401).
        if let Some(key) = key {
            self.eval(
                &REVOKE_WAITERS,
                &[keys::waiters(&key.pid, &key.key_id)],
                vec![
                    p(keys::events_prefix(&key.pid)),
                    p(key.key_id.as_str()),
                    RedisParameter::Int64(FEED_AFTER_CHANGE_MS),
                ],
            )
            .await?;
        }
        Ok(true)
    }

    async fn claim_reuse(
        &self,
        digest: &str,
        expected: Option<&SessionId>,
        candidate: &Session,
        charge: Option<Charge<'_>>,
        settings: &Settings,
        now: Timestamp,
    ) -> Result<Claimed, StoreError> {
        let pid = &candidate.pid;
        let cached_mark = charge.and_then(|c| c.cached_mark);
        let charge = charge.map(|c| c.key);
        let px = retention_ms(candidate, settings, now) as i64;
        let reuse_px = now.millis_until(candidate.expires_at).max(1) as i64;
        let view = dock_core::wire::view_json(&candidate.view_at(now));
        let (quota_key, mark_key, window_end, limit) = match charge {
            Some(key) => (
                keys::quota(pid, &key.key_id, key.quota.window_index(now)),
                keys::key_mark(pid, &key.key_id),
                key.quota.window_end(now).as_millis() as i64,
                i64::try_from(key.quota.limit).unwrap_or(i64::MAX),
            ),
            None => (
                keys::quota_uncharged(pid),
                keys::key_mark_uncharged(pid),
                0,
                0,
            ),
        };
        let keys = [
            keys::reuse(pid, digest),
            keys::session(pid, &candidate.sid),
            keys::events(pid, &candidate.sid),
            keys::stats(pid),
            keys::pending(pid),
            quota_key,
            keys::webhook(pid),
            keys::outbox(pid),
            keys::listing(pid),
            keys::client_listing(pid, &candidate.client_id),
            mark_key,
        ];
        let create = self.eval(
            &CREATE,
            &keys,
            vec![
                p(expected.map(SessionId::as_str).unwrap_or("")),
                p(candidate.sid.as_str()),
                p(session_json(candidate)),
                RedisParameter::Int64(px),
                RedisParameter::Int64(reuse_px),
                p(keys::channel(pid)),
                p(view),
                p(keys::session_prefix(pid)),
                p(pid.as_str()),
                RedisParameter::Int64(now.as_millis() as i64),
                RedisParameter::Int64(candidate.expires_at.as_millis() as i64),
                p(if charge.is_some() { "1" } else { "0" }),
                RedisParameter::Int64(window_end),
                RedisParameter::Int64(limit),
                p(if cached_mark.is_some() { "1" } else { "0" }),
                p(cached_mark.unwrap_or("")),
            ],
        );
        // The sid → pid index lets the admin API find a session by sid alone
        // (another Cluster slot, so not in the script). It names no state, so
        // it is sent with the first attempt's script, in the same round trip;
        // a lost race or a quota rejection leaves an index that expires.
        let r = if charge.is_some() {
            let index = self.set_sid_index(pid, &candidate.sid, px);
            let (index, r) = futures::join!(index, create);
            let r = r?;
            if let Err(e) = index {
                // Only a created session needs it: one more try, else the
                // create fails (503) rather than leave a session the
                // admin API cannot find.
                if matches!(r.first().and_then(text).as_deref(), Some("ok")) {
                    crate::log::log!("sid index write failed, retrying: {e}");
                    self.set_sid_index(pid, &candidate.sid, px).await?;
                }
            }
            r
        } else {
            create.await?
        };
        let parts: Vec<Option<String>> = r.iter().map(text).collect();
        let count = |n: &Option<String>| -> Result<Option<u64>, StoreError> {
            match n.as_deref().map(str::parse::<i64>) {
                Some(Ok(n)) if n >= 0 => Ok(Some(n as u64)),
                Some(Ok(_)) => Ok(None),
                _ => Err(StoreError::Corrupt(format!(
                    "create script reply {parts:?}"
                ))),
            }
        };
        match parts.as_slice() {
            [Some(t)] if t == "revoked" || t == "stale" => Ok(Claimed {
                quota_count: None,
                claim: Claim::KeyChanged,
                key_mark: None,
            }),
            [Some(t), n, mark] if t == "quota" => Ok(Claimed {
                quota_count: count(n)?,
                claim: Claim::OverQuota,
                key_mark: mark.clone(),
            }),
            [Some(t), n, mark] if t == "ok" => Ok(Claimed {
                quota_count: count(n)?,
                claim: Claim::Created,
                key_mark: mark.clone(),
            }),
            [Some(t), cur, sess, n, mark] if t == "taken" => {
                let sid = cur
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .and_then(|s| SessionId::parse(s).ok());
                let session = match sess.as_deref().filter(|s| !s.is_empty()) {
                    Some(json) => Some(parse_session(json)?),
                    None => None,
                };
                Ok(Claimed {
                    quota_count: count(n)?,
                    claim: Claim::Taken { sid, session },
                    key_mark: mark.clone(),
                })
            }
            other => Err(StoreError::Corrupt(format!(
                "create script reply {other:?}"
            ))),
        }
    }

    async fn load_session(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
    ) -> Result<Option<Loaded>, StoreError> {
        let Some(pid) = self.pid_of(pid, sid).await? else {
            return Ok(None);
        };
        let Some(json) = self.get(&keys::session(&pid, sid)).await? else {
            return Ok(None);
        };
        checked(&pid, sid, &json)
    }

    async fn load_for_completion(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
        discord_id: &str,
    ) -> Result<Option<(Loaded, Option<String>)>, StoreError> {
        let Some(pid) = self.pid_of(pid, sid).await? else {
            return Ok(None);
        };
        let r = self
            .eval(
                &READ_FOR_COMPLETION,
                &[keys::session(&pid, sid), keys::links(&pid)],
                vec![p(discord_id)],
            )
            .await?;
        let parts: Vec<Option<String>> = r.iter().map(text).collect();
        let [Some(json), Some(link)] = parts.as_slice() else {
            return Err(StoreError::Corrupt(format!(
                "completion read reply {parts:?}"
            )));
        };
        let Some(loaded) = checked(&pid, sid, json)? else {
            return Ok(None);
        };
        Ok(Some((loaded, Some(link.clone()).filter(|l| !l.is_empty()))))
    }

    async fn link_of(&self, pid: &Pid, discord_id: &str) -> Result<Option<String>, StoreError> {
        let r = self
            .exec("HGET", vec![p(keys::links(pid)), p(discord_id)])
            .await?;
        Ok(r.first().and_then(text))
    }

    async fn discord_ids_of(&self, pid: &Pid, roblox_id: &str) -> Result<Vec<String>, StoreError> {
        let r = self
            .exec("SMEMBERS", vec![p(keys::roblox(pid, roblox_id))])
            .await?;
        let mut ids: Vec<String> = r.iter().filter_map(text).collect();
        ids.sort();
        Ok(ids)
    }

    async fn commit(
        &self,
        prev: &Loaded,
        next: &Session,
        link: Option<&LinkWrite>,
        settings: &Settings,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Version::Json(expected) = &prev.version else {
            return Err(StoreError::Corrupt(
                "a SQLite version reached the Redis store".into(),
            ));
        };
        let pid = &next.pid;
        let (discord, roblox, previous) = match link {
            Some(l) => (
                l.discord_id.as_str(),
                l.roblox_id.as_str(),
                l.expected_previous.as_deref().unwrap_or(""),
            ),
            None => ("", "", ""),
        };
        let keys = [
            keys::session(pid, &next.sid),
            keys::events(pid, &next.sid),
            keys::links(pid),
            keys::roblox(pid, if roblox.is_empty() { "-" } else { roblox }),
            keys::roblox(pid, if previous.is_empty() { "-" } else { previous }),
            keys::stats(pid),
            keys::pending(pid),
            keys::webhook(pid),
            keys::outbox(pid),
        ];
        let view = next.view_at(now);
        let r = self
            .eval(
                &COMMIT,
                &keys,
                vec![
                    p(expected),
                    p(session_json(next)),
                    RedisParameter::Int64(retention_ms(next, settings, now) as i64),
                    p(view.status.as_str()),
                    p(keys::channel(pid)),
                    p(dock_core::wire::view_json(&view)),
                    p(discord),
                    p(roblox),
                    p(previous),
                    p(next.sid.as_str()),
                    RedisParameter::Int64(FEED_AFTER_CHANGE_MS),
                    RedisParameter::Int64(now.as_millis() as i64),
                ],
            )
            .await?;
        match r.first().and_then(text).as_deref() {
            Some("ok") => Ok(true),
            Some("conflict") => Ok(false),
            other => Err(StoreError::Corrupt(format!(
                "commit script reply {other:?}"
            ))),
        }
    }

    async fn acquire_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        max: u64,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let r = self
            .eval(
                &ACQUIRE,
                &[keys::waiters(&key.pid, &key.key_id)],
                vec![
                    RedisParameter::Int64(now.as_millis() as i64),
                    RedisParameter::Int64(max as i64),
                    p(waiter),
                    RedisParameter::Int64(lease_until.as_millis() as i64),
                ],
            )
            .await?;
        Ok(matches!(r.first(), Some(RedisResult::Int64(1))))
    }

    async fn renew_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        // One command (a held stream's only one, once a minute): `XX` never
        // brings back a lease its key's revocation deleted; `CH` answers 1
        // when the lease was there. The set's expiry already covers every
        // renewal (`acquire.lua`).
        let set = keys::waiters(&key.pid, &key.key_id);
        let until = RedisParameter::Int64(lease_until.as_millis() as i64);
        let r = self
            .exec("ZADD", vec![p(&set), p("XX"), p("CH"), until, p(waiter)])
            .await?;
        if matches!(r.first(), Some(RedisResult::Int64(1))) {
            return Ok(true);
        }
        // 0 also answers a renewal to the same millisecond: ask.
        let r = self.exec("ZSCORE", vec![p(set), p(waiter)]).await?;
        Ok(r.first().is_some_and(|v| !matches!(v, RedisResult::Nil)))
    }

    async fn release_waiter(&self, key: &KeyRecord, waiter: &str) -> Result<(), StoreError> {
        self.exec(
            "ZREM",
            vec![p(keys::waiters(&key.pid, &key.key_id)), p(waiter)],
        )
        .await
        .map(drop)
    }

    async fn pids(&self) -> Result<Vec<Pid>, StoreError> {
        let r = self.exec("SMEMBERS", vec![p(keys::PIDS)]).await?;
        Ok(r.iter()
            .filter_map(text)
            .filter_map(|s| Pid::parse(&s).ok())
            .collect())
    }

    async fn list_pids(
        &self,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PidRecord>, StoreError> {
        let mut pids = self.pids().await?;
        pids.sort();
        let page: Vec<Pid> = pids
            .into_iter()
            .filter(|p| after.is_none_or(|a| p > a))
            .take(limit)
            .collect();
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let r = self
            .exec(
                "MGET",
                page.iter().map(|p| self::p(keys::meta(p))).collect(),
            )
            .await?;
        r.iter()
            .map(text)
            .filter_map(|json| parse_record("pid record", json).transpose())
            .collect()
    }

    async fn update_pid(&self, rec: &PidRecord) -> Result<bool, StoreError> {
        let r = self
            .exec(
                "SET",
                vec![p(keys::meta(&rec.pid)), p(record_json(rec)), p("XX")],
            )
            .await?;
        Ok(!matches!(r.first(), None | Some(RedisResult::Nil)))
    }

    async fn keys_of(&self, pid: &Pid) -> Result<Vec<KeyRecord>, StoreError> {
        let mut ids: Vec<String> = self
            .exec("SMEMBERS", vec![p(keys::key_ids(pid))])
            .await?
            .iter()
            .filter_map(text)
            .collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(id) = KeyId::parse(&id)
                && let Some(k) = self.key_by_id(&id).await?
                && &k.pid == pid
            {
                out.push(k);
            }
        }
        Ok(out)
    }

    async fn key_by_id(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let Some(hash) = self.get(&keys::key_id(key_id)).await? else {
            return Ok(None);
        };
        parse_record("key record", self.get(&keys::key(&hash)).await?)
    }

    async fn update_key(&self, rec: &KeyRecord) -> Result<bool, StoreError> {
        let Some(hash) = self.get(&keys::key_id(&rec.key_id)).await? else {
            return Ok(false);
        };
        let before = self.get(&keys::key(&hash)).await?;
        let r = self
            .exec(
                "SET",
                vec![p(keys::key(&hash)), p(record_json(rec)), p("XX")],
            )
            .await?;
        let updated = !matches!(r.first(), None | Some(RedisResult::Nil));
        if updated {
            // After the record: an instance that cached the old record
            // between the two steps holds the old mark, which this changes.
            self.mark_key(rec, "bump").await?;
            // An import may also move the record to another PID.
            self.bump_replaced(before.as_deref(), rec).await?;
        }
        Ok(updated)
    }

    async fn erase_links(
        &self,
        pid: &Pid,
        side: LinkSide,
        id: &str,
    ) -> Result<Vec<AccountLink>, StoreError> {
        let r = self
            .eval(
                &ERASE_LINKS,
                &[keys::links(pid), keys::stats(pid)],
                vec![
                    p(match side {
                        LinkSide::Discord => "discord",
                        LinkSide::Roblox => "roblox",
                    }),
                    p(id),
                    p(keys::roblox_prefix(pid)),
                ],
            )
            .await?;
        let parts: Vec<Option<String>> = r.iter().map(text).collect();
        let mut erased = Vec::new();
        for pair in parts.chunks(2) {
            match pair {
                [Some(d), Some(r)] => erased.push(AccountLink {
                    discord_id: d.clone(),
                    roblox_id: r.clone(),
                }),
                other => {
                    return Err(StoreError::Corrupt(format!("erase script reply {other:?}")));
                }
            }
        }
        erased.sort_by(|a, b| a.discord_id.cmp(&b.discord_id));
        Ok(erased)
    }

    async fn counters(&self, pid: &Pid, now: Timestamp) -> Result<Counters, StoreError> {
        let r = self
            .eval(
                &STATS,
                &[
                    keys::stats(pid),
                    keys::pending(pid),
                    keys::key_ids(pid),
                    keys::webhook(pid),
                    keys::outbox(pid),
                ],
                vec![
                    RedisParameter::Int64(now.as_millis() as i64),
                    p(keys::waiters_prefix(pid)),
                ],
            )
            .await?;
        let fields: Vec<Option<String>> = r.iter().map(text).collect();
        let mut counters = Counters::default();
        for pair in fields.chunks(2) {
            if let [Some(name), Some(value)] = pair {
                let n = value
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("counter {name}: {e}")))?;
                counters.set(name, n);
            }
        }
        Ok(counters)
    }

    async fn add_metrics(&self, fields: &[(String, u64)]) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let args = fields
            .iter()
            .flat_map(|(f, n)| {
                [
                    p(f),
                    RedisParameter::Int64(i64::try_from(*n).unwrap_or(i64::MAX)),
                ]
            })
            .collect();
        self.eval(&ADD_METRICS, &[keys::METRICS.to_owned()], args)
            .await
            .map(drop)
    }

    async fn metric_fields(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let r = self.exec("HGETALL", vec![p(keys::METRICS)]).await?;
        let parts: Vec<Option<String>> = r.iter().map(text).collect();
        Ok(parts
            .chunks(2)
            .filter_map(|pair| match pair {
                [Some(f), Some(n)] => Some((f.clone(), n.parse().ok()?)),
                _ => None,
            })
            .collect())
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        // Recorded by the first build that reads it: every layout shipped so
        // far is version 1 (each change added keys, none moved one).
        let v = match self.get(keys::SCHEMA).await? {
            Some(v) => v,
            None => {
                self.exec(
                    "SET",
                    vec![p(keys::SCHEMA), p(SCHEMA_VERSION.to_string()), p("NX")],
                )
                .await?;
                self.get(keys::SCHEMA).await?.unwrap_or_default()
            }
        };
        match v.parse::<u32>() {
            Ok(v) if v <= SCHEMA_VERSION => Ok(v),
            _ => Err(StoreError::NotConfigured(format!(
                "Redis records layout version {v:?} ({}), newer than this build's {SCHEMA_VERSION}; \
                 run the release that wrote it, or restore a backup",
                keys::SCHEMA
            ))),
        }
    }

    async fn key_hash(&self, key_id: &KeyId) -> Result<Option<String>, StoreError> {
        self.get(&keys::key_id(key_id)).await
    }

    async fn links_page(
        &self,
        pid: &Pid,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AccountLink>, Option<String>), StoreError> {
        let r = self
            .exec(
                "HSCAN",
                vec![
                    p(keys::links(pid)),
                    p(cursor.unwrap_or("0")),
                    p("COUNT"),
                    p(limit.to_string()),
                ],
            )
            .await?;
        // Flattened: the next cursor, then field, value pairs.
        let next = r.first().and_then(text).unwrap_or_else(|| "0".into());
        let links = r[1.min(r.len())..]
            .chunks_exact(2)
            .filter_map(|pair| {
                Some(AccountLink {
                    discord_id: text(&pair[0])?,
                    roblox_id: text(&pair[1])?,
                })
            })
            .collect();
        Ok((links, (next != "0").then_some(next)))
    }

    async fn put_link(&self, pid: &Pid, link: &AccountLink) -> Result<(), StoreError> {
        self.eval(
            &PUT_LINK,
            &[keys::links(pid)],
            vec![
                p(&link.discord_id),
                p(&link.roblox_id),
                p(keys::roblox_prefix(pid)),
            ],
        )
        .await
        .map(drop)
    }

    async fn quota_count(&self, key: &KeyRecord, window: u64) -> Result<u64, StoreError> {
        Ok(self
            .get(&keys::quota(&key.pid, &key.key_id, window))
            .await?
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    async fn raise_quota(
        &self,
        key: &KeyRecord,
        window: u64,
        count: u64,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.eval(
            &RAISE_QUOTA,
            &[keys::quota(&key.pid, &key.key_id, window)],
            vec![p(count.to_string()), p(expires_at.as_millis().to_string())],
        )
        .await
        .map(drop)
    }

    async fn store_errors(&self) -> Result<u64, StoreError> {
        let r = self
            .exec("HGET", vec![p(keys::GLOBAL_STATS), p("store_errors")])
            .await?;
        Ok(r.first()
            .and_then(text)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    async fn add_store_errors(&self, n: u64) -> Result<(), StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.exec(
            "HINCRBY",
            vec![
                p(keys::GLOBAL_STATS),
                p("store_errors"),
                RedisParameter::Int64(n),
            ],
        )
        .await
        .map(drop)
    }

    async fn put_flow(
        &self,
        rec: &FlowRecord,
        state_hash: &str,
        _now: Timestamp,
        ttl_ms: u64,
        max_starts: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (sid, json, ttl_ms) = (&rec.sid, record_json(rec), ttl_ms.max(1));
        let r = self
            .eval(
                &PUT_FLOW,
                &[keys::flow(sid)],
                vec![
                    p(state_hash),
                    p(json),
                    RedisParameter::Int64(ttl_ms as i64),
                    RedisParameter::Int64(i64::from(max_starts.is_some())),
                    RedisParameter::Int64(max_starts.unwrap_or(0) as i64),
                ],
            )
            .await?;
        Ok(matches!(r.first(), Some(RedisResult::Int64(1))))
    }

    async fn take_flow(
        &self,
        sid: &SessionId,
        state_hash: &str,
        _now: Timestamp,
    ) -> Result<Option<FlowRecord>, StoreError> {
        let r = self
            .eval(&TAKE_FLOW, &[keys::flow(sid)], vec![p(state_hash)])
            .await?;
        parse_record("flow record", r.first().and_then(text))
    }

    async fn hit(
        &self,
        bucket: &str,
        window_end: Timestamp,
        _now: Timestamp,
    ) -> Result<u64, StoreError> {
        let r = self
            .eval(
                &HIT,
                &[keys::rate(bucket, window_end)],
                vec![RedisParameter::Int64(window_end.as_millis() as i64)],
            )
            .await?;
        match r.first() {
            Some(RedisResult::Int64(n)) => Ok((*n).max(0) as u64),
            other => Err(StoreError::Corrupt(format!("rate counter reply {other:?}"))),
        }
    }

    async fn read_with_cursor(
        &self,
        pid: &Pid,
        sid: &SessionId,
    ) -> Result<Option<(Session, Cursor)>, StoreError> {
        let r = self
            .eval(
                &READ,
                &[keys::session(pid, sid), keys::events(pid, sid)],
                vec![],
            )
            .await?;
        let parts: Vec<Option<String>> = r.iter().map(text).collect();
        match parts.as_slice() {
            [Some(json), Some(id)] => {
                Ok(checked(pid, sid, json)?
                    .map(|loaded| (loaded.session, Cursor::Stream(id.clone()))))
            }
            other => Err(StoreError::Corrupt(format!("read script reply {other:?}"))),
        }
    }

    async fn list_sessions(
        &self,
        pid: &Pid,
        client_id: Option<&str>,
        after: Option<&ListCursor>,
        limit: usize,
    ) -> Result<Vec<(ListCursor, Option<Session>)>, StoreError> {
        let index = match client_id {
            Some(c) => keys::client_listing(pid, c),
            None => keys::listing(pid),
        };
        let r = self
            .eval(
                &LIST,
                &[index],
                vec![
                    p(after.map_or_else(String::new, |c| c.created_at.as_millis().to_string())),
                    p(after.map_or("", |c| c.sid.as_str())),
                    RedisParameter::Int64(limit as i64),
                    p(keys::session_prefix(pid)),
                ],
            )
            .await?;
        let fields: Vec<Option<String>> = r.iter().map(text).collect();
        let mut out = Vec::with_capacity(fields.len() / 3);
        for entry in fields.chunks(3) {
            let [Some(sid), Some(score), json] = entry else {
                continue;
            };
            let (Ok(sid), Ok(ms)) = (SessionId::parse(sid), score.parse::<f64>()) else {
                return Err(StoreError::Corrupt(format!(
                    "listing entry {sid:?} {score:?}"
                )));
            };
            let session = match json.as_deref() {
                None | Some("") => None,
                Some(j) => Some(parse_session(j)?),
            };
            out.push((
                ListCursor {
                    created_at: Timestamp::from_millis(ms as u64),
                    sid,
                },
                session,
            ));
        }
        Ok(out)
    }

    async fn webhook(&self, pid: &Pid) -> Result<Option<WebhookConfig>, StoreError> {
        let r = self
            .exec("HGET", vec![p(keys::webhook(pid)), p("config")])
            .await?;
        parse_record("webhook", r.first().and_then(text))
    }

    async fn put_webhook(&self, pid: &Pid, cfg: &WebhookConfig) -> Result<bool, StoreError> {
        if self.load_pid(pid).await?.is_none() {
            return Ok(false);
        }
        self.exec(
            "HSET",
            vec![
                p(keys::webhook(pid)),
                p("config"),
                p(record_json(cfg)),
                p("events"),
                p(cfg.events_field()),
            ],
        )
        .await?;
        self.exec("SADD", vec![p(keys::WEBHOOK_PIDS), p(pid.as_str())])
            .await?;
        Ok(true)
    }

    async fn delete_webhook(&self, pid: &Pid) -> Result<bool, StoreError> {
        let r = self
            .exec(
                "DEL",
                vec![
                    p(keys::webhook(pid)),
                    p(keys::outbox(pid)),
                    p(keys::outbox_state(pid)),
                ],
            )
            .await?;
        self.exec("SREM", vec![p(keys::WEBHOOK_PIDS), p(pid.as_str())])
            .await?;
        Ok(matches!(r.first(), Some(RedisResult::Int64(n)) if *n > 0))
    }

    async fn webhook_pids(&self) -> Result<Vec<Pid>, StoreError> {
        let r = self.exec("SMEMBERS", vec![p(keys::WEBHOOK_PIDS)]).await?;
        let mut pids: Vec<Pid> = r
            .iter()
            .filter_map(text)
            .filter_map(|s| Pid::parse(&s).ok())
            .collect();
        pids.sort();
        Ok(pids)
    }

    async fn take_due(
        &self,
        pid: &Pid,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(EventKey, Option<OutboxState>)>, StoreError> {
        let r = self
            .eval(
                &TAKE_DUE,
                &[keys::outbox(pid), keys::outbox_state(pid)],
                vec![
                    RedisParameter::Int64(now.as_millis() as i64),
                    RedisParameter::Int64(hold_until.as_millis() as i64),
                    RedisParameter::Int64(limit as i64),
                ],
            )
            .await?;
        let fields: Vec<Option<String>> = r.iter().map(text).collect();
        let mut out = Vec::new();
        for pair in fields.chunks(2) {
            let [Some(member), state] = pair else {
                continue;
            };
            let Some(key) = EventKey::parse_member(member) else {
                return Err(StoreError::Corrupt(format!("outbox member {member:?}")));
            };
            let state = parse_record("outbox state", state.clone().filter(|s| !s.is_empty()))?;
            out.push((key, state));
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        pid: &Pid,
        key: &EventKey,
        state: &OutboxState,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        self.eval(
            &RECORD_ATTEMPT,
            &[
                keys::outbox(pid),
                keys::outbox_state(pid),
                keys::attempts(pid),
                keys::stats(pid),
            ],
            vec![
                p(key.member()),
                p(attempt.outcome.as_str()),
                RedisParameter::Int64(attempt.next_attempt_at.map_or(0, |t| t.as_millis() as i64)),
                p(record_json(state)),
                p(record_json(attempt)),
                RedisParameter::Int64(dock_core::webhook::MAX_ATTEMPT_LOG as i64),
            ],
        )
        .await
        .map(drop)
    }

    async fn attempts(&self, pid: &Pid, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        let r = self
            .exec(
                "LRANGE",
                vec![
                    p(keys::attempts(pid)),
                    p("0"),
                    p((limit.max(1) - 1).to_string()),
                ],
            )
            .await?;
        r.iter()
            .map(|v| parse_record("delivery attempt", text(v)))
            .filter_map(Result::transpose)
            .collect()
    }

    async fn wait_change(
        &self,
        pid: &Pid,
        sid: &SessionId,
        cursor: &Cursor,
        until: Timestamp,
        _settings: &Settings,
    ) -> Result<Option<(Session, Cursor)>, StoreError> {
        let Cursor::Stream(id) = cursor else {
            return Err(StoreError::Corrupt(
                "a SQLite cursor reached the Redis store".into(),
            ));
        };
        let ms = crate::env::now().millis_until(until);
        if ms == 0 {
            return Ok(None);
        }
        let existing = self.blocking.borrow_mut().take();
        let conn = match existing {
            Some(c) => c,
            None => C::open(&self.url).await.map_err(unavailable)?,
        };
        let r = conn
            .execute(
                "XREAD",
                vec![
                    p("COUNT"),
                    RedisParameter::Int64(1),
                    p("BLOCK"),
                    RedisParameter::Int64(ms.max(1) as i64),
                    p("STREAMS"),
                    p(keys::events(pid, sid)),
                    p(id),
                ],
            )
            .await
            .map_err(unavailable);
        *self.blocking.borrow_mut() = Some(conn);
        Ok(changed(pid, sid, &r?))
    }
}
