//! A webhook receiver for the end-to-end tests: a real HTTP server on a
//! loopback port that records every delivery (its `Dock-Signature` and raw
//! body) and answers from a script: a status per request in order (then
//! 200), or `Hang` (no answer until [`Receiver::release`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This status at once.
    Status(u16),
    /// No answer until released (then 200).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `Dock-Signature`.
    pub signature: String,
    /// The raw body.
    pub body: Bytes,
    /// Its path and query.
    pub path: String,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Shared {
    script: Mutex<std::collections::VecDeque<Answer>>,
    got: Mutex<Vec<Delivery>>,
    release: tokio::sync::Notify,
}

/// The running receiver.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts on a free loopback port (or `addr`), answering `script` in order, then 200.
    pub async fn start(script: &[Answer]) -> Result<Self> {
        Self::start_on("127.0.0.1:0".parse()?, script).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, script: &[Answer]) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().extend(script.iter().copied());
        let task = crate::spawn_http_server(listener, shared.clone(), |s, req| async move {
            handle(&s, req).await
        });
        Ok(Receiver { addr, shared, task })
    }

    /// Its origin, `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it got so far, in order of arrival.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Answers every hanging request (200).
    pub fn release(&self) {
        self.shared.release.notify_waiters();
    }
}

async fn handle(s: &Shared, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let signature = req
        .headers()
        .get("dock-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(String::new, |p| p.to_string());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let answer = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    // Registered before the delivery is visible, so a release that follows
    // a test's look at `deliveries()` is never missed.
    let released = s.release.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    s.got.lock().unwrap().push(Delivery {
        signature,
        body,
        path,
        at: Instant::now(),
    });
    let status = match answer {
        Answer::Status(code) => code,
        Answer::Hang => {
            released.await;
            200
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp
}
