//! Redis-only behaviour: wake-ups across instances, and Redis going away
//! and coming back while the hosts keep running.

mod api_support;

use std::time::{Duration, Instant};

use anyhow::Result;
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
