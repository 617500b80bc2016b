//! `spin:redis/redis@3.0.0` on a real Redis, with Spin 4.1's semantics.
//!
//! - `open` checks the address against `allowed_outbound_hosts` (as a
//!   `redis://host:port` URL; a bare `host:port` counts as `redis`), then
//!   connects. Spin opens one connection per `open`; this host shares one
//!   multiplexed connection per address and gives a guest connection a socket
//!   of its own as soon as it sends a command that depends on connection
//!   state, and serves single-stream blocking `XREAD`s through a multiplexer
//!   ([`crate::redis_mux`]): the same replies, far fewer sockets. There is no
//!   response timeout, so `XREAD BLOCK` works.
//! - Every function is `Accessor`-based: the connection handle is cloned inside
//!   `accessor.with(..)` and the command is awaited outside it, so a blocking
//!   command stalls only the guest task that issued it.
//! - `execute` flattens the reply as Spin does: arrays and sets recursively;
//!   doubles and big numbers as their decimal text in `binary`; booleans as
//!   `int64` 0/1; `OK` as `status("OK")`; maps, attributes, verbatim strings and
//!   pushes are rejected.
//! - Results larger than Spin's host buffer limit (128 MiB) are an error.

use std::sync::Arc;

use anyhow::Result;
use redis::AsyncCommands as _;
use redis::Value;
use redis::aio::MultiplexedConnection;
use wasmtime::component::{Accessor, HasData, Resource, ResourceTable};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::redis3 as v3;
use crate::redis_mux::{
    Arg, BlockingRead, Endpoint, RedisPool, connection_lost, needs_own_connection,
};

/// Spin's limit on a host-buffered result (`spin_world::MAX_HOST_BUFFERED_BYTES`).
pub const MAX_HOST_BUFFERED_BYTES: usize = 128 << 20;

/// The host side of a guest's `connection` resource.
#[derive(Clone)]
pub struct RedisConnection {
    endpoint: Arc<Endpoint>,
    /// The address's shared connection and its generation.
    shared: (usize, MultiplexedConnection),
    /// This guest connection's own socket, once it needed one.
    own: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisConnection")
    }
}

impl RedisConnection {
    fn conn(&self) -> MultiplexedConnection {
        self.own.clone().unwrap_or_else(|| self.shared.1.clone())
    }

    /// After a failed command: forget a dead shared connection.
    async fn failed(&self, e: redis::RedisError) -> v3::Error {
        if self.own.is_none() && connection_lost(&e) {
            self.endpoint.discard(self.shared.0).await;
        }
        other(e)
    }
}

/// Per-store state: what the component may reach.
#[derive(Debug, Clone, Default)]
pub struct RedisState {
    /// The component's resolved `allowed_outbound_hosts`.
    pub allowed: Arc<AllowedHosts>,
    /// The host's shared connections (one pool for every instance).
    pub pool: Arc<RedisPool>,
}

/// What the generated bindings see of the store: the state plus the resource table.
#[derive(Debug)]
pub struct RedisView<'a> {
    /// The per-store state.
    pub state: &'a RedisState,
    /// The store's resource table (shared with WASI).
    pub table: &'a mut ResourceTable,
}

/// Marker for `add_to_linker`.
#[derive(Debug)]
pub struct Redis;

impl HasData for Redis {
    type Data<'a> = RedisView<'a>;
}

fn other(e: impl std::fmt::Display) -> v3::Error {
    v3::Error::Other(e.to_string())
}

/// Flattens a Redis reply into Spin's `list<redis-result>`.
pub fn flatten(value: &Value) -> Result<Vec<v3::RedisResult>, v3::Error> {
    fn append(out: &mut Vec<v3::RedisResult>, value: &Value) -> Result<(), v3::Error> {
        let unsupported = |what: &str| {
            Err(other(format!(
                "Could not convert Redis response: Redis {what} type is not supported"
            )))
        };
        match value {
            Value::Nil => out.push(v3::RedisResult::Nil),
            Value::Int(v) => out.push(v3::RedisResult::Int64(*v)),
            Value::BulkString(b) => out.push(v3::RedisResult::Binary(b.clone())),
            Value::SimpleString(s) => out.push(v3::RedisResult::Status(s.clone())),
            Value::Okay => out.push(v3::RedisResult::Status("OK".to_owned())),
            Value::Array(items) | Value::Set(items) => {
                for item in items {
                    append(out, item)?;
                }
            }
            Value::Double(d) => out.push(v3::RedisResult::Binary(d.to_string().into_bytes())),
            Value::Boolean(b) => out.push(v3::RedisResult::Int64(i64::from(*b))),
            Value::BigNumber(n) => out.push(v3::RedisResult::Binary(n.to_string().into_bytes())),
            Value::Map(_) => return unsupported("Map"),
            Value::Attribute { .. } => return unsupported("Attribute"),
            Value::VerbatimString { .. } => return unsupported("string with format attribute"),
            Value::Push { .. } => return unsupported("Pub/Sub"),
            Value::ServerError(e) => return Err(other(format!("Server error: {e:?}"))),
        }
        Ok(())
    }
    let mut out = Vec::new();
    append(&mut out, value)?;
    let size =
        std::mem::size_of::<Vec<v3::RedisResult>>() + out.iter().map(result_size).sum::<usize>();
    if size > MAX_HOST_BUFFERED_BYTES {
        return Err(other(format!(
            "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
        )));
    }
    Ok(out)
}

