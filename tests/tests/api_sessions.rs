//! The verification-sessions API end to end: dock-host serving the real
//! component from spin.toml, real HTTP, a real `redis-server` or the
//! embedded SQLite store. Every scenario runs on both stores.

mod api_support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use api_support::{Cfg, Service, StoreKind};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

both_stores!(
    spec_curl_call_returns_every_field,
    spec_sample_client_gets_completion,
    spec_sample_client_sees_expiry,
    long_poll_wakes_times_out_and_clamps,
    sse_resume_with_last_event_id,
    parallel_creates_yield_one_session,
    parallel_completions_yield_one_winner,
    tenants_are_isolated,
    cancel_and_its_event,
    link_dataset_and_lookups,
    quota_bucket,
    bad_input_gets_json_errors,
    stream_limits_heartbeats_and_max_duration,
);

fn is_iso_millis(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && dock_core::Timestamp::parse_iso8601(s).is_ok()
    })
}

/// The spec's curl call (same headers, same body) answers with every field of
/// the spec's response, with the right types.
async fn spec_curl_call_returns_every_field(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[("public_base_url", "https://verify.example.com")]).await?;
    let key = svc.tenant("pid-yourapp").await?;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--request", "POST", "--url", &svc.url("/api/v1/verify/session")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--header", "Content-Type: application/json"])
        .args(["--data", "{\n    \"pid\": \"pid-yourapp\",\n    \"clientId\": \"user_123\",\n    \"guildId\": \"optional\"\n  }"])
        .output()
        .await?;
    let body: Value = serde_json::from_slice(&out.stdout).context("curl output is JSON")?;
    assert_eq!(body["status"], 200, "{body}");
    let d = &body["data"];
    let sid = d["sid"].as_str().context("sid")?;
    assert!(dock_core::SessionId::parse(sid).is_ok(), "{sid}");
    assert_eq!(d["pid"], "pid-yourapp");
    assert_eq!(d["clientId"], "user_123");
    assert!(is_iso_millis(&d["expiresAt"]), "{}", d["expiresAt"]);
    assert_eq!(d["reusedExisting"], false);
    assert_eq!(
        d["verifyUrl"],
        format!("https://verify.example.com/v1/api/verify/discord?pid=pid-yourapp&sid={sid}")
    );
    assert!(is_iso_millis(&body["timestamp"]));
    assert!(body["version"].is_string());
    assert_eq!(body["verifyRequestsRemaining"], 1999);
    // Field order is the spec's.
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "status",
            "data",
            "timestamp",
            "version",
            "verifyRequestsRemaining"
        ]
    );
    let dkeys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        dkeys,
        [
            "sid",
            "pid",
            "clientId",
            "expiresAt",
            "reusedExisting",
            "verifyUrl"
        ]
    );
    // expiresAt is 5 minutes after the timestamp.
    let t0 = dock_core::Timestamp::parse_iso8601(body["timestamp"].as_str().unwrap())?;
    let exp = dock_core::Timestamp::parse_iso8601(d["expiresAt"].as_str().unwrap())?;
    assert_eq!(t0.millis_until(exp), 300_000);

    // The same call again reuses the session and counts against the bucket.
    let (s, again) = svc
        .create(
            &key,
            json!({"pid": "pid-yourapp", "clientId": "user_123", "guildId": "optional"}),
        )
        .await?;
    assert_eq!(s, 200);
    assert_eq!(again["data"]["sid"], sid);
    assert_eq!(again["data"]["reusedExisting"], true);
    assert_eq!(
        again["data"]["expiresAt"], d["expiresAt"],
        "reuse does not extend expiresAt"
    );
    assert_eq!(again["verifyRequestsRemaining"], 1998);
    // Another guild is another session.
    let (_, other) = svc
        .create(&key, json!({"pid": "pid-yourapp", "clientId": "user_123"}))
        .await?;
    assert_ne!(other["data"]["sid"], sid);
    assert_eq!(other["data"]["reusedExisting"], false);
    Ok(())
}

