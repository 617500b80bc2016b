//! Origins of absolute http(s) URLs: what webhook destinations and return
//! URLs are checked against (the operator's allowed origins, a PID's
//! registered return origins).

/// Whether `host` (lower case) names this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host.strip_prefix("127.").is_some_and(|r| {
            r.split('.').count() == 3 && r.split('.').all(|o| o.parse::<u8>().is_ok())
        })
}

/// `scheme://host:port` of a URL or origin pattern.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Origin {
    /// The origin of an absolute http(s) URL (no credentials).
    pub(crate) fn of_url(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next()?;
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                if h.starts_with('[') && !h.ends_with(']') {
                    (authority, default_port)
                } else {
                    (h, p.parse().ok()?)
                }
            }
            _ => (authority, default_port),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.*[]:".contains(&b))
        {
            return None;
        }
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether this pattern allows `o`.
    pub(crate) fn allows(&self, o: &Origin) -> bool {
        if self.scheme != o.scheme || self.port != o.port {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(suffix) => o
                .host
                .strip_suffix(suffix)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => self.host == o.host,
        }
    }
}

impl Origin {
    /// `scheme://host[:port]`, the port only when not the scheme's default.
    pub(crate) fn canonical(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            format!("{}://{}", self.scheme, self.host)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// The canonical origin of an absolute http(s) URL, or `None` when it is not one.
pub fn origin_of(url: &str) -> Option<String> {
    Origin::of_url(url).map(|o| o.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_canonical() {
        assert_eq!(
            origin_of("https://App.example:443/x?y#z").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin_of("https://a.example"),
            Some("https://a.example".into())
        );
        for bad in [
            "ftp://a.example/",
            "https://u:p@a.example/",
            "https://",
            "a.example/x",
            "javascript:alert(1)",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }
}
