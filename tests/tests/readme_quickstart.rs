//! The README's "From a fresh clone to a completed session" block, run as
//! written against dock-host (only the `./dev up` line is replaced by the
//! host this test starts, with the same admin token, and `B` points at it).

use anyhow::{Context as _, Result, ensure};
use dock_tests::{Host, artifacts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quickstart_completes_a_session() -> Result<()> {
    let root = artifacts::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let section = readme
        .split("### From a fresh clone to a completed session")
        .nth(1)
        .context("README section")?;
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .context("sh block")?;
    // It waits for the service before its first call, and reads JSON with a
    // JSON parser, not sed.
    let first_curl = block
        .lines()
        .position(|l| l.starts_with("curl") || l.contains("=$(curl"))
        .context("a curl line")?;
    let wait = block
        .lines()
        .position(|l| l.starts_with("until curl") && l.contains("/readyz"))
        .context("no wait on /readyz")?;
    ensure!(wait < first_curl, "the wait on /readyz comes after a call");
    ensure!(!block.contains("sed "), "JSON parsed with sed");
    let up = block
        .lines()
        .find(|l| l.starts_with("./dev up"))
        .context("./dev up line")?;
    let token = up
        .split("admin_token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .context("admin token in ./dev up line")?;

    let dir = tempfile::tempdir()?;
    let manifest = artifacts::root_manifest(dir.path())?;
    let var = format!("admin_token={token}");
    let host = tokio::task::block_in_place(|| {
        Host::start(&manifest, &["--sqlite-db", "memory", "--variable", &var])
    })?;

    let script: String = block
        .lines()
        .filter(|l| !l.starts_with("./dev up"))
        .map(|l| {
            if l.starts_with("B=") {
                format!("B={}", host.base_url())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "README block failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The created session, the completion, and both waiters.
    ensure!(stdout.contains(r#""reusedExisting":false"#), "{stdout}");
    let completed = stdout.matches(r#""status":"completed""#).count();
    ensure!(
        completed >= 2,
        "completion and long-poll answers expected:\n{stdout}"
    );
    ensure!(
        stdout.contains("event: complete"),
        "the SSE waiter's event expected:\n{stdout}"
    );
    ensure!(stdout.contains(r#""robloxId":"1""#), "{stdout}");
    Ok(())
}
