//! The session event stream's vocabulary and resume rules.
//!
//! On connect a client gets a `pending` event if the session is pending, or
//! the terminal event at once if it already finished; then `complete`,
//! `expired` or `cancelled`, after which the stream ends. Each event's `data:`
//! is the bare [`SessionView`] on one line (no envelope). Heartbeats are
//! comments. Event ids are the session's revision — `1` for pending, `2` for
//! the terminal state — so a client that reconnects with `Last-Event-ID`
//! gets exactly what it has not seen.

use crate::sse::{self, Event};
use crate::time::Timestamp;
use crate::wire::{SessionView, Status, view_json};

/// Event name for a pending session.
pub const EVENT_PENDING: &str = "pending";
/// Event name for a completed session.
pub const EVENT_COMPLETE: &str = "complete";
/// Event name for an expired session.
pub const EVENT_EXPIRED: &str = "expired";
/// Event name for a cancelled session.
pub const EVENT_CANCELLED: &str = "cancelled";

/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 15;
/// The reconnection delay suggested when a stream ends before a terminal event.
pub const DEFAULT_RETRY_MS: u64 = 1_000;

/// The event name for a status.
pub fn event_name(status: Status) -> &'static str {
    match status {
        Status::Pending => EVENT_PENDING,
        Status::Completed => EVENT_COMPLETE,
        Status::Expired => EVENT_EXPIRED,
        Status::Cancelled => EVENT_CANCELLED,
    }
}

/// The status an event name announces, if it is one of ours.
pub fn status_of_event(name: &str) -> Option<Status> {
    match name {
        EVENT_PENDING => Some(Status::Pending),
        EVENT_COMPLETE => Some(Status::Completed),
        EVENT_EXPIRED => Some(Status::Expired),
        EVENT_CANCELLED => Some(Status::Cancelled),
        _ => None,
    }
}

fn revision(status: Status) -> u8 {
    if status.is_terminal() { 2 } else { 1 }
}

/// The SSE event announcing `view`.
pub fn session_event(view: &SessionView) -> Event {
    Event {
        event: Some(event_name(view.status).to_owned()),
        id: Some(revision(view.status).to_string()),
        data: Some(view_json(view)),
        ..Event::default()
    }
}

/// The frame that ends a stream early (e.g. at `stream_max_seconds`): a
/// `retry:` hint so clients reconnect, with their `Last-Event-ID`, after `retry_ms`.
pub fn reconnect_hint(retry_ms: u64) -> String {
    Event {
        retry_ms: Some(retry_ms),
        ..Event::default()
    }
    .encode()
    .unwrap_or_default()
}

/// What to write now, and whether the stream is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStep {
    /// Encoded frames (possibly empty).
    pub frames: String,
    /// True once the terminal event has been delivered (or was already seen).
    pub done: bool,
}

/// Tracks what one client has seen, so each event is delivered once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCursor {
    seen: u8,
}

impl StreamCursor {
    /// A cursor for a client resuming after `last_event_id` (header
    /// `Last-Event-ID`, or the `lastEventId` query); unknown ids count as none.
    pub fn resume(last_event_id: Option<&str>) -> Self {
        let seen = match last_event_id.map(str::trim) {
            Some("1") => 1,
            Some("2") => 2,
            _ => 0,
        };
        StreamCursor { seen }
    }

    /// Given the session's view now, the frames this client has not seen yet.
    pub fn step(&mut self, view: &SessionView) -> StreamStep {
        let mut frames = String::new();
        if self.observe(view.status) {
            // Views carry only one-line JSON and fixed names: encoding cannot fail.
            let _ = session_event(view).encode_into(&mut frames);
        }
        StreamStep {
            frames,
            done: self.seen >= 2,
        }
    }

