//! `dock-host`: a Spin-compatible wasmtime host.
//!
//! It reads a Spin manifest (`spin.toml`, version 2) and serves its HTTP
//! components — spin-sdk 7 components exporting `wasi:http/handler@0.3.0`
//! (WASIp3) — the way Spin 4.1's `spin up` does: Spin's routing and request
//! headers, instance reuse with concurrent requests per instance, and the Spin
//! host interfaces `spin:redis@3.0.0`, `spin:variables@3.0.0` and
//! `spin:sqlite@3.1.0`, with outbound networking limited to each component's
//! `allowed_outbound_hosts`.
//!
//! Layout: one module per concern. [`manifest`], [`template`],
//! [`allowed_hosts`], [`routes`], [`variables`] and [`runtime_config`] are pure
//! and unit-tested without wasm; [`redis`], [`sqlite`], [`variables`] and
//! [`outbound_http`] implement the host side of one interface each
//! ([`redis_mux`] shares Redis connections and blocking reads behind
//! `spin:redis`, invisibly to the guest); [`bindings`] generates the WIT
//! bindings; [`build`] runs a manifest's build commands; [`cli`] is the
//! command line;
//! [`instance`] builds stores and drives instance reuse; [`limits`] holds every
//! limit and the engine; [`server`] is the hyper front end; [`app`] ties the
//! manifest to compiled components.

pub mod admin;
pub mod allowed_hosts;
pub mod app;
pub mod bindings;
pub mod build;
pub mod cli;
pub mod instance;
pub mod limits;
pub mod manifest;
pub mod outbound_http;
pub mod redis;
pub mod redis_mux;
pub mod routes;
pub mod runtime_config;
pub mod server;
pub mod sqlite;
pub mod template;
pub mod variables;

use std::sync::Arc;

use anyhow::Result;

/// Runs `dock-host up`: loads the app, listens, serves until SIGINT/SIGTERM.
pub async fn up(args: cli::UpArgs) -> Result<()> {
    let mut limits: limits::Limits = (&args.limits).into();
    limits.fit_open_files();
    let opts = app::AppOptions {
        manifest: args.manifest(),
        variables: args.variables.clone(),
        runtime_config_file: args.runtime_config_file.clone(),
        sqlite: args.sqlite_db.clone(),
        sqlite_statements: args.sqlite_statements.clone(),
        build: args.build,
        limits,
        cache_dir: args.cache_dir(),
        dev_admin_token: args.dev_admin_token,
    };
    let app = tokio::task::block_in_place(|| app::App::load(&opts))?;
    let listener = server::bind(args.listen).await?;
    // Before the banner: whoever reads it may signal us at once.
    let shutdown = server::shutdown_listener();
    let addr = listener.local_addr()?;
    print!("{}", app.banner(addr));
    use std::io::Write as _;
    std::io::stdout().flush()?;
    if args.json_logs {
        // The banner's facts as one record, for log collectors.
        tracing::info!(address = %addr, app = %app.name, stores = ?app.stores, "serving");
    }
    tokio::spawn(app::probe_redis(app.redis_urls.clone()));
    if !args.webhook_dispatch_interval.is_zero()
        && let Some(token) = app.admin_token.clone()
    {
        tokio::spawn(dispatch_webhooks(
            addr,
            token,
            args.webhook_dispatch_interval,
        ));
    }
    server::serve(Arc::new(app), listener, shutdown).await
}

/// Calls the app's webhook dispatch route every `every`, as a scheduler
/// would under Spin: through this host's own listener, so the call is an
/// ordinary request (limits, logs, metrics). A failed call is logged once
/// per kind of failure and tried again at the next tick.
async fn dispatch_webhooks(addr: std::net::SocketAddr, token: String, every: std::time::Duration) {
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let url = format!("http://{host}/api/v1/admin/webhooks/dispatch");
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("webhook dispatch timer off: {e}");
            return;
        }
    };
    // The first call one interval after start, not at once.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_failure = String::new();
    loop {
        tick.tick().await;
        let failure = match client.post(&url).bearer_auth(&token).send().await {
            Ok(r) if r.status().is_success() => String::new(),
            // 404: this app has no such route (not the Dock app): stop.
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                tracing::info!("webhook dispatch timer off: the app has no dispatch route");
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) => format!("failed: {e}"),
        };
        if !failure.is_empty() && failure != last_failure {
            tracing::warn!("webhook dispatch {failure}");
        }
        last_failure = failure;
    }
}
