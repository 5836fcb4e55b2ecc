//! `waygate doctor`: the original design's connection and performance diagnostics, run
//! against a running server: the port, every open endpoint, the health checks, a latency
//! sample, and, with a key, the plugins and the server's own figures. One verdict a line;
//! the exit code says whether every check passed.

use crate::cli_http::request;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Requests in the latency sample.
const SAMPLE: usize = 20;

struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, name: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(detail) => println!("ok    {name:<22} {detail}"),
            Err(detail) => {
                self.failed += 1;
                println!("FAIL  {name:<22} {detail}");
            }
        }
    }
}

/// The body as JSON when the status is 200.
fn ok_json(answer: anyhow::Result<(u16, String)>) -> Result<Value, String> {
    match answer {
        Ok((200, body)) => serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}")),
        Ok((status, body)) => Err(format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs every check against `address`; `false` when one failed. Every problem, an
/// unreachable server included, is a failed check, never an error.
pub fn run(address: &str, key: Option<&str>) -> bool {
    let mut report = Report { failed: 0 };
    let started = Instant::now();
    let reachable = std::net::TcpStream::connect(address).map(|_| millis(started.elapsed()));
    report.check(
        "port",
        reachable
            .map(|t| format!("{address} accepts connections ({t})"))
            .map_err(|e| format!("{address}: {e}")),
    );
    if report.failed > 0 {
        println!("the server is not reachable; nothing else can be checked");
        return false;
    }
    report.check(
        "GET /",
        ok_json(request(address, "GET", "/", None))
            .map(|v| format!("{} {}", v["service"], v["version"])),
    );
    let health = ok_json(request(address, "GET", "/health", None));
    report.check(
        "GET /health",
        health
            .clone()
            .map(|v| format!("{} {}", v["status"], v["checks"])),
    );
    report.check(
        "GET /ready",
        ok_json(request(address, "GET", "/ready", None)).map(|v| {
            format!(
                "{} plugin(s) loaded, {} failed",
                v["plugins_loaded"], v["plugins_failed"]
            )
        }),
    );
    report.check(
        "GET /metrics",
        match request(address, "GET", "/metrics", key) {
            Ok((200, body)) => Ok(format!("{} lines", body.lines().count())),
            Ok((status, _)) => Err(format!("HTTP {status}")),
            Err(e) => Err(format!("{e:#}")),
        },
    );
    let mut times = Vec::with_capacity(SAMPLE);
    for _ in 0..SAMPLE {
        let started = Instant::now();
        if request(address, "GET", "/health", None).is_ok() {
            times.push(started.elapsed());
        }
    }
    times.sort();
    report.check(
        "latency (GET /health)",
        if times.len() == SAMPLE {
            Ok(format!(
                "p50 {}, max {} over {SAMPLE} requests",
                millis(times[SAMPLE / 2]),
                millis(times[SAMPLE - 1])
            ))
        } else {
            Err(format!("{} of {SAMPLE} requests answered", times.len()))
        },
    );
    match key {
        None => println!("skip  plugins, performance: give an API key (--key or WAYGATE_KEY)"),
        Some(key) => {
            report.check(
                "GET /plugins",
                ok_json(request(address, "GET", "/plugins?limit=100", Some(key))).and_then(|v| {
                    let plugins = v["plugins"].as_array().cloned().unwrap_or_default();
                    let failed: Vec<&str> = plugins
                        .iter()
                        .filter(|p| p["status"] == "failed")
                        .filter_map(|p| p["name"].as_str())
                        .collect();
                    if failed.is_empty() {
                        Ok(format!("{} plugin(s), none failed", plugins.len()))
                    } else {
                        Err(format!("failed to load: {}", failed.join(", ")))
                    }
                }),
            );
            report.check(
                "performance",
                ok_json(request(
                    address,
                    "GET",
                    "/diagnostics/performance",
                    Some(key),
                ))
                .map(|v| {
                    format!(
                        "cpu {}%, rss {} MB, threads {}, open files {}, p50 {} ms, p99 {} ms",
                        v["cpu_percent"],
                        v["memory"]["rss_mb"],
                        v["threads"],
                        v["open_files"],
                        v["response_times"]["p50_ms"],
                        v["response_times"]["p99_ms"]
                    )
                }),
            );
            report.check(
                "connections",
                ok_json(request(
                    address,
                    "GET",
                    "/diagnostics/connection",
                    Some(key),
                ))
                .map(|v| {
                    format!(
                        "{} active of {} allowed, {} MCP session(s)",
                        v["connections"]["active"], v["connections"]["max"], v["mcp_sessions"]
                    )
                }),
            );
        }
    }
    match report.failed {
        0 => println!("verdict: healthy"),
        n => println!("verdict: {n} check(s) failed"),
    }
    report.failed == 0
}
