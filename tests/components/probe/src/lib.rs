//! `dock-test-probe`: one route per host behaviour that dock-host's tests check.
//!
//! Every route answers plain text. Routes (after the component's route prefix):
//! - `/hello` — `hello`; `/headers` — the `spin-*` request headers, one per line;
//! - `/counter` — a per-instance static counter (shows instance reuse);
//! - `/var/<name>` — `spin:variables` get, `ERR <error>` with status 500 on error;
//! - `/redis/open?<address>` — opens a connection, `ok` or `ERR <error>`;
//! - `/redis/exec` (POST, one argument per line, first is the command) — runs
//!   `execute` on `redis_url` and prints each result as `nil`, `status:..`,
//!   `int:..`, `bin:..`;
//! - `/redis/xread?<key>` — `XREAD BLOCK 0 STREAMS <key> $` and prints the reply;
//! - `/stream?<key>` — a streaming response: writes `event: first`, then blocks
//!   in `XREAD` on `<key>` and writes each entry as an event; when a write fails
//!   (client gone) it `SET`s `<key>:ended` and stops;
//! - `/outbound?<url>` — `GET <url>`, `status:<code> <body>` or `ERR <error>`;
//! - `/sqlite` (POST, body = one SQL statement) — rows as tab-separated lines;
//! - `/echo` (POST) — streams the request body back;
//! - `/pieces` — a body written in three pieces, 1 ms apart;
//! - `/alloc?<mib>` — allocates and fills `<mib>` MiB, answers `<mib>`;
//! - `/spin?<ms>` — busy-loops `<ms>` milliseconds, `/cpu?<slices>,<ms>` does so
//!   `<slices>` times with a 1 ms sleep in between, `/loop` never returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::SinkExt as _;
use spin_sdk::http::{IntoResponse, Request, Response, StatusCode};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn reply(status: StatusCode, body: String) -> Response<String> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

fn ok(body: impl Into<String>) -> Response<String> {
    reply(StatusCode::OK, body.into())
}

fn err(e: impl std::fmt::Debug) -> Response<String> {
    reply(StatusCode::INTERNAL_SERVER_ERROR, format!("ERR {e:?}"))
}

