//! The `dock-host` command line (clap derive). Flag names follow `spin up`
//! where they overlap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::limits::{Limits, parse_duration, parse_size};
use crate::variables::parse_cli_variable;

/// A Spin-compatible wasmtime host for spin-sdk 7 (WASIp3) HTTP components.
#[derive(Debug, Parser)]
#[command(name = "dock-host", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the application described by a spin.toml.
    Up(Box<UpArgs>),
    /// Manage tenants and keys of a running service through its admin API
    /// (here or deployed anywhere: it is an HTTP client).
    Admin(AdminArgs),
}

/// `dock-host admin`: the admin API for operators without curl habits. Each
/// command prints the answer's `data` as JSON on stdout; an error answer
/// prints its code and message on stderr and exits 1.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The service's base URL.
    #[arg(long, env = "DOCK_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// The admin token (the `admin_token` variable). Prefer the environment
    /// variable: a flag is visible to other users in the process list.
    #[arg(long, env = "DOCK_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `dock-host admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants (PIDs).
    #[command(subcommand)]
    Pid(PidCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Back up every PID, key hash, quota count, webhook and link as NDJSON
    /// (`GET /api/v1/admin/export`; no sessions). To stdout, or `--out`.
    Export {
        /// Write to this file instead of stdout (then print a summary).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Apply an export (`POST /api/v1/admin/import`; idempotent): a backup
    /// restored, or the embedded store's data moved to Redis.
    Import {
        /// The export file (`-`: stdin).
        file: std::path::PathBuf,
    },
}

/// `dock-host admin pid …`.
#[derive(Debug, Subcommand)]
pub enum PidCommand {
    /// Create a PID (`POST /api/v1/admin/pids`).
    Create {
        /// The PID (letters, digits, `-`, `_`).
        pid: String,
        /// Its display name [default: the PID].
        #[arg(long)]
        name: Option<String>,
    },
    /// Every PID, all pages (`GET /api/v1/admin/pids`), as one JSON array.
    List,
    /// One PID with its counters (`GET /api/v1/admin/pids/:pid`).
    Show {
        /// The PID.
        pid: String,
    },
}

/// `dock-host admin key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue a key for a PID (`POST /api/v1/admin/pids/:pid/keys`); the key
    /// itself is shown this once.
    Create {
        /// The PID.
        pid: String,
        /// Creates allowed per quota window [default: the server's].
        #[arg(long)]
        limit: Option<u64>,
        /// The quota window in seconds [default: the server's].
        #[arg(long)]
        window_seconds: Option<u64>,
    },
    /// A PID's keys, never the keys themselves (`GET /api/v1/admin/pids/:pid/keys`).
    List {
        /// The PID.
        pid: String,
    },
    /// Revoke a key at once (`DELETE /api/v1/admin/keys/:keyId`).
    Revoke {
        /// The key's id (`key_…`).
        key_id: String,
    },
}

/// `dock-host up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The application manifest, or a directory containing spin.toml.
    #[arg(
        short = 'f',
        long = "from",
        value_name = "FILE",
        default_value = "spin.toml"
    )]
    pub from: PathBuf,

    /// Set an application variable (overrides SPIN_VARIABLE_<NAME> and the default).
    #[arg(long = "variable", visible_alias = "var", value_name = "NAME=VALUE", value_parser = parse_cli_variable)]
    pub variables: Vec<(String, String)>,

    /// Spin runtime config file (only `[sqlite_database.default]` is supported).
    #[arg(long, value_name = "FILE")]
    pub runtime_config_file: Option<PathBuf>,

    /// Where the `default` SQLite database lives: `memory` or a file path
    /// [default: .spin/sqlite_db.db next to the manifest]. dock-host only;
    /// under Spin use a runtime config file. Given twice, the last wins.
    #[arg(long, value_name = "memory|PATH", overrides_with = "sqlite_db")]
    pub sqlite_db: Option<String>,

    /// Run a SQL statement (e.g. a migration) against the default database
    /// before serving; `@FILE` runs the statements in FILE. Repeatable, in
    /// order. As `spin up --sqlite`.
    #[arg(long = "sqlite", value_name = "STATEMENT|@FILE")]
    pub sqlite_statements: Vec<String>,

    /// When no `admin_token` variable is set, generate a development token
    /// for this run and print it (with the commands that create a PID and a
    /// key) in the banner. `./dev up` passes it; never use it in production.
    #[arg(long)]
    pub dev_admin_token: bool,

    /// Run each component's build command before serving.
    #[arg(long)]
    pub build: bool,

    /// How often to call the app's webhook dispatch route
    /// (`POST /api/v1/admin/webhooks/dispatch`, with the app's admin token):
    /// retries, and the events of sessions that expired unobserved, go out
    /// without other traffic. 0 turns it off (an outside scheduler calls the
    /// route, as under Spin). Needs `admin_token`. Given twice, the last wins.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = parse_duration,
        overrides_with = "webhook_dispatch_interval"
    )]
    pub webhook_dispatch_interval: Duration,

    /// Log filter (tracing env-filter syntax, e.g. `info` or `dock_host=debug`).
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "info",
        env = "DOCK_HOST_LOG"
    )]
    pub log_level: String,

    /// Write dock-host's own log records (stderr) as JSON, one object per
    /// line. The component's output passes through unchanged; the startup
    /// banner stays text on stdout (as `spin up` prints it).
    #[arg(long)]
    pub json_logs: bool,

    /// Directory for compiled-component cache [default: <user cache dir>/dock-host].
    #[arg(long, value_name = "DIR", env = "DOCK_HOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Do not cache compiled components.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limits (see `limits::Limits` for what each one bounds).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Longest continuous guest execution without waiting for I/O; the instance is stopped beyond it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub max_guest_slice: Duration,

    /// Linear memory limit per component instance.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_instance_memory: u64,

    /// Live component instances (pooling allocator size).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_instances: u32,

    /// Requests handled at the same time, each until its response head is ready (a long-poll past --waiting-after moves to a waiting slot); more wait.
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub max_concurrent_requests: usize,

    /// Requests still unanswered after --waiting-after (long-polls) that may hold a request slot at once; one more is answered 503, so waiters never take the slots of the requests that wake them [default: --max-concurrent-requests less a sixteenth].
    #[arg(long, value_name = "N")]
    pub max_waiting_requests: Option<usize>,

    /// How long a request runs unanswered before it counts as waiting.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub waiting_after: Duration,

    /// Open client connections; more wait to be accepted. The open-files limit is raised to fit (or this lowered to it).
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub max_connections: usize,

    /// Requests one instance serves before it is retired.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_instance_reuse_count: usize,

    /// Requests one instance handles concurrently (1 = no concurrent reuse).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_instance_concurrent_reuse_count: usize,

    /// How long an idle instance is kept for reuse.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub idle_instance_timeout: Duration,

    /// How long a request waits for an instance when every instance slot is taken, before 503; 0 = answer 503 at once.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub instance_wait: Duration,

    /// Handles (connections, streams, ...) one instance may hold.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_guest_resources: usize,

    /// On SIGINT/SIGTERM, how long open responses may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long a client may take to send a complete request head (also closes connections idle that long); 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a request body may take in all, from the end of its head; slower clients get 408 and a closed connection. 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// The longest pause between two pieces of a request body (408 beyond it). 0 disables.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub body_idle_timeout: Duration,

    /// Open connections from one client address (IPv6: one /64); more are refused at once with 503. 0 = no cap (behind a proxy, cap in the proxy).
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub max_connections_per_ip: usize,

    /// Set TCP_NODELAY on accepted sockets. `false` leaves Nagle's algorithm
    /// on, as `spin up` does, to reproduce how Spin's socket behaves.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tcp_nodelay: bool,
}

