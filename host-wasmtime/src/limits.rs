//! Resource limits, the engine built from them, and the guest CPU slice.
//!
//! Every limit is a named `dock-host up` flag (see [`Limits`] for defaults).
//!
//! The CPU slice limit bounds *continuous* guest execution: a guest that has
//! been running without once giving control back to the host's event loop for
//! longer than `--max-guest-slice` traps (its instance is dropped; the host
//! keeps serving). The count restarts whenever the instance's event loop goes
//! idle, i.e. every guest task is waiting on I/O (Redis, a timer, a client
//! body...). A stream that stays open for minutes but mostly waits never gets
//! near the limit; there is no wall-clock request timeout.
//!
//! Mechanism: an epoch ticker thread advances the engine epoch every
//! [`TICK`]; every store's epoch deadline is one tick ahead, so the store's
//! callback runs about once per tick while guest code runs. It compares the
//! current tick with the tick at which the instance was last seen idle. The
//! "last idle" mark is set by the instance's [`WorkerExpiration`] poll, which
//! `wasmtime_wasi_http`'s `ProxyHandler` calls exactly when the store's event
//! loop returns `Pending`. The callback yields to tokio between ticks (so a
//! busy guest does not starve other connections); that yield also returns
//! `Pending`, which is why it is flagged and not counted as idleness.
//!
//! [`WorkerExpiration`]: wasmtime_wasi_http::handler::WorkerExpiration

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances.
pub const TICK: Duration = Duration::from_millis(10);

/// All host limits, each a `dock-host up` flag.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `--max-guest-slice` (default 10s): longest continuous guest execution.
    pub max_guest_slice: Duration,
    /// `--max-instance-memory` (default 256MiB): linear memory per instance.
    pub max_instance_memory: u64,
    /// `--max-instances` (default 1000, Spin's pool size): live component
    /// instances in the pooling allocator, over all components.
    pub max_instances: u32,
    /// `--max-concurrent-requests` (default 16384): requests being handled
    /// at once, each until its response head is ready (an SSE stream stops
    /// counting once its head is sent; a long-poll still unanswered after
    /// `--waiting-after` moves to a waiting slot).
    pub max_concurrent_requests: usize,
    /// `--max-waiting-requests` (default: `--max-concurrent-requests` less a
    /// sixteenth, 15360): requests still unanswered after `--waiting-after`
    /// (long-polls, mostly) that may hold a request slot at once. One
    /// reaching `--waiting-after` with all of these taken is answered `503`
    /// with `Retry-After`, so held waiters never take the slots that the
    /// requests which would wake them (completions, creates) need.
    pub max_waiting_requests: usize,
    /// `--waiting-after` (default 1s): how long a request runs unanswered
    /// before it counts as waiting.
    pub waiting_after: Duration,
    /// `--max-connections` (default 16384): open client connections (each
    /// held SSE stream or long-poll is one). The host raises its open-files
    /// limit to fit, and serves fewer if the system's hard limit is lower.
    pub max_connections: usize,
    /// `--max-instance-reuse-count` (default 128, as Spin): requests one
    /// instance serves before it is retired.
    pub max_instance_reuse_count: usize,
    /// `--max-instance-concurrent-reuse-count` (default 16, as Spin): requests
    /// one instance handles concurrently. 1 means a fresh instance per
    /// concurrent request.
    pub max_instance_concurrent_reuse_count: usize,
    /// `--idle-instance-timeout` (default 1s, as Spin): how long an idle
    /// instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// `--instance-wait` (default 1s; 0 = none): how long a request waits
    /// for an instance when all `--max-instances` slots are taken, retrying
    /// as instances free up or start accepting, before it is answered `503`
    /// with `Retry-After`. Bursts of long-lived requests (long-polls) start
    /// instances faster than started ones begin to accept, so a short wait
    /// packs them instead of refusing them.
    pub instance_wait: Duration,
    /// `--max-guest-resources` (default 10000): handles (connections, streams,
    /// requests...) one instance may hold.
    pub max_guest_resources: usize,
    /// `--shutdown-timeout` (default 10s): on SIGINT/SIGTERM, how long open
    /// responses (streams) may take to finish before the host exits.
    pub shutdown_timeout: Duration,
    /// `--header-read-timeout` (default 30s, hyper's documented default; 0
    /// disables): how long a connection may take to send a complete request
    /// head, counted from when the server starts waiting for it (so it also
    /// closes keep-alive connections idle that long). Bounds slowloris
    /// clients, which would otherwise hold connection slots forever.
    pub header_read_timeout: Duration,
    /// `--body-read-timeout` (default 30s; 0 disables): how long a request
    /// body may take in all, counted from the end of its head. A client that
    /// declares a body and sends it slowly (or never) is answered `408` and
    /// its connection closed, so it cannot hold a connection, a request slot
    /// and an instance for ever.
    pub body_read_timeout: Duration,
    /// `--body-idle-timeout` (default 10s; 0 disables): the longest pause
    /// between two pieces of a request body, answered as the total one.
    pub body_idle_timeout: Duration,
    /// `--max-connections-per-ip` (default 2048; 0 = no cap): open connections
    /// from one client address (IPv6: one /64), so one client cannot take
    /// every `--max-connections` slot. Connections over it are answered `503`
    /// with `Retry-After` and closed at once, not queued. Behind a reverse
    /// proxy every client shares the proxy's address: set 0 there and cap
    /// per client in the proxy.
    pub max_connections_per_ip: usize,
    /// `TCP_NODELAY` on accepted sockets (`spin up` leaves it off).
    pub tcp_nodelay: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_guest_slice: Duration::from_secs(10),
            max_instance_memory: 256 << 20,
            max_instances: 1000,
            max_concurrent_requests: 16384,
            max_waiting_requests: default_max_waiting(16384),
            waiting_after: Duration::from_secs(1),
            max_connections: 16384,
            max_instance_reuse_count: 128,
            max_instance_concurrent_reuse_count: 16,
            idle_instance_timeout: Duration::from_secs(1),
            instance_wait: Duration::from_secs(1),
            max_guest_resources: 10_000,
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(10),
            max_connections_per_ip: 2048,
            tcp_nodelay: true,
        }
    }
}

