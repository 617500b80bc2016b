//! Persistence and wake-ups, behind one interface with two backends:
//!
//! - [`redis`]: production, any number of instances sharing one Redis. Each
//!   state change is one Lua script (atomic), and waiters block on a
//!   per-session Redis Stream with `XREAD BLOCK` from the position read
//!   together with the state, so no wake-up is lost between read and wait.
//! - [`sqlite`]: the zero-setup default (Spin's `default` database). Each
//!   transition is one conditional SQL statement; waiters re-check at
//!   `poll_interval_ms`. One instance only.
//!
//! The decisions (reuse or create, may this complete, what the link change
//! is) are dock-core's; stores only compare-and-set what core decided, and
//! the flows in `sessions`/`admin` retry when a compare fails.
//!
//! The operator's counters ([`Counters`]) live in the store, per PID, and
//! change in the same script (Redis) or statement (SQLite, by triggers) as
//! what they count, so they add up across instances at no extra round trip.
//! Store errors cannot be counted in a store that fails: each instance counts
//! them in memory ([`note_error`]) and adds them to the store's service-wide
//! counter the next time it opens the store.

#[cfg(test)]
pub mod memory;
#[cfg(all(test, not(target_arch = "wasm32")))]
pub mod native;
pub mod redis;
pub mod sqlite;

use std::sync::atomic::{AtomicU64, Ordering};

use dock_core::listing::ListCursor;
use dock_core::oauth::FlowRecord;
use dock_core::webhook::{Attempt, EventKey, OutboxState, WebhookConfig};
use dock_core::wire::{AccountLink, KeyRecord, PidRecord};
use dock_core::{ApiError, ErrorCode, KeyId, Pid, Session, SessionId, Settings, Timestamp};

/// How long a client should wait before retrying when the store is down.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the command: 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store holds data we cannot read: 500.
    #[error("store data is unreadable: {0}")]
    Corrupt(String),
    /// No store can be used at all: `redis_url` is empty and the host grants
    /// no `default` SQLite database (e.g. a Redis-only manifest on a platform
    /// without SQLite). A deployment mistake: 500 `config_error`.
    #[error("no store: {0}")]
    NotConfigured(String),
}

/// Store errors this instance saw and has not yet added to the store.
static UNREPORTED_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts a store error that failed a request or ended a stream (logged by the caller).
pub fn note_error() {
    UNREPORTED_ERRORS.fetch_add(1, Ordering::Relaxed);
}

impl StoreError {
    /// The answer to a client: 503 with `Retry-After` or 500; not counted.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            StoreError::Unavailable(_) => ApiError::store_unavailable(UNAVAILABLE_RETRY_AFTER_SECS),
            StoreError::Corrupt(m) => ApiError::new(
                ErrorCode::InternalError,
                format!("unreadable stored data: {m}"),
            ),
            StoreError::NotConfigured(m) => {
                ApiError::new(ErrorCode::ConfigError, format!("no store: {m}"))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    /// Logs and counts the error ([`note_error`]) and answers the client.
    fn from(e: StoreError) -> Self {
        crate::log::log!("{e}");
        note_error();
        e.to_api_error()
    }
}

/// The counters of one PID (or their sum over PIDs), as stores keep them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Sessions created (a create that did not reuse).
    pub created: u64,
    /// Creates answered with the live session (`reusedExisting`).
    pub reused: u64,
    /// Sessions completed.
    pub completed: u64,
    /// Sessions cancelled.
    pub cancelled: u64,
    /// Sessions that reached `expiresAt` while pending (counted once).
    pub expired: u64,
    /// Creates refused with 429 `quota_exceeded`.
    pub quota_rejected: u64,
    /// Links erased by the operator.
    pub links_erased: u64,
    /// Waiter leases (open streams and long-polls) live now.
    pub waiters: u64,
    /// Webhook delivery attempts made.
    pub webhook_attempts: u64,
    /// Webhook events delivered.
    pub webhooks_delivered: u64,
    /// Webhook events given up on.
    pub webhooks_failed: u64,
}

impl Counters {
    /// Sets a counter by its stored name; unknown names are ignored.
    pub(crate) fn set(&mut self, name: &str, n: u64) {
        match name {
            "created" => self.created = n,
            "reused" => self.reused = n,
            "completed" => self.completed = n,
            "cancelled" => self.cancelled = n,
            "expired" => self.expired = n,
            "quota_rejected" => self.quota_rejected = n,
            "links_erased" => self.links_erased = n,
            "waiters" => self.waiters = n,
            "webhook_attempts" => self.webhook_attempts = n,
            "webhooks_delivered" => self.webhooks_delivered = n,
            "webhooks_failed" => self.webhooks_failed = n,
            _ => {}
        }
    }

