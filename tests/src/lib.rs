//! Test support for the end-to-end suite: real processes, real ports.
//!
//! - [`RedisServer`]: a throwaway `redis-server` on a free port
//!   (`--save '' --appendonly no`), or persisting to a directory of the
//!   test's (`--appendonly yes --appendfsync always`) so it can be SIGKILLed
//!   and restarted on the same data; killed on drop.
//! - [`Host`]: the real `dock-host` binary serving a manifest on a free port,
//!   ready when its health endpoint answers, killed on drop.
//! - [`artifacts`]: the guest components, built by cargo in `build.rs`
//!   (`target/guest`), and helpers to write manifests that point at them.
//! - [`wait_until`] / [`free_port`]: polling with a deadline (never a fixed
//!   sleep) and port selection.
//!
//! Process control is synchronous (std only), so it works from plain `#[test]`s
//! and from `#[tokio::test]`s alike; [`wait_until_async`] needs a tokio runtime.
//!
//! ```no_run
//! use dock_tests::{Host, RedisServer, artifacts};
//! let redis = RedisServer::start().unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let manifest = artifacts::root_manifest(dir.path()).unwrap();
//! let host = Host::start(&manifest, &["--variable", &format!("redis_url={}", redis.url())]).unwrap();
//! println!("{}", host.url("/v1/sessions"));
//! ```

pub mod artifacts;
pub mod fake_oauth;
mod host;
mod redis_server;
pub mod webhook_receiver;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

pub use host::{Host, HostExit, Runtime, dock_host_bin, spin_args};
pub use redis_server::RedisServer;

/// A TCP port that was free a moment ago on 127.0.0.1 (bind :0, read, release).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `condition` until it holds or `timeout` passes, sleeping briefly
/// between attempts (backing off from 5 ms to 100 ms). Errors name `what`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Async variant of [`wait_until`] for `#[tokio::test]`s: the condition is a
/// future, and the pause does not block the runtime.
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        // Only the poll interval; the condition decides when we are done.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Serves HTTP/1 on `listener`, each request answered by `handle` with the
/// shared `state`, on tasks of the current tokio runtime, until the returned
/// task is aborted: the fake OAuth providers and the webhook receiver.
pub(crate) fn spawn_http_server<S, F, Fut>(
    listener: tokio::net::TcpListener,
    state: std::sync::Arc<S>,
    handle: F,
) -> tokio::task::JoinHandle<()>
where
    S: Send + Sync + 'static,
    F: Fn(std::sync::Arc<S>, hyper::Request<hyper::body::Incoming>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (state, handle) = (state.clone(), handle.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handle(state.clone(), req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
