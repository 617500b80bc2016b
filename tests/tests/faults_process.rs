//! Process faults, with real processes the test owns (dock-host instances and
//! `redis-server`), and clients that behave like an integrator's: they
//! reconnect, resume streams with `Last-Event-ID` and honour `Retry-After`.
//!
//! - Redis with an append-only file (`--appendfsync always`) SIGKILLed while
//!   long-polls and streams are open, and while a writer creates and completes
//!   sessions: every waiter gets a prompt 503 or a clean stream end; Redis
//!   restarted on the same port and data directory: everything acknowledged
//!   before the kill is there, unchanged, and the reconnecting waiters get
//!   the completions made after the restart.
//! - A dock-host instance SIGKILLed while clients wait on it, and started
//!   again on the same port: the clients reconnect and get the result
//!   completed (through another instance) while it was down, and after.
//! - Redis down at create: 503 `store_unavailable` with `Retry-After`, and no
//!   key written; a create that fails half-way (the session script refused
//!   after the sid index was written) leaves only that index, which names no
//!   state, answers 404 everywhere and expires.
//! - Expiry under load: 200 sessions, each waited on by a stream and a
//!   long-poll, expire unattended: each waiter sees `expired` exactly once;
//!   completing an expired session is 409 `session_expired`. On two instances
//!   sharing Redis, and on one instance with the embedded SQLite.
//!
//! Every wait has a deadline; the pauses in the client loops are the
//! clients' own retry back-off, not synchronization.

#[path = "api_support/mod.rs"]
mod api_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind};
use dock_core::Timestamp;
use dock_core::sse::{DecodedEvent, Decoder};
use dock_tests::RedisServer;
use futures::StreamExt as _;
use futures::future::try_join_all;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Ordinary request and event deadline.
const T: Duration = Duration::from_secs(20);
/// A waiter must notice a dead store or host within this.
const PROMPT: Duration = Duration::from_secs(5);
/// The back-off of the test's clients between attempts (Retry-After wins when sent).
const CLIENT_RETRY: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// An integrator's clients: reconnect until a terminal answer or a deadline.
// ---------------------------------------------------------------------------

/// What a reconnecting client went through.
#[derive(Debug)]
struct Waited {
    /// Attempts that did not end in the answer: (when, how), in order.
    attempts: Vec<(Instant, String)>,
    /// The terminal session view.
    view: Value,
    /// Stream clients: every event received, over all connections.
    events: Vec<DecodedEvent>,
    /// When the answer arrived (wall clock, ms since the epoch).
    answered_ms: u64,
}

/// Shared by a group of clients: how many failed attempts each client has
/// had, for the test to wait on ("every client has noticed").
#[derive(Debug, Clone, Default)]
struct Noticed(Arc<Mutex<BTreeMap<String, usize>>>);

impl Noticed {
    /// How many clients have had at least `failures` failed attempts.
    fn clients_with(&self, failures: usize) -> usize {
        self.0
            .lock()
            .map(|m| m.values().filter(|&&n| n >= failures).count())
            .unwrap_or(0)
    }

