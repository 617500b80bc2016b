//! `POST /api/v1/verify/session` bodies: an accepted body respects the
//! limits, and re-serializing it gives a body that parses to the same value.
#![no_main]

use dock_core::request::{CreateSessionRequest, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(req) = CreateSessionRequest::parse(data, &limits) else {
        return;
    };
    assert!(
        data.len() <= limits.max_body_bytes,
        "accepted an oversized body"
    );
    assert!(!req.client_id.is_empty());
    assert!(req.client_id.chars().count() <= limits.max_client_id_chars);
    assert!(!req.client_id.chars().any(char::is_control));
    if let Some(g) = &req.guild_id {
        assert!(!g.is_empty());
        assert!(g.chars().count() <= limits.max_guild_id_chars);
        assert!(!g.chars().any(char::is_control));
    }
    assert!(dock_core::Pid::parse(req.pid.as_str()).is_ok());

    let again = serde_json::to_vec(&req).expect("a parsed request serializes");
    let reparsed = CreateSessionRequest::parse(&again, &limits).unwrap_or_else(|e| {
        panic!(
            "re-serialized body {:?} refused: {e}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(req, reparsed);
});
