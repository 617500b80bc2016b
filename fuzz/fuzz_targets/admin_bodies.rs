//! Admin bodies (create PID, create key, complete session): never panic;
//! what is accepted is within bounds and survives a serialize/parse round trip.
#![no_main]

use dock_core::quota::Quota;
use dock_core::request::{
    CompleteSessionRequest, CreateKeyRequest, CreatePidRequest, Limits, MAX_PLATFORM_ID_DIGITS,
};
use libfuzzer_sys::fuzz_target;

fn platform_id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_PLATFORM_ID_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();

    if let Ok(r) = CreatePidRequest::parse(data, &limits) {
        assert!(!r.name.is_empty());
        assert!(r.name.chars().count() <= limits.max_name_chars);
        assert!(!r.name.chars().any(char::is_control));
        let again = serde_json::to_vec(&r).unwrap();
        assert_eq!(CreatePidRequest::parse(&again, &limits).as_ref(), Ok(&r));
    }

    if let Ok(r) = CreateKeyRequest::parse(data, &limits) {
        assert!(
            r.quota.is_valid(),
            "accepted an out-of-range quota {:?}",
            r.quota
        );
        assert!((1..=Quota::MAX_LIMIT).contains(&r.quota.limit));
        assert!((1..=Quota::MAX_WINDOW_SECS).contains(&r.quota.window_secs));
        let again = serde_json::to_vec(&r).unwrap();
        assert_eq!(CreateKeyRequest::parse(&again, &limits).as_ref(), Ok(&r));
    }

    if let Ok(r) = CompleteSessionRequest::parse(data, &limits) {
        assert!(
            platform_id_ok(&r.discord_id),
            "discordId {:?}",
            r.discord_id
        );
        assert!(platform_id_ok(&r.roblox_id), "robloxId {:?}", r.roblox_id);
        let again = serde_json::to_vec(&r).unwrap();
        assert_eq!(
            CompleteSessionRequest::parse(&again, &limits).as_ref(),
            Ok(&r)
        );
    }
});
