//! The service under test as a child process: the real `dock-host` binary
//! (default), or a real `spin up` serving the same manifest when
//! `DOCK_RUNTIME=spin` and `SPIN_BIN` name a Spin 4.1+ binary.
//!
//! Tests describe a host with dock-host's flags; under Spin they are
//! translated to `spin up`'s ([`spin_args`]). A flag that only dock-host has
//! (its limits, logging, caches) makes the start fail under Spin, naming the
//! flag: such a test is dock-host only and `./dev test-spin` does not run it.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::artifacts::workspace_root;
use crate::wait_until;

/// How long a host may take to print its address (a cold compilation cache
/// compiles the component first).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// The `dock-host` binary: `$DOCK_HOST_BIN` if set, else built once per test
/// process with `cargo build -p dock-host --bin dock-host` (same profile as
/// the tests, default target directory; cargo releases its build lock before
/// tests run, so this does not deadlock).
pub fn dock_host_bin() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("DOCK_HOST_BIN") {
            return Ok(PathBuf::from(bin));
        }
        escargot::CargoBuild::new()
            .manifest_path(workspace_root().join("Cargo.toml"))
            .package("dock-host")
            .bin("dock-host")
            .current_release()
            .run()
            .map(|run| run.path().to_owned())
            .map_err(|e| format!("cannot build dock-host: {e}"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Which runtime serves the component in this test process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// Our wasmtime embedding, `dock-host` (the default).
    DockHost,
    /// A real `spin up`: `DOCK_RUNTIME=spin`, `SPIN_BIN=/path/to/spin`.
    Spin(PathBuf),
}

impl Runtime {
    /// The runtime of this test process, from `DOCK_RUNTIME` (`dock-host`,
    /// the default, or `spin`, which needs `SPIN_BIN`). A bad setting panics:
    /// a run meant for Spin must never pass on dock-host instead.
    pub fn current() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| match std::env::var("DOCK_RUNTIME").as_deref() {
            Err(_) | Ok("") | Ok("dock-host") => Runtime::DockHost,
            Ok("spin") => {
                let bin = std::env::var_os("SPIN_BIN")
                    .map(PathBuf::from)
                    .filter(|p| p.is_file())
                    .unwrap_or_else(|| {
                        panic!("DOCK_RUNTIME=spin needs SPIN_BIN naming a spin binary (see tests/spin/README.md)")
                    });
                Runtime::Spin(bin)
            }
            Ok(other) => panic!("DOCK_RUNTIME={other}: expected `dock-host` or `spin`"),
        })
    }

    /// Whether this is a real Spin.
    pub fn is_spin(&self) -> bool {
        matches!(self, Runtime::Spin(_))
    }

    /// `dock-host` or `spin`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::DockHost => "dock-host",
            Runtime::Spin(_) => "spin",
        }
    }
}

