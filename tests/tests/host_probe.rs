//! dock-host end to end: the real binary serving the probe component
//! (`tests/components/probe`) against a real redis-server.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dock_tests::{Host, RedisServer, artifacts, wait_until, wait_until_async};

const T: Duration = Duration::from_secs(20);

fn probe_manifest(dir: &Path) -> PathBuf {
    let probe = artifacts::PROBE_WASM;
    let text = format!(
        r#"spin_manifest_version = 2

[application]
name = "probe"

[variables]
redis_url = {{ required = true }}
greeting = {{ default = "hello" }}
from_env = {{ default = "manifest default" }}
upstream = {{ default = "" }}

[[trigger.http]]
route = "/probe/..."
component = "probe"

[[trigger.http]]
route = "/users/:user_id/..."
component = "probe"

[[trigger.http]]
route = "/nosql/..."
component = "nosql"

[component.probe]
source = "{probe}"
allowed_outbound_hosts = ["{{{{ redis_url }}}}", "{{{{ upstream }}}}"]
sqlite_databases = ["default"]

[component.probe.variables]
redis_url = "{{{{ redis_url }}}}"
message = "{{{{ greeting }}}}, world"
from_env = "{{{{ from_env }}}}"

[component.nosql]
source = "{probe}"
allowed_outbound_hosts = ["{{{{ redis_url }}}}"]

[component.nosql.variables]
redis_url = "{{{{ redis_url }}}}"
"#
    );
    artifacts::write_manifest(dir, &text).unwrap()
}

fn redis_var(redis: &RedisServer) -> String {
    format!("redis_url={}", redis.url())
}

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn post(url: String, body: &str) -> impl Future<Output = (u16, String)> + use<> {
    let body = body.to_owned();
    async move {
        let resp = reqwest::Client::new()
            .post(url)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_requests_and_sets_spin_headers() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", "redis_url=redis://127.0.0.1:1"],
    )
    .unwrap();

    assert_eq!(get(&host.url("/probe/hello")).await, (200, "hello".into()));
    assert_eq!(get(&host.url("/elsewhere")).await.0, 404);

    let (status, headers) = get(&host.url("/users/42/headers?x=1")).await;
    assert_eq!(status, 200);
    let port = host.addr().port();
    for expected in [
        format!("spin-full-url: http://127.0.0.1:{port}/users/42/headers?x=1"),
        "spin-path-info: /headers".to_owned(),
        "spin-matched-route: /users/:user_id/...".to_owned(),
        "spin-raw-component-route: /users/:user_id/...".to_owned(),
        "spin-component-route: /users/:user_id".to_owned(),
        "spin-base-path: /".to_owned(),
        "spin-path-match-user-id: 42".to_owned(),
    ] {
        assert!(
            headers.lines().any(|l| l == expected),
            "{expected:?} not in\n{headers}"
        );
    }
    assert!(
        headers.contains("spin-client-addr: 127.0.0.1:"),
        "{headers}"
    );

    // A client cannot pose as the host.
    let spoofed = reqwest::Client::new()
        .get(host.url("/probe/headers"))
        .header("spin-path-info", "/evil")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(spoofed.contains("spin-path-info: /headers"), "{spoofed}");
    assert!(!spoofed.contains("/evil"), "{spoofed}");
}

