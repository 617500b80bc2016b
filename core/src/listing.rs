//! `GET /api/v1/verify/sessions`: a key's sessions, newest first, a page at a
//! time. The query's parsing and the cursor live here; stores return records
//! in the listing order (creation time, then sid, both descending) after a
//! cursor, and [`Page`] turns what they return into one page.
//!
//! The cursor names the last session of a page (`<createdAt ms>.<sid>`), and
//! every later page holds only sessions strictly older in that order, so
//! sessions created while a client pages through never shift or repeat the
//! pages still to come (they are newer than every cursor).

use crate::id::SessionId;
use crate::session::Session;
use crate::time::Timestamp;
use crate::wire::{SessionView, Status};
use crate::{ApiError, ErrorCode};

/// Most sessions on one page, and the default.
pub const MAX_LIMIT: usize = 100;
/// The page size without `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// Most records one page may examine when a filter (`status`) skips some:
/// past it the page ends early with a cursor where the scan stopped, so a
/// rare status never makes one request read a whole retention's worth.
pub const MAX_SCAN: usize = 1_000;

/// A position in the listing order: a page continues after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListCursor {
    /// The session's creation time.
    pub created_at: Timestamp,
    /// Its id (orders sessions created in the same millisecond).
    pub sid: SessionId,
}

impl ListCursor {
    /// The position of `s`.
    pub fn of(s: &Session) -> Self {
        ListCursor {
            created_at: s.created_at,
            sid: s.sid.clone(),
        }
    }

    /// The opaque text form clients pass back.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.as_millis(), self.sid)
    }

    /// Parses [`ListCursor::encode`]'s form.
    pub fn decode(s: &str) -> Option<Self> {
        let (ms, sid) = s.split_once('.')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ListCursor {
            created_at: Timestamp::from_millis(ms.parse().ok()?),
            sid: SessionId::parse(sid).ok()?,
        })
    }

    /// Whether `s` comes after this position in the listing order.
    pub fn is_before(&self, s: &Session) -> bool {
        (s.created_at, &s.sid) < (self.created_at, &self.sid)
    }
}