/// Translates dock-host `up` flags into `spin up` flags. `--sqlite-db memory`
/// becomes a fresh state directory (Spin keeps the default database in
/// `<state-dir>/sqlite_db.db`), a path becomes a runtime-config file in
/// `state_dir`; flags that only tune dock-host's logging and caches are
/// dropped; any other dock-host-only flag is an error naming it.
pub fn spin_args(args: &[String], state_dir: &Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut it = args.iter();
    // Spin takes one runtime config: a file given, or one made for a path.
    let mut runtime_configs = 0;
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            // Same meaning, same name.
            "--listen"
            | "--runtime-config-file"
            | "--sqlite"
            | "--max-instance-reuse-count"
            | "--max-instance-concurrent-reuse-count" => {
                let v = value()?;
                if flag == "--runtime-config-file" {
                    runtime_configs += 1;
                }
                out.extend([flag.clone(), v]);
            }
            "--variable" | "--var" => out.extend(["--variable".to_owned(), value()?]),
            // Spin's durations take `s`, `ms`, `us` or `ns`; dock-host's also `m`.
            "--idle-instance-timeout" => {
                let v = value()?;
                let v = match v.strip_suffix('m').map(str::parse::<u64>) {
                    Some(Ok(minutes)) => format!("{}s", minutes * 60),
                    _ => v,
                };
                out.extend([flag.clone(), v]);
            }
            // Spin takes bytes.
            "--max-instance-memory" => {
                let v = value()?;
                let bytes = parse_size(&v).with_context(|| format!("--max-instance-memory {v}"))?;
                out.extend(["--max-instance-memory".to_owned(), bytes.to_string()]);
            }
            "--sqlite-db" => {
                let v = value()?;
                if v != "memory" && v != ":memory:" {
                    let file = state_dir.join("dock-sqlite-runtime-config.toml");
                    let mut doc = toml_edit::DocumentMut::new();
                    doc["sqlite_database"]["default"]["type"] = toml_edit::value("spin");
                    doc["sqlite_database"]["default"]["path"] = toml_edit::value(v.as_str());
                    std::fs::write(&file, doc.to_string())?;
                    runtime_configs += 1;
                    out.extend([
                        "--runtime-config-file".to_owned(),
                        file.display().to_string(),
                    ]);
                }
            }
            // dock-host's own logging and cache: nothing to say to Spin. Nor
            // its webhook dispatch timer: Spin has none (a scheduler calls
            // the route), so off is what Spin does.
            "--log-level" | "--cache-dir" | "--webhook-dispatch-interval" => {
                value()?;
            }
            "--no-cache" => out.push("--disable-cache".to_owned()),
            // Spin's sockets keep Nagle's algorithm on.
            "--tcp-nodelay" if value()? == "false" => {}
            // Spin caps no address's connections: lifting dock-host's cap is
            // what Spin does already.
            "--max-connections-per-ip" if value()? == "0" => {}
            other => bail!(
                "`{other}` is a dock-host flag with no `spin up` equivalent: this test is dock-host only"
            ),
        }
    }
    if runtime_configs > 1 {
        bail!("both --runtime-config-file and --sqlite-db PATH: give Spin one runtime config");
    }
    out.extend(["--state-dir".to_owned(), state_dir.display().to_string()]);
    Ok(out)
}

/// `64MiB`, `1GiB`, `512KiB` or plain bytes (dock-host's size syntax).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// The compilation cache the tests share (under `target/`).
fn test_cache_dir() -> PathBuf {
    workspace_root().join("target").join("dock-host-cache")
}

/// A running `dock-host up`. Killed on drop; its output is printed then if the
/// test is panicking.
#[derive(Debug)]
pub struct Host {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
    /// Spin's state directory (its default SQLite database, logs), removed
    /// with the host.
    _state: Option<tempfile::TempDir>,
}

/// How a host process ended.
#[derive(Debug)]
pub struct HostExit {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout and stderr, interleaved by line.
    pub output: String,
}

