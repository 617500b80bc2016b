//! `GET /api/v1/admin/export` and `POST /api/v1/admin/import`: the
//! operator's backup and store-to-store move, NDJSON both ways (core's
//! `export` format, applied by [`crate::domain::transfer`]). Both stream:
//! an export is written a chunk at a time as the store is read, an import
//! applied a line at a time as it arrives, so neither is bounded by an
//! instance's memory; one line is bounded by `export::MAX_LINE_BYTES`.

use bytes::Bytes;
use dock_core::export::MAX_LINE_BYTES;
use dock_core::{ApiError, ErrorCode, Settings};
use futures::SinkExt as _;
use http_body_util::BodyExt as _;
use spin_sdk::http::Request;

use crate::domain::transfer::{Importer, export as export_records};
use crate::env::now;
use crate::http::{Response, header, ok};
use crate::log::log;
use crate::store::{Backend, Store};

/// How much of an export is gathered before it is written.
const CHUNK_BYTES: usize = 32 * 1024;

/// The media type of both bodies.
const NDJSON: &str = "application/x-ndjson";

/// `GET /api/v1/admin/export`: every PID, key hash, quota count, webhook
/// and link, as NDJSON (no sessions). The store is checked before the
/// answer starts; a store failure after that ends the body without its end
/// line, which an import refuses.
pub async fn export(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    crate::auth::admin(&req, settings)?;
    let store = Store::open(settings).await?;
    store.schema_version().await?;
    let (mut tx, body) = spin_sdk::http::body::stream::<Bytes>();
    spin_sdk::wasip3::spawn(async move {
        let mut buf = String::new();
        let kind = store.kind();
        let result = export_records(&store, kind, now(), &mut async |record| {
            buf.push_str(&record.to_line());
            if buf.len() < CHUNK_BYTES && !matches!(record, dock_core::export::Record::End { .. }) {
                return true;
            }
            tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_ok()
        })
        .await;
        if let Err(e) = result {
            log!("export ended by the store: {e}");
            crate::store::note_error();
        }
    });
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, NDJSON)
        .header(
            http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"dock-export.ndjson\"",
        )
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body.boxed_unsync())
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))
}

/// `POST /api/v1/admin/import`: applies an export, a line at a time; what
/// it applied by kind. A bad line is a 400 `invalid_import` naming it (the
/// lines before it stay applied; every record is idempotent).
pub async fn import(req: Request, settings: &'static Settings) -> Result<Response, ApiError> {
    crate::auth::admin(&req, settings)?;
    match header(&req, "content-type").map(|c| c.split(';').next().unwrap_or("").trim()) {
        None => {}
        Some(c) if c.eq_ignore_ascii_case(NDJSON) => {}
        Some(c) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "an import is {NDJSON}, not {}",
                    c.chars().take(100).collect::<String>()
                ),
            ));
        }
    }
    let store = Store::open(settings).await?;
    store.schema_version().await?;
    let mut importer = Importer::new(&settings.webhook_origins);
    let mut body = req.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidImport,
                format!("could not read the body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
            importer
                .line(&store, &buf[start..start + end], now())
                .await?;
            start += end + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE_BYTES {
            // Refused by its length, before more of it is buffered.
            importer.line(&store, &buf, now()).await?;
        }
    }
    if !buf.is_empty() {
        importer.line(&store, &buf, now()).await?;
    }
    Ok(ok(importer.finish()?, now(), None))
}
