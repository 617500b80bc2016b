//! `allowed_outbound_hosts`, with Spin 4.1's parsing and matching rules.
//!
//! An entry is `<scheme>://<host>[:<port>]`:
//! - scheme: `*` or a single alphabetic scheme (`{a,b}` lists are rejected);
//! - host: `*`, `*.<domain>` (any subdomain), a domain or IP literal, or an IP
//!   network in CIDR form; `self` is accepted but only matches relative URLs,
//!   which this host does not route (see README); no paths, no credentials
//!   (`user@host` is not a valid host), wildcards only as a whole label prefix;
//! - port: `*`, a number, a range `a..b` (end exclusive), or omitted, meaning the
//!   scheme's well-known port (an error for schemes without one).
//!
//! Templated entries are resolved against application variables first; an entry
//! that resolves to the empty string (or a bare `http://` / `https://`) is
//! skipped, so a variable can make an endpoint optional.

use std::fmt;
use std::net::IpAddr;

use anyhow::{Context as _, Result, bail, ensure};
use url::Host;

use crate::template::Template;

/// The allow list of one component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    original: String,
    scheme: SchemeRule,
    host: HostRule,
    port: PortRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemeRule {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    /// Stored with its leading dot: `.example.com`.
    AnySubdomain(String),
    ToSelf,
    Literal(Host),
    Cidr(Cidr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    Port(u16),
    Range(u16, u16),
}

/// An IP network: address with the host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl AllowedHosts {
    /// Parses a component's entries, resolving templates with `resolve` (which
    /// returns an application variable's value).
    pub fn parse<S: AsRef<str>>(
        entries: &[S],
        mut resolve: impl FnMut(&str) -> Result<String>,
    ) -> Result<Self> {
        if entries.len() == 1 && entries[0].as_ref() == "insecure:allow-all" {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
            );
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref();
            let template = Template::parse(entry)?;
            let resolved = if template.is_literal() {
                entry.to_owned()
            } else {
                let value = template.render(&mut resolve)?;
                if value.is_empty() || value == "http://" || value == "https://" {
                    continue;
                }
                value
            };
            let host = AllowedHost::parse(&resolved).with_context(|| {
                if template.is_literal() {
                    format!("invalid allowed_outbound_hosts entry {entry:?}")
                } else {
                    format!(
                        "allowed_outbound_hosts entry {entry:?} resolves to invalid {resolved:?}"
                    )
                }
            })?;
            parsed.push(host);
        }
        Ok(Self { entries: parsed })
    }

    /// Whether `url` may be reached. `default_scheme` is assumed when `url` has
    /// none (e.g. a bare `host:port` Redis address).
    pub fn allows_url(&self, url: &str, default_scheme: &str) -> bool {
        match OutboundUrl::parse(url, default_scheme) {
            Ok(u) => self.allows(&u),
            Err(err) => {
                tracing::warn!(%err, "outbound url {url:?} could not be parsed");
                false
            }
        }
    }

    /// Whether a parsed outbound URL may be reached.
    pub fn allows(&self, url: &OutboundUrl) -> bool {
        self.entries.iter().any(|h| h.allows(url))
    }

    /// The entries, for display.
    pub fn iter(&self) -> impl Iterator<Item = &AllowedHost> {
        self.entries.iter()
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl AllowedHost {
    /// Parses one (already resolved) entry.
    pub fn parse(text: &str) -> Result<Self> {
        let url = text.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            match url {
                "*" | ":" | "" | "?" => bail!(
                    "{url:?} is not an allowed outbound host format. Hosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each. To allow all outbound networking use '*://*:*'"
                ),
                _ => bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')"),
            }
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some((h, tail)) => {
                // An IPv6 literal or network contains colons of its own.
                if HostRule::parse(rest).is_ok() {
                    (rest, "")
                } else {
                    let port = match tail.split_once('/') {
                        Some((port, path)) => {
                            ensure!(path.is_empty(), "{url:?} has a path but is not allowed to");
                            port
                        }
                        None => tail,
                    };
                    (h, port)
                }
            }
        };
        let port = PortRule::parse(port, scheme)
            .with_context(|| format!("invalid allowed host port {port:?}"))?;
        let scheme = SchemeRule::parse(scheme)
            .with_context(|| format!("invalid allowed host scheme {scheme:?}"))?;
        let host =
            HostRule::parse(host).with_context(|| format!("invalid allowed host {host:?}"))?;
        Ok(Self {
            original: text.to_owned(),
            scheme,
            host,
            port,
        })
    }

    fn allows(&self, url: &OutboundUrl) -> bool {
        self.scheme.allows(&url.scheme)
            && self.host.allows(&url.host)
            && self.port.allows(url.port, &url.scheme)
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl SchemeRule {
    fn parse(scheme: &str) -> Result<Self> {
        if scheme == "*" {
            return Ok(Self::Any);
        }
        ensure!(!scheme.starts_with('{'), "scheme lists are not supported");
        ensure!(
            !scheme.is_empty() && scheme.chars().all(char::is_alphabetic),
            "only alphabetic characters are allowed"
        );
        Ok(Self::Exact(scheme.to_owned()))
    }

    fn allows(&self, scheme: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(s) => s == scheme,
        }
    }
}

impl HostRule {
    fn parse(host: &str) -> Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        if host.starts_with('{') {
            bail!("host lists are not yet supported");
        }
        if let Some(cidr) = Cidr::parse(host) {
            return Ok(Self::Cidr(cidr));
        }
        let host = host.strip_suffix('/').unwrap_or(host);
        ensure!(!host.contains('/'), "must not include a path");
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                !domain.contains('*'),
                "wildcards are allowed only as prefixes"
            );
            let Host::Domain(domain) = Host::parse(domain)
                .with_context(|| format!("invalid wildcard host \"*.{domain}\""))?
            else {
                bail!("wildcard suffix must be a domain");
            };
            return Ok(Self::AnySubdomain(format!(".{domain}")));
        }
        ensure!(
            !host.contains('*'),
            "wildcards are allowed only as subdomains"
        );
        Ok(Self::Literal(Host::parse(host)?))
    }

    fn allows(&self, host: &str) -> bool {
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        match (self, host) {
            (Self::Any, _) => true,
            (Self::AnySubdomain(suffix), Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (Self::Literal(lit), host) => host == *lit,
            (Self::Cidr(c), Host::Ipv4(ip)) => c.contains(IpAddr::V4(ip)),
            (Self::Cidr(c), Host::Ipv6(ip)) => c.contains(IpAddr::V6(ip)),
            (Self::AnySubdomain(_) | Self::Cidr(_) | Self::ToSelf, _) => false,
        }
    }
}