/// A blocking `XREAD` through `execute` is woken by another client's `XADD`,
/// and blocks only its caller: other requests are served meanwhile.
async fn xread_block(reuse: &str) {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            &redis_var(&redis),
            "--max-instance-concurrent-reuse-count",
            reuse,
        ],
    )
    .unwrap();

    let url = host.url("/probe/redis/xread?events");
    let pending = tokio::spawn(async move { get(&url).await });
    wait_until_async(T, "the guest's XREAD to block in redis", || async {
        redis
            .cli(&["CLIENT", "LIST"])
            .unwrap()
            .contains("cmd=xread")
    })
    .await
    .unwrap();

    // The instance is not stalled by the blocked command.
    assert_eq!(get(&host.url("/probe/hello")).await, (200, "hello".into()));
    assert!(!pending.is_finished());

    let id = redis
        .cli(&["XADD", "events", "*", "kind", "woken"])
        .unwrap();
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(T, pending).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("bin:events\nbin:{id}\nbin:kind\nbin:woken\n"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A host with one instance slot, taken by a request blocked in `XREAD` on
/// stream `events` (an `XADD` to it frees the slot); `wait` is `--instance-wait`.
struct OneBusySlot {
    redis: RedisServer,
    host: Host,
    pending: tokio::task::JoinHandle<(u16, String)>,
    _dir: tempfile::TempDir,
}

async fn one_busy_slot(wait: &str) -> OneBusySlot {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            &redis_var(&redis),
            "--max-instances",
            "1",
            "--max-instance-concurrent-reuse-count",
            "1",
            "--instance-wait",
            wait,
            "--log-level",
            "dock_host=debug",
        ],
    )
    .unwrap();
    let url = host.url("/probe/redis/xread?events");
    let pending = tokio::spawn(async move { get(&url).await });
    wait_until_async(T, "the guest's XREAD to block in redis", || async {
        redis
            .cli(&["CLIENT", "LIST"])
            .unwrap()
            .contains("cmd=xread")
    })
    .await
    .unwrap();
    OneBusySlot {
        redis,
        host,
        pending,
        _dir: dir,
    }
}

/// Every instance slot taken (`--max-instances`) is "at capacity", not a
/// failure: 503 with `Retry-After`, and served again once a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_instance_is_503_with_retry_after() {
    let OneBusySlot {
        redis,
        host,
        pending,
        _dir,
    } = one_busy_slot("0").await;
    let busy = reqwest::get(host.url("/probe/hello")).await.unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    redis.cli(&["XADD", "events", "*", "k", "v"]).unwrap();
    let (status, _) = tokio::time::timeout(T, pending).await.unwrap().unwrap();
    assert_eq!(status, 200);
    wait_until_async(T, "the instance slot to free", || async {
        get(&host.url("/probe/hello")).await.0 == 200
    })
    .await
    .unwrap();
}

/// With every instance slot taken, a request waits (up to `--instance-wait`)
/// and is served by the slot the blocked request frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_free_instance() {
    let OneBusySlot {
        redis,
        host,
        pending,
        _dir,
    } = one_busy_slot("60s").await;
    let hello = host.url("/probe/hello");
    let waiting = tokio::spawn(async move { get(&hello).await });
    wait_until_async(T, "the second request to wait for an instance", || async {
        host.output().contains("no free instance; waiting")
    })
    .await
    .unwrap();
    assert!(!waiting.is_finished(), "it waits while the slot is taken");
    redis.cli(&["XADD", "events", "*", "k", "v"]).unwrap();
    let (status, _) = tokio::time::timeout(T, pending).await.unwrap().unwrap();
    assert_eq!(status, 200);
    let (status, body) = tokio::time::timeout(T, waiting).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xread_block_is_woken_by_another_clients_xadd_without_reuse() {
    xread_block("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xread_block_is_woken_by_another_clients_xadd_with_concurrent_reuse() {
    xread_block("16").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_flattens_replies_like_spin() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", &redis_var(&redis)],
    )
    .unwrap();
    let exec = |args: &str| post(host.url("/probe/redis/exec"), args);

    let a = redis.cli(&["XADD", "s", "*", "f1", "v1"]).unwrap();
    let b = redis
        .cli(&["XADD", "s", "*", "f2", "v2", "f3", "v3"])
        .unwrap();
    let (status, body) = exec("XRANGE\ns\n-\n+").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("bin:{a}\nbin:f1\nbin:v1\nbin:{b}\nbin:f2\nbin:v2\nbin:f3\nbin:v3\n")
    );
    assert_eq!(exec("SET\nk\n5").await, (200, "status:OK\n".into()));
    assert_eq!(exec("INCR\nk").await, (200, "int:6\n".into()));
    assert_eq!(exec("GET\nmissing").await, (200, "nil\n".into()));
    assert_eq!(exec("PING").await, (200, "status:PONG\n".into()));
    let (status, body) = exec("NOSUCHCOMMAND").await;
    assert_eq!(status, 500);
    assert!(body.contains("Other"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_response_arrives_event_by_event_and_disconnect_ends_the_guest_work() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", &redis_var(&redis)],
    )
    .unwrap();

    let mut resp = reqwest::get(host.url("/probe/stream?feed")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The handler is now blocked in XREAD, yet its first event is here.
    let first = tokio::time::timeout(T, resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"event: first\ndata: hello\n\n");

    let id = redis.cli(&["XADD", "feed", "*", "data", "one"]).unwrap();
    let second = tokio::time::timeout(T, resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&second),
        format!("event: entry\nid: {id}\ndata: one\n\n")
    );

    // Client goes away: the guest's next write fails and it stops (recording
    // `feed:ended`). It only notices on a write, so keep feeding it.
    drop(resp);
    wait_until_async(T, "the guest to notice the disconnect", || async {
        redis.cli(&["XADD", "feed", "*", "data", "more"]).unwrap();
        redis.cli(&["GET", "feed:ended"]).unwrap() == "1"
    })
    .await
    .unwrap();
}

