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
