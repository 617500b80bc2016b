//! The TypeScript declarations that are not generated.
//!
//! Every JSON shape the bindings produce or take is declared by tsify from its
//! Rust type, doc comments included: core's wire, request and retry types
//! (`dock_core::wire`, `dock_core::request`, `TransportChoice` as `Transport`,
//! with core's `ts` feature) and the bindings' own (`SseEvent` and
//! `SessionStateEvent` in `parse.rs`; `RetryOptions`, `FailureReport` and
//! `RetryDecision` in `retry.rs`). Left here is what tsify cannot derive:
//! - `StreamEventName` has no Rust type: core names events with `&str`
//!   constants (`dock_core::stream::event_name` and `status_of_event`);
//! - `CompletedSessionView` narrows `SessionView` by literal types (`status`
//!   is `"completed"`, `result` is not `null`): a refinement of one Rust type,
//!   which tsify has no way to declare.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_NOT_GENERATED: &str = r#"
/** SSE `event:` names. Note `complete` (event) vs `completed` (status). */
export type StreamEventName = "pending" | "complete" | "expired" | "cancelled";

/** A completed session's view. */
export interface CompletedSessionView extends SessionView {
  status: "completed";
  result: VerificationResult;
}
"#;
