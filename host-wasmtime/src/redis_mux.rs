//! Connection sharing behind `spin:redis`, invisible to the component.
//!
//! Spin opens one Redis connection per `open`. A service that holds ten
//! thousand waiting requests, each with its own connection for commands and
//! another for a blocking `XREAD`, then needs twenty thousand sockets in the
//! host and in Redis. This module keeps what the component observes and
//! changes what it costs:
//!
//! - **Shared connection.** Every `open` of one address shares one
//!   multiplexed connection (pipelined, like redis-rs's own multiplexing).
//!   The first command that depends on connection state — `SELECT`, `MULTI`,
//!   `WATCH`, `CLIENT …`, `SUBSCRIBE`, `AUTH`, any blocking command the
//!   multiplexer below does not take — moves that guest connection to a
//!   dedicated socket of its own for the rest of its life, so its state is
//!   never shared. Commands before it could not have depended on state.
//! - **Blocking-read multiplexer.** `XREAD [COUNT n] BLOCK ms STREAMS key id`
//!   for one stream from an explicit id (the shape a waiter uses) is served by
//!   a shard: one dedicated connection that blocks on the streams of up to
//!   [`SHARD_STREAMS`] waiters with one `XREAD`, and hands each waiter exactly
//!   what its own `XREAD` would have returned — the entries after its id (at
//!   most its `COUNT`) as a one-stream reply, or nil at its own timeout. A
//!   waiter that arrives while the shard is blocked interrupts it with
//!   `CLIENT UNBLOCK` so its stream is watched at once.
//!
//! If Redis refuses multi-key reads (a cluster proxy answering `CROSSSLOT`),
//! the multiplexer stops batching for that address and every blocking read
//! gets a dedicated connection, as before.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Streams one shard's `XREAD` watches at most.
pub const SHARD_STREAMS: usize = 128;

/// The longest a shard blocks before it looks for waiters that went away.
const MAX_BLOCK: Duration = Duration::from_secs(10);

/// All shared connections of this host, by address.
#[derive(Debug, Default)]
pub struct RedisPool {
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl RedisPool {
    /// The endpoint for `address` (created on first use; connects lazily).
    pub fn endpoint(&self, address: &str) -> Result<Arc<Endpoint>, String> {
        let mut map = self.endpoints.lock().expect("redis pool lock");
        if let Some(e) = map.get(address) {
            return Ok(e.clone());
        }
        let client = redis::Client::open(address).map_err(|e| e.to_string())?;
        let e = Arc::new(Endpoint {
            client,
            shared: tokio::sync::Mutex::new(None),
            generation: AtomicUsize::new(0),
            shards: Mutex::new(Vec::new()),
            next_shard: AtomicUsize::new(0),
            no_batching: Arc::new(AtomicBool::new(false)),
        });
        map.insert(address.to_owned(), e.clone());
        Ok(e)
    }
}

/// One Redis address: its shared connection and its blocking-read shards.
pub struct Endpoint {
    client: redis::Client,
    /// The shared connection and its generation (bumped when it is replaced).
    shared: tokio::sync::Mutex<Option<(usize, MultiplexedConnection)>>,
    generation: AtomicUsize,
    shards: Mutex<Vec<Arc<ShardHandle>>>,
    next_shard: AtomicUsize,
    no_batching: Arc<AtomicBool>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

/// True when a failed command means the connection itself is gone.
pub fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

impl Endpoint {
    /// The shared connection, connecting if there is none: `(generation, connection)`.
    pub async fn shared(&self) -> Result<(usize, MultiplexedConnection), redis::RedisError> {
        let mut slot = self.shared.lock().await;
        if let Some((g, c)) = &*slot {
            return Ok((*g, c.clone()));
        }
        let c = self.client.get_multiplexed_async_connection().await?;
        let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *slot = Some((g, c.clone()));
        Ok((g, c))
    }

    /// Forgets the shared connection of `generation` after it failed, so the
    /// next `open` reconnects.
    pub async fn discard(&self, generation: usize) {
        let mut slot = self.shared.lock().await;
        if matches!(&*slot, Some((g, _)) if *g == generation) {
            *slot = None;
        }
    }

    /// A new connection for one guest connection alone.
    pub async fn dedicated(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        self.client.get_multiplexed_async_connection().await
    }

