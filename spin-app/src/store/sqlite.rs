//! The embedded store: Spin's SQLite database `default` (`spin:sqlite`).
//!
//! Each transition is a single SQL statement, atomic by SQLite's rules:
//! the reuse claim is an upsert whose update is conditional on the slot's
//! expected sid; a completion is an `UPDATE … WHERE revision = ? AND <link
//! unchanged> RETURNING`, and a trigger writes the link dataset inside that
//! same statement. Waiters re-read the row's revision every
//! `poll_interval_ms`. One instance only: nothing wakes other processes.
//!
//! Counters (`dock_stats`, one row per PID and counter) change by triggers
//! inside the statements they count: a reuse slot that takes a new sid
//! counts `created` and enters the session in `dock_pending` (sid →
//! `expiresAt`); a session record leaving `pending` counts its new status
//! and leaves `dock_pending`; deleting a still-pending session from
//! `dock_pending` (each create and each stats read delete those past their
//! `expiresAt`) counts `expired`, once. `expiresAt` is core's fixed-width
//! ISO 8601 text, so text order is time order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dock_core::listing::ListCursor;
use dock_core::oauth::FlowRecord;
use dock_core::webhook::{Attempt, EventKey, OutboxState, WebhookConfig};
use dock_core::wire::{AccountLink, KeyRecord, PidRecord};
use dock_core::{KeyId, Pid, Session, SessionId, Settings, Timestamp};
use spin_sdk::sqlite::{Connection, Value};

use super::{
    Backend, Charge, Claim, Claimed, Counters, Cursor, LinkSide, LinkWrite, Loaded, StoreError,
    Version, parse_record, parse_session, record_json, retention_ms, session_json,
};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// The `dock_stats` row of service-wide counters (PIDs are never empty).
const SERVICE: &str = "";

/// Adds one to a counter of a PID.
const BUMP: &str = "INSERT INTO dock_stats (pid, counter, value) VALUES (?, ?, ?)
    ON CONFLICT (pid, counter) DO UPDATE SET value = value + excluded.value";

/// Write-ahead logging: readers (every waiter re-reads its session each
/// `poll_interval_ms`) never block the writer, and the writer never blocks
/// them. Under Spin, with a connection per request, the rollback journal let
/// 400 pollers starve the writers past the busy timeout ("database is
/// locked", a 503). Persistent in the file; an in-memory database stays
/// `memory`. Tuning only: a database that refuses it still serves.
const JOURNAL_MODE: &str = "PRAGMA journal_mode = WAL";

/// The schema, as a list of versions: `MIGRATIONS[n]` takes a database from
/// version `n` to `n + 1` (SQLite's `user_version`). A database at an older
/// version is brought forward at the first open of each instance; one at a
/// newer version than this build knows is refused (a downgrade would
/// misread it). Append a migration for every layout change; never edit one
/// that shipped.
///
/// Version 1 is the layout every release before versioning created (its
/// statements are idempotent, so it also adopts those databases as they are).
const MIGRATIONS: &[&[&str]] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4];

/// Version 4: the session listing's indexes, and webhooks. A PID's webhook (`events`: ` <type> <type> `); its
/// outbox, filled by triggers inside the statements that end a session (the
/// completion or cancel `UPDATE`, the `dock_pending` delete that counts an
/// expiry), due at once (`due_at` 0); the attempt log, whose insert (only
/// while the event is in the outbox) moves the event on by trigger: due
/// again, or out of the outbox and counted. Deleting a webhook empties its outbox.
const SCHEMA_V4: &[&str] = &[
    // The session listing (newest first, all or one client's).
    "CREATE INDEX IF NOT EXISTS dock_sessions_listing
        ON dock_sessions (pid, json_extract(record, '$.createdAt'), sid)",
    "CREATE INDEX IF NOT EXISTS dock_sessions_client_listing
        ON dock_sessions (pid, json_extract(record, '$.clientId'), json_extract(record, '$.createdAt'), sid)",
    "CREATE TABLE IF NOT EXISTS dock_webhooks (
        pid TEXT PRIMARY KEY, config TEXT NOT NULL, events TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dock_outbox (
        pid TEXT NOT NULL, member TEXT NOT NULL, due_at INTEGER NOT NULL, state TEXT,
        PRIMARY KEY (pid, member))",
    "CREATE INDEX IF NOT EXISTS dock_outbox_due ON dock_outbox (pid, due_at)",
    "CREATE TABLE IF NOT EXISTS dock_webhook_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, pid TEXT NOT NULL, member TEXT NOT NULL,
        outcome TEXT NOT NULL, next_due INTEGER NOT NULL, state TEXT NOT NULL,
        attempt TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dock_webhook_attempts_pid ON dock_webhook_attempts (pid, id)",
    "CREATE TRIGGER IF NOT EXISTS dock_outbox_finished
        AFTER UPDATE OF record ON dock_sessions
        WHEN json_extract(OLD.record, '$.status') = 'pending'
         AND json_extract(NEW.record, '$.status') IN ('completed', 'cancelled')
        BEGIN
            INSERT OR IGNORE INTO dock_outbox (pid, member, due_at, state)
                SELECT NEW.pid, 'session.' || json_extract(NEW.record, '$.status') || '|' || NEW.sid, 0, NULL
                FROM dock_webhooks w
                WHERE w.pid = NEW.pid
                  AND instr(w.events, ' session.' || json_extract(NEW.record, '$.status') || ' ') > 0;
        END",
    "CREATE TRIGGER IF NOT EXISTS dock_outbox_expired
        AFTER DELETE ON dock_pending
        WHEN (SELECT json_extract(record, '$.status') FROM dock_sessions WHERE sid = OLD.sid) = 'pending'
        BEGIN
            INSERT OR IGNORE INTO dock_outbox (pid, member, due_at, state)
                SELECT OLD.pid, 'session.expired|' || OLD.sid, 0, NULL
                FROM dock_webhooks w
                WHERE w.pid = OLD.pid AND instr(w.events, ' session.expired ') > 0;
        END",
    "CREATE TRIGGER IF NOT EXISTS dock_webhook_deleted
        AFTER DELETE ON dock_webhooks
        BEGIN
            DELETE FROM dock_outbox WHERE pid = OLD.pid;
        END",
    "CREATE TRIGGER IF NOT EXISTS dock_webhook_attempt_recorded
        AFTER INSERT ON dock_webhook_attempts
        BEGIN
            UPDATE dock_outbox SET due_at = NEW.next_due, state = NEW.state
                WHERE pid = NEW.pid AND member = NEW.member AND NEW.outcome = 'retrying';
            DELETE FROM dock_outbox
                WHERE pid = NEW.pid AND member = NEW.member AND NEW.outcome <> 'retrying';
            INSERT INTO dock_stats (pid, counter, value) VALUES (NEW.pid, 'webhook_attempts', 1)
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
            INSERT INTO dock_stats (pid, counter, value)
                SELECT NEW.pid, 'webhooks_' || NEW.outcome, 1 WHERE NEW.outcome <> 'retrying'
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
            UPDATE dock_webhook_attempts SET state = '' WHERE id = NEW.id;
            DELETE FROM dock_webhook_attempts WHERE pid = NEW.pid AND id <= NEW.id - 200
                AND id NOT IN (SELECT id FROM dock_webhook_attempts WHERE pid = NEW.pid
                               ORDER BY id DESC LIMIT 200);
        END",
];

