//! One `npm pack` tarball of `@dock-verify/client`, end to end under every
//! JavaScript runtime: Node 20 (the machine's), 22, 24 and 26, Bun, Deno (bare
//! specifier from `node_modules`, and an `npm:` specifier), workerd (bundled
//! by esbuild the way wrangler bundles a Worker) and headless Chromium (an
//! esbuild browser bundle). The runtimes come from the npm registry
//! (`tests/runtimes/package.json`, installed by `./dev setup`).
//!
//! Each runs `tests/runtimes/e2e.mjs` — create → SSE wait → completed; `auto`
//! falling back to long-poll when the stream endpoint is no stream; abort;
//! a plain call answered 503 then retried; errors with the server's request
//! id — against dock-host with Redis, through a fault proxy
//! (`tests/runtimes/proxy.mjs`). The tarball's size budget is enforced here;
//! sizes and import times are printed (figures, not assertions).

#[path = "api_support/mod.rs"]
mod api_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// The packed tarball may not grow past this (bindings/npm/README.md says why).
const TARBALL_BUDGET_BYTES: u64 = 288 * 1024;
/// Deadline of one runtime's whole script.
const RUNTIME_DEADLINE: Duration = Duration::from_secs(180);

/// Files of `tests/runtimes` the scratch project gets (next to the installed package).
const SCRIPTS: &[&str] = &[
    "e2e.mjs",
    "report.mjs",
    "main.mjs",
    "main-deno-npm.mjs",
    "worker.mjs",
    "page.mjs",
];

