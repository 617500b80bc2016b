//! Exactly-once delivery at scale: two dock-host instances share one Redis;
//! 1000 SSE waiters split across them; 1000 completions, each sent through
//! the instance its waiter is NOT on. Every waiter must receive exactly one
//! `complete` event, with its own session's ids, and then the stream ends.

#[path = "api_support/mod.rs"]
mod api_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use api_support::{Service, StoreKind};
use futures::future::try_join_all;
use serde_json::{Value, json};

const WAITERS: usize = 1000;
const T: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_waiters_on_two_instances_each_get_exactly_one_completion() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, &[("max_streams_per_key", "2000")]).await?;
    let key = svc.tenant("pid-load").await?;

    // Sessions, created in parallel batches.
    let mut sids = Vec::with_capacity(WAITERS);
    for batch in (0..WAITERS).collect::<Vec<_>>().chunks(50) {
        let created = try_join_all(batch.iter().map(|i| {
            let client_id = format!("user-{i}");
            let (svc, key) = (&svc, &key);
            async move { svc.create_sid(key, "pid-load", &client_id).await }
        }))
        .await?;
        sids.extend(created);
    }

    // Waiters: waiter i on instance i % 2; each has seen `pending` before any completion.
    let mut streams = Vec::with_capacity(WAITERS);
    for batch in (0..WAITERS).collect::<Vec<_>>().chunks(100) {
        let opened = try_join_all(
            batch
                .iter()
                .map(|&i| svc.stream_on(i % 2, &key, &sids[i], None)),
        )
        .await?;
        streams.extend(opened);
    }
    let mut readers = Vec::with_capacity(WAITERS);
    for (i, mut s) in streams.into_iter().enumerate() {
        ensure!(s.status == 200, "stream {i}: {}", s.status);
        let first = s.expect(T).await?;
        ensure!(first.event == "pending", "stream {i} began with {first:?}");
        readers.push(tokio::spawn(async move {
            let mut completes = Vec::new();
            while let Some(e) = s.next(T).await? {
                ensure!(e.event == "complete", "stream {i}: unexpected {e:?}");
                completes.push(serde_json::from_str::<Value>(&e.data)?);
            }
            anyhow::Ok(completes)
        }));
    }

    // Completions through the other instance.
    let started = Instant::now();
    for batch in (0..WAITERS).collect::<Vec<_>>().chunks(50) {
        let done = try_join_all(batch.iter().map(|&i| {
            let (discord, roblox) = ((10_000 + i).to_string(), (20_000 + i).to_string());
            let (svc, sid) = (&svc, &sids[i]);
            async move { svc.complete_on((i + 1) % 2, sid, &discord, &roblox).await }
        }))
        .await?;
        for (s, body) in done {
            ensure!(s == 200, "complete: {s} {body}");
        }
    }

    let mut delivered = 0;
    for (i, r) in readers.into_iter().enumerate() {
        let completes = r.await?.with_context(|| format!("waiter {i}"))?;
        ensure!(
            completes.len() == 1,
            "waiter {i} got {} completions",
            completes.len()
        );
        let c = &completes[0];
        ensure!(
            c["sid"] == json!(sids[i]),
            "waiter {i} got another session's event: {c}"
        );
        ensure!(
            c["result"]["discordId"] == json!((10_000 + i).to_string()),
            "waiter {i}: {c}"
        );
        ensure!(
            c["result"]["robloxId"] == json!((20_000 + i).to_string()),
            "waiter {i}: {c}"
        );
        delivered += 1;
    }
    println!(
        "{WAITERS} waiters on 2 instances, {WAITERS} completions: {delivered} delivered exactly once, \
         0 lost, 0 duplicated; all delivered {:?} after the first completion was sent",
        started.elapsed()
    );
    ensure!(delivered == WAITERS);
    Ok(())
}