fn result_size(r: &v3::RedisResult) -> usize {
    std::mem::size_of::<v3::RedisResult>()
        + match r {
            v3::RedisResult::Binary(b) => b.len(),
            v3::RedisResult::Status(s) => s.len(),
            v3::RedisResult::Nil | v3::RedisResult::Int64(_) => 0,
        }
}

/// Builds the command `execute` sends.
pub fn command(name: &str, args: Vec<v3::RedisParameter>) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    for arg in args {
        match arg {
            v3::RedisParameter::Int64(v) => cmd.arg(v),
            v3::RedisParameter::Binary(v) => cmd.arg(v),
        };
    }
    cmd
}

/// Checks the allow list and connects to `address` (or reuses its live shared connection).
pub async fn connect(
    allowed: &AllowedHosts,
    pool: &RedisPool,
    address: &str,
) -> Result<RedisConnection, v3::Error> {
    if !allowed.allows_url(address, "redis") {
        // The guest's URL may carry a password: logged as the banner shows it.
        let address = crate::app::redact_url(address);
        tracing::warn!(address = %address, "redis address not in allowed_outbound_hosts");
        return Err(v3::Error::InvalidAddress);
    }
    let endpoint = pool
        .endpoint(address)
        .map_err(|_| v3::Error::InvalidAddress)?;
    let shared = endpoint.shared().await.map_err(other)?;
    Ok(RedisConnection {
        endpoint,
        shared,
        own: None,
    })
}

fn connection<T: Send>(
    accessor: &Accessor<T, Redis>,
    conn: &Resource<RedisConnection>,
) -> Result<RedisConnection, v3::Error> {
    accessor.with(|mut access| {
        access
            .get()
            .table
            .get(conn)
            .cloned()
            .map_err(|_| other("could not find connection for resource"))
    })
}

/// Runs a typed command on the guest connection.
macro_rules! run {
    ($accessor:expr, $conn:expr, |$c:ident| $body:expr) => {{
        let handle = connection($accessor, &$conn)?;
        let mut $c = handle.conn();
        match $body.await {
            Ok(v) => Ok(v),
            Err(e) => Err(handle.failed(e).await),
        }
    }};
}

impl v3::Host for RedisView<'_> {}

