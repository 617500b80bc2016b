//! A counting TCP proxy in front of Redis: forwards bytes unchanged both ways
//! and counts the top-level requests clients send (RESP arrays, or inline
//! commands), which `INFO commandstats` cannot tell apart from the commands
//! a Lua script runs inside Redis, and the round trips they took: a round
//! trip begins when a client sends on a connection on which Redis has
//! answered (or pushed) anything since the client last sent, so requests
//! pipelined together (`MULTI`…`EXEC`, or two sent at once) are one. Used
//! only in the round-trip pass, never during a timed run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    round_trips: AtomicU64,
    connections: AtomicU64,
    /// Connections whose request stream could not be parsed (counting
    /// stopped on them; bytes were still forwarded).
    garbled: AtomicU64,
}

/// The proxy; stops (and drops every relayed connection) when dropped.
#[derive(Debug)]
pub struct CountingProxy {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on a free loopback port and relays each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let accept = tokio::spawn(async move {
            // Owned by this task: aborting it drops (and aborts) every relay.
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::Relaxed);
                relays.spawn(relay(client, upstream, c.clone()));
                // Reap finished relays as we go.
                while relays.try_join_next().is_some() {}
            }
        });
        Ok(CountingProxy {
            addr,
            counters,
            accept,
        })
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Requests counted since the last [`reset`](Self::reset); fails if a
    /// connection's stream could not be parsed.
    pub fn requests(&self) -> Result<u64> {
        let garbled = self.counters.garbled.load(Ordering::SeqCst);
        if garbled > 0 {
            bail!("counting proxy: {garbled} connection(s) sent something that is not RESP");
        }
        Ok(self.counters.requests.load(Ordering::SeqCst))
    }

    /// Round trips counted since the last [`reset`](Self::reset).
    pub fn round_trips(&self) -> u64 {
        self.counters.round_trips.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.counters.requests.store(0, Ordering::SeqCst);
        self.counters.round_trips.store(0, Ordering::SeqCst);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, counters: Arc<Counters>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Redis sent something since the client last did (true at first: the
    // first request begins a round trip).
    let answered = AtomicBool::new(true);
    // Client → Redis: count, then forward unchanged.
    let up = async {
        let mut parser = RespCounter::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Counted before forwarding, so no answer can overtake the count.
            if answered.swap(false, Ordering::SeqCst) {
                counters.round_trips.fetch_add(1, Ordering::SeqCst);
            }
            if !parser.garbled {
                let k = parser.feed(&buf[..n]);
                counters.requests.fetch_add(k, Ordering::SeqCst);
                if parser.garbled {
                    counters.garbled.fetch_add(1, Ordering::SeqCst);
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    // Redis → client: unchanged.
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Marked before the client can read it (and send again).
            answered.store(true, Ordering::SeqCst);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Splits a client's byte stream into top-level requests and counts them.
#[derive(Debug, Default)]
struct RespCounter {
    /// Bytes of a request not yet complete.
    pending: Vec<u8>,
    garbled: bool,
}

impl RespCounter {
    /// Adds `data`; returns how many requests it completed.
    fn feed(&mut self, data: &[u8]) -> u64 {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        let mut n = 0;
        loop {
            match frame_len(&self.pending[at..]) {
                Frame::Complete(len) => {
                    at += len;
                    n += 1;
                }
                Frame::Empty(len) => at += len,
                Frame::Incomplete => break,
                Frame::Garbled => {
                    self.garbled = true;
                    self.pending.clear();
                    return n;
                }
            }
        }
        self.pending.drain(..at);
        n
    }
}

enum Frame {
    /// One request of this many bytes.
    Complete(usize),
    /// This many bytes that are no request (a blank inline line).
    Empty(usize),
    Incomplete,
    Garbled,
}

/// The length of the request at the start of `b`: an array of bulk strings
/// (`*N\r\n` then N × `$len\r\n<bytes>\r\n`, what every client library
/// sends), or an inline command (one line).
fn frame_len(b: &[u8]) -> Frame {
    let Some(&first) = b.first() else {
        return Frame::Incomplete;
    };
    if first != b'*' {
        return match b.iter().position(|&c| c == b'\n') {
            None => Frame::Incomplete,
            Some(nl) if b[..nl].iter().all(|c| c.is_ascii_whitespace()) => Frame::Empty(nl + 1),
            Some(nl) => Frame::Complete(nl + 1),
        };
    }
    let (items, mut at) = match number(b, 1) {
        Ok(v) => v,
        Err(f) => return f,
    };
    for _ in 0..items.max(0) {
        match b.get(at) {
            None => return Frame::Incomplete,
            Some(b'$') => {}
            Some(_) => return Frame::Garbled,
        }
        let (len, next) = match number(b, at + 1) {
            Ok(v) => v,
            Err(f) => return f,
        };
        let Ok(len) = usize::try_from(len) else {
            return Frame::Garbled;
        };
        at = next + len + 2;
        if b.len() < at {
            return Frame::Incomplete;
        }
        if &b[at - 2..at] != b"\r\n" {
            return Frame::Garbled;
        }
    }
    Frame::Complete(at)
}

/// The decimal number at `b[at..]` ending in `\r\n`, and where the next part starts.
fn number(b: &[u8], at: usize) -> Result<(i64, usize), Frame> {
    let rest = b.get(at..).unwrap_or_default();
    let Some(cr) = rest.iter().position(|&c| c == b'\r') else {
        return Err(if rest.len() > 20 {
            Frame::Garbled
        } else {
            Frame::Incomplete
        });
    };
    if rest.len() < cr + 2 {
        return Err(Frame::Incomplete);
    }
    if rest[cr + 1] != b'\n' {
        return Err(Frame::Garbled);
    }
    std::str::from_utf8(&rest[..cr])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|n| (n, at + cr + 2))
        .ok_or(Frame::Garbled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_split_anywhere() {
        let stream: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\n*1\r\n$4\r\nPING\r\nPING\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for split in 0..stream.len() {
            let mut c = RespCounter::default();
            let n = c.feed(&stream[..split]) + c.feed(&stream[split..]);
            assert_eq!(n, 4, "split at {split}");
            assert!(!c.garbled && c.pending.is_empty());
        }
        let mut c = RespCounter::default();
        let n: u64 = stream.iter().map(|b| c.feed(&[*b])).sum();
        assert_eq!(n, 4);
    }

    /// Pipelined requests are one round trip; a request after an answer
    /// begins another.
    #[tokio::test]
    async fn counts_round_trips() -> Result<()> {
        // A fake Redis answering `+OK` to each request.
        let upstream = TcpListener::bind("127.0.0.1:0").await?;
        let up_addr = upstream.local_addr()?;
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await?;
            let mut parser = RespCounter::default();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    return anyhow::Ok(());
                }
                for _ in 0..parser.feed(&buf[..n]) {
                    s.write_all(b"+OK\r\n").await?;
                }
            }
        });
        let proxy = CountingProxy::start(up_addr).await?;
        let mut c = TcpStream::connect(proxy.addr).await?;
        let mut reply = [0u8; 10];
        c.write_all(b"*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nEXEC\r\n")
            .await?;
        let mut got = Vec::new();
        while got.len() < 15 {
            let n = c.read(&mut reply).await?;
            got.extend_from_slice(&reply[..n]);
        }
        c.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        c.read_exact(&mut reply[..5]).await?;
        assert_eq!((proxy.requests()?, proxy.round_trips()), (4, 2));
        proxy.reset();
        assert_eq!((proxy.requests()?, proxy.round_trips()), (0, 0));
        Ok(())
    }

    #[test]
    fn notices_garbage() {
        let mut c = RespCounter::default();
        c.feed(b"*1\r\n+OK\r\n");
        assert!(c.garbled);
    }
}
