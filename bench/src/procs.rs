//! The processes a run owns: a `redis-server`, the services under test, the
//! floor server. Each is killed (by PID) when dropped.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process killed on drop.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    /// Runs in a process group of its own (its PID), killed as a group:
    /// `spin up` serves from a child `spin trigger http`.
    group: bool,
}

impl Proc {
    /// Spawns `cmd` with stdout discarded (services log per request) and
    /// stderr kept for diagnosis.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        Self::spawn_as(name, cmd, false)
    }

    /// [`spawn`](Self::spawn) in a process group of its own.
    pub fn spawn_group(name: &str, cmd: &mut Command) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
        Self::spawn_as(name, cmd, true)
    }

    fn spawn_as(name: &str, cmd: &mut Command, group: bool) -> Result<Self> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            group,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every process that serves: the child, and for a group every member.
    pub fn pids(&self) -> Vec<u32> {
        if !self.group {
            return vec![self.pid()];
        }
        let pgid = self.pid().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid pgrp …"; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if after.split_whitespace().nth(2) == Some(pgid.as_str()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited: {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` on a free port, no persistence, room for many clients.
#[derive(Debug)]
pub struct Redis {
    /// Killed when the run ends.
    _proc: Proc,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let proc = Proc::spawn(
            "redis-server",
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--maxclients", "60000"]),
        )?;
        let r = Redis { _proc: proc, port };
        let start = Instant::now();
        while r
            .command("PING")
            .map(|s| !s.starts_with("+PONG"))
            .unwrap_or(true)
        {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("redis-server on {port} does not answer PING");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the first reply line.
    pub fn command(&self, cmd: &str) -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(format!("{cmd}\r\n").as_bytes())?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Zeroes Redis' per-command counters (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) -> Result<()> {
        let r = self.command("CONFIG RESETSTAT")?;
        if !r.starts_with("+OK") {
            bail!("CONFIG RESETSTAT: {r}");
        }
        Ok(())
    }

    /// What the servers asked of Redis since the last [`reset_stats`]:
    /// `INFO commandstats`, without the harness's own `info`/`config`.
    ///
    /// [`reset_stats`]: Self::reset_stats
    pub fn cost(&self) -> Result<RedisCost> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", "commandstats"])
            .output()
            .context("cannot run redis-cli")?;
        let mut cost = RedisCost::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // cmdstat_get:calls=12,usec=34,usec_per_call=2.83,...
            let Some((name, fields)) = line
                .trim()
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            if name == "info" || name.starts_with("config") {
                continue;
            }
            let field = |k: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let calls = field("calls");
            cost.calls += calls;
            cost.usec += field("usec");
            cost.by_command.push((name.to_owned(), calls));
        }
        cost.by_command
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(cost)
    }

    /// `INFO <section>`: the bulk reply's text.
    pub fn info(&self, section: &str) -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        s.write_all(format!("INFO {section}\r\n").as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                bail!("INFO {section}: Redis closed the connection");
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..eol]);
            let len: usize = head
                .strip_prefix('$')
                .and_then(|l| l.parse().ok())
                .with_context(|| format!("INFO {section}: {head}"))?;
            if buf.len() >= eol + 2 + len {
                return Ok(String::from_utf8_lossy(&buf[eol + 2..eol + 2 + len]).into_owned());
            }
        }
    }

    /// CPU time Redis has used since it started, in seconds (`INFO cpu`:
    /// `used_cpu_user + used_cpu_sys`, every thread of the process: commands,
    /// networking, the event loop and its cron).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let info = self.info("cpu")?;
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .with_context(|| format!("INFO cpu has no {k}: {info}"))
        };
        Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
    }

    pub fn flushall(&self) -> Result<()> {
        let r = self.command("FLUSHALL")?;
        if !r.starts_with("+OK") {
            bail!("FLUSHALL: {r}");
        }
        Ok(())
    }
}

/// Commands Redis executed (and the CPU it spent in them) over a window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RedisCost {
    pub calls: u64,
    /// Redis' own time in commands, µs (`usec` of `INFO commandstats`).
    pub usec: u64,
    /// Calls per command, most first.
    pub by_command: Vec<(String, u64)>,
}

