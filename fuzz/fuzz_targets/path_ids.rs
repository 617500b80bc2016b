//! Ids taken from URL paths: an accepted id round-trips through `as_str`,
//! `Display` and serde, and has the documented shape.
#![no_main]

use dock_core::{KeyId, Pid, SessionId};
use libfuzzer_sys::fuzz_target;

fn base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(id) = SessionId::parse(s) {
        assert_eq!(id.as_str(), s);
        assert_eq!(id.to_string(), s);
        assert_eq!(SessionId::parse(id.as_str()).as_ref(), Ok(&id));
        let rest = s.strip_prefix("vsn_").expect("prefix");
        assert!(rest.len() == 22 && base62(rest));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), id);
    }

    if let Ok(id) = KeyId::parse(s) {
        assert_eq!(id.as_str(), s);
        assert_eq!(id.to_string(), s);
        assert_eq!(KeyId::parse(id.as_str()).as_ref(), Ok(&id));
        let rest = s.strip_prefix("key_").expect("prefix");
        assert!(rest.len() == 22 && base62(rest));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
    }

    if let Ok(pid) = Pid::parse(s) {
        assert_eq!(pid.as_str(), s);
        assert_eq!(pid.to_string(), s);
        assert_eq!(Pid::parse(pid.as_str()).as_ref(), Ok(&pid));
        assert!(!s.is_empty() && s.len() <= Pid::MAX_LEN);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let json = serde_json::to_string(&pid).unwrap();
        assert_eq!(serde_json::from_str::<Pid>(&json).unwrap(), pid);
    }

    // serde must refuse exactly what `parse` refuses.
    let json = serde_json::to_string(s).unwrap();
    assert_eq!(
        serde_json::from_str::<SessionId>(&json).is_ok(),
        SessionId::parse(s).is_ok()
    );
    assert_eq!(
        serde_json::from_str::<KeyId>(&json).is_ok(),
        KeyId::parse(s).is_ok()
    );
    assert_eq!(
        serde_json::from_str::<Pid>(&json).is_ok(),
        Pid::parse(s).is_ok()
    );
});
