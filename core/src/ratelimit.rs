//! Fixed-window rate limits for the public flow endpoints (the verify page,
//! its start form and the OAuth callbacks, which need no API key): which
//! window a moment falls in, and which bucket a client address counts in.

use std::net::IpAddr;

use crate::time::Timestamp;

/// The length of one window.
pub const WINDOW_MS: u64 = 60_000;

/// The window `now` falls in.
pub fn window(now: Timestamp) -> u64 {
    now.as_millis() / WINDOW_MS
}

/// When `window` ends (its counter can go then).
pub fn window_end(window: u64) -> Timestamp {
    Timestamp::from_millis(window.saturating_add(1).saturating_mul(WINDOW_MS))
}

/// Whether the `count`th request of a window is within `limit` (0 = no limit).
pub fn allowed(count: u64, limit: u64) -> bool {
    limit == 0 || count <= limit
}

/// The bucket a client is counted in, from the address the host reports
/// (`ip`, `ip:port`, `[ipv6]:port`) or a proxy header: of a comma-separated
/// list (`X-Forwarded-For`) the last entry, the one the trusted proxy itself
/// saw (earlier entries are whatever the client sent). IPv4 as is (also when
/// mapped into IPv6); IPv6 by its /64, the block one subscriber is given.
/// `None` when it is not an address.
pub fn client_bucket(reported: &str) -> Option<String> {
    let last = reported.rsplit(',').next()?.trim();
    let ip = parse_ip(last)?;
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    })
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    // `a.b.c.d:port`
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(window(Timestamp::from_millis(59_999)), 0);
        assert_eq!(window(Timestamp::from_millis(60_000)), 1);
        assert_eq!(window_end(1), Timestamp::from_millis(120_000));
        assert!(allowed(60, 60));
        assert!(!allowed(61, 60));
        assert!(allowed(1_000_000, 0));
    }

    #[test]
    fn buckets() {
        let cases = [
            ("127.0.0.1:5555", Some("127.0.0.1")),
            ("203.0.113.9", Some("203.0.113.9")),
            ("[::1]:80", Some("::/64")),
            ("2001:db8:1:2:3:4:5:6", Some("2001:db8:1:2::/64")),
            ("[2001:db8:1:2:ffff::1]:443", Some("2001:db8:1:2::/64")),
            ("::ffff:198.51.100.7", Some("198.51.100.7")),
            // A proxy's list: the entry it appended, not what the client sent.
            ("6.6.6.6, 198.51.100.7", Some("198.51.100.7")),
            ("spoofed, 198.51.100.7:1234", Some("198.51.100.7")),
            ("", None),
            ("not-an-ip", None),
            ("1.2.3.4:notaport", None),
            ("198.51.100.7, junk", None),
        ];
        for (raw, want) in cases {
            assert_eq!(client_bucket(raw).as_deref(), want, "{raw:?}");
        }
    }
}
