//! `dock-bench`: our service (the component under dock-host) against the Node
//! reference (`bench/node`) and the physical floor (`redis-benchmark` PING, a
//! trivial hyper server), in one run, on one machine, one Redis.
//!
//! ```sh
//! cargo run --release -p dock-bench -- run            # the full table (~15 min)
//! cargo run --release -p dock-bench -- run --quick    # a smoke run
//! ```

// A command-line tool: progress goes to stderr, the table to stdout.
#![allow(clippy::print_stderr)]

mod client;
mod floor;
mod load;
mod procs;
mod proxy;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::load::{Api, Mode};
use crate::procs::{Impl, Launcher, Meter, Redis, Service};
use crate::report::{ColdStart, Report, ScaleOut};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Benchmarks: dock (Wasm) vs the Node reference vs the floor"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the workloads and print the table.
    Run(Box<RunArgs>),
    /// The trivial hyper server used as the floor (started by `run`).
    FloorServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Small sizes and short durations: checks that everything works.
    #[arg(long)]
    quick: bool,
    /// Implementations to measure.
    #[arg(long, value_delimiter = ',', default_values_t = ["dock".to_owned(), "node".to_owned()])]
    impls: Vec<String>,
    /// Create-load concurrencies (connections).
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 64, 256])]
    concurrency: Vec<usize>,
    /// Seconds measured per create-load level (after 1 s of warm-up).
    #[arg(long, default_value_t = 5)]
    create_seconds: u64,
    /// Waiter counts for the wake workload.
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    waiters: Vec<usize>,
    /// Waiting styles.
    #[arg(long, value_delimiter = ',', default_values_t = ["sse".to_owned(), "long-poll".to_owned()])]
    modes: Vec<String>,
    /// Instance counts sharing one Redis.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    instances: Vec<usize>,
    /// Scale-out: instance counts k the create load is spread over
    /// (round-robin), all sharing the one Redis; '' or 0 skips it
    /// [default: 1,2,4; 1,2 with --quick].
    #[arg(long, value_delimiter = ',', value_parser = count)]
    scale: Option<Vec<usize>>,
    /// Connections of the scale-out create load.
    #[arg(long, default_value_t = 64)]
    scale_concurrency: usize,
    /// Operations of each kind in the round-trip pass (one instance behind
    /// a counting proxy, untimed); 0 skips it [default: 200; 50 with --quick].
    #[arg(long)]
    round_trips: Option<usize>,
    /// Low-load pass: requests per second offered (open loop, kept-alive
    /// connections), to see per-request latency on an idle server.
    #[arg(long, default_value_t = 100.0)]
    low_load_rate: f64,
    /// Connections of the low-load pass.
    #[arg(long, default_value_t = 4)]
    low_load_connections: usize,
    /// Seconds of the low-load pass; 0 skips it [default: 10; 2 with --quick].
    #[arg(long)]
    low_load_seconds: Option<u64>,
    /// Completions per second in the wake workload (open loop).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Connections sending completions.
    #[arg(long, default_value_t = 32)]
    drivers: usize,
    /// Seconds the waiters are held idle to count what holding costs Redis
    /// (heartbeats, lease renewals); 0 skips it.
    #[arg(long, default_value_t = 20)]
    hold_seconds: u64,
    /// The dock-host binary [default: target/release/dock-host, built first].
    #[arg(long)]
    dock_host: Option<PathBuf>,
    /// Skip building dock-host and the component.
    #[arg(long)]
    no_build: bool,
    /// The `spin` binary for `--impls spin` (the component under a real
    /// `spin up`) [default: ~/.cache/dock-spin/bin/spin].
    #[arg(long)]
    spin_bin: Option<PathBuf>,
    /// Extra `dock-host up` flags, e.g. `--dock-arg=--max-instance-concurrent-reuse-count=256`.
    #[arg(long = "dock-arg", allow_hyphen_values = true)]
    dock_args: Vec<String>,
    /// A shell command run before each wake scenario holds its waiters (the
    /// sessions exist, no waiter yet), with the servers' PIDs in
    /// `DOCK_BENCH_PIDS` and the scenario in `DOCK_BENCH_SCENARIO`; the run
    /// waits for it to exit 0. For profilers that attach to a running
    /// server (bench/scripts/heap-profile.sh).
    #[arg(long)]
    before_hold: Option<String>,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