fn format_results(results: &[RedisResult]) -> String {
    let mut out = String::new();
    for r in results {
        let line = match r {
            RedisResult::Nil => "nil".to_owned(),
            RedisResult::Status(s) => format!("status:{s}"),
            RedisResult::Int64(i) => format!("int:{i}"),
            RedisResult::Binary(b) => format!("bin:{}", String::from_utf8_lossy(b)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

async fn redis() -> Result<Connection, String> {
    let url = spin_sdk::variables::get("redis_url")
        .await
        .map_err(|e| format!("redis_url: {e:?}"))?;
    Connection::open(&url)
        .await
        .map_err(|e| format!("open {url}: {e:?}"))
}

fn busy(ms: u64) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

async fn body_text(req: Request) -> String {
    use spin_sdk::http::body::IncomingBodyExt as _;
    match req.into_body().bytes().await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("<body error {e:?}>"),
    }
}

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let info = req
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let query = percent_decode(&query);
    match info.as_str() {
        "/hello" => ok("hello").into_response(),
        "/headers" => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("spin-"))
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            ok(lines.join("\n") + "\n").into_response()
        }
        "/counter" => ok(format!("{}", COUNTER.fetch_add(1, Ordering::SeqCst) + 1)).into_response(),
        v if v.starts_with("/var/") => match spin_sdk::variables::get(&v["/var/".len()..]).await {
            Ok(value) => ok(value).into_response(),
            Err(e) => err(e).into_response(),
        },
        "/redis/open" => match Connection::open(&query).await {
            Ok(_) => ok("ok").into_response(),
            Err(e) => err(e).into_response(),
        },
        "/redis/exec" => {
            let body = body_text(req).await;
            let mut args = body.lines();
            let Some(cmd) = args.next() else {
                return err("no command").into_response();
            };
            let params: Vec<RedisParameter> = args
                .map(|a| RedisParameter::Binary(a.as_bytes().to_vec()))
                .collect();
            let conn = match redis().await {
                Ok(c) => c,
                Err(e) => return err(e).into_response(),
            };
            match conn.execute(cmd, params).await {
                Ok(results) => ok(format_results(&results)).into_response(),
                Err(e) => err(e).into_response(),
            }
        }
        "/redis/xread" => {
            let conn = match redis().await {
                Ok(c) => c,
                Err(e) => return err(e).into_response(),
            };
            let args = ["BLOCK", "0", "STREAMS", query.as_str(), "$"]
                .map(|a| RedisParameter::Binary(a.as_bytes().to_vec()));
            match conn.execute("XREAD", args).await {
                Ok(results) => ok(format_results(&results)).into_response(),
                Err(e) => err(e).into_response(),
            }
        }
        "/stream" => match redis().await {
            Ok(conn) => {
                let (tx, body) = spin_sdk::http::body::stream::<String>();
                spin_sdk::wasip3::spawn(stream_events(conn, query, tx));
                let mut resp = Response::new(body);
                resp.headers_mut().insert(
                    "content-type",
                    spin_sdk::http::HeaderValue::from_static("text/event-stream"),
                );
                resp.into_response()
            }
            Err(e) => err(e).into_response(),
        },
        "/outbound" => match spin_sdk::http::get(&query).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                use spin_sdk::http::body::IncomingBodyExt as _;
                let body = resp.into_body().bytes().await.unwrap_or_default();
                ok(format!(
                    "status:{status} {}",
                    String::from_utf8_lossy(&body)
                ))
                .into_response()
            }
            Err(e) => err(e).into_response(),
        },
        "/sqlite" => {
            let sql = body_text(req).await;
            sqlite(&sql).await.into_response()
        }
        "/echo" => Response::new(req.into_body()).into_response(),
        "/pieces" => {
            let (mut tx, body) = spin_sdk::http::body::stream::<String>();
            spin_sdk::wasip3::spawn(async move {
                for piece in ["first piece\n", "second piece\n", "third piece\n"] {
                    if tx.send(piece.to_owned()).await.is_err() {
                        return;
                    }
                    spin_sdk::time::sleep(Duration::from_millis(1)).await;
                }
            });
            Response::new(body).into_response()
        }
        "/alloc" => {
            let mib: usize = query.parse().unwrap_or(0);
            let block = std::hint::black_box(vec![1u8; mib << 20]);
            ok(format!(
                "{}",
                block.iter().map(|b| usize::from(*b)).sum::<usize>() >> 20
            ))
            .into_response()
        }
        "/spin" => {
            busy(query.parse().unwrap_or(0));
            ok("spun").into_response()
        }
        "/cpu" => {
            let (slices, ms) = query.split_once(',').unwrap_or(("0", "0"));
            for _ in 0..slices.parse::<u32>().unwrap_or(0) {
                busy(ms.parse().unwrap_or(0));
                spin_sdk::time::sleep(Duration::from_millis(1)).await;
            }
            ok("done").into_response()
        }
        "/loop" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        other => reply(StatusCode::NOT_FOUND, format!("no probe route {other:?}")).into_response(),
    }
}

async fn stream_events(
    conn: Connection,
    key: String,
    mut tx: futures::channel::mpsc::Sender<String>,
) {
    let bin = |s: &str| RedisParameter::Binary(s.as_bytes().to_vec());
    let mut last = "$".to_owned();
    let mut open = tx
        .send("event: first\ndata: hello\n\n".to_owned())
        .await
        .is_ok();
    while open {
        let args = [
            bin("COUNT"),
            bin("1"),
            bin("BLOCK"),
            bin("0"),
            bin("STREAMS"),
            bin(&key),
            bin(&last),
        ];
        let Ok(results) = conn.execute("XREAD", args).await else {
            break;
        };
        // Flattened: [stream, id, field, value]
        let text = |i: usize| match results.get(i) {
            Some(RedisResult::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        last = text(1);
        open = tx
            .send(format!("event: entry\nid: {last}\ndata: {}\n\n", text(3)))
            .await
            .is_ok();
    }
    // The client went away (or Redis failed): record that the work ended.
    let _ = conn
        .execute("SET", [bin(&format!("{key}:ended")), bin("1")])
        .await;
}

async fn sqlite(sql: &str) -> Response<String> {
    let conn = match spin_sdk::sqlite::Connection::open_default().await {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    let result = match conn.execute(sql, []).await {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let mut out = result.columns().join("\t");
    out.push('\n');
    match result.collect().await {
        Ok(rows) => {
            for row in rows {
                let cells: Vec<String> = row
                    .values
                    .iter()
                    .map(|v| match v {
                        spin_sdk::sqlite::Value::Integer(i) => i.to_string(),
                        spin_sdk::sqlite::Value::Real(r) => r.to_string(),
                        spin_sdk::sqlite::Value::Text(t) => t.clone(),
                        spin_sdk::sqlite::Value::Blob(b) => format!("<{} bytes>", b.len()),
                        spin_sdk::sqlite::Value::Null => "NULL".to_owned(),
                    })
                    .collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            out.push_str(&format!("changes:{}\n", conn.changes().await));
            ok(out)
        }
        Err(e) => err(e),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
