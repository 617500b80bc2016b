//! The results and their Markdown table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::load::{CreateResult, WakeResult};

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
    pub wake: Vec<(String, WakeResult)>,
    pub cold: Vec<ColdStart>,
    /// `(server, connections, commands, Redis µs, busiest commands)` per create.
    pub redis_per_create: Vec<(String, usize, f64, f64, String)>,
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
            wake: Vec::new(),
            cold: Vec::new(),
            redis_per_create: Vec::new(),
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
            "\n### What each operation costs Redis (`INFO commandstats` deltas)\n"
        );
        let _ = writeln!(
            o,
            "| server | operation | commands | Redis µs | busiest commands (per operation) |\n|---|---|---:|---:|---|"
        );
        for (who, c, calls, usec, top) in &self.redis_per_create {
            let _ = writeln!(
                o,
                "| {who} | create ({c} connections) | {calls:.2} | {usec:.1} | {top} |"
            );
        }
        for (who, r) in self.wake.iter().filter(|(w, _)| w != "floor") {
            let (calls, usec, top) = &r.redis_per_wake;
            let _ = writeln!(
                o,
                "| {who} | wake ({} ×{} on {}) | {calls:.2} | {usec:.1} | {top} |",
                r.mode.name(),
                r.waiters,
                r.instances
            );
        }
        for (who, r) in self.wake.iter().filter(|(w, _)| w != "floor") {
            if let Some(per_min) = r.redis_per_waiter_minute {
                let _ = writeln!(
                    o,
                    "| {who} | held waiter, per minute ({} ×{} on {}) | {per_min:.2} | | |",
                    r.mode.name(),
                    r.waiters,
                    r.instances
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