impl PortRule {
    fn parse(port: &str, scheme: &str) -> Result<Self> {
        if port.is_empty() {
            return well_known_port(scheme).map(Self::Port).with_context(|| {
                format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
            });
        }
        if port == "*" {
            return Ok(Self::Any);
        }
        ensure!(!port.starts_with('{'), "port lists are not yet supported");
        if let Some((start, end)) = port.split_once("..") {
            let start = start
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            let end = end
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            return Ok(Self::Range(start, end));
        }
        Ok(Self::Port(port.parse().with_context(|| {
            format!("port {port:?} is not a number")
        })?))
    }

    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        let port = match self {
            Self::Any => return true,
            _ => match port.or_else(|| well_known_port(scheme)) {
                Some(p) => p,
                None => return false,
            },
        };
        match self {
            Self::Any => true,
            Self::Port(p) => *p == port,
            Self::Range(start, end) => (*start..*end).contains(&port),
        }
    }
}

fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        "http" => 80,
        "https" => 443,
        _ => return None,
    })
}

impl Cidr {
    /// Parses `addr/len` (host bits are truncated, as Spin's `ip_network` does).
    fn parse(text: &str) -> Option<Self> {
        let (addr, len) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = len.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        Some(Self {
            net: mask(addr, prefix),
            prefix,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// The parts of an outbound URL that the allow list looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    /// The scheme, e.g. `https` or `redis`.
    pub scheme: String,
    /// The host as written (domain or IP literal, IPv6 in brackets).
    pub host: String,
    /// The explicit port, if any.
    pub port: Option<u16>,
}

impl OutboundUrl {
    /// Parses `url`; when it has no scheme (`host:port`), `default_scheme` is used.
    pub fn parse(url: &str, default_scheme: &str) -> Result<Self> {
        let encoded = encode_userinfo(url);
        let url = encoded.as_str();
        let parsed = match url::Url::parse(url) {
            Ok(u) if u.has_host() => u,
            first => match url::Url::parse(&format!("{default_scheme}://{url}")) {
                Ok(u) => u,
                Err(second) => return Err(first.err().map(Into::into).unwrap_or(second.into())),
            },
        };
        Ok(Self {
            scheme: parsed.scheme().to_owned(),
            host: parsed
                .host_str()
                .with_context(|| format!("{url:?} does not have a host component"))?
                .to_owned(),
            port: parsed.port(),
        })
    }

    /// Builds one from the parts of an HTTP request URI.
    pub fn from_parts(scheme: &str, host: &str, port: Option<u16>) -> Self {
        Self {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        }
    }
}

/// Percent-encodes credentials before the first `@` (if it comes before the
/// path), as Spin does, so a password with URL-special characters does not
/// change what the host part parses as. Only the host and port are used.
fn encode_userinfo(url: &str) -> String {
    let Some(at) = url.find('@') else {
        return url.to_owned();
    };
    let start = url.find("://").map_or(0, |i| i + 3);
    let path = url[start..].find('/').map_or(usize::MAX, |i| i + start);
    if at < start || at >= path {
        return url.to_owned();
    }
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(&url[..start]);
    for b in url[start..at].bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(&url[at..]);
    out
}

impl fmt::Display for OutboundUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}://{}:{p}", self.scheme, self.host),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries, |n| match n {
            "empty" => Ok(String::new()),
            "redis_host" => Ok("127.0.0.1:6380".into()),
            "base" => Ok("https://api.example.com".into()),
            other => bail!("unknown {other}"),
        })
        .unwrap()
    }

    #[test]
    fn accepts_spin_forms() {
        for ok in [
            "http://example.com",
            "https://example.com:8443",
            "*://example.com:*",
            "https://*.example.com",
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "http://[::1]:8080",
            "http://10.0.0.0/8:*",
            "http://localhost:3000..3010",
            "*://*:*",
            "https://example.com/",
            "https://self",
        ] {
            AllowedHost::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e:#}"));
        }
    }

    #[test]
    fn rejects_what_spin_rejects() {
        for bad in [
            "example.com",
            "*",
            "",
            "https://example.com/path",
            "https://example.com:443/path",
            "https://user:pass@example.com",
            "https://user@example.com",
            "https://ex*ample.com",
            "https://*.*.example.com",
            "{http,https}://example.com",
            "https://{a,b}.com",
            "ftp://example.com",
            "https://example.com:port",
            "http://example.com:{80,81}",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(AllowedHosts::parse(&["insecure:allow-all"], |_| Ok(String::new())).is_err());
    }

    #[test]
    fn matching() {
        let h = hosts(&[
            "https://api.example.com",
            "http://*.internal.test:*",
            "redis://{{ redis_host }}",
            "{{ empty }}",
            "http://10.1.0.0/16:80",
            "http://localhost:3000..3002",
        ]);
        let yes = [
            ("https://api.example.com/v1", "https"),
            ("https://api.example.com:443/", "https"),
            ("http://a.b.internal.test:9999/", "http"),
            ("redis://127.0.0.1:6380", "redis"),
            ("127.0.0.1:6380", "redis"),
            ("http://10.1.200.3/", "http"),
            ("http://localhost:3001/", "http"),
        ];
        let no = [
            ("http://api.example.com/", "http"),
            ("https://api.example.com:8443/", "https"),
            ("https://evil.com/", "https"),
            ("http://internal.test/", "http"),
            ("redis://127.0.0.1:6379", "redis"),
            ("redis://127.0.0.1", "redis"),
            ("http://10.2.0.1/", "http"),
            ("http://localhost:3002/", "http"),
            ("not a url", "http"),
        ];
        for (u, s) in yes {
            assert!(h.allows_url(u, s), "{u} should be allowed");
        }
        for (u, s) in no {
            assert!(!h.allows_url(u, s), "{u} should be denied");
        }
    }

    #[test]
    fn credentials_in_the_url_do_not_change_the_host() {
        let h = hosts(&["redis://127.0.0.1:6380"]);
        assert!(h.allows_url("redis://:s3cr#t?x@127.0.0.1:6380", "redis"));
        assert!(h.allows_url("redis://user:pw@127.0.0.1:6380/0", "redis"));
        assert!(!h.allows_url("redis://user:pw@127.0.0.2:6380", "redis"));
    }

    #[test]
    fn templates_resolve_and_empty_is_skipped() {
        let h = hosts(&["{{ empty }}"]);
        assert!(h.is_empty());
        let h = hosts(&["{{ base }}"]);
        assert!(h.allows_url("https://api.example.com/x", "https"));
        let e =
            AllowedHosts::parse(&["{{ base }}/path"], |_| Ok("https://x.com".into())).unwrap_err();
        assert!(format!("{e:#}").contains("resolves to invalid"), "{e:#}");
    }

    #[test]
    fn nothing_allowed_by_default() {
        assert!(!AllowedHosts::default().allows_url("https://example.com", "https"));
    }
}
