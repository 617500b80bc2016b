//! Webhook delivery from the component: outbound HTTP for core's signed
//! events, and the two triggers of [`crate::domain::dispatch`].
//!
//! A component has no background process, so deliveries run when a request
//! runs:
//! - right after a change that queued an event (a completion or a cancel),
//!   from a task spawned beside the answer, so the answer never waits for
//!   the receiver ([`after_change`]);
//! - on `POST /api/v1/admin/webhooks/dispatch` ([`dispatch_route`]): counts
//!   unobserved expiries (queueing their events) and delivers every due event
//!   of every PID, retries included. `dock-host` calls it on a timer
//!   (`--webhook-dispatch-interval`); under Spin a scheduler does (a
//!   Kubernetes CronJob for SpinKube, any cron with curl elsewhere;
//!   docs/deploy.md);
//! - on one ordinary request in `webhook_drain_one_in`, after its answer
//!   ([`maybe_drain`]): the same for one PID, at most
//!   [`domain::DRAIN_BATCH`] events, so retries and expiry events move with
//!   traffic alone where no scheduler runs.

use std::time::Duration;

use dock_core::{ApiError, Pid, Settings};
use futures::future::{self, Either};
use spin_sdk::http::Request;

use crate::domain::{self, Deliver};
use crate::env::{entropy, now};
use crate::http::{Response, full, ok};
use crate::log::log;
use crate::store::Store;

/// Sends through Spin's outbound HTTP, bounded by `webhook_timeout_seconds`
/// (a receiver that hangs costs the attempt, never the dispatcher).
struct Outbound {
    timeout: Duration,
}

impl Deliver for Outbound {
    async fn post(&self, url: &str, body: &str, signature: &str) -> Result<u16, String> {
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "Dock-Webhooks/1")
            .header(dock_core::webhook::SIGNATURE_HEADER, signature)
            .body(full(body.to_owned()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let send = std::pin::pin!(spin_sdk::http::send(req));
        let sleep = std::pin::pin!(spin_sdk::time::sleep(self.timeout));
        match future::select(send, sleep).await {
            // The status decides; the body is not read.
            Either::Left((Ok(resp), _)) => Ok(resp.status().as_u16()),
            // The error names the failure (host not allowed, refused, TLS…),
            // never a secret: the URL is the operator-approved one.
            Either::Left((Err(e), _)) => Err(format!("request failed: {e:?}")),
            Either::Right(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }
}

fn jitter() -> u16 {
    u16::from_le_bytes(entropy::<2>())
}

/// After a change of `pid`'s session that may have queued an event: attempts
/// the PID's due events from a spawned task (the answer is not delayed).
pub fn after_change(pid: Pid, settings: &'static Settings) {
    spin_sdk::wasip3::spawn(async move {
        let sender = Outbound {
            timeout: Duration::from_secs(settings.webhook_timeout_secs),
        };
        let result = match Store::open(settings).await {
            Ok(store) => {
                domain::dispatch(
                    &store,
                    &sender,
                    Some(std::slice::from_ref(&pid)),
                    false,
                    settings,
                    now,
                    jitter,
                )
                .await
            }
            Err(e) => Err(e),
        };
        // Nothing is lost: the event stays in the outbox for the next dispatch.
        if let Err(e) = result {
            log!("webhook dispatch after a change failed: {e}");
        }
    });
}

/// One request in `webhook_drain_one_in` (at random): a bounded drain of
/// one PID's due events from a spawned task, after the answer.
pub fn maybe_drain(settings: &'static Settings) {
    let one_in = settings.webhook_drain_one_in;
    if one_in == 0 {
        return;
    }
    let draw = u32::from_le_bytes(entropy::<4>());
    if !dock_core::webhook::drains(one_in, draw) {
        return;
    }
    // The pick uses the draw's other part (the gate fixed `draw % one_in`).
    let pick = (u64::from(draw) / one_in) as u32;
    spin_sdk::wasip3::spawn(async move {
        let sender = Outbound {
            timeout: Duration::from_secs(settings.webhook_timeout_secs),
        };
        let result = match Store::open(settings).await {
            Ok(store) => domain::drain(&store, &sender, settings, now, jitter, pick).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            log!("webhook drain failed: {e}");
        }
    });
}

/// `POST /api/v1/admin/webhooks/dispatch`: one dispatch over every PID with
/// a webhook (expiries swept first); what it did.
pub async fn dispatch_route(
    req: Request,
    settings: &'static Settings,
) -> Result<Response, ApiError> {
    crate::auth::admin(&req, settings)?;
    let store = Store::open(settings).await?;
    let sender = Outbound {
        timeout: Duration::from_secs(settings.webhook_timeout_secs),
    };
    let report = domain::dispatch(&store, &sender, None, true, settings, now, jitter).await?;
    let mut resp = ok(report, now(), None);
    if report.attempted == 0 {
        // The timer's idle ticks (every few seconds) stay out of the log.
        resp.extensions_mut().insert(crate::http::LogQuiet);
    }
    Ok(resp)
}
