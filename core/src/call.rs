//! The call discipline of an API client (the npm package `@dock-verify/client`
//! runs this code compiled to wasm): the defaults of its calls and waits, and
//! whether and when a failed plain call (create, get, cancel, lookups) is
//! tried again.
//!
//! - A call has one time budget (`timeout_ms`, default 30 s) covering every
//!   try and the pauses between them; a retry that could not start before the
//!   budget runs out is not made.
//! - Network errors and the statuses [`is_retryable_status`] names (408, 425,
//!   429, 502, 503, 504) are retried, at most `max_retries` times (default 2),
//!   after core's exponential back-off with jitter, never sooner than the
//!   server's `Retry-After`. A `Retry-After` longer than the back-off cap
//!   (a quota window, say) ends the call at once with the server's error: the
//!   caller learns when to come back instead of being held.
//! - Retrying a create is safe: the server returns the live session for the
//!   same `(pid, clientId, guildId, expectedDiscordId)` instead of a second one.
//!
//! Pure: the caller measures time and draws the jitter.

use crate::longpoll::DEFAULT_MAX_WAIT_SECS;
use crate::retry::{
    DEFAULT_INITIAL_DELAY_MS, DEFAULT_MAX_DELAY_MS, RetryPolicy, is_retryable_status,
};
use crate::stream::DEFAULT_HEARTBEAT_SECS;

/// Default budget of one plain call, retries included (ms).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default number of retries of a plain call after its first try.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// A long-poll answered "still pending" sooner than this is paced to it (ms).
pub const MIN_LONG_POLL_INTERVAL_MS: u64 = 1_000;
/// A stream silent this long (three missed default heartbeats) counts as broken (ms).
pub const DEFAULT_STREAM_IDLE_TIMEOUT_MS: u64 = 3 * DEFAULT_HEARTBEAT_SECS * 1_000;
/// The `wait` a client asks of each long-poll: the server's usual maximum (it clamps larger values).
pub const DEFAULT_LONG_POLL_WAIT_SECS: u32 = DEFAULT_MAX_WAIT_SECS;

/// How one try of a plain call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// No HTTP answer: connection refused or reset, DNS, TLS, a body cut short.
    Network,
    /// An HTTP error status, with the server's `Retry-After` in ms if it sent one.
    Http {
        /// The status.
        status: u16,
        /// `Retry-After`, parsed (see [`crate::retry::parse_retry_after`]).
        retry_after_ms: Option<u64>,
    },
}

/// The retry rules of plain calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// Retries after the first try (0: never retry).
    pub max_retries: u32,
    /// The back-off between tries (core's reconnect back-off steps).
    pub backoff: RetryPolicy,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: RetryPolicy {
                initial_delay_ms: DEFAULT_INITIAL_DELAY_MS,
                max_delay_ms: DEFAULT_MAX_DELAY_MS,
                ..RetryPolicy::default()
            },
        }
    }
}

