//! The blocking-read multiplexer against a real `redis-server`: every waiter
//! gets what its own `XREAD` on its own connection would have returned.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dock_host::redis_mux::{Arg, BlockingRead, Endpoint, RedisPool, SHARD_STREAMS};
use redis::Value;
use tokio::time::Instant;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let s = Server { child, port };
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while redis::Client::open(s.url())
            .and_then(|c| c.get_connection())
            .is_err()
        {
            assert!(
                std::time::Instant::now() < end,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn plain(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(key: &str, id: &str, count: Option<i64>, block_ms: i64) -> BlockingRead {
    let mut args = Vec::new();
    if let Some(n) = count {
        args.extend([Arg::Bytes(b"COUNT"), Arg::Int(n)]);
    }
    args.extend([
        Arg::Bytes(b"BLOCK"),
        Arg::Int(block_ms),
        Arg::Bytes(b"STREAMS"),
        Arg::Bytes(key.as_bytes()),
        Arg::Bytes(id.as_bytes()),
    ]);
    BlockingRead::parse("XREAD", &args, Instant::now()).expect("multiplexable")
}

/// What a plain, non-blocking `XREAD` of the same stream returns now.
fn direct(s: &Server, key: &str, id: &str, count: Option<i64>) -> Value {
    let mut cmd = redis::cmd("XREAD");
    if let Some(n) = count {
        cmd.arg("COUNT").arg(n);
    }
    cmd.arg("STREAMS").arg(key).arg(id);
    cmd.query(&mut s.plain()).unwrap()
}

fn endpoint(s: &Server) -> (RedisPool, Arc<Endpoint>) {
    let pool = RedisPool::default();
    let e = pool.endpoint(&s.url()).unwrap();
    (pool, e)
}

fn xadd(s: &Server, key: &str, id: &str, v: &str) {
    let _: String = redis::cmd("XADD")
        .arg(key)
        .arg(id)
        .arg("f")
        .arg(v)
        .query(&mut s.plain())
        .unwrap();
}

fn connected_clients(s: &Server) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut s.plain())
        .unwrap();
    list.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_each_get_their_own_entry_over_few_connections() {
    let s = Server::start();
    let (_pool, e) = endpoint(&s);
    let n = SHARD_STREAMS * 2 + 44;
    let mut tasks = Vec::new();
    for i in 0..n {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            e.blocking_read(read(&format!("s{i}"), "0-0", Some(1), 30_000))
                .await
        }));
    }
    // All registered before any entry exists? Not needed: reads are from an
    // explicit id, so an early entry is found either way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let clients = connected_clients(&s);
    assert!(
        clients <= n.div_ceil(SHARD_STREAMS) + 3,
        "{clients} Redis connections for {n} blocked reads"
    );
    for i in (0..n).rev() {
        xadd(
            &s,
            &format!("s{i}"),
            &format!("{}-1", i + 1),
            &format!("v{i}"),
        );
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("woken")
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            direct(&s, &format!("s{i}"), "0-0", Some(1)),
            "waiter {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_stream_different_ids_and_counts() {
    let s = Server::start();
    let (_pool, e) = endpoint(&s);
    for id in ["1-0", "2-0", "3-0"] {
        xadd(&s, "s", id, id);
    }
    // Entries after 3-0 do not exist yet: this one blocks until 4-0.
    let late = tokio::spawn({
        let e = e.clone();
        async move { e.blocking_read(read("s", "3-0", None, 30_000)).await }
    });
    let from1 = e
        .blocking_read(read("s", "1-0", Some(1), 30_000))
        .await
        .unwrap();
    assert_eq!(from1, direct(&s, "s", "1-0", Some(1)));
    let from0 = e.blocking_read(read("s", "0", None, 30_000)).await.unwrap();
    assert_eq!(from0, direct(&s, "s", "0", None));
    xadd(&s, "s", "4-0", "4");
    let got = tokio::time::timeout(Duration::from_secs(20), late)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, direct(&s, "s", "3-0", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_answers_nil_no_earlier_than_asked() {
    let s = Server::start();
    let (_pool, e) = endpoint(&s);
    let start = Instant::now();
    let got = e
        .blocking_read(read("empty", "0", None, 300))
        .await
        .unwrap();
    assert_eq!(got, Value::Nil);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_is_watched_at_once_not_at_the_next_wake() {
    let s = Server::start();
    let (_pool, e) = endpoint(&s);
    // The shard blocks on `a` for 30 s (it re-checks every 10 s at most).
    let a = tokio::spawn({
        let e = e.clone();
        async move { e.blocking_read(read("a", "0", None, 30_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = tokio::spawn({
        let e = e.clone();
        async move { e.blocking_read(read("b", "0", None, 30_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    xadd(&s, "b", "1-0", "x");
    // Well under the shard's 10 s re-check: `b` joined the blocked read.
    let got = tokio::time::timeout(Duration::from_secs(5), b)
        .await
        .expect("b woken without waiting for the shard's next turn")
        .unwrap()
        .unwrap();
    assert_eq!(got, direct(&s, "b", "0", None));
    xadd(&s, "a", "1-0", "y");
    let got = tokio::time::timeout(Duration::from_secs(20), a)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, direct(&s, "a", "0", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_leaves_does_not_disturb_the_others() {
    let s = Server::start();
    let (_pool, e) = endpoint(&s);
    let gone = tokio::spawn({
        let e = e.clone();
        async move { e.blocking_read(read("g", "0", None, 30_000)).await }
    });
    let stays = tokio::spawn({
        let e = e.clone();
        async move { e.blocking_read(read("k", "0", None, 30_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gone.abort();
    xadd(&s, "k", "1-0", "v");
    let got = tokio::time::timeout(Duration::from_secs(20), stays)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, direct(&s, "k", "0", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_fails_waiters_promptly_and_a_restart_serves_again() {
    let s = Server::start();
    let port = s.port;
    let (_pool, e) = endpoint(&s);
    let _ = e.shared().await.unwrap();
    let w = tokio::spawn({
        let e = e.clone();
        async move { e.blocking_read(read("s", "0", None, 60_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    let got = tokio::time::timeout(Duration::from_secs(10), w)
        .await
        .expect("the waiter is answered, not left hanging")
        .unwrap();
    assert!(got.is_err(), "{got:?}");
    let s = Server::start_on(port);
    xadd(&s, "s", "1-0", "v");
    let got = e.blocking_read(read("s", "0", None, 5_000)).await.unwrap();
    assert_eq!(got, direct(&s, "s", "0", None));
}