/// A one-connection-at-a-time HTTP server answering `pong`, counting connections.
fn upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_and_redis_are_limited_to_allowed_hosts() {
    let (allowed_port, allowed_hits) = upstream();
    let (denied_port, denied_hits) = upstream();
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            &redis_var(&redis),
            "--variable",
            &format!("upstream=http://127.0.0.1:{allowed_port}"),
        ],
    )
    .unwrap();

    let ok = get(&host.url(&format!(
        "/probe/outbound?http://127.0.0.1:{allowed_port}/x"
    )))
    .await;
    assert_eq!(ok, (200, "status:200 pong".into()));
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);

    let (status, body) =
        get(&host.url(&format!("/probe/outbound?http://127.0.0.1:{denied_port}/x"))).await;
    assert_eq!(status, 500);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(
        denied_hits.load(Ordering::SeqCst),
        0,
        "a denied request reached the network"
    );

    // Redis: the allowed address opens, any other is InvalidAddress.
    assert_eq!(
        get(&host.url(&format!("/probe/redis/open?{}", redis.url()))).await,
        (200, "ok".into())
    );
    let (status, body) = get(&host.url("/probe/redis/open?redis://127.0.0.1:1")).await;
    assert_eq!(status, 500);
    assert!(body.contains("InvalidAddress"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_resolve_cli_over_env_over_default() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::builder(&probe_manifest(dir.path()))
        .args(&[
            "--variable",
            "redis_url=redis://127.0.0.1:1",
            "--var",
            "greeting=howdy",
        ])
        .env("SPIN_VARIABLE_FROM_ENV", "from the environment")
        .env("SPIN_VARIABLE_GREETING", "env loses to --variable")
        .start()
        .unwrap();
    assert_eq!(
        get(&host.url("/probe/var/message")).await,
        (200, "howdy, world".into())
    );
    assert_eq!(
        get(&host.url("/probe/var/from_env")).await,
        (200, "from the environment".into())
    );
    // Not mapped by the component: Spin's `undefined`.
    let (status, body) = get(&host.url("/probe/var/greeting")).await;
    assert_eq!(status, 500);
    assert!(body.contains("Undefined"), "{body}");
    let (status, body) = get(&host.url("/probe/var/Not-Valid")).await;
    assert_eq!(status, 500);
    assert!(body.contains("InvalidName"), "{body}");
}

#[test]
fn a_missing_required_variable_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let exit = Host::builder(&probe_manifest(dir.path()))
        .run_to_exit(T)
        .unwrap();
    assert!(!exit.status.success());
    assert!(exit.output.contains("redis_url"), "{}", exit.output);
}

