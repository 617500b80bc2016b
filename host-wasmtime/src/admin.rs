//! `dock-host admin …`: an HTTP client of the service's admin API (ours or a
//! deployed one), for operators who would rather not write curl and JSON.
//! Each command sends one request (a listing follows `nextCursor` to the
//! end), prints the answer's `data` as pretty JSON on stdout, and on an error
//! answer prints the API's code and message on stderr and fails.

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::cli::{AdminArgs, AdminCommand, KeyCommand, PidCommand};

/// Page size asked of `GET /api/v1/admin/pids` while following its cursor.
const PAGE: u32 = 100;

/// A request the command makes: method, path (with query), JSON body.
type Call = (reqwest::Method, String, Option<Value>);

/// Runs one admin command; its output is the JSON it prints.
pub async fn run(args: AdminArgs) -> Result<String> {
    let base = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .user_agent(concat!("dock-host-admin/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let send = |(method, path, body): Call| {
        let req = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&args.token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move { answer(&method, &path, req.send().await).await }
    };
    let data = match args.command {
        AdminCommand::Pid(PidCommand::List) => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let query = match &cursor {
                    Some(c) => format!("?limit={PAGE}&cursor={}", urlencode(c)),
                    None => format!("?limit={PAGE}"),
                };
                let page = send((
                    reqwest::Method::GET,
                    format!("/api/v1/admin/pids{query}"),
                    None,
                ))
                .await?;
                all.extend(page["pids"].as_array().cloned().unwrap_or_default());
                match page["nextCursor"].as_str() {
                    Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                    _ => break,
                }
            }
            Value::Array(all)
        }
        AdminCommand::Export { out } => {
            let path = "/api/v1/admin/export";
            let res = http
                .get(format!("{base}{path}"))
                .bearer_auth(&args.token)
                // An export takes as long as the store is large.
                .timeout(std::time::Duration::from_secs(24 * 3600))
                .send()
                .await;
            return export(res, path, out.as_deref()).await;
        }
        AdminCommand::Import { file } => {
            let body = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut b).await?;
                b
            } else {
                tokio::fs::read(&file)
                    .await
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let path = "/api/v1/admin/import";
            let res = http
                .post(format!("{base}{path}"))
                .bearer_auth(&args.token)
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .timeout(std::time::Duration::from_secs(24 * 3600))
                .body(body)
                .send()
                .await;
            answer(&reqwest::Method::POST, path, res).await?
        }
        command => send(call(command)?).await?,
    };
    Ok(serde_json::to_string_pretty(&data)?)
}