    /// Failed attempts in all.
    fn total(&self) -> usize {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn add(&self, client: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(client.to_owned()).or_default() += 1;
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

fn note(attempts: &mut Vec<(Instant, String)>, noticed: &Noticed, client: &str, what: String) {
    attempts.push((Instant::now(), what));
    noticed.add(client);
}

/// A long-poll client: `GET ?wait=25` until the session is terminal;
/// reconnects after errors, honours `Retry-After` on 503.
fn long_poll_client(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    sid: &str,
    deadline: Instant,
    noticed: &Noticed,
) -> JoinHandle<Result<Waited>> {
    let url = format!("{base}/api/v1/verify/session/{sid}?wait=25");
    let (http, key, sid, noticed) = (
        http.clone(),
        key.to_owned(),
        sid.to_owned(),
        noticed.clone(),
    );
    let me = format!("long-poll {sid} on {base}");
    tokio::spawn(async move {
        let mut attempts = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(!left.is_zero(), "{sid}: no answer in time; {attempts:?}");
            let sent = tokio::time::timeout(left, http.get(&url).bearer_auth(&key).send()).await;
            let resp = match sent {
                Err(_) => bail!("{sid}: no answer in time; {attempts:?}"),
                Ok(Err(e)) => {
                    note(&mut attempts, &noticed, &me, format!("request failed: {e}"));
                    tokio::time::sleep(CLIENT_RETRY).await;
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status().as_u16();
            let wait = retry_after(&resp);
            let body: Value = match tokio::time::timeout(left, resp.json()).await {
                Err(_) => bail!("{sid}: body not finished in time"),
                Ok(Err(e)) => {
                    note(&mut attempts, &noticed, &me, format!("body failed: {e}"));
                    tokio::time::sleep(CLIENT_RETRY).await;
                    continue;
                }
                Ok(Ok(b)) => b,
            };
            match status {
                200 if body["data"]["status"] == "pending" => {
                    // The wait ran out: an integrator simply asks again.
                    attempts.push((Instant::now(), "200 pending (wait over)".into()));
                }
                200 => {
                    return Ok(Waited {
                        attempts,
                        view: body["data"].clone(),
                        events: Vec::new(),
                        answered_ms: epoch_ms(),
                    });
                }
                503 => {
                    let code = body["error"]["code"].as_str().unwrap_or("?").to_owned();
                    ensure!(wait.is_some(), "{sid}: 503 without Retry-After: {body}");
                    note(&mut attempts, &noticed, &me, format!("503 {code}"));
                    tokio::time::sleep(wait.unwrap_or(CLIENT_RETRY)).await;
                }
                _ => bail!("{sid}: unexpected {status} {body}"),
            }
        }
    })
}

fn is_terminal(event: &str) -> bool {
    matches!(event, "complete" | "expired" | "cancelled")
}

/// An SSE client: reads events until a terminal one (after which the stream
/// must end); reconnects after a stream end or error with `Last-Event-ID`;
/// honours `Retry-After` on 503.
fn sse_client(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    sid: &str,
    deadline: Instant,
    noticed: &Noticed,
) -> JoinHandle<Result<Waited>> {
    let url = format!("{base}/api/v1/verify/session/{sid}/stream");
    let (http, key, sid, noticed) = (
        http.clone(),
        key.to_owned(),
        sid.to_owned(),
        noticed.clone(),
    );
    let me = format!("stream {sid} on {base}");
    tokio::spawn(async move {
        let mut attempts = Vec::new();
        let mut events: Vec<DecodedEvent> = Vec::new();
        let mut last_id: Option<String> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "{sid}: no terminal event in time; {attempts:?} {events:?}"
            );
            let mut req = http.get(&url).bearer_auth(&key);
            if let Some(id) = &last_id {
                req = req.header("last-event-id", id.as_str());
            }
            let resp = match tokio::time::timeout(left, req.send()).await {
                Err(_) => bail!("{sid}: no answer in time; {attempts:?} {events:?}"),
                Ok(Err(e)) => {
                    note(&mut attempts, &noticed, &me, format!("connect failed: {e}"));
                    tokio::time::sleep(CLIENT_RETRY).await;
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status().as_u16();
            if status != 200 {
                let wait = retry_after(&resp);
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                ensure!(
                    status == 503 && wait.is_some(),
                    "{sid}: stream refused with {status} {body}"
                );
                let code = body["error"]["code"].as_str().unwrap_or("?").to_owned();
                note(&mut attempts, &noticed, &me, format!("503 {code}"));
                tokio::time::sleep(wait.unwrap_or(CLIENT_RETRY)).await;
                continue;
            }
            let mut body = resp.bytes_stream();
            let mut decoder = Decoder::new();
            let ended = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, body.next()).await {
                    Err(_) => bail!("{sid}: stream idle past the deadline; {events:?}"),
                    Ok(None) => break "stream ended".to_owned(),
                    Ok(Some(Err(e))) => break format!("stream broken: {e}"),
                    Ok(Some(Ok(chunk))) => {
                        let batch = decoder.feed(&chunk);
                        let n = batch.len();
                        for (i, e) in batch.into_iter().enumerate() {
                            if !e.id.is_empty() {
                                last_id = Some(e.id.clone());
                            }
                            let terminal = is_terminal(&e.event);
                            events.push(e);
                            if !terminal {
                                continue;
                            }
                            ensure!(
                                i + 1 == n,
                                "{sid}: events after the terminal one: {events:?}"
                            );
                            // The server ends the stream after a terminal event.
                            match tokio::time::timeout(T, body.next()).await {
                                Ok(None) => {}
                                other => {
                                    bail!("{sid}: the stream went on after {events:?}: {other:?}")
                                }
                            }
                            let data = &events.last().context("no event")?.data;
                            return Ok(Waited {
                                view: serde_json::from_str(data)?,
                                attempts,
                                events,
                                answered_ms: epoch_ms(),
                            });
                        }
                    }
                }
            };
            note(&mut attempts, &noticed, &me, ended);
            tokio::time::sleep(CLIENT_RETRY).await;
        }
    })
}

/// `(event, id)` pairs, for comparing event sequences.
fn names(events: &[DecodedEvent]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| (e.event.as_str(), e.id.as_str()))
        .collect()
}

async fn join(handles: Vec<JoinHandle<Result<Waited>>>) -> Result<Vec<Waited>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}

