//! `spin.toml` (manifest version 2): parsing and validation.
//!
//! The schema mirrors Spin's `spin-manifest` v2 (`deny_unknown_fields` at every
//! level, kebab-case component ids, lower_snake_case variable names, a variable
//! is `required` xor has a `default`). Features Spin has but this host does not
//! implement are parsed so that [`Manifest::validate`] can reject them with a
//! message naming the feature, instead of silently ignoring them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail, ensure};
use serde::Deserialize;

use crate::template::Template;

/// A parsed manifest plus the directory it was loaded from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// The manifest file itself.
    pub path: PathBuf,
    /// The parsed document.
    pub doc: ManifestDoc,
}

/// The manifest document (`spin_manifest_version = 2`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// Must be 2.
    pub spin_manifest_version: toml::Value,
    /// `[application]`.
    pub application: Application,
    /// `[variables]`: application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// `[[trigger.<type>]]`.
    #[serde(default, rename = "trigger")]
    pub triggers: BTreeMap<String, Vec<toml::Table>>,
    /// `[component.<id>]`.
    #[serde(default, rename = "component")]
    pub components: BTreeMap<String, Component>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The application name.
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Its authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Deployment targets (ignored by `spin up`, and here).
    #[serde(default)]
    pub targets: Vec<toml::Value>,
    /// Application-wide trigger settings (`[application.trigger.http]`): not supported.
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    /// Tool metadata (ignored, as by Spin).
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// A `[variables]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a value must be supplied at runtime.
    #[serde(default)]
    pub required: bool,
    /// The value used when no provider supplies one.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether the value is secret (never printed).
    #[serde(default)]
    pub secret: bool,
}

/// A `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// The Wasm file, relative to the manifest (a table means a remote or registry source).
    pub source: toml::Value,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Component variables: name -> template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables for the guest (WASI environment).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Files to mount: not supported.
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Files excluded from `files`: not supported.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// The Spin 1 form of outbound hosts: not supported (use `allowed_outbound_hosts`).
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    /// Outbound hosts the component may reach (templated).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value stores: not supported.
    #[serde(default, alias = "key-value-stores")]
    pub key_value_stores: Vec<String>,
    /// SQLite databases the component may open (only `default`).
    #[serde(default, alias = "sqlite-databases")]
    pub sqlite_databases: Vec<String>,
    /// AI models: not supported.
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Deployment targets (ignored).
    #[serde(default)]
    pub targets: Option<Vec<toml::Value>>,
    /// `[component.<id>.build]`, used by `--build`.
    #[serde(default)]
    pub build: Option<BuildConfig>,
    /// Tool metadata (ignored, as by Spin).
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
    /// Component dependencies: not supported.
    #[serde(default)]
    pub dependencies_inherit_configuration: Option<bool>,
    /// Component dependencies: not supported.
    #[serde(default)]
    pub dependencies: BTreeMap<String, toml::Value>,
    /// Build profiles: not supported.
    #[serde(default)]
    pub profile: BTreeMap<String, toml::Value>,
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// One command or several, run through the shell.
    pub command: Commands,
    /// Working directory relative to the manifest directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Paths `spin watch` watches (unused here).
    #[serde(default)]
    pub watch: Vec<String>,
}

/// One build command or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Commands {
    /// `command = "..."`.
    Single(String),
    /// `command = ["...", "..."]`.
    Multiple(Vec<String>),
}

impl Commands {
    /// The commands in order.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        match self {
            Commands::Single(c) => std::slice::from_ref(c).iter(),
            Commands::Multiple(cs) => cs.iter(),
        }
    }
}

/// A validated `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// The route pattern as written.
    pub route: String,
    /// The component id it routes to.
    pub component: String,
}

