//! Every domain rule, natively, against the in-memory backend, with
//! simulated time: `cargo test -p dock-spin-app`.
//!
//! The scenarios are written against `impl Backend`, so the same table can
//! run on any store.

use dock_core::quota::Quota;
use dock_core::request::{CreateSessionRequest, PageQuery, PatchKeyRequest, PatchPidRequest};
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
        return_url: None,
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
            return_origins: Vec::new(),
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
            return_origins: Vec::new(),
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
    a_webhook_event_is_retried_until_delivered_once_with_one_id_and_body,
    webhook_events_follow_the_subscription_and_unobserved_expiries,
    a_webhook_event_fails_after_a_day_of_retries,
    a_drain_attempts_a_bounded_batch_of_one_pid_and_sweeps_its_expiries,
    webhooks_are_set_shown_without_secret_rotated_and_deleted,
    sessions_are_listed_newest_first_a_page_at_a_time_per_pid,
    a_return_url_must_be_on_a_registered_origin,
    an_export_moves_to_any_store_and_imports_again_without_change,
}

// Redis pushes revocations: a revoked key's waits return at once, through
// a notice (no state) on each waited-on session's change feed, and the
// lease renewal (a held stream's one command a minute) then finds it gone.
#[test]
fn revoking_a_key_wakes_its_waiters_on_redis() {
    let server = crate::store::native::TestRedis::start();
    crate::store::native::runtime().block_on(async {
        let store = server.store().await;
        let store = &store;
        let k = seed(store, 10).await;
        let s = settings();
        let now = crate::env::now();
        create(store, &k, request("app", "u1", None), sid(1), &s, now)
            .await
            .unwrap();
        let w = dock_core::waiter::waiter_id(&sid(1), [9; 32]);
        let until = now.plus_secs(90);
        let renew = async |secs| {
            store
                .renew_waiter(&k, &w, until.plus_secs(secs))
                .await
                .unwrap()
        };
        let read = async || {
            store
                .read_with_cursor(&k.pid, &sid(1))
                .await
                .unwrap()
                .unwrap()
        };
        assert!(acquire_waiter(store, &k, &w, &s, now, until).await.unwrap());
        assert!(renew(1).await);
        // The same end again: still there (ZADD answers 0, the score says so).
        assert!(renew(1).await);
        let (_, cursor) = read().await;
        let one = sid(1);
        let started = std::time::Instant::now();
        let wait = store.wait_change(&k.pid, &one, &cursor, now.plus_secs(20), &s);
        let revoke = async { store.revoke_key(&k.key_id).await.unwrap() };
        let (woke, revoked) = futures::join!(wait, revoke);
        assert!(revoked);
        assert_eq!(woke.unwrap(), None, "a notice carries no state");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(!renew(2).await);
        // The notice moved the feed: a read from the new cursor waits again.
        let (again, cursor2) = read().await;
        assert_ne!(cursor2, cursor);
        assert_eq!(again.status_at(now), Status::Pending);
    });
}

