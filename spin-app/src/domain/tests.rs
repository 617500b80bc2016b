//! Every domain rule, natively, against the in-memory backend, with
//! simulated time: `cargo test -p dock-spin-app`.
//!
//! The scenarios are written against `impl Backend`, so the same table can
//! run on any store.

use dock_core::quota::Quota;
use dock_core::request::{CreateSessionRequest, PageQuery, PatchKeyRequest};
use dock_core::wire::{KeyInfo, KeyRecord, PidRecord};
use dock_core::{ErrorCode, KeyId, Pid, SessionId, Settings, Status, Timestamp};

use super::*;
use crate::store::memory::MemoryStore;
use crate::store::{Backend, Counters, LinkSide, stats};

const T0: u64 = 1_800_000_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_millis(T0 + secs * 1000)
}

fn settings() -> Settings {
    Settings::from_lookup(|_| None).expect("default settings")
}

fn pid(p: &str) -> Pid {
    Pid::parse(p).expect("pid")
}

fn sid(n: u8) -> SessionId {
    SessionId::from_entropy([n; 16])
}

fn key(p: &str, limit: u64) -> KeyRecord {
    KeyRecord {
        key_id: KeyId::from_entropy([p.len() as u8; 16]),
        pid: pid(p),
        quota: Quota {
            limit,
            window_secs: 60,
        },
        created_at: at(0),
    }
}

fn request(p: &str, client: &str, guild: Option<&str>) -> CreateSessionRequest {
    CreateSessionRequest {
        pid: pid(p),
        client_id: client.to_owned(),
        guild_id: guild.map(str::to_owned),
        expected_discord_id: None,
        display_label: None,
    }
}

/// Seeds PID `app` with a key of quota `limit`.
async fn seed(store: &impl Backend, limit: u64) -> KeyRecord {
    let k = key("app", limit);
    store
        .create_pid(&PidRecord {
            pid: pid("app"),
            name: "App".into(),
            created_at: at(0),
        })
        .await
        .unwrap();
    store.issue_key("hash-app", &k).await.unwrap();
    k
}

async fn counters(store: &impl Backend, now: Timestamp) -> Counters {
    stats(store, Some(&pid("app")), now).await.unwrap().counters
}

async fn a_create_makes_a_pending_session_with_the_quota_left(store: &impl Backend) {
    let k = seed(store, 5).await;
    let s = settings();
    let c = create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    assert!(!c.reused);
    assert_eq!(c.session.sid, sid(1));
    assert_eq!(c.remaining, Some(4));
    assert_eq!(c.session.status_at(at(0)), Status::Pending);
    assert_eq!(c.session.expires_at, at(s.session_ttl_secs));
    assert_eq!(counters(store, at(0)).await.created, 1);
}

async fn the_same_triple_reuses_the_live_session_without_extending_it(store: &impl Backend) {
    let k = seed(store, 5).await;
    let s = settings();
    let first = create(
        store,
        &k,
        request("app", "u1", Some("g")),
        sid(1),
        &s,
        at(0),
    )
    .await
    .unwrap();
    let again = create(
        store,
        &k,
        request("app", "u1", Some("g")),
        sid(2),
        &s,
        at(10),
    )
    .await
    .unwrap();
    assert!(again.reused);
    assert_eq!(again.session.sid, first.session.sid);
    assert_eq!(again.session.expires_at, first.session.expires_at);
    // Charged all the same.
    assert_eq!(again.remaining, Some(3));
    let c = counters(store, at(10)).await;
    assert_eq!((c.created, c.reused), (1, 1));
}

async fn another_guild_client_or_expected_discord_id_gets_its_own_session(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    let base = create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    let guild = create(
        store,
        &k,
        request("app", "u1", Some("g")),
        sid(2),
        &s,
        at(0),
    )
    .await
    .unwrap();
    let client = create(store, &k, request("app", "u2", None), sid(3), &s, at(0))
        .await
        .unwrap();
    let mut bound = request("app", "u1", None);
    bound.expected_discord_id = Some("123".into());
    let bound = create(store, &k, bound, sid(4), &s, at(0)).await.unwrap();
    let sids = [base, guild, client, bound].map(|c| (c.session.sid, c.reused));
    assert_eq!(
        sids,
        [
            (sid(1), false),
            (sid(2), false),
            (sid(3), false),
            (sid(4), false)
        ]
    );
}

