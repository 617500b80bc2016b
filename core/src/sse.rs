//! Server-Sent Events: an encoder and an incremental decoder.
//!
//! The decoder follows the WHATWG HTML "event stream interpretation" rules:
//!
//! > The stream must be decoded using UTF-8 decode […]. Lines must be separated
//! > by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair,
//! > a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE
//! > RETURN (CR) character. […] If the line is empty (a blank line), dispatch
//! > the event. If the line starts with a U+003A COLON character (:), ignore
//! > the line. If the line contains a U+003A COLON character, collect the
//! > characters before it as the field name and after it as the value; if the
//! > value starts with a U+0020 SPACE character, remove it. Otherwise the whole
//! > line is the field name and the value is the empty string.
//! >
//! > `event`: set the event type buffer. `data`: append the value and a LF to
//! > the data buffer. `id`: if the value does not contain U+0000 NULL, set the
//! > last event ID buffer. `retry`: if the value consists of only ASCII digits,
//! > set the reconnection time. Anything else is ignored.
//! >
//! > Dispatch: set the last event ID string; if the data buffer is empty, reset
//! > the data and event type buffers and return; remove one trailing LF from
//! > the data buffer; the type is the event type buffer or "message".
//!
//! It is layered — UTF-8 across chunks (invalid bytes become U+FFFD, one
//! leading BOM is dropped) → lines (a CR at a chunk's end waits to see whether
//! a LF follows) → fields → events — so input may be split anywhere.

use std::fmt::Write as _;

/// A field value the format cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// `event`, `id` and comments are one line: no CR or LF.
    #[error("SSE `{field}` may not contain CR or LF")]
    LineBreak {
        /// The field.
        field: &'static str,
    },
    /// An `id` containing NUL would be ignored by every client.
    #[error("SSE `id` may not contain NUL")]
    NulInId,
}

/// An event to encode. Fields left `None` are not written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` type (one line).
    pub event: Option<String>,
    /// `id:` (one line, no NUL).
    pub id: Option<String>,
    /// `retry:` reconnection time in milliseconds.
    pub retry_ms: Option<u64>,
    /// `data:`; line breaks (CRLF, CR, LF) become several `data:` lines.
    pub data: Option<String>,
    /// A `:` comment line (one line), written first.
    pub comment: Option<String>,
}

fn one_line(field: &'static str, v: &str) -> Result<(), SseError> {
    if v.contains(['\r', '\n']) {
        Err(SseError::LineBreak { field })
    } else {
        Ok(())
    }
}

/// Splits on CRLF, CR or LF, treating CRLF as one break.
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(r)
            }
            Some(i) => {
                let skip = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + skip..]);
                Some(&r[..i])
            }
        }
    })
}

impl Event {
    /// Writes the event, ending with the blank line that dispatches it.
    pub fn encode(&self) -> Result<String, SseError> {
        let mut out = String::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded event to `out` (nothing is appended on error).
    pub fn encode_into(&self, out: &mut String) -> Result<(), SseError> {
        if let Some(c) = &self.comment {
            one_line("comment", c)?;
        }
        if let Some(e) = &self.event {
            one_line("event", e)?;
        }
        if let Some(id) = &self.id {
            one_line("id", id)?;
            if id.contains('\0') {
                return Err(SseError::NulInId);
            }
        }
        if let Some(c) = &self.comment {
            let _ = writeln!(out, ":{}{c}", if c.is_empty() { "" } else { " " });
        }
        if let Some(e) = &self.event {
            let _ = writeln!(out, "event: {e}");
        }
        if let Some(id) = &self.id {
            let _ = writeln!(out, "id: {id}");
        }
        if let Some(ms) = self.retry_ms {
            let _ = writeln!(out, "retry: {ms}");
        }
        if let Some(data) = &self.data {
            for line in split_lines(data) {
                let _ = writeln!(out, "data: {line}");
            }
        }
        out.push('\n');
        Ok(())
    }
}

/// A comment-only frame that keeps idle connections (and proxies) alive.
/// Clients ignore it; the spec's sample client skips blocks without `data:`.
pub fn heartbeat() -> &'static str {
    ": keep-alive\n\n"
}

