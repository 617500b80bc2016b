//! The results and their Markdown table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::load::{CreateResult, LowLoad, RoundTrips, WakeResult};

/// Time from spawning a process to its first `200 /healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub implementation: String,
    /// With an empty compilation cache (dock-host compiles the component).
    pub first_ms: f64,
    /// Best of the following starts (cache warm).
    pub warm_ms: f64,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub nofile_limit: u64,
    pub command: String,
    /// `(test, requests/s, p50 ms)` from redis-benchmark.
    pub redis_ping: Vec<(String, f64, f64)>,
    pub create: Vec<(String, CreateResult)>,
    /// Per-request latency at a low open-loop rate.
    pub low_load: Vec<(String, LowLoad)>,
    pub wake: Vec<(String, WakeResult)>,
    pub cold: Vec<ColdStart>,
    /// `(server, connections, commands, Redis µs, busiest commands)` per create.
    pub redis_per_create: Vec<(String, usize, f64, f64, String)>,
    /// Creates spread over k instances sharing the one Redis.
    pub scale: Vec<ScaleOut>,
    /// `(server, operation's counts)` from the round-trip pass.
    pub round_trips: Vec<(String, RoundTrips)>,
}

/// One level of the scale-out scenario: the create load over k instances.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOut {
    pub server: String,
    /// Throughput and latency; `instances` is k, `cpu` the window's CPU.
    pub create: CreateResult,
    /// Per create (`INFO commandstats`, warm-up included): commands, µs in
    /// them, busiest commands.
    pub redis_per_create: (f64, f64, String),
    /// Redis CPU over the measured window as a fraction of one core.
    pub redis_cores: Option<f64>,
    pub redis_cpu_us_per_create: Option<f64>,
    /// Every server process's CPU (summed) per create, µs.
    pub server_cpu_us_per_create: Option<f64>,
    /// 1e6 / Redis CPU µs per create: the create rate one Redis core bounds.
    pub creates_per_sec_one_redis_core: Option<f64>,
}

