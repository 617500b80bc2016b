//! Shared by the `api_*` tests: a running service (dock-host serving the real
//! component from the root spin.toml, on Redis or the embedded SQLite), an
//! operator with an admin token, and small typed HTTP helpers.
#![allow(dead_code, reason = "each api_* test binary uses a different subset")]

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use dock_core::sse::{DecodedEvent, Decoder};
use dock_tests::{Host, RedisServer, artifacts};
use futures::StreamExt as _;
use serde_json::{Value, json};

/// The admin token every test service runs with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Which store the service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded default (`spin:sqlite`, in memory).
    Sqlite,
    /// A `redis-server` the test owns.
    Redis,
}

/// How to run the service: which store, and whether dock-host may reuse one
/// component instance for many requests (Spin 4.1 does; `reuse: false` runs
/// each request in a fresh instance, `--max-instance-reuse-count 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cfg {
    pub store: StoreKind,
    pub reuse: bool,
}

impl From<StoreKind> for Cfg {
    fn from(store: StoreKind) -> Cfg {
        Cfg { store, reuse: true }
    }
}

/// A running service and what it needs.
pub struct Service {
    pub hosts: Vec<Host>,
    pub redis: Option<RedisServer>,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
    vars: Vec<String>,
    listen: Option<String>,
    reuse: bool,
    /// Extra `up` flags for every instance (dock-host's names; translated
    /// for Spin by the harness).
    host_args: Vec<String>,
}

impl Service {
    /// One instance with the given extra `--variable NAME=VALUE`s.
    pub async fn start(cfg: impl Into<Cfg>, vars: &[(&str, &str)]) -> Result<Service> {
        Self::start_n(cfg, 1, vars).await
    }

    /// `n` instances sharing one store (Redis for n > 1).
    pub async fn start_n(cfg: impl Into<Cfg>, n: usize, vars: &[(&str, &str)]) -> Result<Service> {
        let cfg = cfg.into();
        let redis = match cfg.store {
            StoreKind::Redis => Some(RedisServer::start()?),
            StoreKind::Sqlite => None,
        };
        Self::start_with(cfg.reuse, redis, n, &[], vars)
    }

