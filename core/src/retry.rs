//! The client side of waiting: reconnect and back-off policy for SSE and
//! long-poll, as a pure state machine.
//!
//! Like the rest of core it reads no clock and draws no random numbers: the
//! caller passes `now` (to interpret an HTTP-date `Retry-After`) and `jitter`,
//! a number in `[0, 1)` it drew itself. The npm package drives a [`Reconnect`]
//! from JavaScript: it reports what happened to each request and sleeps for
//! the delay it is told, on the transport it is told.
//!
//! The rules:
//! - **Back-off** after the `n`-th consecutive failure is "equal jitter":
//!   `b = min(max_delay, initial_delay · 2^(n-1))`, delay `= b/2 + jitter · b/2`,
//!   so it is never zero and never above the cap.
//! - **`Retry-After`** (delta-seconds or HTTP-date) and the SSE `retry:` field
//!   are floors: the delay is never shorter than what the server asked for.
//! - **What is retried:** unreachable server, a stream or long-poll that broke,
//!   and HTTP 408, 425, 429, 502, 503, 504. Every other HTTP error is final.
//! - **Progress resets:** any event received (or long-poll answered) resets the
//!   failure count; `max_attempts` consecutive failures give up.
//! - **Fallback:** with [`TransportChoice::Auto`], SSE is abandoned for
//!   long-poll when the stream endpoint is not a stream (wrong Content-Type, a
//!   404 `not_found` route or 405), or when `stream_failures_before_fallback`
//!   streams in a row broke before delivering any event. An unreachable server
//!   is not a reason to switch: long-poll would not reach it either.
//! - **A clean end** (the server closed the stream before a terminal event, as
//!   it does at `stream_max_seconds` after a `retry:` frame) is not a failure:
//!   reconnect after the server's `retry:` time.

use crate::time::Timestamp;

/// Default first back-off step, in milliseconds.
pub const DEFAULT_INITIAL_DELAY_MS: u64 = 500;
/// Default back-off cap, in milliseconds.
pub const DEFAULT_MAX_DELAY_MS: u64 = 30_000;
/// Default number of consecutive failures before giving up.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Default number of event-less broken streams before `auto` falls back to long-poll.
pub const DEFAULT_STREAM_FAILURES_BEFORE_FALLBACK: u32 = 2;

/// Tunables of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First back-off step (ms).
    pub initial_delay_ms: u64,
    /// Back-off cap (ms). `Retry-After` may ask for more and is honoured.
    pub max_delay_ms: u64,
    /// Consecutive failures before giving up; 0 means never give up.
    pub max_attempts: u32,
    /// Streams in a row that broke before any event before `auto` switches to long-poll.
    pub stream_failures_before_fallback: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay_ms: DEFAULT_INITIAL_DELAY_MS,
            max_delay_ms: DEFAULT_MAX_DELAY_MS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            stream_failures_before_fallback: DEFAULT_STREAM_FAILURES_BEFORE_FALLBACK,
        }
    }
}

impl RetryPolicy {
    /// The back-off before retrying after the `attempt`-th consecutive failure
    /// (1-based; 0 is treated as 1), for `jitter` in `[0, 1)`. Out-of-range or
    /// NaN jitter is clamped into `[0, 1)`.
    pub fn backoff_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let shift = attempt.max(1) - 1;
        let initial = self.initial_delay_ms.max(1);
        let cap = self.max_delay_ms.max(initial);
        let base = if shift >= 63 {
            cap
        } else {
            initial.saturating_mul(1u64 << shift).min(cap)
        };
        let jitter = clamp_unit(jitter);
        let half = base / 2;
        // `base - half` keeps odd bases exact; the product is below `base`.
        half + ((base - half) as f64 * jitter) as u64
    }

    /// The delay after a failure: the back-off, but never less than the
    /// server's `Retry-After` or SSE `retry:` floor.
    pub fn delay_ms(&self, attempt: u32, jitter: f64, floor_ms: Option<u64>) -> u64 {
        self.backoff_ms(attempt, jitter).max(floor_ms.unwrap_or(0))
    }
}

fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        0.0
    } else if x >= 1.0 {
        // The largest f64 below 1.
        1.0 - f64::EPSILON / 2.0
    } else {
        x
    }
}

