//! Signed webhooks end to end: a real HTTP receiver in the test, the real
//! component under dock-host (or `spin up`), Redis and SQLite.
//!
//! Retries need a dispatcher. Under Spin that is a scheduler calling
//! `POST /api/v1/admin/webhooks/dispatch`; the tests run one (a task that
//! calls it every 250 ms) so they hold on either runtime, one test (dock-host
//! only) shows dock-host's own timer delivering with no other traffic at
//! all, and one shows ordinary traffic alone carrying retries and expiry
//! events (`webhook_drain_one_in`), with neither timer nor scheduler. The rules themselves (back-off, 24 h give-up, outbox in
//! the same step as the change, subscriptions) run natively on all three
//! stores in `cargo test -p dock-spin-app`.

mod api_support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind, send};
use dock_tests::wait_until_async;
use dock_tests::webhook_receiver::{Answer, Delivery, Receiver};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// Calls the dispatch route every 250 ms until dropped: the scheduler a
/// Spin deployment runs.
struct Scheduler(tokio::task::JoinHandle<()>);

impl Scheduler {
    fn start(svc: &Service) -> Self {
        let url = svc.url("/api/v1/admin/webhooks/dispatch");
        let http = svc.http.clone();
        Scheduler(tokio::spawn(async move {
            loop {
                let _ = http.post(&url).bearer_auth(ADMIN_TOKEN).send().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn admin(
    svc: &Service,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let r = svc
        .http
        .request(method, svc.url(path))
        .bearer_auth(ADMIN_TOKEN);
    send(match body {
        Some(b) => r.json(&b),
        None => r,
    })
    .await
}

/// Sets `pid`'s webhook to `url`: the signing secret.
async fn set_webhook(svc: &Service, pid: &str, url: &str, events: Value) -> Result<String> {
    let (s, body) = admin(
        svc,
        reqwest::Method::PUT,
        &format!("/api/v1/admin/pids/{pid}/webhook"),
        Some(json!({"url": url, "events": events})),
    )
    .await?;
    ensure!(s == 200, "set webhook: {s} {body}");
    Ok(body["data"]["secret"]
        .as_str()
        .context("a new webhook answers its secret")?
        .to_owned())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The delivery's body as JSON, after checking its signature with `secrets`.
fn verified(d: &Delivery, secrets: &[&str]) -> Result<Value> {
    dock_core::webhook::verify(&d.body, &d.signature, secrets, unix_now(), 300)
        .map_err(|e| anyhow::anyhow!("{e}: {:?}", d.signature))?;
    Ok(serde_json::from_slice(&d.body)?)
}

async fn wait_deliveries(rx: &Receiver, n: usize, what: &str) -> Result<Vec<Delivery>> {
    wait_until_async(DEADLINE, what, || async { rx.deliveries().len() >= n }).await?;
    Ok(rx.deliveries())
}

/// Waits until the PID's newest delivery attempt has `outcome`.
async fn wait_outcome(svc: &Service, pid: &str, outcome: &str) -> Result<Value> {
    let path = format!("/api/v1/admin/pids/{pid}/webhook/deliveries");
    wait_until_async(DEADLINE, &format!("a {outcome} attempt"), || async {
        admin(svc, reqwest::Method::GET, &path, None)
            .await
            .is_ok_and(|(_, b)| b["data"]["deliveries"][0]["outcome"] == outcome)
    })
    .await?;
    Ok(admin(svc, reqwest::Method::GET, &path, None).await?.1)
}

fn webhook_vars(rx: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("webhook_origin_a", rx.origin()),
        ("webhook_retry_base_seconds", "1".into()),
        ("session_ttl_seconds", "3".into()),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Two failures then a 200: one event, the same id and bytes on every
/// attempt, valid signatures, nothing after the 200; an expiry nobody waits
/// on is delivered too.
async fn retried_until_delivered(store: StoreKind) -> Result<()> {
    let rx = Receiver::start(&[Answer::Status(500), Answer::Status(500)]).await?;
    let svc = Service::start(store, &as_refs(&webhook_vars(&rx))).await?;
    let key = svc.tenant("app").await?;
    let secret = set_webhook(
        &svc,
        "app",
        &format!("{}/hooks/dock?tenant=app", rx.origin()),
        Value::Null,
    )
    .await?;
    let _scheduler = Scheduler::start(&svc);

    let sid = svc.create_sid(&key, "app", "user-1").await?;
    let (s, body) = svc.complete(&sid, "111", "900").await?;
    ensure!(s == 200, "{s} {body}");
    let got = wait_deliveries(&rx, 3, "three attempts").await?;
    let first = verified(&got[0], &[&secret])?;
    ensure!(first["type"] == "session.completed", "{first}");
    ensure!(first["data"]["sid"] == sid.as_str(), "{first}");
    ensure!(first["data"]["result"]["robloxId"] == "900", "{first}");
    ensure!(got[0].path == "/hooks/dock?tenant=app", "{}", got[0].path);
    for d in &got[1..3] {
        ensure!(d.body == got[0].body, "every attempt sends the same bytes");
        verified(d, &[&secret])?;
    }

    // The log says delivered, and later dispatches send nothing more.
    let log = wait_outcome(&svc, "app", "delivered").await?;
    let attempts = log["data"]["deliveries"].as_array().context("deliveries")?;
    ensure!(attempts.len() == 3, "{log}");
    ensure!(
        attempts.iter().all(|a| a["eventId"] == first["id"]),
        "{log}"
    );
    ensure!(
        attempts[1]["statusCode"] == 500 && attempts[1]["outcome"] == "retrying",
        "{log}"
    );
    for _ in 0..3 {
        let (s, _) = admin(
            &svc,
            reqwest::Method::POST,
            "/api/v1/admin/webhooks/dispatch",
            None,
        )
        .await?;
        ensure!(s == 200);
    }
    ensure!(rx.deliveries().len() == 3, "no duplicate after the 200");

    // An expiry nobody observes (the session lives 3 s).
    let idle = svc.create_sid(&key, "app", "user-2").await?;
    let got = wait_deliveries(&rx, 4, "the expiry event").await?;
    let expired = verified(&got[3], &[&secret])?;
    ensure!(
        expired["type"] == "session.expired" && expired["data"]["sid"] == idle.as_str(),
        "{expired}"
    );
    ensure!(expired["data"]["status"] == "expired", "{expired}");
    ensure!(
        expired["createdAt"] == expired["data"]["expiresAt"],
        "{expired}"
    );
    ensure!(expired["id"] != first["id"], "{expired}");

    let (_, stats) = admin(
        &svc,
        reqwest::Method::GET,
        "/api/v1/admin/stats?pid=app",
        None,
    )
    .await?;
    ensure!(
        stats["data"]["webhooks"] == json!({"attempts": 4, "delivered": 2, "failed": 0}),
        "{stats}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_is_delivered_once_after_two_failures_on_redis() -> Result<()> {
    retried_until_delivered(StoreKind::Redis).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_is_delivered_once_after_two_failures_on_sqlite() -> Result<()> {
    retried_until_delivered(StoreKind::Sqlite).await
}

/// dock-host's own timer (`--webhook-dispatch-interval`) retries with no
/// other request at all: `./dev up` delivers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dock_host_retries_by_itself() -> Result<()> {
    let rx = Receiver::start(&[Answer::Status(503)]).await?;
    let vars = webhook_vars(&rx);
    let svc = Service::start_with_host_args(
        StoreKind::Sqlite,
        &["--webhook-dispatch-interval", "300ms"],
        &as_refs(&vars),
    )
    .await?;
    let key = svc.tenant("app").await?;
    let secret = set_webhook(&svc, "app", &rx.origin(), json!(["session.cancelled"])).await?;
    let sid = svc.create_sid(&key, "app", "user-1").await?;
    let (s, body) = send(
        svc.http
            .delete(svc.url(&format!("/api/v1/verify/session/{sid}")))
            .bearer_auth(&key),
    )
    .await?;
    ensure!(s == 200, "{s} {body}");
    // No request from here on: only the timer can make the second attempt.
    let got = wait_deliveries(&rx, 2, "the timer's retry").await?;
    let event = verified(&got[1], &[&secret])?;
    ensure!(event["type"] == "session.cancelled", "{event}");
    ensure!(got[0].body == got[1].body);
    Ok(())
}

/// With no timer and no scheduler, ordinary API traffic drains due events
/// (here every request: `webhook_drain_one_in = 1`): a retry, and the event
/// of an expiry nobody observes. What keeps a Spin host without a scheduler
/// delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_traffic_carries_retries_and_expiry_events() -> Result<()> {
    let rx = Receiver::start(&[Answer::Status(500)]).await?;
    let mut vars = webhook_vars(&rx);
    vars.push(("webhook_drain_one_in", "1".into()));
    let svc = Service::start(StoreKind::Redis, &as_refs(&vars)).await?;
    let key = svc.tenant("app").await?;
    let secret = set_webhook(&svc, "app", &rx.origin(), Value::Null).await?;
    let sid = svc.create_sid(&key, "app", "user-1").await?;
    let (s, body) = svc.complete(&sid, "111", "900").await?;
    ensure!(s == 200, "{s} {body}");
    wait_outcome(&svc, "app", "retrying").await?;
    // An integrator polling its session is the only traffic from here on.
    let poll = || async {
        let url = svc.url(&format!("/api/v1/verify/session/{sid}"));
        let _ = send(svc.http.get(url).bearer_auth(&key)).await;
    };
    let delivered = |n: usize| {
        let poll = &poll;
        let rx = &rx;
        async move {
            poll().await;
            rx.deliveries().len() >= n
        }
    };
    wait_until_async(DEADLINE, "the retry, carried by traffic", || delivered(2)).await?;
    let got = rx.deliveries();
    ensure!(got[0].body == got[1].body, "the retry sends the same event");
    ensure!(verified(&got[1], &[&secret])?["type"] == "session.completed");

    let idle = svc.create_sid(&key, "app", "user-2").await?;
    wait_until_async(DEADLINE, "the expiry event, carried by traffic", || {
        delivered(3)
    })
    .await?;
    let expired = verified(&rx.deliveries()[2], &[&secret])?;
    ensure!(
        expired["type"] == "session.expired" && expired["data"]["sid"] == idle.as_str(),
        "{expired}"
    );
    Ok(())
}

/// A receiver that never answers: the completion is answered at once (it
/// does not wait for the delivery), the attempt is cut at the timeout and
/// retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_costs_its_attempt_not_the_completion() -> Result<()> {
    let rx = Receiver::start(&[Answer::Hang, Answer::Hang]).await?;
    let mut vars = webhook_vars(&rx);
    vars.push(("webhook_timeout_seconds", "2".into()));
    let svc = Service::start(StoreKind::Redis, &as_refs(&vars)).await?;
    let key = svc.tenant("app").await?;
    set_webhook(&svc, "app", &rx.origin(), Value::Null).await?;
    let sid = svc.create_sid(&key, "app", "user-1").await?;
    // Answered while the receiver holds the first attempt.
    let (s, body) = svc.complete(&sid, "111", "900").await?;
    ensure!(s == 200, "{s} {body}");
    wait_deliveries(&rx, 1, "the first attempt").await?;
    let _scheduler = Scheduler::start(&svc);
    // Cut at 2 s, retried after ~1 s (and cut again), then 200.
    wait_deliveries(&rx, 3, "the attempts after the timeouts").await?;
    let log = wait_outcome(&svc, "app", "delivered").await?;
    let last = &log["data"]["deliveries"][2];
    ensure!(
        last["statusCode"].is_null()
            && last["error"]
                .as_str()
                .is_some_and(|e| e.contains("within 2 s")),
        "{log}"
    );
    rx.release();
    Ok(())
}

/// The host dies between the change and the delivery (the receiver is down,
/// so the first attempt fails): after a restart the event is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_survives_a_host_killed_before_delivery() -> Result<()> {
    let port = dock_tests::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let vars = [
        ("webhook_origin_a", origin.as_str()),
        ("webhook_retry_base_seconds", "1"),
    ];
    let mut svc = Service::start(StoreKind::Redis, &vars).await?;
    let key = svc.tenant("app").await?;
    let secret = set_webhook(&svc, "app", &format!("{origin}/in"), Value::Null).await?;
    let sid = svc.create_sid(&key, "app", "user-1").await?;
    svc.complete(&sid, "111", "900").await?;
    wait_outcome(&svc, "app", "retrying").await?;
    svc.restart_host(0)?;
    let rx = Receiver::start_on(([127, 0, 0, 1], port).into(), &[]).await?;
    let _scheduler = Scheduler::start(&svc);
    let got = wait_deliveries(&rx, 1, "the delivery after the restart").await?;
    let event = verified(&got[0], &[&secret])?;
    ensure!(event["data"]["sid"] == sid.as_str(), "{event}");
    Ok(())
}

/// The admin API: destinations only on the operator's origins, the secret
/// shown once, rotation signing with both secrets, removal.
async fn admin_rules(store: StoreKind) -> Result<()> {
    let rx = Receiver::start(&[]).await?;
    let svc = Service::start(store, &as_refs(&webhook_vars(&rx))).await?;
    let key = svc.tenant("app").await?;
    let hook = "/api/v1/admin/pids/app/webhook";
    use reqwest::Method as M;
    for (url, why) in [
        ("https://evil.example/hook", "foreign origin"),
        ("http://10.0.0.1/hook", "plain http off loopback"),
        ("http://127.0.0.1:1/hook", "another port"),
        ("not a url", "not a URL"),
    ] {
        let (s, body) = admin(&svc, M::PUT, hook, Some(json!({"url": url}))).await?;
        ensure!(
            s == 400 && body["error"]["code"] == "webhook_url_not_allowed",
            "{why}: {s} {body}"
        );
    }
    let (s, body) = admin(
        &svc,
        M::PUT,
        hook,
        Some(json!({"url": rx.origin(), "events": ["session.done"]})),
    )
    .await?;
    ensure!(s == 400 && body["error"]["field"] == "events", "{s} {body}");
    let (s, body) = admin(&svc, M::GET, hook, None).await?;
    ensure!(
        s == 404 && body["error"]["code"] == "webhook_not_found",
        "{s} {body}"
    );
    let (s, body) = admin(
        &svc,
        M::PUT,
        "/api/v1/admin/pids/nope/webhook",
        Some(json!({"url": rx.origin()})),
    )
    .await?;
    ensure!(
        s == 404 && body["error"]["code"] == "pid_not_found",
        "{s} {body}"
    );
    let (s, body) = send(
        svc.http
            .put(svc.url(hook))
            .bearer_auth(&key)
            .json(&json!({"url": rx.origin()})),
    )
    .await?;
    ensure!(s == 401, "an API key is not the admin token: {s} {body}");

    let old = set_webhook(&svc, "app", &rx.origin(), json!(["session.completed"])).await?;
    ensure!(old.starts_with("whsec_") && old.len() == 49, "{old}");
    let (_, body) = admin(&svc, M::GET, hook, None).await?;
    ensure!(
        body["data"] == json!({"url": rx.origin(), "events": ["session.completed"]}),
        "{body}"
    );
    let (s, body) = admin(&svc, M::POST, &format!("{hook}/rotate-secret"), None).await?;
    ensure!(s == 200, "{s} {body}");
    let new = body["data"]["secret"]
        .as_str()
        .context("new secret")?
        .to_owned();
    ensure!(new != old);

    let _scheduler = Scheduler::start(&svc);
    let sid = svc.create_sid(&key, "app", "user-1").await?;
    svc.complete(&sid, "111", "900").await?;
    let got = wait_deliveries(&rx, 1, "a delivery after rotation").await?;
    ensure!(
        got[0].signature.matches("v1=").count() == 2,
        "{}",
        got[0].signature
    );
    verified(&got[0], &[&old])?;
    verified(&got[0], &[&new])?;
    ensure!(verified(&got[0], &["whsec_someone-else"]).is_err());

    let (s, body) = admin(&svc, M::DELETE, hook, None).await?;
    ensure!(
        s == 200 && body["data"]["url"] == rx.origin().as_str(),
        "{s} {body}"
    );
    let (s, _) = admin(&svc, M::GET, hook, None).await?;
    ensure!(s == 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rules_on_redis() -> Result<()> {
    admin_rules(StoreKind::Redis).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rules_on_sqlite() -> Result<()> {
    admin_rules(StoreKind::Sqlite).await
}

/// Redis dies while an attempt is in flight, so its outcome cannot be
/// recorded: once Redis is back (same data), the event is due again after
/// its hold and delivered — at least once, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_survives_redis_dying_during_delivery() -> Result<()> {
    let rx = Receiver::start(&[Answer::Hang]).await?;
    let mut vars = webhook_vars(&rx);
    vars.push(("webhook_timeout_seconds", "5".into()));
    let data = tempfile::tempdir()?;
    let redis = dock_tests::RedisServer::start_persistent(data.path())?;
    let mut svc = Service::start_on_redis(redis, 1, &as_refs(&vars)).await?;
    let key = svc.tenant("app").await?;
    let secret = set_webhook(&svc, "app", &rx.origin(), Value::Null).await?;
    let sid = svc.create_sid(&key, "app", "user-1").await?;
    svc.complete(&sid, "111", "900").await?;
    wait_deliveries(&rx, 1, "the attempt in flight").await?;
    let redis = svc.redis.as_mut().context("redis")?;
    redis.kill();
    rx.release(); // answered 200, but the dispatcher cannot record it
    tokio::task::block_in_place(|| redis.restart())?;
    let _scheduler = Scheduler::start(&svc);
    let got = wait_deliveries(&rx, 2, "the redelivery after the hold").await?;
    ensure!(got[1].body == got[0].body, "the same event");
    verified(&got[1], &[&secret])?;
    wait_outcome(&svc, "app", "delivered").await?;
    Ok(())
}
