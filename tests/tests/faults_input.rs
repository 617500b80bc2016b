//! Bad input through the real host: malformed HTTP sent over raw TCP (what a
//! client library would refuse to send) to dock-host serving the real
//! component. Every answer must be a 4xx — the app's JSON error envelope with
//! a stable code, or, where hyper answers before any application code runs
//! (a request line or header block it cannot parse, too many or too large
//! headers, a URI over 64 KiB), hyper's bare 4xx followed by closing the
//! connection. Never a 5xx, never a trap, never a hang (every read has a
//! deadline), and the host keeps serving afterwards.
//!
//! Figures: each run prints one `faults_input:` summary line (cases,
//! requests, answers by status) that `docs/reliability.md` quotes.

mod api_support;
mod raw_http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind};
use dock_tests::{Host, artifacts};
use raw_http::{After, Conn, RawResponse};
use serde_json::json;

/// Longest any single answer may take.
const ANSWER: Duration = Duration::from_secs(10);
/// How long we watch for the server closing after a hyper-level answer.
const CLOSE: Duration = Duration::from_secs(3);
/// A well-formed session id that does not exist.
const NO_SID: &str = "vsn_A1b2C3d4E5f6G7h8J9k0L1";
const CREATE: &str = "/api/v1/verify/session";

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// The app's JSON error envelope with this status and code.
    Json(u16, &'static str),
    /// A 4xx the app answers with an HTML page (the flow at `verifyUrl`).
    Page(u16),
    /// A bare 4xx from hyper (request it cannot parse), then the connection closes.
    Hyper(u16),
    /// A bare 4xx from dock-host's front end (a `Host` header that is not an
    /// authority), as `spin up` refuses it before the component runs.
    HostAnswer(u16),
    /// No answer at all, the connection closed (an HTTP/2 preface on HTTP/1).
    Closed,
}

struct Case {
    name: String,
    request: Vec<u8>,
    want: Want,
}

/// Tally of everything sent and received, for the summary line.
#[derive(Default)]
struct Tally {
    cases: usize,
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    closed_without_answer: usize,
    failures: Vec<String>,
    /// The API key and admin token the cases send: no answer may echo them.
    secrets: Vec<String>,
    /// Cases by who must answer them (app JSON, app page, hyper, host front end, nobody).
    kinds: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn answer(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }

    fn fail(&mut self, case: &str, why: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {why}"));
    }

    fn summary(&self, store: &str) -> String {
        let fives: usize = self
            .statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum();
        format!(
            "faults_input: store={store} cases={} (table {:?}, +4 on kept connections) requests={} answers={:?} closed_without_answer={} 5xx={fives}",
            self.cases, self.kinds, self.requests, self.statuses, self.closed_without_answer
        )
    }
}