/// Whether an HTTP status is worth retrying (the condition may clear by itself).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 502 | 503 | 504)
}

/// Parses a `Retry-After` value at `now` into milliseconds to wait:
/// delta-seconds (`120`) or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`,
/// the HTTP-date form senders must use). A date in the past means 0.
/// Anything else is `None` (ignored, as RFC 9110 allows).
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<u64> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit runs saturate rather than fail.
        return Some(v.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000));
    }
    let at = parse_imf_fixdate(v)?;
    Some(now.millis_until(at))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_imf_fixdate(s: &str) -> Option<Timestamp> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29
        || &s[3..5] != ", "
        || &s[25..] != " GMT"
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
    {
        return None;
    }
    if !DAYS.contains(&&s[..3]) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as u64 + 1;
    let year = num(12..16)?;
    let (hh, mm, ss) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if year < 1970 || day == 0 || day > days_in_month(year, month) || hh > 23 || mm > 59 || ss > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss.min(59);
    Some(Timestamp::from_millis(secs.saturating_mul(1000)))
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let before_year: u64 = (1970..y)
        .map(|yy| if is_leap(yy) { 366 } else { 365 })
        .sum();
    let before_month: u64 = (1..m).map(|mm| days_in_month(y, mm)).sum();
    before_year + before_month + d - 1
}

/// Which transports the caller allows: how the npm package's
/// `waitForCompletion`/`watch` wait.
// No serde here: `TransportChoice::parse` reads the names. The `serde`
// attribute only tells tsify the names of the generated TypeScript union;
// a test below checks that `parse` takes exactly those.
#[cfg_attr(
    feature = "ts",
    derive(tsify::Tsify),
    tsify(rename = "Transport"),
    serde(rename_all = "kebab-case")
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportChoice {
    /// SSE, falling back to long-poll when streaming does not work.
    Auto,
    /// SSE only.
    Sse,
    /// Long-poll only.
    LongPoll,
}

impl TransportChoice {
    /// Parses `auto`, `sse` or `long-poll`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(TransportChoice::Auto),
            "sse" => Some(TransportChoice::Sse),
            "long-poll" => Some(TransportChoice::LongPoll),
            _ => None,
        }
    }
}

/// The transport to use for the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET …/stream`.
    Sse,
    /// `GET …?wait=N`.
    LongPoll,
}

impl Transport {
    /// `sse` or `long-poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::LongPoll => "long-poll",
        }
    }
}

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request did not get a response (connection refused or reset, DNS…).
    Unreachable,
    /// An HTTP error response; `code` is the error envelope's code if it had one.
    Http {
        /// The HTTP status.
        status: u16,
        /// `error.code` of the envelope.
        code: Option<String>,
        /// The `Retry-After`, already converted to milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// A 2xx answer on the stream endpoint that is not `text/event-stream`.
    NotAStream,
    /// A stream or long-poll body broke (or a stream ended without a terminal
    /// event and without a `retry:` hint); `events_seen` says whether this
    /// stream delivered any event first.
    Broken {
        /// Whether the connection delivered at least one event.
        events_seen: bool,
    },
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait `delay_ms`, then retry on `transport`.
    Retry {
        /// How long to wait.
        delay_ms: u64,
        /// The transport to retry on (may differ after a fallback).
        transport: Transport,
    },
    /// Stop and report the failure.
    GiveUp,
}

/// The reconnect state of one wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    policy: RetryPolicy,
    choice: TransportChoice,
    transport: Transport,
    attempt: u32,
    stream_failures: u32,
}

impl Reconnect {
    /// A wait that starts now with the given choice.
    pub fn new(policy: RetryPolicy, choice: TransportChoice) -> Self {
        let transport = match choice {
            TransportChoice::LongPoll => Transport::LongPoll,
            TransportChoice::Auto | TransportChoice::Sse => Transport::Sse,
        };
        Reconnect {
            policy,
            choice,
            transport,
            attempt: 0,
            stream_failures: 0,
        }
    }

    // ---- getters -------------------------------------------------------

    /// The transport for the next request.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Consecutive failures so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    // ---- events --------------------------------------------------------

    /// An event arrived or a long-poll answered: the connection works.
    pub fn on_progress(&mut self) {
        self.attempt = 0;
        self.stream_failures = 0;
    }