/// Runs the spec's sample Node client (unchanged but API_BASE) and returns its output lines.
async fn spec_client(
    svc: &Service,
    key: &str,
    pid: &str,
    client_id: &str,
) -> Result<tokio::process::Child> {
    let script = dock_tests::artifacts::workspace_root().join("tests/node/spec-client.mjs");
    tokio::process::Command::new("node")
        .arg(script)
        .args([pid, client_id])
        .env("DOCK_API_BASE", svc.url(""))
        .env("DOCK_API_KEY", key)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run node")
}

async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> Result<Value> {
    let line = tokio::time::timeout(T, lines.next_line())
        .await
        .context("node printed nothing")??
        .context("node ended")?;
    Ok(serde_json::from_str(&line)?)
}

async fn spec_sample_client_gets_completion(store: Cfg) -> Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-yourapp").await?;
    let mut child = spec_client(&svc, &key, "pid-yourapp", "user_123").await?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let created = next_line(&mut lines).await?;
    let sid = created["created"]["sid"]
        .as_str()
        .context("sid")?
        .to_owned();
    // The client is streaming now; complete the session and it must return the completed data.
    let (s, done) = svc.complete(&sid, "80351110224678912", "1").await?;
    assert_eq!(s, 200, "{done}");
    let result = next_line(&mut lines).await?;
    assert_eq!(result["result"], done["data"], "{result}");
    assert_eq!(result["result"]["status"], "completed");
    assert_eq!(result["result"]["result"]["discordId"], "80351110224678912");
    assert_eq!(result["result"]["result"]["robloxId"], "1");
    assert_eq!(result["result"]["result"]["linkChanged"], false);
    assert_eq!(result["result"]["result"]["previousRobloxId"], Value::Null);
    Ok(())
}

async fn spec_sample_client_sees_expiry(store: Cfg) -> Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let svc = Service::start(store, &[("session_ttl_seconds", "2")]).await?;
    let key = svc.tenant("pid-yourapp").await?;
    let mut child = spec_client(&svc, &key, "pid-yourapp", "user_123").await?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let created = next_line(&mut lines).await?;
    ensure!(created["created"]["sid"].is_string(), "{created}");
    let out = next_line(&mut lines).await?;
    assert_eq!(
        out["error"], "Verification session expired before completion",
        "{out}"
    );
    Ok(())
}

