//! The load generator: closed-loop create load, and the wake workload (hold N
//! waiters, complete their sessions open-loop at a fixed rate, time each
//! completion request → its waiter's terminal event).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Method;
use http_body_util::BodyExt as _;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::Conn;
use crate::procs::{CpuUse, MemSplit, MemSplitPer, Meter, Redis};
use crate::proxy::CountingProxy;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the run started, plus one (0 means "not yet").
fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// What a service is asked to do, per implementation.
#[derive(Debug, Clone)]
pub struct Api {
    /// `Some((pid, key))` for the real API; `None` for the floor server.
    pub tenant: Option<crate::client::Tenant>,
    pub admin_token: String,
}

impl Api {
    fn create(&self, client_id: &str) -> (&'static str, Option<&str>, Bytes) {
        match &self.tenant {
            Some(t) => (
                "/api/v1/verify/session",
                Some(t.key.as_str()),
                crate::client::create_body(&t.pid, client_id),
            ),
            None => (
                "/create",
                None,
                crate::client::create_body("pid-bench", client_id),
            ),
        }
    }

    fn wait_path(&self, id: &str, mode: Mode) -> String {
        match (&self.tenant, mode) {
            (Some(_), Mode::Sse) => format!("/api/v1/verify/session/{id}/stream"),
            (Some(_), Mode::LongPoll) => format!("/api/v1/verify/session/{id}?wait=25"),
            (None, _) => format!("/wait/{id}"),
        }
    }

    fn complete_path(&self, id: &str) -> String {
        match &self.tenant {
            Some(_) => format!("/api/v1/admin/sessions/{id}/complete"),
            None => format!("/complete/{id}"),
        }
    }

    fn bearer(&self) -> Option<&str> {
        self.tenant.as_ref().map(|t| t.key.as_str())
    }
}

/// Closed-loop create throughput at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct CreateResult {
    pub concurrency: usize,
    /// Instances the connections were spread over (round-robin).
    pub instances: usize,
    pub requests: u64,
    /// Successful creates, warm-up included (what Redis served).
    pub all_ok: u64,
    pub per_sec: f64,
    pub latency: Latency,
    pub errors: u64,
    /// Redis' and the servers' CPU over the measured window, when metered.
    pub cpu: Option<CpuUse>,
}

impl CreateResult {
    /// Redis CPU µs per create over the measured window (`INFO cpu`).
    pub fn redis_cpu_us(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.requests > 0).then(|| cpu.redis_s * 1e6 / self.requests as f64)
    }

    /// Server CPU µs per create over the measured window (`/proc/<pid>/stat`).
    pub fn server_cpu_us(&self) -> Option<f64> {
        let server = self.cpu?.server_s?;
        (self.requests > 0).then(|| server * 1e6 / self.requests as f64)
    }
}

/// `concurrency` connections, each sending creates back to back for
/// `warmup + duration`; only requests started after the warm-up count.
pub async fn create_load(
    addr: SocketAddr,
    api: &Api,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    run_tag: &str,
) -> Result<CreateResult> {
    create_load_on(&[addr], api, concurrency, warmup, duration, run_tag, None).await
}

