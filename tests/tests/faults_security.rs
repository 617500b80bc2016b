//! Security end to end, against dock-host serving the real component:
//!
//! - a PID-isolation matrix: every tenant endpoint (spin-app/src/router.rs,
//!   spin-app/openapi.json) called with another tenant's valid key answers
//!   the endpoint's documented 404, with nothing of the other tenant in the
//!   body, and changes nothing; every admin endpoint refuses tenant keys,
//!   wrong, truncated, re-cased and missing tokens with 401 (and does not
//!   exist, 404, without `admin_token`);
//! - secrets: API keys and the admin token never appear in Redis (every key
//!   and every value, by type), in the SQLite database file, in the hosts'
//!   output, or in any response body other than the one that issues a key;
//! - the admin-token comparison is constant-time in the code;
//! - no open redirect in the flow at `verifyUrl`, whatever the query or the
//!   `Host` header says;
//! - response headers: `Cache-Control: no-store` on every API answer, a strict
//!   CSP (and framing, referrer, sniffing headers) on every HTML page.

mod api_support;
mod raw_http;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use api_support::{ADMIN_TOKEN, Cfg, Service, StoreKind};
use dock_tests::fake_oauth::{FakeProvider, Kind};
use dock_tests::{Host, RedisServer, artifacts};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const T: Duration = Duration::from_secs(20);

both_stores!(
    isolation_matrix,
    revoked_key_ends_its_waits_within_a_heartbeat,
    flow_start_flood_is_bounded
);

/// One request and its answer, kept for the scans at the end.
#[derive(Debug, Clone)]
struct Exchange {
    label: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Sends requests and keeps every answer.
struct Recorder {
    http: reqwest::Client,
    seen: Mutex<Vec<Exchange>>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            seen: Mutex::default(),
        }
    }

    /// Sends and records; reads the whole body (not for streams that stay open).
    async fn call(&self, label: &str, req: reqwest::RequestBuilder) -> Result<Exchange> {
        let resp = req.send().await.with_context(|| label.to_owned())?;
        let status = resp.status().as_u16();
        let headers = headers_of(resp.headers());
        let body = tokio::time::timeout(T, resp.text())
            .await
            .with_context(|| format!("{label}: body did not end"))??;
        let ex = Exchange {
            label: label.to_owned(),
            status,
            headers,
            body,
        };
        self.seen.lock().unwrap().push(ex.clone());
        Ok(ex)
    }

    /// Records an exchange made some other way (a stream, raw TCP).
    fn record(&self, ex: Exchange) {
        self.seen.lock().unwrap().push(ex);
    }

    fn all(&self) -> Vec<Exchange> {
        self.seen.lock().unwrap().clone()
    }
}

fn headers_of(h: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }
}