async fn long_poll_wakes_times_out_and_clamps(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[("max_wait_seconds", "2")]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    // Timeout: the pending view with 200, after the wait.
    let t = Instant::now();
    let (s, body) = svc.get(&key, &sid, "?wait=1").await?;
    assert_eq!(
        (s, body["data"]["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    assert_eq!(body["data"]["result"], Value::Null);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Over the max is clamped (to 2 s here), not refused and not honoured.
    let t = Instant::now();
    let (s, body) = svc.get(&key, &sid, "?wait=600").await?;
    assert_eq!((s, body["data"]["status"].as_str()), (200, Some("pending")));
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(1900) && e < Duration::from_secs(15),
        "{e:?}"
    );
    // Garbage is a 400.
    let (s, body) = svc.get(&key, &sid, "?wait=soon").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_wait"))
    );
    drop(svc);

    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let waiter = {
        let (http, url, key) = (
            svc.http.clone(),
            svc.url(&format!("/api/v1/verify/session/{sid}?wait=25")),
            key.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            let r = api_support::send(http.get(url).bearer_auth(key)).await;
            (r, t.elapsed())
        })
    };
    // Complete once the host has received the long-poll (it logs each request as it starts).
    svc.wait_for_waiters(0, &sid, 1).await?;
    let (s, _) = svc.complete(&sid, "1", "2").await?;
    assert_eq!(s, 200);
    let (r, elapsed) = waiter.await?;
    let (s, body) = r?;
    assert_eq!(
        (s, body["data"]["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    // Answered on completion, long before the 25 s deadline.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    Ok(())
}

async fn sse_resume_with_last_event_id(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let mut s = svc.stream(&key, &sid, None).await?;
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    let e = s.expect(T).await?;
    assert_eq!((e.event.as_str(), e.id.as_str()), ("pending", "1"));
    let view: Value = serde_json::from_str(&e.data)?;
    assert_eq!(view["status"], "pending");
    assert_eq!(view["sid"], sid);
    drop(s); // the client goes away
    let (st, _) = svc.complete(&sid, "10", "20").await?;
    assert_eq!(st, 200);
    // Reconnecting with the last id seen gets what it missed, and only that.
    let mut s = svc.stream(&key, &sid, Some("1")).await?;
    let e = s.expect(T).await?;
    assert_eq!(
        (e.event.as_str(), e.id.as_str()),
        ("complete", "2"),
        "{}",
        s.raw
    );
    let view: Value = serde_json::from_str(&e.data)?;
    assert_eq!(view["result"]["robloxId"], "20");
    s.expect_end(T).await?;
    // Browsers pass it as a query parameter; having seen everything, the stream just ends.
    let resp = svc
        .http
        .get(svc.url(&format!(
            "/api/v1/verify/session/{sid}/stream?lastEventId=2"
        )))
        .bearer_auth(&key)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await?, "");
    // A fresh client on a finished session gets the terminal event at once.
    let mut s = svc.stream(&key, &sid, None).await?;
    assert_eq!(s.expect(T).await?.event, "complete");
    s.expect_end(T).await?;
    Ok(())
}

async fn parallel_creates_yield_one_session(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (http, url, key) = (
            svc.http.clone(),
            svc.url("/api/v1/verify/session"),
            key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            api_support::send(
                http.post(url)
                    .bearer_auth(key)
                    .json(&json!({"pid": "pid-a", "clientId": "same-user"})),
            )
            .await
        }));
    }
    let mut sids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let (s, body) = t.await??;
        assert_eq!(s, 200, "{body}");
        sids.insert(body["data"]["sid"].as_str().unwrap().to_owned());
        if body["data"]["reusedExisting"] == false {
            fresh += 1;
        }
    }
    assert_eq!(sids.len(), 1, "{sids:?}");
    assert_eq!(fresh, 1, "exactly one create made the session");
    Ok(())
}