/// [`create_load`] with connection `w` on `addrs[w % addrs.len()]`, and,
/// with a `meter`, the CPU Redis and the servers used over the measured
/// window (read when it starts and when it ends).
pub async fn create_load_on(
    addrs: &[SocketAddr],
    api: &Api,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    run_tag: &str,
    meter: Option<&Meter<'_>>,
) -> Result<CreateResult> {
    if addrs.is_empty() {
        bail!("create load: no address");
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let addr = addrs[w % addrs.len()];
        let api = api.clone();
        let tag = format!("{run_tag}-{w}");
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            let mut all_ok = 0u64;
            let mut c = Conn::open(addr).await?;
            let mut n = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                n += 1;
                let (path, bearer, body) = api.create(&format!("{tag}-{n}"));
                let ok = match c.call(Method::POST, path, bearer, Some(body)).await {
                    Ok((s, _)) => s.is_success(),
                    Err(_) => {
                        c = Conn::open(addr).await?;
                        false
                    }
                };
                let done = Instant::now();
                all_ok += u64::from(ok);
                if t >= measure_from && done <= end {
                    if ok {
                        h.record(done.duration_since(t).as_micros().max(1) as u64)?;
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((h, errors, all_ok))
        }));
    }
    let cpu = match meter {
        Some(m) => {
            tokio::time::sleep_until(measure_from.into()).await;
            let s0 = m.sample()?;
            tokio::time::sleep_until(end.into()).await;
            Some(s0.until(&m.sample()?))
        }
        None => None,
    };
    let mut all = histogram();
    let mut errors = 0;
    let mut all_ok = 0;
    for t in tasks {
        let (h, e, ok) = t.await??;
        all.add(&h)?;
        errors += e;
        all_ok += ok;
    }
    Ok(CreateResult {
        concurrency,
        instances: addrs.len(),
        requests: all.len(),
        all_ok,
        per_sec: all.len() as f64 / duration.as_secs_f64(),
        latency: Latency::of(&all),
        errors,
        cpu,
    })
}

/// How waiters wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    #[serde(rename = "sse")]
    Sse,
    #[serde(rename = "long-poll")]
    LongPoll,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sse => "SSE",
            Mode::LongPoll => "long-poll",
        }
    }
}

/// The wake workload's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct WakeResult {
    pub mode: Mode,
    pub waiters: usize,
    pub instances: usize,
    pub rate_per_sec: f64,
    /// Completion request sent → the waiter's terminal event received.
    pub wake: Latency,
    /// The completion request's own latency.
    pub complete_call: Latency,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub waiter_errors: usize,
    pub complete_errors: usize,
    /// Server RSS growth per held waiter, KiB (summed over instances).
    pub rss_kib_per_waiter: Option<f64>,
    /// The same growth as RSS and PSS, and the PSS by what maps it
    /// (`/proc/<pid>/smaps`).
    pub mem_per_waiter: Option<MemSplitPer>,
    pub seconds_to_hold: f64,
    /// Redis commands per held waiter per minute (heartbeats, lease
    /// renewals, re-polls), over the hold window; `None` without one.
    pub redis_per_waiter_minute: Option<f64>,
    /// Redis per wake: commands, µs of Redis CPU, busiest commands — the
    /// completion's own commands and the woken waiter's included.
    pub redis_per_wake: (f64, f64, String),
    /// Redis CPU (`INFO cpu`) per wake over the completion phase, µs: the
    /// completion's and the woken waiter's, and Redis' idle cron meanwhile.
    pub redis_cpu_us_per_wake: f64,
    /// The same completions with nobody waiting.
    pub no_waiter: Option<NoWaiter>,
}

#[derive(Debug, Default)]
struct Shared {
    sent: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
    terminal: Vec<AtomicUsize>,
    ready: AtomicUsize,
    waiter_errors: AtomicUsize,
}

impl Shared {
    /// Waiter `i` saw a terminal event: the first one stamps its time, any
    /// further one counts as a duplicate.
    fn terminal(&self, i: usize) {
        let t = now_ns();
        if self.terminal[i].fetch_add(1, Ordering::SeqCst) == 0 {
            self.received[i].store(t, Ordering::SeqCst);
        }
    }
}

