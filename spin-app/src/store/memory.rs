//! An in-memory [`Backend`] for the native unit tests of the domain flows.
//!
//! It keeps the stores' contract (the same compare-and-set, quota, counter,
//! lease and flow rules as `redis` and `sqlite`), in one `RefCell` instead of
//! a script or a statement: a test is single-threaded, so each method is one
//! atomic step. Not modelled: retention (records are never purged) and the
//! clock (`wait_change` has no timer: it returns at the next commit of the
//! session, or at once if the session changed since `cursor`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use dock_core::listing::ListCursor;
use dock_core::oauth::FlowRecord;
use dock_core::webhook::{Attempt, EventKey, EventType, OutboxState, Outcome, WebhookConfig};
use dock_core::wire::{AccountLink, KeyRecord, PidRecord};
use dock_core::{KeyId, Pid, Session, SessionId, Settings, Status, Timestamp};
use futures::channel::oneshot;

use super::{
    Backend, Charge, Claim, Claimed, Counters, Cursor, LinkSide, LinkWrite, Loaded, StoreError,
    Version, parse_session, session_json,
};

/// A session as stored: its record and revision.
struct Row {
    record: String,
    revision: i64,
}

/// One session's live OAuth flow.
struct Flow {
    state: Option<String>,
    record: FlowRecord,
    starts: u64,
    expires_at: Timestamp,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Row>,
    /// Pending sessions: sid → (pid, expiresAt).
    pending: HashMap<SessionId, (Pid, Timestamp)>,
    reuse: HashMap<(Pid, String), SessionId>,
    links: BTreeMap<(Pid, String), String>,
    pids: BTreeMap<Pid, PidRecord>,
    keys: HashMap<String, KeyRecord>,
    quota: HashMap<(KeyId, u64), u64>,
    waiters: HashMap<KeyId, HashMap<String, Timestamp>>,
    flows: HashMap<SessionId, Flow>,
    rate: HashMap<(String, Timestamp), u64>,
    counters: HashMap<Pid, Counters>,
    store_errors: u64,
    metrics: BTreeMap<String, u64>,
    webhooks: BTreeMap<Pid, WebhookConfig>,
    /// Outbox events per PID: member → (due ms, state).
    outbox: HashMap<Pid, BTreeMap<String, (u64, Option<OutboxState>)>>,
    /// Attempt log per PID, newest first.
    attempts: HashMap<Pid, Vec<Attempt>>,
    /// Waiters parked in `wait_change`, woken by the session's next commit.
    parked: HashMap<SessionId, Vec<oneshot::Sender<()>>>,
    /// When set, the next this many commits fail their compare (tests of the retry).
    fail_commits: usize,
}

impl State {
    fn count(&mut self, pid: &Pid) -> &mut Counters {
        self.counters.entry(pid.clone()).or_default()
    }

    /// Counts the pending sessions of `pid` whose expiry has passed, once.
    fn expire(&mut self, pid: &Pid, now: Timestamp) {
        let gone: Vec<SessionId> = self
            .pending
            .iter()
            .filter(|(_, (p, at))| p == pid && *at <= now)
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in &gone {
            if let Some((_, at)) = self.pending.remove(sid) {
                self.enqueue(pid, EventType::Expired, sid, at);
            }
        }
        self.count(pid).expired += gone.len() as u64;
    }

