//! # dock-core
//!
//! The sans-I/O core of the Dock verification-sessions API.
//!
//! **Contract:** deterministic. No clock, no randomness, no I/O, no threads,
//! no environment. Every function that depends on time takes `now:
//! Timestamp`; every id is built from entropy bytes the caller passes. The
//! same inputs give the same outputs on native, `wasm32-wasip2` (the Spin
//! component) and `wasm32-unknown-unknown` (the npm package). Clippy's
//! `disallowed-methods` (see `clippy.toml`) enforces it.
//!
//! What lives here, by role:
//! - **state**: [`session`] (pending → completed | expired | cancelled, reuse),
//!   [`link`] (linkChanged / previousRobloxId), [`quota`] (fixed windows),
//!   [`ratelimit`] (the public flow endpoints' windows and client buckets);
//! - **input**: [`request`] (body validation), [`listing`] (session listing
//!   queries, cursors and pages), [`id`] (ids, keys, hashing),
//!   [`longpoll`] (`wait`, query), [`config`] (typed settings), [`time`]
//!   ([`Timestamp`]: milliseconds, ISO 8601);
//! - **the verification flow**: [`oauth`] (Discord and Roblox OAuth2/OpenID:
//!   state, PKCE, cookies, token and userinfo parsing), [`pages`] (the HTML
//!   pages users see);
//! - **operators**: [`metrics`] (request histograms as instances record them
//!   and stores sum them, and the Prometheus text of `GET /metrics`);
//! - **webhooks**: [`webhook`] (event ids and bodies, HMAC-SHA256 signing and
//!   verification shared with the npm client, retry back-off, allowed
//!   destinations, secret rotation);
//! - **clients**: [`retry`] (back-off and `Retry-After`, shared with the npm
//!   client), [`call`] (the npm client's defaults and which failed calls it
//!   retries, when);
//! - **output**: [`wire`] (the exact JSON), [`error`] (status + stable code in
//!   one place), [`sse`] (encoder and WHATWG decoder), [`stream`] (the session
//!   event vocabulary and resume), [`verify_url`];
//! - **timing**: [`waiter`] (every timer of a long-poll or an SSE stream:
//!   what to do next and when to wake, for thin I/O drivers).

pub mod call;
pub mod config;
pub mod error;
pub mod export;
pub mod id;
pub mod link;
pub mod listing;
pub mod longpoll;
pub mod metrics;
pub mod oauth;
pub mod origin;
pub mod pages;
pub mod quota;
pub mod ratelimit;
pub mod request;
pub mod retry;
pub mod session;
pub mod sse;
pub mod stream;
pub mod time;
pub mod verify_url;
pub mod waiter;
pub mod webhook;
pub mod wire;

pub use config::Settings;
pub use error::{ApiError, ErrorCode};
pub use id::{ApiKeySecret, KeyId, Pid, SessionId};
pub use session::{Completion, CreateDecision, Session, TransitionError};
pub use time::Timestamp;
pub use wire::{CreatedSession, Envelope, SessionView, Status, VerificationResult};
