//! `/metrics` parses as Prometheus text, and each counter moves by exactly what known calls,
//! one per outcome (every limit among them), reloads and refusals should move it.

use crate::support::{TestEnv, TestServer, fixture};
use std::collections::HashMap;
use waygate::config::RateLimitConfig;

/// Every sample of a Prometheus text exposition, by series (`name{labels}`), after checking
/// that each line is a comment, blank, or `series value`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ")
                    || comment.starts_with("TYPE ")
                    || comment.starts_with("UNIT "),
                "unexpected comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "series {series} appears twice"
        );
    }
    samples
}

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let response = server.send("GET", "/metrics", &[], None).await;
    assert_eq!(response.status, 200);
    parse(&response.body)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

fn calls(outcome: &str, tool: &str) -> String {
    format!(
        r#"waygate_tool_calls_total{{plugin="hostile",tool="hostile__{tool}",outcome="{outcome}"}}"#
    )
}

/// Limits that let each hostile tool end in its own way.
const LIMITS: &str = "[limits]\nfuel = 100000000\ntimeout_ms = 1000\nmemory_mib = 16\noutput_bytes = 65536\nresult_bytes = 65536";

#[tokio::test]
async fn each_outcome_moves_its_own_counter_by_one() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), LIMITS);
    let server = TestServer::start(env).await;
    let cases = [
        ("ok", r#"{}"#, "ok"),
        ("read-passwd", r#"{}"#, "tool_error"),
        ("big-result", r#"{"mib":"lots"}"#, "invalid_arguments"),
        ("spin", r#"{}"#, "fuel_exhausted"),
        ("sleep", r#"{}"#, "timeout"),
        ("memory-bomb", r#"{}"#, "memory_limit"),
        ("flood-stdout", r#"{"mib":1}"#, "output_limit"),
        ("big-result", r#"{"mib":1}"#, "result_size_limit"),
        ("trap", r#"{}"#, "trap"),
        ("panic", r#"{}"#, "trap"),
    ];
    for (tool, params, outcome) in cases {
        let before = scrape(&server).await;
        let body = format!(r#"{{"action":"hostile__{tool}","params":{params}}}"#);
        server.post("/mcp/execute", &body).await;
        let after = scrape(&server).await;
        let series = calls(outcome, tool);
        assert_eq!(
            value(&after, &series) - value(&before, &series),
            1.0,
            "{tool} should count once as {outcome}"
        );
        // No other outcome of any tool moved.
        let moved: Vec<&String> = after
            .keys()
            .filter(|k| k.starts_with("waygate_tool_calls_total{") && **k != series)
            .filter(|k| value(&after, k) != value(&before, k))
            .collect();
        assert!(moved.is_empty(), "{tool} also moved {moved:?}");
        let executions =
            r#"waygate_plugin_execution_seconds_count{plugin="hostile",command="hostile__"#;
        let executed =
            |samples: &HashMap<String, f64>| value(samples, &format!(r#"{executions}{tool}"}}"#));
        assert_eq!(executed(&after) - executed(&before), 1.0, "{tool}");
    }
}

#[tokio::test]
async fn the_sandbox_reports_fuel_instantiation_memory_and_the_cache() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), LIMITS);
    let server = TestServer::start(env).await;
    let before = scrape(&server).await;
    let loads: f64 = ["hit", "miss", "rebuilt"]
        .iter()
        .map(|o| {
            value(
                &before,
                &format!(r#"waygate_compiled_cache_total{{outcome="{o}"}}"#),
            )
        })
        .sum();
    assert_eq!(loads, 1.0, "one component load");
    server
        .post("/mcp/execute", r#"{"action":"hostile__ok","params":{}}"#)
        .await;
    let after = scrape(&server).await;
    let fuel = r#"waygate_plugin_fuel_consumed_total{plugin="hostile"}"#;
    assert!(value(&after, fuel) > value(&before, fuel));
    let instances = r#"waygate_plugin_instantiation_seconds_count{plugin="hostile"}"#;
    assert_eq!(value(&after, instances) - value(&before, instances), 1.0);
    let memory = r#"waygate_plugin_memory_peak_bytes{plugin="hostile"}"#;
    assert!(
        value(&after, memory) >= 65536.0,
        "{}",
        value(&after, memory)
    );
    assert_eq!(value(&after, r#"waygate_build_info{version="0.1.0"}"#), 1.0);
    assert_eq!(value(&after, "waygate_mcp_sessions"), 0.0);
    let initialize = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let accept = ("accept", "application/json, text/event-stream");
    let opened = server
        .send("POST", "/mcp", &[accept], Some(initialize))
        .await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert_eq!(value(&scrape(&server).await, "waygate_mcp_sessions"), 1.0);
}

#[tokio::test]
async fn reloads_and_their_failures_are_counted() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    let before = scrape(&server).await;
    // A package whose manifest names another component's plugin fails to load.
    server.env.add("broken", &fixture("hostile"), "");
    let (status, body) = server.post("/plugins/reload", "{}").await;
    assert_eq!(status, 200, "{body}");
    let after = scrape(&server).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("waygate_reloads_total"), 1.0);
    assert_eq!(moved("waygate_reload_failures_total"), 1.0);
    assert_eq!(
        moved(r#"waygate_reload_duration_seconds_count{scope="all"}"#),
        1.0
    );
    // Reloading another plugin alone does not count the broken package again.
    let (status, body) = server.post("/plugins/hostile/reload", "{}").await;
    assert_eq!(status, 200, "{body}");
    let last = scrape(&server).await;
    assert_eq!(
        value(&last, "waygate_reload_failures_total"),
        value(&after, "waygate_reload_failures_total")
    );
    assert_eq!(
        value(&last, "waygate_reloads_total"),
        value(&after, "waygate_reloads_total") + 1.0
    );
    assert_eq!(
        value(
            &last,
            r#"waygate_reload_duration_seconds_count{scope="one"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn refused_requests_are_counted() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "");
    let limits = RateLimitConfig {
        enabled: true,
        execute: 1,
        health: 1000,
        metrics: 1000,
        default: 1000,
    };
    let server = TestServer::start_with_rate_limits(env, limits).await;
    let call = r#"{"action":"hostile__ok","params":{}}"#;
    assert_eq!(server.post("/mcp/execute", call).await.0, 200);
    assert_eq!(server.post("/mcp/execute", call).await.0, 429);
    let samples = scrape(&server).await;
    assert_eq!(value(&samples, "waygate_rate_limited_requests_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_waits_in_vain_for_a_slot_counts_as_concurrency_limit() {
    let env = TestEnv::new();
    env.add(
        "hostile",
        &fixture("hostile"),
        "[limits]\nmax_concurrency = 1\ntimeout_ms = 2500",
    );
    let server = std::sync::Arc::new(TestServer::start(env).await);
    let before = scrape(&server).await;
    // The first call holds the only slot until its 2.5 s deadline; the second asks for a
    // 1 s timeout, so it gives up waiting for the slot first.
    let holder = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .post("/mcp/execute", r#"{"action":"hostile__sleep","params":{}}"#)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = server
        .post(
            "/mcp/execute",
            r#"{"action":"hostile__sleep","params":{},"timeout":1}"#,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(holder.await.unwrap().0, 408);
    let after = scrape(&server).await;
    let moved = |outcome: &str| {
        let series = calls(outcome, "sleep");
        value(&after, &series) - value(&before, &series)
    };
    assert_eq!(moved("concurrency_limit"), 1.0);
    assert_eq!(moved("timeout"), 1.0);
}