impl v3::HostConnection for RedisView<'_> {
    async fn drop(&mut self, conn: Resource<RedisConnection>) -> anyhow::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl<T: Send> v3::HostConnectionWithStore<T> for Redis {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<RedisConnection>, v3::Error> {
        let (allowed, pool) = accessor.with(|mut access| {
            let s = access.get().state;
            (s.allowed.clone(), s.pool.clone())
        });
        let conn = connect(&allowed, &pool, &address).await?;
        accessor.with(|mut access| {
            access
                .get()
                .table
                .push(conn)
                .map_err(|_| v3::Error::TooManyConnections)
        })
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), v3::Error> {
        run!(accessor, conn, |c| c
            .publish::<_, _, ()>(&channel, &payload))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Vec<u8>>, v3::Error> {
        let value: Option<Vec<u8>> = run!(accessor, conn, |c| c.get(&key))?;
        if value.as_ref().map_or(0, Vec::len) > MAX_HOST_BUFFERED_BYTES {
            return Err(other(format!(
                "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
            )));
        }
        Ok(value)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), v3::Error> {
        run!(accessor, conn, |c| c.set::<_, _, ()>(&key, &value))
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<i64, v3::Error> {
        run!(accessor, conn, |c| c.incr(&key, 1))
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> Result<u32, v3::Error> {
        run!(accessor, conn, |c| c.del(&keys))
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        let handle = connection(accessor, &conn)?;
        let mut c = handle.conn();
        match c.sadd(&key, &values).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == redis::ErrorKind::TypeError => Err(v3::Error::TypeError),
            Err(e) => Err(handle.failed(e).await),
        }
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, v3::Error> {
        run!(accessor, conn, |c| c.smembers(&key))
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, v3::Error> {
        run!(accessor, conn, |c| c.srem(&key, &values))
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<RedisConnection>,
        name: String,
        args: Vec<v3::RedisParameter>,
    ) -> Result<Vec<v3::RedisResult>, v3::Error> {
        let mut handle = connection(accessor, &conn)?;
        if handle.own.is_none() {
            let view: Vec<Arg<'_>> = args
                .iter()
                .map(|a| match a {
                    v3::RedisParameter::Int64(v) => Arg::Int(*v),
                    v3::RedisParameter::Binary(b) => Arg::Bytes(b),
                })
                .collect();
            if let Some(read) = BlockingRead::parse(&name, &view, tokio::time::Instant::now()) {
                let value = handle
                    .endpoint
                    .blocking_read(read)
                    .await
                    .map_err(v3::Error::Other)?;
                return flatten(&value);
            }
            if needs_own_connection(&name, &view) {
                let own = Box::pin(handle.endpoint.dedicated()).await.map_err(other)?;
                handle.own = Some(accessor.with(|mut access| {
                    let slot = access
                        .get()
                        .table
                        .get_mut(&conn)
                        .map_err(|_| other("could not find connection for resource"))?;
                    Ok::<_, v3::Error>(slot.own.get_or_insert(own).clone())
                })?);
            }
        }
        // Boxed, like the connection above: a held stream keeps this
        // future for as long as its blocking read waits, so its size is
        // that state's, not the largest command's (docs/performance.md).
        let mut c = handle.conn();
        let value: Value = match Box::pin(command(&name, args).query_async(&mut c)).await {
            Ok(v) => v,
            Err(e) => return Err(Box::pin(handle.failed(e)).await),
        };
        flatten(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v3::RedisResult as R;

    #[test]
    fn flattens_nested_arrays_like_spin() {
        // XREAD reply: [[stream, [[id, [field, value]], [id, [field, value]]]]]
        let entry = |id: &str, f: &str, v: &str| {
            Value::Array(vec![
                Value::BulkString(id.into()),
                Value::Array(vec![
                    Value::BulkString(f.into()),
                    Value::BulkString(v.into()),
                ]),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"s".to_vec()),
            Value::Array(vec![entry("1-0", "a", "1"), entry("2-0", "b", "2")]),
        ])]);
        let bin = |s: &str| R::Binary(s.as_bytes().to_vec());
        assert_eq!(
            flatten(&reply).unwrap(),
            vec![
                bin("s"),
                bin("1-0"),
                bin("a"),
                bin("1"),
                bin("2-0"),
                bin("b"),
                bin("2")
            ]
        );
    }

    #[test]
    fn scalar_conversions() {
        assert_eq!(flatten(&Value::Nil).unwrap(), vec![R::Nil]);
        assert_eq!(flatten(&Value::Okay).unwrap(), vec![R::Status("OK".into())]);
        assert_eq!(
            flatten(&Value::SimpleString("PONG".into())).unwrap(),
            vec![R::Status("PONG".into())]
        );
        assert_eq!(flatten(&Value::Int(7)).unwrap(), vec![R::Int64(7)]);
        assert_eq!(flatten(&Value::Boolean(true)).unwrap(), vec![R::Int64(1)]);
        assert_eq!(
            flatten(&Value::Double(1.5)).unwrap(),
            vec![R::Binary(b"1.5".to_vec())]
        );
        assert_eq!(
            flatten(&Value::Set(vec![Value::Int(1), Value::Nil])).unwrap(),
            vec![R::Int64(1), R::Nil]
        );
        assert_eq!(flatten(&Value::Array(vec![])).unwrap(), vec![]);
    }

    #[test]
    fn rejects_maps_and_pushes_even_when_nested() {
        let map = Value::Map(vec![(Value::Int(1), Value::Int(2))]);
        assert!(matches!(flatten(&map), Err(v3::Error::Other(m)) if m.contains("Map")));
        let nested = Value::Array(vec![Value::Int(1), map]);
        assert!(flatten(&nested).is_err());
        let push = Value::Push {
            kind: redis::PushKind::Message,
            data: vec![],
        };
        assert!(matches!(flatten(&push), Err(v3::Error::Other(m)) if m.contains("Pub/Sub")));
    }

    #[test]
    fn builds_commands_from_parameters() {
        let cmd = command(
            "XADD",
            vec![
                v3::RedisParameter::Binary(b"s".to_vec()),
                v3::RedisParameter::Binary(b"*".to_vec()),
                v3::RedisParameter::Int64(5),
            ],
        );
        let packed = String::from_utf8(cmd.get_packed_command()).unwrap();
        assert_eq!(
            packed,
            "*4\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\n5\r\n"
        );
    }

    #[tokio::test]
    async fn open_checks_allowed_hosts_before_connecting() {
        let allowed = AllowedHosts::parse(&["redis://127.0.0.1:1"], |_| unreachable!()).unwrap();
        // Port 2 is not allowed: refused without any network I/O.
        let pool = RedisPool::default();
        assert!(matches!(
            connect(&allowed, &pool, "redis://127.0.0.1:2").await,
            Err(v3::Error::InvalidAddress)
        ));
        // Allowed but nothing listens on port 1: a connection error, not InvalidAddress.
        assert!(matches!(
            connect(&allowed, &pool, "redis://127.0.0.1:1").await,
            Err(v3::Error::Other(_))
        ));
    }
}
