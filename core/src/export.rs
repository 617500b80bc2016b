//! The operator's backup format: `GET /api/v1/admin/export` writes it and
//! `POST /api/v1/admin/import` reads it. NDJSON, one [`Record`] a line:
//! a header, then each PID followed by its keys (hashes, never keys), their
//! current quota counts, its webhook and its links, then an end line with
//! the count of records before it (an import of a cut-off file is refused
//! at the end, after what it held was applied: every record is idempotent).
//!
//! No sessions: they live minutes, and a move between stores is done with
//! the service stopped or drained. Webhook secrets are included (a restore
//! without them would break every integrator's signature check): an export
//! is as sensitive as the store itself.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::id::{KeyId, Pid};
use crate::request::MAX_PLATFORM_ID_DIGITS;
use crate::time::Timestamp;
use crate::webhook::WebhookConfig;
use crate::wire::{KeyRecord, PidRecord};

/// The header's `format`.
pub const FORMAT: &str = "dock-export";
/// The format's version; an import refuses a higher one.
pub const VERSION: u32 = 1;
/// The longest line an import reads (a webhook with its secrets and URL is
/// the longest record, well under this).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Record {
    /// The first line.
    #[serde(rename_all = "camelCase")]
    Header {
        /// [`FORMAT`].
        format: String,
        /// [`VERSION`].
        version: u32,
        /// The store it came from (`redis`, `sqlite`).
        store: String,
        /// That store's schema version.
        schema_version: u32,
        /// When the export started.
        exported_at: Timestamp,
    },
    /// A PID.
    Pid {
        /// Its record.
        record: PidRecord,
    },
    /// An API key: its hash (what the store looks keys up by) and record.
    #[serde(rename_all = "camelCase")]
    Key {
        /// Lower-case hex SHA-256 of the key.
        key_hash: String,
        /// Its record.
        record: KeyRecord,
    },
    /// A key's create count in one quota window (the current one).
    #[serde(rename_all = "camelCase")]
    Quota {
        /// The key's PID.
        pid: Pid,
        /// The key.
        key_id: KeyId,
        /// The window's index ([`crate::quota::Quota::window_index`]).
        window: u64,
        /// Creates counted in it.
        count: u64,
    },
    /// A PID's webhook, secrets included.
    Webhook {
        /// The PID.
        pid: Pid,
        /// Its webhook.
        config: WebhookConfig,
    },
    /// One link of a PID's dataset.
    #[serde(rename_all = "camelCase")]
    Link {
        /// The PID.
        pid: Pid,
        /// The Discord user.
        discord_id: String,
        /// The Roblox account.
        roblox_id: String,
    },
    /// The last line: how many records came before it, the header included.
    End {
        /// Lines before this one.
        records: u64,
    },
}

impl Record {
    /// The header an export starts with.
    pub fn header(store: &str, schema_version: u32, now: Timestamp) -> Self {
        Record::Header {
            format: FORMAT.into(),
            version: VERSION,
            store: store.into(),
            schema_version,
            exported_at: now,
        }
    }

    /// The line: JSON and a newline.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// What an import did, by record kind (`data` of `POST /api/v1/admin/import`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// PIDs created or replaced.
    pub pids: u64,
    /// Keys written.
    pub keys: u64,
    /// Quota counts raised (never lowered).
    pub quotas: u64,
    /// Webhooks written.
    pub webhooks: u64,
    /// Links written.
    pub links: u64,
}

fn bad_line(line_no: u64, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidImport,
        format!("line {line_no}: {reason}"),
    )
}

fn platform_id(line_no: u64, field: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > MAX_PLATFORM_ID_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_line(
            line_no,
            format!("{field} must be 1–{MAX_PLATFORM_ID_DIGITS} decimal digits"),
        ));
    }
    Ok(())
}

