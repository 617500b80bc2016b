//! All Spin variables, read once per instance into dock-core's typed `Settings`.
//!
//! Variables are declared in `spin.toml` (with defaults) and mapped into the
//! component; nothing comes from environment variables. A bad value is a 500
//! `config_error` naming the variable, logged once per instance.

use std::sync::OnceLock;

use dock_core::config::{ConfigError, names};
use dock_core::{ApiError, Settings};

static SETTINGS: OnceLock<Result<Settings, ConfigError>> = OnceLock::new();

/// The settings, read on first use. Variables do not change while a Spin app
/// runs, so caching them in an instance-wide static holds nothing request-specific.
pub async fn settings() -> Result<&'static Settings, ApiError> {
    if let Some(s) = SETTINGS.get() {
        return s.as_ref().map_err(|e| ApiError::from(e.clone()));
    }
    let mut values = Vec::with_capacity(names::ALL.len());
    for name in names::ALL {
        match spin_sdk::variables::get(name).await {
            Ok(v) => values.push((name, Some(v))),
            Err(spin_sdk::variables::Error::Undefined(_)) => values.push((name, None)),
            Err(e) => {
                let err = ConfigError {
                    variable: name,
                    reason: format!("cannot be read: {e}"),
                };
                crate::log::log!("{err}");
                return Err(err.into());
            }
        }
    }
    let parsed = Settings::from_lookup(|name| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.clone())
    });
    if let Err(e) = &parsed {
        crate::log::log!("{e}");
    }
    let s = SETTINGS.get_or_init(|| parsed);
    s.as_ref().map_err(|e| ApiError::from(e.clone()))
}
