//! Redis-only behaviour: wake-ups across instances, and Redis going away
//! and coming back while the hosts keep running.

mod api_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use api_support::{Service, StoreKind};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A waiter on one instance wakes when the session completes through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_wake_across_instances() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    // SSE and long-poll on instance 1.
    let mut sse = svc.stream_on(1, &key, &sid, None).await?;
    assert_eq!(sse.expect(T).await?.event, "pending");
    let poll = {
        let (http, url, key) = (
            svc.http.clone(),
            svc.url_on(1, &format!("/api/v1/verify/session/{sid}?wait=25")),
            key.clone(),
        );
        tokio::spawn(async move { api_support::send(http.get(url).bearer_auth(key)).await })
    };
    svc.wait_for_waiters(1, &sid, 2).await?;
    // Complete through instance 0.
    let (s, done) = svc.complete_on(0, &sid, "42", "43").await?;
    assert_eq!(s, 200, "{done}");
    let e = sse.expect(T).await?;
    assert_eq!(e.event, "complete");
    let view: Value = serde_json::from_str(&e.data)?;
    assert_eq!(view, done["data"]);
    sse.expect_end(T).await?;
    let (s, body) = tokio::time::timeout(T, poll).await???;
    assert_eq!((s, &body["data"]), (200, &done["data"]));
    Ok(())
}

/// Redis stopped: waiters and new requests get a prompt 503 JSON (streams
/// end cleanly); Redis back: everything works again, same hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back() -> Result<()> {
    let mut svc = Service::start(StoreKind::Redis, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let mut sse = svc.stream(&key, &sid, None).await?;
    assert_eq!(sse.expect(T).await?.event, "pending");
    let poll = {
        let (http, url, key) = (
            svc.http.clone(),
            svc.url(&format!("/api/v1/verify/session/{sid}?wait=25")),
            key.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            (
                api_support::send(http.get(url).bearer_auth(key)).await,
                t.elapsed(),
            )
        })
    };
    svc.wait_for_waiters(0, &sid, 2).await?;

    svc.redis.as_mut().unwrap().stop();

    let (r, elapsed) = tokio::time::timeout(T, poll).await??;
    let (s, body) = r?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    sse.expect_end(T).await?;
    let resp = svc
        .http
        .post(svc.url("/api/v1/verify/session"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"pid": "pid-a", "clientId": "u2"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "store_unavailable");
    let (s, _) = api_support::send(svc.http.get(svc.url("/readyz"))).await?;
    assert_eq!(s, 503);
    let (s, _) = api_support::send(svc.http.get(svc.url("/healthz"))).await?;
    assert_eq!(s, 200, "liveness does not touch the store");

    // Back on the same port (without persistence, so the operator re-creates the tenant).
    svc.redis.as_mut().unwrap().restart()?;
    let (s, body) = api_support::send(svc.http.get(svc.url("/readyz"))).await?;
    assert_eq!((s, body["data"]["store"].as_str()), (200, Some("redis")));
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u3").await?;
    let (s, _) = svc.complete(&sid, "1", "2").await?;
    assert_eq!(s, 200);
    let (_, body) = svc.get(&key, &sid, "?wait=5").await?;
    assert_eq!(body["data"]["status"], "completed");
    Ok(())
}

/// Every key in Redis with its `MEMORY USAGE` (exact: `SAMPLES 0`).
fn key_sizes(redis: &dock_tests::RedisServer) -> Result<Vec<(String, u64)>> {
    let keys = redis.cli(&["--scan"])?;
    let mut out = Vec::new();
    for k in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
        let bytes = redis
            .cli(&["MEMORY", "USAGE", k, "SAMPLES", "0"])?
            .trim()
            .parse()
            .unwrap_or(0);
        out.push((k.to_owned(), bytes));
    }
    Ok(out)
}

/// The bytes of the keys whose names match `pred`.
fn bytes_of(sizes: &[(String, u64)], pred: impl Fn(&str) -> bool) -> u64 {
    sizes.iter().filter(|(k, _)| pred(k)).map(|(_, b)| b).sum()
}