/// Reads line `line_no` (1-based) of an import: a record whose fields are
/// valid, or 400 `invalid_import` naming the line. The first line must be a
/// header of this format at a version this build reads.
pub fn parse_line(line_no: u64, line: &[u8]) -> Result<Record, ApiError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(bad_line(
            line_no,
            format!("longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    let record: Record = serde_json::from_slice(line).map_err(|e| bad_line(line_no, e))?;
    match &record {
        Record::Header {
            format, version, ..
        } => {
            if line_no != 1 || format != FORMAT {
                return Err(bad_line(
                    line_no,
                    "only the first line is a dock-export header",
                ));
            }
            if *version > VERSION {
                return Err(bad_line(
                    line_no,
                    format!("format version {version} is newer than this build reads ({VERSION})"),
                ));
            }
        }
        _ if line_no == 1 => {
            return Err(bad_line(
                line_no,
                "the first line must be the dock-export header",
            ));
        }
        Record::Pid { record } => {
            if record.name.chars().count() > crate::request::Limits::default().max_name_chars {
                return Err(bad_line(line_no, "the PID's name is too long"));
            }
        }
        Record::Key { key_hash, record } => {
            if key_hash.len() != 64
                || !key_hash
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(bad_line(
                    line_no,
                    "keyHash must be 64 lower-case hex digits",
                ));
            }
            if !record.quota.is_valid() {
                return Err(bad_line(line_no, "the key's quota is out of bounds"));
            }
        }
        Record::Quota { .. } | Record::End { .. } => {}
        Record::Webhook { config, .. } => {
            if config.secrets.is_empty() || config.url.len() > crate::webhook::MAX_URL_LEN {
                return Err(bad_line(
                    line_no,
                    "a webhook needs a URL and at least one secret",
                ));
            }
        }
        Record::Link {
            discord_id,
            roblox_id,
            ..
        } => {
            platform_id(line_no, "discordId", discord_id)?;
            platform_id(line_no, "robloxId", roblox_id)?;
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::Quota;

    fn pid(p: &str) -> Pid {
        Pid::parse(p).unwrap()
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::header("sqlite", 4, Timestamp::from_millis(1_800_000_000_000)),
            Record::Pid {
                record: PidRecord {
                    pid: pid("app"),
                    name: "App".into(),
                    created_at: Timestamp::from_millis(1),
                    return_origins: vec!["https://app.example".into()],
                },
            },
            Record::Key {
                key_hash: "ab".repeat(32),
                record: KeyRecord {
                    key_id: KeyId::parse("key_0123456789abcdefABCDEF").unwrap(),
                    pid: pid("app"),
                    quota: Quota::default(),
                    created_at: Timestamp::from_millis(2),
                },
            },
            Record::Link {
                pid: pid("app"),
                discord_id: "111".into(),
                roblox_id: "900".into(),
            },
            Record::End { records: 4 },
        ]
    }

    #[test]
    fn every_record_reads_back_from_its_line() {
        for (i, r) in sample().into_iter().enumerate() {
            let line = r.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(
                parse_line(i as u64 + 1, line.trim_end().as_bytes()).unwrap(),
                r
            );
        }
        assert!(
            sample()[0]
                .to_line()
                .starts_with(r#"{"type":"header","format":"dock-export","version":1,"#)
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let header = sample()[0].to_line();
        let cases: [(u64, &str); 8] = [
            (1, r#"{"type":"end","records":0}"#),
            (2, header.trim_end()),
            (
                1,
                r#"{"type":"header","format":"other","version":1,"store":"x","schemaVersion":1,"exportedAt":"2027-01-15T08:00:00.000Z"}"#,
            ),
            (
                1,
                r#"{"type":"header","format":"dock-export","version":2,"store":"x","schemaVersion":1,"exportedAt":"2027-01-15T08:00:00.000Z"}"#,
            ),
            (
                3,
                r#"{"type":"link","pid":"app","discordId":"12a","robloxId":"1"}"#,
            ),
            (
                3,
                r#"{"type":"link","pid":"no pid","discordId":"1","robloxId":"1"}"#,
            ),
            (4, r#"{"type":"key","keyHash":"XYZ","record":{}}"#),
            (5, r#"{"type":"session","sid":"x"}"#),
        ];
        for (n, line) in cases {
            let e = parse_line(n, line.as_bytes()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidImport, "{line}");
            assert!(
                e.message().starts_with(&format!("line {n}: ")),
                "{}",
                e.message()
            );
        }
        let long = vec![b' '; MAX_LINE_BYTES + 1];
        assert!(parse_line(9, &long).is_err());
    }
}
