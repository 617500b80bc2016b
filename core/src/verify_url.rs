//! The URL an integrator sends its user to.

use crate::id::{Pid, SessionId};

/// Path of the verify page, relative to the public base URL (the spec's path).
pub const VERIFY_PATH: &str = "/v1/api/verify/discord";

/// `{base}/v1/api/verify/discord?pid=…&sid=…`, query values form-encoded.
///
/// `base` is the configured public base URL (`https://verify.example.com`,
/// optionally with a path prefix); a trailing slash is ignored.
pub fn verify_url(public_base_url: &str, pid: &Pid, sid: &SessionId) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("pid", pid.as_str())
        .append_pair("sid", sid.as_str())
        .finish();
    format!(
        "{}{VERIFY_PATH}?{query}",
        public_base_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let pid = Pid::parse("pid-yourapp").unwrap();
        let sid = SessionId::parse("vsn_A1b2C3d4E5f6G7h8J9k0L1").unwrap();
        let want = "https://api.docksys.xyz/v1/api/verify/discord?pid=pid-yourapp&sid=vsn_A1b2C3d4E5f6G7h8J9k0L1";
        assert_eq!(verify_url("https://api.docksys.xyz", &pid, &sid), want);
        assert_eq!(verify_url("https://api.docksys.xyz/", &pid, &sid), want);
        assert_eq!(
            verify_url("http://127.0.0.1:3000/dock", &pid, &sid),
            "http://127.0.0.1:3000/dock/v1/api/verify/discord?pid=pid-yourapp&sid=vsn_A1b2C3d4E5f6G7h8J9k0L1"
        );
    }
}