/// A count; empty means 0.
fn count(s: &str) -> Result<usize, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::FloorServer { listen } => rt.block_on(floor::serve(listen)),
        Cmd::Run(args) => rt.block_on(async {
            // On Ctrl-C or SIGTERM the run is dropped, and with it every
            // process it started (redis-server, dock-hosts, node): each is
            // killed by its owner's Drop.
            tokio::select! {
                r = run(*args) => r,
                sig = interrupted() => bail!("interrupted by {sig}; stopped every process this run started"),
            }
        }),
    }
}

/// Waits for SIGINT or SIGTERM; names it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

fn sh(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {what}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(())
}

fn build(repo: &std::path::Path) -> Result<()> {
    sh(
        "cargo build --release -p dock-host",
        Command::new("cargo")
            .current_dir(repo)
            .args(["build", "--release", "-p", "dock-host"]),
    )?;
    sh(
        "cargo build --profile component --target wasm32-wasip2 -p dock-spin-app",
        Command::new("cargo").current_dir(repo).args([
            "build",
            "--profile",
            "component",
            "--target",
            "wasm32-wasip2",
            "-p",
            "dock-spin-app",
        ]),
    )?;
    if !repo.join("bench/node/node_modules").exists() {
        sh(
            "npm ci (bench/node)",
            Command::new("npm")
                .current_dir(repo.join("bench/node"))
                .args(["ci", "--no-audit", "--no-fund", "--silent"]),
        )?;
    }
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(String::new(), |kib| format!("{} GiB", kib / (1 << 20)));
    format!("{cores} cores ({cpu}), {mem}")
}

/// `k` instances of `which` on a flushed Redis, their addresses, and the
/// bench tenant provisioned through the first.
async fn fleet(
    launcher: &Launcher,
    which: Impl,
    redis: &Redis,
    k: usize,
) -> Result<(Vec<Service>, Vec<SocketAddr>, Api)> {
    redis.flushall()?;
    let mut svcs: Vec<Service> = Vec::new();
    for _ in 0..k {
        svcs.push(launcher.start(which, redis, None).await?.0);
    }
    let addrs: Vec<SocketAddr> = svcs.iter().map(|s| s.addr).collect();
    let api = Api {
        tenant: Some(client::provision(addrs[0], &launcher.admin_token, "pid-bench").await?),
        admin_token: launcher.admin_token.clone(),
    };
    Ok((svcs, addrs, api))
}

