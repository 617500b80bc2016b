//! The npm package `@dock-verify/client`, as a user gets it: `bindings/test.sh`
//! builds it with wasm-bindgen, packs it, installs the tarball into a scratch
//! project, type-checks samples with tsc, and runs its node tests — unit tests
//! and end-to-end tests against this dock-host with Redis, including a server
//! restart while a client waits (the restart is done here, on request).

#[path = "api_support/mod.rs"]
mod api_support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_package_unit_and_end_to_end() -> Result<()> {
    // A port for the e2e suite's webhook receiver, allowed as a webhook origin.
    let webhook_port = dock_tests::free_port().to_string();
    let webhook_origin = format!("http://127.0.0.1:{webhook_port}");
    let mut svc = Service::start_public(
        StoreKind::Redis,
        &[
            ("session_ttl_seconds", "30"),
            ("webhook_origin_a", webhook_origin.as_str()),
        ],
    )
    .await?;
    let base = svc.url("");
    let control = tempfile::tempdir()?;
    let (request, done) = (
        control.path().join("restart"),
        control.path().join("restarted"),
    );
    // The e2e suite runs this command to restart the server; we do the restart.
    let restart_cmd = format!(
        "touch '{r}' && while [ ! -e '{d}' ]; do sleep 0.05; done && rm -f '{d}'",
        r = request.display(),
        d = done.display()
    );
    let watcher = {
        let (request, done) = (request.clone(), done.clone());
        tokio::spawn(async move {
            let mut restarts = 0;
            loop {
                if request.exists() {
                    std::fs::remove_file(&request)?;
                    tokio::task::block_in_place(|| svc.restart_host(0))?;
                    restarts += 1;
                    std::fs::write(&done, b"")?;
                }
                if request.with_extension("stop").exists() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok((restarts, svc))
        })
    };
    let root = dock_tests::artifacts::workspace_root();
    let out = tokio::process::Command::new("bash")
        .arg(root.join("bindings/test.sh"))
        .env("DOCK_TEST_BASE_URL", &base)
        .env("DOCK_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("DOCK_TEST_SESSION_TTL", "30")
        .env("DOCK_TEST_RESTART_CMD", &restart_cmd)
        .env("DOCK_TEST_WEBHOOK_PORT", &webhook_port)
        .output()
        .await
        .context("run bindings/test.sh")?;
    std::fs::write(request.with_extension("stop"), b"")?;
    let (restarts, svc) = watcher.await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    ensure!(
        out.status.success(),
        "bindings/test.sh failed\n{stdout}\n{stderr}\nhost:\n{}",
        svc.hosts[0].output()
    );
    ensure!(
        stdout.contains("# fail 0"),
        "node --test reported failures:\n{stdout}"
    );
    ensure!(
        !stdout.contains("# skipped") || stdout.contains("# skipped 0"),
        "skipped tests:\n{stdout}"
    );
    ensure!(restarts >= 1, "the restart test never asked for a restart");
    Ok(())
}
