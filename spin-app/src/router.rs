//! Method and path → handler. Unknown paths are 404 JSON, known paths with
//! another method are 405 with `Allow`.

use dock_core::{ApiError, ErrorCode, Pid};
use http::Method;
use spin_sdk::http::Request;

use crate::config::settings;
use crate::http::{LogCode, LogPid, Response, error, method_not_allowed};
use crate::store::LinkSide;
use crate::{admin, sessions};

/// The OpenAPI 3.1 document of this API.
const OPENAPI: &str = include_str!("../openapi.json");

/// Routes one request, and logs one structured line for it; every answer
/// carries `X-Request-Id` (the client's own if it sent a sane one), which
/// the log line names too, and its latency goes to the metrics.
pub async fn route(req: Request) -> Response {
    let started = crate::env::now();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let method = req.method().clone();
    let named_pid = named_pid(&segments, req.uri().query());
    let request_id = crate::http::header(&req, "x-request-id")
        .filter(|id| dock_core::id::is_sane_request_id(id))
        .map_or_else(
            || dock_core::id::request_id(crate::env::entropy()),
            str::to_owned,
        );
    let (mut resp, code) = match dispatch(req, &method, &segments).await {
        Ok(resp) => {
            let code = resp.extensions().get::<LogCode>().map(|c| c.0);
            (resp, code)
        }
        Err(e) => (error(&e), Some(e.code().as_str())),
    };
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let resp = crate::http::with_content_length(resp);
    // The PID an API key was authenticated for, else the one the URL names.
    let pid = resp
        .extensions()
        .get::<LogPid>()
        .map(|p| p.0.clone())
        .or(named_pid);
    let route = route_template(&segments);
    let status = resp.status().as_u16();
    let now = crate::env::now();
    let ms = started.millis_until(now);
    if resp.extensions().get::<crate::http::LogQuiet>().is_none() {
        crate::log::record(&RequestRecord {
            request_id: &request_id,
            method: method.as_str(),
            route,
            status,
            ms,
            error: code,
            pid: pid.as_deref(),
        });
    }
    if let Ok(s) = settings().await {
        if drains_after(route) {
            crate::webhooks::maybe_drain(s);
        }
        if let Some(fields) = crate::metrics::record(
            dock_core::metrics::Series::of(route, method.as_str(), status),
            ms,
            now,
            s.metrics_flush_secs,
        ) {
            spin_sdk::wasip3::spawn(crate::metrics::flush(fields, s));
        }
    }
    resp
}

/// The one log record of a request, in this field order.
#[derive(serde::Serialize)]
struct RequestRecord<'a> {
    request_id: &'a str,
    method: &'a str,
    route: &'static str,
    status: u16,
    ms: u64,
    error: Option<&'static str>,
    pid: Option<&'a str>,
}

/// A well-formed PID named by the URL (`/admin/pids/:pid/…`, `?pid=`).
fn named_pid(segments: &[&str], query: Option<&str>) -> Option<String> {
    let named = match segments {
        ["api", "v1", "admin", "pids", pid, ..] => Some((*pid).to_owned()),
        _ => form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "pid")
            .map(|(_, v)| v.into_owned()),
    };
    named.filter(|p| Pid::parse(p).is_ok())
}

/// What a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    VerifyPage,
    FlowStart,
    DiscordCallback,
    RobloxCallback,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Sessions,
    SessionList,
    Session,
    SessionStream,
    DiscordToRoblox,
    RobloxToDiscord,
    Pids,
    Pid,
    PidKeys,
    DiscordLinks,
    RobloxLinks,
    Key,
    Stats,
    CompleteSession,
    Webhook,
    WebhookRotate,
    WebhookDeliveries,
    WebhookDispatch,
    Export,
    Import,
}

