//! A throwaway `redis-server`, in memory or persisting to a directory the
//! test owns (append-only file, fsync on every write).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::{free_port, wait_until};

/// How long `start` waits for `PING` to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` child process on a free port: without persistence
/// ([`start`](Self::start)), or with an append-only file in a directory of
/// the caller's ([`start_persistent`](Self::start_persistent)). Killed (by
/// PID, SIGKILL) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// The data directory when persistent.
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// Starts `redis-server --port <free> --save '' --appendonly no` and waits
    /// until it answers `PING`.
    pub fn start() -> Result<Self> {
        Self::start_on(free_port())
    }

    /// Starts on a given port (used by [`restart`](Self::restart)).
    pub fn start_on(port: u16) -> Result<Self> {
        Self::spawn(port, None)
    }

    /// Starts on a free port with persistence: `--appendonly yes
    /// --appendfsync always --dir <dir>` (no RDB snapshots), so every write
    /// Redis acknowledged is on disk. [`restart`](Self::restart) and
    /// [`start_persistent_on`](Self::start_persistent_on) with the same
    /// directory load it again.
    pub fn start_persistent(dir: &Path) -> Result<Self> {
        Self::start_persistent_on(free_port(), dir)
    }

    /// [`start_persistent`](Self::start_persistent) on a given port.
    pub fn start_persistent_on(port: u16, dir: &Path) -> Result<Self> {
        Self::spawn(port, Some(dir.to_owned()))
    }

    fn spawn(port: u16, dir: Option<PathBuf>) -> Result<Self> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""]);
        match &dir {
            None => cmd.args(["--appendonly", "no"]),
            Some(d) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .arg("--dir")
                .arg(d),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server (is it installed?)")?;
        let mut server = Self {
            child: Some(child),
            port,
            dir,
        };
        let ready = wait_until(READY_TIMEOUT, "redis-server to answer PING", || {
            server.exited() || ping(port)
        });
        if server.exited() {
            bail!("redis-server on port {port} exited during startup");
        }
        ready?;
        Ok(server)
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory, when persistent.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        !self.exited()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli -p <port> <args>` and returns its stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .context("cannot run redis-cli")?;
        if !out.status.success() {
            bail!(
                "redis-cli {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Kills the server (SIGKILL: no shutdown, no final save) and waits for
    /// it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// [`stop`](Self::stop), named for what it does: `Child::kill` is SIGKILL.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Stops (if running) and starts again on the same port, with the same
    /// persistence: an in-memory server comes back empty, a persistent one
    /// reloads its directory.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let (port, dir) = (self.port, self.dir.take());
        // The old process is gone; the port is free again (SO_REUSEADDR).
        let fresh = Self::spawn(port, dir)?;
        *self = fresh;
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
