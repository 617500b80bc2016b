//! `GET /api/v1/admin/stats`: the operator's counters are kept in the store,
//! so after a scripted sequence spread over two instances sharing one Redis
//! (and on the embedded SQLite store) they are exact: creates, reuses, quota
//! rejections, completions, cancels, one expiry, the live waiters of an open
//! stream; per PID with `?pid=`. Store errors are counted by the instance
//! that saw them and reported once the store answers again.

mod api_support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind, send};
use dock_tests::{Host, RedisServer, artifacts, wait_until_async};
use serde_json::{Value, json};

/// Session lifetime in these tests: long enough for the scripted steps on a
/// loaded machine, short enough to wait for one expiry.
const TTL_SECS: &str = "8";
const T: Duration = Duration::from_secs(30);

/// `GET /api/v1/admin/stats[?pid=]` on instance `i`: the `data`, which must be a 200.
async fn stats(svc: &Service, i: usize, pid: Option<&str>) -> Result<Value> {
    let path = match pid {
        Some(p) => format!("/api/v1/admin/stats?pid={p}"),
        None => "/api/v1/admin/stats".to_owned(),
    };
    let (s, body) = send(svc.http.get(svc.url_on(i, &path)).bearer_auth(ADMIN_TOKEN)).await?;
    ensure!(s == 200, "stats: {s} {body}");
    Ok(body["data"].clone())
}

/// The session counters and the other numbers of a stats `data`, in one
/// comparable value.
fn counts(data: &Value) -> Value {
    json!({
        "created": data["sessions"]["created"],
        "reused": data["sessions"]["reused"],
        "completed": data["sessions"]["completed"],
        "expired": data["sessions"]["expired"],
        "cancelled": data["sessions"]["cancelled"],
        "quotaRejections": data["quotaRejections"],
        "waiters": data["waiters"],
    })
}

fn expect(created: u64, reused: u64, completed: u64, expired: u64, cancelled: u64) -> Value {
    json!({
        "created": created, "reused": reused, "completed": completed,
        "expired": expired, "cancelled": cancelled,
    })
}

/// `counts` plus quota rejections and waiters.
fn with(mut v: Value, quota: u64, waiters: u64) -> Value {
    v["quotaRejections"] = json!(quota);
    v["waiters"] = json!(waiters);
    v
}

/// Creates a session for `client` with `key` on instance `i`: (status, data).
async fn create_on(
    svc: &Service,
    i: usize,
    key: &str,
    pid: &str,
    client: &str,
) -> Result<(u16, Value)> {
    let (s, body) = send(
        svc.http
            .post(svc.url_on(i, "/api/v1/verify/session"))
            .bearer_auth(key)
            .json(&json!({"pid": pid, "clientId": client})),
    )
    .await?;
    Ok((s, body["data"].clone()))
}