// Redis checks an instance's cached key record inside the create's script:
// the key's mark changes with every change of its record and before its
// revocation, so a cached copy never creates past either; a key id issued
// again (an import) gets a mark no cached copy holds.
#[test]
fn a_cached_key_record_creates_only_while_its_mark_holds_on_redis() {
    let server = crate::store::native::TestRedis::start();
    crate::store::native::runtime().block_on(async {
        let store = server.store().await;
        let store = &store;
        let k = seed(store, 10).await;
        let s = settings();
        let mut n = 0u8;
        let mut with = async |key: &KeyRecord, mark: Option<&str>| {
            n += 1;
            create_with_cached_key(
                store,
                key,
                mark,
                request("app", &format!("u{n}"), None),
                sid(n),
                &s,
                at(1),
            )
            .await
            .unwrap()
        };
        let done = |o: CreateOutcome| match o {
            CreateOutcome::Done(c) => c,
            CreateOutcome::KeyChanged => panic!("refused as changed"),
        };
        // A create that read the key reports the mark to cache it at.
        let first = done(with(&k, None).await);
        let mark = first
            .key_mark
            .clone()
            .expect("Redis reports the key's mark");
        assert_eq!(first.remaining, Some(9));
        // The cached copy at that mark creates, and is counted.
        assert_eq!(done(with(&k, Some(&mark)).await).remaining, Some(8));
        // A stale mark creates nothing and counts nothing.
        assert!(matches!(
            with(&k, Some("7")).await,
            CreateOutcome::KeyChanged
        ));
        // A quota change moves the mark: the old copy is refused.
        let patch = PatchKeyRequest {
            limit: Some(20),
            window_secs: None,
        };
        patch_key(store, &k.key_id, &patch).await.unwrap();
        assert!(matches!(
            with(&k, Some(&mark)).await,
            CreateOutcome::KeyChanged
        ));
        let current = store.lookup_key("hash-app").await.unwrap().unwrap();
        let again = done(with(&current, None).await);
        assert_eq!(
            again.remaining,
            Some(17),
            "three creates counted, no refused one"
        );
        let mark2 = again.key_mark.clone().unwrap();
        assert_ne!(mark2, mark);
        assert_eq!(done(with(&current, Some(&mark2)).await).remaining, Some(16));
        // Revocation: neither a cached copy nor a record read just before it creates.
        store.revoke_key(&k.key_id).await.unwrap();
        assert!(matches!(
            with(&current, Some(&mark2)).await,
            CreateOutcome::KeyChanged
        ));
        assert!(matches!(
            with(&current, None).await,
            CreateOutcome::KeyChanged
        ));
        let e = create(
            store,
            &current,
            request("app", "late", None),
            sid(99),
            &s,
            at(1),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unauthorized);
        // The same key id issued again under another secret (an import) creates.
        store.issue_key("hash-app-2", &current).await.unwrap();
        let reissued = done(with(&current, None).await);
        let mark3 = reissued.key_mark.unwrap();
        assert!(![mark.as_str(), mark2.as_str()].contains(&mark3.as_str()));
        // An import that writes another key's record under that secret, or
        // moves the key to another PID, changes the mark the cached copy
        // checks.
        let other = KeyRecord {
            key_id: KeyId::from_entropy([77; 16]),
            ..current.clone()
        };
        store.issue_key("hash-app-2", &other).await.unwrap();
        assert!(matches!(
            with(&current, Some(&mark3)).await,
            CreateOutcome::KeyChanged
        ));
        let held = done(with(&other, None).await).key_mark.unwrap();
        let moved = KeyRecord {
            pid: pid("elsewhere"),
            ..other.clone()
        };
        assert!(store.update_key(&moved).await.unwrap());
        assert!(matches!(
            with(&other, Some(&held)).await,
            CreateOutcome::KeyChanged
        ));
    });
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
                return_origins: Vec::new(),
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

    let renamed = patch_pid(
        store,
        &pid("beta"),
        PatchPidRequest {
            name: Some("Beta Bot".into()),
            return_origins: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.name, "Beta Bot");
    assert_eq!(renamed.created_at, at(0));
    assert_eq!(
        super::pid(store, &pid("beta")).await.unwrap().name,
        "Beta Bot"
    );
    let e = patch_pid(
        store,
        &pid("nobody"),
        PatchPidRequest {
            name: Some("x".into()),
            return_origins: None,
        },
    )
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

/// A webhook receiver that answers from a script (then 200) and keeps what it got.
#[derive(Default)]
struct Receiver {
    answers: std::cell::RefCell<std::collections::VecDeque<Result<u16, String>>>,
    got: std::cell::RefCell<Vec<(String, String, String)>>,
}

impl Receiver {
    fn answering(answers: &[Result<u16, &str>]) -> Self {
        let r = Receiver::default();
        r.answers
            .borrow_mut()
            .extend(answers.iter().map(|a| a.map_err(str::to_owned)));
        r
    }
}

impl Deliver for Receiver {
    async fn post(&self, url: &str, body: &str, signature: &str) -> Result<u16, String> {
        self.got
            .borrow_mut()
            .push((url.to_owned(), body.to_owned(), signature.to_owned()));
        self.answers.borrow_mut().pop_front().unwrap_or(Ok(200))
    }
}

fn webhook_settings() -> Settings {
    Settings::from_lookup(|name| {
        (name == "webhook_origin_a").then(|| String::from("https://hooks.example"))
    })
    .expect("settings")
}

fn webhook_body(events: &str) -> SetWebhookRequest {
    let s = webhook_settings();
    SetWebhookRequest::parse(
        format!(r#"{{"url":"https://hooks.example/dock","events":{events}}}"#).as_bytes(),
        &s.limits,
        &s.webhook_origins,
    )
    .expect("webhook body")
}

async fn run_dispatch(store: &impl Backend, rx: &Receiver, secs: u64) -> DispatchReport {
    dispatch(
        store,
        rx,
        None,
        true,
        &webhook_settings(),
        || at(secs),
        || 32_768,
    )
    .await
    .unwrap()
}

async fn a_webhook_event_is_retried_until_delivered_once_with_one_id_and_body(
    store: &impl Backend,
) {
    let k = seed(store, 100).await;
    let s = webhook_settings();
    let hook = set_webhook(store, &pid("app"), webhook_body("null"), [9; 32])
        .await
        .unwrap();
    let secret = hook.secret.expect("a new webhook shows its secret");
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    complete(store, Some(&pid("app")), &sid(1), "111", "900", &s, at(1))
        .await
        .unwrap();
    let rx = Receiver::answering(&[Ok(500), Err("connection refused")]);
    let r = run_dispatch(store, &rx, 1).await;
    assert_eq!((r.attempted, r.retrying), (1, 1));
    // Not due again before its back-off (10 s, jitter at the middle).
    assert_eq!(run_dispatch(store, &rx, 5).await.attempted, 0);
    let r = run_dispatch(store, &rx, 11).await;
    assert_eq!((r.attempted, r.retrying), (1, 1));
    assert_eq!(run_dispatch(store, &rx, 35).await.attempted, 0);
    let r = run_dispatch(store, &rx, 41).await;
    assert_eq!((r.attempted, r.delivered), (1, 1));
    // Delivered: never sent again.
    assert_eq!(run_dispatch(store, &rx, 100_000).await.attempted, 0);
    let got = rx.got.borrow().clone();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|(url, body, _)| url == "https://hooks.example/dock" && *body == got[0].1)
    );
    let event: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(event["type"], "session.completed");
    assert_eq!(event["data"]["sid"], sid(1).as_str());
    assert_eq!(event["data"]["result"]["robloxId"], "900");
    for (i, (_, body, sig)) in got.iter().enumerate() {
        let t = [1, 11, 41][i];
        assert_eq!(
            dock_core::webhook::verify(body.as_bytes(), sig, &[&secret], (T0 / 1000) + t, 300),
            Ok((T0 / 1000) + t)
        );
    }
    let log = deliveries(store, &pid("app"), 10).await.unwrap().deliveries;
    let outcomes: Vec<_> = log
        .iter()
        .map(|a| (a.attempt, a.outcome, a.status_code))
        .collect();
    assert_eq!(
        outcomes,
        [
            (3, Outcome::Delivered, Some(200)),
            (2, Outcome::Retrying, None),
            (1, Outcome::Retrying, Some(500)),
        ]
    );
    assert!(log.iter().all(|a| a.event_id == event["id"]));
    assert_eq!(log[1].error.as_deref(), Some("connection refused"));
    let c = counters(store, at(100)).await;
    assert_eq!(
        (c.webhook_attempts, c.webhooks_delivered, c.webhooks_failed),
        (3, 1, 0)
    );
}

async fn webhook_events_follow_the_subscription_and_unobserved_expiries(store: &impl Backend) {
    let k = seed(store, 100).await;
    let s = webhook_settings();
    set_webhook(
        store,
        &pid("app"),
        webhook_body(r#"["session.expired","session.cancelled"]"#),
        [9; 32],
    )
    .await
    .unwrap();
    for (n, client) in [(1, "u1"), (2, "u2"), (3, "u3")] {
        create(store, &k, request("app", client, None), sid(n), &s, at(0))
            .await
            .unwrap();
    }
    cancel(store, &pid("app"), &sid(2), &s, at(1))
        .await
        .unwrap();
    complete(store, Some(&pid("app")), &sid(3), "111", "900", &s, at(1))
        .await
        .unwrap();
    // Session 1 expires at 300 s with nobody watching; the dispatch's sweep finds it.
    let rx = Receiver::default();
    let r = run_dispatch(store, &rx, 400).await;
    assert_eq!((r.attempted, r.delivered), (2, 2));
    let mut events: Vec<serde_json::Value> = rx
        .got
        .borrow()
        .iter()
        .map(|(_, b, _)| serde_json::from_str(b).unwrap())
        .collect();
    events.sort_by_key(|e| e["type"].as_str().unwrap().to_owned());
    assert_eq!(events[0]["type"], "session.cancelled");
    assert_eq!(events[0]["data"]["sid"], sid(2).as_str());
    assert_eq!(events[1]["type"], "session.expired");
    assert_eq!(events[1]["data"]["status"], "expired");
    assert_eq!(events[1]["createdAt"], events[1]["data"]["expiresAt"]);
    assert_ne!(events[0]["id"], events[1]["id"]);
    assert_eq!(run_dispatch(store, &rx, 500).await.attempted, 0);
}

async fn a_drain_attempts_a_bounded_batch_of_one_pid_and_sweeps_its_expiries(store: &impl Backend) {
    let k = seed(store, 100).await;
    let s = webhook_settings();
    let rx = Receiver::default();
    let run = |secs, pick| drain(store, &rx, &s, move || at(secs), || 32_768, pick);
    // No webhook anywhere: nothing to visit.
    assert_eq!(run(1, 0).await.unwrap(), DispatchReport::default());
    set_webhook(store, &pid("app"), webhook_body("null"), [9; 32])
        .await
        .unwrap();
    for n in 1..=12 {
        create(
            store,
            &k,
            request("app", &format!("u{n}"), None),
            sid(n),
            &s,
            at(0),
        )
        .await
        .unwrap();
        cancel(store, &pid("app"), &sid(n), &s, at(1))
            .await
            .unwrap();
    }
    // Left to expire at 300 s with nobody watching.
    create(store, &k, request("app", "idle", None), sid(13), &s, at(0))
        .await
        .unwrap();
    let r = run(2, 7).await.unwrap();
    assert_eq!(
        (r.pids, r.attempted, r.delivered),
        (1, DRAIN_BATCH as u64, 10)
    );
    assert_eq!(run(3, 0).await.unwrap().attempted, 2);
    assert_eq!(run(4, u32::MAX).await.unwrap().attempted, 0);
    // The drain's sweep finds the expiry, as the dispatch route's does.
    let r = run(400, 1).await.unwrap();
    assert_eq!((r.attempted, r.delivered), (1, 1));
    let got = rx.got.borrow();
    let last: serde_json::Value = serde_json::from_str(&got[12].1).unwrap();
    assert_eq!(last["type"], "session.expired");
    assert_eq!(last["data"]["sid"], sid(13).as_str());
    let mut sids: Vec<_> = got[..12]
        .iter()
        .map(|(_, b, _)| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["data"]["sid"].clone()
        })
        .collect();
    sids.sort_by_key(|v| v.as_str().unwrap().to_owned());
    sids.dedup();
    assert_eq!(sids.len(), 12, "every cancelled session once");
}

async fn a_webhook_event_fails_after_a_day_of_retries(store: &impl Backend) {
    let k = seed(store, 100).await;
    let s = webhook_settings();
    set_webhook(store, &pid("app"), webhook_body("null"), [9; 32])
        .await
        .unwrap();
    create(store, &k, request("app", "u1", None), sid(1), &s, at(0))
        .await
        .unwrap();
    cancel(store, &pid("app"), &sid(1), &s, at(1))
        .await
        .unwrap();
    let rx = Receiver::answering(&[Ok(503); 40]);
    // A dispatch every minute for two days.
    let mut last = DispatchReport::default();
    for minute in 0..(2 * 24 * 60) {
        let r = run_dispatch(store, &rx, 1 + minute * 60).await;
        if r.failed > 0 {
            last = r;
            break;
        }
    }
    assert_eq!(last.failed, 1);
    let attempts = rx.got.borrow().len();
    assert!((8..=12).contains(&attempts), "{attempts} attempts");
    let log = deliveries(store, &pid("app"), 1).await.unwrap().deliveries;
    assert_eq!(log[0].outcome, Outcome::Failed);
    assert!(log[0].at <= at(1 + 24 * 3600 + 60));
    let c = counters(store, at(0)).await;
    assert_eq!((c.webhooks_failed, c.webhooks_delivered), (1, 0));
    assert_eq!(run_dispatch(store, &rx, 10 * 24 * 3600).await.attempted, 0);
}

async fn webhooks_are_set_shown_without_secret_rotated_and_deleted(store: &impl Backend) {
    seed(store, 100).await;
    let app = pid("app");
    assert_eq!(
        set_webhook(store, &pid("nope"), webhook_body("null"), [1; 32])
            .await
            .unwrap_err()
            .code(),
        ErrorCode::PidNotFound
    );
    assert_eq!(
        webhook(store, &app).await.unwrap_err().code(),
        ErrorCode::WebhookNotFound
    );
    let first = set_webhook(store, &app, webhook_body("null"), [1; 32])
        .await
        .unwrap();
    let secret = first.secret.clone().unwrap();
    assert_eq!(first.events.len(), 3);
    let shown = webhook(store, &app).await.unwrap();
    assert_eq!(shown.secret, None);
    // Replacing the URL or events keeps the secret (and does not show it).
    let again = set_webhook(
        store,
        &app,
        webhook_body(r#"["session.completed"]"#),
        [2; 32],
    )
    .await
    .unwrap();
    assert_eq!(again.secret, None);
    assert_eq!(
        store
            .webhook(&app)
            .await
            .unwrap()
            .unwrap()
            .signing_secrets(at(0)),
        vec![secret.as_str()]
    );
    let rotated = rotate_webhook_secret(store, &app, [3; 32], at(0))
        .await
        .unwrap();
    let new = rotated.secret.unwrap();
    assert_ne!(new, secret);
    let cfg = store.webhook(&app).await.unwrap().unwrap();
    assert_eq!(
        cfg.signing_secrets(at(10)),
        vec![new.as_str(), secret.as_str()]
    );
    assert_eq!(cfg.signing_secrets(at(24 * 3600)), vec![new.as_str()]);
    assert_eq!(store.webhook_pids().await.unwrap(), vec![app.clone()]);
    delete_webhook(store, &app).await.unwrap();
    assert_eq!(
        webhook(store, &app).await.unwrap_err().code(),
        ErrorCode::WebhookNotFound
    );
    assert!(store.webhook_pids().await.unwrap().is_empty());
}

async fn sessions_are_listed_newest_first_a_page_at_a_time_per_pid(store: &impl Backend) {
    use dock_core::listing::{ListCursor, ListQuery};
    let k = seed(store, 1000).await;
    let s = settings();
    // 12 sessions of client u1 (guilds keep them apart), 12 of u2, one a second.
    let mut sids = Vec::new();
    for n in 0..24u8 {
        let client = if n % 2 == 0 { "u1" } else { "u2" };
        let guild = format!("g{n}");
        create(
            store,
            &k,
            request("app", client, Some(&guild)),
            sid(n + 1),
            &s,
            at(u64::from(n)),
        )
        .await
        .unwrap();
        sids.push(sid(n + 1));
    }
    cancel(store, &pid("app"), &sid(3), &s, at(30))
        .await
        .unwrap();
    complete(store, Some(&pid("app")), &sid(5), "111", "900", &s, at(30))
        .await
        .unwrap();
    // Another tenant's sessions never appear.
    let other = key("other", 10);
    store
        .create_pid(&PidRecord {
            pid: pid("other"),
            name: "Other".into(),
            created_at: at(0),
            return_origins: Vec::new(),
        })
        .await
        .unwrap();
    store.issue_key("hash-other", &other).await.unwrap();
    create(
        store,
        &other,
        request("other", "u1", None),
        sid(200),
        &s,
        at(5),
    )
    .await
    .unwrap();

    let query = |client: Option<&str>, status, limit, cursor: Option<&str>| ListQuery {
        client_id: client.map(str::to_owned),
        status,
        limit,
        cursor: cursor.and_then(ListCursor::decode),
    };
    let now = at(40);
    let p1 = list_sessions(store, &pid("app"), query(None, None, 10, None), now)
        .await
        .unwrap();
    assert_eq!(p1.sessions.len(), 10);
    // New sessions arrive between pages: later pages neither shift nor repeat.
    for n in 0..3u8 {
        create(
            store,
            &k,
            request("app", "late", Some(&format!("l{n}"))),
            sid(100 + n),
            &s,
            at(41),
        )
        .await
        .unwrap();
    }
    let p2 = list_sessions(
        store,
        &pid("app"),
        query(None, None, 10, p1.next_cursor.as_deref()),
        now,
    )
    .await
    .unwrap();
    let p3 = list_sessions(
        store,
        &pid("app"),
        query(None, None, 10, p2.next_cursor.as_deref()),
        now,
    )
    .await
    .unwrap();
    assert_eq!(p3.next_cursor, None);
    let listed: Vec<SessionId> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| p.sessions.iter().map(|v| v.sid.clone()))
        .collect();
    let newest_first: Vec<SessionId> = sids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);

    let u1 = list_sessions(store, &pid("app"), query(Some("u1"), None, 100, None), now)
        .await
        .unwrap();
    assert_eq!(u1.sessions.len(), 12);
    assert!(u1.sessions.iter().all(|v| v.client_id == "u1"));
    let done = list_sessions(
        store,
        &pid("app"),
        query(None, Some(Status::Completed), 100, None),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        done.sessions
            .iter()
            .map(|v| v.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(5)]
    );
    let cancelled = list_sessions(
        store,
        &pid("app"),
        query(Some("u1"), Some(Status::Cancelled), 100, None),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        cancelled
            .sessions
            .iter()
            .map(|v| v.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(3)]
    );
    // At 400 s every pending one has expired (a reader's view, as GET shows it).
    let expired = list_sessions(
        store,
        &pid("app"),
        query(None, Some(Status::Expired), 100, None),
        at(400),
    )
    .await
    .unwrap();
    assert_eq!(expired.sessions.len(), 24 - 2 + 3);
    let others = list_sessions(store, &pid("other"), query(None, None, 100, None), now)
        .await
        .unwrap();
    assert_eq!(others.sessions.len(), 1);
    assert_eq!(others.sessions[0].sid, sid(200));
}