struct Runtime {
    name: &'static str,
    /// Program and arguments, run in the scratch project; `None`: workerd or Chromium.
    command: Option<(PathBuf, Vec<&'static str>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tarball_under_every_runtime() -> Result<()> {
    let root = dock_tests::artifacts::workspace_root();
    let suite = root.join("tests/runtimes");
    let modules = suite.join("node_modules");
    ensure!(
        modules.join("bun").exists() && modules.join("workerd").exists(),
        "{} is missing: run ./dev setup (npm ci in tests/runtimes)",
        modules.display()
    );
    let scratch = tempfile::tempdir()?;
    let project = scratch.path().join("project");
    let out_dir = scratch.path().join("out");
    std::fs::create_dir_all(&project)?;

    // The tarball, as `npm pack` makes it, and its budget.
    let built = Command::new("bash")
        .arg(root.join("bindings/build.sh"))
        .env("DOCK_PACK_DIR", scratch.path().join("pack"))
        .output()
        .await
        .context("run bindings/build.sh")?;
    ensure!(
        built.status.success(),
        "bindings/build.sh failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let tarball = PathBuf::from(String::from_utf8(built.stdout)?.trim());
    let tarball_bytes = std::fs::metadata(&tarball)?.len();

    // The scratch project: the tarball from node_modules, the scripts beside it.
    std::fs::write(
        project.join("package.json"),
        r#"{ "name": "dock-runtime-scratch", "private": true, "type": "module" }"#,
    )?;
    std::fs::write(
        project.join("deno.json"),
        r#"{ "nodeModulesDir": "manual" }"#,
    )?;
    for script in SCRIPTS {
        std::fs::copy(suite.join(script), project.join(script))?;
    }
    run_ok(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg(&tarball)
            .current_dir(&project),
        "npm install the tarball",
    )
    .await?;
    let installed = project.join("node_modules/@dock-verify/client");
    let unpacked = dir_size(&installed)?;
    let wasm = std::fs::metadata(installed.join("wasm/dock_bindings_bg.wasm"))?.len();
    let bundles: Value = serde_json::from_str(
        &run_ok(
            Command::new("node")
                .arg(suite.join("bundle.mjs"))
                .arg(&project)
                .arg(&out_dir),
            "esbuild the worker and the page",
        )
        .await?,
    )?;
    println!(
        "sizes: tarball {tarball_bytes} B ({:.1} KiB), unpacked {unpacked} B, .wasm {wasm} B; bundles {bundles}",
        tarball_bytes as f64 / 1024.0
    );
    ensure!(
        tarball_bytes <= TARBALL_BUDGET_BYTES,
        "the tarball is {tarball_bytes} B, over its budget of {TARBALL_BUDGET_BYTES} B"
    );
    ensure!(
        bundles["wasmModules"] == json!(["dock_bindings_bg.wasm"]),
        "the Worker bundle should import the .wasm as a module (the package's workerd entry): {bundles}"
    );

    // The server, behind the fault proxy.
    let svc = Service::start(StoreKind::Redis, &[]).await?;
    let mut proxy = Command::new("node")
        .arg(suite.join("proxy.mjs"))
        .env("PROXY_UPSTREAM", svc.url(""))
        .env("PROXY_STATIC_DIR", &out_dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start the fault proxy")?;
    let mut lines = BufReader::new(proxy.stdout.take().context("proxy stdout")?).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the proxy did not start within 30 s")??
        .and_then(|l| l.strip_prefix("PROXY_LISTENING ").map(str::to_owned))
        .context("the proxy printed no port")?;
    let base = format!("http://127.0.0.1:{port}");

    let node_of = |v: &str| modules.join(format!("node{v}/bin/node"));
    let runtimes = [
        Runtime {
            name: "node20",
            command: Some(("node".into(), vec!["main.mjs"])),
        },
        Runtime {
            name: "node22",
            command: Some((node_of("22"), vec!["main.mjs"])),
        },
        Runtime {
            name: "node24",
            command: Some((node_of("24"), vec!["main.mjs"])),
        },
        Runtime {
            name: "node26",
            command: Some((node_of("26"), vec!["main.mjs"])),
        },
        Runtime {
            name: "bun",
            command: Some((modules.join(".bin/bun"), vec!["main.mjs"])),
        },
        Runtime {
            name: "deno",
            command: Some((modules.join(".bin/deno"), vec!["run", "-A", "main.mjs"])),
        },
        Runtime {
            name: "deno-npm-specifier",
            command: Some((
                modules.join(".bin/deno"),
                vec!["run", "-A", "main-deno-npm.mjs"],
            )),
        },
        Runtime {
            name: "workerd",
            command: None,
        },
        Runtime {
            name: "chromium",
            command: None,
        },
    ];
    let mut runs = Vec::new();
    for rt in runtimes {
        let pid = format!("rt-{}-{}", rt.name, std::process::id());
        let key = svc.tenant(&pid).await?;
        let params = json!({"baseUrl": base, "apiKey": key, "adminToken": ADMIN_TOKEN, "pid": pid});
        let (project, out_dir, modules, suite) = (
            project.clone(),
            out_dir.clone(),
            modules.clone(),
            suite.clone(),
        );
        runs.push(async move {
            let started = Instant::now();
            let result = tokio::time::timeout(RUNTIME_DEADLINE, async {
                match (&rt.command, rt.name) {
                    (Some((program, args)), _) => {
                        run_script(program, args, &project, &params).await
                    }
                    (None, "workerd") => run_workerd(&modules, &out_dir, &params).await,
                    (None, _) => run_chromium(&suite, &params).await,
                }
            })
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no result within {RUNTIME_DEADLINE:?}")));
            (rt.name, started.elapsed(), result)
        });
    }
    // Two at a time: the machine may have two cores and other suites.
    let mut results = Vec::new();
    let mut runs = runs.into_iter();
    loop {
        let batch: Vec<_> = runs.by_ref().take(2).collect();
        if batch.is_empty() {
            break;
        }
        results.extend(futures::future::join_all(batch).await);
    }

    let mut failed = Vec::new();
    println!("runtime              result  import ms  wall s");
    for (name, wall, result) in &results {
        match result {
            Ok(v) if v["ok"] == true => println!(
                "{name:<20} ok      {:>9}  {:>6.1}",
                v["importMs"]
                    .as_f64()
                    .map_or("-".into(), |ms| format!("{ms:.1}")),
                wall.as_secs_f64()
            ),
            Ok(v) => failed.push(format!("{name}: {}", v["error"])),
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    drop(proxy);
    ensure!(
        failed.is_empty(),
        "runtimes failed:\n{}\nhost:\n{}",
        failed.join("\n"),
        svc.hosts[0].output()
    );
    Ok(())
}

/// Runs `command`, failing with its output unless it exits 0; returns stdout.
async fn run_ok(command: &mut Command, what: &str) -> Result<String> {
    let out = command
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| what.to_owned())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The `DOCK_RESULT <json>` line a runner printed.
fn result_line(stdout: &str, stderr: &str) -> Result<Value> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DOCK_RESULT "))
        .with_context(|| format!("no DOCK_RESULT line:\n{stdout}\n{stderr}"))?;
    let v: Value = serde_json::from_str(line)?;
    if v["ok"] != true {
        bail!("{}\n{stderr}", v["error"].as_str().unwrap_or(line));
    }
    Ok(v)
}

/// Node, Bun, Deno: the runner script with the parameters in its environment.
async fn run_script(
    program: &Path,
    args: &[&str],
    project: &Path,
    params: &Value,
) -> Result<Value> {
    let out = Command::new(program)
        .args(args)
        .current_dir(project)
        .env(
            "DOCK_BASE_URL",
            params["baseUrl"].as_str().unwrap_or_default(),
        )
        .env(
            "DOCK_API_KEY",
            params["apiKey"].as_str().unwrap_or_default(),
        )
        .env(
            "DOCK_ADMIN_TOKEN",
            params["adminToken"].as_str().unwrap_or_default(),
        )
        .env("DOCK_PID", params["pid"].as_str().unwrap_or_default())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("run {}", program.display()))?;
    result_line(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// workerd: serves the bundled Worker (its `.wasm` as a module of its own;
/// no `nodejs_compat`) with outbound access to loopback; the script runs in
/// one request.
async fn run_workerd(modules: &Path, out_dir: &Path, params: &Value) -> Result<Value> {
    let port = dock_tests::free_port();
    let config = out_dir.join("workerd.capnp");
    std::fs::write(
        &config,
        format!(
            r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "dock_bindings_bg.wasm", wasm = embed "dock_bindings_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  globalOutbound = "loopback",
);
"#
        ),
    )?;
    let mut server = Command::new(modules.join("workerd/bin/workerd"))
        .args(["serve", "--verbose"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("start workerd")?;
    let url = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        match http.post(&url).json(params).send().await {
            Ok(r) => break r,
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                if let Ok(Some(status)) = server.try_wait() {
                    let out = server.wait_with_output().await?;
                    bail!(
                        "workerd exited ({status}):\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("POST to workerd"),
        }
    };
    let text = response.text().await?;
    let _ = server.start_kill();
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("workerd answered {text}"))?;
    if v["ok"] != true {
        let out = server.wait_with_output().await?;
        bail!(
            "{}\nworkerd: {}",
            v["error"],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(v)
}

/// Chromium: the proxy serves the page (same origin as the API).
async fn run_chromium(suite: &Path, params: &Value) -> Result<Value> {
    let base = params["baseUrl"].as_str().unwrap_or_default();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            params
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default())),
        )
        .finish();
    let out = Command::new("node")
        .arg(suite.join("browser.mjs"))
        .arg(format!("{base}/__runtime/index.html?{query}"))
        .arg(RUNTIME_DEADLINE.as_millis().to_string())
        .current_dir(suite)
        .kill_on_drop(true)
        .output()
        .await
        .context("run browser.mjs")?;
    result_line(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
