//! What OAuth providers and browsers send back: token responses, Discord
//! user, Roblox userinfo, ID tokens, Cookie headers. Never panic; accepted
//! user ids are decimal platform ids; cookie values come from the header.
#![no_main]

use dock_core::oauth::{
    check_id_token, cookie_value, parse_discord_user, parse_roblox_userinfo, parse_token_response,
};
use dock_core::request::MAX_PLATFORM_ID_DIGITS;
use libfuzzer_sys::fuzz_target;

fn platform_id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_PLATFORM_ID_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = parse_token_response("Discord", data) {
        assert!(!t.access_token.is_empty());
        // Debug never shows the tokens.
        assert_eq!(format!("{t:?}"), "TokenResponse(<redacted>)");
    }
    if let Ok(id) = parse_discord_user(data) {
        assert!(platform_id_ok(&id), "Discord id {id:?}");
    }
    if let Ok(id) = parse_roblox_userinfo(data) {
        assert!(platform_id_ok(&id), "Roblox id {id:?}");
    }

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    // "<id token>\n<nonce>\n<client id>": the fuzzer controls all three.
    let mut parts = s.splitn(3, '\n');
    let id_token = parts.next().unwrap_or_default();
    let nonce = parts.next().unwrap_or("n");
    let client_id = parts.next().unwrap_or("cid");
    if let Ok(sub) = check_id_token(id_token, nonce, client_id) {
        assert!(platform_id_ok(&sub), "ID token sub {sub:?}");
        assert!(id_token.contains('.'));
    }
    // The whole input as an ID token too (a token with newlines must not panic).
    let _ = check_id_token(s, "n", "cid");

    // Cookie header: the value found is a slice of the header, without `;`,
    // and belongs to a `name=` pair.
    for name in ["dock_flow", "", "a"] {
        if let Some(v) = cookie_value(Some(s), name) {
            assert!(!v.contains(';'));
            let start = v.as_ptr() as usize - s.as_ptr() as usize;
            assert!(start <= s.len() && start + v.len() <= s.len());
            assert!(s[..start].ends_with('='));
            assert!(s[..start - 1].ends_with(name));
        }
    }
    // The header's first `=`-less name as the cookie name.
    if let Some((k, _)) = s.split(';').next().and_then(|kv| kv.trim().split_once('=')) {
        assert!(
            cookie_value(Some(s), k).is_some(),
            "first cookie {k:?} not found"
        );
    }
    assert_eq!(cookie_value(None, s), None);
});
