//! The Dock verification-sessions API as a Spin HTTP component.
//!
//! Thin on purpose: routing and HTTP plumbing here and in [`http`]; settings
//! in [`config`]; persistence and wake-ups in [`store`] (Redis, or Spin's
//! SQLite database when no `redis_url` is set); the request flows in
//! [`sessions`] and [`admin`]. Every JSON body and SSE frame is produced by
//! `dock-core`.

mod admin;
mod auth;
mod config;
mod domain;
mod env;
mod flow;
mod http;
mod log;
mod router;
mod sessions;
mod store;

use spin_sdk::http::{IntoResponse, Request};

/// The component's HTTP entry point.
#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    router::route(req).await
}