async fn scripted_sequence(svc: &Service) -> Result<()> {
    let n = svc.hosts.len();
    let on = |i: usize| i % n;
    let (s, _) = svc
        .admin_post("/api/v1/admin/pids", json!({"pid": "pid-a", "name": "A"}))
        .await?;
    ensure!(s == 200, "create pid-a: {s}");
    let key_a = svc
        .issue_key(
            "pid-a",
            json!({"quota": {"limit": 6, "windowSeconds": 3600}}),
        )
        .await?;
    let key_b = svc.tenant("pid-b").await?;

    let before = stats(svc, on(1), None).await?;
    ensure!(
        counts(&before) == with(expect(0, 0, 0, 0, 0), 0, 0),
        "fresh: {before}"
    );
    ensure!(
        before["pids"] == 2 && before.get("pid").is_none(),
        "{before}"
    );

    // 4 creates and 2 reuses, alternating instances; the 7th create of the
    // key (limit 6) is a quota rejection.
    let mut sids = Vec::new();
    for (i, client) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
        let (s, data) = create_on(svc, on(i), &key_a, "pid-a", client).await?;
        ensure!(s == 200 && data["reusedExisting"] == false, "{s} {data}");
        sids.push(data["sid"].as_str().context("sid")?.to_owned());
    }
    for (i, client) in ["u1", "u2"].iter().enumerate() {
        let (s, data) = create_on(svc, on(i + 1), &key_a, "pid-a", client).await?;
        ensure!(s == 200 && data["reusedExisting"] == true, "{s} {data}");
    }
    let (s, _) = create_on(svc, on(0), &key_a, "pid-a", "u5").await?;
    ensure!(s == 429, "the 7th create of a 6-per-hour key: {s}");

    // 2 completions and 1 cancel; u4 stays pending and expires.
    let (s, body) = svc.complete_on(on(1), &sids[0], "11", "21").await?;
    ensure!(s == 200, "{body}");
    let (s, body) = svc.complete_on(on(0), &sids[1], "12", "22").await?;
    ensure!(s == 200, "{body}");
    let (s, body) = send(
        svc.http
            .delete(svc.url_on(on(1), &format!("/api/v1/verify/session/{}", sids[2])))
            .bearer_auth(&key_a),
    )
    .await?;
    ensure!(s == 200, "cancel: {s} {body}");
    // Completing again is idempotent and counts nothing.
    let (s, _) = svc.complete_on(on(0), &sids[0], "11", "21").await?;
    ensure!(s == 200);

    // pid-b: one created and completed.
    let (s, data) = create_on(svc, on(1), &key_b, "pid-b", "b1").await?;
    ensure!(s == 200, "{data}");
    let sid_b = data["sid"].as_str().context("sid")?;
    ensure!(svc.complete_on(on(0), sid_b, "31", "41").await?.0 == 200);

    let a = stats(svc, on(0), Some("pid-a")).await?;
    ensure!(a["pid"] == "pid-a" && a["pids"] == 1, "{a}");
    ensure!(
        counts(&a) == with(expect(4, 2, 2, 0, 1), 1, 0),
        "pid-a before the expiry: {a}"
    );

    // u4 expires (TTL_SECS); a stats read counts it, once.
    let seen = std::sync::Mutex::new(Value::Null);
    let expired = wait_until_async(T, "pid-a's pending session to count as expired", || async {
        match stats(svc, on(1), Some("pid-a")).await {
            Ok(d) => {
                let done = d["sessions"]["expired"] == 1;
                if let Ok(mut s) = seen.lock() {
                    *s = d;
                }
                done
            }
            Err(_) => false,
        }
    })
    .await;
    let last = seen.lock().map(|s| s.clone()).unwrap_or_default();
    expired.with_context(|| format!("last: {last}"))?;
    ensure!(
        counts(&last) == with(expect(4, 2, 2, 1, 1), 1, 0),
        "pid-a after the expiry: {last}"
    );

    // After its expiry the same client gets a new session (a create, not a
    // reuse); an open stream on it is a waiter until the session completes.
    let key_a2 = svc.issue_key("pid-a", json!({})).await?;
    let (s, data) = create_on(svc, on(1), &key_a2, "pid-a", "u4").await?;
    ensure!(s == 200 && data["reusedExisting"] == false, "{s} {data}");
    let sid = data["sid"].as_str().context("sid")?.to_owned();
    let mut stream = svc.stream_on(on(1), &key_a2, &sid, None).await?;
    ensure!(stream.status == 200);
    stream.expect(T).await?; // pending
    let a = stats(svc, on(0), Some("pid-a")).await?;
    ensure!(a["waiters"] == 1, "one open stream: {a}");
    ensure!(svc.complete_on(on(0), &sid, "13", "23").await?.0 == 200);
    stream.expect(T).await?; // complete
    stream.expect_end(T).await?;
    wait_until_async(T, "the stream's waiter lease to be released", || async {
        stats(svc, on(0), None)
            .await
            .is_ok_and(|d| d["waiters"] == 0)
    })
    .await?;

    let b = stats(svc, on(1), Some("pid-b")).await?;
    ensure!(
        counts(&b) == with(expect(1, 0, 1, 0, 0), 0, 0),
        "pid-b: {b}"
    );
    // Every instance reads the same totals.
    for i in 0..n {
        let all = stats(svc, i, None).await?;
        ensure!(
            counts(&all) == with(expect(6, 2, 4, 1, 1), 1, 0),
            "totals on instance {i}: {all}"
        );
        ensure!(all["pids"] == 2 && all["storeErrors"] == 0, "{all}");
    }

    // Admin auth and validation, as the other admin routes.
    let url = svc.url("/api/v1/admin/stats");
    let (s, _) = send(svc.http.get(&url)).await?;
    ensure!(s == 401, "no token: {s}");
    let (s, body) = send(
        svc.http
            .get(svc.url("/api/v1/admin/stats?pid=pid-nope"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await?;
    ensure!(
        s == 404 && body["error"]["code"] == "pid_not_found",
        "{s} {body}"
    );
    let (s, body) = send(
        svc.http
            .get(svc.url("/api/v1/admin/stats?pid=a%20b"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await?;
    ensure!(s == 400, "{s} {body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_up_across_two_instances_on_redis() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, &[("session_ttl_seconds", TTL_SECS)]).await?;
    scripted_sequence(&svc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_on_sqlite() -> Result<()> {
    let svc = Service::start(StoreKind::Sqlite, &[("session_ttl_seconds", TTL_SECS)]).await?;
    let data = stats(&svc, 0, None).await?;
    ensure!(data["store"] == "sqlite", "{data}");
    scripted_sequence(&svc).await
}

/// Without `admin_token` the route does not exist, like the other admin routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_invisible_without_an_admin_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = tokio::task::block_in_place(|| Host::start(&manifest, &["--sqlite-db", "memory"]))?;
    let (s, body) = send(
        api_support::client()
            .get(host.url("/api/v1/admin/stats"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await?;
    ensure!(
        s == 404 && body["error"]["code"] == "not_found",
        "{s} {body}"
    );
    Ok(())
}

/// Requests that fail on a stopped Redis are counted by the instance and
/// added to the store's `storeErrors` on its next request once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_are_reported_once_the_store_answers() -> Result<()> {
    let mut redis = tokio::task::block_in_place(RedisServer::start)?;
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let vars = [
        format!("admin_token={ADMIN_TOKEN}"),
        format!("redis_url={}", redis.url()),
        format!("redis_origin={}", redis.url()),
    ];
    // One instance serves every request (in-memory counts live in it), and
    // only the test's: no webhook dispatch timer taking an instance of its own.
    let mut args = vec![
        "--max-instance-concurrent-reuse-count",
        "1",
        "--idle-instance-timeout",
        "5m",
        "--webhook-dispatch-interval",
        "0",
    ];
    for v in &vars {
        args.extend(["--variable", v.as_str()]);
    }
    let host = tokio::task::block_in_place(|| Host::start(&manifest, &args))?;
    let http = api_support::client();
    let get_stats = || {
        send(
            http.get(host.url("/api/v1/admin/stats"))
                .bearer_auth(ADMIN_TOKEN),
        )
    };
    let (s, body) = get_stats().await?;
    ensure!(s == 200 && body["data"]["storeErrors"] == 0, "{s} {body}");

    redis.stop();
    for _ in 0..2 {
        let (s, body) = get_stats().await?;
        ensure!(s == 503, "with Redis stopped: {s} {body}");
    }
    // /readyz failures are not store errors.
    let (s, _) = send(http.get(host.url("/readyz"))).await?;
    ensure!(s == 503);

    tokio::task::block_in_place(|| redis.restart())?;
    let (s, body) = get_stats().await?;
    ensure!(
        s == 200 && body["data"]["storeErrors"] == 2,
        "after Redis is back: {s} {body}\n{}",
        host.output()
    );
    Ok(())
}
