//! Long-poll: the `wait` parameter, and the pure decision "answer now, or wait
//! until an instant".

use crate::session::Session;
use crate::time::Timestamp;

/// Default and usual maximum for `wait`, in seconds (hosted Spin platforms cap a
/// request at 30 s).
pub const DEFAULT_MAX_WAIT_SECS: u32 = 25;

/// A bad query string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// `wait` is not a whole number of seconds.
    #[error("`wait` must be a whole number of seconds (0 to {max}), got {value:?}")]
    Wait {
        /// What was sent (truncated).
        value: String,
        /// The configured maximum.
        max: u32,
    },
    /// Another parameter is malformed.
    #[error("invalid query parameter `{name}`: {reason}")]
    Query {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The query parameters the session endpoints understand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// `wait`, clamped to the maximum; `None` when absent (answer at once).
    pub wait_secs: Option<u32>,
    /// `lastEventId` (for browsers' EventSource, which cannot set headers).
    pub last_event_id: Option<String>,
}

/// Parses one `wait` value: whole seconds, digits only; values over
/// `max_wait_secs` are clamped to it.
pub fn parse_wait(value: &str, max_wait_secs: u32) -> Result<u32, WaitError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WaitError::Wait {
            value: value.chars().take(32).collect(),
            max: max_wait_secs,
        });
    }
    // Any run of digits is a valid (possibly huge) number: clamp, don't overflow.
    Ok(value
        .parse::<u64>()
        .map_or(max_wait_secs, |v| v.min(u64::from(max_wait_secs)) as u32))
}

/// Parses a raw query string (without `?`). Unknown parameters are ignored
/// (proxies and cache-busters add them); a repeated `wait` is an error.
pub fn parse_session_query(query: &str, max_wait_secs: u32) -> Result<SessionQuery, WaitError> {
    let mut out = SessionQuery::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "wait" => {
                if out.wait_secs.is_some() {
                    return Err(WaitError::Query {
                        name: "wait",
                        reason: "given more than once",
                    });
                }
                out.wait_secs = Some(parse_wait(&value, max_wait_secs)?);
            }
            "lastEventId" => {
                if value.len() > 64 || value.chars().any(char::is_control) {
                    return Err(WaitError::Query {
                        name: "lastEventId",
                        reason: "too long or has control characters",
                    });
                }
                out.last_event_id = Some(value.into_owned());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What a long-poll handler does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitDecision {
    /// Answer with the session's current view.
    AnswerNow,
    /// Block until this instant (or an earlier change), then decide again.
    WaitUntil(Timestamp),
}

/// The deadline of a long-poll that started at `now` with `wait_secs`.
pub fn deadline(now: Timestamp, wait_secs: u32) -> Timestamp {
    now.plus_secs(u64::from(wait_secs))
}

/// Decides from (now, session, deadline): answer at once when the session is
/// terminal at `now` or the deadline has passed; else wait until the earlier of
/// the deadline and the session's expiry (when it turns into `expired`).
pub fn decide(now: Timestamp, session: &Session, deadline: Timestamp) -> WaitDecision {
    if !session.is_pending_at(now) || now >= deadline {
        return WaitDecision::AnswerNow;
    }
    WaitDecision::WaitUntil(deadline.min(session.expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Pid, SessionId};

    #[test]
    fn wait_table() {
        let ok: &[(&str, u32)] = &[
            ("0", 0),
            ("25", 25),
            ("7", 7),
            ("026", 25),
            ("26", 25),
            ("99999999999999999999999", 25),
        ];
        for &(v, want) in ok {
            assert_eq!(parse_wait(v, 25), Ok(want), "{v}");
        }
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "abc", "２"] {
            assert!(parse_wait(bad, 25).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn query_table() {
        assert_eq!(parse_session_query("", 25), Ok(SessionQuery::default()));
        assert_eq!(
            parse_session_query("wait=25", 25).unwrap().wait_secs,
            Some(25)
        );
        assert_eq!(
            parse_session_query("wait=600&x=1", 25).unwrap().wait_secs,
            Some(25)
        );
        assert_eq!(
            parse_session_query("wait=%32%30", 25).unwrap().wait_secs,
            Some(20)
        );
        assert_eq!(
            parse_session_query("lastEventId=1", 25)
                .unwrap()
                .last_event_id
                .as_deref(),
            Some("1")
        );
        assert!(parse_session_query("wait=", 25).is_err());
        assert!(parse_session_query("wait=1&wait=2", 25).is_err());
        assert!(parse_session_query("wait=abc", 25).is_err());
        assert!(parse_session_query("lastEventId=%0A", 25).is_err());
    }

    #[test]
    fn decisions_in_simulated_time() {
        let t = Timestamp::from_millis;
        let s = Session::new(
            SessionId::from_entropy([3; 16]),
            Pid::parse("p").unwrap(),
            "c".into(),
            None,
            t(0),
            300,
        );
        // Pending, deadline ahead of expiry: wait until the deadline.
        assert_eq!(
            decide(t(1_000), &s, deadline(t(1_000), 25)),
            WaitDecision::WaitUntil(t(26_000))
        );
        // Expiry comes first: wait until the expiry.
        assert_eq!(
            decide(t(290_000), &s, deadline(t(290_000), 25)),
            WaitDecision::WaitUntil(t(300_000))
        );
        // At expiry: answer (expired).
        assert_eq!(decide(t(300_000), &s, t(310_000)), WaitDecision::AnswerNow);
        // Deadline reached: answer (pending).
        assert_eq!(decide(t(26_000), &s, t(26_000)), WaitDecision::AnswerNow);
        // wait=0: answer at once.
        assert_eq!(decide(t(5), &s, deadline(t(5), 0)), WaitDecision::AnswerNow);
        // Completed: answer at once.
        let Ok(crate::session::Completion::Applied(done)) = s.complete(t(10), "1", "2", None)
        else {
            panic!()
        };
        assert_eq!(decide(t(11), &done, t(26_000)), WaitDecision::AnswerNow);
    }
}