/// What each thing the service keeps costs Redis, measured with `MEMORY
/// USAGE` over a scripted load (printed as the table in docs/deploy.md,
/// "Sizing and durability"); and a Redis out of memory (`maxmemory`,
/// `noeviction`) is a clear 503 `store_unavailable` with `Retry-After`, never
/// a 500, and the service recovers when memory is available again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_per_record_and_out_of_memory() -> Result<()> {
    const N: usize = 200;
    let svc = Service::start(StoreKind::Redis, &[]).await?;
    let redis = svc.redis.as_ref().context("redis")?;
    let before = key_sizes(redis)?;
    let key = svc.tenant("pid-mem").await?;
    let tenant = key_sizes(redis)?;
    let pid_and_key = bytes_of(&tenant, |_| true) - bytes_of(&before, |_| true);

    let mut sids = Vec::new();
    for i in 0..N {
        sids.push(
            svc.create_sid(&key, "pid-mem", &format!("user-{i:04}"))
                .await?,
        );
    }
    let pending = key_sizes(redis)?;
    let session_keys = |k: &str| {
        k.contains(":s:") || k.contains(":e:") || k.contains(":r:") || k.starts_with("dock:sid:")
    };
    let class =
        |sizes: &[(String, u64)], part: &str| bytes_of(sizes, |k| k.contains(part)) / N as u64;
    let breakdown = |sizes: &[(String, u64)]| {
        format!(
            "record {} + event stream {} + reuse slot {} + sid index {}",
            class(sizes, ":s:"),
            class(sizes, ":e:"),
            class(sizes, ":r:"),
            class(sizes, "dock:sid:")
        )
    };
    println!("api_redis: pending session: {}", breakdown(&pending));
    let per_pending = (bytes_of(&pending, session_keys)
        + bytes_of(&pending, |k| k.ends_with("}:p"))
        - bytes_of(&tenant, |k| k.ends_with("}:p")))
        / N as u64;
    for (i, sid) in sids.iter().enumerate() {
        let (s, body) = svc
            .complete(
                sid,
                &format!("{}", 80_351_110_224_000_000u64 + i as u64),
                &format!("{}", 1_000 + i),
            )
            .await?;
        ensure!(s == 200, "{s} {body}");
    }
    let finished = key_sizes(redis)?;
    println!("api_redis: finished session: {}", breakdown(&finished));
    // The change feed outlives the change by 60 s only; what stays for the
    // retention period is the rest.
    let feed = finished
        .iter()
        .find(|(k, _)| k.contains(":e:"))
        .map(|(k, _)| k.clone())
        .context("no change feed after a completion")?;
    let feed_ttl: i64 = redis.cli(&["PTTL", &feed])?.trim().parse()?;
    ensure!(
        (1..=60_000).contains(&feed_ttl),
        "the change feed lives {feed_ttl} ms after the change"
    );
    let per_finished = bytes_of(&finished, |k| session_keys(k) && !k.contains(":e:")) / N as u64;
    let per_feed = class(&finished, ":e:");
    let per_link = (bytes_of(&finished, |k| k.ends_with("}:l") || k.contains("}:lr:"))) / N as u64;
    let total = bytes_of(&finished, |_| true);
    println!(
        "api_redis: Redis bytes (MEMORY USAGE, {N} sessions): per pending session {per_pending}, \
         per finished session {per_finished} (kept session_retention_seconds) plus {per_feed} for the \
         60 s its change feed outlives the change, per link {per_link}, per PID with one key \
         {pid_and_key}; all keys {total}"
    );
    ensure!(per_pending > 0 && per_finished > 0 && per_link > 0 && pid_and_key > 0);

    // Out of memory: Redis refuses writes; the service says so clearly.
    let used: u64 = redis
        .cli(&["INFO", "memory"])?
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("used_memory")?;
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])?;
    redis.cli(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(used + 64 * 1024).to_string(),
    ])?;
    let mut refused = None;
    for i in 0..1_500 {
        let (s, body) = svc
            .create(
                &key,
                serde_json::json!({"pid": "pid-mem", "clientId": format!("oom-{i}")}),
            )
            .await?;
        match s {
            200 => continue,
            503 => {
                refused = Some((i, body));
                break;
            }
            other => anyhow::bail!("create {i} while Redis fills up: {other} {body}"),
        }
    }
    let (at, body) = refused.context("Redis never refused a write")?;
    ensure!(body["error"]["code"] == "store_unavailable", "{body}");
    // Reads still work; a completion is refused the same way.
    let (s, _) = svc.get(&key, &sids[0], "").await?;
    ensure!(s == 200, "read while Redis is full: {s}");
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"])?;
    let (s, body) = svc
        .create(
            &key,
            serde_json::json!({"pid": "pid-mem", "clientId": "after-oom"}),
        )
        .await?;
    ensure!(s == 200, "create after memory was freed: {s} {body}");
    println!(
        "api_redis: maxmemory reached after {at} more creates: 503 store_unavailable, reads served, creates again once memory was raised"
    );
    Ok(())
}