/// `--max-waiting-requests` when not given: all request slots but a
/// sixteenth (at least one kept for requests that answer at once).
pub fn default_max_waiting(max_concurrent_requests: usize) -> usize {
    max_concurrent_requests
        .saturating_sub((max_concurrent_requests / 16).max(1))
        .max(1)
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses `256MiB`, `1GiB`, `512KiB`, `64MB`, or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 256MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("invalid size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Open files kept for everything but client connections (Redis, SQLite,
/// the compilation cache, the runtime).
const FILES_BESIDES_CONNECTIONS: u64 = 1024;

impl Limits {
    /// Raises the process's open-files limit so `--max-connections` fit;
    /// where the system's hard limit is lower, serves fewer connections and
    /// says so (accepting past the limit would fail with EMFILE).
    pub fn fit_open_files(&mut self) {
        let want = self.max_connections as u64 + FILES_BESIDES_CONNECTIONS;
        match rlimit::increase_nofile_limit(want) {
            Ok(have) if have >= want => {}
            Ok(have) => {
                // Keep a quarter for the rest when the limit is small.
                let reserve = FILES_BESIDES_CONNECTIONS.min(have / 4);
                let fit = have.saturating_sub(reserve).max(1) as usize;
                tracing::warn!(
                    "the open-files limit is {have} (hard limit): serving {fit} connections, not --max-connections {}; raise `ulimit -Hn` for more",
                    self.max_connections
                );
                self.max_connections = fit;
                self.max_connections_per_ip = self.max_connections_per_ip.min(fit);
            }
            Err(e) => tracing::warn!("cannot read or raise the open-files limit: {e}"),
        }
    }

    /// The guest slice in epoch ticks (at least 1).
    pub fn slice_ticks(&self) -> u64 {
        (self.max_guest_slice.as_millis() / TICK.as_millis()).max(1) as u64
    }

    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<()> {
        if self.max_instance_memory > 4 << 30 {
            bail!("--max-instance-memory cannot exceed 4GiB (wasm32)");
        }
        if self.max_waiting_requests > self.max_concurrent_requests {
            bail!("--max-waiting-requests cannot exceed --max-concurrent-requests");
        }
        for (name, v) in [
            ("--max-waiting-requests", self.max_waiting_requests),
            ("--max-instances", self.max_instances as usize),
            ("--max-concurrent-requests", self.max_concurrent_requests),
            ("--max-connections", self.max_connections),
            ("--max-instance-reuse-count", self.max_instance_reuse_count),
            (
                "--max-instance-concurrent-reuse-count",
                self.max_instance_concurrent_reuse_count,
            ),
            ("--max-guest-resources", self.max_guest_resources),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        Ok(())
    }
}

/// Builds the engine: component model + async, epoch interruption, the
/// pooling allocator sized from `limits`, and (if `cache_dir` is set) the
/// compilation cache.
pub fn engine(limits: &Limits, cache_dir: Option<&std::path::Path>) -> Result<Engine> {
    let mut config = base_config(cache_dir)?;
    let mut pool = PoolingAllocationConfig::default();
    // A spin-sdk component holds a handful of core instances, memories and
    // tables (main module, WASI adapter, shims); the per-component maxima
    // below are generous, the totals scale with --max-instances.
    let instances = limits.max_instances;
    pool.total_component_instances(instances)
        .max_core_instances_per_component(50)
        .max_memories_per_component(10)
        .max_tables_per_component(50)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(
            instances.saturating_mul(limits.max_instance_concurrent_reuse_count.min(64) as u32),
        )
        .max_memory_size(limits.max_instance_memory as usize);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(
                "pooling allocator unavailable ({e}); using on-demand instance allocation"
            );
            Engine::new(&base_config(cache_dir)?)
                .map_err(anyhow::Error::from)
                .context("cannot create the wasmtime engine")
        }
    }
}

fn base_config(cache_dir: Option<&std::path::Path>) -> Result<Config> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_async(true)
        .epoch_interruption(true);
    if std::env::var_os("DOCK_HOST_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(dir) = cache_dir {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(
            wasmtime::Cache::new(cache)
                .map_err(anyhow::Error::from)
                .context("cannot set up the compilation cache")?,
        ));
    }
    Ok(config)
}

