//! The ring of recent errors behind `/diagnostics/errors`: bounded, newest kept.
//! Owns: [`ErrorLog`]. Never: takes its lock on a request that succeeds.
//! Limits: [`CAPACITY`] entries.

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// Errors kept; older ones fall off.
const CAPACITY: usize = 1_000;

/// One recorded error.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEntry {
    /// When it happened, RFC 3339.
    pub timestamp: String,
    /// `ERROR` for server faults, `WARNING` for limits a plugin hit.
    pub level: &'static str,
    /// What happened.
    pub message: String,
    /// The API error code.
    pub code: &'static str,
    /// Where: request id, plugin, route.
    pub context: Value,
    #[serde(skip)]
    at: SystemTime,
}

/// Recent errors, newest last. Only failing requests take the lock.
#[derive(Debug, Default)]
pub struct ErrorLog {
    entries: Mutex<VecDeque<ErrorEntry>>,
}

impl ErrorLog {
    /// Records one error, dropping the oldest when full.
    pub fn record(&self, level: &'static str, code: &'static str, message: String, context: Value) {
        let at = SystemTime::now();
        let entry = ErrorEntry {
            timestamp: humantime::format_rfc3339_millis(at).to_string(),
            level,
            message,
            code,
            context,
            at,
        };
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() == CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Up to `limit` errors at or after `since`, newest first, and how many matched in all.
    pub fn recent(&self, limit: usize, since: Option<SystemTime>) -> (Vec<ErrorEntry>, usize) {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let matching = entries
            .iter()
            .rev()
            .filter(|e| since.is_none_or(|since| e.at >= since));
        let total = matching.clone().count();
        (matching.take(limit).cloned().collect(), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_the_newest_and_filters_by_time() {
        let log = ErrorLog::default();
        for n in 0..CAPACITY + 5 {
            log.record("ERROR", "INTERNAL_ERROR", format!("e{n}"), Value::Null);
        }
        let (newest, total) = log.recent(2, None);
        assert_eq!(total, CAPACITY);
        assert_eq!(newest[0].message, format!("e{}", CAPACITY + 4));
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(log.recent(10, Some(later)).1, 0);
    }
}
