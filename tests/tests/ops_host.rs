//! `dock-host` for operators, run for real with the repository's `spin.toml`:
//! - `--json-logs`: every line the host writes to stderr is a JSON object,
//!   and the component's per-request records on stdout pass through as JSON;
//! - the startup banner names the stores (the SQLite database, the Redis a
//!   variable names) and never prints a Redis password;
//! - a Redis that is unreachable at startup: the host serves, `/healthz` is
//!   200, `/readyz` 503 naming the store, then 200 once the test starts Redis;
//! - a wrong manifest and a missing required variable stop the host with an
//!   error naming the file, line and field, or the variable.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use dock_tests::{Host, RedisServer, artifacts, free_port, wait_until, wait_until_async};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const PASSWORD: &str = "s3cret-Pa55word";

/// `GET url`: status and JSON body.
async fn get_json(url: &str) -> Result<(u16, Value)> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(T)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).with_context(|| format!("GET {url}: {text}"))?;
    Ok((status, body))
}

/// A `dock-host up` whose stdout and stderr go to separate files, killed
/// (by its own PID) on drop.
struct SplitHost {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl SplitHost {
    fn start(manifest: &Path, args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(dock_tests::dock_host_bin()?)
            .arg("up")
            .arg("-f")
            .arg(manifest)
            .args(["--listen", "127.0.0.1:0", "--sqlite-db", "memory"])
            .arg("--cache-dir")
            .arg(artifacts::workspace_root().join("target/dock-host-cache"))
            .args(args)
            .current_dir(manifest.parent().context("manifest dir")?)
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout"))?)
            .stderr(File::create(dir.path().join("stderr"))?)
            .spawn()
            .context("cannot start dock-host")?;
        let mut addr = None;
        let started = wait_until(Duration::from_secs(180), "the Serving line", || {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return true;
            }
            addr = std::fs::read_to_string(dir.path().join("stdout"))
                .ok()
                .and_then(|out| {
                    out.lines()
                        .find_map(|l| l.strip_prefix("Serving http://").map(str::to_owned))
                });
            addr.is_some()
        });
        let mut host = SplitHost {
            child,
            dir,
            addr: addr.unwrap_or_default(),
        };
        if let Err(e) = started.and_then(|()| {
            ensure!(!host.addr.is_empty(), "dock-host exited");
            Ok(())
        }) {
            let _ = host.child.kill();
            bail!(
                "{e}\nstdout:\n{}\nstderr:\n{}",
                host.stdout(),
                host.stderr()
            );
        }
        Ok(host)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for SplitHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each non-empty line parsed as a JSON object.
fn json_lines(text: &str, what: &str) -> Result<Vec<Value>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).with_context(|| format!("{what}: not JSON: {l:?}"))?;
            ensure!(v.is_object(), "{what}: not an object: {l}");
            Ok(v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_an_unreachable_redis_at_startup() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    // Nothing listens on `port` yet.
    let port = free_port();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let origin = format!("redis://127.0.0.1:{port}");
    let vars = [format!("redis_url={url}"), format!("redis_origin={origin}")];
    let host = tokio::task::block_in_place(|| {
        SplitHost::start(
            &manifest,
            &[
                "--json-logs",
                "--variable",
                &vars[0],
                "--variable",
                &vars[1],
            ],
        )
    })?;
    let redacted = format!("redis://***@127.0.0.1:{port}");

    // Serving, live, not ready, naming the store.
    let (s, body) = get_json(&host.url("/healthz")).await?;
    ensure!(s == 200, "/healthz {s} {body}");
    let (s, body) = get_json(&host.url("/readyz")).await?;
    ensure!(s == 503, "/readyz with Redis down: {s} {body}");
    ensure!(body["error"]["code"] == "store_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("redis"), "/readyz names the store: {body}");
    let (s, _) = get_json(&host.url("/nope")).await?;
    ensure!(s == 404);
    wait_until_async(T, "the startup Redis check to be logged", || async {
        host.stderr().contains("Redis is unreachable at startup")
    })
    .await
    .with_context(|| host.stderr())?;

    // Redis comes up (with the password the URL carries): ready.
    let redis = tokio::task::block_in_place(|| RedisServer::start_on(port))?;
    redis.cli(&["CONFIG", "SET", "requirepass", PASSWORD])?;
    let ready = host.url("/readyz");
    wait_until_async(T, "/readyz to answer 200 once Redis is up", || async {
        matches!(get_json(&ready).await, Ok((200, b)) if b["data"]["store"] == "redis")
    })
    .await?;

    // stderr: only JSON records; the Redis warning names the redacted URL.
    let stderr = host.stderr();
    let records = json_lines(&stderr, "stderr")?;
    ensure!(
        records.iter().any(|r| r["level"] == "WARN"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("Redis is unreachable at startup"))
            && r["redis"] == redacted.as_str()),
        "no redacted Redis warning in:\n{stderr}"
    );
    ensure!(
        records
            .iter()
            .any(|r| r["message"] == "serving" && r["address"] == host.addr.as_str()),
        "no serving record in:\n{stderr}"
    );
    // stdout: the text banner, then the component's JSON records, one per request.
    let stdout = host.stdout();
    let (banner, rest) = stdout
        .split_once("\n{")
        .map(|(b, r)| (b.to_owned(), format!("{{{r}")))
        .context("no JSON record on stdout")?;
    ensure!(
        banner.contains(&format!("dock: Redis {redacted} (variable redis_url)")),
        "the banner names the Redis, redacted:\n{banner}"
    );
    ensure!(
        banner.contains("SQLite database \"default\": in memory"),
        "{banner}"
    );
    let requests = json_lines(&rest, "stdout")?;
    ensure!(
        requests
            .iter()
            .any(|r| r["route"] == "/readyz" && r["status"] == 503),
        "no request record for /readyz 503 in:\n{rest}"
    );
    ensure!(
        requests
            .iter()
            .any(|r| r["route"] == "(unmatched)" && r["status"] == 404),
        "{rest}"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        ensure!(
            !text.contains(PASSWORD),
            "{name} shows the password:\n{text}"
        );
    }
    Ok(())
}

/// Without a Redis URL the banner says so and names the SQLite database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_names_the_embedded_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = tokio::task::block_in_place(|| Host::start(&manifest, &["--sqlite-db", "memory"]))?;
    // The banner's lines after `Serving` reach the output a little later
    // than the address does (a reader thread): wait for them.
    let banner_done = "dock: Redis: none";
    let _ = dock_tests::wait_until_async(Duration::from_secs(10), "the whole banner", || async {
        host.output().contains(banner_done)
    })
    .await;
    let out = host.output();
    ensure!(
        out.contains("SQLite database \"default\": in memory (used by dock)"),
        "{out}"
    );
    ensure!(
        out.contains("dock: Redis: none (no variable holds a redis:// URL)"),
        "{out}"
    );
    let (s, body) = get_json(&host.url("/readyz")).await?;
    ensure!(s == 200 && body["data"]["store"] == "sqlite", "{s} {body}");
    Ok(())
}

