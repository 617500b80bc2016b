//! The HTTP/1.1 server: hyper 1, keep-alive, `TCP_NODELAY` on every accepted
//! socket, header- and body-read deadlines, a cap on connections per client
//! address, streaming bodies both ways, Spin's routing and request headers,
//! and graceful shutdown on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use wasmtime_wasi_http::handler::{InstantiationError, TrapOrPanicError};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::app::App;
use crate::limits::SliceExceeded;

const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<WasiBody>, Infallible>> + Send + 'static>>;

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(socket.listen(1024)?)
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting,
/// lets open responses finish for up to `--shutdown-timeout`, and returns.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let local = listener.local_addr()?;
    let connections = Arc::new(Semaphore::new(app.limits.max_connections));
    let requests = Arc::new(Semaphore::new(app.limits.max_concurrent_requests));
    let waiting = Arc::new(Semaphore::new(app.limits.max_waiting_requests));
    let per_ip = Arc::new(PerIp::new(app.limits.max_connections_per_ip));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = connections.clone().acquire_owned() => p?,
        };
        let (stream, client) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors (EMFILE) fails every accept
                    // until one closes: pause rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // One address may hold --max-connections-per-ip of the slots; past
        // that it is refused now, not queued behind its own connections.
        let Some(ip_slot) = per_ip.admit(client.ip()) else {
            tracing::debug!(%client, "refused: --max-connections-per-ip reached");
            refuse(&stream);
            continue;
        };
        // Without this, a response written in pieces on a kept-alive
        // connection waits ~40 ms for the client's delayed ACK (Nagle).
        // `--tcp-nodelay false` leaves it off, as `spin up` does.
        if app.limits.tcp_nodelay
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        let header_read_timeout = app.limits.header_read_timeout;
        let app = app.clone();
        let slots = Slots {
            requests: requests.clone(),
            waiting: waiting.clone(),
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                let slots = slots.clone();
                // Boxed: hyper keeps an allocation the size of the service's
                // future for the whole life of a connection (its in-flight
                // slot), and `handle`'s state machine is ~3 KiB. Boxed, that
                // slot holds a pointer and the state machine lives only until
                // the response head is ready, so a held stream does not pay
                // for it (heap profile in docs/performance.md).
                let fut: ServiceFuture = Box::pin(async move {
                    Ok::<_, Infallible>(handle(&app, &slots, req, client, local).await)
                });
                fut
            });
            // hyper's 30 s header-read timeout is its documented default but
            // only takes effect with a timer, which `spin up` does not set;
            // we set one, so a client that never finishes its request head
            // (slowloris) is cut off instead of holding a connection slot.
            let mut builder = http1::Builder::new();
            builder.keep_alive(true);
            if !header_read_timeout.is_zero() {
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_read_timeout);
            }
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%client, "connection ended: {e}");
            }
            drop(ip_slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("Shutting down: waiting for open responses to finish");
    crate::instance::mark_stopping();
    let _ = stop_tx.send(true);
    let all = u32::try_from(app.limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        r = tokio::time::timeout(app.limits.shutdown_timeout, connections.acquire_many(all)) => match r {
            Ok(_) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                "responses still open after --shutdown-timeout {:?}; exiting",
                app.limits.shutdown_timeout
            ),
        },
        () = shutdown_signal() => tracing::warn!("second signal: exiting without waiting"),
    }
    Ok(())
}