    /// Adds another PID's counters.
    pub(crate) fn add(&mut self, o: &Counters) {
        self.created += o.created;
        self.reused += o.reused;
        self.completed += o.completed;
        self.cancelled += o.cancelled;
        self.expired += o.expired;
        self.quota_rejected += o.quota_rejected;
        self.links_erased += o.links_erased;
        self.waiters += o.waiters;
        self.webhook_attempts += o.webhook_attempts;
        self.webhooks_delivered += o.webhooks_delivered;
        self.webhooks_failed += o.webhooks_failed;
    }
}

/// What `GET /api/v1/admin/stats` reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// The summed counters.
    pub counters: Counters,
    /// How many PIDs they sum over.
    pub pids: u64,
    /// Service-wide store errors reported so far.
    pub store_errors: u64,
}

/// What a compare-and-set compares against: opaque to the flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// Redis: the exact stored JSON.
    Json(String),
    /// SQLite: the row's revision.
    Revision(i64),
}

/// A session with the version it was read at.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The stored record (expiry not applied).
    pub session: Session,
    /// For compare-and-set.
    pub version: Version,
}

/// A position in a session's change feed, read together with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Redis: the last stream entry id.
    Stream(String),
    /// SQLite: the revision.
    Revision(i64),
}

/// The key a create is counted against, and how its record was read.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    /// The key's record.
    pub key: &'a KeyRecord,
    /// `Some(mark)`: the record is an instance's cached copy, taken when the
    /// key's mark was `mark` ([`crate::key_cache`]); `None`: read in this request.
    pub cached_mark: Option<&'a str>,
}

/// What a claim of a reuse slot returns.
#[derive(Debug)]
pub struct Claimed {
    /// The quota window's count after this create, when it was charged.
    pub quota_count: Option<u64>,
    /// The outcome.
    pub claim: Claim,
    /// The charged key's mark as the step saw it (Redis; what a cached copy
    /// of its record is checked against), unless the key changed.
    pub key_mark: Option<String>,
}

/// The outcome of claiming the reuse slot of (pid, clientId, guildId).
#[allow(
    clippy::large_enum_variant,
    reason = "a transient return value, matched at once; boxing would allocate on every create"
)]
#[derive(Debug)]
pub enum Claim {
    /// The charged create was beyond the key's quota: nothing was claimed.
    OverQuota,
    /// The charged key was revoked, or (`cached_mark`) its record changed
    /// since it was cached: nothing was claimed or counted.
    KeyChanged,
    /// Our candidate is now the live session.
    Created,
    /// The slot holds something else: this sid and (if it still exists) its session.
    Taken {
        /// The sid in the slot.
        sid: Option<SessionId>,
        /// Its session, if still stored.
        session: Option<Session>,
    },
}

/// Which side of a link an erasure names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSide {
    /// A Discord user: its one link.
    Discord,
    /// A Roblox account: every Discord user linked to it.
    Roblox,
}

/// A link-dataset write that must commit atomically with a completion.
#[derive(Debug, Clone)]
pub struct LinkWrite {
    /// The verified Discord id.
    pub discord_id: String,
    /// The verified Roblox id.
    pub roblox_id: String,
    /// What the dataset held for `discord_id` when core computed the outcome.
    pub expected_previous: Option<String>,
}

