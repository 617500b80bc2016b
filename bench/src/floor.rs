//! The floor: the least an HTTP service on this machine can do. A trivial
//! hyper server (same runtime, same TCP settings as dock-host) that answers a
//! create-sized JSON body, and wakes a held event stream in-process when told
//! to — no store, no Wasm. Our figures divided by these read as "how far from
//! the physical limit".

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A response body fed by a channel (an event stream).
struct ChanBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<Bytes>>>>;
type Body = BoxBody<Bytes, Infallible>;

const CREATED: &str = r#"{"status":200,"data":{"sid":"vsn_A1b2C3d4E5f6G7h8J9k0L1","pid":"pid-bench","clientId":"user_123","expiresAt":"2026-02-28T19:40:12.108Z","reusedExisting":false,"verifyUrl":"http://127.0.0.1/v1/api/verify/discord?pid=pid-bench&sid=vsn_A1b2C3d4E5f6G7h8J9k0L1"},"timestamp":"2026-02-28T19:35:12.108Z","version":"1.3.0","verifyRequestsRemaining":1999}"#;

fn full(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .expect("static response")
}

async fn handle(req: Request<Incoming>, waiters: Waiters) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    // Read the body, as any real endpoint would.
    let _ = req.into_body().collect().await;
    Ok(match (method.as_str(), segs.as_slice()) {
        ("GET", ["healthz"]) => full(StatusCode::OK, r#"{"status":"ok"}"#),
        ("POST", ["create"]) => full(StatusCode::OK, CREATED),
        ("GET", ["wait", id]) => {
            let (tx, rx) = mpsc::channel(2);
            let _ = tx.try_send(Bytes::from_static(b"event: pending\nid: 1\ndata: {}\n\n"));
            waiters
                .lock()
                .expect("waiters")
                .insert((*id).to_owned(), tx);
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(ChanBody(rx).boxed())
                .expect("stream response")
        }
        ("POST", ["complete", id]) => {
            let tx = waiters.lock().expect("waiters").remove(*id);
            match tx {
                Some(tx) => {
                    let _ = tx
                        .send(Bytes::from_static(b"event: complete\nid: 2\ndata: {}\n\n"))
                        .await;
                    full(StatusCode::OK, r#"{"status":200}"#)
                }
                None => full(StatusCode::NOT_FOUND, r#"{"status":404}"#),
            }
        }
        _ => full(StatusCode::NOT_FOUND, r#"{"status":404}"#),
    })
}

/// Serves until killed.
pub async fn serve(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let waiters: Waiters = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let waiters = waiters.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, waiters.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