/// Version 3: the service-wide sums of the request metrics instances record
/// (`GET /metrics`), one row per field.
const SCHEMA_V3: &[&str] = &["CREATE TABLE IF NOT EXISTS dock_metrics (
        field TEXT PRIMARY KEY, value INTEGER NOT NULL)"];

/// Version 2: erasing a link (the operator's data-protection requests)
/// counts `links_erased` in the statement that deletes it. (A completion's
/// `INSERT OR REPLACE` of a link does not fire it: SQLite fires delete
/// triggers for REPLACE only with `recursive_triggers`, which is off.)
const SCHEMA_V2: &[&str] = &["CREATE TRIGGER IF NOT EXISTS dock_stats_links_erased
        AFTER DELETE ON dock_links
        BEGIN
            INSERT INTO dock_stats (pid, counter, value) VALUES (OLD.pid, 'links_erased', 1)
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
        END"];

const SCHEMA_V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS dock_sessions (
        sid TEXT PRIMARY KEY, pid TEXT NOT NULL, record TEXT NOT NULL,
        revision INTEGER NOT NULL, purge_at INTEGER NOT NULL,
        discord_id TEXT, roblox_id TEXT)",
    "CREATE INDEX IF NOT EXISTS dock_sessions_purge ON dock_sessions (purge_at)",
    "CREATE TABLE IF NOT EXISTS dock_reuse (
        pid TEXT NOT NULL, digest TEXT NOT NULL, sid TEXT NOT NULL,
        PRIMARY KEY (pid, digest))",
    "CREATE TABLE IF NOT EXISTS dock_links (
        pid TEXT NOT NULL, discord_id TEXT NOT NULL, roblox_id TEXT NOT NULL,
        PRIMARY KEY (pid, discord_id))",
    "CREATE INDEX IF NOT EXISTS dock_links_roblox ON dock_links (pid, roblox_id)",
    "CREATE TABLE IF NOT EXISTS dock_pids (pid TEXT PRIMARY KEY, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dock_keys (
        key_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dock_quota (
        key_id TEXT NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (key_id, window))",
    "CREATE TABLE IF NOT EXISTS dock_waiters (
        key_id TEXT NOT NULL, waiter TEXT NOT NULL, lease_until INTEGER NOT NULL,
        PRIMARY KEY (key_id, waiter))",
    // One live flow per session (a new start replaces it; `starts` counts
    // them), taken once by the callback whose state hashes to `state`. The
    // first layout (a row per start, `dock_flows`) held only flows in
    // progress: dropped, those users start again.
    "DROP TABLE IF EXISTS dock_flows",
    "CREATE TABLE IF NOT EXISTS dock_session_flows (
        sid TEXT PRIMARY KEY, state TEXT, record TEXT,
        starts INTEGER NOT NULL, expires_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dock_session_flows_expiry ON dock_session_flows (expires_at)",
    // The public flow endpoints' request counts per client address and minute.
    "CREATE TABLE IF NOT EXISTS dock_rate (
        bucket TEXT NOT NULL, window_end INTEGER NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (bucket, window_end))",
    "CREATE INDEX IF NOT EXISTS dock_rate_window ON dock_rate (window_end)",
    "CREATE TABLE IF NOT EXISTS dock_stats (
        pid TEXT NOT NULL, counter TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (pid, counter))",
    "CREATE TABLE IF NOT EXISTS dock_pending (
        sid TEXT PRIMARY KEY, pid TEXT NOT NULL, expires_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dock_pending_expiry ON dock_pending (expires_at)",
    // A reuse slot names a new session: created, and pending until its expiresAt.
    "CREATE TRIGGER IF NOT EXISTS dock_stats_created
        AFTER INSERT ON dock_reuse
        BEGIN
            INSERT INTO dock_pending (sid, pid, expires_at)
                SELECT sid, pid, json_extract(record, '$.expiresAt') FROM dock_sessions WHERE sid = NEW.sid;
            INSERT INTO dock_stats (pid, counter, value) VALUES (NEW.pid, 'created', 1)
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
        END",
    "CREATE TRIGGER IF NOT EXISTS dock_stats_recreated
        AFTER UPDATE OF sid ON dock_reuse
        WHEN NEW.sid <> OLD.sid
        BEGIN
            INSERT INTO dock_pending (sid, pid, expires_at)
                SELECT sid, pid, json_extract(record, '$.expiresAt') FROM dock_sessions WHERE sid = NEW.sid;
            INSERT INTO dock_stats (pid, counter, value) VALUES (NEW.pid, 'created', 1)
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
        END",
    // A pending session completed or was cancelled.
    "CREATE TRIGGER IF NOT EXISTS dock_stats_finished
        AFTER UPDATE OF record ON dock_sessions
        WHEN json_extract(OLD.record, '$.status') = 'pending'
         AND json_extract(NEW.record, '$.status') IN ('completed', 'cancelled')
        BEGIN
            DELETE FROM dock_pending WHERE sid = NEW.sid;
            INSERT INTO dock_stats (pid, counter, value)
                VALUES (NEW.pid, json_extract(NEW.record, '$.status'), 1)
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
        END",
    // Leaving dock_pending while still pending: it expired.
    "CREATE TRIGGER IF NOT EXISTS dock_stats_expired
        AFTER DELETE ON dock_pending
        WHEN (SELECT json_extract(record, '$.status') FROM dock_sessions WHERE sid = OLD.sid) = 'pending'
        BEGIN
            INSERT INTO dock_stats (pid, counter, value) VALUES (OLD.pid, 'expired', 1)
                ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1;
        END",
    // The link dataset changes inside the statement that completes a session.
    "CREATE TRIGGER IF NOT EXISTS dock_link_on_complete
        AFTER UPDATE OF roblox_id ON dock_sessions
        WHEN NEW.roblox_id IS NOT NULL AND OLD.roblox_id IS NULL
        BEGIN
            INSERT OR REPLACE INTO dock_links (pid, discord_id, roblox_id)
            VALUES (NEW.pid, NEW.discord_id, NEW.roblox_id);
        END",
];

