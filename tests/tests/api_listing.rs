//! `GET /api/v1/verify/sessions` over HTTP: a key's own PID only, newest
//! first, pages that neither repeat nor skip while other clients create
//! sessions on another instance, the filters, and bad queries. (The paging
//! rules run natively on all three stores in `cargo test -p dock-spin-app`.)

mod api_support;

use std::collections::HashSet;

use anyhow::{Context as _, Result, ensure};
use api_support::{Service, StoreKind, send};
use serde_json::{Value, json};

async fn page(svc: &Service, i: usize, key: &str, query: &str) -> Result<(u16, Value)> {
    send(
        svc.http
            .get(svc.url_on(i, &format!("/api/v1/verify/sessions{query}")))
            .bearer_auth(key),
    )
    .await
}

async fn scenario(svc: &Service) -> Result<()> {
    let last = svc.hosts.len() - 1;
    let key = svc.tenant("app").await?;
    let other = svc.tenant("other").await?;
    let mut made = Vec::new();
    for n in 0..25 {
        let (s, body) = svc
            .create(&key, json!({"pid": "app", "clientId": format!("user-{}", n % 5), "guildId": format!("g{n}")}))
            .await?;
        ensure!(s == 200, "{s} {body}");
        made.push(body["data"]["sid"].as_str().context("sid")?.to_owned());
    }
    svc.create_sid(&other, "other", "user-0").await?;

    // Page through on the last instance while 20 more sessions are created
    // concurrently on the first: the original 25 come exactly once, in order.
    let creator = {
        let (http, url, key) = (
            svc.http.clone(),
            svc.url("/api/v1/verify/session"),
            key.clone(),
        );
        tokio::spawn(async move {
            for n in 0..20 {
                let body = json!({"pid": "app", "clientId": "late", "guildId": format!("l{n}")});
                let _ = http.post(&url).bearer_auth(&key).json(&body).send().await;
            }
        })
    };
    let (s, first) = page(svc, last, &key, "?limit=7").await?;
    ensure!(s == 200, "{s} {first}");
    let mut seen: Vec<String> = Vec::new();
    let mut body = first;
    let newest = body["data"]["sessions"][0]["sid"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    loop {
        for v in body["data"]["sessions"].as_array().context("sessions")? {
            ensure!(v["pid"] == "app", "another PID's session: {v}");
            seen.push(v["sid"].as_str().context("sid")?.to_owned());
        }
        let Some(cursor) = body["data"]["nextCursor"].as_str() else {
            break;
        };
        let (s, next) = page(svc, last, &key, &format!("?limit=7&cursor={cursor}")).await?;
        ensure!(s == 200, "{s} {next}");
        body = next;
    }
    creator.await?;
    let unique: HashSet<&String> = seen.iter().collect();
    ensure!(unique.len() == seen.len(), "a session came twice: {seen:?}");
    // Everything from the first page's newest back is there, newest first.
    let start = made.iter().position(|s| *s == newest);
    let expected: Vec<String> = match start {
        Some(i) => made[..=i].iter().rev().cloned().collect(),
        None => made.iter().rev().cloned().collect(),
    };
    let tail: Vec<String> = seen.iter().filter(|s| made.contains(s)).cloned().collect();
    ensure!(tail == expected, "listing {seen:?}\nexpected {expected:?}");

    // Filters.
    let (_, mine) = page(svc, 0, &key, "?clientId=user-3&limit=100").await?;
    let sessions = mine["data"]["sessions"].as_array().context("sessions")?;
    ensure!(
        sessions.len() == 5 && sessions.iter().all(|v| v["clientId"] == "user-3"),
        "{mine}"
    );
    svc.complete(&made[4], "111", "900").await?;
    let (_, done) = page(svc, 0, &key, "?status=completed").await?;
    ensure!(
        done["data"]["sessions"].as_array().map(Vec::len) == Some(1),
        "{done}"
    );
    ensure!(
        done["data"]["sessions"][0]["sid"] == made[4].as_str(),
        "{done}"
    );
    let (_, theirs) = page(svc, 0, &other, "?limit=100").await?;
    ensure!(
        theirs["data"]["sessions"].as_array().map(Vec::len) == Some(1),
        "{theirs}"
    );

    // Bad queries: 400 with a stable code; no key: 401.
    for q in [
        "?limit=0",
        "?limit=101",
        "?status=done",
        "?cursor=nope",
        "?clientId=",
    ] {
        let (s, body) = page(svc, 0, &key, q).await?;
        ensure!(
            s == 400 && body["error"]["code"] == "invalid_query",
            "{q}: {s} {body}"
        );
    }
    let (s, _) = send(svc.http.get(svc.url("/api/v1/verify/sessions"))).await?;
    ensure!(s == 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_across_two_instances_on_redis() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, &[]).await?;
    scenario(&svc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_on_sqlite() -> Result<()> {
    let svc = Service::start(StoreKind::Sqlite, &[]).await?;
    scenario(&svc).await
}