    /// Whether `status` is news to this client (a later revision than it has
    /// seen); if so it now counts as seen. The client side of the same rule:
    /// the npm client yields a state only when this says so, whether it came
    /// from a stream or a long-poll, so each state reaches its user once.
    pub fn observe(&mut self, status: Status) -> bool {
        let rev = revision(status);
        let news = rev > self.seen;
        if news {
            self.seen = rev;
        }
        news
    }

    /// The id of the last event this client has seen — what it sends as
    /// `Last-Event-ID` to resume — or `""` before any.
    pub fn last_event_id(&self) -> &'static str {
        match self.seen {
            0 => "",
            1 => "1",
            _ => "2",
        }
    }

    /// The id of the event that announces `status` (its revision).
    pub fn event_id(status: Status) -> &'static str {
        if revision(status) == 1 { "1" } else { "2" }
    }
}

/// Timers of one open stream: heartbeat and optional maximum duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimer {
    heartbeat_ms: u64,
    ends_at: Option<Timestamp>,
    last_write: Timestamp,
}

/// What a stream's timer says at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// End the stream with [`reconnect_hint`].
    End,
    /// Write a heartbeat.
    Heartbeat,
    /// Nothing due; wake again at this instant at the latest.
    SleepUntil(Timestamp),
}

impl StreamTimer {
    /// A timer for a stream opened at `now`; `max_secs == 0` means no maximum.
    pub fn new(now: Timestamp, heartbeat_secs: u64, max_secs: u64) -> Self {
        StreamTimer {
            heartbeat_ms: heartbeat_secs.max(1) * 1000,
            ends_at: (max_secs > 0).then(|| now.plus_secs(max_secs)),
            last_write: now,
        }
    }

    /// When the stream must end (`None`: no maximum).
    pub fn ends_at(&self) -> Option<Timestamp> {
        self.ends_at
    }

    /// Records a write (any real event resets the heartbeat).
    pub fn wrote(&mut self, now: Timestamp) {
        self.last_write = now;
    }

    /// What is due at `now`.
    pub fn poll(&self, now: Timestamp) -> TimerAction {
        if self.ends_at.is_some_and(|end| now >= end) {
            return TimerAction::End;
        }
        let beat = self.last_write.plus_millis(self.heartbeat_ms);
        if now >= beat {
            return TimerAction::Heartbeat;
        }
        TimerAction::SleepUntil(self.ends_at.map_or(beat, |end| end.min(beat)))
    }
}