impl ScaleOut {
    pub fn new(server: &str, create: CreateResult, redis_per_create: (f64, f64, String)) -> Self {
        let redis_cpu_us_per_create = create.redis_cpu_us();
        ScaleOut {
            server: server.to_owned(),
            redis_cores: create
                .cpu
                .filter(|c| c.wall_s > 0.0)
                .map(|c| c.redis_s / c.wall_s),
            redis_cpu_us_per_create,
            server_cpu_us_per_create: create.server_cpu_us(),
            creates_per_sec_one_redis_core: redis_cpu_us_per_create
                .filter(|us| *us > 0.0)
                .map(|us| 1e6 / us),
            create,
            redis_per_create,
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

impl Report {
    pub fn new(machine: String, nofile_limit: u64, command: String) -> Self {
        Report {
            machine,
            nofile_limit,
            command,
            redis_ping: Vec::new(),
            create: Vec::new(),
            low_load: Vec::new(),
            wake: Vec::new(),
            cold: Vec::new(),
            redis_per_create: Vec::new(),
            scale: Vec::new(),
            round_trips: Vec::new(),
        }
    }

    fn create_of(&self, who: &str, c: usize) -> Option<&CreateResult> {
        self.create
            .iter()
            .find(|(w, r)| w == who && r.concurrency == c)
            .map(|(_, r)| r)
    }

    fn wake_of(&self, who: &str, like: &WakeResult) -> Option<&WakeResult> {
        self.wake
            .iter()
            .find(|(w, r)| {
                w == who
                    && r.mode == like.mode
                    && r.waiters == like.waiters
                    && r.instances == like.instances
            })
            .map(|(_, r)| r)
    }

    /// The tables as Markdown (what docs/performance.md quotes).
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Machine: {}; open-files limit {}.",
            self.machine, self.nofile_limit
        );
        let _ = writeln!(o, "Command: `{}`\n", self.command);

        let _ = writeln!(o, "### Floor: redis-benchmark PING (50 clients)\n");
        let _ = writeln!(o, "| test | requests/s | p50 ms |\n|---|---:|---:|");
        for (t, rps, p50) in &self.redis_ping {
            let _ = writeln!(o, "| {t} | {rps:.0} | {p50:.3} |");
        }

        let _ = writeln!(o, "\n### Create session (closed loop, keep-alive)\n");
        let _ = writeln!(
            o,
            "| server | connections | creates/s | p50 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (who, r) in &self.create {
            let _ = writeln!(
                o,
                "| {who} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                r.concurrency,
                r.per_sec,
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.max_ms,
                r.errors
            );
        }
        let _ = writeln!(
            o,
            "\n| dock under | connections | dock ÷ node throughput | dock ÷ node p99 | dock ÷ floor throughput |\n|---|---:|---:|---:|---:|"
        );
        for (who, r) in self.create.iter().filter(|(w, _)| is_dock(w)) {
            let node = self.create_of("node ref", r.concurrency);
            let floor = self.create_of("floor", r.concurrency);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                runtime_of(who),
                r.concurrency,
                node.map_or("–".into(), |n| ratio(r.per_sec, n.per_sec)),
                node.map_or("–".into(), |n| ratio(r.latency.p99_ms, n.latency.p99_ms)),
                floor.map_or("–".into(), |f| ratio(r.per_sec, f.per_sec)),
            );
        }

        if !self.low_load.is_empty() {
            let _ = writeln!(
                o,
                "\n### Low load: per-request latency on an idle server (open loop, kept-alive)\n"
            );
            let _ = writeln!(
                o,
                "| server | request | connections | requests/s offered | requests | p50 ms | p99 ms | max ms | over 5 ms | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for (who, r) in &self.low_load {
                let _ = writeln!(
                    o,
                    "| {who} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
                    r.request,
                    r.connections,
                    r.rate_per_sec,
                    r.requests,
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.latency.max_ms,
                    r.over_5ms,
                    r.errors
                );
            }
        }

        let _ = writeln!(
            o,
            "\n### Wake: completion request sent → waiter's event received\n"
        );
        let _ = writeln!(
            o,
            "| server | waiting | instances | waiters | completions/s | wake p50 ms | p99 ms | max ms | delivered | lost | dup | server KiB/waiter | complete-call p99 ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (who, r) in &self.wake {
            let _ = writeln!(
                o,
                "| {who} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {:.2} |",
                r.mode.name(),
                r.instances,
                r.waiters,
                r.rate_per_sec,
                r.wake.p50_ms,
                r.wake.p99_ms,
                r.wake.max_ms,
                r.delivered,
                r.lost,
                r.duplicated,
                r.rss_kib_per_waiter
                    .map_or("–".into(), |k| format!("{k:.1}")),
                r.complete_call.p99_ms,
            );
        }
        let _ = writeln!(
            o,
            "\n| dock under | waiting | instances | waiters | dock ÷ node wake p99 | dock ÷ node KiB/waiter |\n|---|---|---:|---:|---:|---:|"
        );
        for (who, r) in self.wake.iter().filter(|(w, _)| is_dock(w)) {
            let node = self.wake_of("node ref", r);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                runtime_of(who),
                r.mode.name(),
                r.instances,
                r.waiters,
                node.map_or("–".into(), |n| ratio(r.wake.p99_ms, n.wake.p99_ms)),
                node.map_or("–".into(), |n| {
                    match (r.rss_kib_per_waiter, n.rss_kib_per_waiter) {
                        (Some(a), Some(b)) => ratio(a, b),
                        _ => "–".into(),
                    }
                }),
            );
        }
        let _ = writeln!(
            o,
            "\n#### Memory per held waiter (`/proc/<pid>/smaps` growth while held)\n"
        );
        let _ = writeln!(
            o,
            "RSS counts a page once per mapping; PSS counts it once (wasmtime maps one copy-on-write memory image per instance). PSS by mapping:\n"
        );
        let _ = writeln!(
            o,
            "| server | waiting | instances | waiters | RSS KiB/waiter | PSS KiB/waiter | anonymous (malloc heap, written Wasm memory and stacks) | Wasm memory images (memfd) | files (code) | dock ÷ node PSS |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (who, r) in &self.wake {
            let Some(p) = r.mem_per_waiter else {
                continue;
            };
            let node = self
                .wake_of("node ref", r)
                .and_then(|n| n.mem_per_waiter)
                .filter(|_| is_dock(who));
            let _ = writeln!(
                o,
                "| {who} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                r.mode.name(),
                r.instances,
                r.waiters,
                p.rss_kib,
                p.pss_kib,
                p.anon_kib,
                p.memfd_kib,
                p.file_kib,
                node.map_or("–".into(), |n| ratio(p.pss_kib, n.pss_kib)),
            );
        }