impl Manifest {
    /// Reads and parses `path` (no validation beyond the schema).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let doc = Self::parse_str(&text)
            .with_context(|| format!("invalid manifest {}", path.display()))?;
        let path = std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self { dir, path, doc })
    }

    /// Parses manifest text.
    pub fn parse_str(text: &str) -> Result<ManifestDoc> {
        let doc: ManifestDoc = toml::from_str(text)?;
        match doc.spin_manifest_version.as_integer() {
            Some(2) => Ok(doc),
            _ => bail!(
                "unsupported spin_manifest_version {} (this host reads version 2)",
                doc.spin_manifest_version
            ),
        }
    }

    /// The local Wasm path of a component, resolved against the manifest directory.
    pub fn component_source(&self, id: &str) -> Result<PathBuf> {
        let component = self
            .doc
            .components
            .get(id)
            .with_context(|| format!("no component {id:?}"))?;
        match &component.source {
            toml::Value::String(path) => Ok(self.dir.join(path)),
            other => bail!(
                "component {id:?}: source {other} is not supported (only local file paths are)"
            ),
        }
    }
}

impl ManifestDoc {
    /// Checks everything Spin checks that this host relies on, and rejects
    /// features this host does not implement, naming them. Returns the HTTP
    /// triggers in manifest order.
    pub fn validate(&self) -> Result<Vec<HttpTrigger>> {
        let app = &self.application;
        ensure!(
            !app.name.trim().is_empty(),
            "application.name must not be empty"
        );
        if let Some(kind) = app.trigger.keys().next() {
            bail!("unsupported manifest feature: [application.trigger.{kind}] settings");
        }
        for (name, var) in &self.variables {
            validate_variable_name(name)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("invalid variable {name:?}"))?;
            ensure!(
                var.required ^ var.default.is_some(),
                "invalid variable {name:?}: must be `required` OR have a `default`"
            );
        }
        for (id, c) in &self.components {
            validate_component(id, c, &self.variables)?;
        }
        let mut triggers = Vec::new();
        for (kind, entries) in &self.triggers {
            if kind != "http" {
                bail!(
                    "unsupported manifest feature: trigger type {kind:?} (only `http` is supported)"
                );
            }
            for entry in entries {
                triggers.push(self.validate_http_trigger(entry)?);
            }
        }
        ensure!(
            !triggers.is_empty(),
            "the manifest has no [[trigger.http]] entries"
        );
        Ok(triggers)
    }

    fn validate_http_trigger(&self, entry: &toml::Table) -> Result<HttpTrigger> {
        let mut route = None;
        let mut component = None;
        for (key, value) in entry {
            match key.as_str() {
                "id" => {}
                "route" => match value {
                    toml::Value::String(r) => route = Some(r.clone()),
                    toml::Value::Table(_) => {
                        bail!(
                            "unsupported manifest feature: private routes (`route = {{ private = true }}`)"
                        )
                    }
                    other => bail!("invalid http trigger route {other}"),
                },
                "component" => match value {
                    toml::Value::String(c) => component = Some(c.clone()),
                    _ => bail!("unsupported manifest feature: inline trigger components"),
                },
                "executor" => {
                    let kind = value
                        .get("type")
                        .and_then(toml::Value::as_str)
                        .unwrap_or_default();
                    if kind != "http" {
                        bail!("unsupported manifest feature: http trigger executor {value}");
                    }
                }
                other => bail!("unsupported manifest feature: http trigger field `{other}`"),
            }
        }
        let route = route.context("an http trigger has no `route`")?;
        let component = component
            .with_context(|| format!("the http trigger for route {route:?} has no `component`"))?;
        ensure!(
            self.components.contains_key(&component),
            "the http trigger for route {route:?} names component {component:?}, which is not defined"
        );
        Ok(HttpTrigger { route, component })
    }
}

