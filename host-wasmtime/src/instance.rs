//! Per-component runtime: the store data, the linker, and the
//! `wasmtime_wasi_http::handler::ProxyHandler` state that creates, reuses and
//! retires instances (the machinery `wasmtime serve` and Spin 4.1 use).

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings;
use crate::limits::{Clock, Limits, Slice, SliceExceeded, SliceVerdict};
use crate::outbound_http::OutboundHttp;
use crate::redis::{Redis, RedisState, RedisView};
use crate::sqlite::{Sqlite, SqliteState, SqliteView};
use crate::variables::{Variables, VariablesState};

/// The data of every store.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHttp,
    limits: StoreLimits,
    redis: RedisState,
    sqlite: SqliteState,
    variables: VariablesState,
    slice: Arc<Slice>,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("component", &self.variables.component)
            .finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Adds every interface this host provides to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi::p3::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    bindings::redis3::add_to_linker::<HostState, Redis>(linker, |s| RedisView {
        state: &s.redis,
        table: &mut s.table,
    })?;
    bindings::sqlite3::add_to_linker::<HostState, Sqlite>(linker, |s| SqliteView {
        state: &s.sqlite,
        table: &mut s.table,
    })?;
    bindings::variables3::add_to_linker::<HostState, Variables>(linker, |s| &mut s.variables)?;
    Ok(())
}

/// What every instance of one component is configured with.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The component id.
    pub id: Arc<str>,
    /// WASI environment variables (`[component.X] environment`).
    pub environment: BTreeMap<String, String>,
    /// Redis / outbound HTTP allow list.
    pub redis: RedisState,
    /// Outbound HTTP hooks.
    pub http: OutboundHttp,
    /// SQLite access.
    pub sqlite: SqliteState,
    /// Resolved variables.
    pub variables: VariablesState,
}

/// Compiles `path` (through the engine's cache) and pre-instantiates it.
pub fn prepare(
    engine: &Engine,
    linker: &Linker<HostState>,
    id: &str,
    path: &Path,
) -> Result<ProxyPre<HostState>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "component {id:?}: cannot read {} (build it first, or pass --build)",
            path.display()
        )
    })?;
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component {id:?}: {} is not a valid component",
                path.display()
            )
        })?;
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        anyhow::anyhow!(
            "component {id:?} ({}) needs an import this host does not provide: {e}",
            path.display()
        )
    })?;
    let pre = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre).map_err(|e| {
        anyhow::anyhow!(
            "component {id:?} does not export wasi:http/handler@0.3.0 (spin-sdk 7 components do): {e}"
        )
    })?;
    Ok(ProxyPre::P3(pre))
}

/// Set once the server stops accepting: instances dropped after that are
/// dropped by the shutdown, not lost to a panic.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Marks the host as shutting down (see [`STOPPING`]).
pub fn mark_stopping() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// The `ProxyHandler` state of one component.
pub struct ComponentHandler {
    pub(crate) config: ComponentConfig,
    pre: ProxyPre<HostState>,
    engine: Engine,
    limits: Arc<Limits>,
    clock: Clock,
    next_instance: AtomicU64,
    freed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for ComponentHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentHandler")
            .field("component", &self.config.id)
            .finish_non_exhaustive()
    }
}

impl ComponentHandler {
    /// Bundles what instances of this component need.
    pub fn new(
        config: ComponentConfig,
        pre: ProxyPre<HostState>,
        engine: Engine,
        limits: Arc<Limits>,
        clock: Clock,
    ) -> Self {
        Self {
            config,
            pre,
            engine,
            limits,
            clock,
            next_instance: AtomicU64::new(0),
            freed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Resolves when one of this component's instances is dropped (its
    /// pool slot is free again), for requests waiting for a slot.
    pub fn instance_freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    fn new_store(&self) -> Store<HostState> {
        let c = &self.config;
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr();
        for (k, v) in &c.environment {
            wasi.env(k, v);
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.limits.max_guest_resources);
        let slice = Slice::new(self.clock.clone(), self.limits.slice_ticks());
        let state = HostState {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: c.http.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_instance_memory as usize)
                .instances(100)
                .tables(100)
                .memories(20)
                .build(),
            redis: c.redis.clone(),
            sqlite: c.sqlite.clone(),
            variables: c.variables.clone(),
            slice,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        let slice_limit = self.limits.max_guest_slice;
        let id = c.id.clone();
        store.epoch_deadline_callback(move |store| match store.data().slice.on_epoch() {
            SliceVerdict::Continue => Ok(UpdateDeadline::Yield(1)),
            SliceVerdict::Exceeded => {
                tracing::error!(
                    component = %id,
                    "guest ran for more than --max-guest-slice {slice_limit:?} without waiting for I/O; stopping its instance"
                );
                Err(wasmtime::Error::new(SliceExceeded(slice_limit)))
            }
        });
        store
    }
}

impl HandlerState for ComponentHandler {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let mut store = self.new_store();
        let slice = store.data().slice.clone();
        let proxy = self.pre.instantiate_async(&mut store).await?;
        let instance = self.next_instance.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(component = %self.config.id, instance, "instantiated");
        Ok(Instance {
            store,
            proxy,
            view: <HostState as WasiHttpView>::http,
            expiration: Expiration {
                slice,
                idle_timeout: self.limits.idle_instance_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX / 4)),
            },
            state: Worker {
                component: self.config.id.clone(),
                instance,
                max_reuse: self.limits.max_instance_reuse_count,
                max_concurrent: self.limits.max_instance_concurrent_reuse_count,
                freed: self.freed.clone(),
            },
        })
    }
}

/// Decides when an instance is retired, and marks the CPU slice idle.
#[derive(Debug)]
pub struct Expiration {
    slice: Arc<Slice>,
    idle_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let me = self.get_mut();
        // Called exactly when the instance's event loop is pending.
        me.slice.on_pending();
        match status {
            // No wall-clock limit on requests or on streams after the response.
            WorkerStatus::Requests | WorkerStatus::PostReturn => Poll::Pending,
            WorkerStatus::Idle => {
                let deadline = tokio::time::Instant::from_std(start + me.idle_timeout);
                if me.sleep.deadline() != deadline {
                    me.sleep.as_mut().reset(deadline);
                }
                me.sleep.as_mut().poll(cx)
            }
        }
    }
}

/// Reuse policy of one instance.
#[derive(Debug)]
pub struct Worker {
    component: Arc<str>,
    instance: u64,
    max_reuse: usize,
    max_concurrent: usize,
    freed: Arc<tokio::sync::Notify>,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        (): (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // Requests never expire on wall-clock time; runaway guests are stopped
        // by the CPU slice instead.
        Box::pin(std::future::pending())
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        match result {
            Ok(()) => {
                tracing::debug!(component = %self.component, instance = self.instance, "instance retired")
            }
            // wasmtime-wasi-http reports a worker future dropped before it
            // finished as "worker panicked"; at shutdown that is every live
            // instance, and no panic at all.
            Err(e) if STOPPING.load(Ordering::Relaxed) && e.to_string() == "worker panicked" => {
                tracing::debug!(component = %self.component, instance = self.instance, "instance dropped at shutdown")
            }
            Err(e) => tracing::warn!(
                component = %self.component,
                instance = self.instance,
                "instance stopped: {e:#}"
            ),
        }
        drop(store);
        self.freed.notify_waiters();
    }
}