/// A manifest with a wrong field type, and a required variable nothing sets:
/// the host exits with an error naming the file, the line and the field, or
/// the variable the way Spin 4.1 does.
#[test]
fn startup_errors_name_the_manifest_line_and_the_variable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let good = std::fs::read_to_string(&manifest)?;

    let wrong = "sqlite_databases = \"default\"";
    let bad = good.replacen("sqlite_databases = [\"default\"]", wrong, 1);
    ensure!(
        bad != good,
        "the manifest has no sqlite_databases line to break"
    );
    std::fs::write(&manifest, &bad)?;
    let line = bad
        .lines()
        .position(|l| l == wrong)
        .context("the broken line")?
        + 1;
    let exit = Host::builder(&manifest).run_to_exit(T)?;
    ensure!(!exit.status.success(), "{}", exit.output);
    for needle in [
        manifest.display().to_string(),
        format!("line {line}"),
        wrong.to_owned(),
        "expected a sequence".to_owned(),
    ] {
        ensure!(
            exit.output.contains(&needle),
            "{needle:?} missing from:\n{}",
            exit.output
        );
    }

    let missing = good.replacen(
        "[variables]\n",
        "[variables]\nlicense_key = { required = true, secret = true }\n",
        1,
    );
    ensure!(missing != good, "the manifest has no [variables] table");
    std::fs::write(&manifest, &missing)?;
    let exit = Host::builder(&manifest).run_to_exit(T)?;
    ensure!(!exit.status.success(), "{}", exit.output);
    ensure!(
        exit.output
            .contains("no provider resolved required variable \"license_key\""),
        "{}",
        exit.output
    );
    ensure!(
        exit.output.contains("SPIN_VARIABLE_LICENSE_KEY"),
        "{}",
        exit.output
    );
    Ok(())
}

/// `--dev-admin-token` (what `./dev up` passes): with no `admin_token` set,
/// the banner prints a development token and two `curl` commands that, run
/// as printed, create a PID and an API key; with a token set, nothing is
/// generated, and without the flag the admin API does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_admin_token_makes_a_first_run_usable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = tokio::task::block_in_place(|| {
        Host::start(&manifest, &["--sqlite-db", "memory", "--dev-admin-token"])
    })?;
    // The banner's lines may reach the harness' reader after the health
    // check passed (a loaded machine): wait for its last line.
    let _ = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "the banner's second curl", || {
            host.output().contains("/keys -H")
        })
    });
    let out = host.output();
    ensure!(out.contains("DEVELOPMENT admin token"), "{out}");
    let token = out
        .lines()
        .skip_while(|l| !l.contains("DEVELOPMENT admin token"))
        .nth(1)
        .map(str::trim)
        .context("token line")?
        .to_owned();
    ensure!(token.starts_with("dev-") && token.len() == 36, "{token:?}");
    let curls: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    ensure!(curls.len() == 2, "{out}");
    let run = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &curls.join("\n")])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    ensure!(run.status.success(), "{stdout}");
    ensure!(
        stdout.contains(r#""pid":"pid-dev""#) && stdout.contains(r#""key":"dock_"#),
        "the printed commands did not create a PID and a key: {stdout}"
    );
    // The token is nowhere but the banner: not in the log lines.
    let logged = out.lines().filter(|l| l.contains(&token)).count();
    ensure!(
        logged == 1 + curls.len(),
        "the token appears elsewhere: {out}"
    );
    drop(host);

    // A token that is set wins; no banner.
    let host = tokio::task::block_in_place(|| {
        Host::start(
            &manifest,
            &[
                "--sqlite-db",
                "memory",
                "--dev-admin-token",
                "--variable",
                "admin_token=an-operator-chosen-token",
            ],
        )
    })?;
    ensure!(!host.output().contains("DEVELOPMENT"), "{}", host.output());
    drop(host);
    // Without the flag (`spin up`, deployments): no admin API.
    let host = tokio::task::block_in_place(|| Host::start(&manifest, &["--sqlite-db", "memory"]))?;
    let (s, _) = get_json(&host.url("/api/v1/admin/stats")).await?;
    ensure!(s == 404, "admin API without a token: {s}");
    Ok(())
}