/// `key` with its last character replaced by a different one.
fn last_char_changed(key: &str) -> String {
    let (head, last) = key.split_at(key.len() - 1);
    format!("{head}{}", if last == "x" { "y" } else { "x" })
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every answer carries the headers its kind needs: JSON and SSE answers
/// `Cache-Control: no-store` and `nosniff`; HTML pages the strict CSP,
/// framing, referrer and cache headers; redirects `no-store` and only to
/// `allowed_redirects` origins.
fn check_headers(all: &[Exchange], allowed_redirects: &[&str]) -> Result<usize> {
    let mut checked = 0;
    for ex in all {
        let ct = ex.header("content-type").unwrap_or("");
        let what = format!("{} ({} {ct})", ex.label, ex.status);
        if (300..400).contains(&ex.status) {
            let loc = ex.header("location").unwrap_or("");
            ensure!(
                allowed_redirects
                    .iter()
                    .any(|o| loc.starts_with(&format!("{o}/"))),
                "{what}: redirect to {loc:?}"
            );
            ensure!(
                ex.header("cache-control") == Some("no-store"),
                "{what}: cache-control"
            );
        } else if ct.starts_with("application/json") || ct.starts_with("text/event-stream") {
            ensure!(
                ex.header("cache-control") == Some("no-store"),
                "{what}: cache-control"
            );
            ensure!(
                ex.header("x-content-type-options") == Some("nosniff"),
                "{what}: nosniff"
            );
        } else if ct.starts_with("text/html") {
            let csp = ex.header("content-security-policy").unwrap_or("");
            for part in [
                "default-src 'none'",
                "frame-ancestors 'none'",
                "base-uri 'none'",
                "form-action 'self'",
            ] {
                ensure!(csp.contains(part), "{what}: CSP lacks {part}: {csp}");
            }
            ensure!(!csp.contains("script-src"), "{what}: CSP allows scripts");
            ensure!(!ex.body.contains("<script"), "{what}: a script in a page");
            ensure!(ex.header("x-frame-options") == Some("DENY"), "{what}: XFO");
            ensure!(
                ex.header("referrer-policy") == Some("no-referrer"),
                "{what}: referrer-policy"
            );
            ensure!(
                ex.header("cache-control") == Some("no-store"),
                "{what}: cache-control"
            );
        } else if ex.label.starts_with("healthz") && ex.status == 200 {
            // Liveness answers `text/plain`-ish or JSON; nothing to protect.
        } else {
            bail!("{what}: an answer of unexpected type");
        }
        checked += 1;
    }
    Ok(checked)
}

/// Every value in Redis as text: SCAN every key, TYPE it, read it by type.
fn dump_redis(redis: &RedisServer) -> Result<(usize, String)> {
    let keys = redis.cli(&["--scan"])?;
    let mut out = String::new();
    let mut n = 0;
    for k in keys.lines().filter(|l| !l.is_empty()) {
        n += 1;
        out.push_str(k);
        out.push('\n');
        let ty = redis.cli(&["TYPE", k])?;
        let value = match ty.as_str() {
            "string" => redis.cli(&["GET", k])?,
            "hash" => redis.cli(&["HGETALL", k])?,
            "set" => redis.cli(&["SMEMBERS", k])?,
            "zset" => redis.cli(&["ZRANGE", k, "0", "-1", "WITHSCORES"])?,
            "list" => redis.cli(&["LRANGE", k, "0", "-1"])?,
            "stream" => redis.cli(&["XRANGE", k, "-", "+"])?,
            "none" => String::new(), // expired between SCAN and TYPE
            other => bail!("Redis key {k} of unexpected type {other}"),
        };
        out.push_str(&value);
        out.push('\n');
    }
    Ok((n, out))
}

/// The secrets, and the forms in which a leak would show: whole, without the
/// `dock_` prefix, and (for the admin token) base64 as in Basic auth.
fn secret_forms(secrets: &[&str]) -> Vec<String> {
    use base64::Engine as _;
    let mut forms = Vec::new();
    for s in secrets {
        forms.push((*s).to_owned());
        if let Some(rest) = s.strip_prefix("dock_") {
            forms.push(rest.to_owned());
        }
        forms.push(base64::engine::general_purpose::STANDARD.encode(s));
    }
    forms
}

fn assert_no_secret(place: &str, text: &str, forms: &[String]) -> Result<()> {
    for f in forms {
        ensure!(
            !text.contains(f.as_str()),
            "a secret ({}…) appears in {place}",
            &f[..8.min(f.len())]
        );
    }
    Ok(())
}

async fn isolation_matrix(cfg: Cfg) -> Result<()> {
    let started = Instant::now();
    let svc = Service::start(cfg, &[]).await?;
    let rec = Recorder::new();
    let url = |p: &str| svc.url(p);

    // Two tenants; B also has a second key that gets revoked.
    let key_a = svc.tenant("pid-a").await?;
    let key_b = svc.tenant("pid-b").await?;
    let issued = rec
        .call(
            "issue-key: B's second key",
            rec.http
                .post(url("/api/v1/admin/pids/pid-b/keys"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({})),
        )
        .await?;
    let key_b2 = issued.json()["data"]["key"]
        .as_str()
        .context("key")?
        .to_owned();
    let key_b2_id = issued.json()["data"]["keyId"]
        .as_str()
        .context("keyId")?
        .to_owned();
    let revoked = rec
        .call(
            "revoke B's second key",
            rec.http
                .delete(url(&format!("/api/v1/admin/keys/{key_b2_id}")))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await?;
    ensure!(revoked.status == 200, "revoke: {}", revoked.body);

    // B's data: a pending session, a completed one, links only B has.
    let b_client = "b-client-7f3e";
    let (s, b_created) = svc
        .create(
            &key_b,
            json!({"pid": "pid-b", "clientId": b_client, "guildId": "b-guild-91"}),
        )
        .await?;
    ensure!(s == 200, "{b_created}");
    let sid_b = b_created["data"]["sid"].as_str().context("sid")?.to_owned();
    let sid_bc = svc.create_sid(&key_b, "pid-b", "b-client-done").await?;
    ensure!(svc.complete(&sid_bc, "2718281828", "3141592653").await?.0 == 200);
    let sid_b3 = svc.create_sid(&key_b, "pid-b", "b-client-three").await?;
    ensure!(svc.complete(&sid_b3, "1618033988", "1414213562").await?.0 == 200);
    // A's own data: the same Discord user linked to another Roblox account.
    let sid_a = svc.create_sid(&key_a, "pid-a", "a-client").await?;
    ensure!(svc.complete(&sid_a, "2718281828", "1000000001").await?.0 == 200);

    let b_markers = [
        sid_b.as_str(),
        sid_bc.as_str(),
        sid_b3.as_str(),
        b_client,
        "b-client-done",
        "b-guild-91",
        "3141592653",
        "1414213562",
        "App pid-b",
    ];

    // --- Every tenant endpoint × A's key, aimed at B ------------------------------
    let s = |sid: &str, rest: &str| url(&format!("/api/v1/verify/session/{sid}{rest}"));
    let get = |u: String| rec.http.get(u).bearer_auth(&key_a);
    type Case<'a> = (&'a str, reqwest::RequestBuilder, u16, &'a str);
    let matrix: Vec<Case> = vec![
        (
            "create in B's PID, B's clientId (reuse)",
            rec.http
                .post(url("/api/v1/verify/session"))
                .bearer_auth(&key_a)
                .json(&json!({"pid": "pid-b", "clientId": b_client, "guildId": "b-guild-91"})),
            404,
            "pid_not_found",
        ),
        (
            "create in B's PID, new clientId",
            rec.http
                .post(url("/api/v1/verify/session"))
                .bearer_auth(&key_a)
                .json(&json!({"pid": "pid-b", "clientId": "fresh"})),
            404,
            "pid_not_found",
        ),
        (
            "get B's pending session",
            get(s(&sid_b, "")),
            404,
            "session_not_found",
        ),
        (
            "get B's completed session",
            get(s(&sid_bc, "")),
            404,
            "session_not_found",
        ),
        (
            "long-poll B's pending session",
            get(s(&sid_b, "?wait=5")),
            404,
            "session_not_found",
        ),
        (
            "long-poll B's completed session",
            get(s(&sid_bc, "?wait=5")),
            404,
            "session_not_found",
        ),
        (
            "stream B's pending session",
            get(s(&sid_b, "/stream")),
            404,
            "session_not_found",
        ),
        (
            "stream B's session resuming with Last-Event-ID",
            get(s(&sid_b, "/stream")).header("last-event-id", "1"),
            404,
            "session_not_found",
        ),
        (
            "stream B's completed session with ?lastEventId",
            get(s(&sid_bc, "/stream?lastEventId=1")),
            404,
            "session_not_found",
        ),
        (
            "cancel B's pending session",
            rec.http.delete(s(&sid_b, "")).bearer_auth(&key_a),
            404,
            "session_not_found",
        ),
        (
            "cancel B's completed session",
            rec.http.delete(s(&sid_bc, "")).bearer_auth(&key_a),
            404,
            "session_not_found",
        ),
        (
            "discord-to-roblox of a Discord user only B linked",
            get(url("/api/v1/public/discord-to-roblox?discordId=1618033988")),
            404,
            "link_not_found",
        ),
        (
            "roblox-to-discord of a Roblox user only B linked",
            get(url("/api/v1/public/roblox-to-discord?robloxId=3141592653")),
            404,
            "link_not_found",
        ),
        (
            "roblox-to-discord of B's other Roblox user",
            get(url("/api/v1/public/roblox-to-discord?robloxId=1414213562")),
            404,
            "link_not_found",
        ),
    ];
    let mut tenant_cases = 0;
    for (label, req, status, code) in matrix {
        let t = Instant::now();
        let ex = rec.call(&format!("A→B: {label}"), req).await?;
        ensure!(
            (ex.status, ex.code().as_deref()) == (status, Some(code)),
            "{label}: {} {}",
            ex.status,
            ex.body
        );
        ensure!(
            t.elapsed() < Duration::from_secs(2),
            "{label}: took {:?} (a foreign session must not be waited on)",
            t.elapsed()
        );
        for m in b_markers {
            ensure!(
                !ex.body.contains(m),
                "{label}: B's {m:?} in A's answer {}",
                ex.body
            );
        }
        tenant_cases += 1;
    }
    // A's lookup of the Discord user both PIDs linked gives A's link only.
    let ex = rec
        .call(
            "A's own lookup of a shared Discord user",
            get(url("/api/v1/public/discord-to-roblox?discordId=2718281828")),
        )
        .await?;
    ensure!(
        ex.status == 200 && ex.json()["data"]["robloxId"] == "1000000001",
        "{}",
        ex.body
    );
    for m in b_markers {
        ensure!(!ex.body.contains(m), "B's {m:?} in A's lookup");
    }
    tenant_cases += 1;
    // The verify page does not show B's session under A's PID.
    let ex = rec
        .call(
            "verify page: B's sid under A's PID",
            rec.http.get(url(&format!(
                "/v1/api/verify/discord?pid=pid-a&sid={sid_b}"
            ))),
        )
        .await?;
    ensure!(ex.status == 404, "verify page: {}", ex.status);
    for m in b_markers {
        ensure!(!ex.body.contains(m), "B's {m:?} on the verify page");
    }
    tenant_cases += 1;

    // --- Tenant endpoints × credentials that are not a live key ---------------------
    let tenant_endpoints: Vec<(&str, reqwest::Method, String)> = vec![
        (
            "create",
            reqwest::Method::POST,
            url("/api/v1/verify/session"),
        ),
        ("get", reqwest::Method::GET, s(&sid_b, "")),
        ("long-poll", reqwest::Method::GET, s(&sid_b, "?wait=5")),
        ("stream", reqwest::Method::GET, s(&sid_b, "/stream")),
        ("cancel", reqwest::Method::DELETE, s(&sid_b, "")),
        (
            "discord-to-roblox",
            reqwest::Method::GET,
            url("/api/v1/public/discord-to-roblox?discordId=2718281828"),
        ),
        (
            "roblox-to-discord",
            reqwest::Method::GET,
            url("/api/v1/public/roblox-to-discord?robloxId=3141592653"),
        ),
    ];
    let bad_tenant_creds: Vec<(&str, Option<String>)> = vec![
        ("no Authorization", None),
        (
            "the admin token as a key",
            Some(format!("Bearer {ADMIN_TOKEN}")),
        ),
        ("B's revoked key", Some(format!("Bearer {key_b2}"))),
        (
            "B's key, last character changed",
            Some(format!("Bearer {}", last_char_changed(&key_b))),
        ),
        (
            "B's key without its prefix",
            Some(format!("Bearer {}", &key_b[5..])),
        ),
        ("B's key as Basic", Some(format!("Basic {key_b}"))),
        (
            "B's key upper-cased",
            Some(format!("Bearer {}", key_b.to_uppercase())),
        ),
    ];
    let mut cred_cases = 0;
    for (ep, method, u) in &tenant_endpoints {
        for (cred, value) in &bad_tenant_creds {
            let mut r = rec.http.request(method.clone(), u.clone());
            if let Some(v) = value {
                r = r.header("authorization", v);
            }
            if *method == reqwest::Method::POST {
                r = r.json(&json!({"pid": "pid-b", "clientId": "x"}));
            }
            let ex = rec.call(&format!("{ep} with {cred}"), r).await?;
            ensure!(
                (ex.status, ex.code().as_deref()) == (401, Some("unauthorized")),
                "{ep} with {cred}: {} {}",
                ex.status,
                ex.body
            );
            ensure!(
                ex.header("www-authenticate") == Some("Bearer"),
                "{ep} with {cred}: WWW-Authenticate"
            );
            cred_cases += 1;
        }
    }

    // --- Admin endpoints × anything but the admin token ------------------------------
    let admin_endpoints: Vec<(&str, reqwest::Method, String, Value)> = vec![
        (
            "create PID",
            reqwest::Method::POST,
            url("/api/v1/admin/pids"),
            json!({"pid": "pid-c", "name": "C"}),
        ),
        (
            "issue a key for B",
            reqwest::Method::POST,
            url("/api/v1/admin/pids/pid-b/keys"),
            json!({}),
        ),
        (
            "revoke B's key",
            reqwest::Method::DELETE,
            url(&format!("/api/v1/admin/keys/{key_b2_id}")),
            Value::Null,
        ),
        (
            "complete B's session",
            reqwest::Method::POST,
            url(&format!("/api/v1/admin/sessions/{sid_b}/complete")),
            json!({"discordId": "1", "robloxId": "2"}),
        ),
        (
            "read the stats",
            reqwest::Method::GET,
            url("/api/v1/admin/stats"),
            Value::Null,
        ),
    ];
    let bad_admin_creds: Vec<(&str, Option<String>)> = vec![
        ("no Authorization", None),
        ("A's API key", Some(format!("Bearer {key_a}"))),
        ("B's API key", Some(format!("Bearer {key_b}"))),
        (
            "the token plus one character",
            Some(format!("Bearer {ADMIN_TOKEN}x")),
        ),
        (
            "the token minus its last character",
            Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        ),
        (
            "the token upper-cased",
            Some(format!("Bearer {}", ADMIN_TOKEN.to_uppercase())),
        ),
        ("the token as Basic", Some(format!("Basic {ADMIN_TOKEN}"))),
        ("an empty bearer", Some("Bearer ".to_owned())),
        ("the token without a scheme", Some(ADMIN_TOKEN.to_owned())),
    ];
    let mut admin_cases = 0;
    for (ep, method, u, body) in &admin_endpoints {
        for (cred, value) in &bad_admin_creds {
            let mut r = rec.http.request(method.clone(), u.clone());
            if let Some(v) = value {
                r = r.header("authorization", v);
            }
            if !body.is_null() {
                r = r.json(body);
            }
            let ex = rec.call(&format!("admin {ep} with {cred}"), r).await?;
            ensure!(
                (ex.status, ex.code().as_deref()) == (401, Some("unauthorized")),
                "admin {ep} with {cred}: {} {}",
                ex.status,
                ex.body
            );
            admin_cases += 1;
        }
        // The token in the query string is not a credential either.
        let mut r = rec.http.request(
            method.clone(),
            format!("{u}?token={ADMIN_TOKEN}&access_token={ADMIN_TOKEN}"),
        );
        if !body.is_null() {
            r = r.json(body);
        }
        let ex = rec
            .call(&format!("admin {ep} with the token in the query"), r)
            .await?;
        ensure!(
            ex.status == 401,
            "admin {ep}, token in query: {}",
            ex.status
        );
        admin_cases += 1;
    }

    // The operator's own stats answer is scanned for secrets with the rest.
    let ex = rec
        .call(
            "admin stats with the token",
            rec.http
                .get(url("/api/v1/admin/stats"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await?;
    ensure!(ex.status == 200, "stats: {} {}", ex.status, ex.body);

    // --- Nothing of B changed --------------------------------------------------------
    let (st, body) = svc.get(&key_b, &sid_b, "").await?;
    ensure!(
        st == 200 && body["data"]["status"] == "pending" && body["data"]["result"].is_null(),
        "B's session after the matrix: {body}"
    );
    let (st, body) = svc.get(&key_b, &sid_bc, "").await?;
    ensure!(
        st == 200 && body["data"]["result"]["robloxId"] == "3141592653",
        "B's completed session after the matrix: {body}"
    );
    let mut stream = svc.stream(&key_b, &sid_b, None).await?;
    ensure!(stream.status == 200, "B's stream: {}", stream.status);
    ensure!(stream.expect(T).await?.event == "pending");
    drop(stream);
    let (st, _) = svc
        .admin_post("/api/v1/admin/pids", json!({"pid": "pid-c", "name": "C"}))
        .await?;
    ensure!(st == 200, "pid-c was created by a refused request: {st}");
    let (st, body) = svc
        .create(
            &key_b,
            json!({"pid": "pid-b", "clientId": b_client, "guildId": "b-guild-91"}),
        )
        .await?;
    ensure!(
        st == 200
            && body["data"]["sid"] == sid_b.as_str()
            && body["data"]["reusedExisting"] == true,
        "B's reuse after the matrix: {body}"
    );
    // A stream that A opens on B's session by mistake is no stream; B's own works (above).

    // --- Secrets: response bodies, logs, Redis -----------------------------------------
    let all = rec.all();
    let forms = secret_forms(&[ADMIN_TOKEN, &key_a, &key_b, &key_b2]);
    for ex in &all {
        if ex.label.starts_with("issue-key") {
            // The one answer that shows a key: only its own, never the token.
            assert_no_secret(
                &ex.label,
                &ex.body,
                &secret_forms(&[ADMIN_TOKEN, &key_a, &key_b]),
            )?;
            continue;
        }
        assert_no_secret(&format!("the answer to {}", ex.label), &ex.body, &forms)?;
        for (k, v) in &ex.headers {
            assert_no_secret(&format!("header {k} of {}", ex.label), v, &forms)?;
        }
    }
    let log = svc.hosts[0].output();
    assert_no_secret("the host's output", &log, &forms)?;
    ensure!(log.contains(r#""route":"#), "no request log lines to scan?");
    let mut redis_keys = 0;
    if let Some(redis) = &svc.redis {
        let (n, dump) = dump_redis(redis)?;
        redis_keys = n;
        // The dump is real: it holds B's session and the hash of B's key.
        ensure!(
            dump.contains(&sid_b) && dump.contains(&sha256_hex(&key_b)),
            "dump is incomplete"
        );
        assert_no_secret("Redis", &dump, &forms)?;
    }

    let headers_checked = check_headers(&all, &[])?;
    println!(
        "faults_security: store={:?} reuse={} tenant_x_foreign_key={tenant_cases} tenant_x_bad_credential={cred_cases} admin_x_bad_credential={admin_cases} requests_recorded={} headers_checked={headers_checked} redis_keys_scanned={redis_keys} elapsed={:.1}s",
        cfg.store,
        cfg.reuse,
        all.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Without `admin_token` the admin API does not exist: every admin route and
/// method is the generic 404, whatever the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_absent_without_admin_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = tokio::task::block_in_place(|| Host::start(&manifest, &["--sqlite-db", "memory"]))?;
    let rec = Recorder::new();
    let mut n = 0;
    for (method, path) in [
        ("POST", "/api/v1/admin/pids"),
        ("GET", "/api/v1/admin/pids"),
        ("POST", "/api/v1/admin/pids/pid-a/keys"),
        ("DELETE", "/api/v1/admin/keys/key_A1b2C3d4E5f6G7h8J9k0L1"),
        (
            "POST",
            "/api/v1/admin/sessions/vsn_A1b2C3d4E5f6G7h8J9k0L1/complete",
        ),
        ("GET", "/api/v1/admin/stats"),
        ("GET", "/api/v1/admin"),
        ("PUT", "/api/v1/admin/anything/at/all"),
    ] {
        for auth in [None, Some(""), Some("test-admin-token-0123456789")] {
            let mut r = rec
                .http
                .request(method.parse()?, host.url(path))
                .json(&json!({"pid": "pid-a", "name": "A"}));
            if let Some(a) = auth {
                r = r.bearer_auth(a);
            }
            let ex = rec.call(&format!("{method} {path}"), r).await?;
            ensure!(
                (ex.status, ex.code().as_deref()) == (404, Some("not_found")),
                "{method} {path}: {} {}",
                ex.status,
                ex.body
            );
            ensure!(
                ex.header("allow").is_none(),
                "{method} {path}: an Allow header"
            );
            n += 1;
        }
    }
    check_headers(&rec.all(), &[])?;
    println!("faults_security: admin_absent requests={n} all=404 not_found");
    Ok(())
}

/// The embedded store, on a file this time, holds no API key and no token:
/// the SQLite database (and its journal) is scanned byte for byte, as are the
/// host's output and the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_and_logs_hold_no_secret() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let db = dir.path().join("dock.db");
    let db_arg = db.to_string_lossy().into_owned();
    let token_var = format!("admin_token={ADMIN_TOKEN}");
    let host = tokio::task::block_in_place(|| {
        Host::start(
            &manifest,
            &[
                "--sqlite-db",
                &db_arg,
                "--log-level",
                "debug",
                "--variable",
                &token_var,
            ],
        )
    })?;
    let rec = Recorder::new();
    let admin_post = |path: &str, body: Value| {
        rec.http
            .post(host.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
    };
    rec.call(
        "create pid",
        admin_post("/api/v1/admin/pids", json!({"pid": "pid-a", "name": "A"})),
    )
    .await?;
    let issued = rec
        .call(
            "issue-key",
            admin_post("/api/v1/admin/pids/pid-a/keys", json!({})),
        )
        .await?;
    let key = issued.json()["data"]["key"]
        .as_str()
        .context("key")?
        .to_owned();
    let created = rec
        .call(
            "create",
            rec.http
                .post(host.url("/api/v1/verify/session"))
                .bearer_auth(&key)
                .json(&json!({"pid": "pid-a", "clientId": "u1"})),
        )
        .await?;
    let sid = created.json()["data"]["sid"]
        .as_str()
        .context("sid")?
        .to_owned();
    rec.call(
        "complete",
        admin_post(
            &format!("/api/v1/admin/sessions/{sid}/complete"),
            json!({"discordId": "1", "robloxId": "2"}),
        ),
    )
    .await?;
    // Credentials where they do not belong: logged paths and error answers.
    rec.call(
        "get",
        rec.http
            .get(host.url(&format!("/api/v1/verify/session/{sid}")))
            .bearer_auth(&key),
    )
    .await?;
    rec.call(
        "token as key",
        rec.http
            .get(host.url(&format!("/api/v1/verify/session/{sid}")))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await?;
    rec.call(
        "key as admin token",
        rec.http
            .post(host.url("/api/v1/admin/pids"))
            .bearer_auth(&key)
            .json(&json!({"pid": "pid-z", "name": "Z"})),
    )
    .await?;
    let forms = secret_forms(&[ADMIN_TOKEN, &key]);
    for ex in rec.all() {
        if ex.label != "issue-key" {
            assert_no_secret(&ex.label, &ex.body, &forms)?;
        }
    }
    // Every file of the database, raw bytes (SQLite stores text as UTF-8).
    let mut scanned = 0;
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("dock.db"))
        {
            all.extend(std::fs::read(&path)?);
            scanned += 1;
        }
    }
    let text = String::from_utf8_lossy(&all);
    ensure!(
        text.contains(&sid),
        "the database file does not hold the session?"
    );
    ensure!(
        text.contains(&sha256_hex(&key)),
        "the database does not hold the key's hash?"
    );
    assert_no_secret("the SQLite database", &text, &forms)?;
    assert_no_secret("the host's output", &host.output(), &forms)?;
    println!(
        "faults_security: sqlite files_scanned={scanned} bytes={} host_output_lines={}",
        all.len(),
        host.output().lines().count()
    );
    Ok(())
}

/// The admin token is compared in constant time: `auth::admin` compares it
/// only through `constant_time_eq`, which compares SHA-256 digests with
/// `subtle`'s `ct_eq` (so neither the content nor the length leaks by timing).
#[test]
fn admin_token_compare_is_constant_time_in_code() -> Result<()> {
    let root = artifacts::workspace_root();
    let auth = std::fs::read_to_string(root.join("spin-app/src/auth.rs"))?;
    let admin_fn = auth
        .split("pub fn admin(")
        .nth(1)
        .context("auth::admin not found")?;
    let admin_fn = admin_fn.split("\n}\n").next().unwrap_or(admin_fn);
    ensure!(
        admin_fn.contains("constant_time_eq(token, expected)"),
        "auth::admin does not use constant_time_eq:\n{admin_fn}"
    );
    for bad in [
        "== expected",
        "expected ==",
        ".eq(",
        "starts_with",
        "== *expected",
    ] {
        ensure!(!admin_fn.contains(bad), "auth::admin compares with {bad:?}");
    }
    let id = std::fs::read_to_string(root.join("core/src/id.rs"))?;
    let ct = id
        .split("pub fn constant_time_eq(")
        .nth(1)
        .context("constant_time_eq not found")?;
    let ct = ct.split("\n}\n").next().unwrap_or(ct);
    ensure!(
        ct.contains("subtle::ConstantTimeEq")
            && ct.contains("ct_eq")
            && ct.contains("Sha256::digest"),
        "constant_time_eq is not a digest compare with subtle:\n{ct}"
    );
    ensure!(!ct.contains("=="), "constant_time_eq uses ==");
    ensure!(
        dock_core::id::constant_time_eq(ADMIN_TOKEN, ADMIN_TOKEN)
            && !dock_core::id::constant_time_eq(ADMIN_TOKEN, &ADMIN_TOKEN[1..])
    );
    Ok(())
}

/// No open redirect in the flow: whatever `redirect`/`next`/`redirect_uri`
/// the query or form carries and whatever `Host`/`X-Forwarded-Host` says, the
/// only redirect goes to the configured Discord origin, with the redirect URI
/// built from `public_base_url`; every other answer is a page without
/// `Location`, and no page names the hostile host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_open_redirect_and_page_headers() -> Result<()> {
    const EVIL: &str = "evil.example";
    let discord = "http://127.0.0.1:9";
    let roblox = "http://127.0.0.2:9";
    let vars = [
        ("discord_oauth_base", discord),
        ("discord_client_id", "discord-client"),
        ("discord_client_secret", "discord-secret"),
        ("roblox_oauth_base", roblox),
        ("roblox_client_id", "roblox-client"),
        ("roblox_client_secret", "roblox-secret"),
    ];
    let svc = Service::start_public(StoreKind::Sqlite, &vars).await?;
    let base = svc.url("");
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let rec = Recorder::new();
    let hostile_query = format!(
        "redirect=https://{EVIL}/&next=//{EVIL}&redirect_uri=https://{EVIL}/cb&return_to=https://{EVIL}&continue=https:%2F%2F{EVIL}"
    );
    let hostile = |r: reqwest::RequestBuilder| {
        r.header("host", EVIL)
            .header("x-forwarded-host", EVIL)
            .header("x-forwarded-proto", "https")
            .header("forwarded", format!("host={EVIL};proto=https"))
            .header("referer", format!("https://{EVIL}/"))
    };

    // The verify page: a page, no redirect, nothing of the hostile host.
    for (label, r) in [
        (
            "verify page, hostile query",
            rec.http.get(format!(
                "{base}/v1/api/verify/discord?pid=pid-a&sid={sid}&{hostile_query}"
            )),
        ),
        (
            "verify page, hostile query and Host",
            hostile(rec.http.get(format!(
                "{base}/v1/api/verify/discord?pid=pid-a&sid={sid}&{hostile_query}"
            ))),
        ),
    ] {
        let ex = rec.call(label, r).await?;
        ensure!(
            ex.status == 200 && ex.header("location").is_none(),
            "{label}: {}",
            ex.status
        );
        ensure!(!ex.body.contains(EVIL), "{label}: the page names {EVIL}");
    }

    // Start: the only redirect, to Discord, redirect_uri from public_base_url.
    let mut starts = 0;
    for (label, hostile_headers) in [("start", false), ("start with hostile Host", true)] {
        let mut r = rec
            .http
            .post(format!(
                "{base}/v1/api/verify/discord/start?{hostile_query}"
            ))
            .form(&[
                ("pid", "pid-a"),
                ("sid", sid.as_str()),
                ("redirect", &format!("https://{EVIL}/")),
                ("next", &format!("//{EVIL}")),
                ("redirect_uri", &format!("https://{EVIL}/cb")),
            ]);
        if hostile_headers {
            r = hostile(r);
        }
        let ex = rec.call(label, r).await?;
        ensure!(ex.status == 303, "{label}: {} {}", ex.status, ex.body);
        let loc = ex.header("location").context("no Location")?;
        let loc_url = reqwest::Url::parse(loc)?;
        ensure!(
            loc.starts_with(&format!("{discord}/oauth2/authorize?")),
            "{label}: redirect to {loc}"
        );
        let params: Vec<(String, String)> = loc_url.query_pairs().into_owned().collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        ensure!(
            get("redirect_uri").as_deref()
                == Some(format!("{base}/v1/api/verify/discord/callback").as_str()),
            "{label}: redirect_uri {:?}",
            get("redirect_uri")
        );
        ensure!(!loc.contains(EVIL), "{label}: {EVIL} in {loc}");
        ensure!(
            ex.header("set-cookie")
                .is_some_and(|c| c.contains("HttpOnly") && c.contains("SameSite=Lax")),
            "{label}: flow cookie {:?}",
            ex.header("set-cookie")
        );
        starts += 1;
    }

    // Callbacks: pages, never a Location, whatever they are told.
    let mut callbacks = 0;
    for path in [
        "/v1/api/verify/discord/callback",
        "/v1/api/verify/roblox/callback",
    ] {
        for q in [
            format!("code=x&state={}&{hostile_query}", "A".repeat(43)),
            format!(
                "error=access_denied&state={}&{hostile_query}",
                "A".repeat(43)
            ),
            hostile_query.clone(),
        ] {
            for h in [false, true] {
                let mut r = rec.http.get(format!("{base}{path}?{q}"));
                if h {
                    r = hostile(r);
                }
                let label = format!("callback {path}?{}", &q[..20.min(q.len())]);
                let ex = rec.call(&label, r).await?;
                ensure!(
                    (400..500).contains(&ex.status) && ex.header("location").is_none(),
                    "{label}: {} {:?}",
                    ex.status,
                    ex.header("location")
                );
                ensure!(!ex.body.contains(EVIL), "{label}: the page names {EVIL}");
                callbacks += 1;
            }
        }
    }
    // Paths that look like protocol-relative or backslash redirects are plain 404s.
    for path in [
        format!("//{EVIL}/"),
        format!("/%2F%2F{EVIL}"),
        format!("/%5C{EVIL}"),
    ] {
        let ex = rec
            .call(
                &format!("path {path}"),
                rec.http.get(format!("{base}{path}")),
            )
            .await?;
        ensure!(
            ex.status == 404 && ex.header("location").is_none(),
            "path {path}: {}",
            ex.status
        );
    }
    // Every API answer kind for the header check: JSON ok and error, SSE, the
    // OpenAPI document, 405, 401.
    rec.call(
        "get",
        rec.http
            .get(format!("{base}/api/v1/verify/session/{sid}"))
            .bearer_auth(&key),
    )
    .await?;
    rec.call(
        "openapi",
        rec.http.get(format!("{base}/api/v1/openapi.json")),
    )
    .await?;
    rec.call("405", rec.http.put(format!("{base}/api/v1/verify/session")))
        .await?;
    rec.call(
        "401",
        rec.http.get(format!("{base}/api/v1/verify/session/{sid}")),
    )
    .await?;
    rec.call("readyz", rec.http.get(format!("{base}/readyz")))
        .await?;
    rec.call("healthz", rec.http.get(format!("{base}/healthz")))
        .await?;
    let resp = rec
        .http
        .get(format!("{base}/api/v1/verify/session/{sid}/stream"))
        .bearer_auth(&key)
        .send()
        .await?;
    rec.record(Exchange {
        label: "stream".into(),
        status: resp.status().as_u16(),
        headers: headers_of(resp.headers()),
        body: String::new(),
    });
    drop(resp);
    let all = rec.all();
    let checked = check_headers(&all, &[discord])?;
    let pages = all
        .iter()
        .filter(|e| {
            e.header("content-type")
                .is_some_and(|c| c.starts_with("text/html"))
        })
        .count();
    println!(
        "faults_security: redirects starts={starts} callbacks={callbacks} answers_checked={checked} html_pages={pages} (every redirect to {discord}, none to {EVIL})"
    );
    Ok(())
}

/// A `redis_url` carrying a password that `allowed_outbound_hosts` refuses
/// (its origin differs from `redis_origin`): the request fails as
/// unavailable, and neither the host's output nor the answer shows the
/// password — the host logs the refused address redacted, as its banner does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_redis_url_password_is_not_logged() -> Result<()> {
    const PASSWORD: &str = "s3cret-redis-pass-9f8e7d";
    let allowed = dock_tests::free_port();
    let other = dock_tests::free_port();
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let url = format!("redis_url=redis://default:{PASSWORD}@127.0.0.1:{other}");
    let origin = format!("redis_origin=redis://127.0.0.1:{allowed}");
    let host = tokio::task::block_in_place(|| {
        Host::start(&manifest, &["--variable", &url, "--variable", &origin])
    })?;
    let resp = reqwest::Client::new()
        .get(host.url("/readyz"))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.text().await?;
    ensure!(
        status == 503,
        "/readyz with a refused Redis: {status} {body}"
    );
    let forms = secret_forms(&[PASSWORD]);
    assert_no_secret("the /readyz answer", &body, &forms)?;
    // The refusal reached the log (dock-host's own line, redacted), so the
    // scan means something.
    let spin = dock_tests::Runtime::current().is_spin();
    dock_tests::wait_until_async(
        Duration::from_secs(10),
        "the refusal in the log",
        || async {
            let out = host.output();
            out.contains("not in allowed_outbound_hosts") || (spin && out.contains("readiness"))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", host.output()))?;
    assert_no_secret("the host's output", &host.output(), &forms)?;
    Ok(())
}

/// Waiter leases only ever extend the key's waiter set (`max_wait_seconds`
/// above the 30 s lease grace): a short long-poll among long ones must not
/// set the set's expiry to its own lease end, or the long ones' slots vanish
/// with it and the key can open more than `max_streams_per_key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_wait_does_not_cut_longer_leases() -> Result<()> {
    const MAX: usize = 4;
    let max = MAX.to_string();
    let svc = Service::start(
        StoreKind::Redis,
        &[("max_wait_seconds", "120"), ("max_streams_per_key", &max)],
    )
    .await?;
    let redis = svc.redis.as_ref().context("redis")?;
    let key = svc.tenant("pid-lease").await?;
    let sid = svc.create_sid(&key, "pid-lease", "u").await?;
    let mut long = Vec::new();
    for _ in 0..MAX - 1 {
        let req = svc
            .http
            .get(svc.url(&format!("/api/v1/verify/session/{sid}?wait=120")))
            .bearer_auth(&key);
        long.push(tokio::spawn(req.send()));
    }
    svc.wait_for_waiters(0, &sid, MAX - 1).await?;
    let set = redis
        .cli(&["--scan", "--pattern", "dock:*:w:*"])?
        .trim()
        .to_owned();
    ensure!(
        !set.is_empty() && !set.contains('\n'),
        "one waiter set expected: {set:?}"
    );
    let scores = |redis: &RedisServer| -> Result<Vec<i64>> {
        let out = redis.cli(&["ZRANGE", &set, "0", "-1", "WITHSCORES"])?;
        Ok(out
            .lines()
            .skip(1)
            .step_by(2)
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    };
    let short = tokio::spawn(
        svc.http
            .get(svc.url(&format!("/api/v1/verify/session/{sid}?wait=2")))
            .bearer_auth(&key)
            .send(),
    );
    let mut all = Vec::new();
    dock_tests::wait_until_async(T, "the short waiter's lease", || {
        all = scores(redis).unwrap_or_default();
        std::future::ready(all.len() == MAX)
    })
    .await?;
    let short_end = *all.iter().min().context("scores")?;
    let long_end = *all.iter().max().context("scores")?;
    let expiry: i64 = redis.cli(&["PEXPIRETIME", &set])?.trim().parse()?;
    ensure!(
        expiry >= long_end,
        "the waiter set expires at {expiry}, before the longest lease ({long_end}): a short wait cut it"
    );
    let resp = short.await??;
    ensure!(resp.status() == 200, "short wait: {}", resp.status());
    // Past the short lease (Redis' clock), the long leases still hold their slots.
    let redis_ms = |redis: &RedisServer| -> i64 {
        let t = redis.cli(&["TIME"]).unwrap_or_default();
        let mut it = t.lines().filter_map(|l| l.trim().parse::<i64>().ok());
        match (it.next(), it.next()) {
            (Some(s), Some(us)) => s * 1000 + us / 1000,
            _ => 0,
        }
    };
    dock_tests::wait_until_async(Duration::from_secs(60), "the short lease to lapse", || {
        std::future::ready(redis_ms(redis) > short_end + 200)
    })
    .await?;
    let first = svc.stream(&key, &sid, None).await?;
    ensure!(first.status == 200, "slot {MAX}: {}", first.status);
    let refused = svc.stream(&key, &sid, None).await?;
    ensure!(
        refused.status == 429,
        "stream {} of {MAX} allowed: the long leases were lost (status {})",
        MAX + 1,
        refused.status
    );
    drop((first, refused));
    for l in long {
        l.abort();
    }
    Ok(())
}

/// Both OAuth providers configured but unreachable: the flow runs up to the
/// first call to a provider.
const UNREACHABLE_PROVIDERS: [(&str, &str); 6] = [
    ("discord_oauth_base", "http://127.0.0.1:9"),
    ("discord_client_id", "discord-client"),
    ("discord_client_secret", "discord-secret"),
    ("roblox_oauth_base", "http://127.0.0.1:9"),
    ("roblox_client_id", "roblox-client"),
    ("roblox_client_secret", "roblox-secret"),
];

/// On HTTPS the flow cookie is `__Host-dock_flow` (`Secure`, `Path=/`, no
/// `Domain`), so a sibling subdomain or a plain-HTTP page cannot plant it; a
/// callback carrying only an unprefixed `dock_flow` with the right value is
/// refused, the prefixed one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_flow_cookie_is_host_prefixed() -> Result<()> {
    let mut vars = vec![("public_base_url", "https://dock.example.test")];
    vars.extend(UNREACHABLE_PROVIDERS);
    let svc = Service::start(StoreKind::Sqlite, &vars).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let rec = Recorder::new();
    let start = || async {
        let ex = rec
            .call(
                "start",
                rec.http
                    .post(svc.url("/v1/api/verify/discord/start"))
                    .form(&[("pid", "pid-a"), ("sid", sid.as_str())]),
            )
            .await?;
        ensure!(ex.status == 303, "start: {} {}", ex.status, ex.body);
        let cookie = ex.header("set-cookie").context("no Set-Cookie")?.to_owned();
        let loc = reqwest::Url::parse(ex.header("location").context("no Location")?)?;
        let state = loc
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .context("no state")?;
        anyhow::Ok((cookie, state))
    };
    let (cookie, state) = start().await?;
    ensure!(cookie.starts_with("__Host-dock_flow="), "{cookie}");
    ensure!(
        cookie.contains("; Path=/;") && cookie.contains("; Secure") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let value = cookie["__Host-dock_flow=".len()..]
        .split(';')
        .next()
        .unwrap_or("");
    let callback = |cookie: String, state: String| {
        rec.http
            .get(svc.url(&format!(
                "/v1/api/verify/discord/callback?code=c&state={state}"
            )))
            .header("cookie", cookie)
    };
    let planted = rec
        .call(
            "callback, unprefixed cookie",
            callback(format!("dock_flow={value}"), state),
        )
        .await?;
    ensure!(
        planted.status == 400 && planted.body.contains("Sign-in not accepted"),
        "an unprefixed cookie was accepted on HTTPS: {} {}",
        planted.status,
        planted.body
    );
    let (cookie, state) = start().await?;
    let value = cookie["__Host-dock_flow=".len()..]
        .split(';')
        .next()
        .unwrap_or("");
    let real = rec
        .call(
            "callback, prefixed cookie",
            callback(format!("__Host-dock_flow={value}"), state),
        )
        .await?;
    // Past the browser check, the code exchange with the (unreachable) fake
    // Discord fails: the provider-failure page, not a refusal.
    ensure!(
        real.status == 502 && real.body.contains("Sign-in failed"),
        "the prefixed cookie did not pass the browser check: {} {}",
        real.status,
        real.body
    );
    Ok(())
}

/// Revoking a key ends its open waits within one heartbeat interval (2 s
/// here): the stream with a `retry:` hint (its reconnect then gets 401), the
/// long-poll (`wait=25`) with 401. With Redis the revocation's notice wakes
/// them at once (a Redis stream renews its lease only once a minute, so
/// without the notice this bound fails); with SQLite the next renewal or key
/// check finds it.
async fn revoked_key_ends_its_waits_within_a_heartbeat(cfg: Cfg) -> Result<()> {
    const HEARTBEAT: Duration = Duration::from_secs(2);
    let svc = Service::start(cfg, &[("heartbeat_seconds", "2")]).await?;
    let keep = svc.tenant("pid-rev").await?;
    let (s, issued) = svc
        .admin_post("/api/v1/admin/pids/pid-rev/keys", json!({}))
        .await?;
    ensure!(s == 200, "issue: {s} {issued}");
    let key = issued["data"]["key"].as_str().context("key")?.to_owned();
    let key_id = issued["data"]["keyId"]
        .as_str()
        .context("keyId")?
        .to_owned();
    let sid = svc.create_sid(&key, "pid-rev", "u-rev").await?;

    let mut stream = svc.stream(&key, &sid, None).await?;
    ensure!(stream.status == 200, "stream: {}", stream.status);
    let first = stream.expect(Duration::from_secs(10)).await?;
    ensure!(first.event == "pending", "{first:?}");
    let poll = {
        let http = svc.http.clone();
        let url = svc.url(&format!("/api/v1/verify/session/{sid}?wait=25"));
        let key = key.clone();
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(key).send().await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await?;
            anyhow::Ok((status, body, Instant::now()))
        })
    };
    svc.wait_for_waiters(0, &sid, 2).await?;

    let revoked_at = Instant::now();
    let revoked = svc
        .http
        .delete(svc.url(&format!("/api/v1/admin/keys/{key_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    ensure!(revoked.status() == 200, "revoke: {}", revoked.status());

    // Within a heartbeat (plus one for the check in flight, plus slack).
    let bound = 2 * HEARTBEAT + Duration::from_secs(3);
    stream.expect_end(bound).await?;
    let stream_ended = revoked_at.elapsed();
    ensure!(
        stream.raw.contains("retry:"),
        "no retry hint: {:?}",
        stream.raw
    );
    let (status, body, answered) = tokio::time::timeout(bound, poll)
        .await
        .context("the long-poll was still waiting")???;
    ensure!(
        status == 401 && body["error"]["code"] == "unauthorized",
        "long-poll after revocation: {status} {body}"
    );
    let poll_ended = answered.duration_since(revoked_at);
    println!(
        "faults_security: {cfg:?}: key revoked; stream ended after {:.1}s, long-poll answered 401 after {:.1}s (heartbeat {HEARTBEAT:?})",
        stream_ended.as_secs_f64(),
        poll_ended.as_secs_f64()
    );
    let again = svc.stream(&key, &sid, None).await?;
    ensure!(
        again.status == 401,
        "reconnect with the revoked key: {}",
        again.status
    );
    // The PID's other key still waits as before.
    let (s, body) = svc.get(&keep, &sid, "").await?;
    ensure!(
        s == 200 && body["data"]["status"] == "pending",
        "{s} {body}"
    );
    Ok(())
}

/// The flow's variables with two fake providers on loopback.
fn flow_vars(discord: &FakeProvider, roblox: &FakeProvider) -> Vec<(&'static str, String)> {
    vec![
        ("discord_oauth_base", discord.origin()),
        ("discord_client_id", "discord-client".into()),
        ("discord_client_secret", "discord-secret".into()),
        ("roblox_oauth_base", roblox.origin()),
        ("roblox_client_id", "roblox-client".into()),
        ("roblox_client_secret", "roblox-secret".into()),
    ]
}

/// A browser's walk through the flow without a browser: the start form, the
/// fake provider's consent as `user`, the callback with the flow cookie.
struct FlowWalker<'a> {
    rec: &'a Recorder,
    svc: &'a Service,
}

impl FlowWalker<'_> {
    /// Posts the start form; the exchange, and (cookie, provider location) on a 303.
    async fn start(&self, sid: &str, extra: &[(&str, &str)]) -> Result<Exchange> {
        let mut r = self
            .rec
            .http
            .post(self.svc.url("/v1/api/verify/discord/start"))
            .form(&[("pid", "pid-a"), ("sid", sid)]);
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        self.rec.call("start", r).await
    }

    /// From a 303 to a provider: consents there as `user` and follows the
    /// provider's redirect to our callback with the flow cookie.
    async fn consent_and_return(
        &self,
        to_provider: &Exchange,
        cookie: &str,
        user: &str,
    ) -> Result<Exchange> {
        let loc = reqwest::Url::parse(to_provider.header("location").context("no Location")?)?;
        let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
        let get = |k: &str| {
            q.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let origin = loc.origin().ascii_serialization();
        let decided = self
            .rec
            .call(
                "consent",
                self.rec.http.get(format!("{origin}/fake/decide")).query(&[
                    ("redirect_uri", get("redirect_uri")),
                    ("state", get("state")),
                    ("code_challenge", get("code_challenge")),
                    ("nonce", get("nonce")),
                    ("user_id", user.to_owned()),
                    ("decision", "allow".to_owned()),
                ]),
            )
            .await?;
        let back = decided
            .header("location")
            .context("the provider did not redirect")?;
        self.rec
            .call("callback", self.rec.http.get(back).header("cookie", cookie))
            .await
    }
}

fn flow_cookie(ex: &Exchange) -> Result<String> {
    let c = ex.header("set-cookie").context("no Set-Cookie")?;
    Ok(c.split(';').next().unwrap_or("").to_owned())
}

/// Binding a session to its user: `expectedDiscordId` (validated, part of the
/// reuse identity, enforced at the Discord callback with the session left
/// pending), `displayLabel` (escaped on the verify page), and the start form
/// refusing cross-site posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_bind_to_the_expected_discord_account() -> Result<()> {
    let discord =
        FakeProvider::start(Kind::Discord, "discord-client", "discord-secret", "111").await?;
    let roblox =
        FakeProvider::start(Kind::Roblox, "roblox-client", "roblox-secret", "1001").await?;
    let owned = flow_vars(&discord, &roblox);
    let vars: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let svc = Service::start_public(StoreKind::Sqlite, &vars).await?;
    let key = svc.tenant("pid-a").await?;

    // Validation: digits only.
    let (s, body) = svc
        .create(
            &key,
            json!({"pid": "pid-a", "clientId": "u", "expectedDiscordId": "12ab"}),
        )
        .await?;
    ensure!(
        s == 400 && body.to_string().contains("expectedDiscordId"),
        "{s} {body}"
    );

    let bound = json!({"pid": "pid-a", "clientId": "u", "expectedDiscordId": "111", "displayLabel": "<b>Ann</b>"});
    let (s, created) = svc.create(&key, bound.clone()).await?;
    ensure!(
        s == 200 && created["data"]["reusedExisting"] == false,
        "{s} {created}"
    );
    let sid = created["data"]["sid"].as_str().context("sid")?.to_owned();
    let (s, view) = svc.get(&key, &sid, "").await?;
    ensure!(
        s == 200
            && view["data"]["expectedDiscordId"] == "111"
            && view["data"]["displayLabel"] == "<b>Ann</b>",
        "{view}"
    );
    // Reuse identity: the same expected account reuses; another, or none, does not.
    let (_, again) = svc.create(&key, bound).await?;
    ensure!(
        again["data"]["sid"] == sid.as_str() && again["data"]["reusedExisting"] == true,
        "{again}"
    );
    let (_, other) = svc
        .create(
            &key,
            json!({"pid": "pid-a", "clientId": "u", "expectedDiscordId": "222"}),
        )
        .await?;
    let (_, unbound) = svc
        .create(&key, json!({"pid": "pid-a", "clientId": "u"}))
        .await?;
    ensure!(
        other["data"]["reusedExisting"] == false
            && unbound["data"]["reusedExisting"] == false
            && other["data"]["sid"] != sid.as_str()
            && unbound["data"]["sid"] != other["data"]["sid"],
        "{other} {unbound}"
    );
    let (_, plain) = svc
        .get(&key, unbound["data"]["sid"].as_str().context("sid")?, "")
        .await?;
    ensure!(
        plain["data"].get("expectedDiscordId").is_none()
            && plain["data"].get("displayLabel").is_none(),
        "fields absent when not given: {plain}"
    );

    let rec = Recorder::new();
    let page = rec
        .call(
            "verify page",
            rec.http
                .get(svc.url("/v1/api/verify/discord"))
                .query(&[("pid", "pid-a"), ("sid", sid.as_str())]),
        )
        .await?;
    ensure!(
        page.status == 200
            && page
                .body
                .contains("This verification is for <strong>&lt;b&gt;Ann&lt;/b&gt;</strong>"),
        "{}",
        page.body
    );

    // Cross-site form posts are refused; our own page's post goes on.
    let walk = FlowWalker {
        rec: &rec,
        svc: &svc,
    };
    for (label, headers) in [
        (
            "Sec-Fetch-Site: cross-site",
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "Sec-Fetch-Site: same-site",
            vec![("sec-fetch-site", "same-site")],
        ),
        ("foreign Origin", vec![("origin", "https://evil.example")]),
        ("Origin: null", vec![("origin", "null")]),
    ] {
        let ex = walk.start(&sid, &headers).await?;
        ensure!(
            ex.status == 403
                && ex.header("set-cookie").is_none()
                && ex.body.contains("can only be started from its own page"),
            "{label}: {} {}",
            ex.status,
            ex.body
        );
    }
    let own_origin = svc.url("");
    let own_origin = own_origin.trim_end_matches('/');

    // The wrong Discord account is refused and the session stays pending.
    let started = walk
        .start(&sid, &[("sec-fetch-site", "same-origin")])
        .await?;
    ensure!(
        started.status == 303,
        "start: {} {}",
        started.status,
        started.body
    );
    let cookie = flow_cookie(&started)?;
    let wrong = walk.consent_and_return(&started, &cookie, "999").await?;
    ensure!(
        wrong.status == 403 && wrong.body.contains("Wrong Discord account"),
        "{} {}",
        wrong.status,
        wrong.body
    );
    let (_, view) = svc.get(&key, &sid, "").await?;
    ensure!(view["data"]["status"] == "pending", "{view}");

    // The expected account completes it.
    let started = walk.start(&sid, &[("origin", own_origin)]).await?;
    ensure!(
        started.status == 303,
        "start: {} {}",
        started.status,
        started.body
    );
    let cookie = flow_cookie(&started)?;
    let to_roblox = walk.consent_and_return(&started, &cookie, "111").await?;
    ensure!(
        to_roblox.status == 303,
        "discord callback: {} {}",
        to_roblox.status,
        to_roblox.body
    );
    let done = walk.consent_and_return(&to_roblox, &cookie, "1001").await?;
    ensure!(
        done.status == 200 && done.body.contains("verified"),
        "{} {}",
        done.status,
        done.body
    );
    let (_, view) = svc.get(&key, &sid, "").await?;
    ensure!(
        view["data"]["status"] == "completed" && view["data"]["result"]["discordId"] == "111",
        "{view}"
    );
    Ok(())
}

/// A flood of flow starts stays bounded: each start replaces the session's
/// live flow (the earlier state stops working), a session refuses starts
/// past `flow_starts_per_session` with a 429 page, and the store holds one
/// flow record per session however many starts came.
async fn flow_start_flood_is_bounded(cfg: Cfg) -> Result<()> {
    const SESSIONS: usize = 20;
    const LIMIT: usize = 5;
    const FLOOD: usize = 8;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("flows.db");
    let db_arg = db.display().to_string();
    let limit = LIMIT.to_string();
    let svc = Service::start_with_host_args(
        cfg,
        &["--sqlite-db", &db_arg],
        &[
            UNREACHABLE_PROVIDERS.as_slice(),
            &[
                ("flow_starts_per_session", &limit),
                ("flow_requests_per_minute", "0"),
            ],
        ]
        .concat(),
    )
    .await?;
    let key = svc.tenant("pid-a").await?;
    let rec = Recorder::new();
    let walk = FlowWalker {
        rec: &rec,
        svc: &svc,
    };
    let state_of = |ex: &Exchange| -> Result<String> {
        let loc = reqwest::Url::parse(ex.header("location").context("no Location")?)?;
        loc.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .context("no state")
    };
    let mut refused = 0;
    for i in 0..SESSIONS {
        let sid = svc.create_sid(&key, "pid-a", &format!("flood-{i}")).await?;
        let mut first: Option<(String, String)> = None;
        let mut last: Option<(String, String)> = None;
        for n in 0..FLOOD {
            let ex = walk.start(&sid, &[]).await?;
            if n < LIMIT {
                ensure!(
                    ex.status == 303,
                    "start {n} of {sid}: {} {}",
                    ex.status,
                    ex.body
                );
                last = Some((flow_cookie(&ex)?, state_of(&ex)?));
                if first.is_none() {
                    first = last.clone();
                }
            } else {
                ensure!(
                    ex.status == 429 && ex.body.contains("started too many times"),
                    "start {n} of {sid}: {} {}",
                    ex.status,
                    ex.body
                );
                refused += 1;
            }
        }
        if i == 0 {
            let callback = |label: &'static str, (cookie, state): (String, String)| {
                rec.call(
                    label,
                    rec.http
                        .get(svc.url("/v1/api/verify/discord/callback"))
                        .query(&[("code", "c"), ("state", state.as_str())])
                        .header("cookie", cookie),
                )
            };
            // The first start's state was replaced by the later ones.
            let stale = callback("stale state", first.context("no start")?).await?;
            ensure!(
                stale.status == 400 && stale.body.contains("already used or has expired"),
                "a replaced flow still works: {} {}",
                stale.status,
                stale.body
            );
            // The live one passes the store and browser checks; the code
            // exchange then fails at the unreachable provider.
            let live = callback("live state", last.context("no start")?).await?;
            ensure!(
                live.status == 502 && live.body.contains("Sign-in failed"),
                "the live flow was not found: {} {}",
                live.status,
                live.body
            );
        }
    }
    let records = match &svc.redis {
        Some(redis) => redis
            .cli(&["--scan", "--pattern", "dock:flow:*"])?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        None => {
            let conn = rusqlite::Connection::open(&db)?;
            let indexed: i64 = conn.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'dock_session_flows_expiry'",
                [],
                |r| r.get(0),
            )?;
            ensure!(indexed == 1, "no index on the flows' expiry");
            let n: i64 =
                conn.query_row("SELECT COUNT(*) FROM dock_session_flows", [], |r| r.get(0))?;
            n as usize
        }
    };
    println!(
        "faults_security: {cfg:?}: {} starts on {SESSIONS} sessions: {} accepted, {refused} refused (429), {records} flow records stored",
        SESSIONS * FLOOD,
        SESSIONS * LIMIT
    );
    ensure!(refused == SESSIONS * (FLOOD - LIMIT), "refused {refused}");
    ensure!(
        records == SESSIONS,
        "{records} flow records for {SESSIONS} sessions"
    );
    Ok(())
}

/// The public flow endpoints allow `flow_requests_per_minute` requests per
/// client address and minute: past it a 429 page with `Retry-After`, while
/// another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_requests_are_limited_per_client_address() -> Result<()> {
    const LIMIT: usize = 20;
    let limit = LIMIT.to_string();
    let svc = Service::start(
        StoreKind::Sqlite,
        &[
            UNREACHABLE_PROVIDERS.as_slice(),
            &[("flow_requests_per_minute", &limit)],
        ]
        .concat(),
    )
    .await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u").await?;
    let page = |client: &reqwest::Client| {
        client
            .get(svc.url("/v1/api/verify/discord"))
            .query(&[("pid", "pid-a"), ("sid", sid.as_str())])
            .send()
    };
    let minute = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() / 60)
            .unwrap_or(0)
    };
    // One minute's window: retried once if the burst straddles a boundary.
    let mut outcome = None;
    for _ in 0..2 {
        let began = minute();
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..LIMIT + 5 {
            let r = page(&svc.http).await?;
            if r.status() == 429 {
                retry_after = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap_or("").to_owned());
            }
            statuses.push(r.status().as_u16());
        }
        if minute() == began {
            outcome = Some((statuses, retry_after));
            break;
        }
        // Straddled a boundary: the next burst starts a fresh window.
    }
    let (statuses, retry_after) = outcome.context("two bursts straddled minute boundaries")?;
    let allowed = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    ensure!(
        allowed == LIMIT && limited == 5 && retry_after.is_some(),
        "statuses {statuses:?}, Retry-After {retry_after:?}"
    );
    let other = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()?;
    let r = page(&other).await?;
    ensure!(
        r.status() == 200,
        "127.0.0.2 was limited too: {}",
        r.status()
    );
    Ok(())
}