async fn run(mut a: RunArgs) -> Result<()> {
    if a.quick {
        a.concurrency = vec![16];
        a.create_seconds = 1;
        a.waiters = vec![200];
        a.instances = vec![1, 2];
        a.hold_seconds = 0;
    }
    let scale: Vec<usize> = a
        .scale
        .clone()
        .unwrap_or_else(|| if a.quick { vec![1, 2] } else { vec![1, 2, 4] })
        .into_iter()
        .filter(|&k| k > 0)
        .collect();
    let round_trips = a.round_trips.unwrap_or(if a.quick { 50 } else { 200 });
    let low_load_for =
        Duration::from_secs(a.low_load_seconds.unwrap_or(if a.quick { 2 } else { 10 }));
    let low_load =
        async |who: &str, addr: SocketAddr, api: &Api, report: &mut Report| -> Result<()> {
            if low_load_for.is_zero() {
                return Ok(());
            }
            eprintln!(
                "==> {who}: low load, {} requests/s over {} kept-alive connections",
                a.low_load_rate, a.low_load_connections
            );
            let rows = load::low_load(
                addr,
                api,
                a.low_load_connections,
                a.low_load_rate,
                low_load_for,
            )
            .await?;
            for r in rows {
                eprintln!(
                    "    {}: p50 {:.2} p99 {:.2} max {:.2} ms, {} of {} over 5 ms, {} errors",
                    r.request,
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.latency.max_ms,
                    r.over_5ms,
                    r.requests,
                    r.errors
                );
                report.low_load.push((who.to_owned(), r));
            }
            Ok(())
        };
    let repo = repo_root();
    if !a.no_build {
        build(&repo)?;
    }
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let launcher = Launcher {
        repo: repo.clone(),
        dock_host: a
            .dock_host
            .clone()
            .unwrap_or_else(|| repo.join("target/release/dock-host")),
        dock_args: a.dock_args.clone(),
        admin_token: "bench-admin-token-0123456789".into(),
        spin_bin: a.spin_bin.clone().or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/dock-spin/bin/spin"))
                .filter(|p| p.exists())
        }),
    };
    let mut report = Report::new(
        machine(),
        nofile,
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    let redis = Redis::start()?;

    // The floor.
    eprintln!("==> floor: redis-benchmark PING");
    report.redis_ping =
        procs::redis_benchmark_ping(&redis, 50, if a.quick { 20_000 } else { 200_000 })?;
    {
        eprintln!("==> floor: trivial hyper server");
        let floor = procs::start_floor().await?;
        let api = Api {
            tenant: None,
            admin_token: String::new(),
        };
        low_load("floor", floor.addr, &api, &mut report).await?;
        for &c in &a.concurrency {
            let r = load::create_load(
                floor.addr,
                &api,
                c,
                Duration::from_secs(1),
                Duration::from_secs(a.create_seconds),
                "floor",
            )
            .await?;
            eprintln!(
                "    c={c}: {:.0}/s p99 {:.2} ms",
                r.per_sec, r.latency.p99_ms
            );
            report.create.push(("floor".into(), r));
        }
        for &n in &a.waiters {
            let ids = load::create_sessions(floor.addr, &api, n, &format!("f{n}")).await?;
            let pid = floor.proc.pid();
            let r = load::wake(
                &[floor.addr],
                &api,
                &ids,
                &[],
                Mode::Sse,
                a.rate,
                a.drivers,
                || procs::mem_split(&[pid]),
                &redis,
                Duration::ZERO,
            )
            .await?;
            eprintln!("    wake {n}: p99 {:.2} ms", r.wake.p99_ms);
            report.wake.push(("floor".into(), r));
        }
    }

    for name in &a.impls {
        let which = match name.as_str() {
            "dock" => Impl::Dock,
            "node" => Impl::Node,
            "spin" => Impl::Spin,
            other => bail!("unknown implementation {other:?} (dock, node, spin)"),
        };
        // Cold start: a fresh compilation cache, then warm starts.
        eprintln!("==> {}: cold start", which.name());
        let cache = std::env::temp_dir().join(format!("dock-bench-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let mut starts = Vec::new();
        for _ in 0..3 {
            let (svc, took) = launcher.start(which, &redis, Some(&cache)).await?;
            starts.push(took);
            drop(svc);
        }
        let _ = std::fs::remove_dir_all(&cache);
        report.cold.push(ColdStart {
            implementation: which.name().into(),
            first_ms: starts[0].as_secs_f64() * 1000.0,
            warm_ms: starts[1..]
                .iter()
                .map(|d| d.as_secs_f64() * 1000.0)
                .fold(f64::MAX, f64::min),
        });

        eprintln!("==> {}: create load", which.name());
        redis.flushall()?;
        let (svc, _) = launcher.start(which, &redis, None).await?;
        let api = Api {
            tenant: Some(client::provision(svc.addr, &launcher.admin_token, "pid-bench").await?),
            admin_token: launcher.admin_token.clone(),
        };
        low_load(which.name(), svc.addr, &api, &mut report).await?;
        let meter = Meter {
            redis: &redis,
            pids: svc.proc.pids(),
        };
        for &c in &a.concurrency {
            redis.reset_stats()?;
            let r = load::create_load_on(
                &[svc.addr],
                &api,
                c,
                Duration::from_secs(1),
                Duration::from_secs(a.create_seconds),
                &format!("c{c}"),
                Some(&meter),
            )
            .await?;
            let (calls, usec, top) = redis.cost()?.per(r.all_ok);
            eprintln!(
                "    c={c}: {:.0}/s p99 {:.2} ms, {} errors; Redis per create: {calls:.2} commands, {usec:.1} µs in them, {:.1} µs of CPU ({top})",
                r.per_sec,
                r.latency.p99_ms,
                r.errors,
                r.redis_cpu_us().unwrap_or(f64::NAN)
            );
            report
                .redis_per_create
                .push((which.name().into(), c, calls, usec, top));
            report.create.push((which.name().into(), r));
        }
        drop(svc);

        for &k in &scale {
            let c = a.scale_concurrency;
            eprintln!(
                "==> {}: scale-out, creates on {k} instance(s), {c} connections",
                which.name()
            );
            let (mut svcs, addrs, api) = fleet(&launcher, which, &redis, k).await?;
            let meter = Meter {
                redis: &redis,
                pids: svcs.iter().flat_map(|s| s.proc.pids()).collect(),
            };
            redis.reset_stats()?;
            let r = load::create_load_on(
                &addrs,
                &api,
                c,
                Duration::from_secs(1),
                Duration::from_secs(a.create_seconds),
                &format!("s{k}"),
                Some(&meter),
            )
            .await?;
            let cost = redis.cost()?.per(r.all_ok);
            let row = ScaleOut::new(which.name(), r, cost);
            for s in &mut svcs {
                s.proc.check_alive()?;
            }
            eprintln!(
                "    {:.0}/s p99 {:.2} ms, {} errors; Redis {:.2} cores, {:.1} µs/create (one core: {:.0}/s); servers {:.0} µs/create",
                row.create.per_sec,
                row.create.latency.p99_ms,
                row.create.errors,
                row.redis_cores.unwrap_or(f64::NAN),
                row.redis_cpu_us_per_create.unwrap_or(f64::NAN),
                row.creates_per_sec_one_redis_core.unwrap_or(f64::NAN),
                row.server_cpu_us_per_create.unwrap_or(f64::NAN),
            );
            report.scale.push(row);
        }

        for &k in &a.instances {
            for mode in &a.modes {
                let mode = match mode.as_str() {
                    "sse" => Mode::Sse,
                    "long-poll" => Mode::LongPoll,
                    other => bail!("unknown mode {other:?} (sse, long-poll)"),
                };
                for &n in &a.waiters {
                    eprintln!(
                        "==> {}: wake {n} {} waiters on {k} instance(s)",
                        which.name(),
                        mode.name()
                    );
                    let (mut svcs, addrs, api) = fleet(&launcher, which, &redis, k).await?;
                    // Besides the waited-on sessions, as many (up to 1000)
                    // that nobody waits on: the baseline completions.
                    let mut ids =
                        load::create_sessions(addrs[0], &api, n + n.min(1000), &format!("w{k}{n}"))
                            .await?;
                    let unwaited = ids.split_off(n);
                    let pids: Vec<u32> = svcs.iter().flat_map(|s| s.proc.pids()).collect();
                    if let Some(hook) = &a.before_hold {
                        let scenario: String =
                            format!("{}-{}-{n}-on-{k}", which.name(), mode.name().to_lowercase())
                                .chars()
                                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ' ')
                                .map(|c| if c == ' ' { '-' } else { c })
                                .collect();
                        let pids = pids
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(" ");
                        sh(
                            &format!("--before-hold for {scenario}"),
                            Command::new("sh")
                                .args(["-c", hook])
                                .env("DOCK_BENCH_PIDS", pids)
                                .env("DOCK_BENCH_SCENARIO", &scenario),
                        )?;
                    }
                    let r = load::wake(
                        &addrs,
                        &api,
                        &ids,
                        &unwaited,
                        mode,
                        a.rate,
                        a.drivers,
                        || procs::mem_split(&pids),
                        &redis,
                        Duration::from_secs(a.hold_seconds),
                    )
                    .await?;
                    eprintln!(
                        "    wake p50 {:.2} p99 {:.2} max {:.2} ms; delivered {} lost {} dup {}; {:.1} KiB/waiter",
                        r.wake.p50_ms,
                        r.wake.p99_ms,
                        r.wake.max_ms,
                        r.delivered,
                        r.lost,
                        r.duplicated,
                        r.rss_kib_per_waiter.unwrap_or(f64::NAN)
                    );
                    for s in &mut svcs {
                        s.proc.check_alive()?;
                    }
                    report.wake.push((which.name().into(), r));
                }
            }
        }

        if round_trips > 0 {
            eprintln!(
                "==> {}: round trips to Redis (one instance behind a counting proxy, {round_trips} of each operation)",
                which.name()
            );
            redis.flushall()?;
            let proxy = proxy::CountingProxy::start(([127, 0, 0, 1], redis.port).into()).await?;
            let (mut svc, _) = launcher.start_at(which, &proxy.url(), None).await?;
            let api = Api {
                tenant: Some(
                    client::provision(svc.addr, &launcher.admin_token, "pid-bench").await?,
                ),
                admin_token: launcher.admin_token.clone(),
            };
            let rows = load::round_trips(svc.addr, &api, round_trips, &proxy, &redis).await?;
            svc.proc.check_alive()?;
            for r in rows {
                eprintln!(
                    "    {}: {:.2} requests in {:.2} round trips, {:.2} commands",
                    r.operation, r.requests, r.round_trips, r.commands
                );
                report.round_trips.push((which.name().into(), r));
            }
            eprintln!("    ({} connections to Redis opened)", proxy.connections());
            drop(svc);
            drop(proxy);
        }
    }
    drop(redis);

    let md = report.markdown();
    println!("{md}");
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("results: {}", a.out.display());
    // Speed is reported, never asserted; losing or duplicating a completion,
    // or a failed request, is a failure of the run.
    let faults: Vec<String> = report
        .wake
        .iter()
        .filter(|(_, r)| r.lost + r.duplicated + r.waiter_errors + r.complete_errors > 0)
        .map(|(who, r)| {
            format!(
                "{who} {} ×{} on {}: lost {}, duplicated {}, waiter errors {}, completion errors {}",
                r.mode.name(), r.waiters, r.instances, r.lost, r.duplicated, r.waiter_errors, r.complete_errors
            )
        })
        .chain(
            report
                .create
                .iter()
                .filter(|(_, r)| r.errors > 0)
                .map(|(who, r)| format!("{who} create c={}: {} errors", r.concurrency, r.errors)),
        )
        .chain(
            report
                .low_load
                .iter()
                .filter(|(_, r)| r.errors > 0)
                .map(|(who, r)| format!("{who} low load, {}: {} errors", r.request, r.errors)),
        )
        .chain(
            report
                .scale
                .iter()
                .filter(|r| r.create.errors > 0)
                .map(|r| {
                    format!(
                        "{} scale-out k={}: {} errors",
                        r.server, r.create.instances, r.create.errors
                    )
                }),
        )
        .collect();
    if !faults.is_empty() {
        bail!("the run was not clean:\n  {}", faults.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale_of(args: &[&str]) -> Option<Vec<usize>> {
        let cli = Cli::try_parse_from(["dock-bench", "run"].iter().chain(args)).expect("parses");
        let Cmd::Run(a) = cli.cmd else {
            panic!("not run")
        };
        a.scale
    }

    #[test]
    fn scale_flag() {
        assert_eq!(scale_of(&[]), None);
        assert_eq!(scale_of(&["--scale", "1,2,4"]), Some(vec![1, 2, 4]));
        assert_eq!(scale_of(&["--scale", ""]), Some(vec![0]));
        assert_eq!(scale_of(&["--scale", "0"]), Some(vec![0]));
    }
}