/// One route: its template (`:name` for a parameter; what the log records,
/// and, for the API, its OpenAPI path), the methods it answers, and whether
/// OpenAPI documents it (the browser pages of the flow are not an API).
struct Route {
    template: &'static str,
    methods: &'static [Method],
    endpoint: Endpoint,
    #[cfg_attr(not(test), allow(dead_code, reason = "read by the OpenAPI paths test"))]
    in_openapi: bool,
}

const fn entry(
    template: &'static str,
    methods: &'static [Method],
    endpoint: Endpoint,
    in_openapi: bool,
) -> Route {
    Route {
        template,
        methods,
        endpoint,
        in_openapi,
    }
}

/// The one route table: dispatch, the log's route names, `405`'s `Allow`
/// and the OpenAPI paths check (a test below) all read it.
const ROUTES: &[Route] = &[
    entry(
        "/v1/api/verify/discord",
        &[Method::GET],
        Endpoint::VerifyPage,
        false,
    ),
    entry(
        "/v1/api/verify/discord/start",
        &[Method::POST],
        Endpoint::FlowStart,
        false,
    ),
    entry(
        "/v1/api/verify/discord/callback",
        &[Method::GET],
        Endpoint::DiscordCallback,
        false,
    ),
    entry(
        "/v1/api/verify/roblox/callback",
        &[Method::GET],
        Endpoint::RobloxCallback,
        false,
    ),
    entry("/healthz", &[Method::GET], Endpoint::Healthz, true),
    entry("/readyz", &[Method::GET], Endpoint::Readyz, true),
    entry("/metrics", &[Method::GET], Endpoint::Metrics, true),
    entry(
        "/api/v1/openapi.json",
        &[Method::GET],
        Endpoint::OpenApi,
        true,
    ),
    entry(
        "/api/v1/verify/session",
        &[Method::POST],
        Endpoint::Sessions,
        true,
    ),
    entry(
        "/api/v1/verify/sessions",
        &[Method::GET],
        Endpoint::SessionList,
        true,
    ),
    entry(
        "/api/v1/verify/session/:sid",
        &[Method::GET, Method::DELETE],
        Endpoint::Session,
        true,
    ),
    entry(
        "/api/v1/verify/session/:sid/stream",
        &[Method::GET],
        Endpoint::SessionStream,
        true,
    ),
    entry(
        "/api/v1/public/discord-to-roblox",
        &[Method::GET],
        Endpoint::DiscordToRoblox,
        true,
    ),
    entry(
        "/api/v1/public/roblox-to-discord",
        &[Method::GET],
        Endpoint::RobloxToDiscord,
        true,
    ),
    entry(
        "/api/v1/admin/pids",
        &[Method::GET, Method::POST],
        Endpoint::Pids,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid",
        &[Method::GET, Method::PATCH],
        Endpoint::Pid,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid/keys",
        &[Method::GET, Method::POST],
        Endpoint::PidKeys,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid/links/discord/:discordId",
        &[Method::DELETE],
        Endpoint::DiscordLinks,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid/links/roblox/:robloxId",
        &[Method::DELETE],
        Endpoint::RobloxLinks,
        true,
    ),
    entry(
        "/api/v1/admin/keys/:keyId",
        &[Method::PATCH, Method::DELETE],
        Endpoint::Key,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid/webhook",
        &[Method::GET, Method::PUT, Method::DELETE],
        Endpoint::Webhook,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid/webhook/rotate-secret",
        &[Method::POST],
        Endpoint::WebhookRotate,
        true,
    ),
    entry(
        "/api/v1/admin/pids/:pid/webhook/deliveries",
        &[Method::GET],
        Endpoint::WebhookDeliveries,
        true,
    ),
    entry(
        "/api/v1/admin/webhooks/dispatch",
        &[Method::POST],
        Endpoint::WebhookDispatch,
        true,
    ),
    entry("/api/v1/admin/stats", &[Method::GET], Endpoint::Stats, true),
    entry(
        "/api/v1/admin/export",
        &[Method::GET],
        Endpoint::Export,
        true,
    ),
    entry(
        "/api/v1/admin/import",
        &[Method::POST],
        Endpoint::Import,
        true,
    ),
    entry(
        "/api/v1/admin/sessions/:sid/complete",
        &[Method::POST],
        Endpoint::CompleteSession,
        true,
    ),
];

