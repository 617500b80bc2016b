//! Who is calling: an integrator's API key (scoped to one PID) or the operator's admin token.

use dock_core::id::{KeyHash, constant_time_eq, hash_api_key};
use dock_core::wire::KeyRecord;
use dock_core::{ApiError, ErrorCode, Settings};
use spin_sdk::http::Request;

use crate::http::bearer;
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
    let token = bearer(req)
        .filter(|t| t.len() <= MAX_TOKEN_LEN)
        .ok_or_else(ApiError::unauthorized)?;
    let hash = hash_api_key(token);
    let key = store
        .lookup_key(hash.as_str())
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Caller { key, hash })
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
