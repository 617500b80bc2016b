//! Loading an application: manifest -> variables -> stores -> compiled components.
//!
//! Everything that can be wrong with an application is reported here, before
//! the host listens: an invalid or unsupported manifest, a missing required
//! variable, an invalid `allowed_outbound_hosts` entry, a component that is
//! missing or imports something this host does not provide.
//!
//! What a store being down is not: the host does not connect to Redis to
//! start. The banner names the stores a component can use (its SQLite
//! database, the Redis URLs its variables hold, credentials redacted), and
//! [`probe_redis`] then checks each Redis in the background and logs whether
//! it answers; requests that need an unreachable Redis fail in the component.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::ProxyHandler;

use crate::allowed_hosts::AllowedHosts;
use crate::instance::{self, ComponentConfig, ComponentHandler, HostState};
use crate::limits::{Clock, Limits};
use crate::manifest::{HttpTrigger, Manifest};
use crate::outbound_http::OutboundHttp;
use crate::redis::RedisState;
use crate::routes::Router;
use crate::runtime_config::RuntimeConfig;
use crate::sqlite::{Database, DatabaseLocation, SqliteState};
use crate::variables::{AppVariables, Providers, VariablesState};

/// How to load and run an application (the `dock-host up` options).
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The manifest file.
    pub manifest: PathBuf,
    /// `--variable NAME=VALUE` pairs.
    pub variables: Vec<(String, String)>,
    /// `--runtime-config-file`.
    pub runtime_config_file: Option<PathBuf>,
    /// `--sqlite-db memory|PATH`.
    pub sqlite: Option<String>,
    /// `--sqlite STATEMENT|@FILE`, run in order against the default database
    /// before serving (as `spin up --sqlite`).
    pub sqlite_statements: Vec<String>,
    /// `--build`.
    pub build: bool,
    /// All limits.
    pub limits: Limits,
    /// Compilation cache directory (`None` disables the cache).
    pub cache_dir: Option<PathBuf>,
    /// `--dev-admin-token`: generate an `admin_token` when none is set.
    pub dev_admin_token: bool,
}

/// The application variable `--dev-admin-token` fills in.
const ADMIN_TOKEN_VARIABLE: &str = "admin_token";

