//! Method and path → handler. Unknown paths are 404 JSON, known paths with
//! another method are 405 with `Allow`.

use dock_core::{ApiError, ErrorCode, Pid};
use http::Method;
use spin_sdk::http::Request;

use crate::config::settings;
use crate::http::{LogPid, Response, error, method_not_allowed};
use crate::{admin, sessions};

/// The OpenAPI 3.1 document of this API.
const OPENAPI: &str = include_str!("../openapi.json");

/// Routes one request, and logs one structured line for it.
pub async fn route(req: Request) -> Response {
    let started = crate::env::now();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let method = req.method().clone();
    let named_pid = named_pid(&segments, req.uri().query());
    let (resp, code) = match dispatch(req, &method, &segments).await {
        Ok(resp) => (resp, None),
        Err(e) => (error(&e), Some(e.code().as_str())),
    };
    let resp = crate::http::with_content_length(resp);
    // The PID an API key was authenticated for, else the one the URL names.
    let pid = resp
        .extensions()
        .get::<LogPid>()
        .map(|p| p.0.clone())
        .or(named_pid);
    crate::log::record(&RequestRecord {
        method: method.as_str(),
        route: route_template(&segments),
        status: resp.status().as_u16(),
        ms: started.millis_until(crate::env::now()),
        error: code,
        pid: pid.as_deref(),
    });
    resp
}

/// The one log record of a request, in this field order.
#[derive(serde::Serialize)]
struct RequestRecord<'a> {
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

/// The route a path matched, with its parameters as names: logs never carry
/// ids, keys, tokens or OAuth codes.
fn route_template(segments: &[&str]) -> &'static str {
    match segments {
        ["api", "v1", "verify", "session"] => "/api/v1/verify/session",
        ["api", "v1", "verify", "session", _] => "/api/v1/verify/session/:sid",
        ["api", "v1", "verify", "session", _, "stream"] => "/api/v1/verify/session/:sid/stream",
        ["api", "v1", "admin", "pids"] => "/api/v1/admin/pids",
        ["api", "v1", "admin", "pids", _, "keys"] => "/api/v1/admin/pids/:pid/keys",
        ["api", "v1", "admin", "keys", _] => "/api/v1/admin/keys/:keyId",
        ["api", "v1", "admin", "stats"] => "/api/v1/admin/stats",
        ["api", "v1", "admin", "sessions", _, "complete"] => "/api/v1/admin/sessions/:sid/complete",
        ["api", "v1", "public", "discord-to-roblox"] => "/api/v1/public/discord-to-roblox",
        ["api", "v1", "public", "roblox-to-discord"] => "/api/v1/public/roblox-to-discord",
        ["api", "v1", "openapi.json"] => "/api/v1/openapi.json",
        ["v1", "api", "verify", "discord"] => "/v1/api/verify/discord",
        ["v1", "api", "verify", "discord", "start"] => "/v1/api/verify/discord/start",
        ["v1", "api", "verify", "discord", "callback"] => "/v1/api/verify/discord/callback",
        ["v1", "api", "verify", "roblox", "callback"] => "/v1/api/verify/roblox/callback",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        _ => "(unmatched)",
    }
}

async fn dispatch(req: Request, method: &Method, segments: &[&str]) -> Result<Response, ApiError> {
    macro_rules! only {
        ($m:expr, $allow:literal, $call:expr) => {
            if method == $m {
                $call
            } else {
                Ok(method_not_allowed($allow))
            }
        };
    }
    // The admin API does not exist without `admin_token`: not even a 405 reveals it.
    if let ["api", "v1", "admin", ..] = segments
        && settings().await?.admin_token.is_none()
    {
        return Err(ApiError::new(ErrorCode::NotFound, "no such route"));
    }
    match segments {
        ["v1", "api", "verify", "discord"] => {
            only!(
                Method::GET,
                "GET",
                Ok(crate::flow::verify_page(req, settings().await?).await)
            )
        }
        ["v1", "api", "verify", "discord", "start"] => {
            only!(
                Method::POST,
                "POST",
                Ok(crate::flow::start(req, settings().await?).await)
            )
        }
        ["v1", "api", "verify", "discord", "callback"] => {
            only!(
                Method::GET,
                "GET",
                Ok(crate::flow::discord_callback(req, settings().await?).await)
            )
        }
        ["v1", "api", "verify", "roblox", "callback"] => {
            only!(
                Method::GET,
                "GET",
                Ok(crate::flow::roblox_callback(req, settings().await?).await)
            )
        }
        ["healthz"] => only!(Method::GET, "GET", Ok(sessions::healthz())),
        ["readyz"] => only!(
            Method::GET,
            "GET",
            sessions::readyz(settings().await?).await
        ),
        ["api", "v1", "openapi.json"] => only!(
            Method::GET,
            "GET",
            Ok(crate::http::json(200, OPENAPI.to_owned()))
        ),
        ["api", "v1", "verify", "session"] => {
            only!(
                Method::POST,
                "POST",
                sessions::create(req, settings().await?).await
            )
        }
        ["api", "v1", "verify", "session", sid] => match *method {
            Method::GET => sessions::get(req, sid, settings().await?).await,
            Method::DELETE => sessions::cancel(req, sid, settings().await?).await,
            _ => Ok(method_not_allowed("GET, DELETE")),
        },
        ["api", "v1", "verify", "session", sid, "stream"] => {
            only!(
                Method::GET,
                "GET",
                sessions::stream(req, sid, settings().await?).await
            )
        }
        ["api", "v1", "public", "discord-to-roblox"] => {
            only!(
                Method::GET,
                "GET",
                sessions::discord_to_roblox(req, settings().await?).await
            )
        }
        ["api", "v1", "public", "roblox-to-discord"] => {
            only!(
                Method::GET,
                "GET",
                sessions::roblox_to_discord(req, settings().await?).await
            )
        }
        ["api", "v1", "admin", "pids"] => only!(
            Method::POST,
            "POST",
            admin::create_pid(req, settings().await?).await
        ),
        ["api", "v1", "admin", "pids", pid, "keys"] => {
            only!(
                Method::POST,
                "POST",
                admin::issue_key(req, pid, settings().await?).await
            )
        }
        ["api", "v1", "admin", "keys", key_id] => {
            only!(
                Method::DELETE,
                "DELETE",
                admin::revoke_key(req, key_id, settings().await?).await
            )
        }
        ["api", "v1", "admin", "stats"] => only!(
            Method::GET,
            "GET",
            admin::stats(req, settings().await?).await
        ),
        ["api", "v1", "admin", "sessions", sid, "complete"] => {
            only!(
                Method::POST,
                "POST",
                admin::complete(req, sid, settings().await?).await
            )
        }
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
    }
}
