//! HTTP/1.1 over a raw TCP socket, for requests a client library refuses to
//! send (lying lengths, broken chunking, invalid bytes, floods) and for
//! watching the connection itself (answered, then closed or kept open).
//!
//! Every read has a deadline: a server that hangs fails the test, it never
//! hangs the test.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout_at};

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `error.code` of a JSON error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()?["error"]["code"].as_str().map(str::to_owned)
    }
}

/// A client connection: a reader with its buffer, and the write half.
pub struct Conn {
    read: OwnedReadHalf,
    write: Option<OwnedWriteHalf>,
    buf: Vec<u8>,
    eof: bool,
}

/// How a connection ended after the responses we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The server closed it (EOF or reset) with nothing more sent.
    Closed,
    /// Still open when the wait ended.
    Open,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Conn {
            read,
            write: Some(write),
            buf: Vec::new(),
            eof: false,
        })
    }

    /// Writes `bytes`. A server that already answered and closed may reset
    /// the connection under a long write: that is reported as `false`, not
    /// as an error (the answer is what the test checks).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        match &mut self.write {
            Some(w) => w.write_all(bytes).await.is_ok() && w.flush().await.is_ok(),
            None => false,
        }
    }

    /// Writes `bytes` from a background task while the caller reads: for
    /// bodies larger than the socket buffers, which the server may refuse
    /// (and stop reading) before they are all sent.
    pub fn send_in_background(&mut self, bytes: Vec<u8>) -> tokio::task::JoinHandle<bool> {
        let w = self.write.take();
        tokio::spawn(async move {
            let Some(mut w) = w else { return false };
            let ok = w.write_all(&bytes).await.is_ok();
            // Keep the half open until the server is done with us.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(w);
            ok
        })
    }

    /// Half-closes our side (the server sees EOF on its reads).
    pub async fn shutdown_write(&mut self) {
        if let Some(w) = &mut self.write {
            let _ = w.shutdown().await;
        }
    }

    /// Reads more bytes into the buffer; false at EOF or reset.
    async fn fill(&mut self, deadline: Instant) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 16 * 1024];
        match timeout_at(deadline, self.read.read(&mut chunk)).await {
            Err(_) => bail!(
                "no answer before the deadline; got so far: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
            ),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                Ok(false)
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    /// Reads one response (to a request of `method`), failing after
    /// `timeout`. `None` when the server closed without answering.
    pub async fn response(
        &mut self,
        method: &str,
        timeout: Duration,
    ) -> Result<Option<RawResponse>> {
        let deadline = Instant::now() + timeout;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill(deadline).await? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                bail!(
                    "connection closed inside a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let no_body = method == "HEAD" || status < 200 || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            self.chunked(deadline).await?
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().context("content-length")?;
            while self.buf.len() < len {
                if !self.fill(deadline).await? {
                    bail!("connection closed inside a body");
                }
            }
            self.buf.drain(..len).collect()
        } else {
            // Delimited by the end of the connection.
            while self.fill(deadline).await? {}
            std::mem::take(&mut self.buf)
        };
        Ok(Some(RawResponse {
            status,
            headers,
            body,
        }))
    }

    async fn chunked(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if !self.fill(deadline).await? {
                    bail!("connection closed inside a chunk size");
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers (none expected), then the final CRLF.
                loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        let empty = i == 0;
                        self.buf.drain(..i + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else if !self.fill(deadline).await? {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.fill(deadline).await? {
                    bail!("connection closed inside a chunk");
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Waits up to `wait` for the server to close the connection; fails if it
    /// sends anything more.
    pub async fn after(&mut self, wait: Duration) -> Result<After> {
        let deadline = Instant::now() + wait;
        if !self.buf.is_empty() {
            bail!(
                "unexpected bytes after the response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        if self.eof {
            return Ok(After::Closed);
        }
        match self.fill(deadline).await {
            Ok(false) => Ok(After::Closed),
            Ok(true) => bail!(
                "unexpected bytes after the response: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(_) => Ok(After::Open),
        }
    }

    /// Waits up to `wait` for the server to close the connection, without
    /// caring what it sent before (for slow clients). Returns when it closed.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + wait;
        loop {
            match self.fill(deadline).await {
                Ok(false) => return Some(start.elapsed()),
                Ok(true) => continue,
                Err(_) => return None,
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a fresh connection and reads one response; then reports
/// whether the server closed the connection within `close_wait`.
pub async fn one(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
    close_wait: Duration,
) -> Result<(Option<RawResponse>, After)> {
    let mut c = Conn::open(addr).await?;
    let method = method_of(request);
    if request.len() > 256 * 1024 {
        let _writer = c.send_in_background(request.to_vec());
        let r = c.response(&method, timeout).await?;
        let after = c.after(close_wait).await?;
        return Ok((r, after));
    }
    c.send(request).await;
    let r = c.response(&method, timeout).await?;
    let after = c.after(close_wait).await?;
    Ok((r, after))
}

/// The method token of a request (for HEAD's body-less answer).
pub fn method_of(request: &[u8]) -> String {
    let end = request.iter().position(|&b| b == b' ').unwrap_or(0);
    String::from_utf8_lossy(&request[..end]).into_owned()
}
