//! Session query strings: `wait` is clamped to the maximum, `lastEventId`
//! is short and free of control characters.
#![no_main]

use dock_core::longpoll::{parse_session_query, parse_wait};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 25;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = parse_session_query(query, MAX) {
        if let Some(w) = q.wait_secs {
            assert!(w <= MAX, "wait {w} over the maximum");
        }
        if let Some(id) = &q.last_event_id {
            assert!(id.len() <= 64);
            assert!(!id.chars().any(char::is_control));
        }
    }
    if let Ok(w) = parse_wait(query, MAX) {
        assert!(w <= MAX);
        assert!(!query.is_empty() && query.bytes().all(|b| b.is_ascii_digit()));
        // Exact for small values, clamped for big ones.
        if let Ok(v) = query.parse::<u64>() {
            assert_eq!(u64::from(w), v.min(u64::from(MAX)));
        } else {
            assert_eq!(w, MAX);
        }
    }
});