/// A development admin token: `dev-` and 32 hex digits from the system's
/// random source.
fn generate_dev_token() -> Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a development admin token")?;
    Ok(format!(
        "dev-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Runs `spin up --sqlite` style statements: raw SQL against the default
/// database, or `@FILE` (`@FILE:default`) as a batch. Without a database (no
/// component asks for one) they are ignored, as Spin does.
fn run_sqlite_statements(
    database: Option<&Database>,
    statements: &[String],
    cwd: &std::path::Path,
) -> Result<()> {
    let Some(db) = database else {
        return Ok(());
    };
    for statement in statements {
        if let Some(spec) = statement.strip_prefix('@') {
            let (file, label) = spec.rsplit_once(':').unwrap_or((spec, "default"));
            if label != "default" {
                bail!(
                    "based on the '@{spec}' a registered database named '{label}' was expected but not found."
                );
            }
            let sql = std::fs::read_to_string(cwd.join(file)).with_context(|| {
                format!("could not read file '{file}' containing sql statements")
            })?;
            db.execute_batch(&sql).with_context(|| {
                format!("failed to execute sql against database 'default' from file '{file}'")
            })?;
        } else {
            db.execute_batch(statement).with_context(|| {
                format!("failed to execute following sql statement against default database: '{statement}'")
            })?;
        }
    }
    Ok(())
}

/// A loaded application, ready to serve.
pub struct App {
    /// The application name.
    pub name: String,
    /// The router.
    pub router: Router,
    /// One handler per routed component.
    pub components: HashMap<String, ProxyHandler<ComponentHandler>>,
    /// The engine (for the epoch ticker).
    pub engine: Engine,
    /// The limits in force.
    pub limits: Arc<Limits>,
    /// The default SQLite database, if any component uses it.
    pub sqlite: Option<DatabaseLocation>,
    /// Human-readable description of stores and allow lists (no secrets).
    pub stores: Vec<String>,
    /// The Redis URLs components' variables hold, credentials included:
    /// for [`probe_redis`] only, never to be printed.
    pub redis_urls: Vec<String>,
    /// The epoch tick clock shared with instances.
    pub(crate) ticker: crate::limits::EpochTicker,
    /// The admin token `--dev-admin-token` generated, shown in the banner only.
    pub dev_admin_token: Option<String>,
    /// The app's `admin_token` variable (set or generated), for the webhook
    /// dispatch timer's calls to the app's own dispatch route; never printed.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Loads the application described by `opts`.
    pub fn load(opts: &AppOptions) -> Result<Self> {
        opts.limits.validate()?;
        let manifest = Manifest::load(&opts.manifest)?;
        let triggers = manifest
            .doc
            .validate()
            .with_context(|| format!("invalid manifest {}", manifest.path.display()))?;
        if opts.build {
            crate::build::run_builds(&manifest)?;
        }
        let mut variables = opts.variables.clone();
        let mut vars = AppVariables::resolve(
            &manifest.doc.variables,
            &Providers::from_process(variables.clone())?,
        )?;
        // `./dev up` on a fresh checkout: no admin token set anywhere, so the
        // admin API would not exist. Make one for this run (printed in the
        // banner only); every other way of running requires setting it.
        let mut dev_admin_token = None;
        if opts.dev_admin_token
            && manifest.doc.variables.contains_key(ADMIN_TOKEN_VARIABLE)
            && vars
                .get(ADMIN_TOKEN_VARIABLE)
                .is_ok_and(|v| v.trim().is_empty())
        {
            let token = generate_dev_token()?;
            variables.push((ADMIN_TOKEN_VARIABLE.to_owned(), token.clone()));
            vars = AppVariables::resolve(
                &manifest.doc.variables,
                &Providers::from_process(variables.clone())?,
            )?;
            dev_admin_token = Some(token);
        }
        let runtime_config = match &opts.runtime_config_file {
            Some(path) => RuntimeConfig::load(path)?,
            None => RuntimeConfig::default(),
        };

        let routed: Vec<&str> = {
            let mut seen = Vec::new();
            for t in &triggers {
                if !seen.contains(&t.component.as_str()) {
                    seen.push(t.component.as_str());
                }
            }
            seen
        };
        let wants_sqlite: Vec<&str> = routed
            .iter()
            .copied()
            .filter(|id| !manifest.doc.components[*id].sqlite_databases.is_empty())
            .collect();
        let cwd = std::env::current_dir()?;
        let (sqlite_location, database) = if wants_sqlite.is_empty() {
            (None, None)
        } else {
            let location = match (&opts.sqlite, &runtime_config.default_sqlite) {
                (Some(arg), _) => DatabaseLocation::parse(arg, &cwd),
                (None, Some(loc)) => loc.clone(),
                (None, None) => DatabaseLocation::default_for(&manifest.dir),
            };
            let db = Database::open(&location)?;
            (Some(location), Some(db))
        };
        run_sqlite_statements(database.as_ref(), &opts.sqlite_statements, &cwd)?;

        let limits = Arc::new(opts.limits.clone());
        let engine = crate::limits::engine(&limits, opts.cache_dir.as_deref())?;
        let ticker = crate::limits::EpochTicker::start(engine.clone());
        let mut linker = Linker::<HostState>::new(&engine);
        instance::add_to_linker(&mut linker)?;

        let mut stores = Vec::new();
        if let Some(loc) = &sqlite_location {
            stores.push(format!(
                "SQLite database \"default\": {loc} (used by {})",
                wants_sqlite.join(", ")
            ));
        }
        let mut redis_urls = Vec::new();
        let mut components = HashMap::new();
        for id in &routed {
            let (handler, allowed) = build_component(
                &manifest,
                id,
                &vars,
                database.as_ref(),
                &engine,
                &linker,
                limits.clone(),
                ticker.clock(),
            )?;
            if !allowed.is_empty() {
                let list: Vec<String> =
                    allowed.iter().map(|h| redact_url(&h.to_string())).collect();
                stores.push(format!("{id}: allowed_outbound_hosts {}", list.join(", ")));
            }
            let found = redis_variables(&manifest.doc.components[*id].variables, &vars)?;
            if found.is_empty() {
                stores.push(format!(
                    "{id}: Redis: none (no variable holds a redis:// URL)"
                ));
            }
            for (name, url) in found {
                let refused = if allowed.allows_url(&url, "redis") {
                    ""
                } else {
                    "; not in allowed_outbound_hosts, so connections to it will be refused"
                };
                stores.push(format!(
                    "{id}: Redis {} (variable {name}){refused}",
                    redact_url(&url)
                ));
                if !redis_urls.contains(&url) {
                    redis_urls.push(url);
                }
            }
            components.insert((*id).to_owned(), ProxyHandler::new(handler));
        }
        let router = Router::build(
            triggers
                .iter()
                .map(|HttpTrigger { route, component }| (route.as_str(), component.as_str())),
        )?;
        Ok(Self {
            name: manifest.doc.application.name.clone(),
            router,
            components,
            engine,
            limits,
            sqlite: sqlite_location,
            stores,
            redis_urls,
            ticker,
            dev_admin_token,
            admin_token: vars
                .get(ADMIN_TOKEN_VARIABLE)
                .ok()
                .filter(|t| !t.trim().is_empty()),
        })
    }

    /// The startup banner: address, routes, stores.
    pub fn banner(&self, addr: SocketAddr) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Serving http://{addr}");
        let _ = writeln!(out, "Available Routes:");
        for (route, component) in self.router.routes() {
            let (path, wildcard) = match route.strip_suffix("/...") {
                Some(prefix) => (if prefix.is_empty() { "/" } else { prefix }, " (wildcard)"),
                None => (route, ""),
            };
            let _ = writeln!(out, "  {component}: http://{addr}{path}{wildcard}");
        }
        for store in &self.stores {
            let _ = writeln!(out, "{store}");
        }
        if let Some(token) = &self.dev_admin_token {
            let base = format!("http://{addr}");
            let _ = writeln!(
                out,
                "\nDEVELOPMENT admin token for this run (no admin_token was set; `spin up` and deployments require you to set one):\n  {token}\n\
Create a PID and an API key for it (the key is shown once):\n  \
curl -s -X POST {base}/api/v1/admin/pids -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"pid\":\"pid-dev\",\"name\":\"Dev App\"}}'\n  \
curl -s -X POST {base}/api/v1/admin/pids/pid-dev/keys -H 'Authorization: Bearer {token}'"
            );
        }
        out
    }

    /// The shared tick clock.
    pub fn clock(&self) -> Clock {
        self.ticker.clock()
    }
}

/// The component variables (name, value) whose values are Redis URLs.
fn redis_variables(
    mapping: &std::collections::BTreeMap<String, String>,
    vars: &AppVariables,
) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for (name, template) in mapping {
        let value = vars
            .render(template)
            .with_context(|| format!("component variable {name:?}"))?;
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            found.push((name.clone(), value));
        }
    }
    Ok(found)
}

