//! Loading an application: manifest -> variables -> stores -> compiled components.
//!
//! Everything that can be wrong with an application is reported here, before
//! the host listens: an invalid or unsupported manifest, a missing required
//! variable, an invalid `allowed_outbound_hosts` entry, a component that is
//! missing or imports something this host does not provide.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
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
    /// `--sqlite memory|PATH`.
    pub sqlite: Option<String>,
    /// `--build`.
    pub build: bool,
    /// All limits.
    pub limits: Limits,
    /// Compilation cache directory (`None` disables the cache).
    pub cache_dir: Option<PathBuf>,
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
    /// Human-readable description of stores and allow lists.
    pub stores: Vec<String>,
    /// The epoch tick clock shared with instances.
    pub(crate) ticker: crate::limits::EpochTicker,
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
        let providers = Providers::from_process(opts.variables.clone())?;
        let vars = AppVariables::resolve(&manifest.doc.variables, &providers)?;
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
                let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                stores.push(format!("{id}: allowed_outbound_hosts {}", list.join(", ")));
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
            ticker,
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
        out
    }

    /// The shared tick clock.
    pub fn clock(&self) -> Clock {
        self.ticker.clock()
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
