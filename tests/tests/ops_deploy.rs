//! Deployment material, run for real against `dock-host`:
//! - every runtime config example in `runtime-config/` starts the repository's
//!   `spin.toml`, with the embedded store and with Redis, and `/healthz` and
//!   `/readyz` answer; a file-backed example creates its database where it says;
//! - the `dock-host` command lines of `docs/deploy.md`'s local section, taken
//!   from the markdown (so the page and the test cannot drift), each with a
//!   free port and the test's own Redis.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use dock_tests::{Host, RedisServer, artifacts, free_port, wait_until};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

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

/// `/healthz` is 200 and `/readyz` is 200 naming `store`.
async fn check_health(host: &Host, store: &str) -> Result<()> {
    let (status, body) = get_json(&host.url("/healthz")).await?;
    ensure!(status == 200, "/healthz {status}: {body}");
    ensure!(body["data"]["status"] == "ok", "/healthz: {body}");
    let (status, body) = get_json(&host.url("/readyz")).await?;
    ensure!(status == 200, "/readyz {status}: {body}");
    ensure!(body["data"]["status"] == "ready", "/readyz: {body}");
    ensure!(
        body["data"]["store"] == store,
        "/readyz: store {store} expected: {body}"
    );
    Ok(())
}

/// `--variable redis_url=… --variable redis_origin=…` for `redis`.
fn redis_args(redis: &RedisServer) -> Vec<String> {
    let url = redis.url();
    vec![
        "--variable".into(),
        format!("redis_url={url}"),
        "--variable".into(),
        format!("redis_origin={url}"),
    ]
}

fn start(manifest: &Path, args: &[String]) -> Result<Host> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tokio::task::block_in_place(|| Host::start(manifest, &args))
}

/// The runtime config examples: `runtime-config/*.toml`, sorted.
fn examples() -> Result<Vec<PathBuf>> {
    let dir = artifacts::workspace_root().join("runtime-config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no examples in {}", dir.display());
    Ok(files)
}

/// The `path` of `[sqlite_database.default]`, if the example sets one.
fn sqlite_path(text: &str) -> Result<Option<String>> {
    let doc: toml_edit::DocumentMut = text.parse()?;
    let db = doc
        .get("sqlite_database")
        .and_then(|t| t.get("default"))
        .context("the example has no [sqlite_database.default]")?;
    ensure!(
        db.get("type").and_then(|t| t.as_str()) == Some("spin"),
        "sqlite_database.default must be type = \"spin\""
    );
    Ok(db.get("path").and_then(|p| p.as_str()).map(str::to_owned))
}

/// An app directory: the repository's manifest and a verbatim copy of the
/// example, side by side. The harness runs `dock-host` in that directory, so
/// a relative `path` names the same file under Spin's rule (relative to the
/// directory `spin up` runs in) and under dock-host's (relative to the
/// runtime config file), and nothing is written into the repository.
struct App {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    config: PathBuf,
    db_path: Option<String>,
}