/// The heartbeat frame (a comment).
pub fn heartbeat_frame() -> &'static str {
    sse::heartbeat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Pid, SessionId};
    use crate::session::{Completion, Session};
    use crate::sse::Decoder;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn session() -> Session {
        Session::new(
            SessionId::from_entropy([9; 16]),
            Pid::parse("pid-a").unwrap(),
            "u".into(),
            None,
            t(0),
            300,
        )
    }

    fn completed() -> Session {
        match session().complete(t(5), "10", "20", None).unwrap() {
            Completion::Applied(s) => s,
            Completion::AlreadyCompleted => unreachable!(),
        }
    }

    fn events(frames: &str) -> Vec<(String, String)> {
        Decoder::new()
            .feed(frames.as_bytes())
            .into_iter()
            .map(|e| (e.event, e.id))
            .collect()
    }

    #[test]
    fn observe_yields_each_state_once_and_tracks_the_resume_id() {
        let mut c = StreamCursor::resume(None);
        assert_eq!(c.last_event_id(), "");
        assert!(c.observe(Status::Pending));
        assert!(!c.observe(Status::Pending), "a second pending is no news");
        assert_eq!(c.last_event_id(), "1");
        assert!(c.observe(Status::Completed));
        assert_eq!(c.last_event_id(), "2");
        for s in [
            Status::Pending,
            Status::Completed,
            Status::Expired,
            Status::Cancelled,
        ] {
            assert!(!c.observe(s), "nothing follows a terminal state: {s:?}");
        }
        // A terminal state first (the session finished before the client looked).
        let mut late = StreamCursor::resume(None);
        assert!(late.observe(Status::Expired));
        assert!(!late.observe(Status::Pending));
        // Ids agree with what the server's stream sends.
        let views = [
            session().view_at(t(1)),
            completed().view_at(t(6)),
            session().view_at(t(400_000)),
            session().cancel(t(1)).unwrap().view_at(t(2)),
        ];
        for view in views {
            let (_, id) = events(&session_event(&view).encode().unwrap())[0].clone();
            assert_eq!(StreamCursor::event_id(view.status), id, "{:?}", view.status);
        }
    }

    #[test]
    fn fresh_client_sees_pending_then_complete() {
        let mut c = StreamCursor::resume(None);
        let s1 = c.step(&session().view_at(t(1)));
        assert_eq!(events(&s1.frames), vec![("pending".into(), "1".into())]);
        assert!(!s1.done);
        // The same state again writes nothing.
        assert_eq!(c.step(&session().view_at(t(2))).frames, "");
        let s2 = c.step(&completed().view_at(t(6)));
        assert_eq!(events(&s2.frames), vec![("complete".into(), "2".into())]);
        assert!(s2.done);
        // The data line is the bare view.
        let ev = &Decoder::new().feed(s2.frames.as_bytes())[0];
        let v: SessionView = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v.result.unwrap().roblox_id, "20");
    }

    #[test]
    fn finished_session_sends_terminal_event_at_once() {
        let mut c = StreamCursor::resume(None);
        let s = c.step(&session().view_at(t(300_000)));
        assert_eq!(events(&s.frames), vec![("expired".into(), "2".into())]);
        assert!(s.done);
        let mut c = StreamCursor::resume(None);
        let cancelled = session().cancel(t(1)).unwrap();
        assert_eq!(
            events(&c.step(&cancelled.view_at(t(2))).frames),
            vec![("cancelled".into(), "2".into())]
        );
    }

    #[test]
    fn resume_delivers_what_was_missed() {
        let mut c = StreamCursor::resume(Some("1"));
        assert_eq!(c.step(&session().view_at(t(1))).frames, "");
        let mut c = StreamCursor::resume(Some("1"));
        let s = c.step(&completed().view_at(t(9)));
        assert_eq!(events(&s.frames), vec![("complete".into(), "2".into())]);
        let mut c = StreamCursor::resume(Some("2"));
        let s = c.step(&completed().view_at(t(9)));
        assert_eq!((s.frames.as_str(), s.done), ("", true));
        let mut c = StreamCursor::resume(Some("garbage"));
        assert_eq!(events(&c.step(&session().view_at(t(1))).frames).len(), 1);
    }

    #[test]
    fn timer() {
        let mut tm = StreamTimer::new(t(0), 15, 0);
        assert_eq!(tm.poll(t(1)), TimerAction::SleepUntil(t(15_000)));
        assert_eq!(tm.poll(t(15_000)), TimerAction::Heartbeat);
        tm.wrote(t(10_000));
        assert_eq!(tm.poll(t(15_000)), TimerAction::SleepUntil(t(25_000)));
        let tm = StreamTimer::new(t(0), 15, 25);
        assert_eq!(tm.poll(t(14_000)), TimerAction::SleepUntil(t(15_000)));
        assert_eq!(tm.poll(t(25_000)), TimerAction::End);
        let tm = StreamTimer::new(t(0), 15, 10);
        assert_eq!(tm.poll(t(1)), TimerAction::SleepUntil(t(10_000)));
        assert_eq!(reconnect_hint(1000), "retry: 1000\n\n");
    }

    #[test]
    fn names_roundtrip() {
        for s in [
            Status::Pending,
            Status::Completed,
            Status::Expired,
            Status::Cancelled,
        ] {
            assert_eq!(status_of_event(event_name(s)), Some(s));
        }
        assert_eq!(status_of_event("message"), None);
    }
}