/// `text` with the user info of a URL replaced by `***`
/// (`redis://:secret@host:6379` → `redis://***@host:6379`). Text that does
/// not parse as a URL but contains `@` is withheld entirely.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            if url.set_password(None).is_ok() && url.set_username("***").is_ok() {
                url.to_string()
            } else {
                "<redacted URL>".to_owned()
            }
        }
        Ok(_) => text.to_owned(),
        Err(_) if text.contains('@') => "<redacted URL>".to_owned(),
        Err(_) => text.to_owned(),
    }
}

/// How long the startup check waits for each Redis.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks once that each Redis in `urls` answers `PING`, and logs the
/// outcome with the URL redacted. The host serves either way: an unreachable
/// Redis is the component's to report (its `/readyz` answers 503 until the
/// Redis answers).
pub async fn probe_redis(urls: Vec<String>) {
    for url in urls {
        let shown = redact_url(&url);
        let outcome = tokio::time::timeout(REDIS_PROBE_TIMEOUT, ping_redis(&url)).await;
        let failure = match outcome {
            Ok(Ok(())) => {
                tracing::info!(redis = %shown, "Redis answers PING");
                continue;
            }
            Ok(Err(e)) => scrub(&e.to_string(), &url),
            Err(_) => format!("no answer within {REDIS_PROBE_TIMEOUT:?}"),
        };
        tracing::warn!(
            redis = %shown,
            "Redis is unreachable at startup ({failure}); serving anyway: requests that need it fail with 503 until it answers"
        );
    }
}

