//! The Dock verification-sessions API as a Spin HTTP component.
//!
//! Modules by role (ARCHITECTURE.md draws the arrows):
//! - [`router`]: the one route table; method and path → handler, one log line per request;
//! - handlers, HTTP ↔ domain only: [`sessions`] (integrator API, long-poll
//!   and SSE drivers of core's `Waiter`), [`admin`] (operator API), [`flow`]
//!   (the verify page and the OAuth callbacks), [`transfer`] (the operator's
//!   export and import), with [`auth`] (API keys,
//!   admin token; [`key_cache`], the key records an instance reuses for
//!   creates) and [`http`] (request and response plumbing);
//! - [`domain`]: every rule of a session's life (create and reuse, quota,
//!   cancel, complete, waiter leases) over [`store::Backend`], natively tested;
//! - [`store`]: Redis and SQLite (and, in tests, memory) behind that trait;
//! - [`webhooks`]: outbound delivery of core's signed events, after a change
//!   and on the dispatch route;
//! - [`config`] (Spin variables, read once), [`env`] (the clock and entropy,
//!   the only places they are read), [`log`], [`metrics`] (this instance's
//!   request latencies and `GET /metrics`).
//!
//! Every JSON body and SSE frame is produced by `dock-core`.

mod admin;
mod auth;
mod config;
mod domain;
mod env;
mod flow;
mod http;
mod key_cache;
mod log;
mod metrics;
mod router;
mod sessions;
mod store;
mod transfer;
mod webhooks;

use spin_sdk::http::{IntoResponse, Request};

/// The component's HTTP entry point.
#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    router::route(req).await
}