    /// The server ended a stream cleanly before a terminal event, having sent
    /// `retry:` (its reconnection time). Not a failure: reconnect after that
    /// time (or the first back-off step when it gave none).
    pub fn on_clean_end(&mut self, server_retry_ms: Option<u64>) -> u64 {
        server_retry_ms.unwrap_or(self.policy.initial_delay_ms)
    }

    /// A request failed; `jitter` in `[0, 1)`, `server_retry_ms` the last SSE
    /// `retry:` value seen (a floor for the delay).
    pub fn on_failure(
        &mut self,
        failure: &Failure,
        jitter: f64,
        server_retry_ms: Option<u64>,
    ) -> Next {
        let auto = self.choice == TransportChoice::Auto;
        let on_sse = self.transport == Transport::Sse;
        let mut floor = server_retry_ms.filter(|_| on_sse);
        match failure {
            Failure::Unreachable => {}
            Failure::Http {
                status,
                code,
                retry_after_ms,
            } => {
                let route_missing =
                    *status == 405 || (*status == 404 && code.as_deref() == Some("not_found"));
                if on_sse && auto && route_missing {
                    return self.fall_back();
                }
                if !is_retryable_status(*status) {
                    return Next::GiveUp;
                }
                floor = floor.max(*retry_after_ms);
            }
            Failure::NotAStream => {
                return if on_sse && auto {
                    self.fall_back()
                } else {
                    Next::GiveUp
                };
            }
            Failure::Broken { events_seen } => {
                if on_sse && !events_seen {
                    self.stream_failures += 1;
                    if auto
                        && self.stream_failures
                            >= self.policy.stream_failures_before_fallback.max(1)
                    {
                        return self.fall_back();
                    }
                }
            }
        }
        self.attempt = self.attempt.saturating_add(1);
        if self.policy.max_attempts != 0 && self.attempt > self.policy.max_attempts {
            return Next::GiveUp;
        }
        Next::Retry {
            delay_ms: self.policy.delay_ms(self.attempt, jitter, floor),
            transport: self.transport,
        }
    }

    fn fall_back(&mut self) -> Next {
        self.transport = Transport::LongPoll;
        self.stream_failures = 0;
        // Switching transports is not a failure of the new one: go at once.
        Next::Retry {
            delay_ms: 0,
            transport: Transport::LongPoll,
        }
    }
}