/// POST a create with `key` to `base`, returning status, Retry-After and body.
async fn create_raw(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: Value,
) -> Result<(u16, Option<Duration>, Value)> {
    let resp = http
        .post(format!("{base}/api/v1/verify/session"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await?;
    let (status, retry) = (resp.status().as_u16(), retry_after(&resp));
    Ok((status, retry, resp.json().await?))
}

/// POST an admin completion to `base`.
async fn complete_raw(
    http: &reqwest::Client,
    base: &str,
    sid: &str,
    discord: &str,
    roblox: &str,
) -> Result<(u16, Value)> {
    let resp = http
        .post(format!("{base}/api/v1/admin/sessions/{sid}/complete"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"discordId": discord, "robloxId": roblox}))
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

fn sid_of(body: &Value) -> Result<String> {
    Ok(body["data"]["sid"].as_str().context("no sid")?.to_owned())
}

// ---------------------------------------------------------------------------
// 1. Redis with AOF, SIGKILLed under waiters and writes, restarted on its data.
// ---------------------------------------------------------------------------

/// What the writer had acknowledged when Redis died.
#[derive(Debug, Default)]
struct Acked {
    /// sid → clientId, for every create answered 200.
    created: BTreeMap<String, String>,
    /// sid → the view of every completion answered 200.
    completed: BTreeMap<String, Value>,
}

/// Creates and completes sessions through both instances, in turn, until
/// `stop`, recording what was acknowledged; counts failed requests in `failed`.
fn writer(
    svc_bases: [String; 2],
    key: String,
    stop: Arc<AtomicBool>,
    failed: Noticed,
) -> JoinHandle<Result<Acked>> {
    let http = api_support::client();
    tokio::spawn(async move {
        let mut acked = Acked::default();
        for n in 0usize.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let base = &svc_bases[n % 2];
            let created = create_raw(
                &http,
                base,
                &key,
                json!({"pid": "pid-aof", "clientId": format!("writer-{n}")}),
            )
            .await;
            let sid = match created {
                Ok((200, _, body)) => {
                    let sid = sid_of(&body)?;
                    acked.created.insert(sid.clone(), format!("writer-{n}"));
                    sid
                }
                Ok((503, Some(_), _)) | Err(_) => {
                    failed.add("writer");
                    tokio::time::sleep(CLIENT_RETRY).await;
                    continue;
                }
                Ok((s, _, body)) => bail!("writer create: {s} {body}"),
            };
            let other = &svc_bases[(n + 1) % 2];
            let (discord, roblox) = ((500_000 + n).to_string(), (600_000 + n).to_string());
            match complete_raw(&http, other, &sid, &discord, &roblox).await {
                Ok((200, body)) => {
                    acked.completed.insert(sid, body["data"].clone());
                }
                Ok((503, _)) | Err(_) => {
                    failed.add("writer");
                }
                Ok((s, body)) => bail!("writer complete: {s} {body}"),
            }
        }
        Ok(acked)
    })
}

/// A pooled instance keeps its Redis connection between requests; after a
/// Redis restart that connection is a dead socket. The first request to find
/// it reconnects and is served: no 503 once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_serve_at_once_after_a_redis_restart() -> Result<()> {
    const WARM: usize = 4;
    let data = tempfile::tempdir()?;
    let redis = RedisServer::start_persistent(data.path())?;
    let mut svc = Service::start_on_redis_with(
        redis,
        1,
        &[
            "--max-instance-concurrent-reuse-count",
            "1",
            "--idle-instance-timeout",
            "10m",
        ],
        &[],
    )
    .await?;
    let key = svc.tenant("pid-warm").await?;
    let sid = svc.create_sid(&key, "pid-warm", "warm").await?;
    // WARM long-polls at once, each on an instance of its own (no concurrent
    // reuse); each instance keeps its connection when it goes idle.
    let polls = (0..WARM).map(|_| svc.get(&key, &sid, "?wait=1"));
    for r in futures::future::join_all(polls).await {
        let (s, body) = r?;
        ensure!(
            s == 200 && body["data"]["status"] == "pending",
            "{s} {body}"
        );
    }

    tokio::task::block_in_place(|| svc.redis.as_mut().context("redis")?.restart())?;

    for i in 0..2 * WARM {
        let (s, body) = svc.get(&key, &sid, "").await?;
        ensure!(
            s == 200 && body["data"]["status"] == "pending",
            "request {i} after the restart: {s} {body}"
        );
    }
    let (s, body) = svc
        .create(&key, json!({"pid": "pid-warm", "clientId": "after"}))
        .await?;
    ensure!(s == 200, "create after the restart: {s} {body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_with_aof_loses_nothing_acknowledged_and_waiters_resume() -> Result<()> {
    const PENDING: usize = 8;
    const DONE_BEFORE: usize = 8;
    let data = tempfile::tempdir()?;
    let redis = RedisServer::start_persistent(data.path())?;
    let mut svc = Service::start_on_redis(redis, 2, &[]).await?;
    let key = svc.tenant("pid-aof").await?;
    let bases = [svc.url_on(0, ""), svc.url_on(1, "")];

    // Acknowledged before the kill: sessions completed, sessions pending.
    let mut done_before = BTreeMap::new();
    for i in 0..DONE_BEFORE {
        let sid = svc
            .create_sid(&key, "pid-aof", &format!("done-{i}"))
            .await?;
        let (s, body) = svc
            .complete_on(
                i % 2,
                &sid,
                &format!("{}", 100 + i),
                &format!("{}", 200 + i),
            )
            .await?;
        ensure!(s == 200, "complete: {s} {body}");
        done_before.insert(sid, body["data"].clone());
    }
    let mut pending = Vec::new();
    for i in 0..PENDING {
        pending.push(
            svc.create_sid(&key, "pid-aof", &format!("waited-{i}"))
                .await?,
        );
    }
    let mut pending_views = BTreeMap::new();
    for sid in &pending {
        let (s, body) = svc.get(&key, sid, "").await?;
        ensure!(s == 200 && body["data"]["status"] == "pending", "{body}");
        pending_views.insert(sid.clone(), body["data"].clone());
    }

    // Each pending session: a stream and a long-poll, on different instances.
    let deadline = Instant::now() + Duration::from_secs(90);
    let noticed = Noticed::default();
    let mut streams = Vec::new();
    let mut polls = Vec::new();
    for (i, sid) in pending.iter().enumerate() {
        streams.push(sse_client(
            &svc.http,
            &bases[i % 2],
            &key,
            sid,
            deadline,
            &noticed,
        ));
        polls.push(long_poll_client(
            &svc.http,
            &bases[(i + 1) % 2],
            &key,
            sid,
            deadline,
            &noticed,
        ));
    }
    svc.wait_for_waiters(0, &pending[0], 2 * PENDING).await?;

    // A writer keeps creating and completing while Redis dies.
    let stop = Arc::new(AtomicBool::new(false));
    let writer_failed = Noticed::default();
    let writing = writer(
        bases.clone(),
        key.clone(),
        stop.clone(),
        writer_failed.clone(),
    );
    let redis_port = svc.redis.as_ref().context("redis")?.port();
    dock_tests::wait_until_async(T, "the writer to have written", || async {
        // Each writer session leaves its sid index behind.
        std::process::Command::new("redis-cli")
            .args([
                "-p",
                &redis_port.to_string(),
                "--scan",
                "--pattern",
                "dock:sid:*",
            ])
            .output()
            .is_ok_and(|o| {
                o.stdout.iter().filter(|&&b| b == b'\n').count() >= DONE_BEFORE + PENDING + 100
            })
    })
    .await?;

    let killed = Instant::now();
    svc.redis.as_mut().context("redis")?.kill();

    // Every waiter notices promptly: 503 (long-poll) or the end of its stream.
    dock_tests::wait_until_async(PROMPT, "every waiter to notice the dead Redis", || async {
        noticed.clients_with(1) == 2 * PENDING
    })
    .await?;
    let noticed_after = killed.elapsed();
    // The writer sees failures too; stop it and keep what it was told.
    dock_tests::wait_until_async(T, "the writer to see Redis down", || async {
        writer_failed.total() > 0 || writing.is_finished()
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    let acked = writing.await??;

    // Redis down: a create is refused at once, with Retry-After.
    let (s, retry, body) = create_raw(
        &svc.http,
        &bases[0],
        &key,
        json!({"pid": "pid-aof", "clientId": "while-down"}),
    )
    .await?;
    ensure!(
        s == 503 && body["error"]["code"] == "store_unavailable" && retry.is_some(),
        "{s} {retry:?} {body}"
    );

    // Redis back, same port, same append-only file.
    tokio::task::block_in_place(|| svc.redis.as_mut().context("redis")?.restart())?;
    let restarted = Instant::now();

    // Nothing acknowledged is lost: the tenant's key still works, sessions are
    // there with the state they were acknowledged in, links too.
    for (sid, view) in &done_before {
        let (s, body) = svc.get(&key, sid, "").await?;
        ensure!(
            s == 200 && &body["data"] == view,
            "{sid} after restart: {s} {body}, acknowledged {view}"
        );
    }
    let mut writer_completed = 0;
    for (sid, client_id) in &acked.created {
        let (s, body) = svc.get(&key, sid, "").await?;
        ensure!(s == 200, "acknowledged create {sid} lost: {s} {body}");
        ensure!(body["data"]["clientId"] == json!(client_id), "{body}");
        match acked.completed.get(sid) {
            Some(view) => {
                ensure!(&body["data"] == view, "{sid}: {body}, acknowledged {view}");
                writer_completed += 1;
            }
            // A completion in flight at the kill may or may not have been applied.
            None => ensure!(
                matches!(
                    body["data"]["status"].as_str(),
                    Some("pending" | "completed")
                ),
                "{body}"
            ),
        }
    }
    for (sid, view) in &done_before {
        let discord = view["result"]["discordId"].as_str().context("discordId")?;
        let (s, body) = api_support::send(
            svc.http
                .get(svc.url(&format!(
                    "/api/v1/public/discord-to-roblox?discordId={discord}"
                )))
                .bearer_auth(&key),
        )
        .await?;
        ensure!(
            s == 200 && body["data"]["robloxId"] == view["result"]["robloxId"],
            "{sid}: link {s} {body}"
        );
    }
    for (sid, view) in &pending_views {
        let (s, body) = svc.get(&key, sid, "").await?;
        ensure!(
            s == 200 && &body["data"] == view,
            "{sid}: {s} {body}, was {view}"
        );
    }

    // Completions after the restart reach the waiters, who kept reconnecting.
    let mut completed_after = BTreeMap::new();
    for (i, sid) in pending.iter().enumerate() {
        let (s, body) = svc
            .complete_on(i % 2, sid, &format!("{}", 300 + i), &format!("{}", 400 + i))
            .await?;
        ensure!(s == 200, "complete after restart: {s} {body}");
        completed_after.insert(sid.clone(), body["data"].clone());
    }
    let streams = join(streams).await?;
    let polls = join(polls).await?;
    let mut reconnects = 0;
    let mut slowest_notice = Duration::ZERO;
    for (sid, w) in pending.iter().zip(&streams) {
        ensure!(
            w.view == completed_after[sid],
            "{sid}: stream got {}",
            w.view
        );
        ensure!(
            names(&w.events) == [("pending", "1"), ("complete", "2")],
            "{sid}: stream events over all connections: {:?}",
            w.events
        );
        let (first_at, first) = w.attempts.first().context("the stream never broke")?;
        ensure!(
            first == "stream ended",
            "{sid}: the open stream ended with {first:?}, not cleanly"
        );
        slowest_notice = slowest_notice.max(first_at.duration_since(killed));
        reconnects += w.attempts.len();
    }
    for (sid, w) in pending.iter().zip(&polls) {
        ensure!(
            w.view == completed_after[sid],
            "{sid}: long-poll got {}",
            w.view
        );
        let (first_at, first) = w.attempts.first().context("the long-poll never failed")?;
        ensure!(
            first == "503 store_unavailable",
            "{sid}: the open long-poll got {first:?}"
        );
        slowest_notice = slowest_notice.max(first_at.duration_since(killed));
        reconnects += w.attempts.len();
    }
    println!(
        "Redis (AOF, appendfsync always) SIGKILLed under {PENDING} streams + {PENDING} long-polls on 2 instances \
         and a writer: all {} waiters noticed within {noticed_after:?} (slowest {slowest_notice:?}; streams \
         ended cleanly, long-polls 503 store_unavailable); after the restart on the same dir: {} + {} \
         acknowledged completed sessions, {} acknowledged creates ({} of them completed by the writer) and \
         {PENDING} pending sessions all intact (0 lost, 0 changed); {} waiters got the completions made \
         after the restart ({reconnects} failed attempts in all before that); restart to last delivery {:?}",
        2 * PENDING,
        done_before.len(),
        acked.completed.len(),
        acked.created.len(),
        writer_completed,
        streams.len() + polls.len(),
        restarted.elapsed(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. A dock-host instance SIGKILLed mid-wait, restarted on the same port.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dock_host_sigkill_mid_wait_clients_reconnect_and_get_the_result() -> Result<()> {
    use std::os::unix::process::ExitStatusExt as _;

    let mut svc = Service::start_n(StoreKind::Redis, 2, &[]).await?;
    let key = svc.tenant("pid-host").await?;
    let during = svc
        .create_sid(&key, "pid-host", "completed-while-down")
        .await?;
    let after = svc
        .create_sid(&key, "pid-host", "completed-after-restart")
        .await?;

    // Two streams and two long-polls, all on instance 0.
    let (victim, addr) = (svc.hosts[0].base_url(), svc.hosts[0].addr());
    let deadline = Instant::now() + Duration::from_secs(60);
    let noticed = Noticed::default();
    let mut waiting_during = Vec::new();
    let mut waiting_after = Vec::new();
    for (sid, group) in [(&during, &mut waiting_during), (&after, &mut waiting_after)] {
        group.push(sse_client(
            &svc.http, &victim, &key, sid, deadline, &noticed,
        ));
        group.push(long_poll_client(
            &svc.http, &victim, &key, sid, deadline, &noticed,
        ));
    }
    svc.wait_for_waiters(0, &during, 4).await?;

    // SIGKILL: no drain, no goodbye.
    svc.hosts[0].signal("KILL")?;
    let killed = Instant::now();
    let dead = svc.hosts.remove(0);
    let exit = tokio::task::block_in_place(|| dead.wait_exit(T))?;
    ensure!(exit.status.signal() == Some(9), "{:?}", exit.status);
    dock_tests::wait_until_async(
        PROMPT,
        "every client to notice the dead instance",
        || async { noticed.clients_with(1) == 4 },
    )
    .await?;
    let noticed_after = killed.elapsed();

    // Completed through the surviving instance while instance 0 is down; the
    // clients keep failing to reconnect meanwhile.
    let (s, done_during) = svc.complete_on(0, &during, "700", "800").await?;
    ensure!(s == 200, "{done_during}");
    dock_tests::wait_until_async(T, "every client to retry against the dead port", || async {
        noticed.clients_with(2) == 4
    })
    .await?;

    // The same instance configuration, on the same port.
    tokio::task::block_in_place(|| svc.add_host_at(addr))?;
    let restarted = Instant::now();
    ensure!(svc.hosts[1].base_url() == victim);
    let during_got = join(waiting_during).await?;
    let during_latency = restarted.elapsed();

    // Completed after the restart, through the restarted instance, while the
    // other two clients wait on it again.
    svc.wait_for_waiters(1, &after, 2).await?;
    let (s, done_after) = svc.complete_on(1, &after, "701", "801").await?;
    ensure!(s == 200, "{done_after}");
    let after_got = join(waiting_after).await?;

    let mut attempts = 0;
    for (got, done) in [(&during_got, &done_during), (&after_got, &done_after)] {
        let [stream, poll] = got.as_slice() else {
            bail!("two clients per session")
        };
        ensure!(stream.view == done["data"], "stream got {}", stream.view);
        ensure!(poll.view == done["data"], "long-poll got {}", poll.view);
        ensure!(
            names(&stream.events) == [("pending", "1"), ("complete", "2")],
            "stream events over all connections: {:?}",
            stream.events
        );
        for w in [stream, poll] {
            let (_, first) = w
                .attempts
                .first()
                .context("the client never noticed the kill")?;
            ensure!(
                first.starts_with("stream")
                    || first.starts_with("request failed")
                    || first.starts_with("body failed"),
                "first failure {first:?}"
            );
            // The kill, then at least one refused reconnect while it was down.
            ensure!(w.attempts.len() >= 2, "attempts: {:?}", w.attempts);
            attempts += w.attempts.len();
        }
    }
    println!(
        "dock-host SIGKILLed under 2 streams + 2 long-polls: all 4 clients noticed within {noticed_after:?}; \
         restarted on the same port; the result completed while it was down reached both of its clients \
         {during_latency:?} after the restart, the one completed after the restart reached both of its; \
         stream events pending(1) then complete(2), never repeated; {attempts} failed attempts in all"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. Redis down at create: 503, and no partial session.
// ---------------------------------------------------------------------------

/// Every key in Redis except counters: quota counters (`:q:`, they count
/// attempts and their window may roll over) and operator statistics
/// (`dock:stats`, `dock:{P}:stats`, they count errors too). What is left
/// holds state: sessions, their events, reuse slots, sid indexes, keys, PIDs.
fn keys(redis: &RedisServer) -> Result<BTreeSet<String>> {
    Ok(redis
        .cli(&["--scan"])?
        .lines()
        .filter(|k| !k.is_empty() && !k.contains(":q:") && !k.ends_with("stats"))
        .map(str::to_owned)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_create_is_503_and_leaves_no_partial_session() -> Result<()> {
    const TTL_SECS: u64 = 60;
    const RETENTION_SECS: u64 = 600;
    let data = tempfile::tempdir()?;
    let redis = RedisServer::start_persistent(data.path())?;
    let ttl = TTL_SECS.to_string();
    let retention = RETENTION_SECS.to_string();
    let mut svc = Service::start_on_redis(
        redis,
        1,
        &[
            ("session_ttl_seconds", &ttl),
            ("session_retention_seconds", &retention),
        ],
    )
    .await?;
    let key = svc.tenant("pid-partial").await?;
    let kept = svc.create_sid(&key, "pid-partial", "u0").await?;
    let base = svc.url("");
    let before = keys(svc.redis.as_ref().context("redis")?)?;

    // Redis killed: every create is a prompt 503 with Retry-After.
    svc.redis.as_mut().context("redis")?.kill();
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    for i in 1..=5 {
        let t = Instant::now();
        let (s, retry, body) = create_raw(
            &svc.http,
            &base,
            &key,
            json!({"pid": "pid-partial", "clientId": format!("u{i}")}),
        )
        .await?;
        slowest = slowest.max(t.elapsed());
        ensure!(
            s == 503 && body["error"]["code"] == "store_unavailable",
            "create with Redis down: {s} {body}"
        );
        ensure!(
            retry.is_some_and(|r| r >= Duration::from_secs(1)),
            "Retry-After: {retry:?}"
        );
        refused += 1;
    }
    ensure!(slowest < PROMPT, "a refused create took {slowest:?}");

    // Back on the same data: exactly the keys there were, the old session intact.
    tokio::task::block_in_place(|| svc.redis.as_mut().context("redis")?.restart())?;
    let redis = svc.redis.as_ref().context("redis")?;
    let after = keys(redis)?;
    ensure!(
        after == before,
        "keys changed while Redis was down: {before:?} → {after:?}"
    );
    let (s, body) = svc.get(&key, &kept, "").await?;
    ensure!(
        s == 200 && body["data"]["status"] == "pending",
        "{s} {body}"
    );

    // A create that fails half-way: the sid index (written first, outside the
    // session script, because it has no PID hash tag) succeeds, then Redis
    // refuses the script: an ACL lets the app write every key except the
    // session's record (`:s:`), events (`:e:`) and reuse slot (`:r:`).
    redis.cli(&[
        "ACL",
        "SETUSER",
        "default",
        "resetkeys",
        "%R~*",
        "~dock:[^{]*",
        "~dock:{pid-partial}:[^ser]*",
        "~dock:{pid-partial}:[ser][^:]*",
    ])?;
    let half = create_raw(
        &svc.http,
        &base,
        &key,
        json!({"pid": "pid-partial", "clientId": "half"}),
    )
    .await;
    redis.cli(&["ACL", "SETUSER", "default", "resetkeys", "~*"])?;
    let (s, retry, body) = half?;
    ensure!(
        s == 503 && body["error"]["code"] == "store_unavailable" && retry.is_some(),
        "half-way create: {s} {retry:?} {body}"
    );
    let now = keys(redis)?;
    let new: Vec<&String> = now.difference(&before).collect();
    let [index] = new.as_slice() else {
        bail!("expected exactly the sid index to be left, got {new:?}")
    };
    let dangling = index
        .strip_prefix("dock:sid:")
        .with_context(|| format!("{index} is not a sid index"))?;
    ensure!(
        !now.iter().any(|k| k.contains(dangling) && k != *index),
        "a session key was written: {now:?}"
    );
    ensure!(redis.cli(&["GET", index])? == "pid-partial");
    // It names no state, and it expires: at most TTL + retention from now.
    let pttl: u64 = redis.cli(&["PTTL", index])?.parse()?;
    ensure!(
        pttl > 0 && pttl <= (TTL_SECS + RETENTION_SECS) * 1000,
        "the dangling index lives {pttl} ms"
    );
    // Every path that could find a session by that sid says 404.
    let (s, body) = svc.get(&key, dangling, "").await?;
    ensure!(
        s == 404 && body["error"]["code"] == "session_not_found",
        "GET: {s} {body}"
    );
    let (s, body) = svc.complete(dangling, "1", "2").await?;
    ensure!(
        s == 404 && body["error"]["code"] == "session_not_found",
        "admin complete: {s} {body}"
    );
    let (s, body) = api_support::send(
        svc.http
            .delete(svc.url(&format!("/api/v1/verify/session/{dangling}")))
            .bearer_auth(&key),
    )
    .await?;
    ensure!(
        s == 404 && body["error"]["code"] == "session_not_found",
        "DELETE: {s} {body}"
    );
    let resp = svc
        .http
        .get(svc.url(&format!("/api/v1/verify/session/{dangling}/stream")))
        .bearer_auth(&key)
        .send()
        .await?;
    ensure!(resp.status() == 404, "stream: {}", resp.status());
    // The retry creates a fresh session; nothing of the failed one is reused.
    let (s, _, body) = create_raw(
        &svc.http,
        &base,
        &key,
        json!({"pid": "pid-partial", "clientId": "half"}),
    )
    .await?;
    ensure!(
        s == 200 && body["data"]["reusedExisting"] == false,
        "{s} {body}"
    );
    ensure!(sid_of(&body)? != dangling);
    println!(
        "Redis SIGKILLed: {refused}/{refused} creates answered 503 store_unavailable with Retry-After \
         (slowest {slowest:?}); after the restart on the same AOF the key set is unchanged (0 partial \
         sessions). A create refused half-way left only its sid index: no session, event or reuse key; \
         404 on GET, stream, DELETE and admin complete; expires in {pttl} ms (≤ TTL + retention); the \
         retried create made a fresh session"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Expiry under load.
// ---------------------------------------------------------------------------

const EXPIRING: usize = 200;
/// Long enough to create the sessions and open every waiter before the first
/// one expires on a loaded 2-core machine (debug build); the test checks that
/// every stream saw `pending` first.
const EXPIRY_TTL_SECS: u64 = 20;

/// Creates `EXPIRING` sessions, waits on each with a stream and a long-poll
/// (on different instances when there are two), never completes them.
async fn expiry_under_load(svc: &Service, label: &str) -> Result<()> {
    let n = svc.hosts.len();
    let bases: Vec<String> = (0..n).map(|i| svc.url_on(i, "")).collect();
    let key = svc.tenant("pid-expiry").await?;
    let started = Instant::now();
    let mut sids = Vec::with_capacity(EXPIRING);
    for batch in (0..EXPIRING).collect::<Vec<_>>().chunks(50) {
        let created = try_join_all(batch.iter().map(|&i| {
            let (http, base, key) = (&svc.http, &bases[i % n], &key);
            async move {
                let body = json!({"pid": "pid-expiry", "clientId": format!("user-{i}")});
                match create_raw(http, base, key, body).await? {
                    (200, _, body) => sid_of(&body),
                    (s, _, body) => bail!("create: {s} {body}"),
                }
            }
        }))
        .await?;
        sids.extend(created);
    }
    let deadline = Instant::now() + Duration::from_secs(EXPIRY_TTL_SECS + 60);
    let noticed = Noticed::default();
    let mut streams = Vec::with_capacity(EXPIRING);
    let mut polls = Vec::with_capacity(EXPIRING);
    for (i, sid) in sids.iter().enumerate() {
        streams.push(sse_client(
            &svc.http,
            &bases[i % n],
            &key,
            sid,
            deadline,
            &noticed,
        ));
        polls.push(long_poll_client(
            &svc.http,
            &bases[(i + 1) % n],
            &key,
            sid,
            deadline,
            &noticed,
        ));
    }
    if svc.redis.is_some() {
        svc.wait_for_waiters(0, &sids[0], 2 * EXPIRING).await?;
    }
    let all_waiting = started.elapsed();

    let streams = join(streams).await?;
    let polls = join(polls).await?;
    let (mut sse_expired, mut poll_expired) = (0, 0);
    let mut late_ms = Vec::with_capacity(2 * EXPIRING);
    for (i, (sid, (s, p))) in sids.iter().zip(streams.iter().zip(&polls)).enumerate() {
        let expires_at = s.view["expiresAt"].as_str().context("expiresAt")?;
        let expires_ms = Timestamp::parse_iso8601(expires_at)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .as_millis();
        ensure!(
            names(&s.events) == [("pending", "1"), ("expired", "2")],
            "stream {i}: {:?} (attempts {:?})",
            s.events,
            s.attempts
        );
        ensure!(
            s.attempts.is_empty(),
            "stream {i} reconnected: {:?}",
            s.attempts
        );
        ensure!(
            s.view["sid"] == json!(sid) && s.view["status"] == "expired",
            "stream {i}: {}",
            s.view
        );
        sse_expired += 1;
        ensure!(
            p.attempts.is_empty(),
            "long-poll {i} asked again: {:?}",
            p.attempts
        );
        ensure!(
            p.view["sid"] == json!(sid) && p.view["status"] == "expired",
            "long-poll {i}: {}",
            p.view
        );
        poll_expired += 1;
        for answered in [s.answered_ms, p.answered_ms] {
            // Not before expiry (same clock, ms resolution), and not long after.
            ensure!(
                answered + 1 >= expires_ms,
                "waiter {i} answered before expiry"
            );
            late_ms.push(answered.saturating_sub(expires_ms));
        }
    }
    ensure!(noticed.total() == 0, "no waiter should have failed");

    // Completing an expired session is the documented 409.
    let mut refused = 0;
    for batch in (0..EXPIRING).collect::<Vec<_>>().chunks(50) {
        let done = try_join_all(
            batch
                .iter()
                .map(|&i| complete_raw(&svc.http, &bases[(i + 1) % n], &sids[i], "9", "9")),
        )
        .await?;
        for (s, body) in done {
            ensure!(
                s == 409 && body["error"]["code"] == "session_expired",
                "complete: {s} {body}"
            );
            refused += 1;
        }
    }
    let (s, body) = svc.get(&key, &sids[0], "").await?;
    ensure!(s == 200 && body["data"]["status"] == "expired", "{body}");
    late_ms.sort_unstable();
    let (median_ms, max_ms) = (late_ms[late_ms.len() / 2], late_ms[late_ms.len() - 1]);
    let opened = if svc.redis.is_some() {
        "blocked in XREAD"
    } else {
        "opened"
    };
    println!(
        "{label}: {EXPIRING} sessions (TTL {EXPIRY_TTL_SECS} s) never completed, all {} waiters {opened} \
         {all_waiting:?} after the first create; {sse_expired}/{EXPIRING} streams got `pending` then exactly \
         one `expired` and ended, {poll_expired}/{EXPIRING} long-polls answered `expired` once (no retries, \
         no errors); delivered {median_ms} ms (median) / {max_ms} ms (max) after expiresAt; \
         {refused}/{EXPIRING} completions after expiry refused 409 session_expired",
        2 * EXPIRING
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_under_load_on_two_instances_sharing_redis() -> Result<()> {
    let ttl = EXPIRY_TTL_SECS.to_string();
    let svc = Service::start_n(
        StoreKind::Redis,
        2,
        &[
            ("session_ttl_seconds", &ttl),
            ("max_streams_per_key", "1000"),
        ],
    )
    .await?;
    expiry_under_load(&svc, "Redis, 2 instances").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_under_load_on_embedded_sqlite() -> Result<()> {
    let ttl = EXPIRY_TTL_SECS.to_string();
    let svc = Service::start(
        StoreKind::Sqlite,
        &[
            ("session_ttl_seconds", &ttl),
            ("max_streams_per_key", "1000"),
        ],
    )
    .await?;
    expiry_under_load(&svc, "SQLite, 1 instance").await
}