async fn a_key_cannot_create_in_another_pid(store: &impl Backend) {
    let k = seed(store, 5).await;
    let s = settings();
    let e = create(store, &k, request("other", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PidNotFound);
    assert_eq!(counters(store, at(0)).await, Counters::default());
}

async fn creates_past_the_quota_are_refused_until_the_window_ends(store: &impl Backend) {
    let k = seed(store, 2).await;
    let s = settings();
    for n in 1..=2 {
        create(store, &k, request("app", "u1", None), sid(n), &s, at(1))
            .await
            .unwrap();
    }
    let e = create(store, &k, request("app", "u1", None), sid(3), &s, at(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    // The window is the minute [T0, T0+60s): 59 s left at T0+1s.
    assert_eq!(e.retry_after_secs(), Some(59));
    assert_eq!(counters(store, at(1)).await.quota_rejected, 1);
    // The next window admits again.
    let c = create(store, &k, request("app", "u9", None), sid(4), &s, at(60))
        .await
        .unwrap();
    assert_eq!(c.remaining, Some(1));
}

async fn an_expired_session_is_counted_once_and_never_reused(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    let ttl = s.session_ttl_secs;
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    let later = create(store, &k, request("app", "u1", None), sid(2), &s, at(ttl))
        .await
        .unwrap();
    assert!(!later.reused);
    assert_eq!(later.session.sid, sid(2));
    let c = counters(store, at(ttl + 1)).await;
    assert_eq!((c.created, c.expired, c.reused), (2, 1, 0));
    // Counted once, however often stats are read.
    assert_eq!(counters(store, at(ttl + 2)).await.expired, 1);
}

async fn cancel_ends_a_pending_session_once(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    let done = cancel(store, &k.pid, &sid(1), &s, at(5)).await.unwrap();
    assert_eq!(done.status_at(at(5)), Status::Cancelled);
    let again = cancel(store, &k.pid, &sid(1), &s, at(6)).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::SessionCancelled);
    assert_eq!(counters(store, at(6)).await.cancelled, 1);
    // A cancelled session is not reused.
    let next = create(store, &k, request("app", "u1", None), sid(2), &s, at(7))
        .await
        .unwrap();
    assert!(!next.reused);
}

async fn cancel_and_complete_see_only_their_pid(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    let other = pid("other");
    let e = cancel(store, &other, &sid(1), &s, at(1)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionNotFound);
    let e = complete(store, Some(&other), &sid(1), "1", "2", &s, at(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionNotFound);
    // The admin API (no PID) finds it.
    complete(store, None, &sid(1), "1", "2", &s, at(1))
        .await
        .unwrap();
}

async fn completion_writes_the_link_and_reports_a_changed_link(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    for (n, client) in [(1, "u1"), (2, "u2")] {
        create(store, &k, request("app", client, None), sid(n), &s, at(0))
            .await
            .unwrap();
    }
    let first = complete(store, Some(&k.pid), &sid(1), "111", "900", &s, at(1))
        .await
        .unwrap();
    let r = first.result.unwrap();
    assert!(!r.link_changed);
    assert_eq!(r.previous_roblox_id, None);
    // The same Discord user verifies another Roblox account.
    let second = complete(store, Some(&k.pid), &sid(2), "111", "901", &s, at(2))
        .await
        .unwrap();
    let r = second.result.unwrap();
    assert!(r.link_changed);
    assert_eq!(r.previous_roblox_id.as_deref(), Some("900"));
    assert_eq!(
        store.link_of(&k.pid, "111").await.unwrap().as_deref(),
        Some("901")
    );
    assert_eq!(
        store.discord_ids_of(&k.pid, "901").await.unwrap(),
        vec!["111"]
    );
    assert!(
        store
            .discord_ids_of(&k.pid, "900")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(counters(store, at(3)).await.completed, 2);
}

async fn completion_is_idempotent_for_the_same_result_and_refuses_another(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    let first = complete(store, None, &sid(1), "111", "900", &s, at(1))
        .await
        .unwrap();
    let again = complete(store, None, &sid(1), "111", "900", &s, at(2))
        .await
        .unwrap();
    assert_eq!(again.result, first.result);
    let e = complete(store, None, &sid(1), "111", "902", &s, at(3))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::CompletionConflict);
    assert_eq!(counters(store, at(3)).await.completed, 1);
}

async fn an_expired_or_cancelled_session_cannot_complete(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    let ttl = s.session_ttl_secs;
    for (n, client) in [(1, "u1"), (2, "u2")] {
        create(store, &k, request("app", client, None), sid(n), &s, at(0))
            .await
            .unwrap();
    }
    let e = complete(store, None, &sid(1), "1", "2", &s, at(ttl))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    cancel(store, &k.pid, &sid(2), &s, at(1)).await.unwrap();
    let e = complete(store, None, &sid(2), "1", "2", &s, at(2))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionCancelled);
    // Nothing was linked.
    assert_eq!(store.link_of(&k.pid, "1").await.unwrap(), None);
}

async fn a_lost_compare_is_retried_and_endless_contention_is_a_503(store: &MemoryStore) {
    let k = seed(store, 10).await;
    let s = settings();
    for (n, client) in [(1, "u1"), (2, "u2")] {
        create(store, &k, request("app", client, None), sid(n), &s, at(0))
            .await
            .unwrap();
    }
    store.fail_next_commits(MAX_CAS_ATTEMPTS - 1);
    cancel(store, &k.pid, &sid(1), &s, at(1)).await.unwrap();
    store.fail_next_commits(MAX_CAS_ATTEMPTS);
    let e = complete(store, None, &sid(2), "1", "2", &s, at(1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::StoreUnavailable);
    assert_eq!(e.retry_after_secs(), Some(1));
}

async fn a_key_holds_at_most_its_waiter_leases_and_lapsed_ones_free_slots(store: &impl Backend) {
    let k = seed(store, 10).await;
    let mut s = settings();
    s.max_streams_per_key = 2;
    assert!(
        acquire_waiter(store, &k, "w1", &s, at(0), at(30))
            .await
            .unwrap()
    );
    assert!(
        acquire_waiter(store, &k, "w2", &s, at(0), at(60))
            .await
            .unwrap()
    );
    assert!(
        !acquire_waiter(store, &k, "w3", &s, at(1), at(31))
            .await
            .unwrap()
    );
    let e = too_many_waiters(&s);
    assert_eq!(e.code(), ErrorCode::TooManyStreams);
    assert_eq!(e.retry_after_secs(), Some(1));
    assert_eq!(counters(store, at(1)).await.waiters, 2);
    // w1's lease lapses at 30 s: its slot is free.
    assert!(
        acquire_waiter(store, &k, "w3", &s, at(30), at(90))
            .await
            .unwrap()
    );
    // A release frees a slot at once.
    store.release_waiter(&k, "w2").await.unwrap();
    assert!(
        acquire_waiter(store, &k, "w4", &s, at(31), at(90))
            .await
            .unwrap()
    );
}

async fn revoking_a_key_ends_its_leases(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    assert!(
        acquire_waiter(store, &k, "w1", &s, at(0), at(30))
            .await
            .unwrap()
    );
    assert!(store.renew_waiter(&k, "w1", at(45)).await.unwrap());
    assert!(store.revoke_key(&k.key_id).await.unwrap());
    assert!(!store.renew_waiter(&k, "w1", at(60)).await.unwrap());
    assert_eq!(store.lookup_key("hash-app").await.unwrap(), None);
    assert!(!store.revoke_key(&k.key_id).await.unwrap());
}

async fn a_waiter_wakes_at_the_commit_that_changes_its_session(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    let (_, cursor) = store
        .read_with_cursor(&k.pid, &sid(1))
        .await
        .unwrap()
        .unwrap();
    let one = sid(1);
    let wait = store.wait_change(&k.pid, &one, &cursor, at(25), &s);
    let complete = async {
        complete(store, None, &sid(1), "1", "2", &s, at(1))
            .await
            .unwrap()
    };
    let (woke, view) = futures::join!(wait, complete);
    // Redis's wake-up carries the new state; the others say "read again".
    if let Some((carried, _)) = woke.unwrap() {
        assert_eq!(carried.status_at(at(2)), Status::Completed);
    }
    assert_eq!(view.status, Status::Completed);
    let (now, _) = store
        .read_with_cursor(&k.pid, &sid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.status_at(at(2)), Status::Completed);
}

async fn stats_sum_every_pid(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    let other = key("other", 10);
    store
        .create_pid(&PidRecord {
            pid: pid("other"),
            name: "Other".into(),
            created_at: at(0),
        })
        .await
        .unwrap();
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    create(
        store,
        &other,
        request("other", "u1", None),
        sid(2),
        &s,
        at(0),
    )
    .await
    .unwrap();
    store.add_store_errors(3).await.unwrap();
    let all = stats(store, None, at(1)).await.unwrap();
    assert_eq!(
        (all.pids, all.counters.created, all.store_errors),
        (2, 2, 3)
    );
    let one = stats(store, Some(&pid("other")), at(1)).await.unwrap();
    assert_eq!((one.pids, one.counters.created), (1, 1));
}

// Every scenario runs on the in-memory store, on SQLite (the component's own
// statements through a native connection) and on Redis (its Lua scripts, on
// a redis-server each test starts): the stores must agree with each other
// on every rule, and the rules hold whichever one runs them.
crate::store::native::on_every_store! {
    a_create_makes_a_pending_session_with_the_quota_left,
    the_same_triple_reuses_the_live_session_without_extending_it,
    another_guild_client_or_expected_discord_id_gets_its_own_session,
    a_key_cannot_create_in_another_pid,
    creates_past_the_quota_are_refused_until_the_window_ends,
    an_expired_session_is_counted_once_and_never_reused,
    cancel_ends_a_pending_session_once,
    cancel_and_complete_see_only_their_pid,
    completion_writes_the_link_and_reports_a_changed_link,
    completion_is_idempotent_for_the_same_result_and_refuses_another,
    an_expired_or_cancelled_session_cannot_complete,
    a_key_holds_at_most_its_waiter_leases_and_lapsed_ones_free_slots,
    revoking_a_key_ends_its_leases,
    a_waiter_wakes_at_the_commit_that_changes_its_session,
    stats_sum_every_pid,
    tenants_are_listed_a_page_at_a_time_and_renamed,
    keys_are_listed_without_secrets_and_their_quota_changes,
    erasure_removes_both_lookup_directions_and_is_counted,
    request_metrics_from_instances_add_up,
}

// Needs a store that can be told to lose compares.
#[test]
fn a_lost_compare_is_retried_and_endless_contention_is_a_503_on_memory() {
    futures::executor::block_on(a_lost_compare_is_retried_and_endless_contention_is_a_503(
        &MemoryStore::new(),
    ));
}

async fn tenants_are_listed_a_page_at_a_time_and_renamed(store: &impl Backend) {
    seed(store, 10).await;
    for p in ["zeta", "beta", "alpha"] {
        store
            .create_pid(&PidRecord {
                pid: pid(p),
                name: p.to_uppercase(),
                created_at: at(0),
            })
            .await
            .unwrap();
    }
    let page = |limit, cursor: Option<&str>| PageQuery {
        limit,
        cursor: cursor.map(str::to_owned),
    };
    let first = list_pids(store, &page(2, None)).await.unwrap();
    let names: Vec<&str> = first.pids.iter().map(|r| r.pid.as_str()).collect();
    assert_eq!(names, ["alpha", "app"]);
    assert_eq!(first.next_cursor.as_deref(), Some("app"));
    let second = list_pids(store, &page(2, first.next_cursor.as_deref()))
        .await
        .unwrap();
    let names: Vec<&str> = second.pids.iter().map(|r| r.pid.as_str()).collect();
    assert_eq!(names, ["beta", "zeta"]);
    assert_eq!(second.next_cursor, None, "an exact last page says so");
    let e = list_pids(store, &page(2, Some("not a pid!")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidQuery);

    let renamed = rename_pid(store, &pid("beta"), "Beta Bot".into())
        .await
        .unwrap();
    assert_eq!(renamed.name, "Beta Bot");
    assert_eq!(renamed.created_at, at(0));
    assert_eq!(
        super::pid(store, &pid("beta")).await.unwrap().name,
        "Beta Bot"
    );
    let e = rename_pid(store, &pid("nobody"), "x".into())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PidNotFound);
}

async fn keys_are_listed_without_secrets_and_their_quota_changes(store: &impl Backend) {
    let k = seed(store, 2).await;
    let s = settings();
    let listed = keys_of(store, &k.pid).await.unwrap();
    assert_eq!(listed.keys, vec![KeyInfo::from(k.clone())]);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains("hash-app"));
    // Two creates use up the quota of 2; raising it to 3 admits one more.
    for n in 1..=2 {
        create(store, &k, request("app", "u", None), sid(n), &s, at(1))
            .await
            .unwrap();
    }
    let patch = PatchKeyRequest {
        limit: Some(3),
        window_secs: None,
    };
    let changed = patch_key(store, &k.key_id, &patch).await.unwrap();
    assert_eq!((changed.quota.limit, changed.quota.window_secs), (3, 60));
    // What an API request would now authenticate as.
    let current = store.lookup_key("hash-app").await.unwrap().unwrap();
    assert_eq!(current.quota.limit, 3);
    let c = create(
        store,
        &current,
        request("app", "u", None),
        sid(3),
        &s,
        at(2),
    )
    .await
    .unwrap();
    assert_eq!(c.remaining, Some(0));
    store.revoke_key(&k.key_id).await.unwrap();
    let e = patch_key(store, &k.key_id, &patch).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyNotFound);
    assert!(keys_of(store, &k.pid).await.unwrap().keys.is_empty());
}

async fn erasure_removes_both_lookup_directions_and_is_counted(store: &impl Backend) {
    let k = seed(store, 10).await;
    let s = settings();
    // 111 → 900, 222 → 900, 333 → 901.
    for (n, (d, r)) in [("111", "900"), ("222", "900"), ("333", "901")]
        .into_iter()
        .enumerate()
    {
        let n = n as u8 + 1;
        create(store, &k, request("app", d, None), sid(n), &s, at(0))
            .await
            .unwrap();
        complete(store, None, &sid(n), d, r, &s, at(1))
            .await
            .unwrap();
    }
    let gone = erase_links(store, &k.pid, LinkSide::Roblox, "900")
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = gone
        .erased
        .iter()
        .map(|l| (l.discord_id.as_str(), l.roblox_id.as_str()))
        .collect();
    assert_eq!(pairs, [("111", "900"), ("222", "900")]);
    assert!(
        store
            .discord_ids_of(&k.pid, "900")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.link_of(&k.pid, "111").await.unwrap(), None);
    let gone = erase_links(store, &k.pid, LinkSide::Discord, "333")
        .await
        .unwrap();
    assert_eq!(gone.erased.len(), 1);
    assert!(
        store
            .discord_ids_of(&k.pid, "901")
            .await
            .unwrap()
            .is_empty()
    );
    // Nothing left to erase: an empty answer, not an error; nothing counted.
    let none = erase_links(store, &k.pid, LinkSide::Discord, "333")
        .await
        .unwrap();
    assert!(none.erased.is_empty());
    assert_eq!(counters(store, at(2)).await.links_erased, 3);
    let e = erase_links(store, &k.pid, LinkSide::Discord, "abc")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidField);
    let e = erase_links(store, &pid("nobody"), LinkSide::Discord, "1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PidNotFound);
    // A relink after erasure is a fresh link, not a change.
    create(
        store,
        &k,
        request("app", "111", Some("g")),
        sid(9),
        &s,
        at(3),
    )
    .await
    .unwrap();
    let again = complete(store, None, &sid(9), "111", "905", &s, at(4))
        .await
        .unwrap();
    assert!(!again.result.unwrap().link_changed);
}

async fn request_metrics_from_instances_add_up(store: &impl Backend) {
    use dock_core::metrics::{Recorder, Series, parse_fields};
    let series = Series::of("/api/v1/verify/session", "POST", 200);
    for ms in [3, 70] {
        // Two instances, each adding what it recorded.
        let mut r = Recorder::default();
        r.record(series.clone(), ms);
        store.add_metrics(&r.drain()).await.unwrap();
    }
    store.add_metrics(&[]).await.unwrap();
    let fields = store.metric_fields().await.unwrap();
    let h = &parse_fields(fields.iter().map(|(f, n)| (f.as_str(), *n)))[&series];
    assert_eq!(
        (h.count, h.sum_ms, h.buckets[0], h.buckets[4]),
        (2, 73, 1, 1)
    );
}