    /// Serves one blocking single-stream `XREAD` through a shard.
    pub async fn blocking_read(self: &Arc<Self>, read: BlockingRead) -> Result<Value, String> {
        // `read_alone` (a connection and a command) is boxed so that this
        // future, which a held stream keeps for as long as it waits, stays
        // the size of its channel (heap profile in docs/performance.md).
        if self.no_batching.load(Ordering::SeqCst) {
            return Box::pin(self.read_alone(read)).await;
        }
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter { read, reply: tx };
        self.shard().send(waiter);
        match rx.await {
            Ok(Answer::Done(r)) => r,
            Ok(Answer::Alone(read)) => Box::pin(self.read_alone(read)).await,
            Err(_) => Err("the blocking-read shard stopped".to_owned()),
        }
    }

    async fn read_alone(&self, read: BlockingRead) -> Result<Value, String> {
        let mut c = self.dedicated().await.map_err(|e| e.to_string())?;
        let ms = read.deadline.map_or(0, |d| {
            d.saturating_duration_since(Instant::now())
                .as_millis()
                .max(1) as u64
        });
        let mut cmd = redis::cmd("XREAD");
        if let Some(n) = read.count {
            cmd.arg("COUNT").arg(n);
        }
        cmd.arg("BLOCK")
            .arg(ms)
            .arg("STREAMS")
            .arg(&read.key)
            .arg(read.id.to_string());
        cmd.query_async(&mut c).await.map_err(|e| e.to_string())
    }

