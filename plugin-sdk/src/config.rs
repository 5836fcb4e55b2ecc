//! The plugin's configuration: the `[config]` table of its manifest, validated by the host
//! against the schema declared with [`crate::Metadata::config`].

use serde::de::DeserializeOwned;

/// Reads the configuration into `T`.
///
/// # Errors
///
/// When the configuration does not fit `T`; the message names the problem.
pub fn get<T: DeserializeOwned>() -> Result<T, crate::CallError> {
    let json = crate::bindings::waygate::plugin::config::get_config_json();
    serde_json::from_str(&json)
        .map_err(|e| crate::CallError::Failed(format!("plugin config does not fit: {e}")))
}