#[test]
fn an_unsupported_import_is_a_startup_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str(
        r#"(component
            (import "dock:unsupported/thing@1.0.0" (instance (export "f" (func))))
        )"#,
    )
    .unwrap();
    let path = dir.path().join("odd.wasm");
    std::fs::write(&path, wasm).unwrap();
    let manifest = artifacts::write_manifest(
        dir.path(),
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"odd\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"odd\"\n[component.odd]\nsource = \"{}\"\n",
            path.display()
        ),
    )
    .unwrap();
    let exit = Host::builder(&manifest).run_to_exit(T).unwrap();
    assert!(!exit.status.success());
    assert!(
        exit.output.contains("dock:unsupported/thing@1.0.0"),
        "{}",
        exit.output
    );
}

#[test]
fn an_unsupported_manifest_feature_is_a_startup_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(probe_manifest(dir.path()))
        .unwrap()
        .replace(
            "sqlite_databases = [\"default\"]",
            "key_value_stores = [\"default\"]",
        );
    let manifest = artifacts::write_manifest(dir.path(), &text).unwrap();
    let exit = Host::builder(&manifest)
        .args(&["--variable", "redis_url=redis://127.0.0.1:1"])
        .run_to_exit(T)
        .unwrap();
    assert!(!exit.status.success());
    assert!(exit.output.contains("key_value_stores"), "{}", exit.output);

    // An allowed_outbound_hosts entry Spin would reject (a path) fails too.
    let text = std::fs::read_to_string(probe_manifest(dir.path())).unwrap();
    let text = text.replacen(
        "allowed_outbound_hosts = [\"{{ redis_url }}\"]\n\n[component.nosql.variables]",
        "allowed_outbound_hosts = [\"https://example.com/path\"]\n\n[component.nosql.variables]",
        1,
    );
    let manifest = artifacts::write_manifest(dir.path(), &text).unwrap();
    let exit = Host::builder(&manifest)
        .args(&["--variable", "redis_url=redis://127.0.0.1:1"])
        .run_to_exit(T)
        .unwrap();
    assert!(!exit.status.success());
    assert!(
        exit.output.contains("must not include a path"),
        "{}",
        exit.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_default_database_for_declaring_components_only() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            "redis_url=redis://127.0.0.1:1",
            "--sqlite-db",
            "memory",
            // As `spin up --sqlite`: statements run before serving.
            "--sqlite",
            "CREATE TABLE seeded (x INTEGER); INSERT INTO seeded VALUES (42)",
        ],
    )
    .unwrap();
    let sql = |s: &str| post(host.url("/probe/sqlite"), s);
    assert_eq!(
        sql("SELECT x FROM seeded").await,
        (200, String::from("x\n42\nchanges:1\n"))
    );
    assert_eq!(
        sql("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)")
            .await
            .0,
        200
    );
    let (status, body) = sql("INSERT INTO t VALUES ('a', 1), ('b', 2) RETURNING k").await;
    assert_eq!((status, body.as_str()), (200, "k\na\nb\nchanges:2\n"));
    let (status, body) = sql("SELECT k, n * 10 AS x FROM t ORDER BY k").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "k\tx\na\t10\nb\t20\nchanges:2\n")
    );
    // One conditional statement is one atomic transition.
    let claim = "UPDATE t SET n = 0 WHERE k = 'a' AND n = 1 RETURNING k";
    assert_eq!(sql(claim).await.1, "k\na\nchanges:1\n");
    assert_eq!(sql(claim).await.1, "k\nchanges:0\n");
    let (status, body) = sql("SELEC oops").await;
    assert_eq!(status, 500);
    assert!(body.contains("Io"), "{body}");

    // The other component did not declare sqlite_databases.
    let (status, body) = post(host.url("/nosql/sqlite"), "SELECT 1").await;
    assert_eq!(status, 500);
    assert!(body.contains("AccessDenied"), "{body}");
    assert!(
        !dir.path().join(".spin").exists(),
        "--sqlite-db memory wrote a file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_lives_in_dot_spin_next_to_the_manifest_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = probe_manifest(dir.path());
    let args = ["--variable", "redis_url=redis://127.0.0.1:1"];
    {
        let host = Host::start(&manifest, &args).unwrap();
        let url = host.url("/probe/sqlite");
        assert_eq!(post(url.clone(), "CREATE TABLE kept (x)").await.0, 200);
        assert_eq!(
            post(url.clone(), "INSERT INTO kept VALUES (7)").await.0,
            200
        );
        assert!(
            host.output().contains(".spin/sqlite_db.db"),
            "{}",
            host.output()
        );
    }
    assert!(dir.path().join(".spin/sqlite_db.db").exists());
    let host = Host::start(&manifest, &args).unwrap();
    assert_eq!(
        post(host.url("/probe/sqlite"), "SELECT x FROM kept").await,
        (200, "x\n7\nchanges:0\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_loops_forever_is_stopped_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            "redis_url=redis://127.0.0.1:1",
            "--max-guest-slice",
            "500ms",
        ],
    )
    .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(T, reqwest::get(host.url("/probe/loop")))
        .await
        .unwrap()
        .unwrap();
    // Stopped by its slice: 503 with Retry-After (a retry gets a fresh
    // instance), as for any request whose instance stopped under it.
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The log line travels through a pipe; it may trail the 503.
    wait_until(T, "the host to log the stopped guest", || {
        host.output().contains("--max-guest-slice")
    })
    .unwrap();
    assert_eq!(get(&host.url("/probe/hello")).await, (200, "hello".into()));

    // The slice measures continuous execution: 5 x 200 ms of work separated by
    // waits (1 s in total, twice the slice) completes.
    assert_eq!(
        get(&host.url("/probe/cpu?5,200")).await,
        (200, "done".into())
    );
}

