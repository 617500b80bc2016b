//! The session state machine: pending → completed | expired | cancelled.
//!
//! A [`Session`] is the stored record. Transitions borrow it with the caller's
//! `now` and return the next record, or an error that says why not; they never
//! panic. Expiry needs no writer: a pending session read at or after
//! `expires_at` *is* expired ([`Session::status_at`], [`Session::settled`]).

use serde::{Deserialize, Serialize};

use crate::id::{Pid, SessionId};
use crate::link::{LinkOutcome, link_outcome};
use crate::time::Timestamp;
use crate::wire::{SessionView, Status, VerificationResult};

/// Default session lifetime: 5 minutes.
pub const DEFAULT_TTL_SECS: u64 = 300;

/// A pending session: waiting for the user at `verifyUrl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {}

/// A completed session and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    /// When the completion was recorded.
    pub completed_at: Timestamp,
    /// What the integrator receives.
    pub result: VerificationResult,
}

/// A session that reached `expires_at` while pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expired {
    /// Equal to the session's `expires_at`.
    pub expired_at: Timestamp,
}

/// A session its integrator cancelled while pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancelled {
    /// When the cancel was recorded.
    pub cancelled_at: Timestamp,
}

/// Where a session stands, with the data of that state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum State {
    /// See [`Pending`].
    Pending(Pending),
    /// See [`Completed`].
    Completed(Completed),
    /// See [`Expired`].
    Expired(Expired),
    /// See [`Cancelled`].
    Cancelled(Cancelled),
}

/// A verification session as stores keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Its id.
    pub sid: SessionId,
    /// The tenant it belongs to.
    pub pid: Pid,
    /// The integrator's own user id.
    pub client_id: String,
    /// Optional guild context.
    pub guild_id: Option<String>,
    /// The only Discord account that may complete it through the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_discord_id: Option<String>,
    /// How the integrator names the user, shown on the verify page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_label: Option<String>,
    /// Where the verify pages send the user back when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops accepting completion.
    pub expires_at: Timestamp,
    /// Its state.
    #[serde(flatten)]
    pub state: State,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The session expired before the transition.
    #[error("the session expired at {expired_at}")]
    Expired {
        /// Its `expires_at`.
        expired_at: Timestamp,
    },
    /// The session was cancelled.
    #[error("the session was cancelled")]
    Cancelled,
    /// The session already completed (cancel after completion).
    #[error("the session is already completed")]
    AlreadyCompleted,
    /// The session completed with a different Discord/Roblox pair.
    #[error("the session already completed with a different result")]
    CompletionConflict,
}

/// What completing a session did.
#[allow(
    clippy::large_enum_variant,
    reason = "a transient return value, matched at once; boxing would allocate on every call"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The session was pending: here is the completed record to store, and the
    /// link the PID's dataset must now hold (discord → roblox).
    Applied(Session),
    /// The session already completed with this same result: nothing to store.
    AlreadyCompleted,
}

/// What a create request should do, given the live session for the same
/// (pid, clientId, guildId), if any.
#[allow(
    clippy::large_enum_variant,
    reason = "a transient return value, matched at once; boxing would allocate on every call"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateDecision {
    /// Return this pending session with `reusedExisting: true`, unchanged:
    /// reuse does **not** extend `expiresAt` (a session's lifetime is fixed when
    /// it is created, so a retrying integrator cannot keep a flow open forever).
    Reuse(Session),
    /// Create a new session.
    CreateNew,
}

impl Session {
    /// A new pending session that expires `ttl_secs` after `now`.
    pub fn new(
        sid: SessionId,
        pid: Pid,
        client_id: String,
        guild_id: Option<String>,
        now: Timestamp,
        ttl_secs: u64,
    ) -> Self {
        Session {
            sid,
            pid,
            client_id,
            guild_id,
            expected_discord_id: None,
            display_label: None,
            return_url: None,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
            state: State::Pending(Pending {}),
        }
    }

    /// The same session, bound to one Discord account and/or labelled for
    /// the verify page (the create body's optional fields).
    pub fn bound_to(
        mut self,
        expected_discord_id: Option<String>,
        display_label: Option<String>,
    ) -> Self {
        self.expected_discord_id = expected_discord_id;
        self.display_label = display_label;
        self
    }

