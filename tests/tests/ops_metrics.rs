//! `GET /metrics`, request ids and rate-limit headers, over HTTP.
//!
//! Two instances share Redis (and one runs on SQLite): requests on both add
//! up in one scrape from either, read with a real Prometheus text parser
//! (prometheus-parse): the store's counters per PID and the request latency
//! histogram by route template, method and status class, with cumulative
//! buckets. Every answer carries `X-Request-Id` (a sane one the client sent
//! is echoed, and the log line names it); creates carry `RateLimit-*`.

mod api_support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind, send};
use dock_tests::{Host, artifacts, wait_until_async};
use prometheus_parse::{Sample, Scrape, Value as PValue};
use serde_json::json;

const METRICS_TOKEN: &str = "metrics-token-0123456789";

async fn scrape(svc: &Service, i: usize, token: &str) -> Result<Scrape> {
    let resp = svc
        .http
        .get(svc.url_on(i, "/metrics"))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(resp.status() == 200, "metrics: {}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await?;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .context("a Prometheus text parser reads it")
}

fn value(s: &Sample) -> f64 {
    match &s.value {
        PValue::Counter(v) | PValue::Gauge(v) | PValue::Untyped(v) => *v,
        _ => f64::NAN,
    }
}

/// The value of `metric` with these labels, if present.
fn find(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(value)
}

/// The creates histogram (POST /api/v1/verify/session, 2xx): its count, if scraped.
fn creates_seen(scrape: &Scrape) -> Option<u64> {
    scrape.samples.iter().find_map(|s| match &s.value {
        PValue::Histogram(buckets)
            if s.metric == "dock_http_request_duration_seconds"
                && s.labels.get("route") == Some("/api/v1/verify/session")
                && s.labels.get("method") == Some("POST")
                && s.labels.get("code") == Some("2xx") =>
        {
            buckets.last().map(|b| b.count as u64)
        }
        _ => None,
    })
}

async fn scenario(svc: &Service) -> Result<()> {
    let n = svc.hosts.len();
    let key = svc.tenant("app").await?;

    // Request ids: echoed when sane, made up otherwise, on every answer.
    let resp = svc
        .http
        .get(svc.url("/healthz"))
        .header("x-request-id", "trace-42.a_b:c")
        .send()
        .await?;
    ensure!(resp.headers()["x-request-id"] == "trace-42.a_b:c");
    for (path, sent) in [("/healthz", Some("not sane!")), ("/nope", None)] {
        let mut req = svc.http.get(svc.url(path));
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let resp = req.send().await?;
        let id = resp.headers()["x-request-id"].to_str()?.to_owned();
        ensure!(
            id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{path}: {id}"
        );
    }
    ensure!(
        svc.hosts[0]
            .output()
            .contains(r#""request_id":"trace-42.a_b:c""#),
        "the log line names the request id"
    );

    // Five creates over the instances, with their rate-limit headers.
    for c in 0..5 {
        let resp = svc
            .http
            .post(svc.url_on(c % n, "/api/v1/verify/session"))
            .bearer_auth(&key)
            .json(&json!({"pid": "app", "clientId": format!("u{c}")}))
            .send()
            .await?;
        ensure!(resp.status() == 200);
        let h = |name: &str| -> Result<u64> { Ok(resp.headers()[name].to_str()?.parse()?) };
        ensure!(h("ratelimit-limit")? == 2000);
        ensure!(h("ratelimit-remaining")? == 2000 - (c as u64 + 1));
        ensure!((1..=86_400).contains(&h("ratelimit-reset")?));
    }
    // A refusal carries them too.
    let tight = svc
        .issue_key("app", json!({"quota": {"limit": 1, "windowSeconds": 3600}}))
        .await?;
    for expected in [200, 429] {
        let resp = svc
            .http
            .post(svc.url("/api/v1/verify/session"))
            .bearer_auth(&tight)
            .json(&json!({"pid": "app", "clientId": "tight"}))
            .send()
            .await?;
        ensure!(resp.status() == expected);
        ensure!(resp.headers()["ratelimit-limit"] == "1");
    }

    // Without a token there is nothing; with either token, one scrape sums
    // every instance once each has flushed (metrics_flush_seconds = 1).
    let (s, _) = send(svc.http.get(svc.url("/metrics"))).await?;
    ensure!(s == 401, "{s}");
    wait_until_async(
        Duration::from_secs(60),
        "every instance's creates in one scrape",
        || async {
            // A request on each instance lets it flush once its interval passed.
            for i in 0..n {
                let _ = svc.http.get(svc.url_on(i, "/healthz")).send().await;
            }
            let seen = scrape(svc, n - 1, ADMIN_TOKEN).await.ok();
            seen.as_ref().and_then(creates_seen) == Some(6)
        },
    )
    .await?;
    let scrape = scrape(svc, 0, ADMIN_TOKEN).await?;
    ensure!(creates_seen(&scrape) == Some(6), "stable once flushed");
    ensure!(find(&scrape, "dock_sessions_created_total", &[("pid", "app")]) == Some(6.0));
    ensure!(find(&scrape, "dock_quota_rejections_total", &[("pid", "app")]) == Some(1.0));
    ensure!(find(&scrape, "dock_waiters", &[("pid", "app")]) == Some(0.0));
    ensure!(find(&scrape, "dock_store_errors_total", &[]) == Some(0.0));
    // Buckets are cumulative and end at the count.
    for s in &scrape.samples {
        if let PValue::Histogram(buckets) = &s.value {
            let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
            ensure!(counts.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
            ensure!(
                buckets.last().is_some_and(|b| b.less_than == f64::INFINITY),
                "{s:?}"
            );
        }
    }
    // The metrics token works there and nowhere else.
    scrape_ok(svc, METRICS_TOKEN).await?;
    let (s, _) = send(
        svc.http
            .get(svc.url("/api/v1/admin/stats"))
            .bearer_auth(METRICS_TOKEN),
    )
    .await?;
    ensure!(s == 401, "the metrics token is not an admin token: {s}");
    Ok(())
}

async fn scrape_ok(svc: &Service, token: &str) -> Result<()> {
    scrape(svc, 0, token).await.map(drop)
}

const VARS: &[(&str, &str)] = &[
    ("metrics_flush_seconds", "1"),
    ("metrics_token", METRICS_TOKEN),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scrape_sums_two_instances_on_redis() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, VARS).await?;
    scenario(&svc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_sqlite() -> Result<()> {
    let svc = Service::start(StoreKind::Sqlite, VARS).await?;
    scenario(&svc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_do_not_exist_without_a_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = tokio::task::block_in_place(|| Host::start(&manifest, &["--sqlite-db", "memory"]))?;
    let (s, body) = send(
        api_support::client()
            .get(host.url("/metrics"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await?;
    ensure!(
        s == 404 && body["error"]["code"] == "not_found",
        "{s} {body}"
    );
    Ok(())
}
