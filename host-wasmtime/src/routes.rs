//! HTTP routing and the `spin-*` request headers, with Spin's semantics.
//!
//! Like Spin (`spin-http`'s router), routes are matched with the `routefinder`
//! crate, so "most specific route wins" is decided by the same algorithm:
//! exact segments beat `:param` segments beat the trailing wildcard, and a
//! later trigger with the same route replaces an earlier one. A route ending in
//! `/...` matches its prefix and everything below it.

use std::net::SocketAddr;

use anyhow::{Result, anyhow};

/// The router for all `[[trigger.http]]` entries.
#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<RouteHandler>,
}

#[derive(Debug, Clone)]
struct RouteHandler {
    component: String,
    /// The route with the (always `/`) base applied and one trailing slash removed.
    based_route: String,
    /// The route as written in the manifest.
    raw_route: String,
}

/// The result of routing a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component that handles the request.
    pub component: String,
    /// `spin-matched-route`.
    pub based_route: String,
    /// `spin-raw-component-route`.
    pub raw_route: String,
    /// Named `:param` captures, in route order.
    pub params: Vec<(String, String)>,
    /// `spin-path-info`: the part matched by a trailing `/...`, with Spin's
    /// trailing-slash rules; empty for exact routes.
    pub path_info: String,
}

impl Router {
    /// Builds the router from `(route, component)` pairs in manifest order.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        // Later duplicates replace earlier ones, keeping the first position.
        let mut entries: Vec<RouteHandler> = Vec::new();
        for (raw, component) in routes {
            let handler = RouteHandler {
                component: component.to_owned(),
                based_route: sanitize(&absolutize(raw)),
                raw_route: raw.to_owned(),
            };
            match entries.iter_mut().find(|e| e.raw_route == raw) {
                Some(existing) => {
                    tracing::warn!(
                        route = raw,
                        replaced = existing.component,
                        effective = component,
                        "duplicate route"
                    );
                    *existing = handler;
                }
                None => entries.push(handler),
            }
        }
        let mut inner = routefinder::Router::new();
        for handler in entries {
            let spec = route_spec(&handler.based_route);
            inner.add(spec.as_str(), handler.clone()).map_err(|e| {
                anyhow!(
                    "error parsing route {:?} of component {:?}: {e}",
                    handler.raw_route,
                    handler.component
                )
            })?;
        }
        Ok(Self { inner })
    }

    /// Routes `path` (no query string). `None` means 404.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let m = self.inner.best_match(path)?;
        let handler = m.handler();
        let captures = m.captures();
        let params = captures
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let path_info = match captures.wildcard() {
            None => String::new(),
            Some(w) => match (w.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_owned(),
                (false, false) => format!("/{w}"),
                (false, true) => format!("/{w}/"),
            },
        };
        Some(RouteMatch {
            component: handler.component.clone(),
            based_route: handler.based_route.clone(),
            raw_route: handler.raw_route.clone(),
            params,
            path_info,
        })
    }

    /// `(route, component)` for display, in routing order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .iter()
            .map(|(_, h)| (h.raw_route.as_str(), h.component.as_str()))
    }
}

fn route_spec(based: &str) -> String {
    if let Some(prefix) = based.strip_suffix("/...") {
        format!("{prefix}/*")
    } else {
        based.to_owned()
    }
}

fn absolutize(s: &str) -> String {
    if s.starts_with('/') {
        s.to_owned()
    } else {
        format!("/{s}")
    }
}

fn sanitize(s: &str) -> String {
    s.strip_suffix('/').unwrap_or(s).to_owned()
}