/// The process-wide tick counter, advanced together with the engine epoch.
#[derive(Debug)]
pub struct EpochTicker {
    ticks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: Engine) -> Self {
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn({
                let ticks = ticks.clone();
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        ticks.fetch_add(1, Ordering::Relaxed);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawn the epoch ticker thread");
        Self {
            ticks,
            stop,
            thread: Some(thread),
        }
    }

    /// A handle for reading the current tick.
    pub fn clock(&self) -> Clock {
        Clock(self.ticks.clone())
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the tick counter.
#[derive(Debug, Clone)]
pub struct Clock(Arc<AtomicU64>);

impl Clock {
    /// The current tick.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-instance bookkeeping for the CPU slice.
///
/// It counts the ticks in which guest code of the instance was executing
/// (the epoch callback runs at most once per tick, and only while guest code
/// runs) since the instance was last idle. Time the instance spends yielded
/// to tokio, or descheduled on a busy machine, is not execution and does not
/// count: only a guest that keeps a thread busy without ever waiting does.
#[derive(Debug)]
pub struct Slice {
    clock: Clock,
    max_ticks: u64,
    /// Ticks with guest execution since the instance was last idle.
    ran: AtomicU64,
    /// The last tick counted (two callbacks in one tick count once).
    last_tick: AtomicU64,
    idle_seen: AtomicBool,
    yielding: AtomicBool,
}

/// The verdict of an epoch callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceVerdict {
    /// Keep running (after yielding to tokio).
    Continue,
    /// The guest has run continuously for too long.
    Exceeded,
}

impl Slice {
    /// A fresh slice; nothing counted yet.
    pub fn new(clock: Clock, max_ticks: u64) -> Arc<Self> {
        Arc::new(Self {
            clock,
            max_ticks,
            ran: AtomicU64::new(0),
            last_tick: AtomicU64::new(u64::MAX),
            idle_seen: AtomicBool::new(true),
            yielding: AtomicBool::new(false),
        })
    }

    /// Called from the store's epoch-deadline callback while guest code runs.
    pub fn on_epoch(&self) -> SliceVerdict {
        let now = self.clock.now();
        if self.idle_seen.swap(false, Ordering::Relaxed) {
            self.ran.store(0, Ordering::Relaxed);
        }
        if self.last_tick.swap(now, Ordering::Relaxed) != now
            && self.ran.fetch_add(1, Ordering::Relaxed) + 1 > self.max_ticks
        {
            return SliceVerdict::Exceeded;
        }
        self.yielding.store(true, Ordering::Relaxed);
        SliceVerdict::Continue
    }

    /// Called whenever the instance's event loop returns `Pending`: unless that
    /// was our own yield, every guest task is waiting, so the slice ends.
    pub fn on_pending(&self) {
        if !self.yielding.swap(false, Ordering::Relaxed) {
            self.idle_seen.store(true, Ordering::Relaxed);
        }
    }
}

/// The error a guest stopped by its CPU slice fails with: requests of the
/// instance that have no answer yet are answered `503` (the host is
/// overloaded or the guest misbehaves; a retry lands on a fresh instance).
#[derive(Debug)]
pub struct SliceExceeded(pub Duration);

impl std::fmt::Display for SliceExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "guest exceeded its CPU time slice ({:?} of continuous execution)",
            self.0
        )
    }
}