/// The route a path matches, with its parameters in order.
fn find<'a>(segments: &[&'a str]) -> Option<(&'static Route, Vec<&'a str>)> {
    ROUTES.iter().find_map(|r| {
        let pattern: Vec<&str> = r.template[1..].split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(segments) {
            if p.starts_with(':') {
                params.push(*s);
            } else if p != s {
                return None;
            }
        }
        Some((r, params))
    })
}

/// The route a path matched, with its parameters as names: logs never carry
/// ids, keys, tokens or OAuth codes.
/// Whether a request on `route` may carry a webhook drain after its answer:
/// any route of the API but liveness (kept free of store work) and the
/// dispatch route (which dispatches everything itself).
fn drains_after(route: &str) -> bool {
    !matches!(
        route,
        "(unmatched)" | "/healthz" | "/api/v1/admin/webhooks/dispatch"
    )
}

fn route_template(segments: &[&str]) -> &'static str {
    find(segments).map_or("(unmatched)", |(r, _)| r.template)
}

/// An endpoint's future on the heap, so that `route`'s state machine stays
/// small (~2.4 KiB natively; unboxed it is the largest arm's, ~6.8 KiB): a
/// held long-poll keeps `route` and its own endpoint's future (~3 KiB) in
/// guest memory for its whole wait, not the largest endpoint's.
fn boxed<'a, T>(
    f: impl Future<Output = T> + 'a,
) -> std::pin::Pin<Box<dyn Future<Output = T> + 'a>> {
    Box::pin(f)
}

