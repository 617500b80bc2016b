//! # dock-bindings
//!
//! `dock-core` compiled to `wasm32-unknown-unknown` for the npm package
//! `@dock-verify/client`, so the Node client validates, parses and decides
//! with the very code the server runs.
//!
//! What JavaScript gets, by role (names as JS sees them):
//! - **input**: `validateCreateSession`, `validateSessionId`, `validatePlatformId`
//!   (core's request/id validation; failures throw `DockValidationError`);
//! - **output parsing**: `parseCreatedResponse`, `parseSessionResponse`,
//!   `parseDiscordToRobloxResponse`, `parseRobloxToDiscordResponse`,
//!   `parseSessionView`, `parseErrorResponse` (core's wire types; an unexpected
//!   shape throws `DockProtocolError`);
//! - **SSE**: the incremental `SseDecoder` and `parseStreamEvent`;
//! - **state**: `isTerminal`, `statusOfEvent`, `eventNameOf`;
//! - **waiting**: `Reconnector` (core's [`dock_core::retry::Reconnect`]),
//!   `backoffDelay`, `parseRetryAfter`, `isRetryableStatus`, `longPollWaitSecs`,
//!   `StateCursor` (each state once, its event id);
//! - **calls**: `clientDefaults`, `callRetryDelay` (core's [`dock_core::call`]);
//! - **webhooks**: `verifyWebhookAt` (core's [`dock_core::webhook::verify`], then the event's parsing).
//!
//! Objects cross the boundary through serde-wasm-bindgen's
//! `Serializer::json_compatible()`, so they are exactly the HTTP JSON. Errors
//! are real JS `Error` subclasses, built by the package's own `errors.js`
//! (imported with `raw_module`, so `instanceof` works across the package).
//! TypeScript shapes are generated from the Rust types by tsify; `ts.rs` holds the rest.

mod client;
mod error;
mod parse;
mod retry;
mod sse;
mod ts;
mod webhook;

pub use error::{ErrorKind, JsErrorSpec};
