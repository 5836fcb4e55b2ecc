//! The plugin's private key-value store, kept by the host across calls and restarts.

use crate::bindings::waygate::plugin::kv as wit;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a store operation failed.
#[derive(Debug, Clone)]
pub enum Error {
    /// The write would exceed the plugin's quota.
    QuotaExceeded(String),
    /// The key is empty or too long.
    InvalidKey(String),
    /// The host's store failed, or a stored value could not be decoded.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::QuotaExceeded(m) => write!(f, "key-value quota exceeded: {m}"),
            Error::InvalidKey(m) => write!(f, "invalid key: {m}"),
            Error::Failed(m) => write!(f, "key-value store failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::KvError> for Error {
    fn from(error: wit::KvError) -> Self {
        match error {
            wit::KvError::QuotaExceeded(m) => Error::QuotaExceeded(m),
            wit::KvError::InvalidKey(m) => Error::InvalidKey(m),
            wit::KvError::StoreFailed(m) => Error::Failed(m),
        }
    }
}

/// Returns the bytes stored under `key`.
///
/// # Errors
///
/// See [`Error`].
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(wit::get(key)?)
}

/// Stores bytes under `key`.
///
/// # Errors
///
/// See [`Error`].
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    Ok(wit::set(key, value)?)
}

/// Removes `key`, returning whether it existed.
///
/// # Errors
///
/// See [`Error`].
pub fn delete(key: &str) -> Result<bool, Error> {
    Ok(wit::delete(key)?)
}

/// Lists up to `limit` keys starting with `prefix`, in byte order.
///
/// # Errors
///
/// See [`Error`].
pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
    Ok(wit::list_keys(prefix, limit)?)
}

/// Reads a JSON value stored with [`set_json`].
///
/// # Errors
///
/// See [`Error`]; a value that does not decode into `T` is [`Error::Failed`].
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Failed(format!("value under {key:?} does not decode: {e}"))),
    }
}

/// Stores a value as JSON.
///
/// # Errors
///
/// See [`Error`].
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Failed(e.to_string()))?;
    set(key, &bytes)
}
