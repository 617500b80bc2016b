//! `dock-host up`: serve a Spin application with wasmtime; `dock-host admin`:
//! manage a running service's tenants and keys.

use std::io::Write as _;

use clap::Parser as _;
use dock_host::cli::{Cli, Command};

/// jemalloc instead of glibc's malloc: at ten thousand held streams the
/// process is mostly small per-connection allocations, where it keeps less
/// memory resident and spends less time (docs/performance.md). Off without
/// the `jemalloc` feature, for heap profilers that see only glibc's malloc.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Up(args) => *args,
        Command::Admin(args) => return admin(args),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.json_logs {
        // One JSON object per line: timestamp, level, target, fields.
        logs.json().flatten_event(true).init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dock_host::up(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `dock-host admin …`: prints the answer's JSON, or the error and fails.
fn admin(args: dock_host::cli::AdminArgs) -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(dock_host::admin::run(args)));
    match outcome {
        Ok(json) => {
            // An export to stdout has written itself.
            if !json.is_empty() {
                println!("{json}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            // The command's own failure is its output, not a log record.
            let _ = writeln!(std::io::stderr(), "dock-host admin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