    /// Puts an event in the PID's outbox if its webhook wants it.
    fn enqueue(&mut self, pid: &Pid, kind: EventType, sid: &SessionId, due: Timestamp) {
        if self.webhooks.get(pid).is_some_and(|w| w.wants(kind)) {
            let member = EventKey {
                kind,
                sid: sid.clone(),
            }
            .member();
            self.outbox
                .entry(pid.clone())
                .or_default()
                .entry(member)
                .or_insert((due.as_millis(), None));
        }
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: RefCell<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` commits fail their compare, as if another writer
    /// had changed the session in between.
    pub fn fail_next_commits(&self, n: usize) {
        self.state.borrow_mut().fail_commits = n;
    }
}

impl Backend for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn lookup_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.state.borrow().keys.get(hash).cloned())
    }

    async fn load_pid(&self, pid: &Pid) -> Result<Option<PidRecord>, StoreError> {
        Ok(self.state.borrow().pids.get(pid).cloned())
    }

    async fn create_pid(&self, rec: &PidRecord) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        if s.pids.contains_key(&rec.pid) {
            return Ok(false);
        }
        s.pids.insert(rec.pid.clone(), rec.clone());
        Ok(true)
    }

    async fn issue_key(&self, hash: &str, rec: &KeyRecord) -> Result<(), StoreError> {
        self.state
            .borrow_mut()
            .keys
            .insert(hash.to_owned(), rec.clone());
        Ok(())
    }

    async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        let before = s.keys.len();
        s.keys.retain(|_, k| &k.key_id != key_id);
        s.waiters.remove(key_id);
        Ok(s.keys.len() < before)
    }

    async fn claim_reuse(
        &self,
        digest: &str,
        expected: Option<&SessionId>,
        candidate: &Session,
        charge: Option<Charge<'_>>,
        _settings: &Settings,
        now: Timestamp,
    ) -> Result<Claimed, StoreError> {
        let mut s = self.state.borrow_mut();
        let pid = &candidate.pid;
        let mut quota_count = None;
        if let Some(key) = charge.map(|c| c.key) {
            let n = s
                .quota
                .entry((key.key_id.clone(), key.quota.window_index(now)))
                .or_default();
            *n += 1;
            let n = *n;
            quota_count = Some(n);
            if !key.quota.admits(n) {
                s.count(pid).quota_rejected += 1;
                return Ok(Claimed {
                    quota_count,
                    claim: Claim::OverQuota,
                    key_mark: None,
                });
            }
        }
        s.expire(pid, now);
        let slot = (pid.clone(), digest.to_owned());
        let current = s.reuse.get(&slot).cloned();
        if current.as_ref() != expected {
            let session = match current.as_ref().and_then(|sid| s.sessions.get(sid)) {
                Some(row) => Some(parse_session(&row.record)?),
                None => None,
            };
            if current
                .as_ref()
                .is_some_and(|sid| s.pending.contains_key(sid))
                && session.is_some()
            {
                s.count(pid).reused += 1;
            }
            return Ok(Claimed {
                quota_count,
                claim: Claim::Taken {
                    sid: current,
                    session,
                },
                key_mark: None,
            });
        }
        s.reuse.insert(slot, candidate.sid.clone());
        s.sessions.insert(
            candidate.sid.clone(),
            Row {
                record: session_json(candidate),
                revision: 1,
            },
        );
        s.pending
            .insert(candidate.sid.clone(), (pid.clone(), candidate.expires_at));
        s.count(pid).created += 1;
        Ok(Claimed {
            quota_count,
            claim: Claim::Created,
            key_mark: None,
        })
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

    async fn load_session(
        &self,
        pid: Option<&Pid>,
        sid: &SessionId,
    ) -> Result<Option<Loaded>, StoreError> {
        let s = self.state.borrow();
        let Some(row) = s.sessions.get(sid) else {
            return Ok(None);
        };
        let session = parse_session(&row.record)?;
        if pid.is_some_and(|p| p != &session.pid) {
            return Ok(None);
        }
        Ok(Some(Loaded {
            session,
            version: Version::Revision(row.revision),
        }))
    }

    async fn link_of(&self, pid: &Pid, discord_id: &str) -> Result<Option<String>, StoreError> {
        let s = self.state.borrow();
        Ok(s.links.get(&(pid.clone(), discord_id.to_owned())).cloned())
    }

    async fn discord_ids_of(&self, pid: &Pid, roblox_id: &str) -> Result<Vec<String>, StoreError> {
        let s = self.state.borrow();
        Ok(s.links
            .iter()
            .filter(|((p, _), r)| p == pid && r.as_str() == roblox_id)
            .map(|((_, d), _)| d.clone())
            .collect())
    }

    async fn commit(
        &self,
        prev: &Loaded,
        next: &Session,
        link: Option<&LinkWrite>,
        _settings: &Settings,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Version::Revision(rev) = prev.version else {
            return Err(StoreError::Corrupt("a Redis version reached memory".into()));
        };
        let mut s = self.state.borrow_mut();
        if s.fail_commits > 0 {
            s.fail_commits -= 1;
            return Ok(false);
        }
        if s.sessions.get(&next.sid).map(|r| r.revision) != Some(rev) {
            return Ok(false);
        }
        if let Some(l) = link {
            let at = (next.pid.clone(), l.discord_id.clone());
            if s.links.get(&at) != l.expected_previous.as_ref() {
                return Ok(false);
            }
            s.links.insert(at, l.roblox_id.clone());
        }
        s.sessions.insert(
            next.sid.clone(),
            Row {
                record: session_json(next),
                revision: rev + 1,
            },
        );
        if s.pending.remove(&next.sid).is_some() {
            let c = s.count(&next.pid);
            let kind = match next.stored_status() {
                Status::Completed => {
                    c.completed += 1;
                    Some(EventType::Completed)
                }
                Status::Cancelled => {
                    c.cancelled += 1;
                    Some(EventType::Cancelled)
                }
                Status::Pending | Status::Expired => None,
            };
            if let Some(kind) = kind {
                s.enqueue(&next.pid, kind, &next.sid, now);
            }
        }
        for tx in s.parked.remove(&next.sid).unwrap_or_default() {
            let _ = tx.send(());
        }
        Ok(true)
    }

    async fn put_flow(
        &self,
        rec: &FlowRecord,
        state_hash: &str,
        now: Timestamp,
        ttl_ms: u64,
        max_starts: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        s.flows.retain(|_, f| f.expires_at > now);
        let starts =
            s.flows.get(&rec.sid).map_or(0, |f| f.starts) + u64::from(max_starts.is_some());
        if max_starts.is_some_and(|most| starts > most) {
            return Ok(false);
        }
        s.flows.insert(
            rec.sid.clone(),
            Flow {
                state: Some(state_hash.to_owned()),
                record: rec.clone(),
                starts,
                expires_at: now.plus_millis(ttl_ms.max(1)),
            },
        );
        Ok(true)
    }

    async fn take_flow(
        &self,
        sid: &SessionId,
        state_hash: &str,
        now: Timestamp,
    ) -> Result<Option<FlowRecord>, StoreError> {
        let mut s = self.state.borrow_mut();
        let Some(flow) = s.flows.get_mut(sid) else {
            return Ok(None);
        };
        if flow.expires_at <= now || flow.state.as_deref() != Some(state_hash) {
            return Ok(None);
        }
        flow.state = None;
        Ok(Some(flow.record.clone()))
    }

    async fn hit(
        &self,
        bucket: &str,
        window_end: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut s = self.state.borrow_mut();
        s.rate.retain(|(_, end), _| *end > now);
        let n = s.rate.entry((bucket.to_owned(), window_end)).or_default();
        *n += 1;
        Ok(*n)
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

    async fn acquire_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        max: u64,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        let leases = s.waiters.entry(key.key_id.clone()).or_default();
        leases.retain(|_, until| *until > now);
        if leases.len() as u64 >= max {
            return Ok(false);
        }
        leases.insert(waiter.to_owned(), lease_until);
        Ok(true)
    }

    async fn renew_waiter(
        &self,
        key: &KeyRecord,
        waiter: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        match s
            .waiters
            .get_mut(&key.key_id)
            .and_then(|l| l.get_mut(waiter))
        {
            Some(until) => {
                *until = lease_until;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn release_waiter(&self, key: &KeyRecord, waiter: &str) -> Result<(), StoreError> {
        if let Some(l) = self.state.borrow_mut().waiters.get_mut(&key.key_id) {
            l.remove(waiter);
        }
        Ok(())
    }

    async fn wait_change(
        &self,
        pid: &Pid,
        sid: &SessionId,
        cursor: &Cursor,
        _until: Timestamp,
        _settings: &Settings,
    ) -> Result<Option<(Session, Cursor)>, StoreError> {
        let rx = {
            let mut s = self.state.borrow_mut();
            let current = s.sessions.get(sid).map(|r| r.revision);
            if current.map(Cursor::Revision).as_ref() != Some(cursor) {
                return Ok(None);
            }
            let (tx, rx) = oneshot::channel();
            s.parked.entry(sid.clone()).or_default().push(tx);
            rx
        };
        let _ = rx.await;
        // Like SQLite: the wake-up carries no state; the caller reads again.
        let _ = pid;
        Ok(None)
    }

    async fn pids(&self) -> Result<Vec<Pid>, StoreError> {
        Ok(self.state.borrow().pids.keys().cloned().collect())
    }

    async fn list_pids(
        &self,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PidRecord>, StoreError> {
        let s = self.state.borrow();
        Ok(s.pids
            .values()
            .filter(|r| after.is_none_or(|a| r.pid > *a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn update_pid(&self, rec: &PidRecord) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        match s.pids.get_mut(&rec.pid) {
            Some(r) => {
                *r = rec.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn keys_of(&self, pid: &Pid) -> Result<Vec<KeyRecord>, StoreError> {
        let s = self.state.borrow();
        let mut keys: Vec<KeyRecord> = s.keys.values().filter(|k| &k.pid == pid).cloned().collect();
        keys.sort_by(|a, b| a.key_id.as_str().cmp(b.key_id.as_str()));
        Ok(keys)
    }

    async fn key_by_id(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let s = self.state.borrow();
        Ok(s.keys.values().find(|k| &k.key_id == key_id).cloned())
    }

    async fn update_key(&self, rec: &KeyRecord) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        match s.keys.values_mut().find(|k| k.key_id == rec.key_id) {
            Some(k) => {
                *k = rec.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn erase_links(
        &self,
        pid: &Pid,
        side: LinkSide,
        id: &str,
    ) -> Result<Vec<AccountLink>, StoreError> {
        let mut s = self.state.borrow_mut();
        let erased: Vec<AccountLink> = s
            .links
            .iter()
            .filter(|((p, d), r)| {
                p == pid
                    && match side {
                        LinkSide::Discord => d == id,
                        LinkSide::Roblox => r.as_str() == id,
                    }
            })
            .map(|((_, d), r)| AccountLink {
                discord_id: d.clone(),
                roblox_id: r.clone(),
            })
            .collect();
        for l in &erased {
            s.links.remove(&(pid.clone(), l.discord_id.clone()));
        }
        s.count(pid).links_erased += erased.len() as u64;
        Ok(erased)
    }

    async fn list_sessions(
        &self,
        pid: &Pid,
        client_id: Option<&str>,
        after: Option<&ListCursor>,
        limit: usize,
    ) -> Result<Vec<(ListCursor, Option<Session>)>, StoreError> {
        let s = self.state.borrow();
        let mut all: Vec<Session> = s
            .sessions
            .values()
            .map(|r| parse_session(&r.record))
            .collect::<Result<_, _>>()?;
        all.retain(|x| {
            x.pid == *pid
                && client_id.is_none_or(|c| x.client_id == c)
                && after.is_none_or(|a| a.is_before(x))
        });
        all.sort_by(|a, b| ListCursor::of(b).cmp(&ListCursor::of(a)));
        all.truncate(limit);
        Ok(all
            .into_iter()
            .map(|x| (ListCursor::of(&x), Some(x)))
            .collect())
    }

    async fn webhook(&self, pid: &Pid) -> Result<Option<WebhookConfig>, StoreError> {
        Ok(self.state.borrow().webhooks.get(pid).cloned())
    }

    async fn put_webhook(&self, pid: &Pid, cfg: &WebhookConfig) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        if !s.pids.contains_key(pid) {
            return Ok(false);
        }
        s.webhooks.insert(pid.clone(), cfg.clone());
        Ok(true)
    }

    async fn delete_webhook(&self, pid: &Pid) -> Result<bool, StoreError> {
        let mut s = self.state.borrow_mut();
        s.outbox.remove(pid);
        Ok(s.webhooks.remove(pid).is_some())
    }

    async fn webhook_pids(&self) -> Result<Vec<Pid>, StoreError> {
        Ok(self.state.borrow().webhooks.keys().cloned().collect())
    }

    async fn take_due(
        &self,
        pid: &Pid,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(EventKey, Option<OutboxState>)>, StoreError> {
        let mut s = self.state.borrow_mut();
        let Some(outbox) = s.outbox.get_mut(pid) else {
            return Ok(Vec::new());
        };
        let mut due: Vec<(u64, String)> = outbox
            .iter()
            .filter(|(_, (at, _))| *at <= now.as_millis())
            .map(|(m, (at, _))| (*at, m.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut out = Vec::new();
        for (_, member) in due {
            if let Some(entry) = outbox.get_mut(&member) {
                entry.0 = hold_until.as_millis();
                let key = EventKey::parse_member(&member)
                    .ok_or_else(|| StoreError::Corrupt(member.clone()))?;
                out.push((key, entry.1.clone()));
            }
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
        let mut s = self.state.borrow_mut();
        let member = key.member();
        let Some(outbox) = s.outbox.get_mut(pid) else {
            return Ok(());
        };
        if !outbox.contains_key(&member) {
            return Ok(());
        }
        match attempt.outcome {
            Outcome::Retrying => {
                let due = attempt.next_attempt_at.map_or(0, Timestamp::as_millis);
                outbox.insert(member, (due, Some(state.clone())));
            }
            Outcome::Delivered | Outcome::Failed => {
                outbox.remove(&member);
            }
        }
        let c = s.count(pid);
        c.webhook_attempts += 1;
        match attempt.outcome {
            Outcome::Delivered => c.webhooks_delivered += 1,
            Outcome::Failed => c.webhooks_failed += 1,
            Outcome::Retrying => {}
        }
        let log = s.attempts.entry(pid.clone()).or_default();
        log.insert(0, attempt.clone());
        log.truncate(dock_core::webhook::MAX_ATTEMPT_LOG);
        Ok(())
    }

    async fn attempts(&self, pid: &Pid, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        let s = self.state.borrow();
        Ok(s.attempts
            .get(pid)
            .map(|l| l.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn counters(&self, pid: &Pid, now: Timestamp) -> Result<Counters, StoreError> {
        let mut s = self.state.borrow_mut();
        s.expire(pid, now);
        let waiters = s
            .keys
            .values()
            .filter(|k| &k.pid == pid)
            .filter_map(|k| s.waiters.get(&k.key_id))
            .map(|l| l.values().filter(|until| **until > now).count() as u64)
            .sum();
        let mut c = *s.count(pid);
        c.waiters = waiters;
        Ok(c)
    }

    async fn add_metrics(&self, fields: &[(String, u64)]) -> Result<(), StoreError> {
        let mut s = self.state.borrow_mut();
        for (f, n) in fields {
            *s.metrics.entry(f.clone()).or_default() += n;
        }
        Ok(())
    }

    async fn metric_fields(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let s = self.state.borrow();
        Ok(s.metrics.iter().map(|(f, n)| (f.clone(), *n)).collect())
    }

    async fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(1)
    }

    async fn key_hash(&self, key_id: &KeyId) -> Result<Option<String>, StoreError> {
        let s = self.state.borrow();
        Ok(s.keys
            .iter()
            .find(|(_, k)| &k.key_id == key_id)
            .map(|(h, _)| h.clone()))
    }

    async fn links_page(
        &self,
        pid: &Pid,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AccountLink>, Option<String>), StoreError> {
        let s = self.state.borrow();
        let links: Vec<AccountLink> = s
            .links
            .iter()
            .filter(|((p, d), _)| p == pid && cursor.is_none_or(|c| d.as_str() > c))
            .take(limit)
            .map(|((_, d), r)| AccountLink {
                discord_id: d.clone(),
                roblox_id: r.clone(),
            })
            .collect();
        let next = (links.len() >= limit)
            .then(|| links.last().map(|l| l.discord_id.clone()))
            .flatten();
        Ok((links, next))
    }

    async fn put_link(&self, pid: &Pid, link: &AccountLink) -> Result<(), StoreError> {
        self.state.borrow_mut().links.insert(
            (pid.clone(), link.discord_id.clone()),
            link.roblox_id.clone(),
        );
        Ok(())
    }

    async fn quota_count(&self, key: &KeyRecord, window: u64) -> Result<u64, StoreError> {
        let s = self.state.borrow();
        Ok(s.quota
            .get(&(key.key_id.clone(), window))
            .copied()
            .unwrap_or(0))
    }

    async fn raise_quota(
        &self,
        key: &KeyRecord,
        window: u64,
        count: u64,
        _expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state.borrow_mut();
        let n = s.quota.entry((key.key_id.clone(), window)).or_insert(0);
        *n = (*n).max(count);
        Ok(())
    }

    async fn store_errors(&self) -> Result<u64, StoreError> {
        Ok(self.state.borrow().store_errors)
    }

    async fn add_store_errors(&self, n: u64) -> Result<(), StoreError> {
        self.state.borrow_mut().store_errors += n;
        Ok(())
    }
}