fn validate_component(
    id: &str,
    c: &Component,
    app_vars: &BTreeMap<String, Variable>,
) -> Result<()> {
    validate_kebab_id(id).with_context(|| format!("invalid component id {id:?}"))?;
    let unsupported = |what: &str| -> Result<()> {
        bail!("unsupported manifest feature in component {id:?}: {what}")
    };
    match &c.source {
        toml::Value::String(_) => {}
        toml::Value::Table(t) if t.contains_key("url") => unsupported("`source` from a URL")?,
        toml::Value::Table(_) => unsupported("`source` from a registry")?,
        other => bail!("component {id:?}: invalid source {other}"),
    }
    if !c.files.is_empty() || !c.exclude_files.is_empty() {
        unsupported("`files`")?;
    }
    if !c.allowed_http_hosts.is_empty() {
        unsupported("`allowed_http_hosts` (use `allowed_outbound_hosts`)")?;
    }
    if !c.key_value_stores.is_empty() {
        unsupported("`key_value_stores`")?;
    }
    if !c.ai_models.is_empty() {
        unsupported("`ai_models`")?;
    }
    if !c.dependencies.is_empty() || c.dependencies_inherit_configuration.is_some() {
        unsupported("`dependencies`")?;
    }
    if !c.profile.is_empty() {
        unsupported("`profile`")?;
    }
    for db in &c.sqlite_databases {
        if db != "default" {
            unsupported(&format!(
                "sqlite database {db:?} (only \"default\" is supported)"
            ))?;
        }
    }
    for (name, value) in &c.variables {
        validate_variable_name(name)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("component {id:?}: invalid variable name {name:?}"))?;
        let template = Template::parse(value)
            .with_context(|| format!("component {id:?}: variable {name:?}"))?;
        for var in template.variables() {
            ensure!(
                app_vars.contains_key(var),
                "component {id:?}: variable {name:?} refers to unknown variable {var:?}"
            );
        }
    }
    for host in &c.allowed_outbound_hosts {
        let template = Template::parse(host)
            .with_context(|| format!("component {id:?}: allowed_outbound_hosts entry {host:?}"))?;
        for var in template.variables() {
            ensure!(
                app_vars.contains_key(var),
                "component {id:?}: allowed_outbound_hosts entry {host:?} refers to unknown variable {var:?}"
            );
        }
    }
    Ok(())
}

/// Spin's variable-name rule: lower-case letters, digits and single underscores,
/// starting with a letter and ending with a letter or digit.
pub fn validate_variable_name(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ));
    }
    if !key.as_bytes()[0].is_ascii_lowercase() {
        return Err("must start with a lowercase ASCII letter".into());
    }
    if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        return Err("must end with a lowercase ASCII letter or digit".into());
    }
    if key.contains("__") {
        return Err("must not contain multiple consecutive underscores".into());
    }
    // The manifest's keys are Spin's snake-case ids: each word starts with a
    // letter (`webhook_origin_1` fails `spin up` with this message).
    if let Some(first) = key
        .split('_')
        .filter_map(|w| w.chars().next())
        .find(|c| !c.is_ascii_alphabetic())
    {
        return Err(format!(
            "'_'-separated words must start with an ASCII letter; got {first:?}"
        ));
    }
    Ok(())
}