async fn sse_waiter(
    addr: SocketAddr,
    path: String,
    bearer: Option<String>,
    i: usize,
    s: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<()> {
    let mut permit = Some(permit);
    let mut c = Conn::open(addr).await?;
    let res = c.send(Method::GET, &path, bearer.as_deref(), None).await?;
    if !res.status().is_success() {
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        bail!("stream → {status}: {}", String::from_utf8_lossy(&body));
    }
    let mut body = res.into_body();
    let mut dec = dock_core::sse::Decoder::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        for ev in dec.feed(&data) {
            // The event vocabulary is core's, as the server's is.
            match dock_core::stream::status_of_event(&ev.event) {
                Some(status) if status.is_terminal() => s.terminal(i),
                Some(_) if permit.take().is_some() => {
                    s.ready.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

async fn poll_waiter(
    addr: SocketAddr,
    path: String,
    bearer: Option<String>,
    i: usize,
    s: Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<()> {
    let mut permit = Some(permit);
    let mut c = Conn::open(addr).await?;
    loop {
        let fut = c.call(Method::GET, &path, bearer.as_deref(), None);
        if permit.take().is_some() {
            s.ready.fetch_add(1, Ordering::SeqCst);
        }
        let (status, body) = fut.await?;
        if !status.is_success() {
            bail!("long-poll → {status}: {}", String::from_utf8_lossy(&body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if v["data"]["status"].as_str() != Some("pending") {
            s.terminal(i);
            return Ok(());
        }
    }
}

/// Waiters held on sessions (waiter `i` on `instances[i % k]`); their tasks
/// are aborted when this is dropped.
struct Held {
    s: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens one waiter per id and returns once every one is ready (SSE: its
/// `pending` event read; long-poll: sent) or failed.
async fn hold(instances: &[SocketAddr], api: &Api, ids: &[String], mode: Mode) -> Result<Held> {
    let n = ids.len();
    let k = instances.len();
    let s = Arc::new(Shared {
        sent: (0..n).map(|_| AtomicU64::new(0)).collect(),
        received: (0..n).map(|_| AtomicU64::new(0)).collect(),
        terminal: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        ..Shared::default()
    });
    // At most this many waiters connecting at once (the accept backlog).
    let gate = Arc::new(Semaphore::new(256));
    let mut held = Held {
        s: s.clone(),
        tasks: Vec::with_capacity(n),
    };
    for (i, id) in ids.iter().enumerate() {
        let permit = gate.clone().acquire_owned().await?;
        let addr = instances[i % k];
        let path = api.wait_path(id, mode);
        let bearer = api.bearer().map(str::to_owned);
        let s2 = s.clone();
        held.tasks.push(tokio::spawn(async move {
            let r = match mode {
                Mode::Sse => sse_waiter(addr, path, bearer, i, s2.clone(), permit).await,
                Mode::LongPoll => poll_waiter(addr, path, bearer, i, s2.clone(), permit).await,
            };
            if let Err(e) = r
                && s2.waiter_errors.fetch_add(1, Ordering::SeqCst) < 3
            {
                eprintln!("  waiter {i}: {e:#}");
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while s.ready.load(Ordering::SeqCst) + s.waiter_errors.load(Ordering::SeqCst) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} waiters ready after 180 s",
                s.ready.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(held)
}

/// Completes `ids[j]` (body `complete_body(first + j)`) through
/// `instances[(first + j + 1) % k]`, open loop at `rate` per second from
/// `drivers` connections; stamps `stamp.sent[j]` just before each request.
/// Returns the requests' latencies and how many failed.
async fn complete_open_loop(
    instances: &[SocketAddr],
    api: &Api,
    ids: &[String],
    first: usize,
    rate: f64,
    drivers: usize,
    stamp: Option<Arc<Shared>>,
) -> Result<(Histogram<u64>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now() + Duration::from_millis(50);
    let complete_errors = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(ids.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..drivers {
        let next = next.clone();
        let stamp = stamp.clone();
        let ids = ids.clone();
        let instances = instances.to_vec();
        let api = api.clone();
        let complete_errors = complete_errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut conns = Vec::new();
            for a in &instances {
                conns.push(Conn::open(*a).await?);
            }
            let mut h = histogram();
            loop {
                let j = next.fetch_add(1, Ordering::SeqCst);
                if j >= ids.len() {
                    break;
                }
                let i = first + j;
                let at = t0 + Duration::from_secs_f64(j as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
                let c = &mut conns[(i + 1) % instances.len()];
                let body = crate::client::complete_body(i);
                let path = api.complete_path(&ids[j]);
                let start = Instant::now();
                if let Some(s) = &stamp {
                    s.sent[j].store(now_ns(), Ordering::SeqCst);
                }
                match c
                    .call(Method::POST, &path, Some(&api.admin_token), Some(body))
                    .await
                {
                    Ok((st, _)) if st.is_success() => {
                        h.record(start.elapsed().as_micros().max(1) as u64)?;
                    }
                    Ok((st, b)) => {
                        if complete_errors.fetch_add(1, Ordering::SeqCst) < 3 {
                            eprintln!("  complete {i} → {st}: {}", String::from_utf8_lossy(&b));
                        }
                    }
                    Err(e) => {
                        complete_errors.fetch_add(1, Ordering::SeqCst);
                        eprintln!("  complete {i}: {e:#}");
                    }
                }
            }
            anyhow::Ok(h)
        }));
    }
    let mut complete_h = histogram();
    for t in tasks {
        complete_h.add(&t.await??)?;
    }
    Ok((complete_h, complete_errors.load(Ordering::SeqCst)))
}

/// The baseline of the wake workload: sessions completed the same way, with
/// no waiter on them, so that what a wake adds to its completion shows.
#[derive(Debug, Clone, Serialize)]
pub struct NoWaiter {
    pub completions: usize,
    /// Per completion: commands, µs of Redis CPU in them, busiest commands.
    pub redis_per_completion: (f64, f64, String),
    /// Redis CPU per completion (`INFO cpu`), µs.
    pub redis_cpu_us_per_completion: f64,
    pub complete_call: Latency,
}

/// Holds one waiter per id (waiter `i` on `instances[i % k]`), then completes
/// id `i` through `instances[(i + 1) % k]` at `rate` per second from `drivers`
/// connections. `mem` reads the servers' summed memory. Then, as a
/// baseline, completes `unwaited` (sessions nobody waits on) the same way.
#[allow(clippy::too_many_arguments)]
pub async fn wake(
    instances: &[SocketAddr],
    api: &Api,
    ids: &[String],
    unwaited: &[String],
    mode: Mode,
    rate: f64,
    drivers: usize,
    mem: impl Fn() -> Option<MemSplit>,
    redis: &Redis,
    hold_window: Duration,
) -> Result<WakeResult> {
    let n = ids.len();
    let k = instances.len();
    let mem_before = mem();
    let hold_start = Instant::now();
    let held = hold(instances, api, ids, mode).await?;
    let s = held.s.clone();
    // Long-poll requests are "ready" once sent; give the servers a moment to
    // register them (an early completion is still answered, just not by a wake).
    if mode == Mode::LongPoll {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seconds_to_hold = hold_start.elapsed().as_secs_f64();
    let mem_after = mem();
    let mem_per_waiter = match (mem_before, mem_after) {
        (Some(b), Some(a)) => Some(a.per(&b, n)),
        _ => None,
    };
    let rss_kib_per_waiter = mem_per_waiter.map(|m| m.rss_kib);
    // What holding the waiters costs Redis, with nothing else going on.
    let redis_per_waiter_minute = if hold_window.is_zero() {
        None
    } else {
        redis.reset_stats()?;
        tokio::time::sleep(hold_window).await;
        let held = redis.cost()?;
        Some(held.calls as f64 / n as f64 / (hold_window.as_secs_f64() / 60.0))
    };
    redis.reset_stats()?;
    let cpu0 = redis.cpu_seconds()?;

    let (complete_h, mut complete_errors) =
        complete_open_loop(instances, api, ids, 0, rate, drivers, Some(s.clone())).await?;
    // Every waiter has until 30 s after the last completion.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = s
            .received
            .iter()
            .filter(|r| r.load(Ordering::SeqCst) != 0)
            .count();
        if got == n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let redis_cpu_us_per_wake = (redis.cpu_seconds()? - cpu0).max(0.0) * 1e6 / n.max(1) as f64;
    // Let streams end (and any duplicate arrive) before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut wake_h = histogram();
    let mut delivered = 0;
    let mut duplicated = 0;
    for i in 0..n {
        let sent = s.sent[i].load(Ordering::SeqCst);
        let got = s.received[i].load(Ordering::SeqCst);
        let count = s.terminal[i].load(Ordering::SeqCst);
        if count > 1 {
            duplicated += count - 1;
        }
        if got != 0 && sent != 0 {
            delivered += 1;
            // A waiter can see the event before the driver stamped `sent`
            // (the stamp is taken just before the write); count that as ~0.
            wake_h.record((got.saturating_sub(sent) / 1000).max(1))?;
        }
    }
    let redis_per_wake = redis.cost()?.per(n as u64);
    let waiter_errors = s.waiter_errors.load(Ordering::SeqCst);
    drop(held);

    // The baseline: the same completions, nobody waiting.
    let no_waiter = if unwaited.is_empty() {
        None
    } else {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.reset_stats()?;
        let cpu0 = redis.cpu_seconds()?;
        let (h, errors) =
            complete_open_loop(instances, api, unwaited, n, rate, drivers, None).await?;
        let cpu = (redis.cpu_seconds()? - cpu0).max(0.0);
        complete_errors += errors;
        let m = unwaited.len();
        Some(NoWaiter {
            completions: m,
            redis_per_completion: redis.cost()?.per(m as u64),
            redis_cpu_us_per_completion: cpu * 1e6 / m as f64,
            complete_call: Latency::of(&h),
        })
    };
    Ok(WakeResult {
        mode,
        waiters: n,
        instances: k,
        rate_per_sec: rate,
        wake: Latency::of(&wake_h),
        complete_call: Latency::of(&complete_h),
        delivered,
        lost: n - delivered,
        duplicated,
        waiter_errors,
        complete_errors,
        rss_kib_per_waiter,
        mem_per_waiter,
        seconds_to_hold,
        redis_per_waiter_minute,
        redis_per_wake,
        redis_cpu_us_per_wake,
        no_waiter,
    })
}

/// Requests (round trips) and commands Redis received per operation.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrips {
    pub operation: String,
    /// Operations counted.
    pub operations: usize,
    /// Top-level requests that reached Redis (counting proxy), per operation.
    pub requests: f64,
    /// Round trips those took (requests pipelined together count once).
    pub round_trips: f64,
    /// Commands Redis ran (`INFO commandstats`, scripts' inner commands
    /// included), per operation.
    pub commands: f64,
}

/// One admin completion of `sid` (body `complete_body(i)`), expected to succeed.
async fn complete_one(c: &mut Conn, api: &Api, sid: &str, i: usize) -> Result<()> {
    let (st, b) = c
        .call(
            Method::POST,
            &api.complete_path(sid),
            Some(&api.admin_token),
            Some(crate::client::complete_body(i)),
        )
        .await?;
    if !st.is_success() {
        bail!("complete {sid} → {st}: {}", String::from_utf8_lossy(&b));
    }
    Ok(())
}

/// The round-trip pass, on one instance at `addr` whose Redis is `proxy`:
/// `n` creates, `n` completions nobody waits on, and `n` completions each
/// with one SSE waiter, one at a time (each wake delivered before the next
/// completion), so nothing is batched that a lone operation would not be.
/// Not timed.
pub async fn round_trips(
    addr: SocketAddr,
    api: &Api,
    n: usize,
    proxy: &CountingProxy,
    redis: &Redis,
) -> Result<Vec<RoundTrips>> {
    let tenant = api
        .tenant
        .clone()
        .context("the round-trip pass needs the real API")?;
    let mut c = Conn::open(addr).await?;
    // Warm-up: scripts loaded, connections opened, per-instance state filled.
    let warm = create_sessions(addr, api, 20, "rt-warm").await?;
    for (i, sid) in warm.iter().take(5).enumerate() {
        complete_one(&mut c, api, sid, 1_000_000 + i).await?;
    }
    let reset = || {
        proxy.reset();
        redis.reset_stats()
    };
    let row = |operation: &str| -> Result<RoundTrips> {
        Ok(RoundTrips {
            operation: operation.to_owned(),
            operations: n,
            requests: proxy.requests()? as f64 / n as f64,
            round_trips: proxy.round_trips() as f64 / n as f64,
            commands: redis.cost()?.calls as f64 / n as f64,
        })
    };
    let mut rows = Vec::new();

    reset()?;
    for i in 0..n {
        crate::client::create(&mut c, &tenant, &format!("rt-c-{i}")).await?;
    }
    rows.push(row("create")?);

    let ids = create_sessions(addr, api, n, "rt-n").await?;
    reset()?;
    for (i, sid) in ids.iter().enumerate() {
        complete_one(&mut c, api, sid, i).await?;
    }
    rows.push(row("completion, no waiter")?);

    let ids = create_sessions(addr, api, n, "rt-w").await?;
    let held = hold(&[addr], api, &ids, Mode::Sse).await?;
    let s = held.s.clone();
    if s.waiter_errors.load(Ordering::SeqCst) > 0 {
        bail!("round-trip pass: a waiter failed");
    }
    reset()?;
    for (i, sid) in ids.iter().enumerate() {
        complete_one(&mut c, api, sid, n + i).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.terminal[i].load(Ordering::SeqCst) == 0 {
            if Instant::now() > deadline {
                bail!("round-trip pass: waiter {i} got no terminal event within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The streams end after their terminal event (and release their leases).
    tokio::time::sleep(Duration::from_millis(500)).await;
    rows.push(row("completion with one SSE waiter")?);
    let dup: usize = s
        .terminal
        .iter()
        .map(|t| t.load(Ordering::SeqCst).saturating_sub(1))
        .sum();
    if dup > 0 || s.waiter_errors.load(Ordering::SeqCst) > 0 {
        bail!("round-trip pass: {dup} duplicated events, or a waiter failed");
    }
    drop(held);

    let (with, without) = (&rows[2], &rows[1]);
    let wake = RoundTrips {
        operation: "a wake: with − without a waiter".into(),
        operations: n,
        requests: with.requests - without.requests,
        round_trips: with.round_trips - without.round_trips,
        commands: with.commands - without.commands,
    };
    rows.push(wake);
    Ok(rows)
}

/// Creates `n` sessions through `addr` with `concurrency` connections; returns sids in order.
pub async fn create_sessions(
    addr: SocketAddr,
    api: &Api,
    n: usize,
    tag: &str,
) -> Result<Vec<String>> {
    let Some(t) = api.tenant.clone() else {
        return Ok((0..n).map(|i| format!("{tag}-{i}")).collect());
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let next = next.clone();
        let t = t.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                out.push((
                    i,
                    crate::client::create(&mut c, &t, &format!("{tag}-{i}")).await?,
                ));
            }
            anyhow::Ok(out)
        }));
    }
    let mut sids = vec![String::new(); n];
    for task in tasks {
        for (i, sid) in task.await?? {
            sids[i] = sid;
        }
    }
    Ok(sids)
}

/// One request kind of the low-load pass.
#[derive(Debug, Clone, Serialize)]
pub struct LowLoad {
    /// `create` (`POST …/session`) or `read` (`GET …/session/:sid`).
    pub request: &'static str,
    pub connections: usize,
    /// Requests per second offered, all connections together.
    pub rate_per_sec: f64,
    pub requests: u64,
    /// From each request's send to its whole answer (the pass is open loop:
    /// requests are sent on a schedule, not back to back, so the server is
    /// idle between them; a stalled request shows as its own latency).
    pub latency: Latency,
    /// Requests that took longer than 5 ms.
    pub over_5ms: u64,
    pub errors: u64,
}

/// Kept-alive connections sending creates (and, against the API, a read of
/// the session just created) at a low fixed total `rate`: latency when the
/// server is idle. A response written in more than one piece on a socket
/// with Nagle's algorithm on waits for the client's delayed ACK (~40 ms),
/// which saturation hides and this shows.
pub async fn low_load(
    addr: SocketAddr,
    api: &Api,
    connections: usize,
    rate: f64,
    duration: Duration,
) -> Result<Vec<LowLoad>> {
    if connections == 0 || rate <= 0.0 {
        bail!("low load: connections and rate must be positive");
    }
    // Each connection sends one create (and one read) per `every`.
    let every = Duration::from_secs_f64(connections as f64 / rate);
    let rounds = (duration.as_secs_f64() / every.as_secs_f64())
        .ceil()
        .max(1.0) as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for w in 0..connections {
        let api = api.clone();
        // Spread the connections' first sends over one period.
        let offset = every.mul_f64(w as f64 / connections as f64);
        tasks.push(tokio::spawn(async move {
            let (mut creates, mut reads) = (histogram(), histogram());
            let mut errors = [0u64; 2];
            let mut c = Conn::open(addr).await?;
            // One exchange first so that connection set-up is not measured.
            let (path, bearer, body) = api.create(&format!("low-{w}-warm"));
            c.call(Method::POST, path, bearer, Some(body)).await?;
            for n in 0..rounds {
                let due = start + offset + every.mul_f64(n as f64);
                tokio::time::sleep_until(due).await;
                let (path, bearer, body) = api.create(&format!("low-{w}-{n}"));
                let t = tokio::time::Instant::now();
                let sid = match c.call(Method::POST, path, bearer, Some(body)).await {
                    Ok((s, b)) if s.is_success() => {
                        creates.record(t.elapsed().as_micros().max(1) as u64)?;
                        crate::client::sid_of(&b)
                    }
                    Ok(_) => {
                        errors[0] += 1;
                        None
                    }
                    Err(_) => {
                        errors[0] += 1;
                        c = Conn::open(addr).await?;
                        None
                    }
                };
                let (Some(sid), Some(_)) = (sid, &api.tenant) else {
                    continue;
                };
                let t = tokio::time::Instant::now();
                match c
                    .call(
                        Method::GET,
                        &format!("/api/v1/verify/session/{sid}"),
                        api.bearer(),
                        None,
                    )
                    .await
                {
                    Ok((s, _)) if s.is_success() => {
                        reads.record(t.elapsed().as_micros().max(1) as u64)?;
                    }
                    Ok(_) => errors[1] += 1,
                    Err(_) => {
                        errors[1] += 1;
                        c = Conn::open(addr).await?;
                    }
                }
            }
            anyhow::Ok((creates, reads, errors))
        }));
    }
    let (mut creates, mut reads) = (histogram(), histogram());
    let mut errors = [0u64; 2];
    for t in tasks {
        let (c, r, e) = t.await??;
        creates.add(&c)?;
        reads.add(&r)?;
        errors[0] += e[0];
        errors[1] += e[1];
    }
    let row = |request, h: &Histogram<u64>, errors| LowLoad {
        request,
        connections,
        rate_per_sec: rate,
        requests: h.len(),
        latency: Latency::of(h),
        over_5ms: h.count_between(5_001, h.max().max(5_001)),
        errors,
    };
    let mut rows = vec![row("create", &creates, errors[0])];
    if api.tenant.is_some() {
        rows.push(row("read", &reads, errors[1]));
    }
    Ok(rows)
}