impl RouteMatch {
    /// `spin-component-route`: the raw route without a trailing `/...`.
    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }

    /// The headers Spin adds to every request it routes to a component, as
    /// `(lower-case name, value)`.
    pub fn spin_headers(
        &self,
        scheme: &str,
        host: &str,
        path_and_query: &str,
        client: SocketAddr,
    ) -> Vec<(String, String)> {
        let mut headers = vec![
            ("spin-path-info".to_owned(), self.path_info.clone()),
            (
                "spin-full-url".to_owned(),
                format!("{scheme}://{host}{path_and_query}"),
            ),
            ("spin-matched-route".to_owned(), self.based_route.clone()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            (
                "spin-raw-component-route".to_owned(),
                self.raw_route.clone(),
            ),
            (
                "spin-component-route".to_owned(),
                self.raw_route_or_prefix().to_owned(),
            ),
            ("spin-client-addr".to_owned(), client.to_string()),
        ];
        for (name, value) in &self.params {
            headers.push((
                format!(
                    "spin-path-match-{}",
                    name.to_ascii_lowercase().replace('_', "-")
                ),
                value.clone(),
            ));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().copied()).unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            ("/...", "catch-all"),
            ("/api/...", "api"),
            ("/api/users/:id", "user"),
            ("/api/users/me", "me"),
            ("/exact", "exact"),
        ]);
        let c = |p: &str| r.route(p).map(|m| m.component);
        assert_eq!(c("/").as_deref(), Some("catch-all"));
        assert_eq!(c("/other/thing").as_deref(), Some("catch-all"));
        assert_eq!(c("/api").as_deref(), Some("api"));
        assert_eq!(c("/api/x/y").as_deref(), Some("api"));
        assert_eq!(c("/api/users/42").as_deref(), Some("user"));
        assert_eq!(c("/api/users/me").as_deref(), Some("me"));
        assert_eq!(c("/exact").as_deref(), Some("exact"));
        assert_eq!(c("/exact/more").as_deref(), Some("catch-all"));
    }

    #[test]
    fn no_match_is_none() {
        let r = router(&[("/a", "a"), ("/b/...", "b")]);
        assert!(r.route("/c").is_none());
        assert!(r.route("/").is_none());
    }

    #[test]
    fn path_info_follows_spins_trailing_slash_rules() {
        let r = router(&[("/foo/...", "foo")]);
        let info = |p: &str| r.route(p).unwrap().path_info;
        assert_eq!(info("/foo"), "");
        assert_eq!(info("/foo/"), "/");
        assert_eq!(info("/foo/bar"), "/bar");
        assert_eq!(info("/foo/bar/"), "/bar/");
        assert_eq!(info("/foo/bar/baz"), "/bar/baz");
    }

    #[test]
    fn duplicate_route_keeps_the_later_component() {
        let r = router(&[("/x", "first"), ("/x", "second")]);
        assert_eq!(r.route("/x").unwrap().component, "second");
    }

    #[test]
    fn spin_headers_match_spins_for_a_wildcard_route() {
        let r = router(&[("/foo/...", "c")]);
        let m = r.route("/foo/bar").unwrap();
        let h = m.spin_headers(
            "https",
            "fermyon.dev",
            "/foo/bar?key1=value1&key2=value2",
            "127.0.0.1:8777".parse().unwrap(),
        );
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("spin-full-url"),
            Some("https://fermyon.dev/foo/bar?key1=value1&key2=value2")
        );
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-matched-route"), Some("/foo/..."));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-raw-component-route"), Some("/foo/..."));
        assert_eq!(get("spin-component-route"), Some("/foo"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:8777"));
    }

    #[test]
    fn named_params_become_path_match_headers() {
        let r = router(&[("/foo/:userid/...", "c")]);
        let m = r.route("/foo/42/bar").unwrap();
        assert_eq!(m.params, vec![("userid".to_owned(), "42".to_owned())]);
        assert_eq!(m.path_info, "/bar");
        let h = m.spin_headers("http", "h", "/foo/42/bar", "127.0.0.1:1".parse().unwrap());
        assert!(h.contains(&("spin-path-match-userid".to_owned(), "42".to_owned())));
        assert!(h.contains(&("spin-component-route".to_owned(), "/foo/:userid".to_owned())));
    }
}
