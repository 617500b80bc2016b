//! Application variables and `spin:variables/variables@3.0.0`.
//!
//! Resolution order, highest priority first, as `spin up` does it:
//! 1. `--variable NAME=VALUE` on the command line;
//! 2. the environment variable `SPIN_VARIABLE_<NAME>` (name upper-cased), then the
//!    same key in a `.env` file in the working directory (Spin's env provider);
//! 3. the manifest's `default`.
//!
//! A `required` variable that no provider resolves is a startup error naming it.
//! Values are resolved once at startup; a component sees only the variables it
//! maps in `[component.X.variables]`, each a template over application variables.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use wasmtime::component::{Accessor, HasData};

use crate::bindings::variables3 as v3;
use crate::manifest::{Variable, validate_variable_name};
use crate::template::Template;

/// The resolved values of all application variables.
#[derive(Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
    secret: Vec<String>,
}

impl std::fmt::Debug for AppVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.values {
            if self.secret.contains(k) {
                m.entry(k, &"<secret>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// Where variable values come from, besides the manifest defaults.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    /// `--variable NAME=VALUE` pairs (later ones win).
    pub cli: Vec<(String, String)>,
    /// The process environment (or a test double).
    pub env: HashMap<String, String>,
    /// Entries of a `.env` file, consulted after `env`.
    pub dotenv: HashMap<String, String>,
}

impl Providers {
    /// Uses the real process environment and `./.env` if present.
    pub fn from_process(cli: Vec<(String, String)>) -> Result<Self> {
        Ok(Self {
            cli,
            env: std::env::vars().collect(),
            dotenv: read_dotenv(Path::new(".env"))?,
        })
    }

    fn get(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.cli.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        let key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        self.env
            .get(&key)
            .or_else(|| self.dotenv.get(&key))
            .cloned()
    }
}

/// Parses a `.env` file: `KEY=VALUE` lines, `#` comments, optional quotes.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            map.insert(k.trim().to_owned(), v.to_owned());
        }
    }
    Ok(map)
}

/// Parses one `--variable` argument.
pub fn parse_cli_variable(arg: &str) -> Result<(String, String), String> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not of the form NAME=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

impl AppVariables {
    /// Resolves every declared variable; fails naming all required variables
    /// that nothing provides. A `--variable` the manifest does not declare is
    /// ignored with a warning (Spin ignores it silently).
    pub fn resolve(declared: &BTreeMap<String, Variable>, providers: &Providers) -> Result<Self> {
        for (name, _) in &providers.cli {
            if !declared.contains_key(name) {
                tracing::warn!(
                    "--variable {name}: the manifest declares no variable {name:?}; ignored"
                );
            }
        }
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, var) in declared {
            match providers.get(name).or_else(|| var.default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            // Spin 4.1 says `no provider resolved required variable "name"` (first only).
            let names: Vec<String> = missing.iter().map(|n| format!("{n:?}")).collect();
            let how: Vec<String> = missing
                .iter()
                .map(|n| {
                    format!(
                        "--variable {n}=VALUE or SPIN_VARIABLE_{}",
                        n.to_ascii_uppercase()
                    )
                })
                .collect();
            bail!(
                "no provider resolved required variable {} (set {})",
                names.join(", "),
                how.join("; ")
            );
        }
        let secret = declared
            .iter()
            .filter(|(_, v)| v.secret)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(Self { values, secret })
    }

    /// The value of an application variable.
    pub fn get(&self, name: &str) -> Result<String> {
        self.values
            .get(name)
            .cloned()
            .with_context(|| format!("unknown variable {name:?}"))
    }

    /// Renders a template over application variables.
    pub fn render(&self, template: &str) -> Result<String> {
        Template::parse(template)?.render(|n| self.get(n))
    }

    /// Resolves a component's `[component.X.variables]` mapping.
    pub fn component_variables(
        &self,
        mapping: &BTreeMap<String, String>,
    ) -> Result<ComponentVariables> {
        let mut values = HashMap::new();
        for (name, template) in mapping {
            let value = self
                .render(template)
                .with_context(|| format!("component variable {name:?}"))?;
            values.insert(name.clone(), value);
        }
        Ok(ComponentVariables {
            values: Arc::new(values),
        })
    }
}

/// The variables one component can read, already resolved.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    values: Arc<HashMap<String, String>>,
}

impl ComponentVariables {
    /// `spin:variables` `get`, with Spin's errors: a malformed name is
    /// `invalid-name`, a name the component does not map is `undefined`.
    pub fn get(&self, component: &str, name: &str) -> Result<String, v3::Error> {
        validate_variable_name(name)
            .map_err(|reason| v3::Error::InvalidName(format!("{name:?}: {reason}")))?;
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| v3::Error::Undefined(format!("no variable for {component:?}.{name:?}")))
    }
}