async fn dispatch(req: Request, method: &Method, segments: &[&str]) -> Result<Response, ApiError> {
    // The admin API does not exist without `admin_token`: not even a 405 reveals it.
    if let ["api", "v1", "admin", ..] = segments
        && settings().await?.admin_token.is_none()
    {
        return Err(ApiError::new(ErrorCode::NotFound, "no such route"));
    }
    let Some((route, params)) = find(segments) else {
        return Err(ApiError::new(ErrorCode::NotFound, "no such route"));
    };
    if !route.methods.contains(method) {
        let allow: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
        return Ok(method_not_allowed(&allow.join(", ")));
    }
    let param = params.first().copied().unwrap_or_default();
    use Endpoint as E;
    // Settings once, here: a `settings().await` in each arm would give the
    // state machine one slot per arm. The two endpoints that need none
    // answer even when the settings cannot be read.
    let settings = match route.endpoint {
        E::Healthz => return Ok(sessions::healthz()),
        E::OpenApi => return Ok(crate::http::json(200, OPENAPI.to_owned())),
        _ => settings().await?,
    };
    match route.endpoint {
        E::VerifyPage => Ok(boxed(crate::flow::verify_page(req, settings)).await),
        E::FlowStart => Ok(boxed(crate::flow::start(req, settings)).await),
        E::DiscordCallback => Ok(boxed(crate::flow::discord_callback(req, settings)).await),
        E::RobloxCallback => Ok(boxed(crate::flow::roblox_callback(req, settings)).await),
        // Answered above, before the settings were read.
        E::Healthz | E::OpenApi => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
        E::Metrics => boxed(crate::metrics::serve(req, settings)).await,
        E::Readyz => boxed(sessions::readyz(settings)).await,
        E::Sessions => boxed(sessions::create(req, settings)).await,
        E::SessionList => boxed(sessions::list(req, settings)).await,
        E::Session if *method == Method::DELETE => {
            boxed(sessions::cancel(req, param, settings)).await
        }
        E::Session => boxed(sessions::get(req, param, settings)).await,
        E::SessionStream => boxed(sessions::stream(req, param, settings)).await,
        E::DiscordToRoblox => boxed(sessions::discord_to_roblox(req, settings)).await,
        E::RobloxToDiscord => boxed(sessions::roblox_to_discord(req, settings)).await,
        E::Pids if *method == Method::GET => boxed(admin::list_pids(req, settings)).await,
        E::Pids => boxed(admin::create_pid(req, settings)).await,
        E::Pid if *method == Method::PATCH => boxed(admin::patch_pid(req, param, settings)).await,
        E::Pid => boxed(admin::get_pid(req, param, settings)).await,
        E::PidKeys if *method == Method::GET => boxed(admin::list_keys(req, param, settings)).await,
        E::PidKeys => boxed(admin::issue_key(req, param, settings)).await,
        E::DiscordLinks | E::RobloxLinks => {
            let side = if route.endpoint == E::DiscordLinks {
                LinkSide::Discord
            } else {
                LinkSide::Roblox
            };
            let id = params.get(1).copied().unwrap_or_default();
            boxed(admin::erase_links(req, param, side, id, settings)).await
        }
        E::Key if *method == Method::PATCH => boxed(admin::patch_key(req, param, settings)).await,
        E::Key => boxed(admin::revoke_key(req, param, settings)).await,
        E::Stats => boxed(admin::stats(req, settings)).await,
        E::CompleteSession => boxed(admin::complete(req, param, settings)).await,
        E::Webhook if *method == Method::PUT => {
            boxed(admin::put_webhook(req, param, settings)).await
        }
        E::Webhook if *method == Method::DELETE => {
            boxed(admin::delete_webhook(req, param, settings)).await
        }
        E::Webhook => boxed(admin::get_webhook(req, param, settings)).await,
        E::WebhookRotate => boxed(admin::rotate_webhook_secret(req, param, settings)).await,
        E::WebhookDeliveries => boxed(admin::webhook_deliveries(req, param, settings)).await,
        E::WebhookDispatch => boxed(crate::webhooks::dispatch_route(req, settings)).await,
        E::Export => boxed(crate::transfer::export(req, settings)).await,
        E::Import => boxed(crate::transfer::import(req, settings)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenAPI documents exactly the API routes of the table, with their methods.
    #[test]
    fn openapi_paths_are_the_route_table() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    let template = path.replace('{', ":").replace('}', "");
                    documented.push((template, method.to_uppercase()));
                }
            }
        }
        let mut table: Vec<(String, String)> = ROUTES
            .iter()
            .filter(|r| r.in_openapi)
            .flat_map(|r| {
                r.methods
                    .iter()
                    .map(|m| (r.template.to_owned(), m.as_str().to_owned()))
            })
            .collect();
        documented.sort();
        table.sort();
        assert_eq!(documented, table);
    }

    #[test]
    fn paths_find_their_route_and_parameters() {
        let (r, params) = find(&["api", "v1", "verify", "session", "abc", "stream"]).unwrap();
        assert_eq!(r.endpoint, Endpoint::SessionStream);
        assert_eq!(params, ["abc"]);
        assert_eq!(
            route_template(&["api", "v1", "admin", "pids", "p", "keys"]),
            "/api/v1/admin/pids/:pid/keys"
        );
        assert_eq!(route_template(&["api", "v1", "verify"]), "(unmatched)");
        assert_eq!(route_template(&[""]), "(unmatched)");
        // Every template is unique and starts with '/'.
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(r.template.starts_with('/'));
            assert!(ROUTES[..i].iter().all(|o| o.template != r.template));
        }
    }
}
#[cfg(test)]
mod future_size {
    fn size<A, F: Future>(_: fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every in-flight request holds `route`'s future in guest memory, a
    /// long-poll for up to its whole wait: it must not grow with the number
    /// of endpoints (it was 17 KiB with a `settings().await` per arm).
    #[test]
    fn the_router_future_stays_small() {
        let route = size(super::route);
        assert!(route <= 4096, "route's future is {route} bytes");
    }
}
