//! Outbound `wasi:http` requests, restricted to `allowed_outbound_hosts`.
//!
//! Every request the guest sends (`wasi:http/client`) is checked against the
//! component's allow list by scheme, host and port (the port defaulting to the
//! scheme's well-known port), as Spin does. A denied request fails with
//! `error-code::http-request-denied`, Spin's error for it; an allowed one is
//! sent with wasmtime-wasi-http's default client.

use std::sync::Arc;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::allowed_hosts::{AllowedHosts, OutboundUrl};

/// The `wasi:http` hooks of one store.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    /// The component's resolved `allowed_outbound_hosts`.
    pub allowed: Arc<AllowedHosts>,
}

impl OutboundHttp {
    /// Whether a request to `uri` may be sent.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        self.allowed
            .allows(&OutboundUrl::from_parts(scheme, host, uri.port_u16()))
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(
                uri = %request.uri(),
                "outbound request denied: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_scheme_host_and_port() {
        let allowed = AllowedHosts::parse(
            &["https://api.example.com", "http://127.0.0.1:*"],
            |_| unreachable!(),
        )
        .unwrap();
        let hooks = OutboundHttp {
            allowed: Arc::new(allowed),
        };
        let ok = |u: &str| hooks.allows(&u.parse().unwrap());
        assert!(ok("https://api.example.com/x"));
        assert!(ok("http://127.0.0.1:8080/"));
        assert!(!ok("http://api.example.com/x"));
        assert!(!ok("https://api.example.com:8443/x"));
        assert!(!ok("https://example.org/"));
        assert!(!ok("/relative"));
    }
}