/// Sequential requests: a per-instance static counter shows whether the
/// instance was reused.
async fn counters(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![
        "--variable",
        "redis_url=redis://127.0.0.1:1",
        "--idle-instance-timeout",
        "60s",
    ];
    all.extend_from_slice(args);
    let host = Host::start(&probe_manifest(dir.path()), &all).unwrap();
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(get(&host.url("/probe/counter")).await.1);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_reused_unless_reuse_is_one() {
    assert_eq!(counters(&[]).await, vec!["1", "2", "3"]);
    assert_eq!(
        counters(&["--max-instance-reuse-count", "1"]).await,
        vec!["1", "1", "1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_through() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", "redis_url=redis://127.0.0.1:1"],
    )
    .unwrap();
    let body: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(post(host.url("/probe/echo"), &body).await, (200, body));
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", "redis_url=redis://127.0.0.1:1"],
    )
    .unwrap();
    let addr = host.addr();
    let exit = host.terminate(T).unwrap();
    assert!(exit.status.success(), "{exit:?}");
    assert!(exit.output.contains("Shutting down"), "{}", exit.output);
    wait_until(T, "the port to be released", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_memory_is_limited_and_the_host_survives_an_oversized_guest() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            "redis_url=redis://127.0.0.1:1",
            "--max-instance-memory",
            "32MiB",
        ],
    )
    .unwrap();
    assert_eq!(get(&host.url("/probe/alloc?4")).await, (200, "4".into()));
    // The instance traps (out of memory): 503 + Retry-After, as for every
    // request whose instance stopped before answering.
    assert_eq!(get(&host.url("/probe/alloc?64")).await.0, 503);
    assert_eq!(get(&host.url("/probe/alloc?4")).await, (200, "4".into()));
}

/// Reads one HTTP/1.1 response with a chunked or sized body from `s`.
fn read_response(s: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        s.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let head = &text[..head_end].to_ascii_lowercase();
            let body = &text[head_end + 4..];
            if head.contains("transfer-encoding: chunked") && body.ends_with("0\r\n\r\n") {
                return text.into_owned();
            }
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                && body.len() == len
            {
                return text.into_owned();
            }
        }
    }
}