/// Set once this instance has created the schema (instance-wide, not request data).
static SCHEMA_READY: AtomicBool = AtomicBool::new(false);

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn t(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn i(n: i64) -> Value {
    Value::Integer(n)
}

fn ms(ts: Timestamp) -> i64 {
    i64::try_from(ts.as_millis()).unwrap_or(i64::MAX)
}

/// A row as owned values.
pub type Row = Vec<Value>;

fn text_at(row: &Row, idx: usize) -> Option<String> {
    match row.get(idx) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Rows of `(discord_id, roblox_id)` as links.
fn links_at(rows: &[Row]) -> Vec<AccountLink> {
    rows.iter()
        .filter_map(|r| {
            Some(AccountLink {
                discord_id: text_at(r, 0)?,
                roblox_id: text_at(r, 1)?,
            })
        })
        .collect()
}

fn int_at(row: &Row, idx: usize) -> Option<i64> {
    match row.get(idx) {
        Some(Value::Integer(n)) => Some(*n),
        _ => None,
    }
}

/// A connection to SQLite as the store uses it: Spin's `spin:sqlite`
/// connection in the component; a native one in the store's tests.
#[allow(async_fn_in_trait)]
pub trait Link: Sized {
    /// Runs one statement; every row it returns, as owned values.
    async fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, String>;
    /// Sleeps (waiters re-read every `poll_interval_ms`).
    async fn sleep(&self, d: Duration);
}

impl Link for Connection {
    async fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, String> {
        let result = self.execute(sql, params).await.map_err(|e| e.to_string())?;
        let rows = result.collect().await.map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(|r| r.values).collect())
    }

    async fn sleep(&self, d: Duration) {
        spin_sdk::time::sleep(d).await;
    }
}

/// A SQLite-backed store for one request.
pub struct SqliteStore<C: Link = Connection> {
    conn: C,
}

impl SqliteStore {
    /// Opens the `default` database and creates the schema on first use.
    pub async fn open() -> Result<Self, StoreError> {
        let conn = Connection::open_default().await.map_err(|e| match e {
            // The host grants this component no `default` database.
            spin_sdk::sqlite::Error::AccessDenied | spin_sdk::sqlite::Error::NoSuchDatabase => {
                StoreError::NotConfigured(String::from(
                    "redis_url is empty and the component may not use the SQLite database \"default\"; \
                     set redis_url (and redis_origin), or grant sqlite_databases = [\"default\"]",
                ))
            }
            e => unavailable(e),
        })?;
        let schema_ready = SCHEMA_READY.load(Ordering::Acquire);
        let store = SqliteStore::with_link(conn, !schema_ready).await?;
        SCHEMA_READY.store(true, Ordering::Release);
        Ok(store)
    }
}

impl<C: Link> SqliteStore<C> {
    /// A store over `conn`; creates (or migrates) the schema when `create_schema`.
    pub async fn with_link(conn: C, create_schema: bool) -> Result<Self, StoreError> {
        let store = SqliteStore { conn };
        // Spin gives every guest `open` its own SQLite connection to the file
        // and sets no busy timeout on it, so two requests writing at once made
        // one fail at once with "database is locked" (a 503). Wait instead, as
        // the statements are short. (dock-host shares one connection with a
        // busy timeout; the pragma is harmless there.)
        // Tuning only: a backend that refuses a pragma (e.g. a remote libSQL
        // database) still serves, so its failure is logged, not fatal.
        if let Err(e) = store.rows(BUSY_TIMEOUT, vec![]).await {
            crate::log::log!("sqlite: {BUSY_TIMEOUT} refused: {e}");
        }
        if create_schema {
            if let Err(e) = store.rows(JOURNAL_MODE, vec![]).await {
                crate::log::log!("sqlite: {JOURNAL_MODE} refused: {e}");
            }
            store.migrate().await?;
        }
        Ok(store)
    }

    /// The schema version the database records (`PRAGMA user_version`).
    pub async fn user_version(&self) -> Result<usize, StoreError> {
        let rows = self.rows("PRAGMA user_version", vec![]).await?;
        let v = rows.first().and_then(|r| int_at(r, 0)).unwrap_or(0);
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// Applies the migrations the database has not had yet.
    async fn migrate(&self) -> Result<(), StoreError> {
        let current = self.user_version().await?;
        if current > MIGRATIONS.len() {
            return Err(StoreError::NotConfigured(format!(
                "the SQLite database is at schema version {current}, newer than this build's {}; \
                 run the release that wrote it, or restore a backup",
                MIGRATIONS.len()
            )));
        }
        for (n, statements) in MIGRATIONS.iter().enumerate().skip(current) {
            for stmt in *statements {
                self.rows(stmt, vec![]).await?;
            }
            self.rows(&format!("PRAGMA user_version = {}", n + 1), vec![])
                .await?;
        }
        Ok(())
    }

    async fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        self.conn.rows(sql, params).await.map_err(unavailable)
    }

    async fn quota_hit(&self, key: &KeyRecord, now: Timestamp) -> Result<u64, StoreError> {
        let window = key.quota.window_index(now) as i64;
        let rows = self
            .rows(
                "INSERT INTO dock_quota (key_id, window, count) VALUES (?, ?, 1)
                 ON CONFLICT (key_id, window) DO UPDATE SET count = count + 1
                 RETURNING count",
                vec![t(key.key_id.as_str()), i(window)],
            )
            .await?;
        let count = rows.first().and_then(|r| int_at(r, 0)).unwrap_or(0);
        if !key.quota.admits(u64::try_from(count).unwrap_or(0)) {
            self.rows(BUMP, vec![t(key.pid.as_str()), t("quota_rejected"), i(1)])
                .await?;
        }
        if count == 1 {
            // First hit of a window: drop the key's older windows.
            self.rows(
                "DELETE FROM dock_quota WHERE key_id = ? AND window < ?",
                vec![t(key.key_id.as_str()), i(window)],
            )
            .await?;
        }
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn claim_slot(
        &self,
        digest: &str,
        expected: Option<&SessionId>,
        candidate: &Session,
        settings: &Settings,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        let pid = candidate.pid.as_str();
        // Pending sessions past their expiry are counted (trigger) before the
        // purge can delete them.
        self.rows(
            "DELETE FROM dock_pending WHERE expires_at <= ?",
            vec![t(now.to_iso8601())],
        )
        .await?;
        // Finished sessions past their retention go first (indexed range delete).
        self.rows(
            "DELETE FROM dock_sessions WHERE purge_at <= ?",
            vec![i(ms(now))],
        )
        .await?;
        // The session row exists before the slot can point at it, so a reader
        // that finds the slot always finds the session.
        let purge_at = ms(now.plus_millis(retention_ms(candidate, settings, now)));
        self.rows(
            "INSERT INTO dock_sessions (sid, pid, record, revision, purge_at) VALUES (?, ?, ?, 1, ?)",
            vec![t(candidate.sid.as_str()), t(pid), t(session_json(candidate)), i(purge_at)],
        )
        .await?;
        let won = self
            .rows(
                "INSERT INTO dock_reuse (pid, digest, sid) VALUES (?, ?, ?)
                 ON CONFLICT (pid, digest) DO UPDATE SET sid = excluded.sid WHERE dock_reuse.sid = ?
                 RETURNING sid",
                vec![
                    t(pid),
                    t(digest),
                    t(candidate.sid.as_str()),
                    t(expected.map(SessionId::as_str).unwrap_or("")),
                ],
            )
            .await?;
        if !won.is_empty() {
            return Ok(Claim::Created);
        }
        self.rows(
            "DELETE FROM dock_sessions WHERE sid = ?",
            vec![t(candidate.sid.as_str())],
        )
        .await?;
        let rows = self
            .rows(
                "SELECT r.sid, s.record FROM dock_reuse r LEFT JOIN dock_sessions s ON s.sid = r.sid
                 WHERE r.pid = ? AND r.digest = ?",
                vec![t(pid), t(digest)],
            )
            .await?;
        let row = rows.first();
        if let Some(taken) = row.and_then(|r| text_at(r, 0)) {
            // Still pending and unexpired: the caller reuses it.
            self.rows(
                "INSERT INTO dock_stats (pid, counter, value)
                 SELECT pid, 'reused', 1 FROM dock_pending WHERE sid = ? AND expires_at > ?
                 ON CONFLICT (pid, counter) DO UPDATE SET value = value + 1",
                vec![t(taken), t(now.to_iso8601())],
            )
            .await?;
        }
        let sid = row
            .and_then(|r| text_at(r, 0))
            .and_then(|s| SessionId::parse(&s).ok());
        let session = match row.and_then(|r| text_at(r, 1)) {
            Some(json) => Some(parse_session(&json)?),
            None => None,
        };
        Ok(Claim::Taken { sid, session })
    }
}

impl<C: Link> Backend for SqliteStore<C> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.rows("SELECT 1", vec![]).await.map(drop)
    }

    async fn lookup_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM dock_keys WHERE key_hash = ?",
                vec![t(hash)],
            )
            .await?;
        parse_record("key record", rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn load_pid(&self, pid: &Pid) -> Result<Option<PidRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM dock_pids WHERE pid = ?",
                vec![t(pid.as_str())],
            )
            .await?;
        parse_record("pid record", rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn create_pid(&self, rec: &PidRecord) -> Result<bool, StoreError> {
        let (pid, json) = (&rec.pid, record_json(rec));
        let rows = self
            .rows(
                "INSERT INTO dock_pids (pid, record) VALUES (?, ?) ON CONFLICT (pid) DO NOTHING RETURNING pid",
                vec![t(pid.as_str()), t(json)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn issue_key(&self, hash: &str, rec: &KeyRecord) -> Result<(), StoreError> {
        let (key_id, json) = (&rec.key_id, record_json(rec));
        self.rows(
            "INSERT INTO dock_keys (key_hash, key_id, record) VALUES (?, ?, ?)",
            vec![t(hash), t(key_id.as_str()), t(json)],
        )
        .await
        .map(drop)
    }

    async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, StoreError> {
        let rows = self
            .rows(
                "DELETE FROM dock_keys WHERE key_id = ? RETURNING key_id",
                vec![t(key_id.as_str())],
            )
            .await?;
        // Its waiters' leases: open streams end at their next renewal.
        self.rows(
            "DELETE FROM dock_waiters WHERE key_id = ?",
            vec![t(key_id.as_str())],
        )
        .await?;
        Ok(!rows.is_empty())
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
        // No key cache here (a key lookup is a local query): every create
        // read its key's record in this request, so no mark is checked.
        let quota_count = match charge.map(|c| c.key) {
            Some(key) => {
                let n = self.quota_hit(key, now).await?;
                if !key.quota.admits(n) {
                    return Ok(Claimed {
                        quota_count: Some(n),
                        claim: Claim::OverQuota,
                        key_mark: None,
                    });
                }
                Some(n)
            }
            None => None,
        };
        let claim = self
            .claim_slot(digest, expected, candidate, settings, now)
            .await?;
        Ok(Claimed {
            quota_count,
            claim,
            key_mark: None,
        })
    }

    async fn load_session(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
    ) -> Result<Option<Loaded>, StoreError> {
        let rows = self
            .rows(
                "SELECT record, revision, pid FROM dock_sessions WHERE sid = ?",
                vec![t(sid.as_str())],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        if let Some(pid) = pid
            && text_at(row, 2).as_deref() != Some(pid.as_str())
        {
            return Ok(None);
        }
        let json =
            text_at(row, 0).ok_or_else(|| StoreError::Corrupt("session without record".into()))?;
        let revision =
            int_at(row, 1).ok_or_else(|| StoreError::Corrupt("session without revision".into()))?;
        Ok(Some(Loaded {
            session: parse_session(&json)?,
            version: Version::Revision(revision),
        }))
    }

    async fn load_for_completion(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
        discord_id: &str,
    ) -> Result<Option<(Loaded, Option<String>)>, StoreError> {
        let Some(loaded) = self.load_session(pid, sid).await? else {
            return Ok(None);
        };
        let link = self.link_of(&loaded.session.pid, discord_id).await?;
        Ok(Some((loaded, link)))
    }

    async fn link_of(&self, pid: &Pid, discord_id: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .rows(
                "SELECT roblox_id FROM dock_links WHERE pid = ? AND discord_id = ?",
                vec![t(pid.as_str()), t(discord_id)],
            )
            .await?;
        Ok(rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn discord_ids_of(&self, pid: &Pid, roblox_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .rows(
                "SELECT discord_id FROM dock_links WHERE pid = ? AND roblox_id = ? ORDER BY discord_id",
                vec![t(pid.as_str()), t(roblox_id)],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| text_at(r, 0)).collect())
    }

    async fn commit(
        &self,
        prev: &Loaded,
        next: &Session,
        link: Option<&LinkWrite>,
        settings: &Settings,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Version::Revision(rev) = prev.version else {
            return Err(StoreError::Corrupt(
                "a Redis version reached the SQLite store".into(),
            ));
        };
        let purge_at = ms(now.plus_millis(retention_ms(next, settings, now)));
        let rows = match link {
            None => {
                self.rows(
                    "UPDATE dock_sessions SET record = ?, revision = revision + 1, purge_at = ?
                     WHERE sid = ? AND revision = ? RETURNING revision",
                    vec![t(session_json(next)), i(purge_at), t(next.sid.as_str()), i(rev)],
                )
                .await?
            }
            Some(l) => {
                self.rows(
                    "UPDATE dock_sessions SET record = ?, revision = revision + 1, purge_at = ?,
                            discord_id = ?, roblox_id = ?
                     WHERE sid = ? AND revision = ?
                       AND coalesce((SELECT roblox_id FROM dock_links WHERE pid = ? AND discord_id = ?), '') = ?
                     RETURNING revision",
                    vec![
                        t(session_json(next)),
                        i(purge_at),
                        t(l.discord_id.as_str()),
                        t(l.roblox_id.as_str()),
                        t(next.sid.as_str()),
                        i(rev),
                        t(next.pid.as_str()),
                        t(l.discord_id.as_str()),
                        t(l.expected_previous.as_deref().unwrap_or("")),
                    ],
                )
                .await?
            }
        };
        Ok(!rows.is_empty())
    }

    async fn acquire_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        max: u64,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = key.key_id.as_str();
        self.rows(
            "DELETE FROM dock_waiters WHERE key_id = ? AND lease_until <= ?",
            vec![t(id), i(ms(now))],
        )
        .await?;
        // One statement: insert only while the key is under its limit.
        let rows = self
            .rows(
                "INSERT INTO dock_waiters (key_id, waiter, lease_until)
                 SELECT ?, ?, ? WHERE (SELECT count(*) FROM dock_waiters WHERE key_id = ?) < ?
                 RETURNING waiter",
                vec![
                    t(id),
                    t(waiter),
                    i(ms(lease_until)),
                    t(id),
                    i(i64::try_from(max).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn renew_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let rows = self
            .rows(
                "UPDATE dock_waiters SET lease_until = ? WHERE key_id = ? AND waiter = ?
                 RETURNING waiter",
                vec![i(ms(lease_until)), t(key.key_id.as_str()), t(waiter)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn release_waiter(&self, key: &KeyRecord, waiter: &str) -> Result<(), StoreError> {
        self.rows(
            "DELETE FROM dock_waiters WHERE key_id = ? AND waiter = ?",
            vec![t(key.key_id.as_str()), t(waiter)],
        )
        .await
        .map(drop)
    }

    async fn pids(&self) -> Result<Vec<Pid>, StoreError> {
        let rows = self
            .rows("SELECT pid FROM dock_pids ORDER BY pid", vec![])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| text_at(r, 0))
            .filter_map(|s| Pid::parse(&s).ok())
            .collect())
    }

    async fn list_pids(
        &self,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PidRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM dock_pids WHERE pid > ? ORDER BY pid LIMIT ?",
                vec![
                    t(after.map_or("", Pid::as_str)),
                    i(i64::try_from(limit).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        rows.iter()
            .filter_map(|r| text_at(r, 0))
            .filter_map(|json| parse_record("pid record", Some(json)).transpose())
            .collect()
    }

    async fn update_pid(&self, rec: &PidRecord) -> Result<bool, StoreError> {
        let rows = self
            .rows(
                "UPDATE dock_pids SET record = ? WHERE pid = ? RETURNING pid",
                vec![t(record_json(rec)), t(rec.pid.as_str())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn keys_of(&self, pid: &Pid) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM dock_keys WHERE json_extract(record, '$.pid') = ? ORDER BY key_id",
                vec![t(pid.as_str())],
            )
            .await?;
        rows.iter()
            .filter_map(|r| text_at(r, 0))
            .filter_map(|json| parse_record("key record", Some(json)).transpose())
            .collect()
    }

    async fn key_by_id(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM dock_keys WHERE key_id = ?",
                vec![t(key_id.as_str())],
            )
            .await?;
        parse_record("key record", rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn update_key(&self, rec: &KeyRecord) -> Result<bool, StoreError> {
        let rows = self
            .rows(
                "UPDATE dock_keys SET record = ? WHERE key_id = ? RETURNING key_id",
                vec![t(record_json(rec)), t(rec.key_id.as_str())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn erase_links(
        &self,
        pid: &Pid,
        side: LinkSide,
        id: &str,
    ) -> Result<Vec<AccountLink>, StoreError> {
        let sql = match side {
            LinkSide::Discord => {
                "DELETE FROM dock_links WHERE pid = ? AND discord_id = ? RETURNING discord_id, roblox_id"
            }
            LinkSide::Roblox => {
                "DELETE FROM dock_links WHERE pid = ? AND roblox_id = ? RETURNING discord_id, roblox_id"
            }
        };
        let rows = self.rows(sql, vec![t(pid.as_str()), t(id)]).await?;
        let mut erased = links_at(&rows);
        erased.sort_by(|a, b| a.discord_id.cmp(&b.discord_id));
        Ok(erased)
    }

    async fn list_sessions(
        &self,
        pid: &Pid,
        client_id: Option<&str>,
        after: Option<&ListCursor>,
        limit: usize,
    ) -> Result<Vec<(ListCursor, Option<Session>)>, StoreError> {
        let mut sql = String::from("SELECT record FROM dock_sessions WHERE pid = ?");
        let mut params = vec![t(pid.as_str())];
        if let Some(c) = client_id {
            sql.push_str(" AND json_extract(record, '$.clientId') = ?");
            params.push(t(c));
        }
        if let Some(a) = after {
            sql.push_str(" AND (json_extract(record, '$.createdAt'), sid) < (?, ?)");
            params.push(t(a.created_at.to_iso8601()));
            params.push(t(a.sid.as_str()));
        }
        sql.push_str(" ORDER BY json_extract(record, '$.createdAt') DESC, sid DESC LIMIT ?");
        params.push(i(i64::try_from(limit).unwrap_or(i64::MAX)));
        let rows = self.rows(&sql, params).await?;
        rows.iter()
            .filter_map(|r| text_at(r, 0))
            .map(|json| {
                let s = parse_session(&json)?;
                Ok((ListCursor::of(&s), Some(s)))
            })
            .collect()
    }

    async fn webhook(&self, pid: &Pid) -> Result<Option<WebhookConfig>, StoreError> {
        let rows = self
            .rows(
                "SELECT config FROM dock_webhooks WHERE pid = ?",
                vec![t(pid.as_str())],
            )
            .await?;
        parse_record("webhook", rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn put_webhook(&self, pid: &Pid, cfg: &WebhookConfig) -> Result<bool, StoreError> {
        let rows = self
            .rows(
                "INSERT INTO dock_webhooks (pid, config, events)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM dock_pids WHERE pid = ?1)
                 ON CONFLICT (pid) DO UPDATE SET config = excluded.config, events = excluded.events
                 RETURNING pid",
                vec![t(pid.as_str()), t(record_json(cfg)), t(cfg.events_field())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn delete_webhook(&self, pid: &Pid) -> Result<bool, StoreError> {
        let rows = self
            .rows(
                "DELETE FROM dock_webhooks WHERE pid = ? RETURNING pid",
                vec![t(pid.as_str())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn webhook_pids(&self) -> Result<Vec<Pid>, StoreError> {
        let rows = self
            .rows("SELECT pid FROM dock_webhooks ORDER BY pid", vec![])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| text_at(r, 0))
            .filter_map(|s| Pid::parse(&s).ok())
            .collect())
    }

    async fn take_due(
        &self,
        pid: &Pid,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(EventKey, Option<OutboxState>)>, StoreError> {
        let rows = self
            .rows(
                "UPDATE dock_outbox SET due_at = ?1
                 WHERE pid = ?2 AND member IN (
                     SELECT member FROM dock_outbox WHERE pid = ?2 AND due_at <= ?3
                     ORDER BY due_at LIMIT ?4)
                 RETURNING member, state",
                vec![
                    i(ms(hold_until)),
                    t(pid.as_str()),
                    i(ms(now)),
                    i(i64::try_from(limit).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let Some(member) = text_at(row, 0) else {
                continue;
            };
            let key = EventKey::parse_member(&member)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox member {member:?}")))?;
            out.push((key, parse_record("outbox state", text_at(row, 1))?));
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
        self.rows(
            "INSERT INTO dock_webhook_attempts (pid, member, outcome, next_due, state, attempt)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6
             WHERE EXISTS (SELECT 1 FROM dock_outbox WHERE pid = ?1 AND member = ?2)",
            vec![
                t(pid.as_str()),
                t(key.member()),
                t(attempt.outcome.as_str()),
                i(attempt.next_attempt_at.map_or(0, ms)),
                t(record_json(state)),
                t(record_json(attempt)),
            ],
        )
        .await
        .map(drop)
    }

    async fn attempts(&self, pid: &Pid, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        let rows = self
            .rows(
                "SELECT attempt FROM dock_webhook_attempts WHERE pid = ? ORDER BY id DESC LIMIT ?",
                vec![t(pid.as_str()), i(i64::try_from(limit).unwrap_or(i64::MAX))],
            )
            .await?;
        rows.iter()
            .map(|r| parse_record("delivery attempt", text_at(r, 0)))
            .filter_map(Result::transpose)
            .collect()
    }

    async fn counters(&self, pid: &Pid, now: Timestamp) -> Result<Counters, StoreError> {
        self.rows(
            "DELETE FROM dock_pending WHERE expires_at <= ?",
            vec![t(now.to_iso8601())],
        )
        .await?;
        let mut counters = Counters::default();
        let rows = self
            .rows(
                "SELECT counter, value FROM dock_stats WHERE pid = ?",
                vec![t(pid.as_str())],
            )
            .await?;
        for row in &rows {
            if let (Some(name), Some(n)) = (text_at(row, 0), int_at(row, 1)) {
                counters.set(&name, u64::try_from(n).unwrap_or(0));
            }
        }
        let rows = self
            .rows(
                "SELECT count(*) FROM dock_waiters w JOIN dock_keys k ON k.key_id = w.key_id
                 WHERE json_extract(k.record, '$.pid') = ? AND w.lease_until > ?",
                vec![t(pid.as_str()), i(ms(now))],
            )
            .await?;
        let waiters = rows.first().and_then(|r| int_at(r, 0)).unwrap_or(0);
        counters.waiters = u64::try_from(waiters).unwrap_or(0);
        Ok(counters)
    }

    async fn add_metrics(&self, fields: &[(String, u64)]) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        // One statement for the batch: a VALUES row per field.
        let rows = vec!["(?, ?)"; fields.len()].join(", ");
        let params = fields
            .iter()
            .flat_map(|(f, n)| [t(f.as_str()), i(i64::try_from(*n).unwrap_or(i64::MAX))])
            .collect();
        self.rows(
            &format!(
                "INSERT INTO dock_metrics (field, value) VALUES {rows}
                 ON CONFLICT (field) DO UPDATE SET value = value + excluded.value"
            ),
            params,
        )
        .await
        .map(drop)
    }

    async fn metric_fields(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .rows("SELECT field, value FROM dock_metrics", vec![])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((text_at(r, 0)?, u64::try_from(int_at(r, 1)?).ok()?)))
            .collect())
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        // A newer database was refused when it was opened.
        Ok(u32::try_from(self.user_version().await?).unwrap_or(u32::MAX))
    }

    async fn key_hash(&self, key_id: &KeyId) -> Result<Option<String>, StoreError> {
        let rows = self
            .rows(
                "SELECT key_hash FROM dock_keys WHERE key_id = ?",
                vec![t(key_id.as_str())],
            )
            .await?;
        Ok(rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn links_page(
        &self,
        pid: &Pid,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AccountLink>, Option<String>), StoreError> {
        let rows = self
            .rows(
                "SELECT discord_id, roblox_id FROM dock_links WHERE pid = ? AND discord_id > ?
                 ORDER BY discord_id LIMIT ?",
                vec![
                    t(pid.as_str()),
                    t(cursor.unwrap_or("")),
                    i(i64::try_from(limit).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let links = links_at(&rows);
        let next = (links.len() >= limit)
            .then(|| links.last().map(|l| l.discord_id.clone()))
            .flatten();
        Ok((links, next))
    }

    async fn put_link(&self, pid: &Pid, link: &AccountLink) -> Result<(), StoreError> {
        // One row is both directions (the Roblox side is an index).
        self.rows(
            "INSERT OR REPLACE INTO dock_links (pid, discord_id, roblox_id) VALUES (?, ?, ?)",
            vec![
                t(pid.as_str()),
                t(link.discord_id.as_str()),
                t(link.roblox_id.as_str()),
            ],
        )
        .await
        .map(drop)
    }

    async fn quota_count(&self, key: &KeyRecord, window: u64) -> Result<u64, StoreError> {
        let rows = self
            .rows(
                "SELECT count FROM dock_quota WHERE key_id = ? AND window = ?",
                vec![
                    t(key.key_id.as_str()),
                    i(i64::try_from(window).unwrap_or(i64::MAX)),
                ],
            )
            .await?;
        let n = rows.first().and_then(|r| int_at(r, 0)).unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn raise_quota(
        &self,
        key: &KeyRecord,
        window: u64,
        count: u64,
        _expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        // Past windows are deleted by the next create's statement.
        self.rows(
            "INSERT INTO dock_quota (key_id, window, count) VALUES (?, ?, ?)
             ON CONFLICT (key_id, window) DO UPDATE SET count = max(count, excluded.count)",
            vec![
                t(key.key_id.as_str()),
                i(i64::try_from(window).unwrap_or(i64::MAX)),
                i(i64::try_from(count).unwrap_or(i64::MAX)),
            ],
        )
        .await
        .map(drop)
    }

    async fn store_errors(&self) -> Result<u64, StoreError> {
        let rows = self
            .rows(
                "SELECT value FROM dock_stats WHERE pid = ? AND counter = 'store_errors'",
                vec![t(SERVICE)],
            )
            .await?;
        let n = rows.first().and_then(|r| int_at(r, 0)).unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn add_store_errors(&self, n: u64) -> Result<(), StoreError> {
        self.rows(
            BUMP,
            vec![
                t(SERVICE),
                t("store_errors"),
                i(i64::try_from(n).unwrap_or(i64::MAX)),
            ],
        )
        .await
        .map(drop)
    }

    async fn put_flow(
        &self,
        rec: &FlowRecord,
        state_hash: &str,
        now: Timestamp,
        ttl_ms: u64,
        max_starts: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (sid, json, ttl_ms) = (&rec.sid, record_json(rec), ttl_ms.max(1));
        self.rows(
            "DELETE FROM dock_session_flows WHERE expires_at <= ?",
            vec![i(ms(now))],
        )
        .await?;
        let add = i64::from(max_starts.is_some());
        let most = max_starts.map_or(i64::MAX, |m| i64::try_from(m).unwrap_or(i64::MAX));
        let rows = self
            .rows(
                "INSERT INTO dock_session_flows (sid, state, record, starts, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (sid) DO UPDATE
                    SET state = ?2, record = ?3, starts = starts + ?4, expires_at = ?5
                    WHERE starts + ?4 <= ?6
                 RETURNING starts",
                vec![
                    t(sid.as_str()),
                    t(state_hash),
                    t(json),
                    i(add),
                    i(ms(now.plus_millis(ttl_ms))),
                    i(most),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn take_flow(
        &self,
        sid: &SessionId,
        state_hash: &str,
        now: Timestamp,
    ) -> Result<Option<FlowRecord>, StoreError> {
        let rows = self
            .rows(
                // RETURNING gives the row after the update: the record
                // stays (unusable without its state) until replaced or expired.
                "UPDATE dock_session_flows SET state = NULL
                 WHERE sid = ? AND state = ? AND expires_at > ?
                 RETURNING record",
                vec![t(sid.as_str()), t(state_hash), i(ms(now))],
            )
            .await?;
        parse_record("flow record", rows.first().and_then(|r| text_at(r, 0)))
    }

    async fn hit(
        &self,
        bucket: &str,
        window_end: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.rows(
            "DELETE FROM dock_rate WHERE window_end <= ?",
            vec![i(ms(now))],
        )
        .await?;
        let rows = self
            .rows(
                "INSERT INTO dock_rate (bucket, window_end, count) VALUES (?, ?, 1)
                 ON CONFLICT (bucket, window_end) DO UPDATE SET count = count + 1
                 RETURNING count",
                vec![t(bucket), i(ms(window_end))],
            )
            .await?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => Ok((*n).max(0) as u64),
            other => Err(StoreError::Corrupt(format!("rate counter row {other:?}"))),
        }
    }

    async fn read_with_cursor(
        &self,
        pid: &Pid,
        sid: &SessionId,
    ) -> Result<Option<(Session, Cursor)>, StoreError> {
        Ok(self
            .load_session(Some(pid), sid)
            .await?
            .map(super::revision_cursor))
    }

    async fn wait_change(
        &self,
        _pid: &Pid,
        sid: &SessionId,
        cursor: &Cursor,
        until: Timestamp,
        settings: &Settings,
    ) -> Result<Option<(Session, Cursor)>, StoreError> {
        let Cursor::Revision(seen) = *cursor else {
            return Err(StoreError::Corrupt(
                "a Redis cursor reached the SQLite store".into(),
            ));
        };
        loop {
            let left = crate::env::now().millis_until(until);
            if left == 0 {
                return Ok(None);
            }
            self.conn
                .sleep(Duration::from_millis(left.min(settings.poll_interval_ms)))
                .await;
            let rows = self
                .rows(
                    "SELECT revision FROM dock_sessions WHERE sid = ?",
                    vec![t(sid.as_str())],
                )
                .await?;
            if rows.first().and_then(|r| int_at(r, 0)) != Some(seen) {
                return Ok(None);
            }
        }
    }
}