/// The name stores index a client's sessions under: 32 hex digits of the
/// SHA-256 of its `clientId` (any text up to 256 characters, so never a key
/// name itself).
pub fn client_digest(client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::new()
        .chain_update(b"dock-client\0")
        .chain_update(client_id.as_bytes())
        .finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `?clientId=&status=&limit=&cursor=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this integrator user's sessions.
    pub client_id: Option<String>,
    /// Only sessions in this state (as a reader sees it now: a pending
    /// session past its expiry is `expired`).
    pub status: Option<Status>,
    /// Page size, 1 ..= [`MAX_LIMIT`].
    pub limit: usize,
    /// Continue after this position.
    pub cursor: Option<ListCursor>,
}

/// Parses the listing's query string.
pub fn parse_query(query: &str, max_client_id_chars: usize) -> Result<ListQuery, ApiError> {
    let invalid = |name: &str, reason: &str| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("query parameter `{name}` {reason}"),
        )
        .with_field(name)
    };
    let mut q = ListQuery {
        client_id: None,
        status: None,
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let name = name.into_owned();
        if !["clientId", "status", "limit", "cursor"].contains(&name.as_str()) {
            continue;
        }
        if seen.contains(&name) {
            return Err(invalid(&name, "is given more than once"));
        }
        seen.push(name.clone());
        match name.as_str() {
            "clientId" => {
                if value.is_empty()
                    || value.chars().count() > max_client_id_chars
                    || value.chars().any(char::is_control)
                {
                    return Err(invalid("clientId", "is not a valid clientId"));
                }
                q.client_id = Some(value.into_owned());
            }
            "status" => {
                q.status = Some(match value.as_ref() {
                    "pending" => Status::Pending,
                    "completed" => Status::Completed,
                    "expired" => Status::Expired,
                    "cancelled" => Status::Cancelled,
                    _ => {
                        return Err(invalid(
                            "status",
                            "must be pending, completed, expired or cancelled",
                        ));
                    }
                });
            }
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| invalid("limit", "must be 1 to 100"))?;
            }
            _ => {
                q.cursor = Some(
                    ListCursor::decode(&value)
                        .ok_or_else(|| invalid("cursor", "is not a cursor this API gave"))?,
                );
            }
        }
    }
    Ok(q)
}

/// One page being filled from store batches.
#[derive(Debug)]
pub struct Page {
    query: ListQuery,
    now: Timestamp,
    views: Vec<SessionView>,
    scanned: usize,
    last: Option<ListCursor>,
    done: bool,
}

/// `data` of `GET /api/v1/verify/sessions`.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionPage {
    /// Newest first.
    pub sessions: Vec<SessionView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Page {
    /// An empty page for `query`, views as seen at `now`.
    pub fn new(query: ListQuery, now: Timestamp) -> Self {
        Page {
            last: query.cursor.clone(),
            query,
            now,
            views: Vec::new(),
            scanned: 0,
            done: false,
        }
    }

    /// Where the next store batch starts (exclusive), and how many records it
    /// should hold; `None` when the page is complete.
    pub fn next_batch(&self) -> Option<(Option<&ListCursor>, usize)> {
        if self.done {
            return None;
        }
        let want = self.query.limit - self.views.len();
        // A filtered page reads ahead; an unfiltered one reads one more than
        // it needs (to know whether another page follows).
        let n = if self.query.status.is_some() {
            (want * 4).clamp(20, 200)
        } else {
            want + 1
        };
        Some((self.last.as_ref(), n.min(MAX_SCAN - self.scanned).max(1)))
    }

    /// Takes a batch the store returned for [`Page::next_batch`]: index
    /// entries in listing order with their records (`None`: the record is
    /// gone, past its retention); `asked` entries were requested, fewer
    /// means the listing ended.
    pub fn take(&mut self, batch: Vec<(ListCursor, Option<Session>)>, asked: usize) {
        let ended = batch.len() < asked;
        for (at, s) in batch {
            if self.views.len() == self.query.limit {
                // Another entry follows: the page ends at its last one.
                self.done = true;
                return;
            }
            // Stores order by (createdAt, sid) descending; anything else is skipped.
            if self.last.as_ref().is_some_and(|c| *c <= at) {
                continue;
            }
            self.scanned += 1;
            self.last = Some(at);
            let Some(s) = s else { continue };
            let view = s.view_at(self.now);
            if self.query.status.is_none_or(|st| st == view.status) {
                self.views.push(view);
            }
        }
        if ended {
            self.last = None;
            self.done = true;
        } else if self.scanned >= MAX_SCAN {
            self.done = true;
        }
    }

    /// The finished page.
    pub fn finish(self) -> SessionPage {
        SessionPage {
            sessions: self.views,
            next_cursor: self.last.filter(|_| self.done).map(|c| c.encode()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Pid;

    fn session(n: u8, created_ms: u64) -> Session {
        Session::new(
            SessionId::from_entropy([n; 16]),
            Pid::parse("app").unwrap(),
            format!("u{n}"),
            None,
            Timestamp::from_millis(created_ms),
            300,
        )
    }

    #[test]
    fn queries_parse_and_refuse_what_they_cannot_mean() {
        let q = parse_query("clientId=u%201&status=expired&limit=5", 256).unwrap();
        assert_eq!(q.client_id.as_deref(), Some("u 1"));
        assert_eq!((q.status, q.limit), (Some(Status::Expired), 5));
        let c = ListCursor::of(&session(1, 1234));
        let q = parse_query(&format!("cursor={}", c.encode()), 256).unwrap();
        assert_eq!(q.cursor, Some(c));
        for bad in [
            "limit=0",
            "limit=101",
            "status=done",
            "cursor=x",
            "cursor=12.vsn_short",
            "clientId=",
            "limit=1&limit=2",
        ] {
            let e = parse_query(bad, 256).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidQuery, "{bad}");
        }
    }

    /// Pages over a fixed listing, as a store would serve them.
    fn pages(all: &[Session], query: ListQuery, now: Timestamp) -> Vec<SessionPage> {
        let mut out = Vec::new();
        let mut cursor = query.cursor.clone();
        loop {
            let mut page = Page::new(
                ListQuery {
                    cursor: cursor.clone(),
                    ..query.clone()
                },
                now,
            );
            while let Some((after, n)) = page.next_batch() {
                let batch: Vec<(ListCursor, Option<Session>)> = all
                    .iter()
                    .filter(|s| after.is_none_or(|c| c.is_before(s)))
                    .take(n)
                    .map(|s| (ListCursor::of(s), Some(s.clone())))
                    .collect();
                page.take(batch, n);
            }
            let p = page.finish();
            cursor = p.next_cursor.as_deref().and_then(ListCursor::decode);
            out.push(p);
            if cursor.is_none() {
                return out;
            }
        }
    }

    #[test]
    fn pages_cover_the_listing_once_newest_first() {
        let mut all: Vec<Session> = (0..25)
            .map(|n| session(n, 1000 + u64::from(n / 2)))
            .collect();
        all.sort_by(|a, b| ListCursor::of(b).cmp(&ListCursor::of(a)));
        let q = ListQuery {
            client_id: None,
            status: None,
            limit: 10,
            cursor: None,
        };
        let ps = pages(&all, q.clone(), Timestamp::from_millis(2000));
        assert_eq!(ps.len(), 3);
        let seen: Vec<SessionId> = ps
            .iter()
            .flat_map(|p| p.sessions.iter().map(|v| v.sid.clone()))
            .collect();
        let want: Vec<SessionId> = all.iter().map(|s| s.sid.clone()).collect();
        assert_eq!(seen, want);
        // An exact multiple of the page size ends without an empty page.
        let ps = pages(&all[..20], q, Timestamp::from_millis(2000));
        assert_eq!(ps.len(), 2);
        assert!(ps[1].next_cursor.is_none());
    }

    #[test]
    fn a_status_filter_sees_expiry_and_stops_scanning_at_the_bound() {
        let mut all: Vec<Session> = (0..30)
            .map(|n| session(n, 1000 + u64::from(n) * 1000))
            .collect();
        all.sort_by(|a, b| ListCursor::of(b).cmp(&ListCursor::of(a)));
        // At 311 s the sessions created at ≤ 11 s (expiring at ≤ 311 s) have expired.
        let now = Timestamp::from_millis(311_000);
        let q = ListQuery {
            client_id: None,
            status: Some(Status::Expired),
            limit: 100,
            cursor: None,
        };
        let ps = pages(&all, q, now);
        let n: usize = ps.iter().map(|p| p.sessions.len()).sum();
        assert_eq!(n, 11);
        assert!(
            ps.iter()
                .flat_map(|p| &p.sessions)
                .all(|v| v.status == Status::Expired)
        );
        // Many records, no match: pages end at the scan bound with a cursor.
        let many: Vec<Session> = (0..1500u32)
            .map(|n| session((n % 250) as u8, 10_000_000 - u64::from(n)))
            .collect();
        let q = ListQuery {
            client_id: None,
            status: Some(Status::Cancelled),
            limit: 5,
            cursor: None,
        };
        let mut page = Page::new(q, now);
        while let Some((after, n)) = page.next_batch() {
            let batch: Vec<(ListCursor, Option<Session>)> = many
                .iter()
                .filter(|s| after.is_none_or(|c| c.is_before(s)))
                .take(n)
                .map(|s| (ListCursor::of(s), None))
                .collect();
            page.take(batch, n);
        }
        let p = page.finish();
        assert!(p.sessions.is_empty());
        assert!(p.next_cursor.is_some());
    }
}