impl RedisCost {
    /// `calls` and `usec` per `n` operations, and the three busiest commands.
    pub fn per(&self, n: u64) -> (f64, f64, String) {
        let n = n.max(1) as f64;
        let top = self
            .by_command
            .iter()
            .take(3)
            .map(|(c, k)| format!("{c} {:.2}", *k as f64 / n))
            .collect::<Vec<_>>()
            .join(", ");
        (self.calls as f64 / n, self.usec as f64 / n, top)
    }
}

/// Which implementation serves the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// Ours: the component under dock-host.
    Dock,
    /// The Node reference in `bench/node`.
    Node,
    /// The same component under a real `spin up`.
    Spin,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Dock => "dock (wasm)",
            Impl::Node => "node ref",
            Impl::Spin => "dock on spin",
        }
    }
}

/// How to start the services.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub repo: PathBuf,
    pub dock_host: PathBuf,
    /// Extra `dock-host up` flags (instance reuse, limits).
    pub dock_args: Vec<String>,
    pub admin_token: String,
    /// The `spin` binary, for `Impl::Spin`.
    pub spin_bin: Option<PathBuf>,
}

/// One running service instance.
#[derive(Debug)]
pub struct Service {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Launcher {
    /// The application variables every dock instance runs with, `NAME=VALUE`.
    fn variables(&self, redis_url: &str, base: &str) -> [String; 5] {
        [
            format!("redis_url={redis_url}"),
            format!("redis_origin={redis_url}"),
            format!("admin_token={}", self.admin_token),
            format!("public_base_url={base}"),
            "max_streams_per_key=100000".to_owned(),
        ]
    }

    /// Starts one instance on a free port and waits for `/healthz`.
    pub async fn start(
        &self,
        which: Impl,
        redis: &Redis,
        cache_dir: Option<&Path>,
    ) -> Result<(Service, Duration)> {
        self.start_at(which, &redis.url(), cache_dir).await
    }

    /// [`start`](Self::start) against the Redis at `redis_url` (e.g. a
    /// counting proxy in front of the run's Redis).
    ///
    /// A process that exits before it is healthy (e.g. its free port was
    /// taken in the meantime by another socket on a busy machine) is retried
    /// on another port, twice; the time returned is the successful start's.
    pub async fn start_at(
        &self,
        which: Impl,
        redis_url: &str,
        cache_dir: Option<&Path>,
    ) -> Result<(Service, Duration)> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let started = Instant::now();
            let mut svc = Service {
                proc: self.spawn(which, addr, redis_url, cache_dir)?,
                addr,
            };
            let healthy = crate::client::until_healthy(addr, "/healthz", Duration::from_secs(120));
            let exited = async {
                loop {
                    if let Err(e) = svc.proc.check_alive() {
                        return e;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                r = healthy => {
                    r.with_context(|| format!("{} did not become healthy", which.name()))?;
                }
                e = exited => {
                    if attempt < 3 {
                        eprintln!("    {e:#} before answering /healthz on {addr}; again on another port");
                        attempt += 1;
                        continue;
                    }
                    return Err(e.context(format!("{} did not become healthy", which.name())));
                }
            }
            let took = started.elapsed();
            svc.proc.check_alive()?;
            return Ok((svc, took));
        }
    }