    /// One instance started with extra `up` flags, e.g. `--tcp-nodelay false`.
    pub async fn start_with_host_args(
        cfg: impl Into<Cfg>,
        host_args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Service> {
        let cfg = cfg.into();
        let redis = match cfg.store {
            StoreKind::Redis => Some(RedisServer::start()?),
            StoreKind::Sqlite => None,
        };
        Self::start_with(cfg.reuse, redis, 1, host_args, vars)
    }

    /// `n` instances (with instance reuse) on a Redis the caller started,
    /// e.g. a persistent one.
    pub async fn start_on_redis(
        redis: RedisServer,
        n: usize,
        vars: &[(&str, &str)],
    ) -> Result<Service> {
        Self::start_on_redis_with(redis, n, &[], vars).await
    }

    /// [`start_on_redis`](Self::start_on_redis) with extra `up` flags.
    pub async fn start_on_redis_with(
        redis: RedisServer,
        n: usize,
        host_args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Service> {
        Self::start_with(true, Some(redis), n, host_args, vars)
    }

    fn start_with(
        reuse: bool,
        redis: Option<RedisServer>,
        n: usize,
        host_args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Service> {
        let mut all: Vec<String> = vec![format!("admin_token={ADMIN_TOKEN}")];
        if let Some(r) = &redis {
            all.push(format!("redis_url={}", r.url()));
            all.push(format!("redis_origin={}", r.url()));
        }
        all.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        let dir = tempfile::tempdir()?;
        let mut svc = Service {
            hosts: Vec::new(),
            redis,
            http: client(),
            dir,
            vars: all,
            listen: None,
            reuse,
            host_args: host_args.iter().map(|a| a.to_string()).collect(),
        };
        for _ in 0..n {
            svc.add_host()?;
        }
        Ok(svc)
    }

    /// One instance on a port chosen up front, with `public_base_url` set to
    /// it, so that redirects built from the base URL come back to it.
    pub async fn start_public(store: impl Into<Cfg>, vars: &[(&str, &str)]) -> Result<Service> {
        let port = dock_tests::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut all = vec![("public_base_url", base.as_str())];
        all.extend_from_slice(vars);
        let mut svc = Self::start_n(store, 0, &all).await?;
        svc.listen = Some(format!("127.0.0.1:{port}"));
        svc.add_host()?;
        Ok(svc)
    }

    /// Kills instance `i` and starts it again with the same configuration (on
    /// the same port when the service has a fixed one).
    pub fn restart_host(&mut self, i: usize) -> Result<()> {
        drop(self.hosts.remove(i));
        self.add_host()?;
        let host = self.hosts.pop().context("no host")?;
        self.hosts.insert(i, host);
        Ok(())
    }

    /// Starts one more instance with the same configuration, listening on
    /// `addr` (e.g. the address of an instance that was killed).
    pub fn add_host_at(&mut self, addr: std::net::SocketAddr) -> Result<()> {
        let fixed = self.listen.replace(addr.to_string());
        let started = self.add_host();
        self.listen = fixed;
        started
    }

    /// Starts one more instance with the same configuration.
    pub fn add_host(&mut self) -> Result<()> {
        let manifest = artifacts::root_manifest(self.dir.path())?;
        // Debug logs name each request as it arrives: `wait_for_request` reads them.
        // No webhook dispatch timer unless a test asks for one (its
        // requests and store calls would blur exact counts); the webhook
        // tests run a scheduler of their own, as under Spin.
        let mut args: Vec<&str> = vec![
            "--sqlite-db",
            "memory",
            "--log-level",
            "info,dock_host=debug",
            "--webhook-dispatch-interval",
            "0",
        ];
        if let Some(l) = &self.listen {
            args.push("--listen");
            args.push(l);
        }
        if !self.reuse {
            args.extend([
                "--max-instance-reuse-count",
                "1",
                "--max-instance-concurrent-reuse-count",
                "1",
            ]);
        }
        for v in &self.vars {
            args.push("--variable");
            args.push(v);
        }
        args.extend(self.host_args.iter().map(String::as_str));
        let host = tokio::task::block_in_place(|| Host::start(&manifest, &args))?;
        self.hosts.push(host);
        Ok(())
    }

    /// `path` on instance 0.
    pub fn url(&self, path: &str) -> String {
        self.hosts[0].url(path)
    }

    /// `path` on instance `i`.
    pub fn url_on(&self, i: usize, path: &str) -> String {
        self.hosts[i].url(path)
    }

    /// Creates a PID and returns a fresh API key for it.
    pub async fn tenant(&self, pid: &str) -> Result<String> {
        let (s, body) = self
            .admin_post(
                "/api/v1/admin/pids",
                json!({"pid": pid, "name": format!("App {pid}")}),
            )
            .await?;
        if s != 200 && !(s == 409 && body["error"]["code"] == "pid_exists") {
            bail!("create pid {pid}: {s} {body}");
        }
        self.issue_key(pid, json!({})).await
    }

    /// Issues a key for `pid` with the given body.
    pub async fn issue_key(&self, pid: &str, body: Value) -> Result<String> {
        let (s, body) = self
            .admin_post(&format!("/api/v1/admin/pids/{pid}/keys"), body)
            .await?;
        if s != 200 {
            bail!("issue key: {s} {body}");
        }
        Ok(body["data"]["key"].as_str().context("no key")?.to_owned())
    }

    /// POST with the admin token, JSON in and out.
    pub async fn admin_post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        send(
            self.http
                .post(self.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body),
        )
        .await
    }

    /// Completes a session through the admin API (on instance `i`).
    pub async fn complete_on(
        &self,
        i: usize,
        sid: &str,
        discord: &str,
        roblox: &str,
    ) -> Result<(u16, Value)> {
        send(
            self.http
                .post(self.url_on(i, &format!("/api/v1/admin/sessions/{sid}/complete")))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"discordId": discord, "robloxId": roblox})),
        )
        .await
    }

    /// Completes a session through the admin API.
    pub async fn complete(&self, sid: &str, discord: &str, roblox: &str) -> Result<(u16, Value)> {
        self.complete_on(0, sid, discord, roblox).await
    }

    /// Creates a session with `key`.
    pub async fn create(&self, key: &str, body: Value) -> Result<(u16, Value)> {
        send(
            self.http
                .post(self.url("/api/v1/verify/session"))
                .bearer_auth(key)
                .json(&body),
        )
        .await
    }

    /// Creates a session and returns its sid (asserting success).
    pub async fn create_sid(&self, key: &str, pid: &str, client_id: &str) -> Result<String> {
        let (s, body) = self
            .create(key, json!({"pid": pid, "clientId": client_id}))
            .await?;
        if s != 200 {
            bail!("create: {s} {body}");
        }
        Ok(body["data"]["sid"].as_str().context("no sid")?.to_owned())
    }

    /// GET a session (with an optional query) on instance `i`.
    pub async fn get_on(
        &self,
        i: usize,
        key: &str,
        sid: &str,
        query: &str,
    ) -> Result<(u16, Value)> {
        send(
            self.http
                .get(self.url_on(i, &format!("/api/v1/verify/session/{sid}{query}")))
                .bearer_auth(key),
        )
        .await
    }

    /// GET a session on instance 0.
    pub async fn get(&self, key: &str, sid: &str, query: &str) -> Result<(u16, Value)> {
        self.get_on(0, key, sid, query).await
    }

    /// Opens the session's event stream on instance `i`.
    pub async fn stream_on(
        &self,
        i: usize,
        key: &str,
        sid: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream> {
        let mut req = self
            .http
            .get(self.url_on(i, &format!("/api/v1/verify/session/{sid}/stream")))
            .bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await?;
        EventStream::new(resp).await
    }

    /// Opens the session's event stream on instance 0.
    pub async fn stream(
        &self,
        key: &str,
        sid: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream> {
        self.stream_on(0, key, sid, last_event_id).await
    }
}

impl Service {
    /// Waits until `waiters` long-polls or streams on `sid` are in flight on
    /// instance `i`: with Redis, until that many clients are blocked in
    /// `XREAD` (parked on the session's stream); else until the host has
    /// logged the request's arrival.
    pub async fn wait_for_waiters(&self, i: usize, sid: &str, waiters: usize) -> Result<()> {
        let spin = dock_tests::Runtime::current().is_spin();
        if let (Some(redis), true) = (&self.redis, spin) {
            // Spin opens a socket per `open`, and the component opens one for
            // each blocking read: Redis counts the blocked clients itself.
            return dock_tests::wait_until_async(
                Duration::from_secs(20),
                "waiters blocked in XREAD",
                || async {
                    let info = redis.cli(&["INFO", "clients"]).unwrap_or_default();
                    let blocked: usize = info
                        .lines()
                        .find_map(|l| l.strip_prefix("blocked_clients:"))
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0);
                    blocked >= waiters
                },
            )
            .await;
        }
        if spin {
            // Spin's request log (spin_trigger_http at info) carries each
            // request's query, OAuth codes included, so the harness leaves it
            // off; a waiter holds a lease from before it blocks until it
            // answers, and the operator's stats count the live leases.
            return dock_tests::wait_until_async(
                Duration::from_secs(20),
                "waiter leases in the stats",
                || async {
                    let stats = send(
                        self.http
                            .get(self.url_on(i, "/api/v1/admin/stats"))
                            .bearer_auth(ADMIN_TOKEN),
                    )
                    .await;
                    matches!(stats, Ok((200, body)) if body["data"]["waiters"].as_u64().unwrap_or(0) >= waiters as u64)
                },
            )
            .await;
        }
        if self.redis.is_some() {
            // dock-host serves blocking XREADs through shards of one Redis
            // connection each; every shard logs (debug) how many reads it is
            // blocking for before each XREAD it sends.
            return dock_tests::wait_until_async(
                Duration::from_secs(20),
                "waiters blocked in XREAD",
                || async {
                    let blocked: usize =
                        self.hosts.iter().map(|h| blocked_reads(&h.output())).sum();
                    blocked >= waiters
                },
            )
            .await;
        }
        let path = format!("/api/v1/verify/session/{sid}");
        dock_tests::wait_until_async(
            Duration::from_secs(20),
            "the request to reach the host",
            || async {
                // dock-host logs `GET /path` at debug.
                self.hosts[i]
                    .output()
                    .lines()
                    .any(|l| l.contains(&path) && l.contains("GET"))
            },
        )
        .await
    }
}