/// Declares [`Backend`] from one list of signatures, and implements it for
/// [`Store`] (the configured backend) by delegation: each operation's
/// signature is written here once, and once by each implementation.
macro_rules! backend {
    ($(
        $(#[$doc:meta])*
        async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        /// What the domain flows need of a store: every read and
        /// compare-and-set they make. Implemented by Redis, SQLite and
        /// (tests) memory.
        ///
        /// `async fn` in a trait without `Send` bounds on purpose: the
        /// component is single-threaded (a Wasm instance), and so are the
        /// native tests' executors.
        #[allow(async_fn_in_trait)]
        pub trait Backend {
            $( $(#[$doc])* async fn $name(&self $(, $arg: $ty)*) -> $ret; )*
        }

        /// The configured store.
        pub enum Store {
            /// Redis (`redis_url` set).
            Redis(redis::RedisStore),
            /// Spin's SQLite `default` database.
            Sqlite(sqlite::SqliteStore),
        }

        impl Backend for Store {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match self {
                        Store::Redis(s) => s.$name($($arg),*).await,
                        Store::Sqlite(s) => s.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

backend! {
    /// A cheap round trip.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The key whose secret hashes to `hash`.
    async fn lookup_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// A PID's record.
    async fn load_pid(&self, pid: &Pid) -> Result<Option<PidRecord>, StoreError>;

    /// Creates a PID; false if it exists.
    async fn create_pid(&self, rec: &PidRecord) -> Result<bool, StoreError>;

    /// Stores a key record under the hash of its secret.
    async fn issue_key(&self, hash: &str, rec: &KeyRecord) -> Result<(), StoreError>;

    /// Deletes a key and its waiter leases; false if unknown.
    async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, StoreError>;

    /// Makes `candidate` the live session for its reuse slot if the slot holds
    /// `expected` (None = empty). With `charge`, first counts one create
    /// against that key's current quota window, in the same step, and claims
    /// nothing when the count is beyond the limit (a quota rejection).
    /// A charge with a `cached_mark` (Redis) claims nothing
    /// ([`Claim::KeyChanged`]) unless the key's mark is still that one; a
    /// revoked key claims nothing either way.
    async fn claim_reuse(
        &self,
        digest: &str,
        expected: Option<&SessionId>,
        candidate: &Session,
        charge: Option<Charge<'_>>,
        settings: &Settings,
        now: Timestamp,
    ) -> Result<Claimed, StoreError>;

    /// A session by id with what the PID's link dataset holds for
    /// `discord_id`, read together (what a completion decides from).
    async fn load_for_completion(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
        discord_id: &str,
    ) -> Result<Option<(Loaded, Option<String>)>, StoreError>;

    /// A session by id, scoped to `pid` (None: any PID; the admin API).
    async fn load_session(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
    ) -> Result<Option<Loaded>, StoreError>;

    /// The Roblox id the PID's dataset links to `discord_id`.
    async fn link_of(&self, pid: &Pid, discord_id: &str) -> Result<Option<String>, StoreError>;

    /// Every Discord id the PID's dataset links to `roblox_id`, sorted.
    async fn discord_ids_of(&self, pid: &Pid, roblox_id: &str) -> Result<Vec<String>, StoreError>;

    /// Replaces `prev` by `next` (and writes `link`) if nothing changed since
    /// `prev` was read; false on conflict. Wakes every waiter.
    async fn commit(
        &self,
        prev: &Loaded,
        next: &Session,
        link: Option<&LinkWrite>,
        settings: &Settings,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Makes `rec` its session's live flow until `now + ttl_ms`, replacing
    /// any earlier one; `state_hash` is what its callback must present. A
    /// start (`max_starts` set) is counted and refused (false) past the
    /// session's limit; the Roblox leg's record (`None`) is not a start.
    async fn put_flow(
        &self,
        rec: &FlowRecord,
        state_hash: &str,
        now: Timestamp,
        ttl_ms: u64,
        max_starts: Option<u64>,
    ) -> Result<bool, StoreError>;

    /// Takes the live flow of `sid` if `state_hash` names it and it has not
    /// expired by `now`: once.
    async fn take_flow(
        &self,
        sid: &SessionId,
        state_hash: &str,
        now: Timestamp,
    ) -> Result<Option<FlowRecord>, StoreError>;

    /// Counts one request of `bucket` in the window ending at `window_end`
    /// (windows ended by `now` are dropped); the count so far, this one included.
    async fn hit(&self, bucket: &str, window_end: Timestamp, now: Timestamp) -> Result<u64, StoreError>;

    /// A session with the change-feed position read in the same step.
    async fn read_with_cursor(
        &self,
        pid: &Pid,
        sid: &SessionId,
    ) -> Result<Option<(Session, Cursor)>, StoreError>;

    /// Registers a waiter (long-poll or stream) of `key` until `lease_until`,
    /// if fewer than `max` are registered; false when the key is at its limit.
    /// Leases make a crashed instance's waiters lapse on their own.
    async fn acquire_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        max: u64,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Extends a waiter's lease; false when the lease is gone (its key was
    /// revoked, or it lapsed).
    async fn renew_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Unregisters a waiter.
    async fn release_waiter(&self, key: &KeyRecord, waiter: &str) -> Result<(), StoreError>;

    /// Returns when the session changes after `cursor`, or at `until`,
    /// whichever first: with the session and cursor after the change when
    /// the store's change feed carries them (Redis), else `None` (read again).
    async fn wait_change(
        &self,
        pid: &Pid,
        sid: &SessionId,
        cursor: &Cursor,
        until: Timestamp,
        settings: &Settings,
    ) -> Result<Option<(Session, Cursor)>, StoreError>;

    /// Every PID.
    async fn pids(&self) -> Result<Vec<Pid>, StoreError>;

    /// Up to `limit` PID records after `after`, in PID order.
    async fn list_pids(&self, after: Option<&Pid>, limit: usize) -> Result<Vec<PidRecord>, StoreError>;

    /// Replaces a PID's record; false if the PID does not exist.
    async fn update_pid(&self, rec: &PidRecord) -> Result<bool, StoreError>;

    /// The live (unrevoked) keys of a PID, by key id.
    async fn keys_of(&self, pid: &Pid) -> Result<Vec<KeyRecord>, StoreError>;

    /// The live key with this id.
    async fn key_by_id(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// Replaces a live key's record (same id and secret); false if it is not live.
    async fn update_key(&self, rec: &KeyRecord) -> Result<bool, StoreError>;

    /// Erases the PID's links of one Discord user or one Roblox account
    /// (both lookup directions), counting them as `links_erased` in the same
    /// step: the links erased.
    async fn erase_links(&self, pid: &Pid, side: LinkSide, id: &str) -> Result<Vec<AccountLink>, StoreError>;

    /// One PID's counters; counts the pending sessions that expired by `now` first.
    async fn counters(&self, pid: &Pid, now: Timestamp) -> Result<Counters, StoreError>;

    /// Adds an instance's recorded request metrics (core's
    /// `metrics::Recorder::drain` pairs) to the service-wide sums, in one step.
    async fn add_metrics(&self, fields: &[(String, u64)]) -> Result<(), StoreError>;

    /// The service-wide request metric sums: `(field, sum)`.
    async fn metric_fields(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Up to `limit` entries of the PID's session listing (of one client
    /// when `client_id` is given) after `after`, newest first (creation
    /// time, then sid, descending), with their records (`None`: gone past
    /// retention; the entry still moves a cursor on).
    async fn list_sessions(
        &self,
        pid: &Pid,
        client_id: Option<&str>,
        after: Option<&ListCursor>,
        limit: usize,
    ) -> Result<Vec<(ListCursor, Option<Session>)>, StoreError>;

    /// A PID's webhook.
    async fn webhook(&self, pid: &Pid) -> Result<Option<WebhookConfig>, StoreError>;

    /// Sets a PID's webhook; false if the PID does not exist.
    async fn put_webhook(&self, pid: &Pid, cfg: &WebhookConfig) -> Result<bool, StoreError>;

    /// Removes a PID's webhook and the events waiting in its outbox; false
    /// if it had none.
    async fn delete_webhook(&self, pid: &Pid) -> Result<bool, StoreError>;

    /// The PIDs with a webhook, sorted.
    async fn webhook_pids(&self) -> Result<Vec<Pid>, StoreError>;

    /// Takes up to `limit` of the PID's outbox events due by `now` (oldest
    /// first), with their delivery state (`None`: never attempted), holding
    /// each until `hold_until`: no other dispatcher takes it before then.
    async fn take_due(
        &self,
        pid: &Pid,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(EventKey, Option<OutboxState>)>, StoreError>;

    /// Records an attempt on an outbox event: delivered or failed ones leave
    /// the outbox (counted), a retried one is due again at its
    /// `next_attempt_at` with `state` kept; the attempt joins the PID's log.
    /// Nothing happens when the event already left the outbox.
    async fn record_attempt(
        &self,
        pid: &Pid,
        key: &EventKey,
        state: &OutboxState,
        attempt: &Attempt,
    ) -> Result<(), StoreError>;

    /// The PID's most recent delivery attempts, newest first.
    async fn attempts(&self, pid: &Pid, limit: usize) -> Result<Vec<Attempt>, StoreError>;

    /// The layout version the store records (SQLite: `user_version`;
    /// Redis: `dock:schema`, recorded on first read). A store newer than
    /// this build is a [`StoreError::NotConfigured`].
    async fn schema_version(&self) -> Result<u32, StoreError>;

    /// The hash a live key is stored under.
    async fn key_hash(&self, key_id: &KeyId) -> Result<Option<String>, StoreError>;

    /// Up to about `limit` of the PID's links from `cursor` (`None`: the
    /// start; then what the last page returned), and the next cursor
    /// (`None`: done). Every link comes once on SQLite, in Discord id order;
    /// on Redis (`HSCAN`) every link comes at least once.
    async fn links_page(
        &self,
        pid: &Pid,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AccountLink>, Option<String>), StoreError>;

    /// Sets a link in both lookup directions, replacing the Discord user's
    /// earlier one (an import; not counted as a completion's link change).
    async fn put_link(&self, pid: &Pid, link: &AccountLink) -> Result<(), StoreError>;

    /// A key's create count in quota window `window`.
    async fn quota_count(&self, key: &KeyRecord, window: u64) -> Result<u64, StoreError>;

    /// Raises a key's count in window `window` to `count` if lower (the
    /// counter expires at `expires_at`, as a create's does).
    async fn raise_quota(
        &self,
        key: &KeyRecord,
        window: u64,
        count: u64,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Service-wide store errors reported so far.
    async fn store_errors(&self) -> Result<u64, StoreError>;

    /// Adds to the service-wide store error count.
    async fn add_store_errors(&self, n: u64) -> Result<(), StoreError>;
}

impl Store {
    /// Whether revoking a key wakes its waiters' reads (Redis: a notice on
    /// each waited-on session's change feed). SQLite's waiters poll and
    /// find a revocation at their next renewal or key check.
    pub fn pushes_revocation(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Opens the store the settings select, and reports the store errors
    /// this instance counted while the store failed (best effort: kept for
    /// a later open if that fails too).
    pub async fn open(settings: &Settings) -> Result<Store, StoreError> {
        let store = match &settings.redis_url {
            Some(url) => Store::Redis(redis::RedisStore::open(url).await?),
            None => Store::Sqlite(sqlite::SqliteStore::open().await?),
        };
        let unreported = UNREPORTED_ERRORS.swap(0, Ordering::Relaxed);
        if unreported > 0 && store.add_store_errors(unreported).await.is_err() {
            UNREPORTED_ERRORS.fetch_add(unreported, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// The kind of store the settings select, without opening it.
    pub fn kind_for(settings: &Settings) -> &'static str {
        if settings.redis_url.is_some() {
            "redis"
        } else {
            "sqlite"
        }
    }

    /// `redis` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Redis(_) => "redis",
            Store::Sqlite(_) => "sqlite",
        }
    }
}

/// The counters of `pid`, or summed over every PID; counts the pending
/// sessions that expired by `now` first.
pub async fn stats(
    store: &impl Backend,
    pid: Option<&Pid>,
    now: Timestamp,
) -> Result<StatsSnapshot, StoreError> {
    let pids = match pid {
        Some(p) => vec![p.clone()],
        None => store.pids().await?,
    };
    let mut snapshot = StatsSnapshot {
        pids: pids.len() as u64,
        ..StatsSnapshot::default()
    };
    for pid in &pids {
        let c = store.counters(pid, now).await?;
        snapshot.counters.add(&c);
    }
    snapshot.store_errors = store.store_errors().await?;
    Ok(snapshot)
}

/// Parses a stored record (key, PID, flow) if there is one.
pub(crate) fn parse_record<T: serde::de::DeserializeOwned>(
    what: &str,
    json: Option<String>,
) -> Result<Option<T>, StoreError> {
    json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))))
        .transpose()
}

/// Serializes a record for storage (our records serialize infallibly).
pub(crate) fn record_json<T: serde::Serialize>(rec: &T) -> String {
    serde_json::to_string(rec).unwrap_or_default()
}

/// A loaded session with its revision as its change-feed cursor (the stores
/// whose versions are revisions: SQLite, memory).
pub(crate) fn revision_cursor(l: Loaded) -> (Session, Cursor) {
    let rev = match l.version {
        Version::Revision(r) => r,
        Version::Json(_) => 0,
    };
    (l.session, Cursor::Revision(rev))
}

/// Parses a stored session.
pub(crate) fn parse_session(json: &str) -> Result<Session, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("session record: {e}")))
}

/// Serializes a session for storage.
pub(crate) fn session_json(s: &Session) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// How long a record must live: until expiry plus retention while pending,
/// retention after it is terminal.
pub(crate) fn retention_ms(s: &Session, settings: &Settings, now: Timestamp) -> u64 {
    let retention = settings.session_retention_secs * 1000;
    if s.is_pending_at(now) {
        now.millis_until(s.expires_at) + retention
    } else {
        retention
    }
}
