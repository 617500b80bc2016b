//! `--runtime-config-file`: the subset of Spin's runtime configuration this host
//! understands.
//!
//! Supported:
//! ```toml
//! [sqlite_database.default]
//! type = "spin"          # Spin's built-in SQLite
//! path = "data/app.db"   # relative to the runtime config file; omit for in-memory
//! ```
//! Any other table (`key_value_store`, `variables_provider`, `llm_compute`,
//! `outbound_networking`, `client_tls`, other database types or names...) is a
//! startup error naming it, rather than being silently ignored.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::sqlite::DatabaseLocation;

/// The parsed runtime configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Where the `default` database lives, if configured.
    pub default_sqlite: Option<DatabaseLocation>,
}

impl RuntimeConfig {
    /// Reads `path`. Relative database paths resolve against the current
    /// directory, as `spin up` resolves them (Spin passes its working
    /// directory to the SQLite runtime config), not against the file's.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        let dir = std::env::current_dir().context("cannot read the current directory")?;
        Self::parse(&text, &dir)
            .with_context(|| format!("invalid runtime config {}", path.display()))
    }

    /// Parses runtime config text; relative paths resolve against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let mut config = Self::default();
        for (key, value) in &table {
            match key.as_str() {
                "sqlite_database" => {
                    let dbs = value
                        .as_table()
                        .context("`sqlite_database` must be a table")?;
                    for (name, db) in dbs {
                        if name != "default" {
                            bail!(
                                "unsupported runtime config: sqlite_database.{name} (only \"default\")"
                            );
                        }
                        config.default_sqlite = Some(parse_sqlite(db, dir)?);
                    }
                }
                other => bail!("unsupported runtime config: [{other}]"),
            }
        }
        Ok(config)
    }
}

fn parse_sqlite(db: &toml::Value, dir: &Path) -> Result<DatabaseLocation> {
    let t = db
        .as_table()
        .context("sqlite_database.default must be a table")?;
    for key in t.keys() {
        if key != "type" && key != "path" {
            bail!("unsupported runtime config: sqlite_database.default.{key}");
        }
    }
    match t.get("type").and_then(toml::Value::as_str) {
        Some("spin") => {}
        Some(other) => bail!(
            "unsupported runtime config: sqlite_database.default type {other:?} (only \"spin\")"
        ),
        None => bail!("sqlite_database.default needs `type = \"spin\"`"),
    }
    Ok(match t.get("path").and_then(toml::Value::as_str) {
        Some(p) => DatabaseLocation::File(dir.join(p)),
        None => DatabaseLocation::Memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sqlite_subset() {
        let dir = Path::new("/cfg");
        let c = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"db/x.db\"\n",
            dir,
        )
        .unwrap();
        assert_eq!(
            c.default_sqlite,
            Some(DatabaseLocation::File("/cfg/db/x.db".into()))
        );
        let c = RuntimeConfig::parse("[sqlite_database.default]\ntype = \"spin\"\n", dir).unwrap();
        assert_eq!(c.default_sqlite, Some(DatabaseLocation::Memory));
        assert_eq!(
            RuntimeConfig::parse("", dir).unwrap(),
            RuntimeConfig::default()
        );
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        let dir = Path::new("/cfg");
        for (text, needle) in [
            (
                "[key_value_store.default]\ntype = \"redis\"\n",
                "key_value_store",
            ),
            (
                "[[variables_provider]]\ntype = \"vault\"\n",
                "variables_provider",
            ),
            ("[sqlite_database.default]\ntype = \"libsql\"\n", "libsql"),
            ("[sqlite_database.other]\ntype = \"spin\"\n", "other"),
        ] {
            let e = format!("{:#}", RuntimeConfig::parse(text, dir).unwrap_err());
            assert!(e.contains(needle), "{needle} not in {e}");
        }
    }
}
