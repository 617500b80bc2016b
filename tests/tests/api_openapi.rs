//! Real responses validate against `spin-app/openapi.json` (the document the
//! service itself serves at `/api/v1/openapi.json`).

mod api_support;

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind};
use serde_json::{Value, json};

/// JSON-pointer escaping of one path segment.
fn esc(s: &str) -> String {
    s.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// Validates `body` against the response schema of (template, method, status).
fn check(doc: &Value, template: &str, method: &str, status: u16, body: &Value) -> Result<()> {
    let op = &doc["paths"][template][method];
    let mut resp = op["responses"][status.to_string()].clone();
    if resp.is_null() {
        bail!("{method} {template} documents no {status} response (got {body})");
    }
    let mut pointer = format!("#/paths/{}/{method}/responses/{status}", esc(template));
    if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
        pointer = r.to_owned();
        let name = r.rsplit('/').next().unwrap_or_default();
        resp = doc["components"]["responses"][name].clone();
    }
    if resp["content"]["application/json"]["schema"].is_null() {
        bail!("{pointer} has no JSON schema");
    }
    let mut root = doc.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$ref"] = json!(format!(
        "{pointer}/content/{}/schema",
        esc("application/json")
    ));
    let validator = jsonschema::draft202012::new(&root).context("compile schema")?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        bail!(
            "{method} {template} {status}: {body}\n{}",
            errors.join("\n")
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_openapi_document() -> Result<()> {
    // A loopback origin for webhook URLs (nothing listens there: deliveries fail).
    let svc = Service::start(
        StoreKind::Sqlite,
        &[("webhook_origin_a", "http://127.0.0.1:9")],
    )
    .await?;
    let (s, doc) = api_support::send(svc.http.get(svc.url("/api/v1/openapi.json"))).await?;
    assert_eq!(s, 200);
    let repo: Value = serde_json::from_str(&std::fs::read_to_string(
        dock_tests::artifacts::workspace_root().join("spin-app/openapi.json"),
    )?)?;
    assert_eq!(doc, repo, "the service serves the document in the repo");
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );

    let mut checked = 0;
    let mut ok = |t: &str, m: &str, (s, b): (u16, Value)| -> Result<()> {
        checked += 1;
        check(&doc, t, m, s, &b)
    };
    const S: &str = "/api/v1/verify/session";
    const ONE: &str = "/api/v1/verify/session/{sid}";

    // Admin.
    ok(
        "/api/v1/admin/pids",
        "post",
        svc.admin_post("/api/v1/admin/pids", json!({"pid": "pid-a", "name": "A"}))
            .await?,
    )?;
    ok(
        "/api/v1/admin/pids",
        "post",
        svc.admin_post("/api/v1/admin/pids", json!({"pid": "pid-a", "name": "A"}))
            .await?,
    )?; // 409
    ok(
        "/api/v1/admin/pids",
        "post",
        svc.admin_post("/api/v1/admin/pids", json!({"pid": "pid a"}))
            .await?,
    )?; // 400
    ok(
        "/api/v1/admin/pids/{pid}/keys",
        "post",
        svc.admin_post("/api/v1/admin/pids/pid-a/keys", json!({}))
            .await?,
    )?;
    ok(
        "/api/v1/admin/pids/{pid}/keys",
        "post",
        svc.admin_post("/api/v1/admin/pids/pid-zzz/keys", json!({}))
            .await?,
    )?; // 404
    let key = svc
        .issue_key("pid-a", json!({"quota": {"limit": 3, "windowSeconds": 60}}))
        .await?;
    let (_, issued) = svc
        .admin_post("/api/v1/admin/pids/pid-a/keys", json!({}))
        .await?;
    let key_id = issued["data"]["keyId"].as_str().context("keyId")?;
    // Tenant management.
    let admin = |m: reqwest::Method, path: &str, body: Option<Value>| {
        let r = svc.http.request(m, svc.url(path)).bearer_auth(ADMIN_TOKEN);
        api_support::send(match body {
            Some(b) => r.json(&b),
            None => r,
        })
    };
    use reqwest::Method as M;
    ok(
        "/api/v1/admin/pids",
        "get",
        admin(M::GET, "/api/v1/admin/pids?limit=1", None).await?,
    )?;
    ok(
        "/api/v1/admin/pids",
        "get",
        admin(M::GET, "/api/v1/admin/pids?limit=0", None).await?,
    )?; // 400
    ok(
        "/api/v1/admin/pids/{pid}",
        "get",
        admin(M::GET, "/api/v1/admin/pids/pid-a", None).await?,
    )?;
    ok(
        "/api/v1/admin/pids/{pid}",
        "get",
        admin(M::GET, "/api/v1/admin/pids/pid-zzz", None).await?,
    )?; // 404
    ok(
        "/api/v1/admin/pids/{pid}",
        "patch",
        admin(
            M::PATCH,
            "/api/v1/admin/pids/pid-a",
            Some(json!({"name": "A2"})),
        )
        .await?,
    )?;
    ok(
        "/api/v1/admin/pids/{pid}",
        "patch",
        admin(
            M::PATCH,
            "/api/v1/admin/pids/pid-a",
            Some(json!({"name": ""})),
        )
        .await?,
    )?; // 400
    ok(
        "/api/v1/admin/pids/{pid}/keys",
        "get",
        admin(M::GET, "/api/v1/admin/pids/pid-a/keys", None).await?,
    )?;
    ok(
        "/api/v1/admin/keys/{keyId}",
        "patch",
        admin(
            M::PATCH,
            &format!("/api/v1/admin/keys/{key_id}"),
            Some(json!({"quota": {"limit": 5}})),
        )
        .await?,
    )?;
    ok(
        "/api/v1/admin/keys/{keyId}",
        "patch",
        admin(
            M::PATCH,
            &format!("/api/v1/admin/keys/{key_id}"),
            Some(json!({"quota": {}})),
        )
        .await?,
    )?; // 400
    ok(
        "/api/v1/admin/pids/{pid}/links/discord/{discordId}",
        "delete",
        admin(
            M::DELETE,
            "/api/v1/admin/pids/pid-a/links/discord/123",
            None,
        )
        .await?,
    )?;
    ok(
        "/api/v1/admin/pids/{pid}/links/roblox/{robloxId}",
        "delete",
        admin(
            M::DELETE,
            "/api/v1/admin/pids/pid-zzz/links/roblox/123",
            None,
        )
        .await?,
    )?; // 404
    let revoke = |id: String| {
        api_support::send(
            svc.http
                .delete(svc.url(&format!("/api/v1/admin/keys/{id}")))
                .bearer_auth(ADMIN_TOKEN),
        )
    };
    ok(
        "/api/v1/admin/keys/{keyId}",
        "delete",
        revoke(key_id.to_owned()).await?,
    )?;
    ok(
        "/api/v1/admin/keys/{keyId}",
        "delete",
        revoke(key_id.to_owned()).await?,
    )?; // 404

    // Sessions.
    let created = svc
        .create(
            &key,
            json!({"pid": "pid-a", "clientId": "u1", "guildId": "g"}),
        )
        .await?;
    let sid = created.1["data"]["sid"].as_str().context("sid")?.to_owned();
    ok(S, "post", created)?;
    ok(
        S,
        "post",
        svc.create(
            &key,
            json!({"pid": "pid-a", "clientId": "u1", "guildId": "g"}),
        )
        .await?,
    )?; // reused
    ok(S, "post", svc.create(&key, json!({"pid": "pid-a"})).await?)?; // 400
    ok(
        S,
        "post",
        svc.create("dock_wrong", json!({"pid": "pid-a", "clientId": "u"}))
            .await?,
    )?; // 401
    ok(
        S,
        "post",
        svc.create(&key, json!({"pid": "pid-b", "clientId": "u"}))
            .await?,
    )?; // 404
    ok(
        S,
        "post",
        svc.create(&key, json!({"pid": "pid-a", "clientId": "u9"}))
            .await?,
    )?;
    ok(
        S,
        "post",
        svc.create(&key, json!({"pid": "pid-a", "clientId": "u10"}))
            .await?,
    )?; // 429
    ok(ONE, "get", svc.get(&key, &sid, "").await?)?;
    ok(ONE, "get", svc.get(&key, &sid, "?wait=x").await?)?; // 400
    ok(
        ONE,
        "get",
        svc.get(&key, "vsn_A1b2C3d4E5f6G7h8J9k0L1", "").await?,
    )?; // 404
    ok(
        "/api/v1/admin/sessions/{sid}/complete",
        "post",
        svc.complete(&sid, "1", "2").await?,
    )?;
    ok(
        "/api/v1/admin/sessions/{sid}/complete",
        "post",
        svc.complete(&sid, "1", "3").await?,
    )?; // 409
    ok(ONE, "get", svc.get(&key, &sid, "").await?)?; // completed view
    ok(
        ONE,
        "delete",
        api_support::send(
            svc.http
                .delete(svc.url(&format!("/api/v1/verify/session/{sid}")))
                .bearer_auth(&key),
        )
        .await?,
    )?; // 409

    // Lookups and health.
    let get = |p: &str, k: Option<&str>| {
        let mut r = svc.http.get(svc.url(p));
        if let Some(k) = k {
            r = r.bearer_auth(k.to_owned());
        }
        api_support::send(r)
    };
    ok(
        "/api/v1/public/discord-to-roblox",
        "get",
        get("/api/v1/public/discord-to-roblox?discordId=1", Some(&key)).await?,
    )?;
    ok(
        "/api/v1/public/discord-to-roblox",
        "get",
        get("/api/v1/public/discord-to-roblox?discordId=9", Some(&key)).await?,
    )?;
    ok(
        "/api/v1/public/roblox-to-discord",
        "get",
        get("/api/v1/public/roblox-to-discord?robloxId=2", Some(&key)).await?,
    )?;
    let admin_get = |p: &str| api_support::send(svc.http.get(svc.url(p)).bearer_auth(ADMIN_TOKEN));
    ok(
        "/api/v1/admin/stats",
        "get",
        admin_get("/api/v1/admin/stats").await?,
    )?;
    ok(
        "/api/v1/admin/stats",
        "get",
        admin_get("/api/v1/admin/stats?pid=pid-a").await?,
    )?;
    ok(
        "/api/v1/admin/stats",
        "get",
        admin_get("/api/v1/admin/stats?pid=pid-zzz").await?,
    )?; // 404
    ok(
        "/api/v1/admin/stats",
        "get",
        get("/api/v1/admin/stats", None).await?,
    )?; // 401
    // Webhooks.
    const HOOK: &str = "/api/v1/admin/pids/{pid}/webhook";
    let hook = "/api/v1/admin/pids/pid-a/webhook";
    ok(HOOK, "get", admin(M::GET, hook, None).await?)?; // 404 webhook_not_found
    let put = |url: &str| admin(M::PUT, hook, Some(json!({"url": url})));
    ok(HOOK, "put", put("https://elsewhere.example/x").await?)?; // 400
    ok(HOOK, "put", put("http://127.0.0.1:9/hook").await?)?; // new: with secret
    ok(HOOK, "put", put("http://127.0.0.1:9/hook2").await?)?; // replaced: no secret
    ok(HOOK, "get", admin(M::GET, hook, None).await?)?;
    ok(
        "/api/v1/admin/pids/{pid}/webhook/rotate-secret",
        "post",
        admin(M::POST, &format!("{hook}/rotate-secret"), None).await?,
    )?;
    // A cancel queues an event; the dispatch attempts it (refused: nothing listens).
    let key2 = svc.issue_key("pid-a", json!({})).await?;
    let hooked = svc.create_sid(&key2, "pid-a", "hooked").await?;
    api_support::send(
        svc.http
            .delete(svc.url(&format!("{S}/{hooked}")))
            .bearer_auth(&key2),
    )
    .await?;
    ok(
        "/api/v1/admin/webhooks/dispatch",
        "post",
        admin(M::POST, "/api/v1/admin/webhooks/dispatch", None).await?,
    )?;
    let deliveries = format!("{hook}/deliveries?limit=5");
    dock_tests::wait_until_async(Duration::from_secs(30), "an attempt in the log", || async {
        admin(M::GET, &deliveries, None).await.is_ok_and(|(_, b)| {
            b["data"]["deliveries"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
    })
    .await?;
    ok(
        "/api/v1/admin/pids/{pid}/webhook/deliveries",
        "get",
        admin(M::GET, &deliveries, None).await?,
    )?;
    // Export (every line an `ExportRecord`, the webhook's included) and import.
    let export = svc
        .http
        .get(svc.url("/api/v1/admin/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    let mut record_schema = doc.clone();
    record_schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    record_schema["$ref"] = json!("#/components/schemas/ExportRecord");
    let records = jsonschema::draft202012::new(&record_schema).context("compile schema")?;
    let mut kinds = Vec::new();
    for line in export.lines() {
        let v: Value = serde_json::from_str(line)?;
        let errors: Vec<String> = records.iter_errors(&v).map(|e| e.to_string()).collect();
        ensure!(errors.is_empty(), "{line}: {}", errors.join("; "));
        kinds.push(v["type"].as_str().unwrap_or_default().to_owned());
    }
    for kind in ["header", "pid", "key", "quota", "webhook", "end"] {
        ensure!(
            kinds.iter().any(|k| k == kind),
            "no {kind} line in {export}"
        );
    }
    let import = |ct: &'static str, body: String| {
        api_support::send(
            svc.http
                .post(svc.url("/api/v1/admin/import"))
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", ct)
                .body(body),
        )
    };
    const IMPORT: &str = "/api/v1/admin/import";
    ok(
        IMPORT,
        "post",
        import("application/x-ndjson", export.clone()).await?,
    )?;
    ok(
        IMPORT,
        "post",
        import("application/x-ndjson", "{}\n".into()).await?,
    )?; // 400
    ok(IMPORT, "post", import("text/csv", export.clone()).await?)?; // 415
    ok(HOOK, "delete", admin(M::DELETE, hook, None).await?)?;
    ok(HOOK, "delete", admin(M::DELETE, hook, None).await?)?; // 404

    // Listing and return URLs.
    const LIST: &str = "/api/v1/verify/sessions";
    let list = |q: &str| {
        api_support::send(
            svc.http
                .get(svc.url(&format!("{LIST}{q}")))
                .bearer_auth(&key2),
        )
    };
    ok(LIST, "get", list("?limit=2").await?)?;
    ok(
        LIST,
        "get",
        list("?status=cancelled&clientId=hooked").await?,
    )?;
    ok(LIST, "get", list("?limit=0").await?)?; // 400
    ok(
        LIST,
        "get",
        api_support::send(svc.http.get(svc.url(LIST))).await?,
    )?; // 401
    ok(
        "/api/v1/admin/pids/{pid}",
        "patch",
        admin(
            M::PATCH,
            "/api/v1/admin/pids/pid-a",
            Some(json!({"returnOrigins": ["https://app.example"]})),
        )
        .await?,
    )?;
    let with_return = |url: &str| {
        svc.create(
            &key2,
            json!({"pid": "pid-a", "clientId": "returning", "returnUrl": url}),
        )
    };
    ok(S, "post", with_return("https://elsewhere.example/").await?)?; // 400
    let (s, created) = with_return("https://app.example/done").await?;
    ok(S, "post", (s, created.clone()))?;
    let returning = created["data"]["sid"].as_str().context("sid")?.to_owned();
    let (s, view) = svc.get(&key2, &returning, "").await?;
    assert_eq!(view["data"]["returnUrl"], "https://app.example/done");
    ok(ONE, "get", (s, view))?;

    ok("/healthz", "get", get("/healthz", None).await?)?;
    ok("/readyz", "get", get("/readyz", None).await?)?;
    assert!(checked >= 25, "{checked}");
    // The validator is not vacuous: wrong shapes fail.
    assert!(check(&doc, S, "post", 200, &json!({"status": 200, "data": {}})).is_err());
    let (_, mut view) = svc.get(&key, &sid, "").await?;
    view["data"]["status"] = json!("done");
    assert!(check(&doc, ONE, "get", 200, &view).is_err());
    Ok(())
}