/// Options for starting a host.
#[derive(Debug, Clone)]
pub struct HostBuilder {
    manifest: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Host {
    /// `dock-host up -f <manifest> --listen 127.0.0.1:0 <args>`, waiting until
    /// `/.well-known/spin/health` answers 200. Unless `args` say otherwise, the
    /// shared test compilation cache is used.
    pub fn start(manifest: &Path, args: &[&str]) -> Result<Self> {
        Self::builder(manifest).args(args).start()
    }

    /// A builder, for setting environment variables too.
    pub fn builder(manifest: &Path) -> HostBuilder {
        HostBuilder {
            manifest: manifest.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the host printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`"TERM"`, `"INT"`, ...) to the process without waiting.
    pub fn signal(&self, name: &str) -> Result<()> {
        // The whole process group: `spin up` serves from a child process
        // (`spin trigger http`) that a signal to the parent alone would miss.
        let status = Command::new("kill")
            .args([
                format!("-{name}"),
                "--".into(),
                format!("-{}", self.child.id()),
            ])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{name} {} failed", self.child.id());
        }
        Ok(())
    }

    /// Waits (up to `timeout`) for the process to exit by itself.
    pub fn wait_exit(mut self, timeout: Duration) -> Result<HostExit> {
        let mut exit = None;
        wait_until(timeout, "dock-host to exit", || {
            exit = self.child.try_wait().ok().flatten();
            exit.is_some()
        })?;
        let status = exit.context("no exit status")?;
        Ok(HostExit {
            status,
            output: self.output(),
        })
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit.
    pub fn terminate(self, timeout: Duration) -> Result<HostExit> {
        self.signal("TERM")?;
        self.wait_exit(timeout)
    }
}

impl HostBuilder {
    /// Adds command-line arguments after `up`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets an environment variable for the host process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The command for the current [`Runtime`], and Spin's state directory.
    fn command(&self) -> Result<(Command, Option<tempfile::TempDir>)> {
        let mut args = self.args.clone();
        if !args.iter().any(|a| a == "--listen") {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        let (mut cmd, state) = match Runtime::current() {
            Runtime::DockHost => {
                let mut cmd = Command::new(dock_host_bin()?);
                cmd.arg("up").arg("-f").arg(&self.manifest);
                if !args.iter().any(|a| a == "--cache-dir" || a == "--no-cache") {
                    cmd.arg("--cache-dir").arg(test_cache_dir());
                }
                cmd.args(&args);
                (cmd, None)
            }
            Runtime::Spin(bin) => {
                let state = tempfile::Builder::new()
                    .prefix("dock-spin-state")
                    .tempdir()?;
                let mut cmd = Command::new(bin);
                cmd.arg("up").arg("-f").arg(&self.manifest);
                cmd.args(spin_args(&args, state.path())?);
                // Spin's own default logging: its per-request info log
                // (spin_trigger_http) would print each request's query,
                // OAuth codes included, which the secret scans rightly flag.
                (cmd, Some(state))
            }
        };
        if let Some(dir) = self.manifest.parent() {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so that signals and the final kill reach
        // every process it starts (see `kill_group`).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Ok((cmd, state))
    }

    /// Starts the host and waits until it is ready.
    pub fn start(self) -> Result<Host> {
        let name = Runtime::current().name();
        let (mut cmd, state) = self.command()?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        collect(child.stdout.take(), output.clone(), Some(addr_tx));
        collect(child.stderr.take(), output.clone(), None);
        let addr = match addr_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                kill_group(&mut child);
                let status = child.wait().ok();
                let out = output.lock().map(|s| s.clone()).unwrap_or_default();
                bail!("{name} did not start ({status:?}):\n{out}");
            }
        };
        let mut host = Host {
            child,
            addr,
            output,
            _state: state,
        };
        let ready = wait_until(Duration::from_secs(30), "the health check", || {
            !host.is_running() || health(addr)
        });
        if !host.is_running() {
            bail!("{name} exited during startup:\n{}", host.output());
        }
        ready.map_err(|e| anyhow!("{e}\n{}", host.output()))?;
        Ok(host)
    }

    /// Runs the host expecting it to exit by itself (e.g. a startup error).
    pub fn run_to_exit(self, timeout: Duration) -> Result<HostExit> {
        let (mut cmd, _state) = self.command()?;
        let name = Runtime::current().name();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let out_done = collect(child.stdout.take(), output.clone(), None);
        let err_done = collect(child.stderr.take(), output.clone(), None);
        let deadline = Instant::now() + timeout;
        let mut status = None;
        let waited = wait_until(timeout, "dock-host to exit", || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if waited.is_err() {
            kill_group(&mut child);
            let _ = child.wait();
            bail!(
                "{name} kept running for {timeout:?}:\n{}",
                output.lock().map(|s| s.clone()).unwrap_or_default()
            );
        }
        // The pipes close when the process exits; let the readers finish.
        for done in [out_done, err_done] {
            let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
            let _ = done.recv_timeout(left);
        }
        Ok(HostExit {
            status: status.context("no exit status")?,
            output: output.lock().map(|s| s.clone()).unwrap_or_default(),
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = self.child.wait();
        if std::thread::panicking() {
            // Shown with the failing test's output.
            let out = self.output();
            let _ = writeln!(
                std::io::stderr(),
                "--- {} output ---\n{out}--- end ---",
                Runtime::current().name()
            );
        }
    }
}

/// SIGKILLs the process group `child` leads (it was started with
/// `process_group(0)`), then the child itself in case the group is gone.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

/// Copies `pipe` into `output` line by line on a thread; sends the address of
/// a `Serving http://ADDR` line (dock-host's, or Spin's with its colour codes)
/// to `addr_tx`. The returned channel fires at EOF.
fn collect(
    pipe: Option<impl Read + Send + 'static>,
    output: Arc<Mutex<String>>,
    addr_tx: Option<mpsc::Sender<SocketAddr>>,
) -> mpsc::Receiver<()> {
    let (done_tx, done_rx) = mpsc::channel();
    let Some(pipe) = pipe else {
        let _ = done_tx.send(());
        return done_rx;
    };
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let (Some(tx), Some(at)) = (&addr_tx, line.find("Serving"))
                && let Some(rest) = line[at..].split("http://").nth(1)
                && let Ok(addr) = rest.trim().trim_end_matches("\u{1b}[0m").parse()
            {
                let _ = tx.send(addr);
            }
            if let Ok(mut out) = output.lock() {
                out.push_str(&line);
                out.push('\n');
            }
        }
        let _ = done_tx.send(());
    });
    done_rx
}

/// `GET /.well-known/spin/health` answered with 200.
fn health(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "GET /.well-known/spin/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spin_args_translate_dock_host_flags() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let out = spin_args(
            &args(&[
                "--sqlite-db",
                "memory",
                "--webhook-dispatch-interval",
                "300ms",
                "--log-level",
                "debug",
                "--var",
                "a=1",
                "--idle-instance-timeout",
                "5m",
                "--max-instance-memory",
                "64MiB",
                "--tcp-nodelay",
                "false",
                "--max-connections-per-ip",
                "0",
                "--listen",
                "127.0.0.1:0",
            ]),
            state,
        )
        .unwrap();
        let state_arg = state.display().to_string();
        assert_eq!(
            out,
            args(&[
                "--variable",
                "a=1",
                "--idle-instance-timeout",
                "300s",
                "--max-instance-memory",
                "67108864",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                &state_arg,
            ])
        );
        // A database path becomes a runtime config Spin reads.
        let out = spin_args(&args(&["--sqlite-db", "/tmp/x \"y\".db"]), state).unwrap();
        assert_eq!(out[0], "--runtime-config-file");
        let text = std::fs::read_to_string(&out[1]).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(
            doc["sqlite_database"]["default"]["path"].as_str(),
            Some("/tmp/x \"y\".db")
        );
        // One runtime config only; dock-host-only flags are refused by name.
        assert!(
            spin_args(
                &args(&["--runtime-config-file", "a.toml", "--sqlite-db", "b.db"]),
                state
            )
            .is_err()
        );
        assert!(
            spin_args(
                &args(&["--runtime-config-file", "a.toml", "--sqlite-db", "memory"]),
                state
            )
            .is_ok()
        );
        for only in [
            ["--max-guest-slice", "1s"],
            ["--tcp-nodelay", "true"],
            ["--header-read-timeout", "2s"],
            ["--max-connections-per-ip", "8"],
            ["--body-read-timeout", "2s"],
        ] {
            let e = spin_args(&args(&only), state).unwrap_err().to_string();
            assert!(e.contains(only[0]) && e.contains("dock-host only"), "{e}");
        }
    }
}