impl std::error::Error for SliceExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn slice_counts_ticks_of_execution_only() {
        let ticks = Arc::new(AtomicU64::new(100));
        let set = |t: u64| ticks.store(t, Ordering::Relaxed);
        let slice = Slice::new(Clock(ticks.clone()), 5);
        // Long idle before the guest first runs does not count.
        set(1000);
        assert_eq!(slice.on_epoch(), SliceVerdict::Continue);
        slice.on_pending(); // our own yield
        // Running: ticks pass; our yields do not restart the count.
        for t in 1001..=1004 {
            set(t);
            assert_eq!(slice.on_epoch(), SliceVerdict::Continue);
            slice.on_pending();
        }
        // Two callbacks in one tick count once.
        assert_eq!(slice.on_epoch(), SliceVerdict::Continue);
        slice.on_pending();
        set(1005);
        assert_eq!(slice.on_epoch(), SliceVerdict::Exceeded);

        // Yielded or descheduled for a long time (a busy host): the wall
        // clock runs, the count does not.
        let slice = Slice::new(Clock(ticks.clone()), 5);
        for round in 0..4 {
            set(3000 + round * 1000);
            assert_eq!(slice.on_epoch(), SliceVerdict::Continue);
            slice.on_pending(); // our yield, then a long wait for a thread
        }
        set(9000);
        assert_eq!(slice.on_epoch(), SliceVerdict::Continue);
        set(9001);
        assert_eq!(slice.on_epoch(), SliceVerdict::Exceeded);

        // Waiting on I/O (a Pending that is not our yield) restarts the count.
        let slice = Slice::new(Clock(ticks.clone()), 5);
        for round in 0..10 {
            let base = 20_000 + round * 10;
            for t in base..base + 4 {
                set(t);
                assert_eq!(slice.on_epoch(), SliceVerdict::Continue);
                slice.on_pending(); // our yield
            }
            slice.on_pending(); // the guest now waits for I/O
        }
    }

    #[test]
    fn limits_validate() {
        assert!(Limits::default().validate().is_ok());
        let bad = Limits {
            max_instances: 0,
            ..Limits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--max-instances")
        );
        assert_eq!(
            Limits {
                max_guest_slice: Duration::from_millis(1),
                ..Limits::default()
            }
            .slice_ticks(),
            1
        );
    }
}