/// Redis records its key layout's version (`dock:schema`) on first read; a
/// Redis written by a newer build is never ready for this one (`/readyz`
/// says why) and is not exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_redis_layout_is_refused() -> Result<()> {
    let svc = Service::start(StoreKind::Redis, &[]).await?;
    let redis = svc.redis.as_ref().context("redis")?;
    let (s, _) = api_support::send(svc.http.get(svc.url("/readyz"))).await?;
    assert_eq!(s, 200);
    assert_eq!(redis.cli(&["GET", "dock:schema"])?.trim(), "1");
    redis.cli(&["SET", "dock:schema", "99"])?;
    let (s, body) = api_support::send(svc.http.get(svc.url("/readyz"))).await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (500, Some("config_error")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("dock:schema")),
        "{body}"
    );
    let (s, body) = api_support::send(
        svc.http
            .get(svc.url("/api/v1/admin/export"))
            .bearer_auth(api_support::ADMIN_TOKEN),
    )
    .await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (500, Some("config_error")),
        "{body}"
    );
    Ok(())
}

/// Commands clients (not scripts) send to Redis while `f` runs, as
/// `MONITOR` prints them: from a marker sent before `f` to one sent after.
async fn commands_during<T>(
    redis: &dock_tests::RedisServer,
    f: impl AsyncFnOnce() -> Result<T>,
) -> Result<Vec<String>> {
    use std::io::BufRead as _;
    let mut monitor = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "MONITOR"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("redis-cli MONITOR")?;
    let lines = std::io::BufReader::new(monitor.stdout.take().context("stdout")?).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |marker: &str| -> Result<Vec<String>> {
        let mut seen = Vec::new();
        loop {
            let line = rx.recv_timeout(T).context("MONITOR went quiet")?;
            if line.contains(marker) {
                return Ok(seen);
            }
            seen.push(line);
        }
    };
    // MONITOR is attached once it prints the first marker.
    let deadline = Instant::now() + T;
    loop {
        redis.cli(&["ECHO", "dock-test-begin"])?;
        if rx
            .recv_timeout(Duration::from_millis(200))
            .is_ok_and(|l| l.contains("dock-test-begin"))
        {
            break;
        }
        ensure!(Instant::now() < deadline, "MONITOR did not attach");
    }
    let outcome = f().await;
    redis.cli(&["ECHO", "dock-test-end"])?;
    let seen = next("dock-test-end");
    let _ = monitor.kill();
    let _ = monitor.wait();
    outcome?;
    Ok(seen?
        .into_iter()
        .filter(|l| !l.contains(" lua]") && !l.contains("dock-test-begin"))
        .collect())
}

