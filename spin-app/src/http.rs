//! HTTP plumbing: responses built from dock-core's JSON, and request helpers.

use bytes::Bytes;
use dock_core::{ApiError, ErrorCode, Timestamp, wire};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use spin_sdk::http::Request;

use crate::env::now;

/// Every response body: a complete buffer, or a stream (SSE).
pub type Body = UnsyncBoxBody<Bytes, anyhow::Error>;
/// A response.
pub type Response = http::Response<Body>;

/// The PID a response was served for, for the request log line (a response
/// extension: never sent).
#[derive(Debug, Clone)]
pub struct LogPid(pub String);

/// The error code of an answer a handler built itself (e.g. a 429 with
/// extra headers), for the request log line (a response extension: never sent).
#[derive(Debug, Clone, Copy)]
pub struct LogCode(pub &'static str);

/// An answer that writes no request log line: a periodic call that did
/// nothing (a response extension: never sent).
#[derive(Debug, Clone, Copy)]
pub struct LogQuiet;

/// Marks `resp` as served for `pid` (see [`LogPid`]).
pub fn with_pid(mut resp: Response, pid: &dock_core::Pid) -> Response {
    resp.extensions_mut()
        .insert(LogPid(pid.as_str().to_owned()));
    resp
}

/// Gives a response whose body is complete (its size is known) a
/// `Content-Length`. Without one the host frames the body in chunks, and the
/// final empty chunk can only be written once the guest has closed the body
/// stream and resolved its trailers: a separate, later write. On a socket
/// with Nagle's algorithm on (`spin up`'s) that last write waits for the
/// client's delayed ACK, ~40 ms per request on a kept-alive connection. With
/// a length the host's HTTP/1 writer ends the message with the last body
/// byte. Streams (SSE) have no known size and keep chunked framing.
pub fn with_content_length(mut resp: Response) -> Response {
    use http_body::Body as _;
    let no_body = resp.status().is_informational()
        || resp.status() == http::StatusCode::NO_CONTENT
        || resp.status() == http::StatusCode::NOT_MODIFIED;
    if let (false, Some(len)) = (no_body, resp.body().size_hint().exact())
        && !resp.headers().contains_key(http::header::CONTENT_LENGTH)
    {
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    resp
}

/// A body sent in one piece.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn base(status: u16, content_type: &str) -> http::response::Builder {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
}

/// A JSON response from a body core produced.
pub fn json(status: u16, body: String) -> Response {
    base(status, "application/json")
        .body(full(body))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

/// The success envelope around `data`.
pub fn ok<T: serde::Serialize>(data: T, now: Timestamp, remaining: Option<u64>) -> Response {
    json(200, wire::envelope_json(200, data, now, remaining))
}

/// The error envelope for `err`, with `Retry-After`/`WWW-Authenticate`/`Allow` as it needs.
pub fn error(err: &ApiError) -> Response {
    let mut b = base(err.status(), "application/json");
    if let Some(secs) = err.retry_after_secs() {
        b = b.header(http::header::RETRY_AFTER, secs.to_string());
    }
    if err.code() == ErrorCode::Unauthorized {
        b = b.header(http::header::WWW_AUTHENTICATE, "Bearer");
    }
    b.body(full(wire::error_json(err, now())))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

/// 405 with the allowed methods.
pub fn method_not_allowed(allow: &str) -> Response {
    let err = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed; use {allow}"),
    );
    let mut r = error(&err);
    if let Ok(v) = http::HeaderValue::from_str(allow) {
        r.headers_mut().insert(http::header::ALLOW, v);
    }
    r
}

/// A streaming `text/event-stream` response.
pub fn event_stream(body: Body) -> Response {
    base(200, "text/event-stream")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

/// The bearer token of `Authorization`, if well-formed.
pub fn bearer(req: &Request) -> Option<&str> {
    let v = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A header as text.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the whole body, refusing more than `limit` bytes with 413 and a
/// non-JSON Content-Type with 415.
pub async fn read_json_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let content_type = match req.headers().get(http::header::CONTENT_TYPE) {
        None => None,
        // A Content-Type that is not even visible ASCII is not JSON either
        // (treating it as absent would accept the body as JSON).
        Some(v) => Some(v.to_str().map_err(|_| {
            dock_core::request::RequestError::UnsupportedMediaType {
                content_type: String::from("(not visible ASCII)"),
            }
        })?),
    };
    dock_core::request::check_content_type(content_type)?;
    if let Some(len) = header(&req, "content-length").and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(dock_core::request::RequestError::TooLarge { limit }.into());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(dock_core::request::RequestError::TooLarge { limit }.into())
        }
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("could not read the body: {e}"),
        )),
    }
}
