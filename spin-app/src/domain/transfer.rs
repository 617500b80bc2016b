//! Export and import of the operator's data (core's [`dock_core::export`]
//! format) over any [`Backend`]: a backup, or a move from the embedded
//! SQLite store to Redis.

use std::collections::HashSet;

use dock_core::export::{ImportReport, Record};
use dock_core::wire::AccountLink;
use dock_core::{ApiError, ErrorCode, Pid, Timestamp};

use crate::store::{Backend, StoreError};

/// PIDs read per page while exporting.
const PID_PAGE: usize = 100;
/// Links read per page while exporting.
const LINK_PAGE: usize = 500;

/// Writes every record of the store, in order (header; each PID, its keys
/// and their current quota counts, its webhook, its links; the end line),
/// through `emit`, which answers false when the reader is gone (the export
/// stops there). The end line is only written after everything else: a
/// cut-off export has none, and an import refuses it.
pub async fn export(
    store: &impl Backend,
    store_kind: &str,
    now: Timestamp,
    emit: &mut impl AsyncFnMut(Record) -> bool,
) -> Result<(), StoreError> {
    let mut records = 1u64;
    let header = Record::header(store_kind, store.schema_version().await?, now);
    if !emit(header).await {
        return Ok(());
    }
    let mut after: Option<Pid> = None;
    loop {
        let page = store.list_pids(after.as_ref(), PID_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.pid.clone());
        for rec in page {
            let pid = rec.pid.clone();
            let mut out = vec![Record::Pid { record: rec }];
            for key in store.keys_of(&pid).await? {
                let Some(key_hash) = store.key_hash(&key.key_id).await? else {
                    continue; // revoked meanwhile
                };
                let window = key.quota.window_index(now);
                let count = store.quota_count(&key, window).await?;
                let key_id = key.key_id.clone();
                out.push(Record::Key {
                    key_hash,
                    record: key,
                });
                if count > 0 {
                    out.push(Record::Quota {
                        pid: pid.clone(),
                        key_id,
                        window,
                        count,
                    });
                }
            }
            if let Some(config) = store.webhook(&pid).await? {
                out.push(Record::Webhook {
                    pid: pid.clone(),
                    config,
                });
            }
            for r in out {
                records += 1;
                if !emit(r).await {
                    return Ok(());
                }
            }
            let mut cursor: Option<String> = None;
            loop {
                let (links, next) = store.links_page(&pid, cursor.as_deref(), LINK_PAGE).await?;
                for l in links {
                    records += 1;
                    let link = Record::Link {
                        pid: pid.clone(),
                        discord_id: l.discord_id,
                        roblox_id: l.roblox_id,
                    };
                    if !emit(link).await {
                        return Ok(());
                    }
                }
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
    }
    emit(Record::End { records }).await;
    Ok(())
}

/// Applies an export line by line. Every record is idempotent: a PID, key,
/// webhook or link in the file replaces the store's one of the same
/// identity (nothing else is removed), a quota count only ever raises the
/// store's count of the same current window (older windows are skipped).
/// A failed line stops the import; the lines before it stay applied, so the
/// fix is to correct the file (or the settings) and import it again.
pub struct Importer<'a> {
    webhook_origins: &'a [String],
    line_no: u64,
    ended: bool,
    known_pids: HashSet<Pid>,
    report: ImportReport,
}

fn refused(line_no: u64, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidImport,
        format!("line {line_no}: {reason}"),
    )
}

impl<'a> Importer<'a> {
    /// An import checking webhook URLs against `webhook_origins` (the
    /// operator's allow list, as `PUT …/webhook` does).
    pub fn new(webhook_origins: &'a [String]) -> Self {
        Importer {
            webhook_origins,
            line_no: 0,
            ended: false,
            known_pids: HashSet::new(),
            report: ImportReport::default(),
        }
    }

    async fn require_pid(&mut self, store: &impl Backend, pid: &Pid) -> Result<(), ApiError> {
        if self.known_pids.contains(pid) {
            return Ok(());
        }
        if store.load_pid(pid).await?.is_none() {
            return Err(refused(
                self.line_no,
                format!("PID {pid} is neither in the file before this line nor in the store"),
            ));
        }
        self.known_pids.insert(pid.clone());
        Ok(())
    }

    /// Applies the next line (without its newline).
    pub async fn line(
        &mut self,
        store: &impl Backend,
        line: &[u8],
        now: Timestamp,
    ) -> Result<(), ApiError> {
        self.line_no += 1;
        let n = self.line_no;
        if self.ended {
            return Err(refused(n, "nothing may follow the end line"));
        }
        match dock_core::export::parse_line(n, line)? {
            Record::Header { .. } => {}
            Record::Pid { record } => {
                if !store.create_pid(&record).await? {
                    store.update_pid(&record).await?;
                }
                self.known_pids.insert(record.pid);
                self.report.pids += 1;
            }
            Record::Key { key_hash, record } => {
                self.require_pid(store, &record.pid).await?;
                match store.key_hash(&record.key_id).await? {
                    // The same key: its record (quota) replaced.
                    Some(h) if h == key_hash => {
                        store.update_key(&record).await?;
                    }
                    // The same key id under another secret: the old one stops working.
                    Some(_) => {
                        store.revoke_key(&record.key_id).await?;
                        store.issue_key(&key_hash, &record).await?;
                    }
                    None => store.issue_key(&key_hash, &record).await?,
                }
                self.report.keys += 1;
            }
            Record::Quota {
                pid,
                key_id,
                window,
                count,
            } => {
                let key = store
                    .key_by_id(&key_id)
                    .await?
                    .filter(|k| k.pid == pid)
                    .ok_or_else(|| refused(n, format!("no key {key_id} in PID {pid}")))?;
                if window == key.quota.window_index(now) {
                    store
                        .raise_quota(&key, window, count, key.quota.window_end(now))
                        .await?;
                    self.report.quotas += 1;
                }
            }
            Record::Webhook { pid, config } => {
                self.require_pid(store, &pid).await?;
                dock_core::webhook::check_url(&config.url, self.webhook_origins).map_err(|e| {
                    refused(
                        n,
                        format!("webhook of {pid}: its URL {e} (webhook_origin_a … _d)"),
                    )
                })?;
                store.put_webhook(&pid, &config).await?;
                self.report.webhooks += 1;
            }
            Record::Link {
                pid,
                discord_id,
                roblox_id,
            } => {
                self.require_pid(store, &pid).await?;
                let link = AccountLink {
                    discord_id,
                    roblox_id,
                };
                store.put_link(&pid, &link).await?;
                self.report.links += 1;
            }
            Record::End { records } => {
                if records != n - 1 {
                    return Err(refused(
                        n,
                        format!(
                            "the end line counts {records} records, the file has {}",
                            n - 1
                        ),
                    ));
                }
                self.ended = true;
            }
        }
        Ok(())
    }

    /// What was applied; refused unless the end line came (a cut-off file).
    pub fn finish(self) -> Result<ImportReport, ApiError> {
        if self.line_no == 0 {
            return Err(refused(1, "the body is empty"));
        }
        if !self.ended {
            return Err(refused(
                self.line_no + 1,
                "the file ends without its end line (cut off?); what it held was applied, import it whole again",
            ));
        }
        Ok(self.report)
    }
}
