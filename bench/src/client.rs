//! A minimal keep-alive HTTP/1.1 client over hyper's connection API: one
//! TCP connection per task, TCP_NODELAY, no pooling, no hidden retries — so
//! what is measured is the server.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One open HTTP/1.1 connection.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    send: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects (TCP_NODELAY) and runs the connection task in the background.
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { addr, send })
    }

    /// Sends one request and returns the response head with its streaming body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<hyper::Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string());
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Full::new(b)
            }
            None => Full::new(Bytes::new()),
        };
        self.send.ready().await?;
        Ok(self.send.send_request(req.body(body)?).await?)
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        let res = self.send(method, path, bearer, body).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// [`call`](Self::call) expecting a 2xx JSON answer; returns its `data`.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let body = body.map(|v| Bytes::from(v.to_string()));
        let (status, bytes) = self.call(method.clone(), path, bearer, body).await?;
        if !status.is_success() {
            bail!(
                "{method} {path} → {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {path}: body is not JSON"))?;
        Ok(v.get("data").cloned().unwrap_or(v))
    }
}

/// A tenant ready to create sessions.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub pid: String,
    pub key: String,
}

/// Creates a PID and a key with a quota no benchmark reaches.
pub async fn provision(addr: SocketAddr, admin: &str, pid: &str) -> Result<Tenant> {
    let mut c = Conn::open(addr).await?;
    c.json(
        Method::POST,
        "/api/v1/admin/pids",
        Some(admin),
        Some(serde_json::json!({"pid": pid, "name": "Bench"})),
    )
    .await
    .context("create PID")?;
    let key = c
        .json(
            Method::POST,
            &format!("/api/v1/admin/pids/{pid}/keys"),
            Some(admin),
            Some(
                serde_json::json!({"quota": {"limit": 1_000_000_000u64, "windowSeconds": 86_400}}),
            ),
        )
        .await
        .context("issue key")?;
    let key = key["key"]
        .as_str()
        .context("issued key has no `key`")?
        .to_owned();
    Ok(Tenant {
        pid: pid.to_owned(),
        key,
    })
}

/// The create body for one client id.
pub fn create_body(pid: &str, client_id: &str) -> Bytes {
    Bytes::from(serde_json::json!({"pid": pid, "clientId": client_id}).to_string())
}

/// Creates one session and returns its sid.
pub async fn create(c: &mut Conn, t: &Tenant, client_id: &str) -> Result<String> {
    let body = create_body(&t.pid, client_id);
    let (status, bytes) = c
        .call(
            Method::POST,
            "/api/v1/verify/session",
            Some(&t.key),
            Some(body),
        )
        .await?;
    if !status.is_success() {
        bail!("create → {status}: {}", String::from_utf8_lossy(&bytes));
    }
    sid_of(&bytes).context("create answer has no data.sid")
}

/// The `data.sid` of a create's answer.
pub fn sid_of(answer: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(answer).ok()?;
    v["data"]["sid"].as_str().map(str::to_owned)
}

/// The admin completion body for waiter `i`.
pub fn complete_body(i: usize) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "discordId": format!("{}", 100_000_000_000_000_000u64 + i as u64),
            "robloxId": format!("{}", 1_000_000 + i as u64),
        })
        .to_string(),
    )
}

/// `GET /healthz` until it answers 200, as fast as possible; returns when it did.
pub async fn until_healthy(
    addr: SocketAddr,
    path: &str,
    deadline: std::time::Duration,
) -> Result<()> {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Ok(mut c) = Conn::open(addr).await
            && let Ok((StatusCode::OK, _)) = c.call(Method::GET, path, None, None).await
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > end {
            bail!("{addr}{path} did not answer 200 within {deadline:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