    /// Spawns one instance serving on `addr`.
    fn spawn(
        &self,
        which: Impl,
        addr: SocketAddr,
        redis_url: &str,
        cache_dir: Option<&Path>,
    ) -> Result<Proc> {
        let port = addr.port();
        let base = format!("http://{addr}");
        let proc = match which {
            Impl::Dock => {
                let mut cmd = Command::new(&self.dock_host);
                cmd.arg("up")
                    .args(["--listen", &addr.to_string()])
                    .arg("--from")
                    .arg(self.repo.join("spin.toml"))
                    .args(["--log-level", "warn"])
                    .args(["--max-connections", "50000"])
                    // Every bench client comes from 127.0.0.1.
                    .args(["--max-connections-per-ip", "0"])
                    .args(["--max-concurrent-requests", "50000"])
                    // No webhooks in the bench: the dispatch timer's calls
                    // would add requests and Redis commands to every figure.
                    .args(["--webhook-dispatch-interval", "0"]);
                for v in self.variables(redis_url, &base) {
                    cmd.args(["--var", &v]);
                }
                match cache_dir {
                    Some(d) => cmd.arg("--cache-dir").arg(d),
                    None => &mut cmd,
                };
                cmd.args(&self.dock_args);
                Proc::spawn("dock-host", &mut cmd)?
            }
            Impl::Spin => {
                let spin = self.spin_bin.as_ref().context(
                    "--impls spin needs --spin-bin (tests/spin/build-spin.sh builds one)",
                )?;
                // Spin's own defaults, as a user runs it; each `spin up`
                // keeps its state (and its unused SQLite file) apart.
                let state = std::env::temp_dir().join(format!("dock-bench-spin-{port}"));
                let mut cmd = Command::new(spin);
                cmd.arg("up")
                    .arg("--from")
                    .arg(self.repo.join("spin.toml"))
                    .args(["--listen", &addr.to_string()])
                    .arg("--state-dir")
                    .arg(&state);
                for v in self.variables(redis_url, &base) {
                    cmd.args(["--variable", &v]);
                }
                // Spin keeps its own compilation cache (~/.cache/spin): its
                // "cold" start is cold only on a machine that never ran it.
                Proc::spawn_group("spin up", &mut cmd)?
            }
            Impl::Node => Proc::spawn(
                "node reference",
                Command::new("node")
                    .arg(self.repo.join("bench/node/server.mjs"))
                    .env("PORT", port.to_string())
                    .env("HOST", "127.0.0.1")
                    .env("REDIS_URL", redis_url)
                    .env("ADMIN_TOKEN", &self.admin_token)
                    .env("PUBLIC_BASE_URL", &base),
            )?,
        };
        Ok(proc)
    }
}

/// Starts the floor server (this binary's `floor-server` subcommand).
pub async fn start_floor() -> Result<Service> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let proc = Proc::spawn(
        "floor server",
        Command::new(std::env::current_exe()?)
            .arg("floor-server")
            .args(["--listen", &addr.to_string()]),
    )?;
    crate::client::until_healthy(addr, "/healthz", Duration::from_secs(10)).await?;
    Ok(Service { proc, addr })
}

/// `redis-benchmark` PING (inline and multibulk) against `redis`: requests/s and p50 ms.
pub fn redis_benchmark_ping(
    redis: &Redis,
    clients: u32,
    requests: u32,
) -> Result<Vec<(String, f64, f64)>> {
    let out = Command::new("redis-benchmark")
        .args(["-p", &redis.port.to_string(), "-h", "127.0.0.1"])
        .args(["-t", "ping", "-q"])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .output()
        .context("cannot run redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "PING_INLINE: 96153.85 requests per second, p50=0.271 msec"
    let mut rows = Vec::new();
    for line in text.split(['\n', '\r']) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let rps = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        let p50 = rest
            .split("p50=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok());
        if let (Some(rps), Some(p50)) = (rps, p50) {
            rows.push((name.trim().to_owned(), rps, p50));
        }
    }
    if rows.is_empty() {
        bail!("could not parse redis-benchmark output: {text}");
    }
    Ok(rows)
}

/// A process' memory from `/proc/<pid>/smaps` (KiB, summed over `pids`):
/// resident (RSS) and proportional (PSS: a page mapped several times, such
/// as a Wasm memory image under many instances, counts once), the PSS split
/// by what maps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemSplit {
    pub rss_kib: u64,
    pub pss_kib: u64,
    /// Anonymous mappings: malloc's heap and arenas, thread stacks, and the
    /// pages of Wasm linear memories, tables and fiber stacks that were
    /// written (wasmtime's reservations are anonymous too).
    pub anon_kib: u64,
    /// `memfd` mappings: wasmtime's copy-on-write linear-memory images,
    /// one mapping per instance (the data segments).
    pub memfd_kib: u64,
    /// Files: the executable, libraries, the code cache.
    pub file_kib: u64,
}

impl MemSplit {
    /// `self - before`, per `n`.
    pub fn per(&self, before: &MemSplit, n: usize) -> MemSplitPer {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / n.max(1) as f64;
        MemSplitPer {
            rss_kib: d(self.rss_kib, before.rss_kib),
            pss_kib: d(self.pss_kib, before.pss_kib),
            anon_kib: d(self.anon_kib, before.anon_kib),
            memfd_kib: d(self.memfd_kib, before.memfd_kib),
            file_kib: d(self.file_kib, before.file_kib),
        }
    }
}

/// [`MemSplit`] growth per held waiter.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MemSplitPer {
    pub rss_kib: f64,
    pub pss_kib: f64,
    pub anon_kib: f64,
    pub memfd_kib: f64,
    pub file_kib: f64,
}

