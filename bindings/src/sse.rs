//! The incremental SSE decoder (core's WHATWG decoder) as a JS class.

use dock_core::sse::Decoder;
use wasm_bindgen::prelude::*;

use crate::error::MAX_SAFE_INTEGER;
use crate::parse::{SseEvent, to_js};

/// Feed it the chunks of a `text/event-stream` body as they arrive; it
/// returns the events each chunk completes. Handles UTF-8 and CRLF split
/// across chunks, comments, `id` carry-over and `retry`.
#[wasm_bindgen(js_name = SseDecoder)]
#[derive(Debug, Default)]
pub struct SseDecoder {
    inner: Decoder,
}

fn events_to_js(events: Vec<dock_core::sse::DecodedEvent>) -> Result<JsValue, JsValue> {
    let events: Vec<SseEvent> = events
        .into_iter()
        .map(|e| SseEvent {
            event: e.event,
            data: e.data,
            id: e.id,
        })
        .collect();
    to_js(&events)
}

#[wasm_bindgen(js_class = SseDecoder)]
impl SseDecoder {
    /// A decoder at the start of a stream.
    #[wasm_bindgen(constructor)]
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feeds one chunk; returns the events it completed, in order.
    #[wasm_bindgen(unchecked_return_type = "SseEvent[]")]
    pub fn feed(&mut self, chunk: &[u8]) -> Result<JsValue, JsValue> {
        events_to_js(self.inner.feed(chunk))
    }

    /// Ends the stream: an event without its blank line is discarded.
    #[wasm_bindgen(unchecked_return_type = "SseEvent[]")]
    pub fn finish(&mut self) -> Result<JsValue, JsValue> {
        events_to_js(self.inner.finish())
    }

    /// The last event id seen: what to send as `Last-Event-ID` on reconnect
    /// (`""` before any).
    #[wasm_bindgen(getter, js_name = lastEventId)]
    pub fn last_event_id(&self) -> String {
        self.inner.last_event_id().to_owned()
    }

    /// The reconnection time the server asked for with `retry:`, in ms.
    #[wasm_bindgen(getter, js_name = retryMs)]
    pub fn retry_ms(&self) -> Option<f64> {
        self.inner
            .retry_ms()
            .map(|ms| ms.min(MAX_SAFE_INTEGER) as f64)
    }
}
