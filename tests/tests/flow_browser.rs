//! The verification flow at verifyUrl in a real browser: headless Chromium
//! (Debian's), driven by playwright-core from `tests/browser/flow.test.mjs`,
//! against dock-host with Redis and two fake OAuth providers on loopback.
//! Screenshots of every page go to `target/artifacts/flow/`.

#[path = "api_support/mod.rs"]
mod api_support;

use anyhow::{Context as _, Result, ensure};
use api_support::{ADMIN_TOKEN, Service, StoreKind};
use dock_tests::fake_oauth::{FakeProvider, Kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_flow_in_chromium() -> Result<()> {
    let discord = FakeProvider::start(
        Kind::Discord,
        "discord-client",
        "discord-secret",
        "80351110224678912",
    )
    .await?;
    let roblox =
        FakeProvider::start(Kind::Roblox, "roblox-client", "roblox-secret", "1001").await?;
    let (d, r) = (discord.origin(), roblox.origin());
    let vars = [
        ("discord_oauth_base", d.as_str()),
        ("discord_client_id", "discord-client"),
        ("discord_client_secret", "discord-secret"),
        ("roblox_oauth_base", r.as_str()),
        ("roblox_client_id", "roblox-client"),
        ("roblox_client_secret", "roblox-secret"),
    ];
    let svc = Service::start_public(StoreKind::Redis, &vars).await?;
    // A second service whose sessions expire in 3 s, for "expired mid-flow".
    let mut short_vars = vars.to_vec();
    short_vars.push(("session_ttl_seconds", "3"));
    let short = Service::start_public(StoreKind::Sqlite, &short_vars).await?;
    let root = dock_tests::artifacts::workspace_root();
    let artifacts = root.join("target/artifacts/flow");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts)?;
    let out = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .arg(root.join("tests/browser/flow.test.mjs"))
        .env("DOCK_BASE", svc.url(""))
        .env("DOCK_BASE_SHORT_TTL", short.url(""))
        .env("DOCK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("DOCK_ARTIFACTS", &artifacts)
        .env("FAKE_DISCORD", discord.origin())
        .env("FAKE_ROBLOX", roblox.origin())
        .current_dir(root.join("tests/browser"))
        .output()
        .await
        .context("run node --test (is Node >= 20 installed?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    ensure!(
        out.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}\nhost:\n{}\nshort-TTL host:\n{}",
        svc.hosts[0].output(),
        short.hosts[0].output()
    );
    // Every token exchange proved its PKCE verifier; none failed it.
    let (ok_d, bad_d) = discord.pkce_counts();
    let (ok_r, bad_r) = roblox.pkce_counts();
    ensure!(
        ok_d >= 2 && ok_r >= 2 && bad_d == 0 && bad_r == 0,
        "pkce: discord {ok_d}/{bad_d}, roblox {ok_r}/{bad_r}"
    );
    // Nothing secret reached the host's log.
    let log = svc.hosts[0].output();
    for secret in ["discord-secret", "roblox-secret", "at-", "code-"] {
        ensure!(!log.contains(secret), "{secret:?} in the host log");
    }
    Ok(())
}