    /// The first shard with room, or a new one.
    fn shard(self: &Arc<Self>) -> Arc<ShardHandle> {
        let mut shards = self.shards.lock().expect("shards lock");
        shards.retain(|s| !s.tx.is_closed());
        if let Some(s) = shards
            .iter()
            .find(|s| s.load.load(Ordering::SeqCst) < SHARD_STREAMS)
        {
            s.load.fetch_add(1, Ordering::SeqCst);
            return s.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Arc::new(ShardHandle {
            tx,
            load: AtomicUsize::new(1),
        });
        let shard = Shard {
            id: self.next_shard.fetch_add(1, Ordering::SeqCst),
            endpoint: Arc::downgrade(self),
            handle: Arc::downgrade(&handle),
            rx,
            waiters: Vec::new(),
        };
        tokio::spawn(shard.run());
        shards.push(handle.clone());
        handle
    }
}

/// A stream entry id (`ms-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(u64, u64);

impl StreamId {
    /// Parses an explicit id (`ms` or `ms-seq`); `$`, `+`, `>` are not.
    pub fn parse(s: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = match s.split_once('-') {
            Some((ms, seq)) => (ms, seq),
            None => (s, "0"),
        };
        let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A guest's `XREAD [COUNT n] BLOCK ms STREAMS key id`.
#[derive(Debug, Clone)]
pub struct BlockingRead {
    pub key: Vec<u8>,
    pub id: StreamId,
    pub count: Option<u64>,
    /// `None`: `BLOCK 0`, wait for ever.
    pub deadline: Option<Instant>,
}

/// One command argument as text or integer.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl BlockingRead {
    /// Recognizes the one shape the multiplexer serves; anything else
    /// (several streams, `$`, no `BLOCK`, unknown options) is `None`.
    pub fn parse(name: &str, args: &[Arg<'_>], now: Instant) -> Option<Self> {
        if !name.eq_ignore_ascii_case("XREAD") {
            return None;
        }
        let int = |a: &Arg<'_>| -> Option<i64> {
            match a {
                Arg::Int(v) => Some(*v),
                Arg::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            }
        };
        let word = |a: &Arg<'_>, w: &str| matches!(a, Arg::Bytes(b) if b.eq_ignore_ascii_case(w.as_bytes()));
        let (mut count, mut block) = (None, None);
        let mut i = 0;
        loop {
            let a = args.get(i)?;
            if word(a, "COUNT") {
                count = Some(u64::try_from(int(args.get(i + 1)?)?).ok()?);
                i += 2;
            } else if word(a, "BLOCK") {
                block = Some(u64::try_from(int(args.get(i + 1)?)?).ok()?);
                i += 2;
            } else if word(a, "STREAMS") {
                i += 1;
                break;
            } else {
                return None;
            }
        }
        let [Arg::Bytes(key), Arg::Bytes(id)] = args.get(i..)? else {
            return None;
        };
        let block = block?;
        Some(BlockingRead {
            key: key.to_vec(),
            id: StreamId::parse(id)?,
            // COUNT 0 means "no limit" to Redis.
            count: count.filter(|&n| n > 0),
            deadline: (block > 0).then(|| now + Duration::from_millis(block)),
        })
    }
}

/// Commands whose effect or reply depends on the connection they run on.
pub fn needs_own_connection(name: &str, args: &[Arg<'_>]) -> bool {
    const STATEFUL: &[&str] = &[
        "SELECT",
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "UNWATCH",
        "CLIENT",
        "HELLO",
        "AUTH",
        "RESET",
        "QUIT",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "MONITOR",
        "READONLY",
        "READWRITE",
        "ASKING",
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BZPOPMIN",
        "BZPOPMAX",
        "BLMPOP",
        "BZMPOP",
        "WAIT",
        "WAITAOF",
    ];
    if STATEFUL.iter().any(|c| c.eq_ignore_ascii_case(name)) {
        return true;
    }
    // XREAD / XREADGROUP with BLOCK anywhere among the options.
    (name.eq_ignore_ascii_case("XREAD") || name.eq_ignore_ascii_case("XREADGROUP"))
        && args
            .iter()
            .any(|a| matches!(a, Arg::Bytes(b) if b.eq_ignore_ascii_case(b"BLOCK")))
}

enum Answer {
    Done(Result<Value, String>),
    /// Batching is off for this address: read on a dedicated connection.
    Alone(BlockingRead),
}

struct Waiter {
    read: BlockingRead,
    reply: oneshot::Sender<Answer>,
}

/// What registrations see of a shard.
#[derive(Debug)]
struct ShardHandle {
    tx: mpsc::UnboundedSender<Waiter>,
    /// Waiters registered and not yet answered.
    load: AtomicUsize,
}

impl ShardHandle {
    fn send(&self, w: Waiter) {
        if let Err(mpsc::error::SendError(w)) = self.tx.send(w) {
            let _ = w
                .reply
                .send(Answer::Done(Err("the blocking-read shard stopped".into())));
        }
    }
}

/// One dedicated connection blocking on many waiters' streams.
struct Shard {
    /// For the debug log (`shard=N waiters=M`), which tests read.
    id: usize,
    endpoint: std::sync::Weak<Endpoint>,
    handle: std::sync::Weak<ShardHandle>,
    rx: mpsc::UnboundedReceiver<Waiter>,
    waiters: Vec<Waiter>,
}

impl Shard {
    fn answer(&self, w: Waiter, a: Answer) {
        let _ = w.reply.send(a);
        if let Some(h) = self.handle.upgrade() {
            h.load.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Answers waiters whose time is up (nil, as `XREAD` does) or who left.
    fn expire(&mut self, now: Instant) {
        let (keep, done): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| !w.reply.is_closed() && w.read.deadline.is_none_or(|d| d > now));
        self.waiters = keep;
        for w in done {
            self.answer(w, Answer::Done(Ok(Value::Nil)));
        }
    }

    /// The batched read: each stream once, from its waiters' lowest id.
    fn command(&self, now: Instant) -> redis::Cmd {
        let mut streams: Vec<(&[u8], StreamId)> = Vec::new();
        for w in &self.waiters {
            match streams
                .iter_mut()
                .find(|(k, _)| *k == w.read.key.as_slice())
            {
                Some((_, id)) => *id = (*id).min(w.read.id),
                None => streams.push((&w.read.key, w.read.id)),
            }
        }
        let count = self
            .waiters
            .iter()
            .map(|w| w.read.count)
            .try_fold(0u64, |m, c| c.map(|c| m.max(c)));
        let block = self
            .waiters
            .iter()
            .filter_map(|w| w.read.deadline)
            .min()
            .map_or(MAX_BLOCK, |d| {
                d.saturating_duration_since(now).min(MAX_BLOCK)
            });
        let mut cmd = redis::cmd("XREAD");
        if let Some(n) = count {
            cmd.arg("COUNT").arg(n);
        }
        cmd.arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS");
        for (k, _) in &streams {
            cmd.arg(*k);
        }
        for (_, id) in &streams {
            cmd.arg(id.to_string());
        }
        cmd
    }

    /// Hands each waiter what its own read would have returned.
    fn dispatch(&mut self, reply: &Value) {
        let Value::Array(streams) = reply else {
            return;
        };
        let mut by_key: HashMap<&[u8], &[Value]> = HashMap::new();
        for s in streams {
            if let Value::Array(pair) = s
                && let [Value::BulkString(k), Value::Array(entries)] = pair.as_slice()
            {
                by_key.insert(k.as_slice(), entries.as_slice());
            }
        }
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| {
                by_key.get(w.read.key.as_slice()).is_some_and(|entries| {
                    entries
                        .iter()
                        .any(|e| entry_id(e).is_some_and(|id| id > w.read.id))
                })
            });
        self.waiters = keep;
        for w in done {
            let entries = by_key[w.read.key.as_slice()];
            let mut mine: Vec<Value> = entries
                .iter()
                .filter(|e| entry_id(e).is_some_and(|id| id > w.read.id))
                .cloned()
                .collect();
            if let Some(n) = w.read.count {
                mine.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            }
            let value = Value::Array(vec![Value::Array(vec![
                Value::BulkString(w.read.key.clone()),
                Value::Array(mine),
            ])]);
            self.answer(w, Answer::Done(Ok(value)));
        }
    }

    fn fail_all(&mut self, msg: &str) {
        for w in std::mem::take(&mut self.waiters) {
            self.answer(w, Answer::Done(Err(msg.to_owned())));
        }
    }

    async fn run(mut self) {
        let mut conn: Option<(MultiplexedConnection, i64)> = None;
        loop {
            while let Ok(w) = self.rx.try_recv() {
                self.waiters.push(w);
            }
            self.expire(Instant::now());
            tracing::debug!(
                shard = self.id,
                waiters = self.waiters.len(),
                "blocking read"
            );
            if self.waiters.is_empty() {
                match self.rx.recv().await {
                    Some(w) => self.waiters.push(w),
                    None => return,
                }
                continue;
            }
            let Some(endpoint) = self.endpoint.upgrade() else {
                self.fail_all("the Redis endpoint was dropped");
                return;
            };
            if endpoint.no_batching.load(Ordering::SeqCst) {
                for w in std::mem::take(&mut self.waiters) {
                    let read = w.read.clone();
                    self.answer(w, Answer::Alone(read));
                }
                continue;
            }
            let (mut c, client_id) = match conn.take() {
                Some(c) => c,
                None => match connect_blocking(&endpoint).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.fail_all(&e.to_string());
                        continue;
                    }
                },
            };
            let cmd = self.command(Instant::now());
            let reply = {
                let mut read = pin!(cmd.query_async::<Value>(&mut c));
                let mut interrupted = false;
                let finished = Arc::new(AtomicBool::new(false));
                let r = loop {
                    tokio::select! {
                        biased;
                        r = &mut read => break r,
                        Some(w) = self.rx.recv() => {
                            self.waiters.push(w);
                            // Watch the newcomer's stream now, not at the next wake.
                            if !interrupted {
                                interrupted = true;
                                tokio::spawn(interrupt(endpoint.clone(), client_id, finished.clone()));
                            }
                        }
                    }
                };
                finished.store(true, Ordering::SeqCst);
                r
            };
            match reply {
                Ok(v) => {
                    self.dispatch(&v);
                    conn = Some((c, client_id));
                }
                Err(e) if e.code() == Some("CROSSSLOT") => {
                    tracing::warn!(
                        "redis refuses multi-stream XREAD (CROSSSLOT): one connection per blocking read from now on"
                    );
                    endpoint.no_batching.store(true, Ordering::SeqCst);
                    conn = Some((c, client_id));
                }
                Err(e) => {
                    let msg = e.to_string();
                    if !connection_lost(&e) {
                        conn = Some((c, client_id));
                    }
                    self.fail_all(&msg);
                }
            }
        }
    }
}

fn entry_id(entry: &Value) -> Option<StreamId> {
    match entry {
        Value::Array(parts) => match parts.first() {
            Some(Value::BulkString(id)) => StreamId::parse(id),
            _ => None,
        },
        _ => None,
    }
}

async fn connect_blocking(
    endpoint: &Endpoint,
) -> Result<(MultiplexedConnection, i64), redis::RedisError> {
    let mut c = endpoint.dedicated().await?;
    let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut c).await?;
    Ok((c, id))
}

/// `CLIENT UNBLOCK <id>` until it takes or the read has returned anyway:
/// the read may not have reached Redis yet when the first one does.
async fn interrupt(endpoint: Arc<Endpoint>, client_id: i64, finished: Arc<AtomicBool>) {
    for _ in 0..200 {
        if finished.load(Ordering::SeqCst) {
            return;
        }
        if let Ok((g, mut c)) = endpoint.shared().await {
            let r: Result<i64, _> = redis::cmd("CLIENT")
                .arg("UNBLOCK")
                .arg(client_id)
                .query_async(&mut c)
                .await;
            match r {
                Ok(1) => return,
                Ok(_) => {}
                Err(e) => {
                    if connection_lost(&e) {
                        endpoint.discard(g).await;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Arg<'_> {
        Arg::Bytes(s.as_bytes())
    }

    #[test]
    fn stream_ids() {
        assert_eq!(StreamId::parse(b"5-3"), Some(StreamId(5, 3)));
        assert_eq!(StreamId::parse(b"7"), Some(StreamId(7, 0)));
        assert!(StreamId::parse(b"$").is_none());
        assert!(StreamId::parse(b"+").is_none());
        assert!(StreamId::parse(b"1-").is_none());
        assert!(StreamId::parse(b"-1").is_none());
        assert!(StreamId(1, 9) < StreamId(2, 0));
    }

    #[test]
    fn recognizes_only_the_single_stream_blocking_shape() {
        let now = Instant::now();
        let r = BlockingRead::parse(
            "xread",
            &[
                b("COUNT"),
                Arg::Int(1),
                b("block"),
                Arg::Int(250),
                b("STREAMS"),
                b("s"),
                b("3-1"),
            ],
            now,
        )
        .unwrap();
        assert_eq!(r.key, b"s");
        assert_eq!(r.id, StreamId(3, 1));
        assert_eq!(r.count, Some(1));
        assert_eq!(r.deadline, Some(now + Duration::from_millis(250)));
        let forever = BlockingRead::parse(
            "XREAD",
            &[b("BLOCK"), b("0"), b("STREAMS"), b("s"), b("0")],
            now,
        )
        .unwrap();
        assert_eq!(forever.deadline, None);
        // Not multiplexed: no BLOCK, `$`, two streams, unknown option, other commands.
        for args in [
            vec![b("STREAMS"), b("s"), b("0")],
            vec![b("BLOCK"), Arg::Int(5), b("STREAMS"), b("s"), b("$")],
            vec![
                b("BLOCK"),
                Arg::Int(5),
                b("STREAMS"),
                b("a"),
                b("b"),
                b("0"),
                b("0"),
            ],
            vec![
                b("BLOCK"),
                Arg::Int(5),
                b("NOACK"),
                b("STREAMS"),
                b("s"),
                b("0"),
            ],
            vec![b("BLOCK"), Arg::Int(-1), b("STREAMS"), b("s"), b("0")],
        ] {
            assert!(
                BlockingRead::parse("XREAD", &args, now).is_none(),
                "{args:?}"
            );
        }
        assert!(BlockingRead::parse("XRANGE", &[b("s"), b("-"), b("+")], now).is_none());
    }

    #[test]
    fn stateful_commands_get_their_own_connection() {
        assert!(needs_own_connection("select", &[b("1")]));
        assert!(needs_own_connection("MULTI", &[]));
        assert!(needs_own_connection("BLPOP", &[b("l"), Arg::Int(1)]));
        assert!(needs_own_connection(
            "XREAD",
            &[
                b("BLOCK"),
                Arg::Int(1),
                b("STREAMS"),
                b("a"),
                b("b"),
                b("0"),
                b("0")
            ]
        ));
        assert!(!needs_own_connection(
            "XREAD",
            &[b("STREAMS"), b("s"), b("0")]
        ));
        assert!(!needs_own_connection("EVAL", &[b("return 1"), Arg::Int(0)]));
        assert!(!needs_own_connection("GET", &[b("k")]));
    }
}