async fn ping_redis(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<()>(&mut conn).await
}

/// `message` without the password of `url`, should an error quote it.
fn scrub(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message.to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_component(
    manifest: &Manifest,
    id: &str,
    vars: &AppVariables,
    database: Option<&Database>,
    engine: &Engine,
    linker: &Linker<HostState>,
    limits: Arc<Limits>,
    clock: Clock,
) -> Result<(ComponentHandler, Arc<AllowedHosts>)> {
    let c = &manifest.doc.components[id];
    let allowed = Arc::new(
        AllowedHosts::parse(&c.allowed_outbound_hosts, |name| vars.get(name))
            .with_context(|| format!("component {id:?}"))?,
    );
    let component_vars = vars
        .component_variables(&c.variables)
        .with_context(|| format!("component {id:?}"))?;
    let source = manifest.component_source(id)?;
    let pre = instance::prepare(engine, linker, id, &source)?;
    let config = ComponentConfig {
        id: Arc::from(id),
        environment: c.environment.clone(),
        redis: RedisState {
            allowed: allowed.clone(),
            pool: Arc::default(),
        },
        http: OutboundHttp {
            allowed: allowed.clone(),
        },
        sqlite: SqliteState {
            default: if c.sqlite_databases.iter().any(|d| d == "default") {
                database.cloned()
            } else {
                None
            },
        },
        variables: VariablesState {
            component: Arc::from(id),
            vars: component_vars,
        },
    };
    Ok((
        ComponentHandler::new(config, pre, engine.clone(), limits, clock),
        allowed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_info() {
        assert_eq!(
            redact_url("redis://:s3cret@127.0.0.1:6379"),
            "redis://***@127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("rediss://default:s3cret@redis.example.com:6380/2"),
            "rediss://***@redis.example.com:6380/2"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("https://discord.com"), "https://discord.com");
        assert_eq!(redact_url("not a url with @ in it"), "<redacted URL>");
        assert_eq!(redact_url("*://*:*"), "*://*:*");
    }

    #[test]
    fn scrubs_passwords_from_errors() {
        assert_eq!(
            scrub("auth failed for s3cret", "redis://:s3cret@h:1"),
            "auth failed for ***"
        );
        assert_eq!(scrub("refused", "redis://h:1"), "refused");
    }

    #[test]
    fn finds_redis_urls_in_component_variables() {
        use crate::manifest::Variable;
        use crate::variables::Providers;
        let mut declared = std::collections::BTreeMap::new();
        declared.insert("redis_url".to_owned(), Variable::default());
        declared.insert(
            "other".to_owned(),
            Variable {
                default: Some("https://example.com".into()),
                ..Variable::default()
            },
        );
        let providers = Providers {
            cli: vec![("redis_url".into(), "redis://:pw@10.0.0.1:6379".into())],
            ..Providers::default()
        };
        let vars = AppVariables::resolve(&declared, &providers).unwrap();
        let mut mapping = std::collections::BTreeMap::new();
        mapping.insert("redis_url".to_owned(), "{{ redis_url }}".to_owned());
        mapping.insert("other".to_owned(), "{{ other }}".to_owned());
        assert_eq!(
            redis_variables(&mapping, &vars).unwrap(),
            vec![("redis_url".into(), "redis://:pw@10.0.0.1:6379".into())]
        );
    }
}