/// An event as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEvent {
    /// The event type (`message` when the stream gave none).
    pub event: String,
    /// The data, lines joined with LF.
    pub data: String,
    /// The last event id at dispatch (carries over from earlier events).
    pub id: String,
}

/// An incremental SSE decoder: feed it chunks as they arrive.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    utf8_pending: Vec<u8>,
    started: bool,
    after_cr: bool,
    line: String,
    data: String,
    event_type: String,
    last_event_id: String,
    retry_ms: Option<u64>,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen (what to send as `Last-Event-ID` on reconnect).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time the server asked for, if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feeds a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<DecodedEvent> {
        let mut out = Vec::new();
        self.utf8_pending.extend_from_slice(chunk);
        let bytes = std::mem::take(&mut self.utf8_pending);
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.chars(s, &mut out);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // from_utf8 vouched for `valid`.
                    self.chars(std::str::from_utf8(valid).unwrap_or_default(), &mut out);
                    match e.error_len() {
                        Some(n) => {
                            self.chars("\u{FFFD}", &mut out);
                            rest = &after[n..];
                        }
                        None => {
                            // An incomplete sequence at the end: wait for more bytes.
                            self.utf8_pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Ends the stream: an incomplete UTF-8 sequence becomes U+FFFD and an
    /// event without its blank line is discarded, as the WHATWG rules require.
    pub fn finish(&mut self) -> Vec<DecodedEvent> {
        let mut out = Vec::new();
        if !self.utf8_pending.is_empty() {
            self.utf8_pending.clear();
            self.chars("\u{FFFD}", &mut out);
        }
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        out
    }

    fn chars(&mut self, s: &str, out: &mut Vec<DecodedEvent>) {
        for c in s.chars() {
            if !self.started {
                self.started = true;
                if c == '\u{FEFF}' {
                    continue;
                }
            }
            if self.after_cr {
                self.after_cr = false;
                if c == '\n' {
                    continue;
                }
            }
            match c {
                '\r' => {
                    self.after_cr = true;
                    self.end_line(out);
                }
                '\n' => self.end_line(out),
                c => self.line.push(c),
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<DecodedEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_event_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits but too large for u64: keep the previous value.
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<DecodedEvent>) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = std::mem::take(&mut self.event_type);
        out.push(DecodedEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8]) -> Vec<DecodedEvent> {
        let mut d = Decoder::new();
        let mut v = d.feed(input);
        v.extend(d.finish());
        v
    }

    fn ev(event: &str, data: &str, id: &str) -> DecodedEvent {
        DecodedEvent {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    #[test]
    fn encoder_shapes() {
        let e = Event {
            event: Some("complete".into()),
            id: Some("2".into()),
            data: Some("{\"a\":1}".into()),
            ..Event::default()
        };
        assert_eq!(
            e.encode().unwrap(),
            "event: complete\nid: 2\ndata: {\"a\":1}\n\n"
        );
        let e = Event {
            data: Some("a\r\nb\rc\nd".into()),
            ..Event::default()
        };
        assert_eq!(
            e.encode().unwrap(),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        let e = Event {
            data: Some("x\n".into()),
            ..Event::default()
        };
        assert_eq!(e.encode().unwrap(), "data: x\ndata: \n\n");
        let e = Event {
            retry_ms: Some(2500),
            ..Event::default()
        };
        assert_eq!(e.encode().unwrap(), "retry: 2500\n\n");
        let e = Event {
            comment: Some("hi".into()),
            ..Event::default()
        };
        assert_eq!(e.encode().unwrap(), ": hi\n\n");
        assert_eq!(heartbeat(), ": keep-alive\n\n");
    }

    #[test]
    fn encoder_rejects() {
        let bad = [
            Event {
                event: Some("a\nb".into()),
                ..Event::default()
            },
            Event {
                event: Some("a\rb".into()),
                ..Event::default()
            },
            Event {
                id: Some("1\n".into()),
                ..Event::default()
            },
            Event {
                id: Some("1\0".into()),
                ..Event::default()
            },
            Event {
                comment: Some("x\r\ny".into()),
                ..Event::default()
            },
        ];
        for e in bad {
            let mut out = String::from("keep");
            assert!(e.encode_into(&mut out).is_err(), "{e:?}");
            assert_eq!(out, "keep");
        }
    }

    #[test]
    fn decoder_table() {
        let cases: Vec<(&[u8], Vec<DecodedEvent>)> = vec![
            (b"data: hi\n\n", vec![ev("message", "hi", "")]),
            (b"data:hi\n\n", vec![ev("message", "hi", "")]),
            (b"data:  hi\n\n", vec![ev("message", " hi", "")]),
            (b"data: a\ndata: b\n\n", vec![ev("message", "a\nb", "")]),
            (
                b"data: a\r\ndata: b\r\n\r\n",
                vec![ev("message", "a\nb", "")],
            ),
            (b"data: a\rdata: b\r\r", vec![ev("message", "a\nb", "")]),
            (b"\xEF\xBB\xBFdata: bom\n\n", vec![ev("message", "bom", "")]),
            (b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", vec![]), // second BOM is part of the field name
            (b": comment\ndata: x\n\n", vec![ev("message", "x", "")]),
            (
                b"event: complete\ndata: {}\n\n",
                vec![ev("complete", "{}", "")],
            ),
            (b"event: a\n\ndata: x\n\n", vec![ev("message", "x", "")]), // type reset by empty dispatch
            (
                b"id: 1\ndata: a\n\ndata: b\n\n",
                vec![ev("message", "a", "1"), ev("message", "b", "1")],
            ),
            (
                b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n",
                vec![ev("message", "a", "1"), ev("message", "b", "1")],
            ),
            (b"id\ndata: a\n\n", vec![ev("message", "a", "")]),
            (b"data\n\n", vec![ev("message", "", "")]),
            (b"data:\n\n", vec![ev("message", "", "")]),
            (b"event: x\n\n", vec![]),
            (b"data: no end", vec![]),
            (b"data: no blank line\n", vec![]),
            (b"dat: x\n\n", vec![]),
            (b"data: \xFF\n\n", vec![ev("message", "\u{FFFD}", "")]),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode_all(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn retry_rules() {
        let mut d = Decoder::new();
        d.feed(b"retry: 1500\n\n");
        assert_eq!(d.retry_ms(), Some(1500));
        d.feed(b"retry: 1.5\n\nretry: -1\n\nretry:\n\nretry: 99999999999999999999999\n\n");
        assert_eq!(d.retry_ms(), Some(1500));
        d.feed(b"retry:20\n\n");
        assert_eq!(d.retry_ms(), Some(20));
    }

    #[test]
    fn crlf_split_across_chunks_is_one_break() {
        let mut d = Decoder::new();
        let mut got = d.feed(b"data: a\r");
        got.extend(d.feed(b"\ndata: b\r"));
        got.extend(d.feed(b"\n\r"));
        got.extend(d.feed(b"\n"));
        assert_eq!(got, vec![ev("message", "a\nb", "")]);
    }

    #[test]
    fn utf8_split_across_chunks() {
        let input = "data: é🎮\n\n".as_bytes();
        for i in 0..=input.len() {
            let mut d = Decoder::new();
            let mut got = d.feed(&input[..i]);
            got.extend(d.feed(&input[i..]));
            assert_eq!(got, vec![ev("message", "é🎮", "")], "split at {i}");
        }
        let mut d = Decoder::new();
        assert!(d.feed(b"data: \xC3").is_empty());
        assert_eq!(d.finish(), vec![]);
    }

    /// The spec's sample client: split on "\n\n", take the first `event:` and
    /// `data:` lines, trim. Our frames must parse with it.
    fn spec_sample_client(stream: &str) -> Vec<(String, String)> {
        stream
            .split("\n\n")
            .filter_map(|raw| {
                let ev = raw.split('\n').find(|l| l.starts_with("event:"))?;
                let data = raw.split('\n').find(|l| l.starts_with("data:"))?;
                Some((
                    ev.replacen("event:", "", 1).trim().to_owned(),
                    data.replacen("data:", "", 1).trim().to_owned(),
                ))
            })
            .collect()
    }

    #[test]
    fn spec_sample_client_reads_our_frames() {
        let mut s = String::new();
        s.push_str(heartbeat());
        Event {
            event: Some("pending".into()),
            id: Some("1".into()),
            data: Some("{\"status\":\"pending\"}".into()),
            ..Event::default()
        }
        .encode_into(&mut s)
        .unwrap();
        Event {
            retry_ms: Some(1000),
            ..Event::default()
        }
        .encode_into(&mut s)
        .unwrap();
        Event {
            event: Some("complete".into()),
            id: Some("2".into()),
            data: Some("{\"status\":\"completed\"}".into()),
            ..Event::default()
        }
        .encode_into(&mut s)
        .unwrap();
        assert_eq!(
            spec_sample_client(&s),
            vec![
                ("pending".to_owned(), "{\"status\":\"pending\"}".to_owned()),
                (
                    "complete".to_owned(),
                    "{\"status\":\"completed\"}".to_owned()
                )
            ]
        );
    }

    fn normalize_breaks(s: &str) -> String {
        s.replace("\r\n", "\n").replace('\r', "\n")
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let line = "[^\r\n]{0,12}";
        (
            proptest::option::of("[a-z]{1,8}"),
            proptest::option::of("[^\r\n\0]{0,8}"),
            proptest::option::of(0u64..100_000),
            "(.|\r|\n|\r\n){0,24}",
            proptest::option::of(line),
        )
            .prop_map(|(event, id, retry_ms, data, comment)| Event {
                event,
                id,
                retry_ms,
                data: Some(data),
                comment,
            })
    }

    proptest! {
        /// Any list of events, encoded then decoded with the input split at
        /// every byte offset, decodes to the same events.
        #[test]
        fn roundtrip_at_every_split(events in proptest::collection::vec(arb_event(), 1..5)) {
            let mut wire = String::new();
            for e in &events {
                e.encode_into(&mut wire).unwrap();
            }
            let mut want = Vec::new();
            let mut last_id = String::new();
            for e in &events {
                if let Some(id) = &e.id { last_id = id.clone(); }
                want.push(DecodedEvent {
                    event: e.event.clone().unwrap_or_else(|| "message".into()),
                    data: normalize_breaks(e.data.as_deref().unwrap_or("")),
                    id: last_id.clone(),
                });
            }
            let bytes = wire.as_bytes();
            for split in 0..=bytes.len() {
                let mut d = Decoder::new();
                let mut got = d.feed(&bytes[..split]);
                got.extend(d.feed(&bytes[split..]));
                got.extend(d.finish());
                prop_assert_eq!(&got, &want, "split at {}", split);
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for b in bytes { got.extend(d.feed(std::slice::from_ref(b))); }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(d.retry_ms(), events.iter().rev().find_map(|e| e.retry_ms));
        }

        /// The decoder never panics on arbitrary bytes, split anywhere.
        #[test]
        fn decoder_total(bytes in proptest::collection::vec(any::<u8>(), 0..200), split in 0usize..200) {
            let split = split.min(bytes.len());
            let mut d = Decoder::new();
            let _ = d.feed(&bytes[..split]);
            let _ = d.feed(&bytes[split..]);
            let _ = d.finish();
        }
    }
}
