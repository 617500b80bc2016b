//! Errors thrown to JavaScript.
//!
//! Every failure is described by a [`JsErrorSpec`] (pure data, testable
//! natively) and turned into an instance of one of the package's `Error`
//! subclasses by `coreError(kind, message, details)` from `dist/errors.js`. The
//! import path is relative to the generated `wasm/dock_bindings.js`, so the wasm
//! and the package share one copy of each class.

use dock_core::ApiError;
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(raw_module = "../dist/errors.js")]
extern "C" {
    /// Builds the `Error` subclass instance for `kind`.
    #[wasm_bindgen(js_name = coreError)]
    fn core_error(kind: &str, message: &str, details: JsValue) -> JsValue;
}

/// Which `Error` subclass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `DockValidationError`: a request the server would refuse with 400.
    Validation,
    /// `DockProtocolError`: a response that is not what the API sends.
    Protocol,
    /// `DockApiError`: the server answered with an error.
    Api,
    /// `DockSignatureError`: a webhook delivery whose signature does not verify.
    Signature,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Api => "api",
            ErrorKind::Signature => "signature",
        }
    }
}

/// An error to throw, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsErrorSpec {
    /// Which class.
    #[serde(skip)]
    pub kind: ErrorKind,
    /// `error.message`.
    #[serde(skip)]
    pub message: String,
    /// The stable code (core's `ErrorCode` strings, or `unexpected_response`).
    pub code: String,
    /// The HTTP status (the one the server would answer, for validation errors).
    pub status: Option<u16>,
    /// The field at fault.
    pub field: Option<String>,
    /// `Retry-After` in milliseconds.
    pub retry_after_ms: Option<u64>,
}

/// The code for responses that are not what the API sends.
pub const UNEXPECTED_RESPONSE: &str = "unexpected_response";

/// Largest integer JavaScript numbers hold exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

impl JsErrorSpec {
    /// A validation error from core's `ApiError` (status and code from core's one mapping).
    pub fn validation(e: &ApiError) -> Self {
        JsErrorSpec {
            kind: ErrorKind::Validation,
            message: e.message().to_owned(),
            code: e.code().as_str().to_owned(),
            status: Some(e.status()),
            field: e.field().map(str::to_owned),
            retry_after_ms: None,
        }
    }

    /// A response of unexpected shape: `what` names the response, `detail` says why.
    pub fn protocol(what: &str, detail: impl std::fmt::Display) -> Self {
        JsErrorSpec {
            kind: ErrorKind::Protocol,
            message: format!("unexpected {what}: {detail}"),
            code: UNEXPECTED_RESPONSE.to_owned(),
            status: None,
            field: None,
            retry_after_ms: None,
        }
    }

    /// A webhook delivery refused: `code` is the reason
    /// (`malformed_signature`, `no_signature`, `timestamp_out_of_tolerance`,
    /// `signature_mismatch`, `invalid_event`).
    pub fn signature(code: &str, message: impl std::fmt::Display) -> Self {
        JsErrorSpec {
            kind: ErrorKind::Signature,
            message: message.to_string(),
            code: code.to_owned(),
            status: None,
            field: None,
            retry_after_ms: None,
        }
    }

    /// Builds the JS object (only callable on wasm32).
    pub fn into_js(self) -> JsValue {
        // json-compatible: `None` becomes `null`, not `undefined`. The spec is
        // strings and small numbers, so this cannot fail; `null` details would
        // still give an error of the right class.
        let details = self
            .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
            .unwrap_or(JsValue::NULL);
        core_error(self.kind.as_str(), &self.message, details)
    }
}

impl From<JsErrorSpec> for JsValue {
    fn from(e: JsErrorSpec) -> JsValue {
        e.into_js()
    }
}
