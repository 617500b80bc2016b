//! Every Redis key the store uses, built here and nowhere else.
//!
//! Every key of a PID carries the hash tag `{pid}`, so all keys a script
//! touches share one Redis Cluster slot.
//!
//! | key | type | holds | lifetime |
//! |---|---|---|---|
//! | `dock:{P}:s:<sid>` | string | the session record (core's JSON) | expiry + retention, then retention once terminal |
//! | `dock:{P}:e:<sid>` | stream | one entry (`status`, `session`: the record after the change) per change; a revoked key's waiters get a `revoked` entry (no `session`); waiters `XREAD BLOCK` on it (from `0-0` while it does not exist). Not written at create: a pending session has none | 60 s after the change |
//! | `dock:{P}:r:<digest>` | string | sid of the live session for (clientId, guildId) | until the session's expiry |
//! | `dock:{P}:l` | hash | link dataset: discordId → robloxId | forever |
//! | `dock:{P}:lr:<robloxId>` | set | reverse index: Discord ids linked to a Roblox id | forever |
//! | `dock:{P}:meta` | string | the PID record | forever |
//! | `dock:{P}:q:<keyId>:<window>` | string | create counter of a quota window | until the window ends |
//! | `dock:{P}:km:<keyId>` | string | the key's mark: `<n>`, a counter raised each time its record is written again, `r<n>` once it is revoked (set before the record is deleted); a create with a cached key record proceeds only while the mark is the one the cache saw, and no create proceeds under a revoked mark | forever; revoked: a day (longer than any cache entry) |
//! | `dock:{P}:w:<keyId>` | sorted set | open waiters of a key (member: waiter id `<sid>.<token>`, score: lease end); when the key is revoked, each waiter's session feed gets a `revoked` notice (the waiter wakes, confirms its lease, finds it gone) and the set is deleted | while any waiter holds a lease |
//! | `dock:{P}:p` | sorted set | pending sessions (member: sid, score: `expiresAt` ms); those past their score are counted expired and removed | while pending |
//! | `dock:{P}:stats` | hash | the PID's counters: `created`, `reused`, `completed`, `cancelled`, `expired`, `quota_rejected` | forever |
//! | `dock:{P}:keys` | set | ids of the keys issued to the PID (to find its waiter sets) | forever |
//! | `dock:{P}:ix` | sorted set | the session listing: sid by creation time (ms); trimmed by each create to the sessions that may still be stored, entries of gone records removed when a listing meets them | as its sessions |
//! | `dock:{P}:ixc:<digest>` | sorted set | the same, of one client (`digest`: core's `client_digest` of the clientId) | as its sessions |
//! | `dock:{P}:wh` | hash | the PID's webhook: `config` (core's `WebhookConfig` JSON, secrets included), `events` (` <type> <type> `, what scripts match) | until deleted |
//! | `dock:{P}:ob` | sorted set | the webhook outbox: events to deliver (member `<type>\|<sid>`, score: when due, ms), added in the script that makes the change; a dispatcher that takes one pushes its score past its attempt | until delivered or failed |
//! | `dock:{P}:obs` | hash | delivery state of outbox events that were attempted (member → `OutboxState` JSON: attempts, first attempt, the body sent) | as the event |
//! | `dock:{P}:wha` | list | the PID's last 200 delivery attempts (core's `Attempt` JSON), newest first | forever (capped) |
//! | `dock:webhooks` | set | the PIDs with a webhook (what a dispatch visits) | forever |
//! | `dock:pids` | set | every PID (the stats endpoint sums over it) | forever |
//! | `dock:stats` | hash | service-wide `store_errors` (flushed by instances that saw errors) | forever |
//! | `dock:metrics` | hash | service-wide sums of the request latency histograms (`route\|method\|class\|count`, `…\|sum_ms`, `…\|b<i>`), added by each instance every `metrics_flush_seconds` | forever (bounded: one field set per route, method and status class) |
//! | `dock:sid:<sid>` | string | the PID of a session (admin completion by sid) | as the session |
//! | `dock:key:<sha256>` | string | API key record, by the hash of its secret | until revoked |
//! | `dock:keyid:<keyId>` | string | the hash, for revocation | until revoked |
//! | `dock:flow:{<sid>}` | hash | the session's live OAuth flow: `state` (hash of the state's token), `record`, `starts`; a new start replaces it, a callback takes it once | until the session expires |
//! | `dock:rl:<client>:<window end>` | string | the public flow endpoints' request count of one client address in one minute | until the window ends |
//!

use dock_core::{KeyId, Pid, SessionId, Timestamp};

/// The prefix (with hash tag) of every key of a PID.
fn tag(pid: &Pid) -> String {
    format!("dock:{{{pid}}}")
}

/// The session record.
pub fn session(pid: &Pid, sid: &SessionId) -> String {
    format!("{}:s:{sid}", tag(pid))
}

/// What [`session`] starts with (scripts append a sid).
pub fn session_prefix(pid: &Pid) -> String {
    format!("{}:s:", tag(pid))
}

/// The session's change feed.
pub fn events(pid: &Pid, sid: &SessionId) -> String {
    format!("{}:e:{sid}", tag(pid))
}