async fn a_return_url_must_be_on_a_registered_origin(store: &impl Backend) {
    let k = seed(store, 100).await;
    let s = settings();
    let with_return = |client: &str, url: &str| CreateSessionRequest {
        return_url: Some(url.to_owned()),
        ..request("app", client, None)
    };
    let e = create(
        store,
        &k,
        with_return("u1", "https://app.example/done"),
        sid(1),
        &s,
        at(0),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReturnUrlNotAllowed);
    let patch = PatchPidRequest::parse(
        br#"{"returnOrigins":["https://APP.example:443","http://127.0.0.1:8080"]}"#,
        &s.limits,
    )
    .unwrap();
    let rec = patch_pid(store, &pid("app"), patch).await.unwrap();
    assert_eq!(
        rec.return_origins,
        ["https://app.example", "http://127.0.0.1:8080"]
    );
    assert_eq!(rec.name, "App");
    let c = create(
        store,
        &k,
        with_return("u1", "https://app.example/done?x=1"),
        sid(2),
        &s,
        at(1),
    )
    .await
    .unwrap();
    assert_eq!(
        c.session.return_url.as_deref(),
        Some("https://app.example/done?x=1")
    );
    assert_eq!(
        c.session.view_at(at(1)).return_url.as_deref(),
        Some("https://app.example/done?x=1")
    );
    // Another port, scheme or host of a registered one is not registered.
    for url in [
        "https://app.example:8443/",
        "http://app.example/",
        "https://evil.app.example/",
        "http://127.0.0.1:8081/",
    ] {
        let e = create(store, &k, with_return("u2", url), sid(3), &s, at(1))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ReturnUrlNotAllowed, "{url}");
    }
    // A reuse keeps the first returnUrl (it is not part of the reuse identity).
    let again = create(
        store,
        &k,
        with_return("u1", "http://127.0.0.1:8080/other"),
        sid(4),
        &s,
        at(2),
    )
    .await
    .unwrap();
    assert!(again.reused);
    assert_eq!(
        again.session.return_url.as_deref(),
        Some("https://app.example/done?x=1")
    );
    // Stored and read back.
    let loaded = store
        .load_session(Some(&pid("app")), &sid(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded.session.return_url.as_deref(),
        Some("https://app.example/done?x=1")
    );
}