/// Writes an export's body to `out` (or stdout) as it arrives; fails if it
/// is an error answer or ends without its end line (cut off). With `out`,
/// the summary it prints; to stdout, nothing more.
async fn export(
    sent: reqwest::Result<reqwest::Response>,
    path: &str,
    out: Option<&std::path::Path>,
) -> Result<String> {
    use tokio::io::AsyncWriteExt as _;
    let mut res = sent.with_context(|| format!("GET {path}: no answer"))?;
    if !res.status().is_success() {
        answer(&reqwest::Method::GET, path, Ok(res)).await?;
        bail!("GET {path}: not an export");
    }
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin> = match out {
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .with_context(|| format!("GET {path}: the export broke off"))?
    {
        sink.write_all(&chunk).await?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        tail.extend_from_slice(&chunk);
        let keep = tail.len().saturating_sub(256);
        tail.drain(..keep);
    }
    sink.flush().await?;
    let last = String::from_utf8_lossy(&tail);
    let last = last.trim_end().rsplit('\n').next().unwrap_or("");
    if !last.starts_with(r#"{"type":"end""#) {
        bail!(
            "GET {path}: the export ended without its end line (the store failed mid-way?); do not use this file"
        );
    }
    Ok(match out {
        Some(p) => serde_json::to_string_pretty(&json!({
            "file": p.display().to_string(),
            "records": lines,
            "bytes": bytes,
        }))?,
        None => String::new(),
    })
}

/// The one request a (non-listing) command makes.
fn call(command: AdminCommand) -> Result<Call> {
    use reqwest::Method;
    let segment = |s: &str| urlencode(s);
    Ok(match command {
        AdminCommand::Pid(PidCommand::Create { pid, name }) => {
            let name = name.unwrap_or_else(|| pid.clone());
            (
                Method::POST,
                "/api/v1/admin/pids".into(),
                Some(json!({"pid": pid, "name": name})),
            )
        }
        AdminCommand::Pid(PidCommand::Show { pid }) => (
            Method::GET,
            format!("/api/v1/admin/pids/{}", segment(&pid)),
            None,
        ),
        AdminCommand::Pid(PidCommand::List) => bail!("listing follows pages: not one call"),
        AdminCommand::Key(KeyCommand::Create {
            pid,
            limit,
            window_seconds,
        }) => {
            let mut quota = serde_json::Map::new();
            if let Some(l) = limit {
                quota.insert("limit".into(), l.into());
            }
            if let Some(w) = window_seconds {
                quota.insert("windowSeconds".into(), w.into());
            }
            let body = if quota.is_empty() {
                json!({})
            } else {
                json!({"quota": quota})
            };
            (
                Method::POST,
                format!("/api/v1/admin/pids/{}/keys", segment(&pid)),
                Some(body),
            )
        }
        AdminCommand::Key(KeyCommand::List { pid }) => (
            Method::GET,
            format!("/api/v1/admin/pids/{}/keys", segment(&pid)),
            None,
        ),
        AdminCommand::Key(KeyCommand::Revoke { key_id }) => (
            Method::DELETE,
            format!("/api/v1/admin/keys/{}", segment(&key_id)),
            None,
        ),
        AdminCommand::Export { .. } | AdminCommand::Import { .. } => {
            bail!("export and import stream: not one JSON call")
        }
    })
}

/// The `data` of a success envelope, or an error naming the API's code.
async fn answer(
    method: &reqwest::Method,
    path: &str,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<Value> {
    let res = sent.with_context(|| format!("{method} {path}: no answer"))?;
    let status = res.status();
    let text = res
        .text()
        .await
        .with_context(|| format!("{method} {path}: the answer broke off"))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body.get("data").cloned().unwrap_or(body));
    }
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => {
            bail!("{method} {path}: {} {code}: {message}", status.as_u16())
        }
        _ if status.as_u16() == 404 => bail!(
            "{method} {path}: 404 without an API error — is the admin API enabled (admin_token set) and the URL the service's?"
        ),
        _ => bail!(
            "{method} {path}: {status}: {}",
            text.chars().take(200).collect::<String>()
        ),
    }
}

/// Percent-encodes one path segment or query value (ids are plain ASCII; this
/// keeps a stray `/`, `?` or space from changing the request).
fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_the_admin_routes() {
        let key = call(AdminCommand::Key(KeyCommand::Create {
            pid: "pid-a".into(),
            limit: Some(5),
            window_seconds: None,
        }))
        .unwrap();
        assert_eq!(key.0, reqwest::Method::POST);
        assert_eq!(key.1, "/api/v1/admin/pids/pid-a/keys");
        assert_eq!(key.2, Some(json!({"quota": {"limit": 5}})));
        let revoke = call(AdminCommand::Key(KeyCommand::Revoke {
            key_id: "key_x/../y".into(),
        }))
        .unwrap();
        assert_eq!(
            revoke.1, "/api/v1/admin/keys/key_x%2F..%2Fy",
            "a path segment stays one segment"
        );
        let pid = call(AdminCommand::Pid(PidCommand::Create {
            pid: "p".into(),
            name: None,
        }))
        .unwrap();
        assert_eq!(pid.2, Some(json!({"pid": "p", "name": "p"})));
    }
}
