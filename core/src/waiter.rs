//! Every timing decision of one long-poll or one SSE stream, as a sans-I/O
//! state machine (in the manner of quinn-proto's `Connection`).
//!
//! **Contract:** a [`Waiter`] reads no clock, does no I/O and never panics.
//! The driver (the Spin handler) feeds it what happened through `handle_*`
//! (each with the `now` it read), and asks it what to do through
//! [`Waiter::poll_output`] and when to wake through [`Waiter::poll_timeout`].
//! The driver never computes an instant itself: every deadline it passes to
//! the store (a read's `until`, a lease's end) comes out of an [`Output`].
//!
//! The driver loop, the same for both modes:
//!
//! ```text
//! loop {
//!     while let Some(out) = waiter.poll_output(now()) {
//!         perform(out) // answering each request at once with its handle_*
//!     }
//!     if waiter.is_done() { break }
//!     select(armed_read, sleep_until(waiter.poll_timeout())) -> handle_read_done(..)
//! }
//! ```
//!
//! **Requests** ([`Output::ReadState`], [`Output::AcquireLease`],
//! [`Output::RenewLease`], [`Output::CheckKey`]) each expect one answer
//! ([`Waiter::handle_state`], [`Waiter::handle_lease`],
//! [`Waiter::handle_key`], or [`Waiter::handle_store_failed`] when the store
//! failed). While one is unanswered, `poll_output` gives nothing new and
//! `poll_timeout` is `None`. An answer nobody asked for is ignored.
//!
//! **The read** ([`Output::ArmRead`]) is the one blocking read of the
//! session's change feed; the store ends it by itself at its `until` at the
//! latest. At most one is armed at a time, and it stays armed across
//! heartbeats and lease renewals until [`Waiter::handle_read_done`] reports
//! that it returned. `poll_timeout` covers only the waiter's own timers
//! (heartbeat, renewal, maximum duration), never the read's `until`.
//!
//! **Long-poll** ([`Waiter::long_poll`]): read the session; answer at once if
//! [`longpoll::decide`] says so; otherwise take a waiter lease (once, until
//! the deadline plus [`LEASE_GRACE_SECS`]) and arm a read until the earlier of
//! the decided instant and the next key check. A read that returns without a
//! state at or after `key_checked + heartbeat_secs` first asks to check the
//! API key (revoked: [`EndReason::Unauthorized`]); then the session is read
//! again (or the state the wake-up carried is used) and decided again.
//! `poll_timeout` is always `None`: the driver may await the read inline.
//!
//! **Stream** ([`Waiter::stream`]): before the response, read the session
//! (none: [`EndReason::NotFound`]), take a lease until `now + heartbeat_secs +
//! LEASE_GRACE_SECS`, check the key again (a revocation between the key
//! lookup and the lease would leave the lease behind), then
//! [`Output::Open`]. From then on every state fed in is stepped through the
//! [`StreamCursor`]: unseen events are written, the terminal one ends the
//! stream ([`EndReason::Delivered`], no hint). Between states one read is
//! armed until the earlier of the session's expiry and the stream's maximum
//! duration. Every `heartbeat_secs` without a write, a heartbeat comment;
//! every `heartbeat_secs` since the last renewal, a lease renewal until
//! `now + heartbeat_secs + LEASE_GRACE_SECS` (a lease that is gone writes a
//! `retry:` hint and ends: a revoked key's reconnect is a `401`); at
//! `stream_max_secs`, a `retry:` hint and the end. A read that returns
//! without a state asks for a re-read; a re-read that finds no session ends
//! the stream without a hint. A failed write ends it ([`EndReason::ClientGone`]).
//!
//! **Pushed revocation** ([`Waiter::revocation_pushed`]): where the store
//! wakes a revoked key's reads itself (Redis), the renewal and key-check
//! interval above becomes [`PUSHED_RENEW_SECS`] instead of `heartbeat_secs`
//! (a held stream costs the store one renewal a minute), and a read that
//! returns before its `until` without a state is confirmed before the
//! session is read again: a stream renews its lease, a long-poll checks
//! its key.

use std::collections::VecDeque;

use crate::id::SessionId;
use crate::longpoll::{self, WaitDecision};
use crate::session::Session;
use crate::stream::{DEFAULT_RETRY_MS, StreamCursor, heartbeat_frame, reconnect_hint};
use crate::time::Timestamp;
use crate::wire::SessionView;

/// How far a waiter's lease reaches past its next planned renewal (stream)
/// or past its deadline (long-poll): an instance that dies without releasing
/// frees its slot after this.
pub const LEASE_GRACE_SECS: u64 = 30;

/// How often a waiter whose store pushes revocations
/// ([`Waiter::revocation_pushed`]) renews its lease (stream) or checks its
/// key (long-poll): once a minute, or once a heartbeat if that is longer.
pub const PUSHED_RENEW_SECS: u64 = 60;

/// A new waiter's id: the session it waits on, a dot, a random token. A
/// store that pushes revocations ([`Waiter::revocation_pushed`]) finds the
/// sessions a revoked key's waiters wait on from these ids.
pub fn waiter_id(sid: &SessionId, entropy: [u8; 32]) -> String {
    format!("{sid}.{}", crate::oauth::token(entropy))
}

/// What the driver does next, in the order [`Waiter::poll_output`] gives them.
#[allow(
    clippy::large_enum_variant,
    reason = "a transient value, performed at once; boxing the view would allocate on every answer"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Request: read the session and its cursor now; answer with
    /// [`Waiter::handle_state`] (`None` when the store has no such session).
    ReadState,
    /// Arm the one blocking read of the change feed, from the latest cursor,
    /// until `until`; report its return with [`Waiter::handle_read_done`].
    ArmRead {
        /// When the read must return at the latest.
        until: Timestamp,
    },
    /// Request: take one of the key's waiter slots until `until`; answer with
    /// [`Waiter::handle_lease`] (`false` when all slots are taken).
    AcquireLease {
        /// The lease's end.
        until: Timestamp,
    },
    /// Request: extend the lease taken earlier to `until`; answer with
    /// [`Waiter::handle_lease`] (`false` when the lease is gone).
    RenewLease {
        /// The lease's new end.
        until: Timestamp,
    },
    /// Request: look the caller's API key up again; answer with
    /// [`Waiter::handle_key`].
    CheckKey,
    /// Stream only: send the `200 text/event-stream` head now; every later
    /// [`Output::Write`] goes to its body.
    Open,
    /// Stream only: write these SSE bytes (events, a heartbeat comment, or a
    /// `retry:` hint); report a failed write with [`Waiter::handle_write_failed`].
    Write(String),
    /// Long-poll only: answer `200` with this view, the envelope stamped
    /// `at` (the instant it was decided); then [`Output::End`].
    Answer {
        /// The session as the client sees it at `at`.
        view: SessionView,
        /// The envelope's timestamp.
        at: Timestamp,
    },
    /// The end: release the lease if one was taken and stop. Always the last output.
    End(EndReason),
}

/// Why a waiter ended. Before [`Output::Open`] (and in a long-poll) the
/// refusals are the HTTP answer; after it they only say why the body closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Long-poll: the [`Output::Answer`] before it is the answer.
    Answered,
    /// Stream: the terminal event is written (or the client had seen it).
    Delivered,
    /// Stream: `stream_max_secs` passed; a `retry:` hint was written.
    MaxDuration,
    /// Stream: a renewal found the lease gone (key revoked?); a `retry:` hint was written.
    LeaseGone,
    /// A write failed: the client left.
    ClientGone,
    /// The driver reported a store failure (it logs the cause).
    StoreFailed,
    /// A read found no session (`404` before the stream opened and in a long-poll).
    NotFound,
    /// The API key is no longer valid (`401`).
    Unauthorized,
    /// Every waiter slot of the key is taken (`429`).
    TooManyWaiters,
}