async fn export_lines(store: &impl Backend, now: Timestamp) -> Vec<String> {
    let mut lines = Vec::new();
    transfer::export(
        store,
        "test",
        now,
        &mut async |r: dock_core::export::Record| {
            lines.push(r.to_line().trim_end().to_owned());
            true
        },
    )
    .await
    .unwrap();
    lines
}

async fn import_lines(
    store: &impl Backend,
    lines: &[String],
    s: &Settings,
    now: Timestamp,
) -> Result<dock_core::export::ImportReport, ApiError> {
    let mut imp = transfer::Importer::new(&s.webhook_origins);
    for l in lines {
        imp.line(store, l.as_bytes(), now).await?;
    }
    imp.finish()
}

/// The records of an export without its header, in a stable order (Redis
/// lists links in its own order).
fn body_of(lines: &[String]) -> Vec<String> {
    let mut b = lines[1..].to_vec();
    b.sort();
    b
}

async fn an_export_moves_to_any_store_and_imports_again_without_change(store: &impl Backend) {
    let s = webhook_settings();
    let hash = "ab".repeat(32);
    let k = key("app", 5);
    let app = pid("app");
    store
        .create_pid(&PidRecord {
            pid: app.clone(),
            name: "App".into(),
            created_at: at(0),
            return_origins: vec!["https://app.example".into()],
        })
        .await
        .unwrap();
    store.issue_key(&hash, &k).await.unwrap();
    set_webhook(store, &app, webhook_body("null"), [9; 32])
        .await
        .unwrap();
    for (n, (d, r)) in [
        (1, ("111", "900")),
        (2, ("222", "900")),
        (3, ("333", "901")),
    ] {
        create(
            store,
            &k,
            request("app", &format!("u{n}"), None),
            sid(n),
            &s,
            at(1),
        )
        .await
        .unwrap();
        complete(store, Some(&app), &sid(n), d, r, &s, at(2))
            .await
            .unwrap();
    }
    let lines = export_lines(store, at(10)).await;
    assert!(
        lines[0]
            .starts_with(r#"{"type":"header","format":"dock-export","version":1,"store":"test""#)
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!(r#"{{"type":"end","records":{}}}"#, lines.len() - 1)
    );
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "header", "pid", "key", "quota", "webhook", "link", "link", "link", "end"
        ]
    );
    assert!(lines[3].contains(r#""count":3"#), "{}", lines[3]);
    assert!(!lines.iter().any(|l| l.contains("\"sid\"")), "no sessions");

    // Into an empty store: the same data, the key usable, its quota carried.
    let other = MemoryStore::new();
    let r = import_lines(&other, &lines, &s, at(10)).await.unwrap();
    assert_eq!(
        (r.pids, r.keys, r.quotas, r.webhooks, r.links),
        (1, 1, 1, 1, 3)
    );
    assert_eq!(
        body_of(&export_lines(&other, at(10)).await),
        body_of(&lines)
    );
    assert_eq!(other.lookup_key(&hash).await.unwrap(), Some(k.clone()));
    assert_eq!(
        other.discord_ids_of(&app, "900").await.unwrap(),
        ["111", "222"]
    );
    let c = create(&other, &k, request("app", "u9", None), sid(9), &s, at(11))
        .await
        .unwrap();
    assert_eq!(c.remaining, Some(1), "3 of 5 were used before the move");

    // Again into the store it came from: nothing changes.
    import_lines(store, &lines, &s, at(10)).await.unwrap();
    assert_eq!(body_of(&export_lines(store, at(10)).await), body_of(&lines));

    // A link the file moves to another account leaves the old reverse entry.
    let mut moved = lines.clone();
    let i = moved
        .iter()
        .position(|l| l.contains(r#""discordId":"222""#))
        .unwrap();
    moved[i] = moved[i].replace(r#""robloxId":"900""#, r#""robloxId":"901""#);
    import_lines(store, &moved, &s, at(10)).await.unwrap();
    assert_eq!(store.discord_ids_of(&app, "900").await.unwrap(), ["111"]);
    assert_eq!(
        store.discord_ids_of(&app, "901").await.unwrap(),
        ["222", "333"]
    );

    // A cut-off file is refused at its end, a bad line by its number; a
    // key of a PID that is nowhere is refused.
    let e = import_lines(&other, &lines[..lines.len() - 1], &s, at(10))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidImport);
    assert!(e.message().contains("end line"), "{}", e.message());
    let mut bad = lines.clone();
    bad[5] = String::from("{");
    let e = import_lines(&MemoryStore::new(), &bad, &s, at(10))
        .await
        .unwrap_err();
    assert!(e.message().starts_with("line 6: "), "{}", e.message());
    let e = import_lines(
        &MemoryStore::new(),
        &[lines[0].clone(), lines[2].clone()],
        &s,
        at(10),
    )
    .await
    .unwrap_err();
    assert!(
        e.message().starts_with("line 2: PID app"),
        "{}",
        e.message()
    );
    // A webhook on an origin this deployment does not allow is refused.
    let e = import_lines(&MemoryStore::new(), &lines, &settings(), at(10))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("line 5: webhook of app"),
        "{}",
        e.message()
    );
}
