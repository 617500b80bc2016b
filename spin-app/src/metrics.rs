//! `GET /metrics` and this instance's share of it.
//!
//! Each instance records every request's latency (by route template, method
//! and status class) in core's `Recorder`, and adds what it recorded to the
//! store's sums at most every `metrics_flush_seconds`, from a task spawned
//! after the answer (never delaying one). A scrape reads the sums, so any
//! instance answers for all of them; what an instance recorded since its
//! last flush shows at its next one (the scraped instance flushes first), and
//! is lost if the instance is dropped before (documented in docs/deploy.md).

use std::cell::RefCell;

use dock_core::id::constant_time_eq;
use dock_core::metrics::{self, Recorder, Sample, Series};
use dock_core::{ApiError, ErrorCode, Settings, Timestamp};
use spin_sdk::http::Request;

use crate::http::{Response, bearer, full};
use crate::log::log;
use crate::store::{Backend, Store};

thread_local! {
    /// What this instance recorded since its last flush, and when that was.
    static RECORDED: RefCell<(Recorder, Option<Timestamp>)> = RefCell::new((Recorder::default(), None));
}

/// Records one request; when a flush is due, the fields to add to the store.
pub fn record(
    series: Series,
    ms: u64,
    now: Timestamp,
    flush_secs: u64,
) -> Option<Vec<(String, u64)>> {
    RECORDED.with_borrow_mut(|(recorder, last)| {
        recorder.record(series, ms);
        let since = *last.get_or_insert(now);
        (now >= since.plus_secs(flush_secs)).then(|| {
            *last = Some(now);
            recorder.drain()
        })
    })
}

/// Adds `fields` to the store's sums (best effort: a failure loses them, logged).
pub async fn flush(fields: Vec<(String, u64)>, settings: &Settings) {
    if fields.is_empty() {
        return;
    }
    let added = match Store::open(settings).await {
        Ok(store) => store.add_metrics(&fields).await,
        Err(e) => Err(e),
    };
    if let Err(e) = added {
        log!("metrics not flushed: {e}");
    }
}

/// `GET /metrics`: the Prometheus text of the store's counters and the
/// request histograms. Needs `metrics_token` or the admin token; with
/// neither configured the route does not exist.
pub async fn serve(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    let tokens: Vec<&str> = [&settings.metrics_token, &settings.admin_token]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if tokens.is_empty() {
        return Err(ApiError::new(ErrorCode::NotFound, "no such route"));
    }
    match bearer(&req) {
        Some(t) if tokens.iter().any(|expected| constant_time_eq(t, expected)) => {}
        _ => {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing or invalid metrics token",
            ));
        }
    }
    let store = Store::open(settings).await?;
    let mine = RECORDED.with_borrow_mut(|(recorder, last)| {
        *last = Some(crate::env::now());
        recorder.drain()
    });
    if !mine.is_empty() {
        store.add_metrics(&mine).await?;
    }
    let now = crate::env::now();
    let mut samples = Vec::new();
    for pid in store.pids().await? {
        let c = store.counters(&pid, now).await?;
        let label = || vec![("pid", pid.as_str().to_owned())];
        let counters: [(&'static str, &'static str, u64); 10] = [
            ("dock_sessions_created", "Sessions created.", c.created),
            (
                "dock_sessions_reused",
                "Creates answered with the live session.",
                c.reused,
            ),
            (
                "dock_sessions_completed",
                "Sessions completed.",
                c.completed,
            ),
            (
                "dock_sessions_expired",
                "Sessions that expired pending.",
                c.expired,
            ),
            (
                "dock_sessions_cancelled",
                "Sessions cancelled.",
                c.cancelled,
            ),
            (
                "dock_quota_rejections",
                "Creates refused with 429 quota_exceeded.",
                c.quota_rejected,
            ),
            (
                "dock_links_erased",
                "Links erased by the operator.",
                c.links_erased,
            ),
            (
                "dock_webhook_attempts",
                "Webhook delivery attempts.",
                c.webhook_attempts,
            ),
            (
                "dock_webhooks_delivered",
                "Webhook events delivered.",
                c.webhooks_delivered,
            ),
            (
                "dock_webhooks_failed",
                "Webhook events given up on after their retries.",
                c.webhooks_failed,
            ),
        ];
        for (name, help, value) in counters {
            samples.push(Sample {
                name,
                kind: "counter",
                help,
                labels: label(),
                value,
            });
        }
        samples.push(Sample {
            name: "dock_waiters",
            kind: "gauge",
            help: "Open streams and long-polls (live waiter leases).",
            labels: label(),
            value: c.waiters,
        });
    }
    // Counters first, then gauges, each family's samples together.
    samples.sort_by_key(|s| (s.kind, s.name));
    samples.push(Sample {
        name: "dock_store_errors",
        kind: "counter",
        help: "Requests and streams that failed on the store, service-wide.",
        labels: Vec::new(),
        value: store.store_errors().await?,
    });
    let fields = store.metric_fields().await?;
    let histograms = metrics::parse_fields(fields.iter().map(|(f, n)| (f.as_str(), *n)));
    let text = metrics::render(&samples, &histograms);
    Ok(http::Response::builder()
        .status(200)
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(full(text))
        .unwrap_or_else(|_| http::Response::new(full(bytes::Bytes::new()))))
}