impl EndReason {
    /// Whether a `retry:` hint was the last write before this end.
    pub fn wrote_hint(self) -> bool {
        matches!(self, EndReason::MaxDuration | EndReason::LeaseGone)
    }
}

/// Which lease request is unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseAsk {
    Acquire,
    Renew,
    /// A renewal asked because the read returned early without a state
    /// (a pushed revocation notice?): granted, the session is read again.
    Confirm,
}

/// The requests that await their answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Asked {
    state: bool,
    lease: Option<LeaseAsk>,
    key: bool,
}

impl Asked {
    fn any(self) -> bool {
        self.state || self.lease.is_some() || self.key
    }
}

/// A long-poll's own data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LongPoll {
    /// When it answers with whatever it has.
    deadline: Timestamp,
    /// When the key was last known valid (the start, then each check).
    key_checked: Timestamp,
    /// Whether the lease has been granted.
    leased: bool,
    /// The wait decided while the lease was being acquired.
    wait_until: Option<Timestamp>,
    /// When the empty read that asked for a key check returned.
    emptied_at: Timestamp,
}

/// An open stream's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timers {
    /// The last write (any frame resets the heartbeat).
    last_write: Timestamp,
    /// The last lease renewal (or the opening).
    renewed: Timestamp,
    /// When `stream_max_secs` passes (`None`: no maximum).
    ends_at: Option<Timestamp>,
}

/// Where a stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StreamPhase {
    /// Before the response: the first read, the lease, the key check.
    Opening,
    /// The body is open.
    Open(Timers),
}

/// A stream's own data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stream {
    seen: StreamCursor,
    max_secs: u64,
    phase: StreamPhase,
}

/// The two kinds of waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    LongPoll(LongPoll),
    Stream(Stream),
}

/// The timing of one long-poll or one SSE stream: what to do, and when to
/// wake next. See the [module docs](self) for the rules and the driver loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    /// The heartbeat interval, ≥ 1.
    heartbeat_secs: u64,
    /// The lease-renewal (stream) and key-check (long-poll) interval: the
    /// heartbeat, or [`PUSHED_RENEW_SECS`] when revocations are pushed.
    renew_secs: u64,
    /// Whether the store wakes the read when the key is revoked.
    pushed: bool,
    mode: Mode,
    /// Outputs decided by events, given before any timer's.
    queue: VecDeque<Output>,
    /// A stream's first state, read before it opens; stepped at the open.
    held: Option<Session>,
    asked: Asked,
    /// The armed read's `until`.
    read: Option<Timestamp>,
    /// A read to arm once nothing else is due.
    to_arm: Option<Timestamp>,
    /// Set once the end is decided (its [`Output::End`] is queued).
    end: Option<EndReason>,
    /// Set once [`Output::End`] has been given.
    done: bool,
}

impl Waiter {
    fn new(heartbeat_secs: u64, mode: Mode) -> Self {
        Waiter {
            heartbeat_secs: heartbeat_secs.max(1),
            renew_secs: heartbeat_secs.max(1),
            pushed: false,
            mode,
            queue: VecDeque::from([Output::ReadState]),
            held: None,
            asked: Asked {
                state: true,
                ..Asked::default()
            },
            read: None,
            to_arm: None,
            end: None,
            done: false,
        }
    }

    /// A long-poll that started at `now` and answers by `deadline` (from
    /// [`longpoll::deadline`]); its key was checked at `now` and is checked
    /// again every `heartbeat_secs` (at least 1). Its first output is
    /// [`Output::ReadState`].
    pub fn long_poll(now: Timestamp, deadline: Timestamp, heartbeat_secs: u64) -> Self {
        Waiter::new(
            heartbeat_secs,
            Mode::LongPoll(LongPoll {
                deadline,
                key_checked: now,
                leased: false,
                wait_until: None,
                emptied_at: now,
            }),
        )
    }

    /// An SSE stream for a client that has seen `seen` (from
    /// [`StreamCursor::resume`] with `Last-Event-ID`); `stream_max_secs == 0`
    /// means no maximum; `heartbeat_secs` (at least 1) is also the renewal
    /// interval. Its timers start at [`Output::Open`]; its first output is
    /// [`Output::ReadState`].
    pub fn stream(heartbeat_secs: u64, stream_max_secs: u64, seen: StreamCursor) -> Self {
        Waiter::new(
            heartbeat_secs,
            Mode::Stream(Stream {
                seen,
                max_secs: stream_max_secs,
                phase: StreamPhase::Opening,
            }),
        )
    }

    /// The store wakes this waiter's armed read when its key is revoked (a
    /// notice without a state on the session's change feed: the Redis
    /// store). Then the lease is renewed (stream) and the key checked
    /// (long-poll) every [`PUSHED_RENEW_SECS`] instead of every heartbeat,
    /// and a read that returns before its `until` without a state is
    /// confirmed first: a stream renews its lease (gone: `retry:` hint,
    /// [`EndReason::LeaseGone`]), a long-poll checks the key (revoked:
    /// [`EndReason::Unauthorized`]). Call it before the first output.
    pub fn revocation_pushed(mut self) -> Self {
        self.pushed = true;
        self.renew_secs = self.heartbeat_secs.max(PUSHED_RENEW_SECS);
        self
    }

    // ---- getters -------------------------------------------------------

