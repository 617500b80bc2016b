//! The guest components (built by `build.rs` with cargo) and manifests that
//! point at them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// The probe test component (`tests/components/probe`).
pub const PROBE_WASM: &str = env!("DOCK_PROBE_WASM");

/// The application component (`spin-app`).
pub const SPIN_APP_WASM: &str = env!("DOCK_SPIN_APP_WASM");

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("DOCK_WORKSPACE_ROOT"))
}

/// Writes `text` to `<dir>/spin.toml` and returns that path.
pub fn write_manifest(dir: &Path, text: &str) -> Result<PathBuf> {
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Rewrites the `source` of each named component in manifest `text`, keeping
/// everything else (comments included) as it is.
pub fn with_sources(text: &str, sources: &[(&str, &Path)]) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("invalid manifest TOML")?;
    for (id, path) in sources {
        let component = doc
            .get_mut("component")
            .and_then(|c| c.as_table_like_mut())
            .and_then(|c| c.get_mut(id))
            .and_then(|c| c.as_table_like_mut())
            .with_context(|| format!("the manifest has no [component.{id}]"))?;
        component.insert("source", toml_edit::value(path.display().to_string()));
    }
    Ok(doc.to_string())
}

/// The repository's `spin.toml` with every component's `source` pointing at
/// the freshly built app component, written to `<dir>/spin.toml`. Relative
/// paths in it (e.g. the default SQLite file `.spin/`) then live in `dir`.
pub fn root_manifest(dir: &Path) -> Result<PathBuf> {
    let root = workspace_root().join("spin.toml");
    let text = std::fs::read_to_string(&root)
        .with_context(|| format!("cannot read {}", root.display()))?;
    let doc: toml_edit::DocumentMut = text.parse().context("invalid spin.toml")?;
    let ids: Vec<String> = doc
        .get("component")
        .and_then(|c| c.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
        .unwrap_or_default();
    let app = Path::new(SPIN_APP_WASM);
    let sources: Vec<(&str, &Path)> = ids.iter().map(|id| (id.as_str(), app)).collect();
    write_manifest(dir, &with_sources(&text, &sources)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_sources() {
        let text = "# keep me\nspin_manifest_version = 2\n[component.a]\nsource = \"old.wasm\" # c\nallowed_outbound_hosts = []\n";
        let out = with_sources(text, &[("a", Path::new("/new/a.wasm"))]).unwrap();
        assert!(out.contains("# keep me"));
        assert!(out.contains("source = \"/new/a.wasm\""));
        assert!(out.contains("allowed_outbound_hosts = []"));
        assert!(with_sources(text, &[("b", Path::new("x"))]).is_err());
    }
}