    /// The same session, sending the user back to `return_url` when it ends.
    pub fn returning_to(mut self, return_url: Option<String>) -> Self {
        self.return_url = return_url;
        self
    }

    /// Whether the Discord account `discord_id` may complete this session
    /// (any account unless the create named one).
    pub fn accepts_discord(&self, discord_id: &str) -> bool {
        self.expected_discord_id
            .as_deref()
            .is_none_or(|expected| expected == discord_id)
    }

    // ---- getters -------------------------------------------------------

    /// The status as stored, without applying expiry.
    pub fn stored_status(&self) -> Status {
        match self.state {
            State::Pending(_) => Status::Pending,
            State::Completed(_) => Status::Completed,
            State::Expired(_) => Status::Expired,
            State::Cancelled(_) => Status::Cancelled,
        }
    }

    /// The status at `now`: a pending session at or past `expires_at` is expired.
    pub fn status_at(&self, now: Timestamp) -> Status {
        match self.state {
            State::Pending(_) if now >= self.expires_at => Status::Expired,
            _ => self.stored_status(),
        }
    }

    /// Whether the session is pending at `now` (not expired, completed or cancelled).
    pub fn is_pending_at(&self, now: Timestamp) -> bool {
        self.status_at(now) == Status::Pending
    }

    /// The completed result, if any.
    pub fn result(&self) -> Option<&VerificationResult> {
        match &self.state {
            State::Completed(c) => Some(&c.result),
            _ => None,
        }
    }

    /// The record with expiry applied: what a reader at `now` sees.
    pub fn settled(&self, now: Timestamp) -> Session {
        let mut s = self.clone();
        if matches!(s.state, State::Pending(_)) && now >= s.expires_at {
            s.state = State::Expired(Expired {
                expired_at: s.expires_at,
            });
        }
        s
    }

    /// The public view at `now` (the `data` of GET and the SSE event payload).
    pub fn view_at(&self, now: Timestamp) -> SessionView {
        SessionView {
            sid: self.sid.clone(),
            pid: self.pid.clone(),
            client_id: self.client_id.clone(),
            guild_id: self.guild_id.clone(),
            status: self.status_at(now),
            expires_at: self.expires_at,
            result: self.result().cloned(),
            expected_discord_id: self.expected_discord_id.clone(),
            display_label: self.display_label.clone(),
            return_url: self.return_url.clone(),
        }
    }

    // ---- transitions (take `now`) ---------------------------------------

    /// Completes the session with the verified ids.
    ///
    /// `previous_roblox_id` is the Roblox id the PID's link dataset held for
    /// this Discord user before this completion (read together with the
    /// session, in the same atomic step). Legal only while pending and before
    /// `expires_at`; repeating the same ids after completion is idempotent.
    pub fn complete(
        &self,
        now: Timestamp,
        discord_id: &str,
        roblox_id: &str,
        previous_roblox_id: Option<&str>,
    ) -> Result<Completion, TransitionError> {
        match &self.state {
            State::Completed(c) => {
                if c.result.discord_id == discord_id && c.result.roblox_id == roblox_id {
                    Ok(Completion::AlreadyCompleted)
                } else {
                    Err(TransitionError::CompletionConflict)
                }
            }
            State::Cancelled(_) => Err(TransitionError::Cancelled),
            State::Expired(e) => Err(TransitionError::Expired {
                expired_at: e.expired_at,
            }),
            State::Pending(_) if now >= self.expires_at => Err(TransitionError::Expired {
                expired_at: self.expires_at,
            }),
            State::Pending(_) => {
                let LinkOutcome {
                    link_changed,
                    previous_roblox_id,
                } = link_outcome(previous_roblox_id, roblox_id);
                let mut next = self.clone();
                next.state = State::Completed(Completed {
                    completed_at: now,
                    result: VerificationResult {
                        discord_id: discord_id.to_owned(),
                        roblox_id: roblox_id.to_owned(),
                        link_changed,
                        previous_roblox_id,
                    },
                });
                Ok(Completion::Applied(next))
            }
        }
    }

