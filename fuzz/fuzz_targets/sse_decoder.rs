//! SSE decoder, differential: feeding a stream in two chunks split at any
//! offset (taken from the first two bytes) gives the same events, last event
//! id and retry as feeding it whole; then `finish()` agrees too.
#![no_main]

use dock_core::sse::{DecodedEvent, Decoder};
use libfuzzer_sys::fuzz_target;

fn check(events: &[DecodedEvent]) {
    for e in events {
        assert!(!e.event.is_empty(), "an event without a type: {e:?}");
        assert!(!e.event.contains(['\r', '\n']));
        assert!(!e.id.contains(['\r', '\n', '\0']));
        assert!(!e.data.contains('\r'));
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let stream = &data[2..];
    let at = usize::from(u16::from_le_bytes([data[0], data[1]])) % (stream.len() + 1);

    let mut whole = Decoder::new();
    let mut a = whole.feed(stream);

    let mut split = Decoder::new();
    let mut b = split.feed(&stream[..at]);
    b.extend(split.feed(&stream[at..]));

    assert_eq!(a, b, "split at {at} changed the events");
    assert_eq!(whole.last_event_id(), split.last_event_id());
    assert_eq!(whole.retry_ms(), split.retry_ms());

    let fa = whole.finish();
    let fb = split.finish();
    assert_eq!(fa, fb);
    assert_eq!(whole.last_event_id(), split.last_event_id());
    a.extend(fa);
    check(&a);

    // Byte by byte as well (the worst case for pending UTF-8 and CR/LF).
    if stream.len() <= 512 {
        let mut bytes = Decoder::new();
        let mut c = Vec::new();
        for byte in stream {
            c.extend(bytes.feed(std::slice::from_ref(byte)));
        }
        c.extend(bytes.finish());
        assert_eq!(a, c, "byte-at-a-time feeding changed the events");
    }
});