/// What [`events`] starts with (the revoke script appends session ids).
pub fn events_prefix(pid: &Pid) -> String {
    format!("{}:e:", tag(pid))
}

/// The reuse slot of (clientId, guildId, expectedDiscordId).
pub fn reuse(pid: &Pid, digest: &str) -> String {
    format!("{}:r:{digest}", tag(pid))
}

/// The link dataset.
pub fn links(pid: &Pid) -> String {
    format!("{}:l", tag(pid))
}

/// The reverse link index of one Roblox id.
pub fn roblox(pid: &Pid, roblox_id: &str) -> String {
    format!("{}:lr:{roblox_id}", tag(pid))
}

/// What [`roblox`] starts with (the erasure script appends a Roblox id).
pub fn roblox_prefix(pid: &Pid) -> String {
    format!("{}:lr:", tag(pid))
}

/// The PID record.
pub fn meta(pid: &Pid) -> String {
    format!("{}:meta", tag(pid))
}

/// A key's create counter in quota window `window`.
pub fn quota(pid: &Pid, key_id: &KeyId, window: u64) -> String {
    format!("{}:q:{key_id}:{window}", tag(pid))
}

/// A key's mark: changed (by `mark_key.lua`) whenever the key's record
/// changes, and revoked before the record is deleted, so that a create can
/// check, inside its own script, that an instance's cached copy of the
/// record still holds.
pub fn key_mark(pid: &Pid, key_id: &KeyId) -> String {
    format!("{}:km:{key_id}", tag(pid))
}

/// A placeholder in the mark's place when a create is not charged.
pub fn key_mark_uncharged(pid: &Pid) -> String {
    format!("{}:km:-", tag(pid))
}

/// A placeholder in the counter's place when a create is not charged (a
/// script's key list has a fixed shape; the script does not touch it).
pub fn quota_uncharged(pid: &Pid) -> String {
    format!("{}:q:-", tag(pid))
}

/// A key's waiter leases.
pub fn waiters(pid: &Pid, key_id: &KeyId) -> String {
    format!("{}:w:{key_id}", tag(pid))
}

/// What [`waiters`] starts with (the stats script appends key ids).
pub fn waiters_prefix(pid: &Pid) -> String {
    format!("{}:w:", tag(pid))
}

/// The PID's pending sessions by expiry.
pub fn pending(pid: &Pid) -> String {
    format!("{}:p", tag(pid))
}

/// The PID's counters.
pub fn stats(pid: &Pid) -> String {
    format!("{}:stats", tag(pid))
}

/// The ids of the keys issued to the PID.
pub fn key_ids(pid: &Pid) -> String {
    format!("{}:keys", tag(pid))
}

/// The channel every change of the PID's sessions is published on.
pub fn channel(pid: &Pid) -> String {
    format!("{}:events", tag(pid))
}

/// The PID's session listing.
pub fn listing(pid: &Pid) -> String {
    format!("{}:ix", tag(pid))
}

/// One client's session listing.
pub fn client_listing(pid: &Pid, client_id: &str) -> String {
    format!(
        "{}:ixc:{}",
        tag(pid),
        dock_core::listing::client_digest(client_id)
    )
}

/// The PID's webhook.
pub fn webhook(pid: &Pid) -> String {
    format!("{}:wh", tag(pid))
}

/// The PID's webhook outbox.
pub fn outbox(pid: &Pid) -> String {
    format!("{}:ob", tag(pid))
}

/// Delivery state of the outbox's attempted events.
pub fn outbox_state(pid: &Pid) -> String {
    format!("{}:obs", tag(pid))
}

/// The PID's recent delivery attempts.
pub fn attempts(pid: &Pid) -> String {
    format!("{}:wha", tag(pid))
}

/// The PIDs with a webhook.
pub const WEBHOOK_PIDS: &str = "dock:webhooks";

/// The set of all PIDs.
pub const PIDS: &str = "dock:pids";

/// The key layout's version (`SCHEMA_VERSION`), recorded on first read.
pub const SCHEMA: &str = "dock:schema";

/// The service-wide sums of the request metrics instances record.
pub const METRICS: &str = "dock:metrics";

/// The service-wide counters (not per PID).
pub const GLOBAL_STATS: &str = "dock:stats";

/// The PID of a session, by sid (admin completion by sid).
pub fn sid_index(sid: &SessionId) -> String {
    format!("dock:sid:{sid}")
}

/// An API key record, by the hash of its secret.
pub fn key(hash: &str) -> String {
    format!("dock:key:{hash}")
}

/// The hash of a key's secret, by key id (revocation).
pub fn key_id(key_id: &KeyId) -> String {
    format!("dock:keyid:{key_id}")
}

/// A session's live OAuth flow (hash tag: the sid).
pub fn flow(sid: &SessionId) -> String {
    format!("dock:flow:{{{sid}}}")
}

/// A client address's public-flow request count in the window ending at `window_end`.
pub fn rate(bucket: &str, window_end: Timestamp) -> String {
    format!("dock:rl:{bucket}:{}", window_end.as_millis())
}