    /// Cancels the session. Legal only while pending and before `expires_at`.
    pub fn cancel(&self, now: Timestamp) -> Result<Session, TransitionError> {
        match &self.state {
            State::Completed(_) => Err(TransitionError::AlreadyCompleted),
            State::Cancelled(_) => Err(TransitionError::Cancelled),
            State::Expired(e) => Err(TransitionError::Expired {
                expired_at: e.expired_at,
            }),
            State::Pending(_) if now >= self.expires_at => Err(TransitionError::Expired {
                expired_at: self.expires_at,
            }),
            State::Pending(_) => {
                let mut next = self.clone();
                next.state = State::Cancelled(Cancelled { cancelled_at: now });
                Ok(next)
            }
        }
    }

    // ---- outputs -------------------------------------------------------

    /// The next instant at which this session changes by itself (its expiry),
    /// or `None` once it is terminal at `now`.
    pub fn next_deadline(&self, now: Timestamp) -> Option<Timestamp> {
        self.is_pending_at(now).then_some(self.expires_at)
    }
}

/// Decides a create: reuse the live session for the same (pid, clientId,
/// guildId) if it is still pending at `now`, else create a new one.
pub fn decide_create(existing: Option<&Session>, now: Timestamp) -> CreateDecision {
    match existing {
        Some(s) if s.is_pending_at(now) => CreateDecision::Reuse(s.clone()),
        _ => CreateDecision::CreateNew,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn pending_at(now: u64) -> Session {
        Session::new(
            SessionId::from_entropy([1; 16]),
            Pid::parse("pid-yourapp").unwrap(),
            "user_123".into(),
            None,
            t(now),
            DEFAULT_TTL_SECS,
        )
    }

    fn applied(c: Completion) -> Session {
        match c {
            Completion::Applied(s) => s,
            Completion::AlreadyCompleted => panic!("expected Applied"),
        }
    }

    #[test]
    fn lifetime_is_five_minutes() {
        let s = pending_at(1_000);
        assert_eq!(s.expires_at, t(301_000));
        assert_eq!(s.status_at(t(300_999)), Status::Pending);
        assert_eq!(s.status_at(t(301_000)), Status::Expired);
        assert_eq!(s.next_deadline(t(0)), Some(t(301_000)));
        assert_eq!(s.next_deadline(t(301_000)), None);
    }

    #[test]
    fn complete_while_pending() {
        let s = pending_at(0);
        let done = applied(s.complete(t(10), "111", "222", None).unwrap());
        assert_eq!(done.status_at(t(10)), Status::Completed);
        // A completed session stays completed after expires_at.
        assert_eq!(done.status_at(t(1_000_000)), Status::Completed);
        let r = done.result().unwrap();
        assert_eq!(
            (r.discord_id.as_str(), r.roblox_id.as_str()),
            ("111", "222")
        );
        assert!(!r.link_changed);
        assert_eq!(r.previous_roblox_id, None);
    }

    #[test]
    fn complete_reports_link_change() {
        let s = pending_at(0);
        let done = applied(s.complete(t(10), "111", "333", Some("222")).unwrap());
        let r = done.result().unwrap();
        assert!(r.link_changed);
        assert_eq!(r.previous_roblox_id.as_deref(), Some("222"));
    }

    #[test]
    fn complete_is_idempotent_for_the_same_result_only() {
        let done = applied(pending_at(0).complete(t(10), "111", "222", None).unwrap());
        assert_eq!(
            done.complete(t(20), "111", "222", None),
            Ok(Completion::AlreadyCompleted)
        );
        // ...even after expires_at.
        assert_eq!(
            done.complete(t(999_999), "111", "222", Some("x")),
            Ok(Completion::AlreadyCompleted)
        );
        assert_eq!(
            done.complete(t(20), "111", "999", None),
            Err(TransitionError::CompletionConflict)
        );
        assert_eq!(
            done.complete(t(20), "999", "222", None),
            Err(TransitionError::CompletionConflict)
        );
    }

    #[test]
    fn complete_refused_after_expiry_even_if_unmarked() {
        let s = pending_at(0);
        assert_eq!(
            s.complete(t(300_000), "1", "2", None),
            Err(TransitionError::Expired {
                expired_at: t(300_000)
            })
        );
        let marked = s.settled(t(300_000));
        assert_eq!(marked.stored_status(), Status::Expired);
        assert_eq!(
            marked.complete(t(1), "1", "2", None),
            Err(TransitionError::Expired {
                expired_at: t(300_000)
            })
        );
    }

    #[test]
    fn cancel_rules() {
        let s = pending_at(0);
        let c = s.cancel(t(5)).unwrap();
        assert_eq!(c.status_at(t(5)), Status::Cancelled);
        assert_eq!(c.status_at(t(999_999)), Status::Cancelled);
        assert_eq!(c.cancel(t(6)), Err(TransitionError::Cancelled));
        assert_eq!(
            c.complete(t(6), "1", "2", None),
            Err(TransitionError::Cancelled)
        );
        let done = applied(s.complete(t(5), "1", "2", None).unwrap());
        assert_eq!(done.cancel(t(6)), Err(TransitionError::AlreadyCompleted));
        assert_eq!(
            s.cancel(t(300_000)),
            Err(TransitionError::Expired {
                expired_at: t(300_000)
            })
        );
    }

    #[test]
    fn reuse_only_while_pending_and_keeps_expiry() {
        let s = pending_at(0);
        assert_eq!(decide_create(None, t(0)), CreateDecision::CreateNew);
        match decide_create(Some(&s), t(299_999)) {
            CreateDecision::Reuse(r) => assert_eq!(r.expires_at, s.expires_at),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide_create(Some(&s), t(300_000)),
            CreateDecision::CreateNew
        );
        let c = s.cancel(t(1)).unwrap();
        assert_eq!(decide_create(Some(&c), t(2)), CreateDecision::CreateNew);
    }

    #[test]
    fn stored_record_roundtrips() {
        let s = pending_at(0);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""status":"pending""#), "{json}");
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
        let done = applied(s.complete(t(7), "1", "2", Some("3")).unwrap());
        let json = serde_json::to_string(&done).unwrap();
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), done);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Complete {
            at: u64,
            discord: u8,
            roblox: u8,
            prev: Option<u8>,
        },
        Cancel {
            at: u64,
        },
        Read {
            at: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..400_000, 0u8..3, 0u8..3, proptest::option::of(0u8..3)).prop_map(
                |(at, discord, roblox, prev)| Op::Complete {
                    at,
                    discord,
                    roblox,
                    prev
                }
            ),
            (0u64..400_000).prop_map(|at| Op::Cancel { at }),
            (0u64..400_000).prop_map(|at| Op::Read { at }),
        ]
    }

    proptest! {
        /// Invariants under any sequence of operations at any times:
        /// once terminal, a session never changes status or result; it
        /// completes at most once; nothing completes at or after expires_at;
        /// previousRobloxId is set exactly when linkChanged.
        #[test]
        fn state_machine_invariants(ops in proptest::collection::vec(op(), 1..30)) {
            let mut s = pending_at(0);
            let mut terminal: Option<(Status, Option<VerificationResult>)> = None;
            for op in ops {
                match op {
                    Op::Complete { at, discord, roblox, prev } => {
                        let prev = prev.map(|p| p.to_string());
                        match s.complete(t(at), &discord.to_string(), &roblox.to_string(), prev.as_deref()) {
                            Ok(Completion::Applied(next)) => {
                                prop_assert!(terminal.is_none());
                                prop_assert!(t(at) < s.expires_at);
                                let r = next.result().unwrap();
                                prop_assert_eq!(r.link_changed, r.previous_roblox_id.is_some());
                                s = next;
                            }
                            Ok(Completion::AlreadyCompleted) => {
                                prop_assert_eq!(s.stored_status(), Status::Completed);
                            }
                            Err(_) => {}
                        }
                    }
                    Op::Cancel { at } => {
                        if let Ok(next) = s.cancel(t(at)) {
                            prop_assert!(terminal.is_none());
                            prop_assert!(t(at) < s.expires_at);
                            s = next;
                        }
                    }
                    Op::Read { at } => {
                        let v = s.view_at(t(at));
                        prop_assert_eq!(v.result.is_some(), v.status == Status::Completed);
                        if t(at) >= s.expires_at {
                            prop_assert_ne!(v.status, Status::Pending);
                        }
                    }
                }
                let now_terminal = s.stored_status() != Status::Pending;
                match &terminal {
                    Some((status, result)) => {
                        prop_assert_eq!(*status, s.stored_status());
                        prop_assert_eq!(result.as_ref(), s.result());
                    }
                    None if now_terminal => {
                        terminal = Some((s.stored_status(), s.result().cloned()));
                    }
                    None => {}
                }
            }
        }
    }
}