/// On a kept-alive connection a response written in pieces must not wait for
/// the client's delayed ACK (~40 ms on Linux) before each later piece: the
/// host sets TCP_NODELAY. (Checked to fail with Nagle's algorithm left on.)
#[test]
fn kept_alive_requests_do_not_wait_for_delayed_acks() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", "redis_url=redis://127.0.0.1:1"],
    )
    .unwrap();
    let mut s = std::net::TcpStream::connect(host.addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        s.write_all(b"GET /probe/pieces HTTP/1.1\r\nHost: probe\r\n\r\n")
            .unwrap();
        let response = read_response(&mut s);
        times.push(started.elapsed());
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("third piece"), "{response}");
    }
    times.sort();
    let median = times[times.len() / 2];
    // Nagle + delayed ACK costs at least 40 ms per request; a few ms without.
    assert!(
        median < Duration::from_millis(35),
        "median {median:?} of {times:?}"
    );
}

/// SIGTERM: no new connections, but an open stream keeps flowing until it
/// ends or `--shutdown-timeout` passes; then the host exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_open_streams_run_until_the_shutdown_timeout() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &["--variable", &redis_var(&redis), "--shutdown-timeout", "3s"],
    )
    .unwrap();
    let addr = host.addr();
    let mut resp = reqwest::get(host.url("/probe/stream?late")).await.unwrap();
    let first = tokio::time::timeout(T, resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"event: first\ndata: hello\n\n");

    host.signal("TERM").unwrap();
    wait_until_async(T, "the listener to close", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await
    .unwrap();
    let id = redis
        .cli(&["XADD", "late", "*", "data", "after-sigterm"])
        .unwrap();
    let next = tokio::time::timeout(T, resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&next),
        format!("event: entry\nid: {id}\ndata: after-sigterm\n\n")
    );
    let exit = tokio::task::spawn_blocking(move || host.wait_exit(T))
        .await
        .unwrap()
        .unwrap();
    assert!(exit.status.success(), "{exit:?}");
    assert!(
        exit.output.contains("--shutdown-timeout"),
        "{}",
        exit.output
    );
    // The instance still streaming is dropped by the shutdown: no warning
    // that reads like a crash.
    assert!(!exit.output.contains("panicked"), "{}", exit.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_runs_the_component_build_command_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(probe_manifest(dir.path()))
        .unwrap()
        .replacen(
            &format!("source = \"{}\"", artifacts::PROBE_WASM),
            "source = \"out/built.wasm\"",
            1,
        )
        .replace(
            "[component.probe.variables]",
            &format!(
                "[component.probe.build]\ncommand = [\"mkdir -p out\", \"cp '{}' out/built.wasm\"]\n\n[component.probe.variables]",
                artifacts::PROBE_WASM
            ),
        );
    let manifest = artifacts::write_manifest(dir.path(), &text).unwrap();
    let host = Host::start(
        &manifest,
        &["--build", "--variable", "redis_url=redis://127.0.0.1:1"],
    )
    .unwrap();
    assert!(dir.path().join("out/built.wasm").exists());
    assert_eq!(get(&host.url("/probe/hello")).await, (200, "hello".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_config_places_the_default_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runtime-config.toml");
    std::fs::write(
        &config,
        "[sqlite_database.default]\ntype = \"spin\"\npath = \"data/app.db\"\n",
    )
    .unwrap();
    let host = Host::start(
        &probe_manifest(dir.path()),
        &[
            "--variable",
            "redis_url=redis://127.0.0.1:1",
            "--runtime-config-file",
            config.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(
        post(host.url("/probe/sqlite"), "CREATE TABLE t (x)")
            .await
            .0,
        200
    );
    assert!(dir.path().join("data/app.db").exists());
    assert!(!dir.path().join(".spin").exists());
}