/// Spin's component-id rule: `-`-separated words of lowercase ASCII letters and
/// digits, each starting with a letter.
fn validate_kebab_id(id: &str) -> Result<()> {
    ensure!(!id.is_empty(), "empty");
    ensure!(
        !id.contains('_'),
        "words must be separated with '-', not '_'"
    );
    for word in id.split('-') {
        let first = word
            .chars()
            .next()
            .context("'-'-separated words must not be empty")?;
        ensure!(
            first.is_ascii_alphabetic(),
            "'-'-separated words must start with an ASCII letter; got {first:?}"
        );
        ensure!(
            word.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "words may only contain lowercase alphanumeric ASCII; got {word:?}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"

[variables]
redis_url = { default = "redis://127.0.0.1:6379" }
api_key = { required = true, secret = true }

[[trigger.http]]
route = "/..."
component = "api"

[[trigger.http]]
route = "/users/:id"
component = "api"

[component.api]
source = "target/api.wasm"
allowed_outbound_hosts = ["{{ redis_url }}"]
sqlite_databases = ["default"]
[component.api.variables]
redis_url = "{{ redis_url }}"
key = "k-{{api_key}}"
[component.api.build]
command = "cargo build --target wasm32-wasip2 --release"
"#;

    fn doc(text: &str) -> Result<Vec<HttpTrigger>> {
        Manifest::parse_str(text)?.validate()
    }

    fn err(text: &str) -> String {
        format!("{:#}", doc(text).unwrap_err())
    }

    #[test]
    fn parses_a_full_manifest() {
        let triggers = doc(GOOD).unwrap();
        assert_eq!(
            triggers,
            vec![
                HttpTrigger {
                    route: "/...".into(),
                    component: "api".into()
                },
                HttpTrigger {
                    route: "/users/:id".into(),
                    component: "api".into()
                },
            ]
        );
        let d = Manifest::parse_str(GOOD).unwrap();
        assert!(d.variables["api_key"].secret);
        assert_eq!(
            d.components["api"]
                .build
                .as_ref()
                .unwrap()
                .command
                .iter()
                .count(),
            1
        );
    }

    #[test]
    fn rejects_unsupported_features_by_name() {
        let cases = [
            (
                GOOD.replace(
                    "trigger.http]]\nroute = \"/...\"",
                    "trigger.redis]]\nchannel = \"x\"",
                ),
                "trigger type \"redis\"",
            ),
            (
                GOOD.replace(
                    "sqlite_databases = [\"default\"]",
                    "key_value_stores = [\"default\"]",
                ),
                "key_value_stores",
            ),
            (
                GOOD.replace(
                    "source = \"target/api.wasm\"",
                    "source = { url = \"https://x/y.wasm\", digest = \"sha256:0\" }",
                ),
                "URL",
            ),
            (
                GOOD.replace(
                    "sqlite_databases = [\"default\"]",
                    "sqlite_databases = [\"other\"]",
                ),
                "\"other\"",
            ),
            (
                GOOD.replace(
                    "sqlite_databases = [\"default\"]",
                    "files = [\"static/**\"]",
                ),
                "files",
            ),
            (
                GOOD.replace("route = \"/users/:id\"", "route = { private = true }"),
                "private",
            ),
            (
                GOOD.replace("[application]", "[application]\nbogus = 1"),
                "bogus",
            ),
        ];
        for (text, needle) in cases {
            let e = err(&text);
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
        }
    }

    #[test]
    fn checks_variables_like_spin() {
        let both = GOOD.replace(
            "api_key = { required = true, secret = true }",
            "api_key = { required = true, default = \"x\" }",
        );
        assert!(err(&both).contains("`required` OR have a `default`"));
        let neither = GOOD.replace(
            "api_key = { required = true, secret = true }",
            "api_key = { secret = true }",
        );
        assert!(err(&neither).contains("`required` OR have a `default`"));
        let unknown = GOOD.replace("k-{{api_key}}", "{{ nope }}");
        assert!(err(&unknown).contains("unknown variable \"nope\""));
        let bad_name = GOOD.replace("redis_url = { default", "Redis_Url = { default");
        assert!(err(&bad_name).contains("invalid variable \"Redis_Url\""));
        let version = GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(err(&version).contains("spin_manifest_version"));
    }

    #[test]
    fn variable_names() {
        for ok in ["a", "a1", "redis_url", "a_b_c"] {
            assert!(validate_variable_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "1a",
            "a_",
            "a__b",
            "a-b",
            "a_1",
            "webhook_origin_1",
        ] {
            assert!(validate_variable_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trigger_must_name_a_defined_component() {
        let e = err(&GOOD.replace(
            "component = \"api\"\n\n[[trigger.http]]",
            "component = \"nope\"\n\n[[trigger.http]]",
        ));
        assert!(e.contains("\"nope\""), "{e}");
    }
}
