//! Kept-alive connections do not stall: 100 sequential creates and 100 reads
//! on ONE connection, on a server socket that keeps Nagle's algorithm on, as
//! `spin up`'s does (dock-host runs with `--tcp-nodelay false`; under
//! `DOCK_RUNTIME=spin` it is Spin's own socket).
//!
//! The defect this guards against: a response that leaves the server in more
//! than one write (head, then body, then the chunked terminator) waits for the
//! client's delayed ACK — about 40 ms on Linux — before its last piece is
//! sent. Every request then takes at least that long. The bound below (median
//! under 20 ms) sits halfway between that floor and the 1–5 ms a request takes
//! without it, so a busy machine does not trip it while the stall always
//! does; the benchmark, not this test, records real latencies.

mod api_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use api_support::{Service, StoreKind};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Requests of each kind on the one connection.
const N: usize = 100;
/// The median must stay below this (the stall's floor is ~40 ms).
const MEDIAN_LIMIT: Duration = Duration::from_millis(20);

/// One kept-alive HTTP/1.1 connection (hyper's client), like an integrator's
/// `fetch` or `http.Agent` with keep-alive.
struct OneConnection {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl OneConnection {
    async fn open(addr: std::net::SocketAddr) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        // As curl and Node do: the client side never delays its own writes.
        tcp.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Self {
            send,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer; returns status, JSON and
    /// the time from sending to the last byte.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value, Duration)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {key}"));
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes))?;
        self.send.ready().await.context("the connection closed")?;
        let started = Instant::now();
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let took = started.elapsed();
        let json = serde_json::from_slice(&body)
            .with_context(|| format!("{status}: not JSON: {body:?}"))?;
        Ok((status, json, took))
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// How many took at least the delayed-ACK floor.
fn stalled(v: &[Duration]) -> usize {
    v.iter()
        .filter(|d| **d >= Duration::from_millis(38))
        .count()
}

async fn no_stall(store: StoreKind) -> Result<()> {
    let svc = Service::start_with_host_args(store, &["--tcp-nodelay", "false"], &[]).await?;
    let key = svc.tenant("pid-keepalive").await?;
    let mut conn = OneConnection::open(svc.hosts[0].addr()).await?;

    let (mut creates, mut reads) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for i in 0..N {
        let (s, body, took) = conn
            .call(
                "POST",
                "/api/v1/verify/session",
                &key,
                Some(json!({"pid": "pid-keepalive", "clientId": format!("user-{i}")})),
            )
            .await?;
        if s != 200 {
            bail!("create {i}: {s} {body}");
        }
        creates.push(took);
        let sid = body["data"]["sid"].as_str().context("no sid")?.to_owned();
        let (s, body, took) = conn
            .call("GET", &format!("/api/v1/verify/session/{sid}"), &key, None)
            .await?;
        if s != 200 || body["data"]["status"] != "pending" {
            bail!("read {i}: {s} {body}");
        }
        reads.push(took);
    }
    // A request that reads the store and fails (unknown key) takes the same path.
    let mut refused = Vec::with_capacity(N / 4);
    for _ in 0..N / 4 {
        let (s, _, took) = conn
            .call(
                "GET",
                "/api/v1/verify/session/vsn_0000000000000000000000",
                "dock_unknown",
                None,
            )
            .await?;
        assert_eq!(s, 401);
        refused.push(took);
    }

    let report = format!(
        "{} {store:?}, one connection: create p50 {:?} p99 {:?} ({} of {N} >= 38 ms); \
         read p50 {:?} p99 {:?} ({} >= 38 ms); 401 p50 {:?} ({} of {} >= 38 ms)",
        dock_tests::Runtime::current().name(),
        median(creates.clone()),
        p99(creates.clone()),
        stalled(&creates),
        median(reads.clone()),
        p99(reads.clone()),
        stalled(&reads),
        median(refused.clone()),
        stalled(&refused),
        refused.len(),
    );
    println!("{report}");
    for (what, v) in [("create", creates), ("read", reads), ("401", refused)] {
        let m = median(v);
        assert!(
            m < MEDIAN_LIMIT,
            "{what} requests stall on a kept-alive connection (median {m:?}; Nagle + delayed ACK?): {report}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connection_does_not_stall_sqlite() -> Result<()> {
    no_stall(StoreKind::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connection_does_not_stall_redis() -> Result<()> {
    no_stall(StoreKind::Redis).await
}