        if !self.scale.is_empty() {
            let _ = writeln!(o, "\n### Scale-out: creates on k instances, one Redis\n");
            let _ = writeln!(
                o,
                "| server | instances | connections | creates/s | p50 ms | p99 ms | errors | Redis CPU, cores | Redis CPU µs/create | server CPU µs/create | Redis commands/create | creates/s one Redis core serves |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for r in &self.scale {
                let c = &r.create;
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {:.2} | {} |",
                    r.server,
                    c.instances,
                    c.concurrency,
                    c.per_sec,
                    c.latency.p50_ms,
                    c.latency.p99_ms,
                    c.errors,
                    opt(r.redis_cores, 2),
                    opt(r.redis_cpu_us_per_create, 1),
                    opt(r.server_cpu_us_per_create, 0),
                    r.redis_per_create.0,
                    opt(r.creates_per_sec_one_redis_core, 0),
                );
            }
        }

        let _ = writeln!(
            o,
            "\n### What each operation costs Redis (`INFO commandstats` and `INFO cpu` deltas)\n"
        );
        let _ = writeln!(
            o,
            "| server | operation | commands | Redis µs in commands | Redis CPU µs | busiest commands (per operation) |\n|---|---|---:|---:|---:|---|"
        );
        for (who, c, calls, usec, top) in &self.redis_per_create {
            let cpu = self.create_of(who, *c).and_then(CreateResult::redis_cpu_us);
            let _ = writeln!(
                o,
                "| {who} | create ({c} connections) | {calls:.2} | {usec:.1} | {} | {top} |",
                opt(cpu, 1)
            );
        }
        for (who, r) in self.wake.iter().filter(|(w, _)| w != "floor") {
            let (calls, usec, top) = &r.redis_per_wake;
            let scenario = format!("{} ×{} on {}", r.mode.name(), r.waiters, r.instances);
            let _ = writeln!(
                o,
                "| {who} | wake, per completion ({scenario}) | {calls:.2} | {usec:.1} | {:.1} | {top} |",
                r.redis_cpu_us_per_wake
            );
            if let Some(b) = &r.no_waiter {
                let (bcalls, busec, btop) = &b.redis_per_completion;
                let _ = writeln!(
                    o,
                    "| {who} | completion, no waiter (after {scenario}) | {bcalls:.2} | {busec:.1} | {:.1} | {btop} |",
                    b.redis_cpu_us_per_completion
                );
                let _ = writeln!(
                    o,
                    "| {who} | a wake beyond its completion ({scenario}) | {:.2} | {:.1} | {:.1} | |",
                    calls - bcalls,
                    usec - busec,
                    r.redis_cpu_us_per_wake - b.redis_cpu_us_per_completion
                );
            }
        }
        for (who, r) in self.wake.iter().filter(|(w, _)| w != "floor") {
            if let Some(per_min) = r.redis_per_waiter_minute {
                let _ = writeln!(
                    o,
                    "| {who} | held waiter, per minute ({} ×{} on {}) | {per_min:.2} | | | |",
                    r.mode.name(),
                    r.waiters,
                    r.instances
                );
            }
        }

        if !self.round_trips.is_empty() {
            let _ = writeln!(
                o,
                "\n### Round trips to Redis per operation (counting proxy, one instance, one operation at a time)\n"
            );
            let _ = writeln!(
                o,
                "| server | operation | requests | round trips | commands |\n|---|---|---:|---:|---:|"
            );
            for (who, r) in &self.round_trips {
                let _ = writeln!(
                    o,
                    "| {who} | {} (×{}) | {:.2} | {:.2} | {:.2} |",
                    r.operation, r.operations, r.requests, r.round_trips, r.commands
                );
            }
        }

        let _ = writeln!(o, "\n### Cold start: spawn → first `200 /healthz`\n");
        let _ = writeln!(
            o,
            "| server | first start ms (empty cache) | warm start ms |\n|---|---:|---:|"
        );
        for c in &self.cold {
            let _ = writeln!(
                o,
                "| {} | {:.0} | {:.0} |",
                c.implementation, c.first_ms, c.warm_ms
            );
        }
        o
    }
}

/// Our component's rows: under dock-host or under a real Spin.
fn is_dock(who: &str) -> bool {
    who == "dock (wasm)" || who == "dock on spin"
}

/// Which runtime a dock row ran under.
fn runtime_of(who: &str) -> &'static str {
    if who == "dock on spin" {
        "spin up"
    } else {
        "dock-host"
    }
}
