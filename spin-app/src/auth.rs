//! Who is calling: an integrator's API key (scoped to one PID) or the operator's admin token.

use dock_core::id::{constant_time_eq, hash_api_key};
use dock_core::wire::KeyRecord;
use dock_core::{ApiError, ErrorCode, Settings};
use spin_sdk::http::Request;

use crate::http::bearer;
use crate::store::Store;

/// Longest bearer token we bother hashing.
const MAX_TOKEN_LEN: usize = 256;

/// The API key presented as `Authorization: Bearer <key>`. Only its SHA-256
/// is looked up; the secret is neither stored nor logged.
pub async fn api_key(req: &Request, store: &Store) -> Result<KeyRecord, ApiError> {
    let token = bearer(req)
        .filter(|t| t.len() <= MAX_TOKEN_LEN)
        .ok_or_else(ApiError::unauthorized)?;
    store
        .lookup_key(hash_api_key(token).as_str())
        .await?
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
