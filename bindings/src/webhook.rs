//! `verifyWebhook`: core's webhook signature check (the very code that
//! signs on the server) and the event's parsing, for integrators' receivers.

use dock_core::webhook::{self, Event, SignatureError};
use wasm_bindgen::prelude::*;

use crate::error::JsErrorSpec;

/// What [`verify`] refuses with: a stable code and a message.
pub fn refusal(e: &SignatureError) -> JsErrorSpec {
    let code = match e {
        SignatureError::Malformed => "malformed_signature",
        SignatureError::NoSignature => "no_signature",
        SignatureError::Expired { .. } => "timestamp_out_of_tolerance",
        SignatureError::Mismatch => "signature_mismatch",
    };
    JsErrorSpec::signature(code, e)
}

/// Checks `header` (`Dock-Signature`) against `body` with any of `secrets`
/// at `now_secs`, then parses the event: native, testable core of
/// [`verify_webhook`].
pub fn verify(
    body: &[u8],
    header: Option<&str>,
    secrets: &[&str],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<Event, JsErrorSpec> {
    let header = header.ok_or_else(|| {
        JsErrorSpec::signature("no_signature", "the request has no Dock-Signature header")
    })?;
    webhook::verify(body, header, secrets, now_secs, tolerance_secs).map_err(|e| refusal(&e))?;
    // From text, as every other parser here: one deserializer per type in
    // the wasm (`from_slice` would add a second copy of them all).
    let invalid = |e: &dyn std::fmt::Display| {
        JsErrorSpec::signature(
            "invalid_event",
            format!("the signed body is not a webhook event: {e}"),
        )
    };
    let text = std::str::from_utf8(body).map_err(|e| invalid(&e))?;
    serde_json::from_str(text).map_err(|e| invalid(&e))
}

/// `verifyWebhook(rawBody, header, secret, nowSecs, toleranceSecs)`: the
/// event, or a `DockSignatureError`. The package's `verifyWebhook` wraps it
/// with the clock and defaults.
#[wasm_bindgen(js_name = verifyWebhookAt, unchecked_return_type = "WebhookEvent")]
pub fn verify_webhook(
    #[wasm_bindgen(js_name = rawBody, unchecked_param_type = "string | Uint8Array")]
    raw_body: JsValue,
    header: Option<String>,
    #[wasm_bindgen(unchecked_param_type = "string | string[]")] secret: JsValue,
    #[wasm_bindgen(js_name = nowSecs)] now_secs: f64,
    #[wasm_bindgen(js_name = toleranceSecs)] tolerance_secs: f64,
) -> Result<JsValue, JsValue> {
    let body: Vec<u8> = match raw_body.as_string() {
        Some(s) => s.into_bytes(),
        None => match raw_body.dyn_ref::<js_sys::Uint8Array>() {
            Some(a) => a.to_vec(),
            None => {
                return Err(JsErrorSpec::signature(
                    "invalid_event",
                    "rawBody must be the request body as a string or Uint8Array, unparsed",
                )
                .into());
            }
        },
    };
    let secrets: Vec<String> = match secret.as_string() {
        Some(s) => vec![s],
        None => js_sys::Array::from(&secret)
            .iter()
            .filter_map(|v| v.as_string())
            .collect(),
    };
    if secrets.is_empty() {
        return Err(JsErrorSpec::signature(
            "no_secret",
            "secret must be a string or an array of strings",
        )
        .into());
    }
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let event = verify(
        &body,
        header.as_deref(),
        &refs,
        now_secs.max(0.0) as u64,
        tolerance_secs.max(0.0) as u64,
    )?;
    Ok(serde::Serialize::serialize(
        &event,
        &serde_wasm_bindgen::Serializer::json_compatible(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_and_parses_what_the_server_signs() {
        let body = br#"{"id":"evt_0123456789abcdef0123456789abcdef","type":"session.expired","createdAt":"2026-12-03T10:00:00.000Z","data":{"sid":"vsn_A1b2C3d4E5f6G7h8J9k0L1","pid":"app","clientId":"u","guildId":null,"status":"expired","expiresAt":"2026-12-03T10:00:00.000Z","result":null}}"#;
        let h = webhook::signature_header(&["whsec_a"], 100, body);
        let e = verify(body, Some(&h), &["whsec_a"], 100, 300).unwrap();
        assert_eq!(e.kind, webhook::EventType::Expired);
        assert_eq!(
            verify(body, Some(&h), &["whsec_b"], 100, 300)
                .unwrap_err()
                .code,
            "signature_mismatch"
        );
        assert_eq!(
            verify(body, Some(&h), &["whsec_a"], 1000, 300)
                .unwrap_err()
                .code,
            "timestamp_out_of_tolerance"
        );
        assert_eq!(
            verify(body, None, &["whsec_a"], 100, 300).unwrap_err().code,
            "no_signature"
        );
        assert_eq!(
            verify(body, Some("v1=x"), &["whsec_a"], 100, 300)
                .unwrap_err()
                .code,
            "malformed_signature"
        );
        let h = webhook::signature_header(&["whsec_a"], 100, b"{}");
        assert_eq!(
            verify(b"{}", Some(&h), &["whsec_a"], 100, 300)
                .unwrap_err()
                .code,
            "invalid_event"
        );
    }
}
