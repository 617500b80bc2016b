//! Native connections for the stores' tests: the Redis and SQLite stores run
//! their own scripts and statements, without Wasm or a host, through
//! [`redis::Link`] and [`sqlite::Link`] implementations over redis-rs and
//! rusqlite (as Spin's factor tests exercise a host interface without a
//! guest). Replies are flattened as Spin's `spin:redis` flattens them.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spin_sdk::redis::{Error as RedisError, RedisParameter, RedisResult};
use spin_sdk::sqlite::Value;

use super::{redis, sqlite};

/// A current-thread runtime, as the component's single thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A redis-rs connection behind the store's Redis [`redis::Link`].
pub struct NativeRedis(::redis::aio::MultiplexedConnection);

fn other(e: impl std::fmt::Display) -> RedisError {
    RedisError::Other(e.to_string())
}

/// Spin's `list<redis-result>`: nested arrays flattened, nil kept.
fn flatten(value: &::redis::Value, out: &mut Vec<RedisResult>) -> Result<(), RedisError> {
    use ::redis::Value as V;
    match value {
        V::Nil => out.push(RedisResult::Nil),
        V::Int(n) => out.push(RedisResult::Int64(*n)),
        V::BulkString(b) => out.push(RedisResult::Binary(b.clone())),
        V::SimpleString(s) => out.push(RedisResult::Status(s.clone())),
        V::Okay => out.push(RedisResult::Status("OK".into())),
        V::Array(items) | V::Set(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        V::ServerError(e) => return Err(other(format!("Server error: {e:?}"))),
        other_value => return Err(other(format!("unsupported reply {other_value:?}"))),
    }
    Ok(())
}

impl redis::Link for NativeRedis {
    async fn open(url: &str) -> Result<Self, RedisError> {
        let client = ::redis::Client::open(url).map_err(other)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(other)?;
        Ok(NativeRedis(conn))
    }

    async fn execute(
        &self,
        cmd: &str,
        args: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, RedisError> {
        let mut command = ::redis::cmd(cmd);
        for a in args {
            match a {
                RedisParameter::Int64(n) => command.arg(n),
                RedisParameter::Binary(b) => command.arg(b),
            };
        }
        let mut conn = self.0.clone();
        let reply: ::redis::Value = command.query_async(&mut conn).await.map_err(other)?;
        let mut out = Vec::new();
        flatten(&reply, &mut out)?;
        Ok(out)
    }
}

/// A `redis-server` of the test's own on a free port, stopped on drop.
pub struct TestRedis {
    child: Child,
    url: String,
}

impl TestRedis {
    /// Starts one and waits (deadline 10 s) until it answers.
    pub fn start() -> TestRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (installed by ./dev setup)");
        let url = format!("redis://127.0.0.1:{port}/");
        let client = ::redis::Client::open(url.as_str()).expect("redis url");
        let deadline = Instant::now() + Duration::from_secs(10);
        while client
            .get_connection()
            .and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        TestRedis { child, url }
    }

    /// A store on it.
    pub async fn store(&self) -> redis::RedisStore<NativeRedis> {
        redis::RedisStore::open(&self.url)
            .await
            .expect("redis store")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rusqlite connection behind the store's SQLite [`sqlite::Link`].
pub struct NativeSqlite(rusqlite::Connection);

fn to_sql(v: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as R;
    match v {
        Value::Integer(n) => R::Integer(n),
        Value::Real(f) => R::Real(f),
        Value::Text(s) => R::Text(s),
        Value::Blob(b) => R::Blob(b),
        Value::Null => R::Null,
    }
}

fn from_sql(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as R;
    match v {
        R::Integer(n) => Value::Integer(n),
        R::Real(f) => Value::Real(f),
        R::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        R::Blob(b) => Value::Blob(b.to_vec()),
        R::Null => Value::Null,
    }
}

impl sqlite::Link for NativeSqlite {
    async fn rows(&self, sql: &str, params: Vec<Value>) -> Result<Vec<sqlite::Row>, String> {
        let mut stmt = self.0.prepare(sql).map_err(|e| e.to_string())?;
        let columns = stmt.column_count();
        let params = rusqlite::params_from_iter(params.into_iter().map(to_sql));
        let mut rows = stmt.query(params).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            out.push(
                (0..columns)
                    .map(|i| row.get_ref(i).map(from_sql))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(out)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A store on a fresh in-memory database, with the schema.
pub async fn sqlite() -> sqlite::SqliteStore<NativeSqlite> {
    let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
    sqlite::SqliteStore::with_link(NativeSqlite(conn), true)
        .await
        .expect("sqlite store")
}

/// Expands each named `async fn(&impl Backend)` scenario into one test per
/// store: `memory::name`, `sqlite::name`, `redis::name`.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $name() {
                    futures::executor::block_on(super::$name(
                        &crate::store::memory::MemoryStore::new(),
                    ));
                }
            )*
        }
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    crate::store::native::runtime().block_on(async {
                        let store = crate::store::native::sqlite().await;
                        super::$name(&store).await;
                    });
                }
            )*
        }
        mod redis {
            $(
                #[test]
                fn $name() {
                    let server = crate::store::native::TestRedis::start();
                    crate::store::native::runtime().block_on(async {
                        let store = server.store().await;
                        super::$name(&store).await;
                    });
                }
            )*
        }
    };
}
pub(crate) use on_every_store;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn runtime_block<T>(f: impl std::future::Future<Output = T>) -> T {
        runtime().block_on(f)
    }

    fn table_exists(conn: &rusqlite::Connection, name: &str) -> bool {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    }

    #[test]
    fn a_new_sqlite_database_gets_the_latest_schema_version() {
        runtime_block(async {
            let store = sqlite().await;
            assert_eq!(store.user_version().await.unwrap(), 4);
        });
    }

    #[test]
    fn a_database_from_before_versioning_is_adopted_and_loses_the_old_flows_table() {
        let file = std::env::temp_dir().join(format!("dock-migrate-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&file);
        {
            // The first layout's flow table and a session row, version 0.
            let conn = rusqlite::Connection::open(&file).unwrap();
            conn.execute_batch(
                "CREATE TABLE dock_flows (state TEXT PRIMARY KEY, record TEXT);
                 CREATE TABLE dock_sessions (sid TEXT PRIMARY KEY, pid TEXT NOT NULL,
                    record TEXT NOT NULL, revision INTEGER NOT NULL, purge_at INTEGER NOT NULL,
                    discord_id TEXT, roblox_id TEXT);
                 INSERT INTO dock_sessions VALUES ('s', 'p', '{}', 1, 0, NULL, NULL);",
            )
            .unwrap();
        }
        runtime_block(async {
            let conn = rusqlite::Connection::open(&file).unwrap();
            let store = sqlite::SqliteStore::with_link(NativeSqlite(conn), true)
                .await
                .unwrap();
            assert_eq!(store.user_version().await.unwrap(), 4);
        });
        let conn = rusqlite::Connection::open(&file).unwrap();
        assert!(!table_exists(&conn, "dock_flows"));
        assert!(table_exists(&conn, "dock_session_flows"));
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM dock_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1, "the data stays");
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_database_of_a_newer_build_is_refused() {
        runtime_block(async {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            conn.execute_batch("PRAGMA user_version = 99").unwrap();
            let e = sqlite::SqliteStore::with_link(NativeSqlite(conn), true)
                .await
                .err()
                .expect("refused");
            assert!(matches!(e, StoreError::NotConfigured(m) if m.contains("version 99")));
        });
    }
}
