//! A throwaway `redis-server`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::{free_port, wait_until};

/// How long `start` waits for `PING` to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` child process on a free port, without persistence.
/// Killed (by PID) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server --port <free> --save '' --appendonly no` and waits
    /// until it answers `PING`.
    pub fn start() -> Result<Self> {
        Self::start_on(free_port())
    }

    /// Starts on a given port (used by [`restart`](Self::restart)).
    pub fn start_on(port: u16) -> Result<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server (is it installed?)")?;
        let mut server = Self {
            child: Some(child),
            port,
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

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port (all data is lost).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let port = self.port;
        // The old process is gone; the port is free again (SO_REUSEADDR).
        let fresh = Self::start_on(port)?;
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