impl From<&LimitArgs> for Limits {
    fn from(a: &LimitArgs) -> Self {
        Limits {
            max_guest_slice: a.max_guest_slice,
            max_instance_memory: a.max_instance_memory,
            max_instances: a.max_instances,
            max_concurrent_requests: a.max_concurrent_requests,
            max_waiting_requests: a
                .max_waiting_requests
                .unwrap_or_else(|| crate::limits::default_max_waiting(a.max_concurrent_requests)),
            waiting_after: a.waiting_after,
            max_connections: a.max_connections,
            max_instance_reuse_count: a.max_instance_reuse_count,
            max_instance_concurrent_reuse_count: a.max_instance_concurrent_reuse_count,
            idle_instance_timeout: a.idle_instance_timeout,
            instance_wait: a.instance_wait,
            max_guest_resources: a.max_guest_resources,
            shutdown_timeout: a.shutdown_timeout,
            header_read_timeout: a.header_read_timeout,
            body_read_timeout: a.body_read_timeout,
            body_idle_timeout: a.body_idle_timeout,
            max_connections_per_ip: a.max_connections_per_ip,
            tcp_nodelay: a.tcp_nodelay,
        }
    }
}

impl UpArgs {
    /// The manifest path (`--from` may name a directory).
    pub fn manifest(&self) -> PathBuf {
        if self.from.is_dir() {
            self.from.join("spin.toml")
        } else {
            self.from.clone()
        }
    }

    /// The compilation cache directory, unless disabled.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("dock-host"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_aliases() {
        let cli = Cli::try_parse_from(["dock-host", "up"]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not `up`")
        };
        assert_eq!(up.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(up.from, PathBuf::from("spin.toml"));
        assert!(!up.json_logs);
        let limits = Limits::from(&up.limits);
        let d = Limits::default();
        assert_eq!(limits.max_guest_slice, d.max_guest_slice);
        assert_eq!(limits.max_instance_memory, d.max_instance_memory);
        assert_eq!(
            limits.max_instance_concurrent_reuse_count,
            d.max_instance_concurrent_reuse_count
        );

        let cli = Cli::try_parse_from([
            "dock-host",
            "up",
            "-f",
            "x.toml",
            "--var",
            "a=1",
            "--variable",
            "b=2",
            "--sqlite-db",
            "memory",
            "--sqlite",
            "CREATE TABLE t (x)",
            "--sqlite",
            "@seed.sql",
            "--max-guest-slice",
            "500ms",
            "--listen",
            "127.0.0.1:0",
            "--json-logs",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not `up`")
        };
        assert_eq!(
            up.variables,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(up.sqlite_db.as_deref(), Some("memory"));
        assert_eq!(up.sqlite_statements, ["CREATE TABLE t (x)", "@seed.sql"]);
        assert_eq!(up.limits.max_guest_slice, Duration::from_millis(500));
        assert!(up.json_logs);
        assert!(Cli::try_parse_from(["dock-host", "up", "--variable", "novalue"]).is_err());
    }

    #[test]
    fn admin_takes_url_and_token_from_the_environment_or_flags() {
        let cli = Cli::try_parse_from([
            "dock-host",
            "admin",
            "--url",
            "https://dock.example",
            "--token",
            "t",
            "key",
            "create",
            "pid-a",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::Admin(admin) = cli.command else {
            panic!("not `admin`")
        };
        assert_eq!(admin.url, "https://dock.example");
        assert!(matches!(
            admin.command,
            AdminCommand::Key(KeyCommand::Create {
                limit: Some(5),
                window_seconds: None,
                ..
            })
        ));
        assert!(
            Cli::try_parse_from(["dock-host", "admin", "--token", "t", "pid", "frobnicate"])
                .is_err()
        );
    }
}
