//! The operator's tenant and data management over HTTP, on two instances
//! sharing Redis and on the embedded SQLite store: PIDs listed a page at a
//! time and renamed, keys listed
//! without their secrets, a key's quota changed (the next create is decided
//! under it), a user's link erased in both lookup directions and counted.
//! (Every rule behind these runs natively on all three stores in
//! `cargo test -p dock-spin-app`; here: routing, auth, statuses, wiring.)

mod api_support;

use anyhow::{Context as _, Result, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind, send};
use reqwest::Method;
use serde_json::{Value, json};

/// An admin request on instance `i`: (status, body).
async fn admin(
    svc: &Service,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let r = svc
        .http
        .request(method, svc.url_on(i, path))
        .bearer_auth(ADMIN_TOKEN);
    send(match body {
        Some(b) => r.json(&b),
        None => r,
    })
    .await
}

async fn scenario(svc: &Service) -> Result<()> {
    let last = svc.hosts.len() - 1;
    let key = svc.tenant("app").await?;
    for p in ["beta", "alpha"] {
        svc.tenant(p).await?;
    }

    // Pages of two, in PID order, on the other instance.
    let (s, body) = admin(svc, last, Method::GET, "/api/v1/admin/pids?limit=2", None).await?;
    ensure!(s == 200, "{s} {body}");
    let names: Vec<&str> = body["data"]["pids"]
        .as_array()
        .context("pids")?
        .iter()
        .filter_map(|p| p["pid"].as_str())
        .collect();
    ensure!(names == ["alpha", "app"], "{body}");
    let cursor = body["data"]["nextCursor"].as_str().context("nextCursor")?;
    let (_, body) = admin(
        svc,
        0,
        Method::GET,
        &format!("/api/v1/admin/pids?limit=2&cursor={cursor}"),
        None,
    )
    .await?;
    ensure!(body["data"]["pids"][0]["pid"] == "beta", "{body}");
    ensure!(body["data"].get("nextCursor").is_none(), "{body}");

    // Rename.
    let (s, body) = admin(
        svc,
        0,
        Method::PATCH,
        "/api/v1/admin/pids/app",
        Some(json!({"name": "Renamed App"})),
    )
    .await?;
    ensure!(
        s == 200 && body["data"]["name"] == "Renamed App",
        "{s} {body}"
    );
    let (_, body) = admin(svc, last, Method::GET, "/api/v1/admin/pids/app", None).await?;
    ensure!(body["data"]["name"] == "Renamed App", "{body}");

    // Keys: listed without secrets; a quota change decides the next create.
    let (s, body) = admin(svc, 0, Method::GET, "/api/v1/admin/pids/app/keys", None).await?;
    ensure!(s == 200, "{s} {body}");
    let keys = body["data"]["keys"].as_array().context("keys")?;
    ensure!(keys.len() == 1, "{body}");
    ensure!(
        !body.to_string().contains(&key),
        "a key's secret is never listed"
    );
    let key_id = keys[0]["keyId"].as_str().context("keyId")?.to_owned();
    let (s, _) = svc
        .create(&key, json!({"pid": "app", "clientId": "u1"}))
        .await?;
    ensure!(s == 200);
    let (s, body) = admin(
        svc,
        0,
        Method::PATCH,
        &format!("/api/v1/admin/keys/{key_id}"),
        Some(json!({"quota": {"limit": 1}})),
    )
    .await?;
    ensure!(
        s == 200 && body["data"]["quota"]["limit"] == 1,
        "{s} {body}"
    );
    let (s, body) = svc
        .create(&key, json!({"pid": "app", "clientId": "u2"}))
        .await?;
    ensure!(
        s == 429 && body["error"]["code"] == "quota_exceeded",
        "the lowered quota applies at once: {s} {body}"
    );

    // Erasure: complete a verification, then erase the Discord user's link.
    admin(
        svc,
        0,
        Method::PATCH,
        &format!("/api/v1/admin/keys/{key_id}"),
        Some(json!({"quota": {"limit": 100}})),
    )
    .await?;
    let sid = svc.create_sid(&key, "app", "u3").await?;
    let (s, _) = svc.complete(&sid, "4242", "9090").await?;
    ensure!(s == 200);
    let lookup = |path: String| send(svc.http.get(svc.url_on(last, &path)).bearer_auth(&key));
    let (s, _) = lookup("/api/v1/public/discord-to-roblox?discordId=4242".into()).await?;
    ensure!(s == 200);
    let (s, body) = admin(
        svc,
        0,
        Method::DELETE,
        "/api/v1/admin/pids/app/links/discord/4242",
        None,
    )
    .await?;
    ensure!(s == 200, "{s} {body}");
    ensure!(
        body["data"]["erased"] == json!([{"discordId": "4242", "robloxId": "9090"}]),
        "{body}"
    );
    for path in [
        "/api/v1/public/discord-to-roblox?discordId=4242",
        "/api/v1/public/roblox-to-discord?robloxId=9090",
    ] {
        let (s, body) = lookup(path.into()).await?;
        ensure!(
            s == 404 && body["error"]["code"] == "link_not_found",
            "{path}: {s} {body}"
        );
    }
    let (_, body) = admin(svc, last, Method::GET, "/api/v1/admin/stats?pid=app", None).await?;
    ensure!(body["data"]["linksErased"] == 1, "{body}");
    // Another tenant's admin paths never reach this PID's data.
    let (s, body) = admin(
        svc,
        0,
        Method::DELETE,
        "/api/v1/admin/pids/nobody/links/roblox/9090",
        None,
    )
    .await?;
    ensure!(
        s == 404 && body["error"]["code"] == "pid_not_found",
        "{s} {body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_links_are_managed_across_two_instances_on_redis() -> Result<()> {
    let svc = Service::start_n(StoreKind::Redis, 2, &[]).await?;
    scenario(&svc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_links_are_managed_on_sqlite() -> Result<()> {
    let svc = Service::start(StoreKind::Sqlite, &[]).await?;
    scenario(&svc).await
}

/// `dock-host admin …` with the token in its environment, against `svc`:
/// (exit success, stdout as JSON or `null`, stderr).
async fn cli(svc: &Service, args: &[&str]) -> Result<(bool, Value, String)> {
    let out = tokio::process::Command::new(dock_tests::dock_host_bin()?)
        .arg("admin")
        .args(args)
        .env("DOCK_URL", svc.url(""))
        .env("DOCK_ADMIN_TOKEN", ADMIN_TOKEN)
        .kill_on_drop(true)
        .output()
        .await
        .context("run dock-host admin")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok((
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The operator's command line does what the admin API does: a PID and a key
/// made with it work for a create, listings span pages and hide secrets, a
/// revoked key stops working, and errors name the API's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dock_host_admin_manages_pids_and_keys() -> Result<()> {
    let svc = Service::start(StoreKind::Sqlite, &[]).await?;
    let (ok, pid, err) = cli(&svc, &["pid", "create", "cli-app", "--name", "CLI App"]).await?;
    ensure!(
        ok && pid["pid"] == "cli-app" && pid["name"] == "CLI App",
        "{pid} {err}"
    );
    // More PIDs than one page of the listing (the command asks 100 a page).
    for i in 0..105 {
        svc.tenant(&format!("cli-extra-{i:03}")).await?;
    }
    let (ok, all, err) = cli(&svc, &["pid", "list"]).await?;
    let names: Vec<&str> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["pid"].as_str())
        .collect();
    ensure!(
        ok && names.len() == 106 && names.contains(&"cli-app"),
        "{} PIDs listed: {err}",
        names.len()
    );

    let (ok, issued, err) = cli(
        &svc,
        &[
            "key",
            "create",
            "cli-app",
            "--limit",
            "7",
            "--window-seconds",
            "60",
        ],
    )
    .await?;
    ensure!(
        ok && issued["quota"] == json!({"limit": 7, "windowSeconds": 60}),
        "{issued} {err}"
    );
    let (key, key_id) = (
        issued["key"].as_str().context("the key, shown once")?,
        issued["keyId"].as_str().context("keyId")?,
    );
    let (s, created) = svc
        .create(key, json!({"pid": "cli-app", "clientId": "u1"}))
        .await?;
    ensure!(s == 200, "a create with the CLI's key: {s} {created}");

    let (ok, keys, err) = cli(&svc, &["key", "list", "cli-app"]).await?;
    ensure!(ok && keys.to_string().contains(key_id), "{keys} {err}");
    ensure!(
        !keys.to_string().contains(key),
        "a listing never shows the key"
    );
    let (ok, shown, err) = cli(&svc, &["pid", "show", "cli-app"]).await?;
    ensure!(ok && shown["pid"] == "cli-app", "{shown} {err}");

    let (ok, _, err) = cli(&svc, &["key", "revoke", key_id]).await?;
    ensure!(ok, "revoke: {err}");
    let (s, body) = svc
        .create(key, json!({"pid": "cli-app", "clientId": "u2"}))
        .await?;
    ensure!(s == 401, "a revoked key: {s} {body}");

    // Errors: the API's status and code on stderr, a failing exit.
    let (ok, _, err) = cli(&svc, &["pid", "create", "cli-app"]).await?;
    ensure!(
        !ok && err.contains("409") && err.contains("pid_exists"),
        "{err}"
    );
    let (ok, _, err) = cli(&svc, &["pid", "show", "no-such-pid"]).await?;
    ensure!(!ok && err.contains("404"), "{err}");
    Ok(())
}

/// The embedded store's data moves to Redis with `dock-host admin export`
/// and `import` (the operator's path off SQLite): the API key keeps working
/// there with the quota it had used, the link answers lookups, the webhook
/// and its secret come along; importing again changes nothing; a cut-off
/// file is refused and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_moves_to_redis_by_export_and_import() -> Result<()> {
    let origin = [("webhook_origin_a", "https://hooks.example")];
    let from = Service::start(StoreKind::Sqlite, &origin).await?;
    let key = from.tenant("app").await?;
    let sid = from.create_sid(&key, "app", "user-1").await?;
    let (s, body) = from.complete(&sid, "111", "900").await?;
    ensure!(s == 200, "{s} {body}");
    let (s, hook) = admin(
        &from,
        0,
        Method::PUT,
        "/api/v1/admin/pids/app/webhook",
        Some(json!({"url": "https://hooks.example/dock"})),
    )
    .await?;
    ensure!(s == 200, "{s} {hook}");
    let (_, before) = from
        .create(&key, json!({"pid": "app", "clientId": "user-2"}))
        .await?;
    let left = before["verifyRequestsRemaining"]
        .as_u64()
        .context("remaining")?;

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("dock.ndjson");
    let file_arg = file.to_str().context("path")?;
    let (ok, summary, err) = cli(&from, &["export", "--out", file_arg]).await?;
    ensure!(ok && summary["records"] == 7, "{summary} {err}");
    let text = std::fs::read_to_string(&file)?;
    ensure!(
        !text.contains(&key),
        "an export holds key hashes, never keys"
    );
    ensure!(!text.contains(&sid), "an export holds no sessions");

    let to = Service::start(StoreKind::Redis, &origin).await?;
    let (ok, report, err) = cli(&to, &["import", file_arg]).await?;
    ensure!(
        ok && report == json!({"pids": 1, "keys": 1, "quotas": 1, "webhooks": 1, "links": 1}),
        "{report} {err}"
    );
    let (s, after) = to
        .create(&key, json!({"pid": "app", "clientId": "user-3"}))
        .await?;
    ensure!(
        s == 200 && after["verifyRequestsRemaining"] == left - 1,
        "the key works on Redis with the quota it had used: {s} {after}"
    );
    let (s, link) = send(
        to.http
            .get(to.url("/api/v1/public/discord-to-roblox?discordId=111"))
            .bearer_auth(&key),
    )
    .await?;
    ensure!(s == 200 && link["data"]["robloxId"] == "900", "{s} {link}");
    let (_, shown) = admin(&to, 0, Method::GET, "/api/v1/admin/pids/app/webhook", None).await?;
    ensure!(
        shown["data"]["url"] == "https://hooks.example/dock",
        "{shown}"
    );

    // Again: the same answer, and the store exports what the file holds.
    let (ok, again, err) = cli(&to, &["import", file_arg]).await?;
    ensure!(ok && again == report, "{again} {err}");
    let exported = to
        .http
        .get(to.url("/api/v1/admin/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    ensure!(
        exported.headers()["content-type"] == "application/x-ndjson",
        "{:?}",
        exported.headers()
    );
    let exported = exported.text().await?;
    let body = |t: &str| {
        let mut lines: Vec<String> = t
            .lines()
            .skip(1)
            // The quota line counts the create made on Redis too.
            .filter(|l| !l.contains(r#""type":"quota""#))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    ensure!(body(&exported) == body(&text), "{exported}\n---\n{text}");

    // Cut off: refused, naming the missing end line; a bad line by number.
    let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    let (s, refused) = send(
        to.http
            .post(to.url("/api/v1/admin/import"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/x-ndjson")
            .body(cut),
    )
    .await?;
    ensure!(
        s == 400
            && refused["error"]["code"] == "invalid_import"
            && refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("line 5:") && m.contains("end line")),
        "{s} {refused}"
    );
    let (s, refused) = send(
        to.http
            .post(to.url("/api/v1/admin/import"))
            .bearer_auth(ADMIN_TOKEN)
            .body(format!(
                "{}\n{{\"type\":\"pid\"}}\n",
                text.lines().next().unwrap_or("")
            )),
    )
    .await?;
    ensure!(
        s == 400
            && refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("line 2:")),
        "{s} {refused}"
    );
    let (ok, _, err) = cli(&to, &["import", "/nonexistent/dock.ndjson"]).await?;
    ensure!(!ok && err.contains("cannot read"), "{err}");
    Ok(())
}
