//! Fixed-window quota arithmetic behind `verifyRequestsRemaining` and a 429's
//! `Retry-After`.
//!
//! Each API key has a bucket of `limit` creates per window of `window_secs`.
//! Windows are aligned to the Unix epoch (`window = now / window_len`), so every
//! instance computes the same window without coordination; the store only
//! keeps a counter per (key, window index), incremented atomically.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A key's quota: `limit` creates per `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Creates allowed per window (1 ..= [`Quota::MAX_LIMIT`]).
    pub limit: u64,
    /// Window length in seconds (1 ..= [`Quota::MAX_WINDOW_SECS`]).
    #[serde(rename = "windowSeconds")]
    pub window_secs: u64,
}

impl Default for Quota {
    /// 2000 creates per 24 hours: the spec's example shows 1999 left after one.
    fn default() -> Self {
        Quota {
            limit: 2000,
            window_secs: 86_400,
        }
    }
}

/// Where a key's bucket stands after counting one more create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Allowed; this many creates remain in the window.
    Allowed {
        /// `verifyRequestsRemaining`.
        remaining: u64,
    },
    /// Refused until the window ends.
    Exhausted {
        /// Whole seconds until the next window (`Retry-After`), at least 1.
        retry_after_secs: u64,
    },
}

impl Quota {
    /// Largest accepted `limit`.
    pub const MAX_LIMIT: u64 = 1_000_000_000;
    /// Longest accepted window: one year.
    pub const MAX_WINDOW_SECS: u64 = 31_536_000;

    /// Whether both numbers are within their documented bounds.
    pub fn is_valid(&self) -> bool {
        (1..=Self::MAX_LIMIT).contains(&self.limit)
            && (1..=Self::MAX_WINDOW_SECS).contains(&self.window_secs)
    }

    fn window_ms(&self) -> u64 {
        self.window_secs.max(1) * 1000
    }

    /// The index of the window `now` falls in: part of the counter's store key.
    pub fn window_index(&self, now: Timestamp) -> u64 {
        now.as_millis() / self.window_ms()
    }

    /// When the window that `now` falls in ends: the counter's expiry.
    pub fn window_end(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis((self.window_index(now) + 1) * self.window_ms())
    }

    /// Whether the create that brought its window's count to
    /// `count_after_increment` is within the quota. The one statement of the
    /// rule: [`Quota::decide`] and the SQLite store call it; the Redis
    /// script repeats it (`n > limit`) inside its atomic step, and the
    /// component's store scenario tests check the two agree.
    pub fn admits(&self, count_after_increment: u64) -> bool {
        count_after_increment <= self.limit
    }

    /// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// headers (IETF draft names) of a create answered at `now` with
    /// `remaining` creates left in the window.
    pub fn headers(&self, remaining: u64, now: Timestamp) -> [(&'static str, String); 3] {
        [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", remaining.to_string()),
            (
                "ratelimit-reset",
                now.secs_until_ceil(self.window_end(now)).to_string(),
            ),
        ]
    }

    /// Decides a create, given the window's counter *after* the store
    /// incremented it for this request (so the first create sees 1).
    pub fn decide(&self, count_after_increment: u64, now: Timestamp) -> QuotaDecision {
        if self.admits(count_after_increment) {
            QuotaDecision::Allowed {
                remaining: self.limit - count_after_increment,
            }
        } else {
            QuotaDecision::Exhausted {
                retry_after_secs: now.secs_until_ceil(self.window_end(now)).max(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_example_1999_after_one() {
        let q = Quota::default();
        let now = Timestamp::from_millis(1_772_307_312_108);
        assert_eq!(q.decide(1, now), QuotaDecision::Allowed { remaining: 1999 });
        assert_eq!(q.decide(2000, now), QuotaDecision::Allowed { remaining: 0 });
        // 2026-02-28T19:35:12.108Z is 15_887.892 s before the UTC midnight that ends its window.
        assert_eq!(
            q.decide(2001, now),
            QuotaDecision::Exhausted {
                retry_after_secs: 15_888
            }
        );
    }

    #[test]
    fn windows_align_to_epoch() {
        let q = Quota {
            limit: 1,
            window_secs: 60,
        };
        assert_eq!(q.window_index(Timestamp::from_millis(59_999)), 0);
        assert_eq!(q.window_index(Timestamp::from_millis(60_000)), 1);
        assert_eq!(
            q.window_end(Timestamp::from_millis(60_000)).as_millis(),
            120_000
        );
        // At the last millisecond of a window the retry is still at least one second.
        assert_eq!(
            q.decide(2, Timestamp::from_millis(119_999)),
            QuotaDecision::Exhausted {
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn validity() {
        assert!(Quota::default().is_valid());
        assert!(
            !Quota {
                limit: 0,
                window_secs: 1
            }
            .is_valid()
        );
        assert!(
            !Quota {
                limit: 1,
                window_secs: 0
            }
            .is_valid()
        );
        assert!(
            !Quota {
                limit: 1,
                window_secs: Quota::MAX_WINDOW_SECS + 1
            }
            .is_valid()
        );
    }

    proptest! {
        #[test]
        fn remaining_plus_used_is_limit(limit in 1u64..10_000, used in 1u64..20_000, now in 0u64..4_000_000_000_000) {
            let q = Quota { limit, window_secs: 86_400 };
            let now = Timestamp::from_millis(now);
            match q.decide(used, now) {
                QuotaDecision::Allowed { remaining } => prop_assert_eq!(remaining + used, limit),
                QuotaDecision::Exhausted { retry_after_secs } => {
                    prop_assert!(used > limit);
                    prop_assert!((1..=86_400).contains(&retry_after_secs));
                    prop_assert!(now.plus_secs(retry_after_secs) >= q.window_end(now));
                }
            }
        }
    }
}
