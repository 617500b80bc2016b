//! The real `dock-host` binary as a child process.

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
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
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

    fn command(&self) -> Result<Command> {
        let mut cmd = Command::new(dock_host_bin()?);
        cmd.arg("up").arg("-f").arg(&self.manifest);
        if !self.args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !self
            .args
            .iter()
            .any(|a| a == "--cache-dir" || a == "--no-cache")
        {
            cmd.arg("--cache-dir").arg(test_cache_dir());
        }
        cmd.args(&self.args);
        if let Some(dir) = self.manifest.parent() {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    /// Starts the host and waits until it is ready.
    pub fn start(self) -> Result<Host> {
        let mut child = self.command()?.spawn().context("cannot start dock-host")?;
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        collect(child.stdout.take(), output.clone(), Some(addr_tx));
        collect(child.stderr.take(), output.clone(), None);
        let addr = match addr_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let out = output.lock().map(|s| s.clone()).unwrap_or_default();
                bail!("dock-host did not start ({status:?}):\n{out}");
            }
        };
        let mut host = Host {
            child,
            addr,
            output,
        };
        let ready = wait_until(Duration::from_secs(30), "dock-host health check", || {
            !host.is_running() || health(addr)
        });
        if !host.is_running() {
            bail!("dock-host exited during startup:\n{}", host.output());
        }
        ready.map_err(|e| anyhow!("{e}\n{}", host.output()))?;
        Ok(host)
    }

    /// Runs the host expecting it to exit by itself (e.g. a startup error).
    pub fn run_to_exit(self, timeout: Duration) -> Result<HostExit> {
        let mut child = self.command()?.spawn().context("cannot start dock-host")?;
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
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "dock-host kept running for {timeout:?}:\n{}",
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // Shown with the failing test's output.
            let out = self.output();
            let _ = writeln!(
                std::io::stderr(),
                "--- dock-host output ---\n{out}--- end ---"
            );
        }
    }
}

/// Copies `pipe` into `output` line by line on a thread; sends the address of
/// a `Serving http://ADDR` line to `addr_tx`. The returned channel fires at EOF.
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
            if let (Some(tx), Some(rest)) = (&addr_tx, line.strip_prefix("Serving http://"))
                && let Ok(addr) = rest.trim().parse()
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