async fn parallel_completions_yield_one_winner(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, url) = (
            svc.http.clone(),
            svc.url(&format!("/api/v1/admin/sessions/{sid}/complete")),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"discordId": "555", "robloxId": (1000 + i).to_string()});
            api_support::send(
                http.post(url)
                    .bearer_auth(api_support::ADMIN_TOKEN)
                    .json(&body),
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (s, body) = t.await??;
        match s {
            200 => winners.push(
                body["data"]["result"]["robloxId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            409 => assert_eq!(body["error"]["code"], "completion_conflict", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (_, now) = svc.get(&key, &sid, "").await?;
    assert_eq!(now["data"]["result"]["robloxId"], winners[0].as_str());
    Ok(())
}

async fn tenants_are_isolated(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key_a = svc.tenant("pid-a").await?;
    let key_b = svc.tenant("pid-b").await?;
    let sid_b = svc.create_sid(&key_b, "pid-b", "u1").await?;
    // Every endpoint: B's session does not exist for A's key.
    let (s, body) = svc.get(&key_a, &sid_b, "").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let (s, _) = svc.get(&key_a, &sid_b, "?wait=1").await?;
    assert_eq!(s, 404);
    let st = svc.stream(&key_a, &sid_b, None).await?;
    assert_eq!(st.status, 404);
    let (s, _) = api_support::send(
        svc.http
            .delete(svc.url(&format!("/api/v1/verify/session/{sid_b}")))
            .bearer_auth(&key_a),
    )
    .await?;
    assert_eq!(s, 404);
    // A's key cannot create in B's PID.
    let (s, body) = svc
        .create(&key_a, json!({"pid": "pid-b", "clientId": "x"}))
        .await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("pid_not_found"))
    );
    // B's own key still sees it.
    let (s, _) = svc.get(&key_b, &sid_b, "").await?;
    assert_eq!(s, 200);
    // No key, a wrong key, a revoked key: 401.
    let (s, _) = api_support::send(
        svc.http
            .get(svc.url(&format!("/api/v1/verify/session/{sid_b}"))),
    )
    .await?;
    assert_eq!(s, 401);
    let (s, _) = svc.get("dock_not-a-real-key", &sid_b, "").await?;
    assert_eq!(s, 401);
    // One structured log line per request, by route template; no key in any log.
    let log = svc.hosts[0].output();
    assert!(
        log.contains(r#""route":"/api/v1/verify/session/:sid","status":404"#),
        "{log}"
    );
    // A request served for a key names the key's PID, never the key.
    assert!(
        log.lines().any(
            |l| l.contains(r#""route":"/api/v1/verify/session/:sid","status":200"#)
                && l.ends_with(r#""pid":"pid-b"}"#)
        ),
        "{log}"
    );
    assert!(
        !log.contains(&key_a) && !log.contains(&key_b),
        "an API key in the log"
    );
    // The store holds no plaintext key.
    if let Some(redis) = &svc.redis {
        let dump = redis.cli(&["--scan"])?;
        let mut all = dump.clone();
        for k in dump.lines().filter(|l| !l.is_empty()) {
            all.push_str(&redis.cli(&["DUMP", k]).unwrap_or_default());
        }
        assert!(
            !all.contains(&key_a) && !all.contains(&key_b),
            "plaintext key in Redis"
        );
        assert!(
            !all.contains(&key_a["dock_".len()..]),
            "plaintext key in Redis"
        );
    }
    Ok(())
}

async fn cancel_and_its_event(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let mut st = svc.stream(&key, &sid, None).await?;
    assert_eq!(st.expect(T).await?.event, "pending");
    let del = || {
        api_support::send(
            svc.http
                .delete(svc.url(&format!("/api/v1/verify/session/{sid}")))
                .bearer_auth(&key),
        )
    };
    let (s, body) = del().await?;
    assert_eq!(
        (s, body["data"]["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let e = st.expect(T).await?;
    assert_eq!((e.event.as_str(), e.id.as_str()), ("cancelled", "2"));
    st.expect_end(T).await?;
    let (s, body) = del().await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("session_cancelled"))
    );
    let (s, body) = svc.complete(&sid, "1", "2").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("session_cancelled"))
    );
    // A cancelled session is not reused.
    let (_, again) = svc
        .create(&key, json!({"pid": "pid-a", "clientId": "u1"}))
        .await?;
    assert_ne!(again["data"]["sid"], sid);
    Ok(())
}

async fn link_dataset_and_lookups(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let other = svc.tenant("pid-b").await?;
    let s1 = svc.create_sid(&key, "pid-a", "u1").await?;
    let (_, r1) = svc.complete(&s1, "777", "100").await?;
    assert_eq!(
        r1["data"]["result"],
        json!({"discordId": "777", "robloxId": "100", "linkChanged": false, "previousRobloxId": null})
    );
    // Idempotent for the same ids.
    let (s, again) = svc.complete(&s1, "777", "100").await?;
    assert_eq!((s, &again["data"]), (200, &r1["data"]));
    // Same Discord user, another Roblox account: linkChanged with the old id.
    let s2 = svc.create_sid(&key, "pid-a", "u2").await?;
    let (_, r2) = svc.complete(&s2, "777", "200").await?;
    assert_eq!(
        r2["data"]["result"],
        json!({"discordId": "777", "robloxId": "200", "linkChanged": true, "previousRobloxId": "100"})
    );
    // Same account again: no change.
    let s3 = svc.create_sid(&key, "pid-a", "u3").await?;
    let (_, r3) = svc.complete(&s3, "777", "200").await?;
    assert_eq!(r3["data"]["result"]["linkChanged"], false);
    // Another PID's dataset is separate.
    let s4 = svc.create_sid(&other, "pid-b", "u1").await?;
    let (_, r4) = svc.complete(&s4, "777", "300").await?;
    assert_eq!(r4["data"]["result"]["linkChanged"], false);

    let lookup = |k: &str, path: &str| {
        api_support::send(svc.http.get(svc.url(path)).bearer_auth(k.to_owned()))
    };
    let (s, body) = lookup(&key, "/api/v1/public/discord-to-roblox?discordId=777").await?;
    assert_eq!(
        (s, &body["data"]),
        (200, &json!({"discordId": "777", "robloxId": "200"}))
    );
    let (s, body) = lookup(&other, "/api/v1/public/discord-to-roblox?discordId=777").await?;
    assert_eq!((s, &body["data"]["robloxId"]), (200, &json!("300")));
    let (s, body) = lookup(&key, "/api/v1/public/roblox-to-discord?robloxId=200").await?;
    assert_eq!(
        (s, &body["data"]),
        (200, &json!({"robloxId": "200", "discordIds": ["777"]}))
    );
    let (s, body) = lookup(&key, "/api/v1/public/roblox-to-discord?robloxId=100").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("link_not_found"))
    );
    let (s, body) = lookup(&key, "/api/v1/public/discord-to-roblox?discordId=1").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("link_not_found"))
    );
    let (s, body) = lookup(&key, "/api/v1/public/discord-to-roblox?discordId=abc").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_field"))
    );
    Ok(())
}