/// An instance keeps the key records it creates with (`key_cache_seconds`),
/// so creates on a warm instance do not read the key first; a quota change
/// and a revocation still apply to the very next create on every instance,
/// because each create checks the key's mark inside its script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_apply_to_the_next_create_on_every_instance() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, &[]).await?;
    let redis = svc.redis.as_ref().context("redis")?;
    let key = svc.tenant("app").await?;
    let create = async |i: usize, n: usize| {
        api_support::send(
            svc.http
                .post(svc.url_on(i, "/api/v1/verify/session"))
                .bearer_auth(&key)
                .json(&serde_json::json!({"pid": "app", "clientId": format!("u{i}-{n}")})),
        )
        .await
    };
    let mut made = 0;
    for i in 0..2 {
        for n in 0..4 {
            let (s, body) = create(i, n).await?;
            ensure!(s == 200, "{s} {body}");
            made += 1;
        }
    }
    // Warm: ten more creates per instance read the key far less than once
    // each (without the cache: once each).
    let sent = commands_during(redis, async || {
        for i in 0..2 {
            for n in 4..14 {
                let (s, body) = create(i, n).await?;
                ensure!(s == 200, "{s} {body}");
            }
        }
        Ok(())
    })
    .await?;
    made += 20;
    let read = sent.iter().filter(|l| l.contains("\"dock:key:")).count();
    ensure!(
        read < 10,
        "20 creates on two warm instances read the key {read} times"
    );

    // The quota lowered to what is used plus one: one more create, then 429, on both.
    let (s, keys) = api_support::send(
        svc.http
            .get(svc.url("/api/v1/admin/pids/app/keys"))
            .bearer_auth(api_support::ADMIN_TOKEN),
    )
    .await?;
    ensure!(s == 200, "{s} {keys}");
    let key_id = keys["data"]["keys"][0]["keyId"]
        .as_str()
        .context("keyId")?
        .to_owned();
    let set_quota = async |limit: usize| -> Result<()> {
        let (s, body) = api_support::send(
            svc.http
                .patch(svc.url(&format!("/api/v1/admin/keys/{key_id}")))
                .bearer_auth(api_support::ADMIN_TOKEN)
                .json(&serde_json::json!({"quota": {"limit": limit}})),
        )
        .await?;
        ensure!(s == 200, "quota {limit}: {s} {body}");
        Ok(())
    };
    set_quota(made + 1).await?;
    let (s, body) = create(1, 100).await?;
    ensure!(s == 200, "the one create left, on instance 1: {s} {body}");
    for i in 0..2 {
        let (s, body) = create(i, 101).await?;
        ensure!(
            s == 429 && body["error"]["code"] == "quota_exceeded",
            "instance {i} after the quota change: {s} {body}"
        );
    }

    // Quota raised again, and both instances warm again (a refused copy is
    // forgotten; the key is cached again from its second create).
    set_quota(1000).await?;
    for i in 0..2 {
        for n in 200..204 {
            let (s, body) = create(i, n).await?;
            ensure!(s == 200, "{s} {body}");
        }
    }

    // Revoked: the next create on either instance is a 401.
    let (s, body) = api_support::send(
        svc.http
            .delete(svc.url(&format!("/api/v1/admin/keys/{key_id}")))
            .bearer_auth(api_support::ADMIN_TOKEN),
    )
    .await?;
    ensure!(s == 200, "revoke: {s} {body}");
    // Refused before the store sees the key's mark (a bad body, another
    // PID): still the 401 of a revoked key, not a 400 or a 404.
    let bad = |i: usize, body: &'static str| {
        api_support::send(
            svc.http
                .post(svc.url_on(i, "/api/v1/verify/session"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let (s, body) = bad(0, "{not json").await?;
    ensure!(s == 401, "a bad body with the revoked key: {s} {body}");
    let (s, body) = bad(1, r#"{"pid": "other", "clientId": "u"}"#).await?;
    ensure!(s == 401, "another PID with the revoked key: {s} {body}");
    for i in 0..2 {
        let (s, body) = create(i, 102).await?;
        ensure!(s == 401, "instance {i} after revocation: {s} {body}");
    }
    Ok(())
}
