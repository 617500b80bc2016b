//! Instants as milliseconds since the Unix epoch, formatted as ISO 8601 UTC
//! with milliseconds (`2026-02-28T19:40:12.108Z`), the spec's format.
//!
//! Core never reads a clock: every `Timestamp` comes from the caller.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

/// The latest instant we format: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: u64 = 253_402_300_799_999;

impl Timestamp {
    /// An instant from milliseconds since the Unix epoch (clamped to year 9999).
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(if ms > MAX_MILLIS { MAX_MILLIS } else { ms })
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: u64) -> Self {
        Timestamp::from_millis(self.0.saturating_add(ms))
    }

    /// This instant plus whole seconds (saturating).
    pub const fn plus_secs(self, secs: u64) -> Self {
        self.plus_millis(secs.saturating_mul(1000))
    }

    /// Milliseconds from `self` until `later`, zero if `later` is not later.
    pub const fn millis_until(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// Whole seconds from `self` until `later`, rounded up (for `Retry-After`).
    pub const fn secs_until_ceil(self, later: Timestamp) -> u64 {
        self.millis_until(later).div_ceil(1000)
    }

    /// ISO 8601 UTC with milliseconds, e.g. `2026-02-28T19:40:12.108Z`.
    pub fn to_iso8601(self) -> String {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(self.0)).to_string()
    }

    /// Parses an RFC 3339 UTC instant (`Z` suffix), with or without fraction.
    pub fn parse_iso8601(s: &str) -> Result<Self, TimestampError> {
        let t = humantime::parse_rfc3339(s).map_err(|source| TimestampError {
            input: s.to_owned(),
            source,
        })?;
        let d = t.duration_since(UNIX_EPOCH).map_err(|_| TimestampError {
            input: s.to_owned(),
            source: humantime::TimestampError::OutOfRange,
        })?;
        Ok(Timestamp::from_millis(
            u64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS),
        ))
    }
}

/// A string that is not an ISO 8601 UTC instant.
#[derive(Debug, thiserror::Error)]
#[error("not an ISO 8601 UTC timestamp: {input:?}")]
pub struct TimestampError {
    input: String,
    #[source]
    source: humantime::TimestampError,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso8601())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Timestamp::parse_iso8601(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_like_the_spec() {
        let t = Timestamp::parse_iso8601("2026-02-28T19:35:12.108Z").unwrap();
        assert_eq!(t.as_millis(), 1_772_307_312_108);
        assert_eq!(t.to_iso8601(), "2026-02-28T19:35:12.108Z");
        assert_eq!(t.plus_secs(300).to_iso8601(), "2026-02-28T19:40:12.108Z");
        assert_eq!(
            Timestamp::from_millis(0).to_iso8601(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-02-30T00:00:00Z",
            "2026-02-28 19:35:12",
        ] {
            assert!(Timestamp::parse_iso8601(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1_500);
        assert_eq!(t.secs_until_ceil(Timestamp::from_millis(1_501)), 1);
        assert_eq!(t.secs_until_ceil(Timestamp::from_millis(2_500)), 1);
        assert_eq!(t.secs_until_ceil(Timestamp::from_millis(2_501)), 2);
        assert_eq!(t.millis_until(Timestamp::from_millis(1)), 0);
        assert_eq!(Timestamp::from_millis(u64::MAX).as_millis(), MAX_MILLIS);
        assert_eq!(t.plus_secs(u64::MAX).as_millis(), MAX_MILLIS);
    }

    proptest! {
        #[test]
        fn iso_roundtrip(ms in 0u64..=MAX_MILLIS) {
            let t = Timestamp::from_millis(ms);
            prop_assert_eq!(Timestamp::parse_iso8601(&t.to_iso8601()).unwrap(), t);
        }
    }
}