/// The `wait` to ask a long-poll for: the server's usual maximum, or less when
/// the caller's own deadline is nearer (`remaining_ms`, `None` for no deadline).
pub fn long_poll_wait_secs(max_wait_secs: u32, remaining_ms: Option<u64>) -> u32 {
    match remaining_ms {
        None => max_wait_secs,
        Some(ms) => {
            let secs = ms.div_ceil(1000);
            u32::try_from(secs).unwrap_or(u32::MAX).min(max_wait_secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn http(status: u16, code: Option<&str>, retry_after_ms: Option<u64>) -> Failure {
        Failure::Http {
            status,
            code: code.map(str::to_owned),
            retry_after_ms,
        }
    }

    #[test]
    fn backoff_table() {
        let p = RetryPolicy::default();
        // (attempt, jitter, expected)
        let cases = [
            (0, 0.0, 250),
            (1, 0.0, 250),
            (1, 0.5, 375),
            (2, 0.0, 500),
            (3, 0.0, 1000),
            (7, 0.0, 15_000),
            (8, 0.0, 15_000), // 64_000 capped at 30_000
            (8, 0.999_999, 29_999),
            (u32::MAX, 0.0, 15_000),
            (1, f64::NAN, 250),
            (1, -3.0, 250),
            (1, 7.0, 499),
        ];
        for (attempt, jitter, want) in cases {
            assert_eq!(
                p.backoff_ms(attempt, jitter),
                want,
                "attempt {attempt} jitter {jitter}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = Timestamp::from_millis(784_111_777_000); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(0)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(0),
            "past"
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:01 GMT", Timestamp::from_millis(0)),
            Some(1000)
        );
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2028 00:00:00 GMT", Timestamp::from_millis(0)),
            Some(1_835_395_200_000)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(u64::MAX)
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_days_match_timestamp_parsing() {
        for (date, iso) in [
            ("Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00Z"),
            ("Sat, 28 Feb 2026 19:35:12 GMT", "2026-02-28T19:35:12Z"),
            ("Wed, 01 Mar 2000 00:00:00 GMT", "2000-03-01T00:00:00Z"),
            ("Fri, 31 Dec 2100 23:59:59 GMT", "2100-12-31T23:59:59Z"),
        ] {
            assert_eq!(
                parse_imf_fixdate(date),
                Some(Timestamp::parse_iso8601(iso).unwrap()),
                "{date}"
            );
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 425, 429, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 404, 405, 409, 413, 415, 500, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn unreachable_backs_off_then_gives_up() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut r = Reconnect::new(p, TransportChoice::Auto);
        let delays: Vec<Next> = (0..4)
            .map(|_| r.on_failure(&Failure::Unreachable, 0.0, None))
            .collect();
        assert_eq!(
            delays,
            vec![
                Next::Retry {
                    delay_ms: 250,
                    transport: Transport::Sse
                },
                Next::Retry {
                    delay_ms: 500,
                    transport: Transport::Sse
                },
                Next::Retry {
                    delay_ms: 1000,
                    transport: Transport::Sse
                },
                Next::GiveUp,
            ]
        );
        // Unreachable never makes `auto` switch transports.
        assert_eq!(r.transport(), Transport::Sse);
    }

    #[test]
    fn progress_resets_the_count() {
        let mut r = Reconnect::new(
            RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            TransportChoice::Sse,
        );
        assert!(matches!(
            r.on_failure(&Failure::Unreachable, 0.0, None),
            Next::Retry { .. }
        ));
        r.on_progress();
        assert_eq!(r.attempt(), 0);
        assert!(matches!(
            r.on_failure(&Failure::Unreachable, 0.0, None),
            Next::Retry { .. }
        ));
        assert_eq!(r.on_failure(&Failure::Unreachable, 0.0, None), Next::GiveUp);
    }

    #[test]
    fn retry_after_and_sse_retry_are_floors() {
        let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Sse);
        assert_eq!(
            r.on_failure(&http(503, Some("store_unavailable"), Some(7000)), 0.0, None),
            Next::Retry {
                delay_ms: 7000,
                transport: Transport::Sse
            }
        );
        assert_eq!(
            r.on_failure(&Failure::Unreachable, 0.0, Some(4000)),
            Next::Retry {
                delay_ms: 4000,
                transport: Transport::Sse
            }
        );
        // A Retry-After above the back-off cap is still honoured.
        assert_eq!(
            r.on_failure(
                &http(429, Some("too_many_streams"), Some(90_000)),
                0.0,
                None
            ),
            Next::Retry {
                delay_ms: 90_000,
                transport: Transport::Sse
            }
        );
        // The SSE `retry:` does not apply to long-poll.
        let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::LongPoll);
        assert_eq!(
            r.on_failure(&Failure::Unreachable, 0.0, Some(4000)),
            Next::Retry {
                delay_ms: 250,
                transport: Transport::LongPoll
            }
        );
    }

    #[test]
    fn final_http_errors_give_up() {
        for (status, code) in [
            (400, "invalid_id"),
            (401, "unauthorized"),
            (404, "session_not_found"),
            (500, "internal_error"),
        ] {
            for choice in [
                TransportChoice::Auto,
                TransportChoice::Sse,
                TransportChoice::LongPoll,
            ] {
                let mut r = Reconnect::new(RetryPolicy::default(), choice);
                assert_eq!(
                    r.on_failure(&http(status, Some(code), None), 0.5, None),
                    Next::GiveUp,
                    "{status} {choice:?}"
                );
            }
        }
    }

    #[test]
    fn auto_falls_back_when_streaming_does_not_work() {
        let go_long_poll = Next::Retry {
            delay_ms: 0,
            transport: Transport::LongPoll,
        };
        for f in [
            Failure::NotAStream,
            http(404, Some("not_found"), None),
            http(405, None, None),
        ] {
            let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Auto);
            assert_eq!(r.on_failure(&f, 0.0, None), go_long_poll, "{f:?}");
            assert_eq!(r.transport(), Transport::LongPoll);
            // `sse` alone gives up instead.
            let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Sse);
            assert_eq!(r.on_failure(&f, 0.0, None), Next::GiveUp, "{f:?}");
        }
        // Broken streams: the threshold counts only event-less ones, in a row.
        let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Auto);
        let broken = Failure::Broken { events_seen: false };
        assert_eq!(
            r.on_failure(&broken, 0.0, None),
            Next::Retry {
                delay_ms: 250,
                transport: Transport::Sse
            }
        );
        assert_eq!(
            r.on_failure(&Failure::Broken { events_seen: true }, 0.0, None),
            Next::Retry {
                delay_ms: 500,
                transport: Transport::Sse
            }
        );
        assert_eq!(r.on_failure(&broken, 0.0, None), go_long_poll);
        let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Auto);
        r.on_failure(&broken, 0.0, None);
        r.on_progress();
        assert!(matches!(
            r.on_failure(&broken, 0.0, None),
            Next::Retry {
                transport: Transport::Sse,
                ..
            }
        ));
        // `sse` keeps retrying on SSE.
        let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Sse);
        for _ in 0..5 {
            assert!(matches!(
                r.on_failure(&broken, 0.0, None),
                Next::Retry {
                    transport: Transport::Sse,
                    ..
                }
            ));
        }
    }

    #[test]
    fn clean_end_uses_the_server_retry() {
        let mut r = Reconnect::new(RetryPolicy::default(), TransportChoice::Sse);
        assert_eq!(r.on_clean_end(Some(1000)), 1000);
        assert_eq!(r.on_clean_end(None), DEFAULT_INITIAL_DELAY_MS);
        assert_eq!(r.attempt(), 0);
    }

    #[test]
    fn long_poll_wait() {
        assert_eq!(long_poll_wait_secs(25, None), 25);
        assert_eq!(long_poll_wait_secs(25, Some(60_000)), 25);
        assert_eq!(long_poll_wait_secs(25, Some(3_001)), 4);
        assert_eq!(long_poll_wait_secs(25, Some(0)), 0);
        assert_eq!(long_poll_wait_secs(25, Some(u64::MAX)), 25);
    }

    #[test]
    fn transport_names() {
        assert_eq!(TransportChoice::parse("auto"), Some(TransportChoice::Auto));
        assert_eq!(TransportChoice::parse("sse"), Some(TransportChoice::Sse));
        assert_eq!(
            TransportChoice::parse("long-poll"),
            Some(TransportChoice::LongPoll)
        );
        assert_eq!(TransportChoice::parse("longpoll"), None);
        assert_eq!(Transport::LongPoll.as_str(), "long-poll");
    }

    /// The TypeScript `Transport` union (generated from the `serde` attribute)
    /// names exactly what `parse` takes.
    #[cfg(feature = "ts")]
    #[test]
    fn transport_ts_union_is_what_parse_takes() {
        use tsify::Tsify;
        let decl = TransportChoice::DECL;
        let (_, union) = decl
            .split_once("export type Transport =")
            .expect("a `Transport` union");
        let names: Vec<&str> = union.split('"').skip(1).step_by(2).collect();
        assert_eq!(names, ["auto", "sse", "long-poll"], "{decl}");
        for name in names {
            assert!(TransportChoice::parse(name).is_some(), "{name}");
        }
    }

    proptest! {
        /// The back-off is within [b/2, b) of its step b, grows with the attempt
        /// for a fixed jitter, and never exceeds the cap.
        #[test]
        fn backoff_bounds(attempt in 0u32..80, jitter in 0.0f64..1.0, initial in 1u64..5_000, cap in 1u64..120_000) {
            let p = RetryPolicy { initial_delay_ms: initial, max_delay_ms: cap, ..RetryPolicy::default() };
            let d = p.backoff_ms(attempt, jitter);
            prop_assert!(d <= cap.max(initial));
            prop_assert!(d >= p.backoff_ms(attempt, 0.0));
            prop_assert!(p.backoff_ms(attempt.saturating_add(1), jitter) >= d);
        }

        /// The delay never undercuts the server's floor.
        #[test]
        fn floor_holds(attempt in 1u32..40, jitter in 0.0f64..1.0, floor in proptest::option::of(0u64..1_000_000)) {
            let p = RetryPolicy::default();
            prop_assert!(p.delay_ms(attempt, jitter, floor) >= floor.unwrap_or(0));
        }
    }
}