async fn quota_bucket(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    svc.tenant("pid-a").await?;
    let key = svc
        .issue_key(
            "pid-a",
            json!({"quota": {"limit": 2, "windowSeconds": 3600}}),
        )
        .await?;
    let (_, b1) = svc
        .create(&key, json!({"pid": "pid-a", "clientId": "u1"}))
        .await?;
    assert_eq!(b1["verifyRequestsRemaining"], 1);
    let (_, b2) = svc
        .create(&key, json!({"pid": "pid-a", "clientId": "u2"}))
        .await?;
    assert_eq!(b2["verifyRequestsRemaining"], 0);
    let resp = svc
        .http
        .post(svc.url("/api/v1/verify/session"))
        .bearer_auth(&key)
        .json(&json!({"pid": "pid-a", "clientId": "u3"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=3600).contains(&retry), "{retry}");
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "quota_exceeded");
    // Reads do not count.
    let sid = b1["data"]["sid"].as_str().unwrap();
    let (s, _) = svc.get(&key, sid, "").await?;
    assert_eq!(s, 200);
    Ok(())
}

async fn bad_input_gets_json_errors(store: Cfg) -> Result<()> {
    let svc = Service::start(store, &[]).await?;
    let key = svc.tenant("pid-a").await?;
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut r = svc
            .http
            .post(svc.url("/api/v1/verify/session"))
            .bearer_auth(key.clone())
            .body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        api_support::send(r)
    };
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        ("{", Some("application/json"), 400, "invalid_json"),
        ("[]", None, 400, "invalid_json"),
        (r#"{"clientId":"u"}"#, None, 400, "missing_field"),
        (r#"{"pid":"pid-a","clientId":""}"#, None, 400, "empty_field"),
        (r#"{"pid":"pid-a","clientId":5}"#, None, 400, "invalid_type"),
        (
            r#"{"pid":"pid-a","clientId":"u","x":1}"#,
            None,
            400,
            "unknown_field",
        ),
        (
            r#"{"pid":"pid-a","clientId":"a\u0007b"}"#,
            None,
            400,
            "invalid_field",
        ),
        (
            r#"{"pid":"pid-a","clientId":"u"}"#,
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
    ];
    for &(body, ct, status, code) in cases {
        let (s, b) = post(body, ct).await?;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {b}"
        );
    }
    let big = format!(r#"{{"pid":"pid-a","clientId":"{}"}}"#, "x".repeat(20_000));
    let (s, b) = api_support::send(
        svc.http
            .post(svc.url("/api/v1/verify/session"))
            .bearer_auth(&key)
            .body(big),
    )
    .await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    for (sid, code) in [
        ("nope", "invalid_id"),
        ("vsn_A1b2C3d4E5f6G7h8J9k0L1", "session_not_found"),
        ("vsn_A1b2C3d4E5f6G7h8J9k0L%2F", "invalid_id"),
    ] {
        let (s, b) = svc.get(&key, sid, "").await?;
        assert_eq!(b["error"]["code"], code, "{sid}: {s} {b}");
    }
    let (s, b) = api_support::send(svc.http.get(svc.url("/no/such/route"))).await?;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, b) = api_support::send(svc.http.put(svc.url("/api/v1/verify/session"))).await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (s, b) = api_support::send(
        svc.http
            .post(svc.url("/api/v1/admin/pids"))
            .bearer_auth("wrong")
            .json(&json!({})),
    )
    .await?;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    Ok(())
}

/// `max_streams_per_key` bounds a key's open streams and long-polls (429
/// `too_many_streams`, freed when one ends); heartbeats are comments; with
/// `stream_max_seconds` a stream ends early with a `retry:` hint and the client
/// resumes with `Last-Event-ID`.
async fn stream_limits_heartbeats_and_max_duration(store: Cfg) -> Result<()> {
    let svc = Service::start(
        store,
        &[
            ("max_streams_per_key", "2"),
            ("stream_max_seconds", "3"),
            ("heartbeat_seconds", "1"),
        ],
    )
    .await?;
    let key = svc.tenant("pid-a").await?;
    let other_key = svc.issue_key("pid-a", json!({})).await?;
    let sid = svc.create_sid(&key, "pid-a", "u1").await?;
    let mut s1 = svc.stream(&key, &sid, None).await?;
    assert_eq!(s1.expect(T).await?.id, "1");
    let mut s2 = svc.stream(&key, &sid, None).await?;
    assert_eq!(s2.expect(T).await?.id, "1");
    // The third waiter of this key is refused, as stream or long-poll...
    let s3 = svc.stream(&key, &sid, None).await?;
    assert_eq!(s3.status, 429);
    assert_eq!(s3.headers["retry-after"], "1");
    let (s, body) = svc.get(&key, &sid, "?wait=5").await?;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("too_many_streams")),
        "{body}"
    );
    // ...but a plain read is not a waiter, and another key has its own slots.
    assert_eq!(svc.get(&key, &sid, "").await?.0, 200);
    let mut o = svc.stream(&other_key, &sid, Some("1")).await?;
    assert_eq!(o.status, 200);
    // Heartbeats arrive as comments (the decoder yields no event for them), and
    // at stream_max_seconds the stream ends with a retry hint, no terminal event.
    s1.expect_end(T).await?;
    assert!(s1.raw.contains(": keep-alive\n\n"), "{:?}", s1.raw);
    assert!(s1.raw.ends_with("retry: 1000\n\n"), "{:?}", s1.raw);
    s2.expect_end(T).await?;
    o.expect_end(T).await?;
    // Their slots are free again; the client resumes where it was.
    let mut again = svc.stream(&key, &sid, Some("1")).await?;
    assert_eq!(again.status, 200);
    let (st, _) = svc.complete(&sid, "1", "2").await?;
    assert_eq!(st, 200);
    let e = again.expect(T).await?;
    assert_eq!((e.event.as_str(), e.id.as_str()), ("complete", "2"));
    again.expect_end(T).await?;
    Ok(())
}
