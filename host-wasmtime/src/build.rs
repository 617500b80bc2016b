//! `--build`: run each component's `[component.X.build] command` before serving,
//! as `spin up --build` does (through the shell, in `workdir` relative to the
//! manifest directory, stopping at the first failure).

use anyhow::{Context as _, Result, bail};

use crate::manifest::Manifest;

/// Runs every component's build commands, in component-id order.
pub fn run_builds(manifest: &Manifest) -> Result<()> {
    for (id, component) in &manifest.doc.components {
        let Some(build) = &component.build else {
            tracing::info!(component = id, "no build command");
            continue;
        };
        let dir = match &build.workdir {
            Some(w) => manifest.dir.join(w),
            None => manifest.dir.clone(),
        };
        for command in build.command.iter() {
            println!("Building component {id} with `{command}`");
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&dir)
                .status()
                .with_context(|| format!("component {id:?}: cannot run `{command}`"))?;
            if !status.success() {
                bail!("component {id:?}: build command `{command}` failed ({status})");
            }
        }
    }
    println!("Finished building all Spin components");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &std::path::Path, build: &str) -> Manifest {
        let text = format!(
            "spin_manifest_version = 2\n[application]\nname = \"b\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n{build}"
        );
        std::fs::write(dir.join("spin.toml"), text).unwrap();
        Manifest::load(&dir.join("spin.toml")).unwrap()
    }

    #[test]
    fn runs_commands_in_workdir_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let m = manifest(
            dir.path(),
            "[component.c.build]\ncommand = [\"echo one > out.txt\", \"echo two >> out.txt\"]\nworkdir = \"sub\"\n",
        );
        run_builds(&m).unwrap();
        let out = std::fs::read_to_string(dir.path().join("sub/out.txt")).unwrap();
        assert_eq!(out, "one\ntwo\n");

        let m = manifest(dir.path(), "[component.c.build]\ncommand = \"exit 3\"\n");
        let e = run_builds(&m).unwrap_err();
        assert!(format!("{e:#}").contains("exit 3"), "{e:#}");
    }
}