fn app_with(example: &Path) -> Result<App> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let text = std::fs::read_to_string(example)?;
    let db_path = sqlite_path(&text).with_context(|| example.display().to_string())?;
    let config = dir.path().join(example.file_name().context("file name")?);
    std::fs::write(&config, &text)?;
    Ok(App {
        dir,
        manifest,
        config,
        db_path,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_config_examples_serve_with_sqlite() -> Result<()> {
    for example in examples()? {
        let app = app_with(&example)?;
        let host = start(
            &app.manifest,
            &[
                "--runtime-config-file".into(),
                app.config.display().to_string(),
            ],
        )?;
        check_health(&host, "sqlite")
            .await
            .with_context(|| format!("{}\n{}", example.display(), host.output()))?;
        match &app.db_path {
            Some(rel) => {
                let db = app.dir.path().join(rel);
                wait_until(T, &format!("{} to exist", db.display()), || db.is_file())?;
                let default = app.dir.path().join(".spin/sqlite_db.db");
                ensure!(
                    !default.exists(),
                    "{}: the default database was used as well",
                    example.display()
                );
            }
            None => {
                let spin_dir = app.dir.path().join(".spin");
                ensure!(
                    !spin_dir.exists(),
                    "{}: an in-memory example wrote {}",
                    example.display(),
                    spin_dir.display()
                );
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_config_examples_serve_with_redis() -> Result<()> {
    let redis = tokio::task::block_in_place(RedisServer::start)?;
    for example in examples()? {
        let app = app_with(&example)?;
        let mut args = vec![
            "--runtime-config-file".into(),
            app.config.display().to_string(),
        ];
        args.extend(redis_args(&redis));
        let host = start(&app.manifest, &args)?;
        check_health(&host, "redis")
            .await
            .with_context(|| format!("{}\n{}", example.display(), host.output()))?;
    }
    Ok(())
}

/// `/readyz` reports an unreachable store as 503 (with `Retry-After`) while
/// `/healthz`, which never touches the store, stays 200: what docs/deploy.md
/// tells operators to wire into their probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_redis_is_down() -> Result<()> {
    let mut redis = tokio::task::block_in_place(RedisServer::start)?;
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let host = start(&manifest, &redis_args(&redis))?;
    check_health(&host, "redis").await?;
    redis.stop();
    let resp = reqwest::Client::new()
        .get(host.url("/readyz"))
        .timeout(T)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").cloned();
    let body: Value = resp.json().await?;
    ensure!(status == 503, "/readyz with Redis down: {status} {body}");
    ensure!(retry_after.is_some(), "no Retry-After: {body}");
    ensure!(body["error"]["code"] == "store_unavailable", "{body}");
    let (status, body) = get_json(&host.url("/healthz")).await?;
    ensure!(status == 200, "/healthz with Redis down: {status} {body}");
    tokio::task::block_in_place(|| redis.restart())?;
    let ready = host.url("/readyz");
    dock_tests::wait_until_async(T, "/readyz to recover with Redis", || async {
        matches!(get_json(&ready).await, Ok((200, _)))
    })
    .await?;
    Ok(())
}

/// One shell block of the local section.
struct Block {
    /// The `dock-host up` arguments after the command prefix.
    args: Vec<String>,
    /// The block starts its own Redis.
    redis: bool,
    /// Its `curl` lines.
    curls: Vec<String>,
}

/// The `sh` blocks of `docs/deploy.md`'s "Local: `dock-host up`" section that
/// run `./dev up` or `cargo run --release -p dock-host -- up`.
fn local_blocks() -> Result<Vec<Block>> {
    let doc = std::fs::read_to_string(artifacts::workspace_root().join("docs/deploy.md"))?;
    let section = doc
        .split("\n## Local: `dock-host up`\n")
        .nth(1)
        .context("docs/deploy.md: no \"Local: `dock-host up`\" section")?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut blocks = Vec::new();
    for chunk in section.split("```sh\n").skip(1) {
        let body = chunk.split("```").next().unwrap_or_default();
        let mut up = None;
        let mut block = Block {
            args: Vec::new(),
            redis: false,
            curls: Vec::new(),
        };
        for line in body.lines() {
            let line = line.trim().trim_end_matches('&').trim();
            let rest = line
                .strip_prefix("./dev up")
                .or_else(|| line.strip_prefix("cargo run --release -p dock-host -- up"));
            if let Some(rest) = rest {
                ensure!(up.is_none(), "two dock-host lines in one block:\n{body}");
                ensure!(
                    !rest.contains(['\'', '"', '$', '\\']),
                    "quoting or expansion in {line:?}: split it by hand"
                );
                up = Some(line.to_owned());
                block.args = rest.split_whitespace().map(str::to_owned).collect();
            } else if line.starts_with("redis-server") {
                block.redis = true;
            } else if line.starts_with("curl ") {
                block.curls.push(line.to_owned());
            } else if !line.is_empty() {
                bail!("docs/deploy.md local section: a line the test cannot run: {line:?}");
            }
        }
        if up.is_some() {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_doc_local_commands_run() -> Result<()> {
    let blocks = local_blocks()?;
    ensure!(
        blocks.iter().any(|b| !b.redis) && blocks.iter().any(|b| b.redis),
        "the local section should run dock-host with the embedded store and with Redis"
    );
    for block in blocks {
        let redis = if block.redis {
            Some(tokio::task::block_in_place(RedisServer::start)?)
        } else {
            None
        };
        let dir = tempfile::tempdir()?;
        let manifest = artifacts::root_manifest(dir.path())?;
        // `--build` builds the component, which the harness already did.
        let mut args: Vec<String> = block
            .args
            .iter()
            .filter(|a| *a != "--build")
            .map(|a| match &redis {
                Some(r) => a.replace("redis://127.0.0.1:6379", &r.url()),
                None => a.clone(),
            })
            .collect();
        ensure!(
            !args.iter().any(|a| a == "--listen"),
            "the doc's commands use the default port"
        );
        let port = free_port();
        args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
        let store = if args.iter().any(|a| a.starts_with("redis_url=")) {
            ensure!(redis.is_some(), "redis_url without redis-server: {args:?}");
            "redis"
        } else {
            "sqlite"
        };
        let host = start(&manifest, &args)?;
        ensure!(host.addr().port() == port, "{}", host.output());
        check_health(&host, store).await?;
        for curl in &block.curls {
            let line = curl.replace("127.0.0.1:3000", &host.addr().to_string());
            let out = tokio::process::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &line])
                .output()
                .await?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            ensure!(out.status.success(), "{line}: {stdout}");
            let body: Value =
                serde_json::from_str(&stdout).with_context(|| format!("{line}: {stdout}"))?;
            if line.contains("/readyz") {
                ensure!(body["data"]["store"] == store, "{line}: {body}");
            } else {
                ensure!(body["data"]["status"] == "ok", "{line}: {body}");
            }
        }
    }
    Ok(())
}

/// `deploy/spin-redis.toml` (platforms without SQLite) is `spin.toml` minus
/// `sqlite_databases`, with `redis_url` / `redis_origin` required, its paths
/// relative to `deploy/`, and nothing else changed.
#[test]
fn redis_only_manifest_is_spin_toml_without_sqlite() -> Result<()> {
    let root = artifacts::workspace_root();
    let parse = |p: &str| -> Result<toml_edit::DocumentMut> {
        Ok(std::fs::read_to_string(root.join(p))?.parse()?)
    };
    let (mut full, mut redis_only) = (parse("spin.toml")?, parse("deploy/spin-redis.toml")?);
    for name in ["redis_url", "redis_origin"] {
        let v = redis_only["variables"][name]
            .as_inline_table()
            .context(name)?;
        ensure!(
            v.get("required").and_then(|r| r.as_bool()) == Some(true),
            "{name} is not required"
        );
        ensure!(v.get("default").is_none(), "{name} has a default");
        ensure!(
            v.get("secret").and_then(|s| s.as_bool())
                == full["variables"][name]
                    .as_inline_table()
                    .and_then(|t| t.get("secret"))
                    .and_then(|s| s.as_bool()),
            "{name}: secret differs"
        );
        full["variables"][name] = toml_edit::Item::None;
        redis_only["variables"][name] = toml_edit::Item::None;
    }
    let dock = full["component"]["dock"]
        .as_table_mut()
        .context("[component.dock]")?;
    ensure!(
        dock.remove("sqlite_databases").is_some(),
        "spin.toml grants no SQLite?"
    );
    let source = dock.remove("source").context("source")?;
    let only = redis_only["component"]["dock"]
        .as_table_mut()
        .context("[component.dock]")?;
    ensure!(
        only.get("sqlite_databases").is_none(),
        "the Redis-only manifest grants SQLite"
    );
    ensure!(
        only.remove("source")
            .and_then(|s| s.as_str().map(str::to_owned))
            == source.as_str().map(|s| format!("../{s}")),
        "source is not ../ of spin.toml's"
    );
    let build = only["build"].as_table_mut().context("build")?;
    ensure!(
        build
            .remove("workdir")
            .and_then(|w| w.as_str().map(str::to_owned))
            .as_deref()
            == Some("..")
    );
    // What is left must be identical (comments aside).
    let plain = |d: &toml_edit::DocumentMut| -> Result<toml_edit::DocumentMut> {
        let mut d = d.clone();
        d.fmt();
        Ok(d.to_string()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .parse()?)
    };
    let (a, b) = (plain(&full)?.to_string(), plain(&redis_only)?.to_string());
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.split(" #").next().unwrap_or(l).trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    };
    ensure!(
        strip(&a) == strip(&b),
        "spin.toml and deploy/spin-redis.toml differ beyond SQLite:\n{a}\n---\n{b}"
    );
    Ok(())
}

/// The Redis-only manifest serves on Redis, and refuses to start without
/// `redis_url` (a required variable), naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_only_manifest_serves_and_requires_redis() -> Result<()> {
    let redis = tokio::task::block_in_place(RedisServer::start)?;
    let dir = tempfile::tempdir()?;
    let text = std::fs::read_to_string(artifacts::workspace_root().join("deploy/spin-redis.toml"))?;
    let manifest = artifacts::write_manifest(
        dir.path(),
        &artifacts::with_sources(&text, &[("dock", Path::new(artifacts::SPIN_APP_WASM))])?,
    )?;
    let host = start(&manifest, &redis_args(&redis))?;
    check_health(&host, "redis").await?;
    ensure!(
        !dir.path().join(".spin/sqlite_db.db").exists(),
        "a SQLite file appeared"
    );
    drop(host);
    let exit = tokio::task::block_in_place(|| {
        Host::builder(&manifest)
            .args(&["--variable", &format!("redis_origin={}", redis.url())])
            .run_to_exit(Duration::from_secs(120))
    })?;
    ensure!(
        !exit.status.success(),
        "started without redis_url:\n{}",
        exit.output
    );
    ensure!(
        exit.output.contains("redis_url"),
        "the error does not name redis_url:\n{}",
        exit.output
    );
    Ok(())
}

/// A manifest that grants no SQLite database, run without Redis: the service
/// starts, `/healthz` is 200, and every request that needs the store is a
/// clear 500 `config_error` naming what to set — not a trap or a 503 that
/// invites retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_at_all_is_a_config_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&manifest)?.parse()?;
    doc["component"]["dock"]["sqlite_databases"] = toml_edit::Item::None;
    std::fs::write(&manifest, doc.to_string())?;
    let host = start(&manifest, &[])?;
    let (status, body) = get_json(&host.url("/healthz")).await?;
    ensure!(status == 200, "/healthz {status}: {body}");
    for (method, path) in [("GET", "/readyz"), ("POST", "/api/v1/verify/session")] {
        let resp = reqwest::Client::new()
            .request(method.parse()?, host.url(path))
            .bearer_auth("dock_whatever")
            .json(&serde_json::json!({"pid": "pid-x", "clientId": "u"}))
            .timeout(T)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await?;
        ensure!(status == 500, "{method} {path}: {status} {body}");
        ensure!(
            body["error"]["code"] == "config_error",
            "{method} {path}: {body}"
        );
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        ensure!(
            msg.contains("redis_url") && msg.contains("sqlite_databases"),
            "{msg}"
        );
    }
    ensure!(!host.output().contains("panicked"), "{}", host.output());
    Ok(())
}

/// The Python environment with `kubernetes-validate` (PyPI; Kubernetes'
/// own OpenAPI schemas per release) that `./dev setup` makes:
/// `DOCK_K8S_VENV`, else `target/k8s-validate`.
fn k8s_venv() -> Result<PathBuf> {
    let venv = std::env::var_os("DOCK_K8S_VENV").map_or_else(
        || artifacts::workspace_root().join("target/k8s-validate"),
        PathBuf::from,
    );
    ensure!(
        venv.join("bin/kubernetes-validate").exists(),
        "no kubernetes-validate in {}: run ./dev setup (or set DOCK_K8S_VENV)",
        venv.display()
    );
    Ok(venv)
}

/// `kubernetes-validate --strict` (unknown fields are errors) on `files`
/// against Kubernetes 1.37: (passed, output).
fn kubernetes_validate(venv: &Path, files: &[PathBuf]) -> Result<(bool, String)> {
    let out = std::process::Command::new(venv.join("bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .args(files)
        .output()
        .context("run kubernetes-validate")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success() && !text.contains("ERROR"), text))
}

/// Every document of a YAML file, as JSON (PyYAML, which kubernetes-validate brings).
fn yaml_documents(venv: &Path, file: &Path) -> Result<Vec<Value>> {
    let out = std::process::Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(file)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// `deploy/kubernetes/`: every Kubernetes object valid against Kubernetes'
/// published schemas (strict), the `SpinApp` against SpinKube's reference
/// (`schema/spinapp.schema.json`); both validators shown to reject a typo.
/// Cross-checked with `spin.toml`: every SpinApp variable exists there, the
/// secret ones come from the Secret (never inline), every Secret key used
/// exists. Then the commands the manifests run are run: Redis' start-up line
/// (AOF, noeviction, the password required and in no process's arguments)
/// and the webhook CronJob's dispatch loop against dock-host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_manifests_validate_and_their_commands_run() -> Result<()> {
    let root = artifacts::workspace_root();
    let dir = root.join("deploy/kubernetes");
    let venv = k8s_venv()?;
    let file = |name: &str| dir.join(name);
    let core = [
        file("secret.yaml"),
        file("redis.yaml"),
        file("webhook-dispatch.yaml"),
    ];
    let (ok, out) = kubernetes_validate(&venv, &core)?;
    ensure!(ok, "kubernetes-validate:\n{out}");
    for kind in [
        "secret/",
        "configmap/",
        "service/",
        "statefulset/",
        "cronjob/",
    ] {
        ensure!(
            out.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{out}"
        );
    }
    let tmp = tempfile::tempdir()?;
    let typo = tmp.path().join("typo.yaml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&core[1])?.replace("  serviceName:", "  servicename:"),
    )?;
    let (ok, out) = kubernetes_validate(&venv, &[typo])?;
    ensure!(!ok, "a misspelled StatefulSet field passed:\n{out}");

    // The SpinApp.
    let docs = |name: &str| yaml_documents(&venv, &file(name));
    let spinapp = docs("spinapp.yaml")?.pop().context("a SpinApp")?;
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(file(
        "schema/spinapp.schema.json",
    ))?)?;
    let validator = jsonschema::draft202012::new(&schema).context("compile the SpinApp schema")?;
    let errors: Vec<String> = validator
        .iter_errors(&spinapp)
        .map(|e| e.to_string())
        .collect();
    ensure!(errors.is_empty(), "spinapp.yaml: {}", errors.join("; "));
    let mut misspelled = spinapp.clone();
    misspelled["spec"]["replica"] = misspelled["spec"]["replicas"].take();
    ensure!(
        !validator.is_valid(&misspelled),
        "a misspelled SpinApp field passed"
    );

    // Against spin.toml and the Secret.
    let manifest: toml_edit::DocumentMut =
        std::fs::read_to_string(root.join("spin.toml"))?.parse()?;
    let declared = manifest["variables"].as_table().context("[variables]")?;
    let secret = docs("secret.yaml")?.pop().context("a Secret")?;
    let secret_keys = secret["stringData"].as_object().context("stringData")?;
    for var in spinapp["spec"]["variables"]
        .as_array()
        .context("variables")?
    {
        let name = var["name"].as_str().context("name")?;
        let decl = declared
            .get(name)
            .with_context(|| format!("SpinApp variable {name} is not in spin.toml"))?;
        let is_secret = decl
            .as_inline_table()
            .and_then(|t| t.get("secret"))
            .and_then(|v| v.as_bool())
            == Some(true);
        if is_secret || name == "redis_url" {
            ensure!(
                var.get("value").is_none(),
                "{name} is a secret: valueFrom, not value"
            );
        }
        if let Some(key) = var["valueFrom"]["secretKeyRef"]["key"].as_str() {
            ensure!(secret_keys.contains_key(key), "no key {key} in the Secret");
        }
    }
    let redis = docs("redis.yaml")?;
    let statefulset = redis
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .context("the Redis StatefulSet")?;
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    for env in container["env"].as_array().context("env")? {
        let key = env["valueFrom"]["secretKeyRef"]["key"]
            .as_str()
            .context("key")?;
        ensure!(secret_keys.contains_key(key), "no key {key} in the Secret");
    }
    let password = secret_keys["redis_password"]
        .as_str()
        .context("redis_password")?;
    ensure!(
        secret_keys["redis_url"]
            .as_str()
            .is_some_and(|u| u.contains(&format!(":{password}@"))),
        "redis_url carries redis_password"
    );

    // Redis' start-up line, run here (paths moved into a temporary directory).
    let conf = redis
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["redis.conf"].as_str())
        .context("redis.conf")?;
    let (etc, run, data) = (
        tmp.path().join("etc"),
        tmp.path().join("run"),
        tmp.path().join("data"),
    );
    for d in [&etc, &run, &data] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(
        etc.join("redis.conf"),
        conf.replace("dir /data", &format!("dir {}", data.display())),
    )?;
    let port = free_port();
    let line = container["args"][0]
        .as_str()
        .context("args")?
        .replace("/etc/redis", &etc.display().to_string())
        .replace("/run/redis", &run.display().to_string())
        + &format!(" --port {port}");
    let pass = "k8s-test-password";
    let mut server = std::process::Command::new("sh")
        .args(["-c", &line])
        .env("REDIS_PASSWORD", pass)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let cli = |args: &[&str], auth: bool| {
        let mut c = std::process::Command::new("redis-cli");
        c.args(["-p", &port.to_string()]).args(args);
        if auth {
            c.env("REDISCLI_AUTH", pass);
        }
        c.output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let result = (|| -> Result<()> {
        wait_until(T, "the manifest's Redis", || {
            cli(&["ping"], true).is_ok_and(|o| o == "PONG")
        })?;
        ensure!(
            cli(&["ping"], false)?.contains("NOAUTH"),
            "Redis answers without the password"
        );
        ensure!(cli(&["config", "get", "appendonly"], true)? == "appendonly\nyes");
        ensure!(
            cli(&["config", "get", "maxmemory-policy"], true)? == "maxmemory-policy\nnoeviction"
        );
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.id()))?;
        ensure!(
            !String::from_utf8_lossy(&cmdline).contains(pass),
            "the password is in Redis' arguments"
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result?;

    // The CronJob's loop, once, against dock-host with the same admin token.
    let cron = docs("webhook-dispatch.yaml")?.pop().context("a CronJob")?;
    let job = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let token = "k8s-test-admin-token-0123456789";
    let manifest_path = artifacts::root_manifest(tmp.path())?;
    let host = start(
        &manifest_path,
        &[
            "--variable".into(),
            format!("admin_token={token}"),
            "--sqlite-db".into(),
            "memory".into(),
        ],
    )?;
    let script = job["args"][0]
        .as_str()
        .context("args")?
        .replace("$(seq 12)", "1")
        .replace("sleep 5", "true")
        .replace("http://dock-verify", &host.url(""));
    let run = |token: &str| {
        std::process::Command::new("sh")
            .args(["-c", &script])
            .env("ADMIN_TOKEN", token)
            .output()
    };
    let out = run(token)?;
    ensure!(
        out.status.success(),
        "the CronJob's dispatch call: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !run("a-wrong-token-0123456789")?.status.success(),
        "a wrong token passed curl -f"
    );
    Ok(())
}