/// `METHOD target HTTP/1.1` with `Host`, the given headers, `Content-Length`
/// when there is a body and no framing header was given, then the body.
fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: dock.test\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !body.is_empty() && !framed {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Splices raw bytes into a request (for invalid bytes where `format!` cannot put them).
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

/// Every case of the table, for tenant `pid-a` with `key`, whose pending
/// session is `sid`.
fn cases(key: &str, sid: &str) -> Vec<Case> {
    let auth = format!("Bearer {key}");
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let a = ("Authorization", auth.as_str());
    let adm = ("Authorization", admin.as_str());
    let json_ct = ("Content-Type", "application/json");
    let ok_body = br#"{"pid":"pid-a","clientId":"u-input"}"#;
    let session = |s: &str| format!("/api/v1/verify/session/{s}");
    let mut v: Vec<Case> = Vec::new();
    let mut add = |name: &str, request: Vec<u8>, want: Want| {
        v.push(Case {
            name: name.to_owned(),
            request,
            want,
        })
    };

    // --- Bodies and their framing -------------------------------------------------
    let big = format!(r#"{{"pid":"pid-a","clientId":"{}"}}"#, "x".repeat(100_000));
    add(
        "body over max_body_bytes (100 kB, Content-Length honest)",
        req("POST", CREATE, &[a, json_ct], big.as_bytes()),
        Want::Json(413, "body_too_large"),
    );
    add(
        "body of 2 MB (Content-Length honest)",
        req("POST", CREATE, &[a, json_ct], &vec![b' '; 2_000_000]),
        Want::Json(413, "body_too_large"),
    );
    add(
        "Content-Length claims 1 GB, 20 bytes follow",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Content-Length", "1000000000")],
            br#"{"pid":"pid-a","cli"#,
        ),
        Want::Json(413, "body_too_large"),
    );
    add(
        "Content-Length claims u64::MAX",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Content-Length", "18446744073709551615")],
            b"{}",
        ),
        Want::Hyper(431),
    );
    add(
        "chunked, 32 kB of chunks, never terminated",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Transfer-Encoding", "chunked")],
            format!("1000\r\n{}\r\n", "x".repeat(4096))
                .repeat(8)
                .as_bytes(),
        ),
        Want::Json(413, "body_too_large"),
    );
    add(
        "chunked with an invalid chunk size",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Transfer-Encoding", "chunked")],
            b"zz\r\n{}\r\n0\r\n\r\n",
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "chunked with a chunk size overflowing u64",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Transfer-Encoding", "chunked")],
            b"fffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "Content-Length and Transfer-Encoding both (smuggling shape)",
        req(
            "POST",
            CREATE,
            &[
                a,
                json_ct,
                ("Content-Length", "4"),
                ("Transfer-Encoding", "chunked"),
            ],
            b"1\r\n{\r\n0\r\n\r\n",
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "Transfer-Encoding that does not end in chunked",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Transfer-Encoding", "gzip")],
            b"{}",
        ),
        Want::Hyper(400),
    );
    add(
        "two different Content-Lengths",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Content-Length", "2"), ("Content-Length", "3")],
            b"{}",
        ),
        Want::Hyper(400),
    );
    add(
        "negative Content-Length",
        req(
            "POST",
            CREATE,
            &[a, json_ct, ("Content-Length", "-1")],
            b"{}",
        ),
        Want::Hyper(400),
    );
    add(
        "Expect: 100-continue with a body over the limit",
        req(
            "POST",
            CREATE,
            &[
                a,
                json_ct,
                ("Expect", "100-continue"),
                ("Content-Length", "50000"),
            ],
            b"",
        ),
        Want::Json(413, "body_too_large"),
    );
    add(
        "Transfer-Encoding on HTTP/1.0",
        b"POST /api/v1/verify/session HTTP/1.0\r\nHost: dock.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        Want::Hyper(400),
    );

    // --- Content types ------------------------------------------------------------
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
        "application/json, text/plain",
        "application/jsonp",
    ] {
        add(
            &format!("Content-Type {ct:?}"),
            req("POST", CREATE, &[a, ("Content-Type", ct)], ok_body),
            Want::Json(415, "unsupported_media_type"),
        );
    }
    add(
        "Content-Type with bytes that are not text",
        bytes(&[
            b"POST /api/v1/verify/session HTTP/1.1\r\nHost: dock.test\r\nAuthorization: ",
            auth.as_bytes(),
            b"\r\nContent-Type: application/\xff\xfejson\r\nContent-Length: 36\r\n\r\n",
            ok_body,
        ]),
        Want::Json(415, "unsupported_media_type"),
    );
    add(
        "form body declared as JSON",
        req("POST", CREATE, &[a, json_ct], b"pid=pid-a&clientId=u"),
        Want::Json(400, "invalid_json"),
    );
    let utf16: Vec<u8> = String::from_utf8_lossy(ok_body)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    add(
        "UTF-16 body declared charset=utf-16",
        req(
            "POST",
            CREATE,
            &[a, ("Content-Type", "application/json; charset=utf-16")],
            &utf16,
        ),
        Want::Json(400, "invalid_json"),
    );

    // --- Invalid UTF-8 and odd encodings --------------------------------------------
    add(
        "invalid UTF-8 inside a JSON string",
        req(
            "POST",
            CREATE,
            &[a, json_ct],
            b"{\"pid\":\"pid-a\",\"clientId\":\"\xff\xfe\"}",
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "overlong UTF-8 encoding of '/'",
        req(
            "POST",
            CREATE,
            &[a, json_ct],
            b"{\"pid\":\"pid-a\",\"clientId\":\"\xc0\xaf\"}",
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "lone surrogate escape",
        req(
            "POST",
            CREATE,
            &[a, json_ct],
            br#"{"pid":"pid-a","clientId":"\ud800"}"#,
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "escaped NUL in a field",
        req(
            "POST",
            CREATE,
            &[a, json_ct],
            br#"{"pid":"pid-a","clientId":"a\u0000b"}"#,
        ),
        Want::Json(400, "invalid_field"),
    );
    add(
        "byte-order mark before the JSON",
        req(
            "POST",
            CREATE,
            &[a, json_ct],
            &bytes(&[b"\xef\xbb\xbf", ok_body]),
        ),
        Want::Json(400, "invalid_json"),
    );
    add(
        "wait=%FF",
        req("GET", &format!("{}?wait=%FF", session(sid)), &[a], b""),
        Want::Json(400, "invalid_wait"),
    );
    add(
        "wait with a raw 0xFF byte in the query",
        bytes(&[
            b"GET ",
            session(sid).as_bytes(),
            b"?wait=\xff HTTP/1.1\r\nHost: dock.test\r\nAuthorization: ",
            auth.as_bytes(),
            b"\r\n\r\n",
        ]),
        Want::Hyper(400),
    );
    add(
        "lastEventId=%FF%FE on a stream of an unknown session",
        req(
            "GET",
            &format!("{}/stream?lastEventId=%FF%FE", session(NO_SID)),
            &[a],
            b"",
        ),
        Want::Json(404, "session_not_found"),
    );
    add(
        "lastEventId of 5000 characters",
        req(
            "GET",
            &format!("{}/stream?lastEventId={}", session(sid), "9".repeat(5000)),
            &[a],
            b"",
        ),
        Want::Json(400, "invalid_query"),
    );
    add(
        "Last-Event-ID header with invalid UTF-8",
        bytes(&[
            b"GET ",
            session(NO_SID).as_bytes(),
            b"/stream HTTP/1.1\r\nHost: dock.test\r\nLast-Event-ID: \xff\xfe\r\nAuthorization: ",
            auth.as_bytes(),
            b"\r\n\r\n",
        ]),
        Want::Json(404, "session_not_found"),
    );
    add(
        "sid with %FF%FE",
        req("GET", &session("vsn_%FF%FE"), &[a], b""),
        Want::Json(400, "invalid_id"),
    );
    add(
        "sid with raw 0xFF bytes",
        bytes(&[
            b"GET /api/v1/verify/session/vsn_\xff\xfe HTTP/1.1\r\nHost: dock.test\r\nAuthorization: ",
            auth.as_bytes(),
            b"\r\n\r\n",
        ]),
        Want::Hyper(400),
    );
    add(
        "Authorization with invalid UTF-8",
        bytes(&[
            b"GET ",
            session(sid).as_bytes(),
            b" HTTP/1.1\r\nHost: dock.test\r\nAuthorization: Bearer dock_\xff\xfe\r\n\r\n",
        ]),
        Want::Json(401, "unauthorized"),
    );
    add(
        "discordId=%C0%80 (overlong NUL)",
        req(
            "GET",
            "/api/v1/public/discord-to-roblox?discordId=%C0%80",
            &[a],
            b"",
        ),
        Want::Json(400, "invalid_field"),
    );
    add(
        "robloxId=%00",
        req(
            "GET",
            "/api/v1/public/roblox-to-discord?robloxId=%00",
            &[a],
            b"",
        ),
        Want::Json(400, "invalid_field"),
    );

    // --- JSON of the wrong shape ------------------------------------------------------
    for (name, body, code) in [
        ("body `null`", "null", "invalid_json"),
        ("body a string", r#""pid-a""#, "invalid_json"),
        ("body a number", "123", "invalid_json"),
        ("body an array", r#"[{"pid":"pid-a"}]"#, "invalid_json"),
        (
            "pid a number",
            r#"{"pid":123,"clientId":"u"}"#,
            "invalid_type",
        ),
        (
            "clientId an array",
            r#"{"pid":"pid-a","clientId":["u"]}"#,
            "invalid_type",
        ),
        (
            "guildId an object",
            r#"{"pid":"pid-a","clientId":"u","guildId":{}}"#,
            "invalid_type",
        ),
        (
            "guildId a boolean",
            r#"{"pid":"pid-a","clientId":"u","guildId":false}"#,
            "invalid_type",
        ),
        (
            "clientId null",
            r#"{"pid":"pid-a","clientId":null}"#,
            "missing_field",
        ),
        (
            "clientId a number out of f64 range",
            r#"{"pid":"pid-a","clientId":1e999}"#,
            "invalid_json",
        ),
        (
            "trailing garbage after the object",
            r#"{"pid":"pid-a","clientId":"u"} x"#,
            "invalid_json",
        ),
        (
            "clientId of 300 characters",
            &format!(r#"{{"pid":"pid-a","clientId":"{}"}}"#, "c".repeat(300)),
            "field_too_long",
        ),
        (
            "pid that is not a PID",
            r#"{"pid":"../pid-a","clientId":"u"}"#,
            "invalid_field",
        ),
        (
            "array nested 8,000 deep",
            &nested(8_000, "[", "]"),
            "invalid_json",
        ),
        (
            "pid nested 2,000 objects deep",
            &format!(r#"{{"pid":{}}}"#, nested(2_000, r#"{"a":"#, "}")),
            "invalid_json",
        ),
        (
            "unknown field holding 7,000 nested arrays",
            &format!(
                r#"{{"pid":"pid-a","clientId":"u","x":{}}}"#,
                nested(7_000, "[", "]")
            ),
            "invalid_json",
        ),
        (
            "unknown field holding 100 nested arrays (within serde's limit)",
            &format!(
                r#"{{"pid":"pid-a","clientId":"u","x":{}}}"#,
                nested(100, "[", "]")
            ),
            "unknown_field",
        ),
    ] {
        add(
            name,
            req("POST", CREATE, &[a, json_ct], body.as_bytes()),
            Want::Json(400, code),
        );
    }
    for (name, path, body, code) in [
        (
            "admin pid: name a number",
            "/api/v1/admin/pids".to_owned(),
            r#"{"pid":"pid-x","name":1}"#.to_owned(),
            "invalid_type",
        ),
        (
            "admin pid: unknown field",
            "/api/v1/admin/pids".to_owned(),
            r#"{"pid":"pid-x","name":"n","owner":"me"}"#.to_owned(),
            "unknown_field",
        ),
        (
            "admin pid: 2,500 nested objects",
            "/api/v1/admin/pids".to_owned(),
            format!(
                r#"{{"pid":"pid-x","name":{}}}"#,
                nested(2_500, r#"{"a":"#, "}")
            ),
            "invalid_json",
        ),
        (
            "admin key: negative quota",
            "/api/v1/admin/pids/pid-a/keys".to_owned(),
            r#"{"quota":{"limit":-1,"windowSeconds":60}}"#.to_owned(),
            "invalid_type",
        ),
        (
            "admin key: quota a string",
            "/api/v1/admin/pids/pid-a/keys".to_owned(),
            r#"{"quota":"lots"}"#.to_owned(),
            "invalid_type",
        ),
        (
            "admin key: quota limit 1e30",
            "/api/v1/admin/pids/pid-a/keys".to_owned(),
            r#"{"quota":{"limit":1e30,"windowSeconds":60}}"#.to_owned(),
            "invalid_type",
        ),
        (
            "admin complete: discordId a number",
            format!("/api/v1/admin/sessions/{sid}/complete"),
            r#"{"discordId":80351110224678912,"robloxId":"1"}"#.to_owned(),
            "invalid_type",
        ),
        (
            "admin complete: robloxId not digits",
            format!("/api/v1/admin/sessions/{sid}/complete"),
            r#"{"discordId":"1","robloxId":"1 OR 1=1"}"#.to_owned(),
            "invalid_field",
        ),
        (
            "admin complete: robloxId of 21 digits",
            format!("/api/v1/admin/sessions/{sid}/complete"),
            format!(r#"{{"discordId":"1","robloxId":"{}"}}"#, "1".repeat(21)),
            "field_too_long",
        ),
    ] {
        add(
            name,
            req("POST", &path, &[adm, json_ct], body.as_bytes()),
            Want::Json(400, code),
        );
    }

    // --- Header floods and huge request lines -------------------------------------
    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("X-Flood-{i}"), "v".into()))
        .collect();
    let many_refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    add(
        "150 headers (hyper allows 100)",
        req("GET", &session(NO_SID), &many_refs, b""),
        Want::Hyper(431),
    );
    let mut ninety = vec![a];
    ninety.extend_from_slice(&many_refs[..90]);
    add(
        "91 headers (under hyper's 100)",
        req("GET", &session(NO_SID), &ninety, b""),
        Want::Json(404, "session_not_found"),
    );
    let big_value = "v".repeat(64 * 1024);
    add(
        "one 64 KiB header (under hyper's ~400 KiB buffer)",
        req("GET", &session(NO_SID), &[a, ("X-Big", &big_value)], b""),
        Want::Json(404, "session_not_found"),
    );
    let huge_value = "v".repeat(1024 * 1024);
    add(
        "one 1 MiB header",
        req("GET", &session(NO_SID), &[a, ("X-Huge", &huge_value)], b""),
        Want::Hyper(431),
    );
    let long_auth = format!("Bearer dock_{}", "k".repeat(64 * 1024));
    add(
        "a 64 KiB bearer token",
        req(
            "GET",
            &session(NO_SID),
            &[("Authorization", &long_auth)],
            b"",
        ),
        Want::Json(401, "unauthorized"),
    );
    add(
        "a 70 kB URI (hyper's limit is 64 KiB)",
        req("GET", &session(&"a".repeat(70_000)), &[a], b""),
        Want::Hyper(414),
    );
    add(
        "a 60 kB sid",
        req(
            "GET",
            &session(&format!("vsn_{}", "a".repeat(60_000))),
            &[a],
            b"",
        ),
        Want::Json(400, "invalid_id"),
    );
    add(
        "a 60 kB query",
        req(
            "GET",
            &format!("{}?wait=1&pad={}", session(NO_SID), "p".repeat(60_000)),
            &[a],
            b"",
        ),
        Want::Json(404, "session_not_found"),
    );
    add(
        "obsolete line folding",
        bytes(&[
            b"GET ",
            session(NO_SID).as_bytes(),
            b" HTTP/1.1\r\nHost: dock.test\r\nX-Fold: a\r\n b\r\n\r\n",
        ]),
        Want::Hyper(400),
    );
    add(
        "header line without a colon",
        bytes(&[
            b"GET ",
            session(NO_SID).as_bytes(),
            b" HTTP/1.1\r\nHost: dock.test\r\nNoColonHere\r\n\r\n",
        ]),
        Want::Hyper(400),
    );
    add(
        "NUL in a header value",
        bytes(&[
            b"GET ",
            session(NO_SID).as_bytes(),
            b" HTTP/1.1\r\nHost: dock.test\r\nX-Nul: a\x00b\r\n\r\n",
        ]),
        Want::Hyper(400),
    );
    add(
        "space before the colon of a header name",
        bytes(&[
            b"GET ",
            session(NO_SID).as_bytes(),
            b" HTTP/1.1\r\nHost: dock.test\r\nAuthorization : Bearer x\r\n\r\n",
        ]),
        Want::Hyper(400),
    );

    // --- Path tricks -----------------------------------------------------------------
    for (name, path, method, want) in [
        (
            "%2F-encoded slashes and .. in the sid",
            session("vsn_..%2F..%2Fadmin%2Fpids"),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "an encoded /stream glued to the sid",
            format!("{}%2Fstream", session(sid)),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "a ;stream parameter glued to the sid",
            format!("{};stream", session(sid)),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "raw .. segments towards the admin API",
            "/api/v1/verify/session/../../admin/pids".to_owned(),
            "POST",
            Want::Json(404, "not_found"),
        ),
        (
            "admin prefix with .. back to the sessions",
            "/api/v1/admin/../verify/session".to_owned(),
            "POST",
            Want::Json(404, "not_found"),
        ),
        (
            "sid followed by ../../..",
            format!("{}/../../../admin/pids", session(sid)),
            "POST",
            Want::Json(404, "not_found"),
        ),
        (
            "sid of exactly ..",
            session(".."),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "leading double slash",
            "//api/v1/verify/session".to_owned(),
            "POST",
            Want::Json(404, "not_found"),
        ),
        (
            "double slash inside",
            "/api//v1/verify/session".to_owned(),
            "POST",
            Want::Json(404, "not_found"),
        ),
        (
            "trailing slash on create",
            "/api/v1/verify/session/".to_owned(),
            "POST",
            Want::Json(405, "method_not_allowed"),
        ),
        (
            "trailing slash on get (empty sid)",
            "/api/v1/verify/session/".to_owned(),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "trailing slash after the sid",
            format!("{}/", session(sid)),
            "GET",
            Want::Json(404, "not_found"),
        ),
        (
            "percent-encoded vsn_ prefix",
            session(&format!("%76sn_{}", &sid[4..])),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "percent-encoded NUL after the sid",
            format!("{}%00", session(sid)),
            "GET",
            Want::Json(400, "invalid_id"),
        ),
        (
            "upper-case route",
            "/API/V1/VERIFY/SESSION".to_owned(),
            "POST",
            Want::Json(404, "not_found"),
        ),
        (
            "extra segment after /stream",
            format!("{}/stream/more", session(sid)),
            "GET",
            Want::Json(404, "not_found"),
        ),
        (
            "encoded slash in the admin pid",
            "/api/v1/admin/pids/pid-a%2F..%2Fpid-b/keys".to_owned(),
            "POST",
            Want::Json(400, "invalid_id"),
        ),
        (
            "encoded .. as the admin key id",
            "/api/v1/admin/keys/%2E%2E".to_owned(),
            "DELETE",
            Want::Json(400, "invalid_id"),
        ),
    ] {
        let auth_header = if path.contains("/admin/") { adm } else { a };
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        add(
            name,
            req(method, &path, &[auth_header, json_ct], body),
            want,
        );
    }
    add(
        "absolute-form target naming another host than Host",
        req(
            "GET",
            &format!("http://evil.example{}", session(NO_SID)),
            &[a],
            b"",
        ),
        Want::HostAnswer(400),
    );
    add(
        "absolute-form target agreeing with Host",
        req(
            "GET",
            &format!("http://dock.test{}", session(NO_SID)),
            &[a],
            b"",
        ),
        Want::Json(404, "session_not_found"),
    );
    add(
        "asterisk-form target",
        b"OPTIONS * HTTP/1.1\r\nHost: dock.test\r\n\r\n".to_vec(),
        Want::Json(404, "not_found"),
    );
    add(
        "backslash in the path",
        req("GET", "/api/v1/verify/session\\..\\admin", &[a], b""),
        Want::Json(404, "not_found"),
    );

    // --- Methods and versions ------------------------------------------------------
    for m in ["FOO", "PATCH", "PUT", "OPTIONS", "TRACE", "get"] {
        add(
            &format!("method {m}"),
            req(m, &session(NO_SID), &[a], b""),
            Want::Json(405, "method_not_allowed"),
        );
    }
    add(
        "HEAD (no body in the answer)",
        req("HEAD", &session(NO_SID), &[a], b""),
        Want::Json(405, "method_not_allowed"),
    );
    add(
        "a 10 kB method name",
        req(&"M".repeat(10_000), &session(NO_SID), &[a], b""),
        Want::Json(405, "method_not_allowed"),
    );
    add(
        "method with a character outside tokens",
        req("G(T", &session(NO_SID), &[a], b""),
        Want::Hyper(400),
    );
    add(
        "HTTP/1.0 without Host",
        format!(
            "GET {} HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::Json(404, "session_not_found"),
    );
    add(
        "HTTP/1.1 without Host",
        format!(
            "GET {} HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::Json(404, "session_not_found"),
    );
    add(
        "HTTP/2.0 in an HTTP/1 request line",
        format!(
            "GET {} HTTP/2.0\r\nHost: dock.test\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::Hyper(400),
    );
    add(
        "HTTP/0.9 request line",
        b"GET /healthz\r\n\r\n".to_vec(),
        Want::Hyper(400),
    );
    add(
        "lower-case version",
        format!(
            "GET {} http/1.1\r\nHost: dock.test\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::Hyper(400),
    );
    add(
        "HTTP/2 prior-knowledge preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        Want::Closed,
    );
    add(
        "binary garbage",
        (0u8..=255).cycle().skip(7).step_by(13).take(2048).collect(),
        Want::Hyper(400),
    );
    add(
        "TLS ClientHello on the plain port",
        vec![
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0, 0, 0, 0, 0,
        ],
        Want::Hyper(400),
    );

    // --- Host header ---------------------------------------------------------------
    add(
        "Host naming another site",
        format!(
            "GET {} HTTP/1.1\r\nHost: evil.example\r\nAuthorization: {auth}\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::Json(404, "session_not_found"),
    );
    add(
        "Host with a path and query (would re-route the guest)",
        format!(
            "GET {} HTTP/1.1\r\nHost: evil.example/api/v1/admin/pids?\r\nAuthorization: {auth}\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::HostAnswer(400),
    );
    add(
        "Host with a space",
        format!(
            "GET {} HTTP/1.1\r\nHost: a b\r\nAuthorization: {auth}\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::HostAnswer(400),
    );
    add(
        "empty Host",
        format!(
            "GET {} HTTP/1.1\r\nHost:\r\nAuthorization: {auth}\r\n\r\n",
            session(NO_SID)
        )
        .into_bytes(),
        Want::HostAnswer(400),
    );

    // --- The flow at verifyUrl (HTML pages) ------------------------------------------
    for (name, request, status) in [
        (
            "verify page with invalid UTF-8 ids",
            req("GET", "/v1/api/verify/discord?pid=%FF&sid=%FE", &[], b""),
            404,
        ),
        (
            "verify page for a PID that is not the session's",
            req(
                "GET",
                &format!("/v1/api/verify/discord?pid=pid-zz&sid={sid}"),
                &[],
                b"",
            ),
            404,
        ),
        (
            "flow start with a 100 kB form",
            req(
                "POST",
                "/v1/api/verify/discord/start",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                format!("pid=pid-a&sid={sid}&pad={}", "p".repeat(100_000)).as_bytes(),
            ),
            404,
        ),
        (
            "flow start with invalid UTF-8 in the form",
            req(
                "POST",
                "/v1/api/verify/discord/start",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"pid=\xff\xfe&sid=\xc0\xaf",
            ),
            404,
        ),
        (
            "discord callback without state",
            req("GET", "/v1/api/verify/discord/callback?code=x", &[], b""),
            404,
        ),
        (
            "discord callback with a well-formed unknown state and a 60 kB cookie",
            req(
                "GET",
                &format!(
                    "/v1/api/verify/discord/callback?code=x&state=vsn_{}.{}",
                    "B".repeat(22),
                    "A".repeat(43)
                ),
                &[("Cookie", &format!("dock_flow={}", "c".repeat(60_000)))],
                b"",
            ),
            400,
        ),
        (
            "roblox callback with %FF state",
            req(
                "GET",
                "/v1/api/verify/roblox/callback?code=x&state=%FF",
                &[],
                b"",
            ),
            404,
        ),
    ] {
        add(name, request, Want::Page(status));
    }
    v
}

/// Runs one case on a fresh connection and checks its answer.
async fn run_case(addr: SocketAddr, case: &Case, tally: &mut Tally) {
    tally.cases += 1;
    tally.requests += 1;
    let kind = match case.want {
        Want::Json(..) => "app_json",
        Want::Page(_) => "app_page",
        Want::Hyper(_) => "hyper",
        Want::HostAnswer(_) => "host_front_end",
        Want::Closed => "no_answer",
    };
    *tally.kinds.entry(kind).or_default() += 1;
    // Only hyper's answers are expected to close the connection; waiting
    // for the others to close would only wait out the keep-alive.
    let close_wait = match case.want {
        Want::Hyper(_) | Want::Closed => CLOSE,
        _ => Duration::ZERO,
    };
    let result = raw_http::one(addr, &case.request, ANSWER, close_wait).await;
    let (resp, after) = match result {
        Ok(x) => x,
        Err(e) => return tally.fail(&case.name, format!("{e:#}")),
    };
    let Some(resp) = resp else {
        tally.closed_without_answer += 1;
        if !matches!(case.want, Want::Closed) {
            tally.fail(&case.name, "closed without an answer");
        }
        return;
    };
    tally.answer(resp.status);
    let text = resp.text();
    let heads = format!("{:?}", resp.headers);
    if tally
        .secrets
        .iter()
        .any(|x| text.contains(x.as_str()) || heads.contains(x.as_str()))
    {
        tally.fail(&case.name, "the answer echoes a key or the admin token");
    }
    if let Err(e) = check(case.want, &resp, after) {
        tally.fail(
            &case.name,
            format!(
                "{e}; got {} {:?} {}",
                resp.status,
                resp.headers,
                resp.text().chars().take(300).collect::<String>()
            ),
        );
    }
}

fn check(want: Want, resp: &RawResponse, after: After) -> Result<()> {
    ensure!(
        (400..500).contains(&resp.status),
        "not a 4xx: {}",
        resp.status
    );
    match want {
        Want::Json(status, code) => {
            ensure!(resp.status == status, "want {status} {code}");
            if resp.status == 405 && resp.body.is_empty() {
                // HEAD: the head only (hyper drops the body), still the JSON type.
                ensure!(
                    resp.header("content-type") == Some("application/json"),
                    "HEAD 405 without the JSON content type"
                );
                return Ok(());
            }
            let body = resp.json().context("body is not JSON")?;
            ensure!(
                body["error"]["code"] == code && body["status"] == status,
                "want code {code}"
            );
            ensure!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "no message"
            );
            ensure!(
                resp.header("content-type") == Some("application/json"),
                "content-type"
            );
            ensure!(
                resp.header("cache-control") == Some("no-store"),
                "cache-control"
            );
        }
        Want::Page(status) => {
            ensure!(resp.status == status, "want page {status}");
            ensure!(
                resp.header("content-type")
                    .is_some_and(|c| c.starts_with("text/html")),
                "not HTML"
            );
            ensure!(
                resp.header("content-security-policy")
                    .is_some_and(|c| c.contains("default-src 'none'")),
                "no CSP"
            );
        }
        Want::Hyper(status) => {
            ensure!(resp.status == status, "want hyper's {status}");
            ensure!(
                resp.json().is_none() || resp.body.is_empty(),
                "a JSON body from hyper?"
            );
            ensure!(after == After::Closed, "connection left open");
        }
        Want::HostAnswer(status) => {
            ensure!(resp.status == status, "want the host's {status}");
            ensure!(resp.json().is_none(), "expected the host's own answer");
        }
        Want::Closed => bail!("expected no answer"),
    }
    Ok(())
}

/// Requests on one connection: pipelined in one write, and after a body whose
/// Content-Length lied (the rest is read as the next request).
async fn pipelining(addr: SocketAddr, key: &str, tally: &mut Tally) -> Result<()> {
    let auth = format!("Bearer {key}");
    let a = ("Authorization", auth.as_str());
    let mut c = Conn::open(addr).await?;
    let mut batch = Vec::new();
    batch.extend(req("GET", "/healthz", &[], b""));
    batch.extend(req(
        "GET",
        &format!("/api/v1/verify/session/{NO_SID}"),
        &[a],
        b"",
    ));
    batch.extend(req("POST", CREATE, &[a], b"{"));
    batch.extend(req("DELETE", "/api/v1/verify/session/nope", &[a], b""));
    c.send(&batch).await;
    tally.cases += 1;
    tally.requests += 4;
    let mut got = Vec::new();
    for method in ["GET", "GET", "POST", "DELETE"] {
        let r = c
            .response(method, ANSWER)
            .await?
            .context("pipelined: closed early")?;
        tally.answer(r.status);
        got.push((r.status, r.error_code()));
    }
    ensure!(
        got == vec![
            (200, None),
            (404, Some("session_not_found".into())),
            (400, Some("invalid_json".into())),
            (400, Some("invalid_id".into())),
        ],
        "pipelined answers out of order or wrong: {got:?}"
    );
    // The connection is still usable.
    c.send(&req("GET", "/healthz", &[], b"")).await;
    tally.requests += 1;
    let r = c.response("GET", ANSWER).await?.context("reuse")?;
    tally.answer(r.status);
    ensure!(r.status == 200, "after pipelining: {}", r.status);

    // Content-Length says 10, 4 kB follow: 10 bytes are the body (invalid
    // JSON), the rest is read as a request line, which hyper refuses.
    tally.cases += 1;
    tally.requests += 1;
    let mut c = Conn::open(addr).await?;
    let mut lie = req(
        "POST",
        CREATE,
        &[a, ("Content-Length", "10")],
        br#"{"pid":"pi"#,
    );
    lie.extend_from_slice(&vec![b'x'; 4096]);
    // A complete (if absurd) head, so hyper's verdict does not wait for more.
    lie.extend_from_slice(b"\r\n\r\n");
    c.send(&lie).await;
    let first = c
        .response("POST", ANSWER)
        .await?
        .context("lie: no answer")?;
    tally.answer(first.status);
    ensure!(
        (first.status, first.error_code().as_deref()) == (400, Some("invalid_json")),
        "short Content-Length: {} {}",
        first.status,
        first.text()
    );
    if let Some(second) = c.response("GET", ANSWER).await? {
        tally.answer(second.status);
        ensure!(
            (400..500).contains(&second.status),
            "the trailing bytes: {}",
            second.status
        );
    }
    ensure!(c.after(CLOSE).await? == After::Closed, "left open");

    // Content-Length says 100, 30 bytes come, then the client half-closes.
    tally.cases += 1;
    tally.requests += 1;
    let mut c = Conn::open(addr).await?;
    c.send(&req(
        "POST",
        CREATE,
        &[a, ("Content-Length", "100")],
        br#"{"pid":"pid-a","clientId":"u""#,
    ))
    .await;
    c.shutdown_write().await;
    match c.response("POST", ANSWER).await? {
        Some(r) => {
            tally.answer(r.status);
            ensure!(
                (r.status, r.error_code().as_deref()) == (400, Some("invalid_json")),
                "truncated body: {} {}",
                r.status,
                r.text()
            );
        }
        None => tally.closed_without_answer += 1,
    }

    // Chunked, under the limit, then EOF without the last chunk.
    tally.cases += 1;
    tally.requests += 1;
    let mut c = Conn::open(addr).await?;
    c.send(&req(
        "POST",
        CREATE,
        &[a, ("Transfer-Encoding", "chunked")],
        b"5\r\n{\"pid\r\n",
    ))
    .await;
    c.shutdown_write().await;
    match c.response("POST", ANSWER).await? {
        Some(r) => {
            tally.answer(r.status);
            ensure!(
                (r.status, r.error_code().as_deref()) == (400, Some("invalid_json")),
                "unterminated chunked body: {} {}",
                r.status,
                r.text()
            );
        }
        None => tally.closed_without_answer += 1,
    }
    Ok(())
}

/// Host log lines that would mean a trap, a panic or a failed request.
fn trouble(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("trap")
                || lower.contains("panicked")
                || lower.contains("request failed")
                || lower.contains("worker failed")
                || l.contains(" ERROR ")
                || l.contains(r#""status":5"#)
        })
        .collect()
}

async fn malformed_http(store: StoreKind) -> Result<()> {
    let started = Instant::now();
    let vars = [
        ("discord_oauth_base", "http://127.0.0.1:9"),
        ("discord_client_id", "discord-client"),
        ("discord_client_secret", "discord-secret"),
        ("roblox_oauth_base", "http://127.0.0.1:9"),
        ("roblox_client_id", "roblox-client"),
        ("roblox_client_secret", "roblox-secret"),
    ];
    let svc = Service::start(store, &vars).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let addr = svc.hosts[0].addr();
    let mut tally = Tally {
        secrets: vec![
            key.clone(),
            key["dock_".len()..].to_owned(),
            ADMIN_TOKEN.to_owned(),
        ],
        ..Tally::default()
    };
    for case in cases(&key, &sid) {
        run_case(addr, &case, &mut tally).await;
    }
    if let Err(e) = pipelining(addr, &key, &mut tally).await {
        tally.fail("pipelining", format!("{e:#}"));
    }

    // Still serving, and nothing was changed by the garbage.
    let (s, body) = svc.get(&key, &sid, "").await?;
    if !(s == 200 && body["data"]["status"] == "pending") {
        tally.fail("after the suite", format!("get: {s} {body}"));
    }
    let (s, body) = svc
        .create(&key, json!({"pid": "pid-a", "clientId": "after"}))
        .await?;
    if s != 200 {
        tally.fail("after the suite", format!("create: {s} {body}"));
    }
    // No malformed request created the session its body named.
    let (s, body) = svc
        .create(&key, json!({"pid": "pid-a", "clientId": "u-input"}))
        .await?;
    if !(s == 200 && body["data"]["reusedExisting"] == false) {
        tally.fail(
            "after the suite",
            format!("a malformed request created a session: {body}"),
        );
    }

    let log = svc.hosts[0].output();
    let bad = trouble(&log);
    if tally.secrets.iter().any(|x| log.contains(x.as_str())) {
        tally.fail("the host's output", "holds the API key or the admin token");
    }
    println!(
        "{} elapsed={:.1}s",
        tally.summary(&format!("{store:?}")),
        started.elapsed().as_secs_f64()
    );
    ensure!(
        tally.failures.is_empty(),
        "{} of {} cases failed:\n{}",
        tally.failures.len(),
        tally.cases,
        tally.failures.join("\n")
    );
    ensure!(
        bad.is_empty(),
        "trouble in the host log:\n{}",
        bad.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_4xx_sqlite() -> Result<()> {
    malformed_http(StoreKind::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_4xx_redis() -> Result<()> {
    malformed_http(StoreKind::Redis).await
}

/// Clients that never finish their request head are cut off after
/// `--header-read-timeout` (hyper's default of 30 s, set to 2 s here), so a
/// slowloris cannot hold every connection slot: with `--max-connections 8`
/// and 8 such clients trickling a header byte every 300 ms, a ninth client
/// is served as soon as they are cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_and_others_are_served() -> Result<()> {
    const SLOTS: usize = 8;
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = tokio::task::block_in_place(|| {
        Host::start(
            &manifest,
            &[
                "--sqlite-db",
                "memory",
                "--header-read-timeout",
                "2s",
                "--max-connections",
                &SLOTS.to_string(),
            ],
        )
    })?;
    let addr = host.addr();
    let mut lorises = Vec::new();
    for i in 0..SLOTS {
        let mut c = Conn::open(addr).await?;
        c.send(format!("GET /healthz HTTP/1.1\r\nHost: dock.test\r\nX-Slow-{i}: ").as_bytes())
            .await;
        lorises.push(tokio::spawn(async move {
            let start = Instant::now();
            // One byte every 300 ms, never the blank line; stop when cut off.
            loop {
                if !c.send(b"a").await {
                    return Some(start.elapsed());
                }
                if let Some(_closed) = c.closed_within(Duration::from_millis(300)).await {
                    return Some(start.elapsed());
                }
                if start.elapsed() > Duration::from_secs(20) {
                    return None;
                }
            }
        }));
    }
    // A well-behaved client, queued behind the slowlorises for a slot.
    let t = Instant::now();
    let (resp, _) = raw_http::one(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: dock.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(15),
        CLOSE,
    )
    .await?;
    let served_after = t.elapsed();
    let resp = resp.context("the ninth client got no answer")?;
    ensure!(resp.status == 200, "ninth client: {}", resp.status);
    let mut cut = Vec::new();
    for l in lorises {
        cut.push(l.await?.context("a slowloris was never cut off")?);
    }
    let longest = cut.iter().max().copied().unwrap_or_default();
    println!(
        "faults_input: slowloris connections={SLOTS} cut_off_after_max={:.1}s ninth_client_served_after={:.1}s",
        longest.as_secs_f64(),
        served_after.as_secs_f64()
    );
    ensure!(
        longest < Duration::from_secs(6),
        "slowloris held a connection for {longest:?}"
    );
    ensure!(
        served_after < Duration::from_secs(8),
        "the ninth client waited {served_after:?}"
    );
    Ok(())
}

/// Many connections sending garbage at once while a well-behaved client keeps
/// creating sessions: every garbage connection gets a 4xx or is closed, every
/// good request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_garbage_does_not_disturb_good_clients() -> Result<()> {
    const GARBAGE: usize = 200;
    let svc = Service::start(StoreKind::Sqlite, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let addr = svc.hosts[0].addr();
    let junk = |i: usize| -> Vec<u8> {
        // Deterministic variety: request lines, headers and bodies cut or corrupted.
        let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = req(
            "POST",
            CREATE,
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
            ],
            br#"{"pid":"pid-a","clientId":"garbage"}"#,
        );
        let mut out = base.clone();
        for _ in 0..1 + rnd() % 6 {
            let at = (rnd() as usize) % out.len();
            out[at] = (rnd() & 0xff) as u8;
        }
        out
    };
    let tasks: Vec<_> = (0..GARBAGE)
        .map(|i| {
            let bytes = junk(i);
            tokio::spawn(async move {
                // Every answer on the connection until it closes (a corrupted
                // length can make the rest of the bytes a second request).
                let mut c = Conn::open(addr).await?;
                c.send(&bytes).await;
                let mut statuses = Vec::new();
                while let Some(r) = c.response("POST", ANSWER).await? {
                    statuses.push((r.status, r.text()));
                    if c.after(Duration::from_millis(300)).await.is_ok() {
                        break;
                    }
                }
                anyhow::Ok(statuses)
            })
        })
        .collect();
    let mut good = 0;
    for i in 0..20 {
        let (s, body) = svc
            .create(
                &key,
                json!({"pid": "pid-a", "clientId": format!("good-{i}")}),
            )
            .await?;
        ensure!(s == 200, "good client during garbage: {s} {body}");
        good += 1;
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut closed = 0;
    for t in tasks {
        let answers = t.await??;
        if answers.is_empty() {
            closed += 1;
        }
        for (status, text) in answers {
            *statuses.entry(status).or_default() += 1;
            // Mutated requests that are still valid HTTP and JSON may create a session.
            ensure!(status < 500, "garbage got {status} {text}");
        }
    }
    println!(
        "faults_input: concurrent garbage connections={GARBAGE} answers={statuses:?} closed_without_answer={closed} good_creates={good}/20"
    );
    let bad = trouble(&svc.hosts[0].output())
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    ensure!(
        bad.is_empty(),
        "trouble in the host log:\n{}",
        bad.join("\n")
    );
    if statuses.keys().any(|s| *s >= 500) {
        bail!("a 5xx: {statuses:?}");
    }
    Ok(())
}

/// What became of one slow-body connection.
#[derive(Debug)]
struct SlowEnd {
    /// The status the server answered with, if any, before it closed.
    status: Option<u16>,
    /// From connect to close.
    after: Duration,
}

/// One client that declares a 4,000-byte create body, sends its head and a
/// few bytes, then either nothing more (`trickle: false`) or one byte a
/// second, reading until the server closes (or 30 s pass).
async fn slow_body_client(
    addr: SocketAddr,
    key: &str,
    trickle: bool,
    ended: &std::sync::atomic::AtomicUsize,
) -> Result<SlowEnd> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {CREATE} HTTP/1.1\r\nHost: dock.test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{\"pid\":"
    );
    let _ = s.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            r = s.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            _ = tick.tick(), if trickle => {
                let _ = s.write_all(b" ").await;
            }
            () = tokio::time::sleep_until(end) => bail!("a slow-body connection was never closed"),
        }
    }
    ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let status = std::str::from_utf8(&buf)
        .ok()
        .and_then(|t| t.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok());
    Ok(SlowEnd {
        status,
        after: start.elapsed(),
    })
}

/// Clients that declare a request body and send it slowly or never: on a
/// host sized for 1,000 connections, 1,100 of them from 127.0.0.1 hold at
/// most `--max-connections-per-ip` (256 here) connections, the rest are
/// refused at once with 503; each held one is
/// answered 408 and closed at `--body-idle-timeout` (nothing sent) or
/// `--body-read-timeout` (a byte a second); a client on another address
/// (127.0.0.2) is served while they are held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off_and_other_addresses_are_served() -> Result<()> {
    const SLOW: usize = 1100;
    const PER_IP: usize = 256;
    // Long enough that, on a busy machine, every connection is open (and
    // those over the cap refused) before the first deadline frees a slot.
    const IDLE: Duration = Duration::from_secs(5);
    const TOTAL: Duration = Duration::from_secs(9);
    // A host sized for 1,000 connections and requests: without the cap,
    // 1,100 slow bodies would hold every slot.
    let per_ip = PER_IP.to_string();
    let svc = Service::start_with_host_args(
        StoreKind::Sqlite,
        &[
            "--max-connections",
            "1000",
            "--max-concurrent-requests",
            "1000",
            "--max-connections-per-ip",
            &per_ip,
            "--body-idle-timeout",
            "5s",
            "--body-read-timeout",
            "9s",
        ],
        &[],
    )
    .await?;
    let key = svc.tenant("pid-slow").await?;
    let addr = svc.hosts[0].addr();

    let ended = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let key = key.clone();
        let ended = ended.clone();
        slow.push(tokio::spawn(async move {
            slow_body_client(addr, &key, i % 2 == 1, &ended).await
        }));
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    // Every connection over the cap has been refused; the rest are held.
    dock_tests::wait_until_async(
        Duration::from_secs(30),
        "the connections over the cap to be refused",
        || std::future::ready(ended.load(std::sync::atomic::Ordering::SeqCst) >= SLOW - PER_IP),
    )
    .await?;
    ensure!(
        ended.load(std::sync::atomic::Ordering::SeqCst) < SLOW - PER_IP + 8,
        "slow connections ended before their deadline"
    );
    // While the slow ones hold their connections: another address is served.
    let other = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()?;
    let t = Instant::now();
    let created = other
        .post(svc.url(CREATE))
        .bearer_auth(&key)
        .json(&json!({"pid": "pid-slow", "clientId": "from-127.0.0.2"}))
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let served_after = t.elapsed();
    let status = created.status().as_u16();
    let body: serde_json::Value = created.json().await?;
    ensure!(status == 200, "127.0.0.2 create: {status} {body}");

    let mut held = Vec::new();
    let mut refused = 0;
    for h in slow {
        let end = h.await??;
        match end.status {
            Some(408) => held.push(end.after),
            // Refused on accept: the 503, or a reset that beat it (the
            // server closed with our request head unread).
            Some(503) => refused += 1,
            None if end.after < IDLE => refused += 1,
            other => bail!(
                "a slow-body connection ended with {other:?} after {:?}",
                end.after
            ),
        }
    }
    let longest = held.iter().max().copied().unwrap_or_default();
    println!(
        "faults_input: slow bodies={SLOW} from 127.0.0.1: held={} (408, longest {:.1}s) refused={refused} (503); \
         127.0.0.2 served after {:.0} ms",
        held.len(),
        longest.as_secs_f64(),
        served_after.as_secs_f64() * 1000.0
    );
    // The cap counts every connection of the address: the test's own
    // kept-alive API client holds one or two of the slots.
    ensure!(
        held.len() <= PER_IP && held.len() + 4 >= PER_IP && held.len() + refused == SLOW,
        "held {} refused {refused}: the per-address cap did not hold",
        held.len()
    );
    ensure!(
        longest < TOTAL + Duration::from_secs(4),
        "a slow body held its connection for {longest:?} (idle deadline {IDLE:?}, total {TOTAL:?})"
    );
    // Locked out would mean no answer at all; the figure itself (a first
    // request that starts a fresh instance: ~0.7 s on a debug build, then
    // ~5 ms) is printed above and recorded in docs/reliability.md.
    ensure!(
        served_after < Duration::from_secs(5),
        "127.0.0.2 waited {served_after:?}"
    );
    Ok(())
}