    /// True once [`Output::End`] has been given: nothing more will come out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Why it ends, once that is decided (possibly before [`Output::End`] is given).
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end
    }

    /// The `until` of the armed read, if one is armed.
    pub fn read_until(&self) -> Option<Timestamp> {
        self.read
    }

    /// Whether the stream's body is open ([`Output::Open`] was decided).
    pub fn is_open(&self) -> bool {
        matches!(
            self.mode,
            Mode::Stream(Stream {
                phase: StreamPhase::Open(_),
                ..
            })
        )
    }

    // ---- handle_* (events in, each with the driver's `now`) -------------

    /// The answer to [`Output::ReadState`]: the session as read at `now`, or
    /// `None` when the store has none (the waiter ends with
    /// [`EndReason::NotFound`], without a hint).
    pub fn handle_state(&mut self, now: Timestamp, session: Option<Session>) {
        if !self.asked.state || self.end.is_some() {
            return;
        }
        self.asked.state = false;
        match session {
            Some(session) => self.take_state(now, session),
            None => self.finish(EndReason::NotFound),
        }
    }

    /// The armed read returned at `now`: with the session after the change
    /// when the change feed carries it, else `None` (a change without state,
    /// or the read's `until`). Ignored when no read is armed.
    pub fn handle_read_done(&mut self, now: Timestamp, session: Option<Session>) {
        let Some(until) = self.read.take() else {
            return;
        };
        if self.end.is_some() {
            return;
        }
        if let Some(session) = session {
            return self.take_state(now, session);
        }
        let renew_secs = self.renew_secs;
        // Returned early without a state: a pushed revocation notice?
        let early = self.pushed && now < until;
        match &mut self.mode {
            Mode::LongPoll(lp) if early || now >= lp.key_checked.plus_secs(renew_secs) => {
                lp.emptied_at = now;
                self.asked.key = true;
                self.queue.push_back(Output::CheckKey);
            }
            Mode::Stream(Stream {
                phase: StreamPhase::Open(timers),
                ..
            }) if early => {
                timers.renewed = now;
                self.asked.lease = Some(LeaseAsk::Confirm);
                self.queue.push_back(Output::RenewLease {
                    until: lease_end(now, renew_secs),
                });
            }
            _ => self.ask_state(),
        }
    }

    /// The answer to [`Output::AcquireLease`] or [`Output::RenewLease`]:
    /// whether the store granted it. A refused acquisition ends with
    /// [`EndReason::TooManyWaiters`]; a refused renewal writes a `retry:`
    /// hint and ends with [`EndReason::LeaseGone`].
    pub fn handle_lease(&mut self, granted: bool) {
        let Some(kind) = self.asked.lease.take() else {
            return;
        };
        if self.end.is_some() {
            return;
        }
        match (kind, granted) {
            (LeaseAsk::Acquire, false) => self.finish(EndReason::TooManyWaiters),
            (LeaseAsk::Renew | LeaseAsk::Confirm, false) => {
                self.finish_with_hint(EndReason::LeaseGone)
            }
            (LeaseAsk::Renew, true) => {}
            (LeaseAsk::Confirm, true) => self.ask_state(),
            (LeaseAsk::Acquire, true) => match &mut self.mode {
                Mode::LongPoll(lp) => {
                    lp.leased = true;
                    if let Some(until) = lp.wait_until.take() {
                        self.to_arm = Some(until.min(lp.key_checked.plus_secs(self.renew_secs)));
                    }
                }
                Mode::Stream(_) => {
                    self.asked.key = true;
                    self.queue.push_back(Output::CheckKey);
                }
            },
        }
    }

    /// The answer to [`Output::CheckKey`]: whether the caller's key is still
    /// valid at `now`. Invalid ends with [`EndReason::Unauthorized`]. Valid:
    /// a long-poll counts the key as checked when the read that asked for
    /// the check returned, and reads again; a stream opens at `now`.
    pub fn handle_key(&mut self, now: Timestamp, valid: bool) {
        if !self.asked.key || self.end.is_some() {
            return;
        }
        self.asked.key = false;
        if !valid {
            return self.finish(EndReason::Unauthorized);
        }
        match &mut self.mode {
            Mode::LongPoll(lp) => {
                lp.key_checked = lp.emptied_at;
                self.ask_state();
            }
            Mode::Stream(st) => {
                if st.phase != StreamPhase::Opening {
                    return;
                }
                st.phase = StreamPhase::Open(Timers {
                    last_write: now,
                    renewed: now,
                    ends_at: (st.max_secs > 0).then(|| now.plus_secs(st.max_secs)),
                });
                self.queue.push_back(Output::Open);
                match self.held.take() {
                    Some(session) => self.take_state(now, session),
                    None => self.ask_state(),
                }
            }
        }
    }

    /// A [`Output::Write`] failed: the client left. Nothing more is written;
    /// the waiter ends with [`EndReason::ClientGone`] (an end already decided
    /// with a hint keeps its reason: the hint was the last write anyway).
    pub fn handle_write_failed(&mut self) {
        if self.done || self.end.is_some_and(EndReason::wrote_hint) {
            return;
        }
        self.queue.clear();
        self.end = None;
        self.finish(EndReason::ClientGone);
    }

    /// A store call failed (the driver logs why): the waiter ends with
    /// [`EndReason::StoreFailed`], without a hint (a stream's client resumes
    /// with `Last-Event-ID`).
    pub fn handle_store_failed(&mut self) {
        if self.done {
            return;
        }
        self.queue.clear();
        self.end = None;
        self.finish(EndReason::StoreFailed);
    }

    // ---- poll_* (outputs) ------------------------------------------------

    /// The next thing to do at `now`, or `None` when nothing is due (then
    /// wait for the armed read or [`Waiter::poll_timeout`]). Call it until
    /// `None` after every event and every wake-up; answer each request
    /// before calling it again.
    pub fn poll_output(&mut self, now: Timestamp) -> Option<Output> {
        if self.done {
            return None;
        }
        if let Some(out) = self.queue.pop_front() {
            self.done = matches!(out, Output::End(_));
            return Some(out);
        }
        if self.end.is_some() || self.asked.any() {
            return None;
        }
        let (heartbeat_secs, renew_secs) = (self.heartbeat_secs, self.renew_secs);
        if let Mode::Stream(Stream {
            phase: StreamPhase::Open(timers),
            ..
        }) = &mut self.mode
        {
            if now >= timers.renewed.plus_secs(renew_secs) {
                timers.renewed = now;
                self.asked.lease = Some(LeaseAsk::Renew);
                return Some(Output::RenewLease {
                    until: lease_end(now, renew_secs),
                });
            }
            if timers.ends_at.is_some_and(|end| now >= end) {
                self.finish_with_hint(EndReason::MaxDuration);
                return self.poll_output(now);
            }
            if now >= timers.last_write.plus_secs(heartbeat_secs) {
                timers.last_write = now;
                return Some(Output::Write(heartbeat_frame().to_owned()));
            }
        }
        if self.read.is_none()
            && let Some(until) = self.to_arm.take()
        {
            self.read = Some(until);
            return Some(Output::ArmRead { until });
        }
        None
    }

    /// When [`Waiter::poll_output`] will next have something to do by the
    /// passage of time alone: the next heartbeat, renewal or maximum
    /// duration of an open stream. `None` when only an event can move it
    /// (a long-poll's armed read, an unanswered request) or it is done. An
    /// instant at or before `now` means: poll again now.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.done {
            return None;
        }
        if !self.queue.is_empty() || (self.read.is_none() && self.to_arm.is_some()) {
            return Some(Timestamp::default());
        }
        if self.end.is_some() || self.asked.any() {
            return None;
        }
        match &self.mode {
            Mode::Stream(Stream {
                phase: StreamPhase::Open(timers),
                ..
            }) => {
                let beat = timers.last_write.plus_secs(self.heartbeat_secs);
                let renew = timers.renewed.plus_secs(self.renew_secs);
                let due = beat.min(renew);
                Some(timers.ends_at.map_or(due, |end| end.min(due)))
            }
            _ => None,
        }
    }

    // ---- internals -------------------------------------------------------

    /// A state fed in (read, or carried by a wake-up) at `now`.
    fn take_state(&mut self, now: Timestamp, session: Session) {
        let (heartbeat_secs, renew_secs) = (self.heartbeat_secs, self.renew_secs);
        match &mut self.mode {
            Mode::LongPoll(lp) => match longpoll::decide(now, &session, lp.deadline) {
                WaitDecision::AnswerNow => {
                    self.queue.push_back(Output::Answer {
                        view: session.view_at(now),
                        at: now,
                    });
                    self.finish(EndReason::Answered);
                }
                WaitDecision::WaitUntil(until) if lp.leased => {
                    self.to_arm = Some(until.min(lp.key_checked.plus_secs(renew_secs)));
                }
                WaitDecision::WaitUntil(until) => {
                    lp.wait_until = Some(until);
                    self.asked.lease = Some(LeaseAsk::Acquire);
                    self.queue.push_back(Output::AcquireLease {
                        until: lp.deadline.plus_secs(LEASE_GRACE_SECS),
                    });
                }
            },
            Mode::Stream(st) => match &mut st.phase {
                StreamPhase::Opening => {
                    self.held = Some(session);
                    self.asked.lease = Some(LeaseAsk::Acquire);
                    self.queue.push_back(Output::AcquireLease {
                        until: lease_end(now, renew_secs),
                    });
                }
                StreamPhase::Open(timers) => {
                    let step = st.seen.step(&session.view_at(now));
                    if !step.frames.is_empty() {
                        timers.last_write = now;
                        self.queue.push_back(Output::Write(step.frames));
                    }
                    if step.done {
                        return self.finish(EndReason::Delivered);
                    }
                    self.to_arm = Some(
                        [session.next_deadline(now), timers.ends_at]
                            .into_iter()
                            .flatten()
                            .min()
                            .unwrap_or_else(|| now.plus_secs(heartbeat_secs)),
                    );
                }
            },
        }
    }

    /// Queues a read of the session.
    fn ask_state(&mut self) {
        self.asked.state = true;
        self.queue.push_back(Output::ReadState);
    }

    /// Decides the end: no new request, read or timer; [`Output::End`] after
    /// what is queued.
    fn finish(&mut self, reason: EndReason) {
        if self.end.is_some() {
            return;
        }
        self.end = Some(reason);
        self.asked = Asked::default();
        self.read = None;
        self.to_arm = None;
        self.queue.push_back(Output::End(reason));
    }

    /// Writes a `retry:` hint, then ends.
    fn finish_with_hint(&mut self, reason: EndReason) {
        if self.end.is_some() {
            return;
        }
        self.queue
            .push_back(Output::Write(reconnect_hint(DEFAULT_RETRY_MS)));
        self.finish(reason);
    }
}

