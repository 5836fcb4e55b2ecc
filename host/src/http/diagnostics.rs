//! `/diagnostics/*`: live figures from the OS (`/proc` on Linux), the metrics and the error
//! ring; never placeholders. A figure the platform cannot give is `null`.

use super::query;
use super::{ApiError, AppState, now_rfc3339};
use hyper::http::request::Parts;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Instant;

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
        Some((_, text)) => Some(humantime::parse_rfc3339_weak(text).map_err(|_| {
            ApiError::invalid_request(format!(
                "since must be an ISO 8601 timestamp such as 2026-01-01T00:00:00Z, got {text:?}"
            ))
        })?),
    };
    let (errors, total) = state.service.errors.recent(limit as usize, since);
    Ok(json!({ "errors": errors, "total": total }))
}