/// `smaps` text → its split.
fn split_of(smaps: &str, into: &mut MemSplit) {
    #[derive(Clone, Copy)]
    enum Kind {
        Anon,
        Memfd,
        File,
    }
    let mut current = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((lo, hi)) = first.split_once('-')
            && u64::from_str_radix(lo, 16).is_ok()
            && u64::from_str_radix(hi, 16).is_ok()
        {
            // start-end perms offset dev inode [path]
            let path = words.nth(4).unwrap_or("");
            current = Some(if path.starts_with("/memfd:") {
                Kind::Memfd
            } else if path.starts_with('/') {
                Kind::File
            } else {
                Kind::Anon
            });
            continue;
        }
        let kib = words.next().and_then(|v| v.parse::<u64>().ok());
        if first == "Rss:" {
            into.rss_kib += kib.unwrap_or(0);
        }
        if first == "Pss:"
            && let (Some(kind), Some(kib)) = (current, kib)
        {
            into.pss_kib += kib;
            *match kind {
                Kind::Anon => &mut into.anon_kib,
                Kind::Memfd => &mut into.memfd_kib,
                Kind::File => &mut into.file_kib,
            } += kib;
        }
    }
}

pub fn mem_split(pids: &[u32]) -> Option<MemSplit> {
    let mut split = MemSplit::default();
    for pid in pids {
        split_of(
            &std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?,
            &mut split,
        );
    }
    Some(split)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`;
/// 100 on every common Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time `pids` have used, user + system, summed over every thread, in
/// seconds (Linux `/proc/<pid>/stat` utime and stime; a tick is 10 ms).
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid …": after the comm, utime and stime are the
        // 12th and 13th fields (the 14th and 15th of the whole line).
        let after = stat.rsplit_once(')')?.1;
        let mut f = after.split_whitespace().skip(11);
        let utime: u64 = f.next()?.parse().ok()?;
        let stime: u64 = f.next()?.parse().ok()?;
        ticks += utime + stime;
    }
    Some(ticks as f64 / clock_ticks())
}

/// What to read CPU time from over a measured window: the run's Redis and
/// the server processes under test.
#[derive(Debug)]
pub struct Meter<'a> {
    pub redis: &'a Redis,
    pub pids: Vec<u32>,
}

/// One reading of a [`Meter`].
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    redis_s: f64,
    server_s: Option<f64>,
}

/// CPU used over a window, in seconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CpuUse {
    /// The window's wall-clock length.
    pub wall_s: f64,
    /// Redis' CPU (`INFO cpu`).
    pub redis_s: f64,
    /// The servers' CPU (`/proc/<pid>/stat`), summed over processes.
    pub server_s: Option<f64>,
}

impl Meter<'_> {
    pub fn sample(&self) -> Result<CpuSample> {
        Ok(CpuSample {
            at: Instant::now(),
            redis_s: self.redis.cpu_seconds()?,
            server_s: cpu_seconds(&self.pids),
        })
    }
}

impl CpuSample {
    /// From this reading to `later`.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        CpuUse {
            wall_s: later.at.duration_since(self.at).as_secs_f64(),
            redis_s: (later.redis_s - self.redis_s).max(0.0),
            server_s: self
                .server_s
                .zip(later.server_s)
                .map(|(a, b)| (b - a).max(0.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_split_by_mapping() {
        let smaps = "\
55d0c0000000-55d0c0100000 r-xp 00000000 fd:01 123 /usr/bin/dock-host
Size:               1024 kB
Rss:                 300 kB
Pss:                 300 kB
7f0000000000-7f0000100000 rw-p 00000000 00:01 77 /memfd:wasm-memory-image (deleted)
Rss:                  64 kB
Pss:                  16 kB
7f0000100000-7f0400000000 rw-p 00000000 00:00 0 
Size:           16776192 kB
Rss:                5000 kB
Pss:                5000 kB
55d0c1000000-55d0c2000000 rw-p 00000000 00:00 0                          [heap]
Rss:                  20 kB
Pss:                  20 kB
";
        let mut s = MemSplit::default();
        split_of(smaps, &mut s);
        assert_eq!(
            s,
            MemSplit {
                rss_kib: 5384,
                pss_kib: 5336,
                anon_kib: 5020,
                memfd_kib: 16,
                file_kib: 300
            }
        );
    }
}