/// Listens for SIGINT and SIGTERM from now on (not from the first poll: a
/// signal that arrives between the banner and the first poll of the serve
/// loop must not kill the process without a graceful shutdown), and
/// resolves on the first.
pub fn shutdown_listener() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match streams {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (int, term) => {
                    if let Err(e) = int.and(term) {
                        tracing::warn!("cannot listen for SIGINT/SIGTERM: {e}");
                    }
                    shutdown_signal().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        shutdown_signal()
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The whole answer to a connection over `--max-connections-per-ip`.
const REFUSED_PER_IP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Answers a connection over `--max-connections-per-ip` without waiting for
/// it: what it already sent is read first (closing with unread bytes resets
/// the connection, and the client may then never see the 503).
fn refuse(stream: &tokio::net::TcpStream) {
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = stream.try_write(REFUSED_PER_IP);
}

/// Open connections per client address, capped (0 = no cap).
struct PerIp {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; gives its place back when dropped.
struct IpSlot {
    table: Arc<PerIp>,
    addr: IpAddr,
}

impl PerIp {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more connection from `ip`, unless it holds the cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Option<IpSlot>> {
        if self.cap == 0 {
            return Some(None);
        }
        let addr = client_key(ip);
        let mut open = self.open.lock().expect("per-ip lock");
        let n = open.entry(addr).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Some(IpSlot {
            table: self.clone(),
            addr,
        }))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("per-ip lock");
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64, the block one subscriber is usually given.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// A request body under `--body-read-timeout` (in all) and
/// `--body-idle-timeout` (between pieces). Past either, the reader gets
/// `ConnectionReadTimeout` and `expired` is raised, so the request is
/// answered `408` and its connection closed.
struct DeadlineBody {
    inner: Incoming,
    total: Option<Pin<Box<tokio::time::Sleep>>>,
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    expired: watch::Sender<bool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, total: Duration, idle: Duration) -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let sleep = |d: Duration| Box::pin(tokio::time::sleep(d));
        let body = Self {
            total: (!total.is_zero() && !inner.is_end_stream()).then(|| sleep(total)),
            idle: (!idle.is_zero() && !inner.is_end_stream()).then(|| (idle, sleep(idle))),
            inner,
            expired: tx,
        };
        (body, rx)
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some((d, idle)) = &mut this.idle {
                    idle.as_mut().reset(tokio::time::Instant::now() + *d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.total = None;
                this.idle = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let total = this
                    .total
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                let idle = this
                    .idle
                    .as_mut()
                    .is_some_and(|(_, t)| t.as_mut().poll(cx).is_ready());
                if total || idle {
                    this.total = None;
                    this.idle = None;
                    let _ = this.expired.send(true);
                    return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `408` for a body that missed its deadline; the connection is closed.
fn body_timeout() -> Response<WasiBody> {
    let mut r = text(StatusCode::REQUEST_TIMEOUT, "request body timed out\n");
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn empty(status: StatusCode) -> Response<WasiBody> {
    let mut r = Response::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
    *r.status_mut() = status;
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<WasiBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

/// The request slots: every request takes one of `--max-concurrent-requests`
/// until its response head is ready; one still unanswered after
/// `--waiting-after` moves to one of `--max-waiting-requests` waiting slots
/// and gives its request slot back (or is answered 503 when those are all
/// taken). So waiters never hold the request slots new requests need.
#[derive(Clone)]
struct Slots {
    requests: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

/// 503 + `Retry-After: 1`: the host is at capacity, not broken.
fn unavailable() -> Response<WasiBody> {
    let mut r = empty(StatusCode::SERVICE_UNAVAILABLE);
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    r
}

async fn handle(
    app: &App,
    slots: &Slots,
    mut req: Request<Incoming>,
    client: SocketAddr,
    local: SocketAddr,
) -> Response<WasiBody> {
    let path = req.uri().path().to_owned();
    tracing::debug!(method = %req.method(), %path, "request");

    if let Some(well_known) = path.strip_prefix(WELL_KNOWN_PREFIX) {
        return match well_known {
            "health" => text(StatusCode::OK, "OK"),
            _ => empty(StatusCode::NOT_FOUND),
        };
    }
    let Some(route) = app.router.route(&path) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let Some(handler) = app.components.get(&route.component) else {
        tracing::error!(
            component = route.component,
            "route names an unknown component"
        );
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };

    // Spin: the request URI seen by the guest is absolute, its authority taken
    // from the Host header, which must be an authority (no path, query or
    // spaces: `Host: x/admin?` must not re-route the guest) and agree with an
    // absolute-form request target; neither present: our own address.
    let Some(host) = request_authority(&req, local) else {
        return text(StatusCode::BAD_REQUEST, "invalid Host header\n");
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    match format!("http://{host}{path_and_query}").parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return text(StatusCode::BAD_REQUEST, "invalid Host header\n"),
    }
    let headers = req.headers_mut();
    headers.remove(http::header::CONNECTION);
    for (name, value) in route.spin_headers("http", &host, &path_and_query, client) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        // Replace, so a client cannot pose as the host by sending spin-* headers.
        headers.insert(name, value);
    }

    let Ok(permit) = slots.requests.clone().acquire_owned().await else {
        return empty(StatusCode::SERVICE_UNAVAILABLE);
    };
    // Past --waiting-after without an answer, the request is a waiter: it
    // moves to a waiting slot (giving its request slot back), or, with every
    // waiting slot taken, is answered 503 — so waiters can never hold the
    // request slots the requests that would wake them need.
    let waiting = slots.waiting.clone();
    let waiting_after = app.limits.waiting_after;
    let over_waiting_capacity = async move {
        tokio::time::sleep(waiting_after).await;
        match waiting.try_acquire_owned() {
            Ok(held) => {
                drop(permit);
                let _held = held;
                std::future::pending::<()>().await;
            }
            Err(_) => drop(permit),
        }
    };
    let (parts, body) = req.into_parts();
    let (body, expired) = DeadlineBody::new(
        body,
        app.limits.body_read_timeout,
        app.limits.body_idle_timeout,
    );
    let req = Request::from_parts(parts, body.boxed_unsync());
    // Answer 408 as soon as the body misses its deadline, whatever the guest
    // does with the error (the body's sender goes away once the guest is done
    // with it: that is no timeout).
    let mut watching = expired.clone();
    let body_expired = async move {
        if watching.wait_for(|e| *e).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let waiting_since = tokio::time::Instant::now();
    let mut pause = INSTANCE_RETRY_FIRST;
    let handled = async {
        let mut req = req;
        loop {
            match handler.handle((), req).await {
                Err(e) if waiting_since.elapsed() + pause <= app.limits.instance_wait => {
                    // No instance slot: the request comes back untouched, so it
                    // can wait for one (instances retire, started ones begin to
                    // accept) up to --instance-wait.
                    match e.downcast::<InstantiationError<()>>() {
                        Ok(ie) if pool_full(&ie.error) => {
                            tracing::debug!(
                                component = route.component,
                                "no free instance; waiting"
                            );
                            req = match ie.request.into_inner() {
                                Ok(r) => r,
                                Err(poisoned) => poisoned.into_inner(),
                            };
                            // Retry when an instance is dropped (its slot is
                            // free) or after a short pause: a started instance
                            // that begins to accept again has no signal.
                            tokio::select! {
                                () = handler.state().instance_freed() => {}
                                () = tokio::time::sleep(pause) => {}
                            }
                            pause = (pause * 2).min(INSTANCE_RETRY_MAX);
                        }
                        Ok(ie) => break Err(wasmtime::Error::new(ie)),
                        Err(e) => break Err(e),
                    }
                }
                r => break r,
            }
        }
    };
    let result = tokio::select! {
        r = handled => r,
        () = body_expired => return body_timeout(),
        () = over_waiting_capacity => {
            tracing::warn!(
                component = route.component,
                "at capacity: every --max-waiting-requests slot is taken; 503"
            );
            return unavailable();
        }
    };
    if *expired.borrow() {
        return body_timeout();
    }
    match result {
        Ok(response) => response,
        // Every instance slot is taken (`--max-instances`): the host is at
        // capacity, not broken — 503 with Retry-After, so clients back off
        // and retry (the npm client and the spec's own retry rules do).
        Err(e) if at_capacity(&e) => {
            tracing::warn!(component = route.component, "at capacity: {e:#}");
            unavailable()
        }
        // The instance stopped (a trap, or its CPU slice ran out) before
        // this request had an answer. With concurrent reuse the cause may be
        // another request on the same instance: a retry lands on a fresh one.
        Err(e) if instance_stopped(&e) => {
            tracing::warn!(
                component = route.component,
                "request failed: its instance stopped before answering; 503"
            );
            unavailable()
        }
        Err(e) => {
            tracing::error!(component = route.component, "request failed: {e:#}");
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// First pause of a request waiting for an instance slot; doubles up to [`INSTANCE_RETRY_MAX`].
const INSTANCE_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(1);
const INSTANCE_RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(8);

/// Every instance slot of the pooling allocator is taken.
fn pool_full(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>())
}

/// The request's instance stopped before answering: a trap, or the CPU
/// slice guard.
fn instance_stopped(e: &wasmtime::Error) -> bool {
    e.is::<TrapOrPanicError>() || e.chain().any(|c| c.is::<SliceExceeded>())
}

/// True when a request failed only because no instance slot was free.
fn at_capacity(e: &wasmtime::Error) -> bool {
    pool_full(e)
        || e.downcast_ref::<InstantiationError<()>>()
            .is_some_and(|ie| pool_full(&ie.error))
}

/// The request's authority as `spin up` determines it: the `Host` header
/// parsed as an authority, which must match the request target's authority
/// when that is absolute-form; else the target's; else `local`. `None` when
/// the header is not a valid authority or disagrees with the target.
fn request_authority<B>(req: &Request<B>, local: SocketAddr) -> Option<String> {
    let header = match req.headers().get(http::header::HOST) {
        Some(h) => Some(h.to_str().ok()?.parse::<Authority>().ok()?),
        None => None,
    };
    match (header, req.uri().authority()) {
        (Some(h), Some(target)) if &h != target => None,
        (Some(h), _) => Some(h.as_str().to_owned()),
        (None, Some(target)) => Some(target.as_str().to_owned()),
        (None, None) => Some(local.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(target: &str, host: Option<&[u8]>) -> Option<String> {
        let mut b = Request::builder().uri(target);
        if let Some(h) = host {
            b = b.header(http::header::HOST, HeaderValue::from_bytes(h).unwrap());
        }
        request_authority(&b.body(()).unwrap(), "127.0.0.1:3000".parse().unwrap())
    }

    #[test]
    fn host_header_must_be_an_authority() {
        assert_eq!(
            authority("/x", Some(b"example.com:8080")).as_deref(),
            Some("example.com:8080")
        );
        assert_eq!(authority("/x", None).as_deref(), Some("127.0.0.1:3000"));
        assert_eq!(
            authority("http://a.test/x", None).as_deref(),
            Some("a.test")
        );
        assert_eq!(
            authority("http://a.test/x", Some(b"a.test")).as_deref(),
            Some("a.test")
        );
        // Would re-route the guest to another path, or is no authority at all.
        for bad in [
            &b"evil.example/api/v1/admin/pids?"[..],
            b"a b",
            b"",
            b"evil.example?x",
            b"evil.example#x",
            b"\xff\xfe",
        ] {
            assert_eq!(
                authority("/x", Some(bad)),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Disagrees with the absolute-form target (as `spin up` refuses).
        assert_eq!(authority("http://a.test/x", Some(b"b.test")), None);
    }
}