/// Per-store state of the variables interface.
#[derive(Debug, Clone, Default)]
pub struct VariablesState {
    /// The component id (used in error messages, as Spin does).
    pub component: Arc<str>,
    /// Its resolved variables.
    pub vars: ComponentVariables,
}

/// Marker for `add_to_linker`.
#[derive(Debug)]
pub struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a mut VariablesState;
}

impl v3::Host for VariablesState {}

impl<T: Send> v3::HostWithStore<T> for Variables {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, v3::Error> {
        accessor.with(|mut access| {
            let state = access.get();
            state.vars.get(&state.component, &name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> BTreeMap<String, Variable> {
        let mut m = BTreeMap::new();
        m.insert(
            "greeting".into(),
            Variable {
                default: Some("hello".into()),
                ..Default::default()
            },
        );
        m.insert(
            "api_key".into(),
            Variable {
                required: true,
                secret: true,
                ..Default::default()
            },
        );
        m
    }

    fn providers(cli: &[(&str, &str)], env: &[(&str, &str)]) -> Providers {
        Providers {
            cli: cli
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dotenv: HashMap::new(),
        }
    }

    #[test]
    fn precedence_is_cli_then_env_then_default() {
        let d = declared();
        let p = providers(&[("api_key", "k")], &[]);
        assert_eq!(
            AppVariables::resolve(&d, &p)
                .unwrap()
                .get("greeting")
                .unwrap(),
            "hello"
        );
        let p = providers(&[("api_key", "k")], &[("SPIN_VARIABLE_GREETING", "env")]);
        assert_eq!(
            AppVariables::resolve(&d, &p)
                .unwrap()
                .get("greeting")
                .unwrap(),
            "env"
        );
        let p = providers(
            &[("api_key", "k"), ("greeting", "cli")],
            &[("SPIN_VARIABLE_GREETING", "env")],
        );
        assert_eq!(
            AppVariables::resolve(&d, &p)
                .unwrap()
                .get("greeting")
                .unwrap(),
            "cli"
        );
        let mut p = providers(&[], &[("SPIN_VARIABLE_API_KEY", "from-env")]);
        p.dotenv
            .insert("SPIN_VARIABLE_GREETING".into(), "dotenv".into());
        let v = AppVariables::resolve(&d, &p).unwrap();
        assert_eq!(v.get("api_key").unwrap(), "from-env");
        assert_eq!(v.get("greeting").unwrap(), "dotenv");
        assert!(
            !format!("{v:?}").contains("from-env"),
            "secrets are not printed"
        );
    }

    #[test]
    fn missing_required_variable_is_an_error_naming_it() {
        let e = AppVariables::resolve(&declared(), &providers(&[], &[])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no provider resolved required variable \"api_key\""),
            "{e}"
        );
        assert!(e.to_string().contains("SPIN_VARIABLE_API_KEY"), "{e}");
    }

    #[test]
    fn undeclared_cli_variable_is_ignored() {
        let v = AppVariables::resolve(
            &declared(),
            &providers(&[("api_key", "k"), ("nope", "x")], &[]),
        )
        .unwrap();
        assert!(v.get("nope").is_err());
    }

    #[test]
    fn component_mapping_and_spin_errors() {
        let v = AppVariables::resolve(&declared(), &providers(&[("api_key", "k")], &[])).unwrap();
        let mut mapping = BTreeMap::new();
        mapping.insert(
            "message".to_string(),
            "{{ greeting }}, {{api_key}}!".to_string(),
        );
        let c = v.component_variables(&mapping).unwrap();
        assert_eq!(c.get("comp", "message").unwrap(), "hello, k!");
        assert!(
            matches!(c.get("comp", "greeting"), Err(v3::Error::Undefined(m)) if m.contains("\"comp\".\"greeting\""))
        );
        assert!(matches!(
            c.get("comp", "Bad-Name"),
            Err(v3::Error::InvalidName(_))
        ));
    }

    #[test]
    fn cli_variable_syntax() {
        assert_eq!(
            parse_cli_variable("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert!(parse_cli_variable("novalue").is_err());
    }

    #[test]
    fn dotenv_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".env");
        std::fs::write(
            &p,
            "# c\nSPIN_VARIABLE_A=1\nexport SPIN_VARIABLE_B=\"two\"\n\n",
        )
        .unwrap();
        let m = read_dotenv(&p).unwrap();
        assert_eq!(m["SPIN_VARIABLE_A"], "1");
        assert_eq!(m["SPIN_VARIABLE_B"], "two");
        assert!(read_dotenv(&dir.path().join("missing")).unwrap().is_empty());
    }
}
