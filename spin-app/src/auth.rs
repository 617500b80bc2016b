//! Who is calling: an integrator's API key (scoped to one PID) or the operator's admin token.

use dock_core::id::{KeyHash, constant_time_eq, hash_api_key};
use dock_core::wire::KeyRecord;
use dock_core::{ApiError, ErrorCode, Settings, Timestamp};
use spin_sdk::http::Request;

use crate::http::bearer;
use crate::key_cache;
use crate::store::{Backend, Store, StoreError};

/// Longest bearer token we bother hashing.
const MAX_TOKEN_LEN: usize = 256;

/// The API key presented as `Authorization: Bearer <key>`. Only its SHA-256
/// is looked up; the secret is neither stored nor logged.
pub async fn api_key(req: &Request, store: &Store) -> Result<KeyRecord, ApiError> {
    caller(req, store).await.map(|c| c.key)
}

/// An authenticated caller: its key's record, and the hash the key is stored
/// under, so a request that stays open (a long-poll, a stream) can notice the
/// key being revoked while it waits.
pub struct Caller {
    pub key: KeyRecord,
    hash: KeyHash,
}

impl Caller {
    /// False once the key has been revoked.
    pub async fn still_valid(&self, store: &Store) -> Result<bool, StoreError> {
        Ok(store.lookup_key(self.hash.as_str()).await?.is_some())
    }
}

/// [`api_key`], keeping what [`Caller::still_valid`] needs.
pub async fn caller(req: &Request, store: &Store) -> Result<Caller, ApiError> {
    let hash = presented(req)?;
    let key = store
        .lookup_key(hash.as_str())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller { key, hash })
}

/// The key of a create: this instance's cached copy of its record when the
/// store checks marks (Redis, `key_cache_seconds` > 0), else read now.
pub struct CreateKey {
    /// The record.
    pub record: KeyRecord,
    /// The mark it was cached at; `None`: read in this request.
    pub cached_mark: Option<String>,
    hash: KeyHash,
}

impl CreateKey {
    /// The caller's key for a create.
    pub async fn of(req: &Request, store: &Store, settings: &Settings) -> Result<Self, ApiError> {
        if uses_cache(store, settings) {
            let hash = presented(req)?;
            // The clock is read only where a cache entry's age matters.
            if let Some((record, mark)) = key_cache::get(hash.as_str(), crate::env::now()) {
                return Ok(CreateKey {
                    record,
                    cached_mark: Some(mark),
                    hash,
                });
            }
            return Self::read(store, hash).await;
        }
        let Caller { key, hash } = caller(req, store).await?;
        Ok(CreateKey {
            record: key,
            cached_mark: None,
            hash,
        })
    }

    /// The key read again after its cached copy was refused (changed or
    /// revoked): forgotten here, and a 401 if it no longer exists.
    pub async fn reread(self, store: &Store) -> Result<Self, ApiError> {
        key_cache::remove(self.hash.as_str());
        Self::read(store, self.hash).await
    }

    /// Checks that the key still exists (a 401, and forgotten here, if not).
    pub async fn confirm(&self, store: &Store) -> Result<(), ApiError> {
        if store.lookup_key(self.hash.as_str()).await?.is_some() {
            return Ok(());
        }
        key_cache::remove(self.hash.as_str());
        Err(ApiError::unauthorized())
    }

    /// After a create that read the key in this request and saw its `mark`:
    /// from the key's second such create in this instance, remembers the
    /// record if the store still holds it unchanged (see [`key_cache`] for
    /// why a second read). A failure only skips caching.
    pub async fn remember(
        &self,
        store: &Store,
        mark: Option<&str>,
        settings: &Settings,
        now: Timestamp,
    ) {
        let Some(mark) = mark else { return };
        if self.cached_mark.is_some() || !uses_cache(store, settings) {
            return;
        }
        // The first create with this key in this instance only notes it.
        if !key_cache::seen_again(self.hash.as_str(), now, settings.key_cache_secs) {
            return;
        }
        if let Ok(Some(again)) = store.lookup_key(self.hash.as_str()).await
            && again == self.record
        {
            key_cache::put(
                self.hash.as_str(),
                again,
                mark.to_owned(),
                now,
                settings.key_cache_secs,
            );
        }
    }

    async fn read(store: &Store, hash: KeyHash) -> Result<Self, ApiError> {
        let record = store
            .lookup_key(hash.as_str())
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(CreateKey {
            record,
            cached_mark: None,
            hash,
        })
    }
}

/// Whether creates use this instance's key cache: only where the store can
/// check a cached record's mark in the create's own step (Redis).
fn uses_cache(store: &Store, settings: &Settings) -> bool {
    settings.key_cache_secs > 0 && matches!(store, Store::Redis(_))
}

/// The hash of the presented bearer token (a 401 without one).
fn presented(req: &Request) -> Result<KeyHash, ApiError> {
    bearer(req)
        .filter(|t| t.len() <= MAX_TOKEN_LEN)
        .map(hash_api_key)
        .ok_or_else(ApiError::unauthorized)
}

/// Checks the admin token. With no `admin_token` configured the admin API
/// does not exist (404), so it cannot be probed.
pub fn admin(req: &Request, settings: &Settings) -> Result<(), ApiError> {
    let Some(expected) = &settings.admin_token else {
        return Err(ApiError::new(ErrorCode::NotFound, "no such route"));
    };
    match bearer(req) {
        Some(token) if constant_time_eq(token, expected) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing or invalid admin token",
        )),
    }
}
