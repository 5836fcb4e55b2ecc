//! `/diagnostics/*`: live figures from the OS (`/proc` on Linux), the metrics and the error
//! ring; never placeholders. A figure the platform cannot give is `null`.
//! Owns: the three diagnostics handlers. Never: writes anything.

use super::query;
use super::{ApiError, AppState, now_rfc3339};
use hyper::http::request::Parts;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `/proc` reports CPU time in USER_HZ ticks, 100 per second on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// The previous CPU sample, so `cpu_percent` covers the time since the last request.
static LAST_CPU_SAMPLE: Mutex<Option<(Instant, f64)>> = Mutex::new(None);

pub(super) fn connection(state: &AppState) -> Value {
    let listening_on = state.local_addr.get().copied();
    let interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    json!({
        "server": if *state.shutting_down.borrow() { "stopping" } else { "running" },
        "port": listening_on.map(|a| a.port()),
        "connections": {
            "active": state.service.metrics.active_connections.get(),
            "total": state.service.metrics.connections_total.get(),
            "max": state.limits().max_connections,
        },
        "mcp_sessions": state.mcp.sessions.len(),
        "network": {
            "interfaces": interfaces,
            "listening_on": listening_on.map(|a| a.to_string()),
        },
        "timestamp": now_rfc3339(),
    })
}

/// CPU seconds this process has used, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// A `kB` field of a `/proc` status-style file, in MiB.
fn proc_field_mib(text: &str, key: &str) -> Option<f64> {
    let kib: f64 = proc_field(text, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn proc_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

fn cpu_percent(state: &AppState) -> Option<f64> {
    let now = Instant::now();
    let used = cpu_seconds()?;
    let mut last = LAST_CPU_SAMPLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (since, used_before) = last.unwrap_or((state.service.started, 0.0));
    *last = Some((now, used));
    let wall = now.duration_since(since).as_secs_f64();
    (wall > 0.0).then(|| (used - used_before) / wall * 100.0)
}

pub(super) fn performance(state: &AppState) -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let rss_mb = proc_field_mib(&status, "VmRSS");
    let total_mb = proc_field_mib(&meminfo, "MemTotal");
    let percent = rss_mb.zip(total_mb).map(|(rss, total)| rss / total * 100.0);
    let open_files = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count());
    let latency = &state.service.metrics.all_requests;
    json!({
        "cpu_percent": cpu_percent(state),
        "memory": {
            "rss_mb": rss_mb,
            "vms_mb": proc_field_mib(&status, "VmSize"),
            "percent": percent,
        },
        "threads": proc_field(&status, "Threads").and_then(|t| t.parse::<u64>().ok()),
        "open_files": open_files,
        "command_history": {
            "written": state.service.history.written(),
            "dropped": state.service.history.dropped(),
        },
        "response_times": {
            "p50_ms": latency.quantile_ms(0.50),
            "p95_ms": latency.quantile_ms(0.95),
            "p99_ms": latency.quantile_ms(0.99),
            "requests": latency.count(),
        },
        "timestamp": now_rfc3339(),
    })
}

/// Most errors one request may ask for.
const MAX_ERRORS: u64 = 1_000;

pub(super) fn errors(state: &AppState, parts: &Parts) -> Result<Value, ApiError> {
    let pairs = query::pairs(parts);
    let limit = query::integer(&pairs, "limit", 10, 1..=MAX_ERRORS)?;
    let since = match pairs.iter().rev().find(|(k, _)| k == "since") {
        None => None,
        Some((_, text)) => Some(parse_timestamp(text).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "since must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z or \
                 2026-01-01T02:00:00+02:00, got {text:?}"
            ))
        })?),
    };
    let (errors, total) = state.service.errors.recent(limit as usize, since);
    Ok(json!({ "errors": errors, "total": total }))
}

/// An RFC 3339 timestamp (`2026-01-01T00:00:00.5Z`, `…+02:00`; `t`, `z` and a space for
/// `T` also accepted) as a point in time; instants before 1970 become the epoch.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if end == 0 {
            return None;
        }
        let kept = &fraction[..end.min(9)];
        nanos = kept.parse::<u32>().ok()? * 10u32.pow(9 - kept.len() as u32);
        rest = &fraction[end..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                // An unencoded '+' in a query string arrives as a space.
                b'+' | b' ' => 1,
                b'-' => -1,
                _ => return None,
            };
            let offset = rest.get(1..)?;
            let (h, m) = offset.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(match u64::try_from(seconds) {
        Ok(seconds) => UNIX_EPOCH + Duration::new(seconds, nanos),
        Err(_) => UNIX_EPOCH,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_offsets_and_fractions() {
        let at = |s: &str| {
            parse_timestamp(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
        };
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(at("2026-01-01T00:00:00Z"), Some(1_767_225_600.0));
        assert_eq!(at("2026-01-01T02:00:00+02:00"), Some(1_767_225_600.0));
        assert_eq!(at("2025-12-31T23:00:00.5-01:00"), Some(1_767_225_600.5));
        assert_eq!(at("2024-02-29 12:00:00z"), Some(1_709_208_000.0));
        assert_eq!(
            at("0374-02-28T06:16:37+02:23"),
            Some(0.0),
            "before 1970: the epoch"
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+2:00",
            "x",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