impl CallPolicy {
    /// After the `tries`-th try failed with `failure` (1-based), how long to
    /// pause before the next one, or `None` to give up and surface this
    /// failure. `remaining_ms` is what is left of the call's budget (`None`:
    /// unbounded); `jitter` is in `[0, 1)`.
    pub fn retry_delay_ms(
        &self,
        tries: u32,
        failure: CallFailure,
        jitter: f64,
        remaining_ms: Option<u64>,
    ) -> Option<u64> {
        if tries > self.max_retries {
            return None;
        }
        let floor = match failure {
            CallFailure::Network => None,
            CallFailure::Http { status, .. } if !is_retryable_status(status) => return None,
            CallFailure::Http { retry_after_ms, .. } => retry_after_ms,
        };
        if floor.is_some_and(|ms| ms > self.backoff.max_delay_ms.max(self.backoff.initial_delay_ms))
        {
            return None;
        }
        let delay = self.backoff.delay_ms(tries, jitter, floor);
        // Not worth starting if the pause alone uses up the budget.
        match remaining_ms {
            Some(left) if delay >= left => None,
            _ => Some(delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP_503: CallFailure = CallFailure::Http {
        status: 503,
        retry_after_ms: None,
    };

    #[test]
    fn retries_network_errors_and_retryable_statuses_up_to_max_retries() {
        let p = CallPolicy::default();
        for failure in [
            CallFailure::Network,
            HTTP_503,
            CallFailure::Http {
                status: 408,
                retry_after_ms: None,
            },
            CallFailure::Http {
                status: 429,
                retry_after_ms: Some(1_000),
            },
            CallFailure::Http {
                status: 502,
                retry_after_ms: None,
            },
            CallFailure::Http {
                status: 504,
                retry_after_ms: None,
            },
        ] {
            assert!(
                p.retry_delay_ms(1, failure, 0.5, None).is_some(),
                "{failure:?}"
            );
            assert!(
                p.retry_delay_ms(2, failure, 0.5, None).is_some(),
                "{failure:?}"
            );
            assert_eq!(
                p.retry_delay_ms(3, failure, 0.5, None),
                None,
                "{failure:?}: max_retries is 2"
            );
        }
        let never = CallPolicy {
            max_retries: 0,
            ..p
        };
        assert_eq!(
            never.retry_delay_ms(1, CallFailure::Network, 0.5, None),
            None
        );
    }

    #[test]
    fn final_statuses_are_not_retried() {
        let p = CallPolicy::default();
        for status in [400, 401, 403, 404, 409, 413, 415, 422, 500, 501] {
            let f = CallFailure::Http {
                status,
                retry_after_ms: None,
            };
            assert_eq!(p.retry_delay_ms(1, f, 0.0, None), None, "{status}");
        }
    }

    #[test]
    fn backs_off_exponentially_with_jitter_and_honours_retry_after() {
        let p = CallPolicy::default();
        // Core's back-off: step n is in [initial·2^(n-1)/2, initial·2^(n-1)).
        assert_eq!(p.retry_delay_ms(1, HTTP_503, 0.0, None), Some(250));
        assert_eq!(p.retry_delay_ms(2, HTTP_503, 0.0, None), Some(500));
        assert!(p.retry_delay_ms(2, HTTP_503, 0.999, None).unwrap() < 1_000);
        let after = CallFailure::Http {
            status: 503,
            retry_after_ms: Some(4_000),
        };
        assert_eq!(
            p.retry_delay_ms(1, after, 0.0, None),
            Some(4_000),
            "never sooner than Retry-After"
        );
        let now = CallFailure::Http {
            status: 503,
            retry_after_ms: Some(0),
        };
        assert_eq!(p.retry_delay_ms(1, now, 0.0, None), Some(250));
    }

    #[test]
    fn gives_up_on_a_retry_after_beyond_the_cap_or_the_budget() {
        let p = CallPolicy::default();
        let quota = CallFailure::Http {
            status: 429,
            retry_after_ms: Some(3_600_000),
        };
        assert_eq!(
            p.retry_delay_ms(1, quota, 0.0, None),
            None,
            "an hour-long quota window ends the call"
        );
        let after = CallFailure::Http {
            status: 503,
            retry_after_ms: Some(5_000),
        };
        assert_eq!(
            p.retry_delay_ms(1, after, 0.0, Some(4_999)),
            None,
            "the pause would use up the budget"
        );
        assert_eq!(p.retry_delay_ms(1, after, 0.0, Some(10_000)), Some(5_000));
        assert_eq!(
            p.retry_delay_ms(1, CallFailure::Network, 0.0, Some(100)),
            None
        );
    }

    #[test]
    fn defaults_follow_the_server_defaults() {
        assert_eq!(DEFAULT_STREAM_IDLE_TIMEOUT_MS, 45_000);
        assert_eq!(DEFAULT_LONG_POLL_WAIT_SECS, 25);
    }
}
