//! Logging into the host's log, tagged by the host with the plugin's name and request id.

use crate::bindings::waygate::plugin::log::{Level, log};

/// Logs a debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

/// Logs an info line.
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

/// Logs a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

/// Logs an error.
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}

/// Logs an info line with key-value fields.
pub fn info_with(message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    log(Level::Info, message, &fields);
}

/// Field the host looks for to report a panic's message as the reason a call trapped.
const PANIC_FIELD: &str = "waygate.panic";

/// wasm32 builds abort on panic, so a panic cannot be turned into a typed error; the next best
/// thing is to hand its message to the host before the trap, so the caller learns why.
pub(crate) fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.to_string();
            log(
                Level::Error,
                &message,
                &[(PANIC_FIELD.to_owned(), "true".to_owned())],
            );
        }));
    });
}