/// A stream lease reaches past the next renewal by the grace.
fn lease_end(now: Timestamp, renew_secs: u64) -> Timestamp {
    now.plus_secs(renew_secs.saturating_add(LEASE_GRACE_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Pid, SessionId};
    use crate::session::Completion;
    use crate::sse::Decoder;
    use crate::wire::Status;
    use proptest::prelude::*;

    /// The simulated clock starts here (ms).
    const T0: u64 = 1_000_000;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// `T0 + secs`, in ms.
    fn at(secs: u64) -> u64 {
        T0 + secs * 1000
    }

    /// A pending session created `age_secs` before `T0`, living `ttl_secs`.
    fn session(age_secs: u64, ttl_secs: u64) -> Session {
        Session::new(
            SessionId::from_entropy([7; 16]),
            Pid::parse("pid-a").unwrap(),
            "user".into(),
            None,
            t(T0 - age_secs * 1000),
            ttl_secs,
        )
    }

    /// Something the outside world does at an instant.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Change {
        /// The user completes the session.
        Complete,
        /// The integrator cancels it.
        Cancel,
        /// A write that does not change its status (a new cursor).
        Touch,
        /// The record disappears.
        Delete,
        /// The key is revoked (its leases go with it).
        RevokeKey,
        /// The lease lapses.
        LeaseLapse,
        /// The client goes away (the next write fails).
        ClientLeaves,
        /// Every later store call fails.
        StoreDown,
    }

    /// One waiter with a fake store, client and clock (quinn's test `Pair`
    /// in spirit): the driver loop of the module docs, where time jumps to
    /// the next due instant and every request is answered at once.
    struct Sim {
        now: u64,
        w: Waiter,
        session: Session,
        exists: bool,
        rev: u64,
        /// The driver's cursor (the revision it last read).
        cursor: u64,
        /// Whether a wake-up carries the state (Redis) or not (SQLite).
        feed_has_state: bool,
        /// Whether revoking the key wakes the read (a notice without a state).
        pushes: bool,
        /// Whether the latest feed entry is such a notice.
        notice: bool,
        key_valid: bool,
        slots_free: bool,
        lease_alive: bool,
        client_here: bool,
        store_up: bool,
        /// The armed read: its `until` and the cursor it reads from.
        read: Option<(u64, u64)>,
        /// Changes to come, sorted by instant.
        changes: Vec<(u64, Change)>,
        /// Instants the driver wakes for no reason (a sleep cut short).
        wakes: Vec<u64>,
        log: Vec<(u64, Output)>,
    }

    impl Sim {
        fn new(w: Waiter, session: Session) -> Self {
            Sim {
                now: T0,
                w,
                session,
                exists: true,
                rev: 1,
                cursor: 0,
                feed_has_state: false,
                pushes: false,
                notice: false,
                key_valid: true,
                slots_free: true,
                lease_alive: true,
                client_here: true,
                store_up: true,
                read: None,
                changes: Vec::new(),
                wakes: Vec::new(),
                log: Vec::new(),
            }
        }

        fn stream(session: Session, hb: u64, max: u64, last_event_id: Option<&str>) -> Self {
            let w = Waiter::stream(hb, max, StreamCursor::resume(last_event_id));
            Sim::new(w, session)
        }

        fn long_poll(session: Session, wait_secs: u32, hb: u64) -> Self {
            let w = Waiter::long_poll(t(T0), longpoll::deadline(t(T0), wait_secs), hb);
            Sim::new(w, session)
        }

        fn with(mut self, changes: &[(u64, Change)]) -> Self {
            self.changes.extend_from_slice(changes);
            self.changes.sort_by_key(|c| c.0);
            self
        }

        fn feed(mut self, has_state: bool) -> Self {
            self.feed_has_state = has_state;
            self
        }

        /// The store pushes revocations (Redis): the waiter knows it.
        fn pushed(mut self) -> Self {
            self.pushes = true;
            self.w = self.w.revocation_pushed();
            self
        }

        fn state(&self) -> Option<Session> {
            self.exists.then(|| self.session.clone())
        }

        /// Performs one output as a driver would.
        fn perform(&mut self, out: Output) {
            let now = t(self.now);
            self.log.push((self.now, out.clone()));
            let up = self.store_up;
            match out {
                Output::ReadState if up => {
                    self.cursor = self.rev;
                    let s = self.state();
                    self.w.handle_state(now, s);
                }
                Output::ArmRead { until } => {
                    assert!(self.read.is_none(), "a second read armed at {}", self.now);
                    assert!(until >= now, "a read armed into the past");
                    self.read = Some((until.as_millis(), self.cursor));
                }
                Output::AcquireLease { .. } if up => self.w.handle_lease(self.slots_free),
                Output::RenewLease { .. } if up => self.w.handle_lease(self.lease_alive),
                Output::CheckKey if up => self.w.handle_key(now, self.key_valid),
                Output::ReadState
                | Output::AcquireLease { .. }
                | Output::RenewLease { .. }
                | Output::CheckKey => self.w.handle_store_failed(),
                Output::Write(_) if !self.client_here => self.w.handle_write_failed(),
                Output::Write(_) | Output::Open | Output::Answer { .. } => {}
                Output::End(_) => assert!(self.w.is_done()),
            }
        }

        fn drain(&mut self) {
            while let Some(out) = self.w.poll_output(t(self.now)) {
                self.perform(out);
            }
        }

        fn apply_changes(&mut self) {
            while let Some(&(when, change)) = self.changes.first() {
                if when > self.now {
                    break;
                }
                self.changes.remove(0);
                let now = t(self.now);
                if !matches!(change, Change::RevokeKey) {
                    self.notice = false;
                }
                match change {
                    Change::Complete => {
                        if let Ok(Completion::Applied(s)) =
                            self.session.complete(now, "1", "2", None)
                        {
                            self.session = s;
                            self.rev += 1;
                        }
                    }
                    Change::Cancel => {
                        if let Ok(s) = self.session.cancel(now) {
                            self.session = s;
                            self.rev += 1;
                        }
                    }
                    Change::Touch => self.rev += 1,
                    Change::Delete => {
                        self.exists = false;
                        self.rev += 1;
                    }
                    Change::RevokeKey => {
                        self.key_valid = false;
                        self.lease_alive = false;
                        if self.pushes {
                            self.rev += 1;
                            self.notice = true;
                        }
                    }
                    Change::LeaseLapse => self.lease_alive = false,
                    Change::ClientLeaves => self.client_here = false,
                    Change::StoreDown => self.store_up = false,
                }
            }
        }

        /// Ends the armed read if it is due: a change after its cursor, a
        /// store failure, or its `until`.
        fn complete_read(&mut self) {
            let Some((until, cursor)) = self.read else {
                return;
            };
            let now = t(self.now);
            if !self.store_up {
                self.read = None;
                self.w.handle_store_failed();
            } else if cursor != self.rev {
                self.read = None;
                let carried = if self.feed_has_state && !self.notice {
                    self.state()
                } else {
                    None
                };
                if carried.is_some() {
                    self.cursor = self.rev;
                }
                self.w.handle_read_done(now, carried);
            } else if self.now >= until {
                self.read = None;
                self.w.handle_read_done(now, None);
            }
        }

        /// Runs the driver loop until the waiter is done or nothing is due
        /// by `limit` (ms), checking the loop's invariants on the way.
        fn run_until(&mut self, limit: u64) {
            for _ in 0..100_000 {
                self.drain();
                if self.w.is_done() {
                    assert_eq!(self.w.poll_output(t(self.now)), None);
                    return;
                }
                let timeout = self.w.poll_timeout().map(Timestamp::as_millis);
                if let Some(x) = timeout {
                    assert!(x > self.now, "timeout {x} not after now {}", self.now);
                }
                assert!(
                    timeout.is_some() || self.read.is_some(),
                    "nothing to wait for at {}",
                    self.now
                );
                let read_at = self.read.map(|(until, cursor)| {
                    if cursor != self.rev || !self.store_up {
                        self.now
                    } else {
                        until
                    }
                });
                let change_at = self.changes.first().map(|c| c.0);
                let wake_at = self.wakes.iter().copied().filter(|&x| x > self.now).min();
                let Some(next) = [timeout, read_at, change_at, wake_at]
                    .into_iter()
                    .flatten()
                    .min()
                else {
                    return;
                };
                if next > limit {
                    return;
                }
                self.now = self.now.max(next);
                self.apply_changes();
                self.complete_read();
            }
            panic!("the driver loop spun without progress");
        }

        fn run(&mut self) {
            self.run_until(u64::MAX);
            assert!(self.w.is_done(), "not done: {:?}", self.log.last());
        }

        /// `(instant, output)` pairs matching `f`.
        fn outputs(&self, f: impl Fn(&Output) -> bool) -> Vec<(u64, Output)> {
            self.log.iter().filter(|(_, o)| f(o)).cloned().collect()
        }

        fn instants(&self, f: impl Fn(&Output) -> bool) -> Vec<u64> {
            self.outputs(f).into_iter().map(|(at, _)| at).collect()
        }

        fn writes(&self) -> Vec<(u64, String)> {
            self.log
                .iter()
                .filter_map(|(at, o)| match o {
                    Output::Write(s) => Some((*at, s.clone())),
                    _ => None,
                })
                .collect()
        }

        fn heartbeats(&self) -> Vec<u64> {
            self.writes()
                .into_iter()
                .filter(|(_, s)| s == heartbeat_frame())
                .map(|(at, _)| at)
                .collect()
        }

        /// Decoded events `(instant, event, id)`.
        fn events(&self) -> Vec<(u64, String, String)> {
            self.writes()
                .into_iter()
                .flat_map(|(at, s)| {
                    Decoder::new()
                        .feed(s.as_bytes())
                        .into_iter()
                        .map(move |e| (at, e.event, e.id))
                })
                .collect()
        }

        fn end(&self) -> Option<(u64, EndReason)> {
            self.log.iter().find_map(|(at, o)| match o {
                Output::End(r) => Some((*at, *r)),
                _ => None,
            })
        }

        fn hinted(&self) -> bool {
            self.writes()
                .last()
                .is_some_and(|(_, s)| *s == reconnect_hint(DEFAULT_RETRY_MS))
        }

        fn answer(&self) -> Option<(u64, Status)> {
            self.log.iter().find_map(|(at, o)| match o {
                Output::Answer { view, at: stamp } => {
                    assert_eq!(stamp.as_millis(), *at);
                    Some((*at, view.status))
                }
                _ => None,
            })
        }
    }

    fn is_arm(o: &Output) -> bool {
        matches!(o, Output::ArmRead { .. })
    }

    fn is_renew(o: &Output) -> bool {
        matches!(o, Output::RenewLease { .. })
    }

    fn is_read(o: &Output) -> bool {
        matches!(o, Output::ReadState)
    }

    fn is_key(o: &Output) -> bool {
        matches!(o, Output::CheckKey)
    }

    fn is_acquire(o: &Output) -> bool {
        matches!(o, Output::AcquireLease { .. })
    }

    fn ev(at: u64, event: &str, id: &str) -> (u64, String, String) {
        (at, event.into(), id.into())
    }

    // ---- stream ------------------------------------------------------------

    #[test]
    fn stream_opens_after_read_lease_and_key_check() {
        let s = session(0, 300);
        let mut w = Waiter::stream(15, 0, StreamCursor::resume(None));
        assert_eq!(w.poll_output(t(T0)), Some(Output::ReadState));
        // An unanswered request: nothing else, no timer.
        assert_eq!(w.poll_output(t(T0)), None);
        assert_eq!(w.poll_timeout(), None);
        w.handle_state(t(T0), Some(s.clone()));
        assert_eq!(
            w.poll_output(t(T0)),
            Some(Output::AcquireLease {
                until: t(at(15 + 30))
            })
        );
        w.handle_lease(true);
        assert_eq!(w.poll_output(t(T0)), Some(Output::CheckKey));
        assert!(!w.is_open());
        let open = T0 + 10;
        w.handle_key(t(open), true);
        assert!(w.is_open());
        assert_eq!(w.poll_output(t(open)), Some(Output::Open));
        let Some(Output::Write(frames)) = w.poll_output(t(open)) else {
            panic!("expected the pending event");
        };
        assert_eq!(
            frames,
            StreamCursor::resume(None).step(&s.view_at(t(open))).frames
        );
        assert_eq!(
            w.poll_output(t(open)),
            Some(Output::ArmRead {
                until: s.expires_at
            })
        );
        assert_eq!(w.read_until(), Some(s.expires_at));
        assert_eq!(w.poll_output(t(open)), None);
        assert_eq!(w.poll_timeout(), Some(t(open + 15_000)));
        assert!(!w.is_done());
    }

    #[test]
    fn stream_refusals_end_before_it_opens() {
        type Setup = fn(&mut Sim);
        let cases: [(Setup, EndReason); 3] = [
            (|s| s.exists = false, EndReason::NotFound),
            (|s| s.slots_free = false, EndReason::TooManyWaiters),
            (|s| s.key_valid = false, EndReason::Unauthorized),
        ];
        for (setup, reason) in cases {
            let mut sim = Sim::stream(session(0, 300), 15, 0, None);
            setup(&mut sim);
            sim.run();
            assert_eq!(sim.end(), Some((T0, reason)));
            assert!(
                sim.outputs(|o| matches!(o, Output::Open | Output::Write(_)))
                    .is_empty()
            );
        }
    }

    #[test]
    fn stream_heartbeat_cadence_and_reset_on_write() {
        // The key check answers 3 s late: the stream opens (and writes its
        // pending event) at +3 s, so the heartbeats count from there.
        let mut w = Waiter::stream(15, 0, StreamCursor::resume(None));
        let _ = w.poll_output(t(T0));
        w.handle_state(t(T0), Some(session(0, 300)));
        let _ = w.poll_output(t(T0));
        w.handle_lease(true);
        let _ = w.poll_output(t(T0));
        let mut sim = Sim::new(w, session(0, 300));
        sim.cursor = sim.rev;
        sim.now = at(3);
        sim.w.handle_key(t(sim.now), true);
        sim.wakes = vec![at(17), at(20) + 1];
        sim.run_until(at(50));
        assert_eq!(sim.events(), vec![ev(at(3), "pending", "1")]);
        assert_eq!(sim.heartbeats(), vec![at(18), at(33), at(48)]);
        // Every write (event or heartbeat) pushes the next one back.
        let writes: Vec<u64> = sim.writes().iter().map(|w| w.0).collect();
        assert!(writes.windows(2).all(|p| p[1] - p[0] == 15_000));
        // A client that has seen everything gets no event at the open: the
        // open itself starts the count.
        let mut sim = Sim::stream(session(0, 300), 15, 0, Some("1"));
        sim.run_until(at(31));
        assert!(sim.events().is_empty());
        assert_eq!(sim.heartbeats(), vec![at(15), at(30)]);
    }

    #[test]
    fn stream_renews_lease_once_per_interval() {
        let mut sim = Sim::stream(session(0, 300), 15, 0, None);
        sim.wakes = vec![at(7), at(16), at(44) + 999];
        sim.run_until(at(50));
        assert_eq!(
            sim.outputs(is_acquire),
            vec![(T0, Output::AcquireLease { until: t(at(45)) })]
        );
        assert_eq!(
            sim.outputs(is_renew),
            [15, 30, 45]
                .map(|s| (
                    at(s),
                    Output::RenewLease {
                        until: t(at(s + 15 + LEASE_GRACE_SECS))
                    }
                ))
                .to_vec()
        );
        // The renewal comes before the heartbeat due at the same instant.
        let i = sim.log.iter().position(|(_, o)| is_renew(o)).unwrap();
        assert_eq!(
            sim.log[i + 1],
            (at(15), Output::Write(heartbeat_frame().into()))
        );
    }

    #[test]
    fn stream_lease_gone_writes_hint_and_ends() {
        for change in [Change::LeaseLapse, Change::RevokeKey] {
            let mut sim = Sim::stream(session(0, 300), 15, 0, None).with(&[(at(20), change)]);
            sim.run();
            assert_eq!(sim.end(), Some((at(30), EndReason::LeaseGone)));
            assert!(sim.hinted());
            // No heartbeat after the refused renewal.
            assert_eq!(sim.heartbeats(), vec![at(15)]);
        }
    }

    #[test]
    fn pushed_stream_renews_once_a_minute_and_ends_at_a_revocation() {
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .pushed()
            .feed(true);
        sim.run_until(at(130));
        assert_eq!(sim.instants(is_renew), vec![at(60), at(120)]);
        assert_eq!(
            sim.outputs(is_renew)[0].1,
            Output::RenewLease {
                until: t(at(120 + LEASE_GRACE_SECS))
            }
        );
        assert_eq!(sim.heartbeats().len(), 8);
        // The lease taken at the opening reaches past the first renewal.
        assert_eq!(
            sim.outputs(is_acquire)[0].1,
            Output::AcquireLease {
                until: t(at(60 + LEASE_GRACE_SECS))
            }
        );
        // A revocation wakes the read: the renewal it asks finds the lease gone.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .pushed()
            .feed(true)
            .with(&[(at(70), Change::RevokeKey)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(70), EndReason::LeaseGone)));
        assert!(sim.hinted());
        assert_eq!(sim.instants(is_renew), vec![at(60), at(70)]);
        // A lease that lapses without a notice is found at the next renewal.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .pushed()
            .with(&[(at(20), Change::LeaseLapse)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(60), EndReason::LeaseGone)));
        // An early wake-up whose renewal succeeds reads the session again.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .pushed()
            .feed(true);
        sim.wakes = vec![at(9)];
        sim.run_until(at(9));
        sim.rev += 1;
        sim.notice = true;
        sim.run_until(at(10));
        assert_eq!(sim.instants(is_renew), vec![at(9)]);
        assert_eq!(sim.instants(is_read), vec![T0, at(9)]);
        assert!(sim.end().is_none());
    }

    #[test]
    fn pushed_long_poll_checks_its_key_only_when_woken() {
        let mut sim = Sim::long_poll(session(0, 300), 25, 10).pushed().feed(true);
        sim.run();
        assert!(sim.outputs(is_key).is_empty());
        assert_eq!(sim.answer(), Some((at(25), Status::Pending)));
        let mut sim = Sim::long_poll(session(0, 300), 25, 10)
            .pushed()
            .feed(true)
            .with(&[(at(3), Change::RevokeKey)]);
        sim.run();
        assert_eq!(sim.instants(is_key), vec![at(3)]);
        assert_eq!(sim.end(), Some((at(3), EndReason::Unauthorized)));
    }

    #[test]
    fn stream_store_error_ends_without_hint() {
        // The armed read fails.
        let mut sim =
            Sim::stream(session(0, 300), 15, 0, None).with(&[(at(20), Change::StoreDown)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(20), EndReason::StoreFailed)));
        assert!(!sim.hinted());
        // A renewal fails while the read is held.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None);
        sim.run_until(at(14));
        let mut w = sim.w.clone();
        assert_eq!(w.read_until(), Some(t(at(300))));
        assert_eq!(
            w.poll_output(t(at(15))),
            Some(Output::RenewLease { until: t(at(60)) })
        );
        w.handle_store_failed();
        assert_eq!(
            w.poll_output(t(at(15))),
            Some(Output::End(EndReason::StoreFailed))
        );
        assert!(w.is_done());
    }

    #[test]
    fn stream_max_duration_writes_hint_and_ends() {
        let mut sim = Sim::stream(session(0, 300), 15, 40, None);
        sim.run();
        // The read is held until the stream's end, not the session's expiry.
        assert_eq!(
            sim.outputs(is_arm),
            vec![(T0, Output::ArmRead { until: t(at(40)) })]
        );
        assert_eq!(sim.heartbeats(), vec![at(15), at(30)]);
        assert_eq!(sim.end(), Some((at(40), EndReason::MaxDuration)));
        assert!(sim.hinted());
        assert_eq!(sim.writes().last().unwrap().1, "retry: 1000\n\n");
    }

    #[test]
    fn stream_terminal_session_writes_frames_then_ends_without_hint() {
        for feed in [false, true] {
            let mut sim = Sim::stream(session(0, 300), 15, 0, None)
                .feed(feed)
                .with(&[(at(20), Change::Complete)]);
            sim.run();
            assert_eq!(
                sim.events(),
                vec![ev(T0, "pending", "1"), ev(at(20), "complete", "2")]
            );
            assert_eq!(sim.end(), Some((at(20), EndReason::Delivered)));
            assert!(!sim.hinted());
        }
        // Already terminal at the open: the terminal event alone.
        let cancelled = session(0, 300).cancel(t(T0 - 1)).unwrap();
        let mut sim = Sim::stream(cancelled, 15, 0, None);
        sim.run();
        assert_eq!(sim.events(), vec![ev(T0, "cancelled", "2")]);
        assert_eq!(sim.end(), Some((T0, EndReason::Delivered)));
        assert!(sim.outputs(is_arm).is_empty());
    }

    #[test]
    fn stream_expiry_while_waiting_sends_expired_at_expires_at() {
        let mut sim = Sim::stream(session(0, 40), 15, 0, None);
        sim.run();
        assert_eq!(
            sim.outputs(is_arm),
            vec![(T0, Output::ArmRead { until: t(at(40)) })]
        );
        assert_eq!(
            sim.events(),
            vec![ev(T0, "pending", "1"), ev(at(40), "expired", "2")]
        );
        assert_eq!(sim.end(), Some((at(40), EndReason::Delivered)));
        assert!(!sim.hinted());
    }

    #[test]
    fn stream_resume_skips_frames_already_seen() {
        let mut sim =
            Sim::stream(session(0, 300), 15, 0, Some("1")).with(&[(at(5), Change::Complete)]);
        sim.run();
        assert_eq!(sim.events(), vec![ev(at(5), "complete", "2")]);
        // A client that saw the terminal event: nothing to write, the end.
        let done = session(0, 300).cancel(t(T0 - 1)).unwrap();
        for s in [done, session(0, 300)] {
            let mut sim = Sim::stream(s, 15, 0, Some("2"));
            sim.run();
            assert!(sim.writes().is_empty());
            assert_eq!(sim.end(), Some((T0, EndReason::Delivered)));
        }
    }

    #[test]
    fn stream_holds_one_read_across_heartbeats() {
        // The Sim fails on a second ArmRead while one is armed.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None);
        sim.wakes = (1..100).map(|s| at(s) + 500).collect();
        sim.run_until(at(100));
        assert_eq!(sim.heartbeats().len(), 6);
        assert_eq!(sim.outputs(is_renew).len(), 6);
        assert_eq!(sim.outputs(is_arm).len(), 1);
        assert_eq!(sim.outputs(is_read).len(), 1);
        assert_eq!(sim.w.read_until(), Some(t(at(300))));
    }

    #[test]
    fn stream_wake_without_state_rereads_and_missing_session_ends() {
        // SQLite: a change wakes the read without state: read again, re-arm.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .with(&[(at(10), Change::Touch), (at(20), Change::Delete)]);
        sim.run();
        assert_eq!(sim.instants(is_read), vec![T0, at(10), at(20)]);
        assert_eq!(sim.instants(is_arm), vec![T0, at(10)]);
        assert_eq!(sim.end(), Some((at(20), EndReason::NotFound)));
        assert!(!sim.hinted());
        // Redis: the wake-up carries the state: no re-read.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .feed(true)
            .with(&[(at(10), Change::Touch), (at(20), Change::Complete)]);
        sim.run();
        assert_eq!(sim.instants(is_read), vec![T0]);
        assert_eq!(sim.instants(is_arm), vec![T0, at(10)]);
        assert_eq!(sim.end(), Some((at(20), EndReason::Delivered)));
    }

    #[test]
    fn stream_client_gone_ends() {
        let mut sim =
            Sim::stream(session(0, 300), 15, 0, None).with(&[(at(20), Change::ClientLeaves)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(30), EndReason::ClientGone)));
        // The failed heartbeat was the last output before the end.
        let n = sim.log.len();
        assert_eq!(
            sim.log[n - 2],
            (at(30), Output::Write(heartbeat_frame().into()))
        );
        // A failed terminal event: the client did not get it.
        let mut sim = Sim::stream(session(0, 300), 15, 0, None)
            .with(&[(at(5), Change::ClientLeaves), (at(9), Change::Cancel)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(9), EndReason::ClientGone)));
        // A failed hint keeps the reason it was written for.
        let mut sim =
            Sim::stream(session(0, 300), 15, 20, None).with(&[(at(16), Change::ClientLeaves)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(20), EndReason::MaxDuration)));
    }

    // ---- long-poll ---------------------------------------------------------

    #[test]
    fn long_poll_answers_at_once_when_terminal_expired_or_deadline_passed() {
        let completed = match session(0, 300).complete(t(T0 - 1), "1", "2", None) {
            Ok(Completion::Applied(s)) => s,
            other => panic!("{other:?}"),
        };
        let cases = [
            (completed, 25, Status::Completed),
            (session(300, 300), 25, Status::Expired),
            (session(0, 300), 0, Status::Pending),
        ];
        for (s, wait, status) in cases {
            let mut sim = Sim::long_poll(s, wait, 15);
            sim.run();
            assert_eq!(sim.answer(), Some((T0, status)));
            assert_eq!(sim.end(), Some((T0, EndReason::Answered)));
            assert_eq!(sim.log.len(), 3, "{:?}", sim.log);
            assert!(sim.outputs(is_acquire).is_empty());
        }
    }

    #[test]
    fn long_poll_takes_the_lease_once() {
        let mut sim = Sim::long_poll(session(0, 300), 25, 10).with(&[(at(5), Change::Touch)]);
        sim.run();
        assert_eq!(
            sim.outputs(is_acquire),
            vec![(
                T0,
                Output::AcquireLease {
                    until: t(at(25 + LEASE_GRACE_SECS))
                }
            )]
        );
        assert!(sim.outputs(is_renew).is_empty());
        assert_eq!(sim.instants(is_read).len(), 5);
        assert_eq!(sim.answer(), Some((at(25), Status::Pending)));
    }

    #[test]
    fn long_poll_checks_key_once_per_interval_only_after_empty_reads() {
        for feed in [true, false] {
            let mut sim = Sim::long_poll(session(0, 300), 25, 10)
                .feed(feed)
                .with(&[(at(5), Change::Touch), (at(12), Change::Touch)]);
            sim.run();
            // Reads are armed until the next key check at the latest.
            let arms: Vec<(u64, Output)> = sim.outputs(is_arm);
            let untils: Vec<u64> = arms
                .iter()
                .map(|(_, o)| match o {
                    Output::ArmRead { until } => until.as_millis(),
                    _ => 0,
                })
                .collect();
            assert_eq!(untils, vec![at(10), at(10), at(20), at(20), at(25)]);
            // A wake-up at +5 s or +12 s (a change) never checks the key;
            // empty reads at +10 s and +20 s do, once each.
            assert_eq!(sim.instants(is_key), vec![at(10), at(20)]);
            assert_eq!(sim.answer(), Some((at(25), Status::Pending)));
        }
    }

    #[test]
    fn long_poll_revoked_key_is_unauthorized() {
        let mut sim = Sim::long_poll(session(0, 300), 25, 10).with(&[(at(3), Change::RevokeKey)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(10), EndReason::Unauthorized)));
        assert_eq!(sim.answer(), None);
    }

    #[test]
    fn long_poll_lease_refused_ends_with_too_many_waiters() {
        let mut sim = Sim::long_poll(session(0, 300), 25, 10);
        sim.slots_free = false;
        sim.run();
        assert_eq!(sim.end(), Some((T0, EndReason::TooManyWaiters)));
        assert!(sim.outputs(is_arm).is_empty());
    }

    #[test]
    fn long_poll_answers_pending_at_the_deadline() {
        let mut sim = Sim::long_poll(session(0, 300), 25, 30);
        sim.run();
        assert_eq!(
            sim.outputs(is_arm),
            vec![(T0, Output::ArmRead { until: t(at(25)) })]
        );
        assert!(sim.outputs(is_key).is_empty());
        assert_eq!(sim.answer(), Some((at(25), Status::Pending)));
        assert_eq!(sim.w.poll_timeout(), None);
    }

    #[test]
    fn long_poll_answers_on_change_or_expiry() {
        for feed in [false, true] {
            let mut sim = Sim::long_poll(session(0, 300), 25, 10)
                .feed(feed)
                .with(&[(at(7), Change::Complete)]);
            sim.run();
            assert_eq!(sim.answer(), Some((at(7), Status::Completed)));
        }
        // The expiry comes before the deadline: the read ends there.
        let mut sim = Sim::long_poll(session(0, 12), 25, 30);
        sim.run();
        assert_eq!(sim.instants(is_arm), vec![T0]);
        assert_eq!(sim.answer(), Some((at(12), Status::Expired)));
    }

    #[test]
    fn long_poll_unknown_session_is_not_found() {
        let mut sim = Sim::long_poll(session(0, 300), 25, 10);
        sim.exists = false;
        sim.run();
        assert_eq!(sim.end(), Some((T0, EndReason::NotFound)));
        let mut sim = Sim::long_poll(session(0, 300), 25, 10).with(&[(at(4), Change::Delete)]);
        sim.run();
        assert_eq!(sim.end(), Some((at(4), EndReason::NotFound)));
    }

    #[test]
    fn answers_out_of_turn_are_ignored() {
        let mut w = Waiter::long_poll(t(T0), t(at(25)), 10);
        let _ = w.poll_output(t(T0));
        let before = w.clone();
        w.handle_lease(false);
        w.handle_key(t(T0), false);
        w.handle_read_done(t(T0), None);
        assert_eq!(w, before);
        w.handle_state(t(T0), Some(session(0, 300)));
        let after = w.clone();
        w.handle_state(t(T0), None);
        assert_eq!(w, after);
        assert_eq!(
            w.poll_output(t(T0)),
            Some(Output::AcquireLease {
                until: t(at(25 + LEASE_GRACE_SECS))
            })
        );
        // After the end nothing comes out, whatever happens.
        w.handle_lease(false);
        assert_eq!(
            w.poll_output(t(T0)),
            Some(Output::End(EndReason::TooManyWaiters))
        );
        w.handle_write_failed();
        w.handle_store_failed();
        assert_eq!(w.poll_output(t(T0)), None);
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.end_reason(), Some(EndReason::TooManyWaiters));
    }

    // ---- properties ----------------------------------------------------------

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            3 => Just(Change::Complete),
            2 => Just(Change::Cancel),
            3 => Just(Change::Touch),
            1 => Just(Change::Delete),
            1 => Just(Change::RevokeKey),
            1 => Just(Change::LeaseLapse),
            1 => Just(Change::ClientLeaves),
            1 => Just(Change::StoreDown),
        ]
    }

    fn changes() -> impl Strategy<Value = Vec<(u64, Change)>> {
        proptest::collection::vec((0u64..150_000, change()), 0..6)
            .prop_map(|v| v.into_iter().map(|(ms, c)| (T0 + ms, c)).collect())
    }

    fn wakes() -> impl Strategy<Value = Vec<u64>> {
        proptest::collection::vec(0u64..150_000, 0..8)
            .prop_map(|v| v.into_iter().map(|ms| T0 + ms).collect())
    }

    proptest! {
        /// Any stream: the loop never spins (after a drain the timeout is
        /// later than now, or a read is armed), one read at a time, writes
        /// only after the open, events once each in order, a heartbeat
        /// exactly one interval after the previous write, renewals exactly
        /// one interval apart, a hint exactly on the hinted ends, and the
        /// end by the stream's maximum or the session's expiry.
        #[test]
        fn stream_invariants(
            hb in 1u64..=30,
            max in prop_oneof![Just(0u64), 1u64..=120],
            age in 0u64..=130,
            ttl in 1u64..=120,
            resume in prop_oneof![Just(None), Just(Some("1")), Just(Some("2")), Just(Some("x"))],
            feed in any::<bool>(),
            pushed in any::<bool>(),
            slots_free in prop::bool::weighted(0.9),
            changes in changes(),
            wakes in wakes(),
        ) {
            let s = session(age, ttl);
            let expires = s.expires_at.as_millis();
            let mut sim = Sim::stream(s, hb, max, resume).feed(feed).with(&changes);
            // Pushed revocation is the Redis store's, whose feed carries the state.
            if pushed {
                sim = sim.pushed().feed(true);
            }
            sim.slots_free = slots_free;
            sim.wakes = wakes;
            sim.run();
            let (end, reason) = sim.end().unwrap();
            prop_assert!(sim.w.is_done());
            prop_assert_eq!(sim.w.end_reason(), Some(reason));
            let open = sim.instants(|o| matches!(o, Output::Open));
            prop_assert!(open.len() <= 1);
            let Some(&open) = open.first() else {
                prop_assert!(sim.writes().is_empty());
                return Ok(());
            };
            let cap = if max > 0 { expires.min(open + max * 1000) } else { expires };
            prop_assert!(end <= cap.max(open), "ended at {} after {}", end, cap);
            prop_assert!(end <= cap.max(open) + hb * 1000);
            let open_idx = sim.log.iter().position(|(_, o)| matches!(o, Output::Open)).unwrap();
            prop_assert!(sim.log[..open_idx].iter().all(|(_, o)| !matches!(o, Output::Write(_))));
            let ids: Vec<u32> = sim.events().iter().map(|e| e.2.parse().unwrap()).collect();
            let seen: u32 = match resume { Some("1") => 1, Some("2") => 2, _ => 0 };
            prop_assert!(ids.iter().all(|&id| id > seen));
            prop_assert!(ids.windows(2).all(|p| p[0] < p[1]));
            prop_assert_eq!(sim.hinted(), reason.wrote_hint());
            let mut last = open;
            for (at, frame) in sim.writes() {
                if frame == heartbeat_frame() {
                    prop_assert_eq!(at, last + hb * 1000);
                }
                last = at;
            }
            let mut renewed = open;
            let interval = if pushed { hb.max(PUSHED_RENEW_SECS) } else { hb } * 1000;
            for at in sim.instants(is_renew) {
                // Pushed: a notice may ask for one sooner.
                if pushed {
                    prop_assert!(at > renewed && at <= renewed + interval);
                } else {
                    prop_assert_eq!(at, renewed + interval);
                }
                renewed = at;
            }
            // Pushed: a revocation after the open ends the stream at once.
            if pushed
                && let Some(&(r, _)) = changes.iter().find(|c| c.1 == Change::RevokeKey && c.0 > open)
            {
                prop_assert!(end <= r, "revoked at {} but ended at {}", r, end);
            }
        }

        /// Any long-poll: the loop never spins, one read at a time, the
        /// lease is taken at most once and only to wait, the key is checked
        /// at most once per interval, and it ends by its deadline (by the
        /// expiry, if earlier) with an answer, or with a refusal.
        #[test]
        fn long_poll_invariants(
            hb in 1u64..=30,
            wait in 0u32..=30,
            age in 0u64..=130,
            ttl in 1u64..=120,
            feed in any::<bool>(),
            pushed in any::<bool>(),
            slots_free in prop::bool::weighted(0.9),
            changes in changes(),
            wakes in wakes(),
        ) {
            let s = session(age, ttl);
            let expires = s.expires_at.as_millis();
            let deadline = at(u64::from(wait));
            let mut sim = Sim::long_poll(s, wait, hb).feed(feed).with(&changes);
            if pushed {
                sim = sim.pushed().feed(true);
            }
            sim.slots_free = slots_free;
            sim.wakes = wakes;
            sim.run();
            let (end, reason) = sim.end().unwrap();
            prop_assert!(end <= deadline.min(expires.max(T0)));
            prop_assert!(end <= deadline + hb * 1000);
            prop_assert_eq!(sim.answer().is_some(), reason == EndReason::Answered);
            prop_assert!(sim.outputs(is_acquire).len() <= 1);
            let stream_only = |o: &Output| {
                matches!(o, Output::Open | Output::Write(_) | Output::RenewLease { .. })
            };
            prop_assert!(sim.outputs(stream_only).is_empty());
            let mut checked = T0;
            let interval = if pushed { hb.max(PUSHED_RENEW_SECS) } else { hb } * 1000;
            let revoked = changes.iter().find(|c| c.1 == Change::RevokeKey).map(|c| c.0);
            for at in sim.instants(is_key) {
                // Pushed: also when a change wakes it without a state (the
                // revocation's notice, which ends it; a record gone).
                prop_assert!(
                    at >= checked + interval || (pushed && changes.iter().any(|c| c.0 == at))
                );
                checked = at;
            }
            if pushed && let Some(r) = revoked && r >= T0 {
                prop_assert!(end <= r.max(T0) || sim.answer().is_some_and(|a| a.0 <= r));
            }
            if let Some(first_arm) = sim.instants(is_arm).first() {
                let acquired = sim.instants(is_acquire);
                prop_assert!(acquired.first().is_some_and(|a| a <= first_arm));
            }
        }
    }
}