/// Sums the latest `shard=N waiters=M` of each shard in a host's debug log.
fn blocked_reads(log: &str) -> usize {
    let mut last = std::collections::HashMap::new();
    let field = |line: &str, name: &str| -> Option<usize> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    for line in log.lines().filter(|l| l.contains("blocking read")) {
        if let (Some(shard), Some(n)) = (field(line, "shard="), field(line, "waiters=")) {
            last.insert(shard, n);
        }
    }
    last.values().sum()
}

/// An HTTP client for the tests (keep-alive, no proxy).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// Sends and reads a JSON answer.
pub async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body =
        serde_json::from_str(&text).with_context(|| format!("{status}: not JSON: {text:?}"))?;
    Ok((status, body))
}

/// A `text/event-stream` response read with dock-core's decoder.
pub struct EventStream {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    decoder: Decoder,
    queued: std::collections::VecDeque<DecodedEvent>,
    pub raw: String,
}

impl EventStream {
    async fn new(resp: reqwest::Response) -> Result<EventStream> {
        Ok(EventStream {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes_stream().boxed(),
            decoder: Decoder::new(),
            queued: Default::default(),
            raw: String::new(),
        })
    }

    /// The next event, `None` when the stream ends; fails after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<DecodedEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Ok(Some(e));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .with_context(|| {
                    format!("no event within {timeout:?}; got so far: {:?}", self.raw)
                })?;
            match chunk {
                None => return Ok(None),
                Some(chunk) => {
                    let chunk = chunk?;
                    self.raw.push_str(&String::from_utf8_lossy(&chunk));
                    self.queued.extend(self.decoder.feed(&chunk));
                }
            }
        }
    }

    /// The next event, which must exist.
    pub async fn expect(&mut self, timeout: Duration) -> Result<DecodedEvent> {
        self.next(timeout).await?.context("the stream ended early")
    }

    /// Waits for the end of the stream, failing on any further event.
    pub async fn expect_end(&mut self, timeout: Duration) -> Result<()> {
        match self.next(timeout).await? {
            None => Ok(()),
            Some(e) => bail!("expected the stream to end, got {e:?}"),
        }
    }
}

/// Runs each scenario on both stores, with instance reuse (as Spin 4.1) and
/// without (a fresh instance per request): `both_stores!(name)` expects
/// `async fn name(cfg: Cfg) -> Result<()>`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $crate::both_stores!(@variant sqlite, Sqlite, true; $($name),*);
        $crate::both_stores!(@variant redis, Redis, true; $($name),*);
        $crate::both_stores!(@variant sqlite_no_reuse, Sqlite, false; $($name),*);
        $crate::both_stores!(@variant redis_no_reuse, Redis, false; $($name),*);
    };
    (@variant $module:ident, $store:ident, $reuse:literal; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::api_support::Cfg { store: super::StoreKind::$store, reuse: $reuse }).await
                }
            )*
        }
    };
}
