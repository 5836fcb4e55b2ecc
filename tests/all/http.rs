//! The REST slice over real HTTP: service endpoints, plugin listing, and `/mcp/execute`
//! with its error format.

use crate::support::{TestEnv, TestServer, fixture};
use serde_json::json;

async fn server() -> TestServer {
    let env = TestEnv::new();
    env.add("echo", &crate::support::example("echo"), "");
    env.add("hostile", &fixture("hostile"), "[limits]\ntimeout_ms = 300");
    TestServer::start(env).await
}

#[tokio::test]
async fn health_ready_and_info_answer() {
    let server = server().await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["database"], "ok");
    let (status, body) = server.get("/ready").await;
    assert_eq!((status, body["plugins_loaded"].as_u64()), (200, Some(2)));
    let (status, body) = server.get("/").await;
    assert_eq!(
        (status, body["service"].as_str()),
        (200, Some("Waygate MCP"))
    );
}

#[tokio::test]
async fn plugins_are_listed_with_failures() {
    let env = TestEnv::new();
    env.add("echo", &crate::support::example("echo"), "");
    // The component calls itself "hostile"; a manifest that says otherwise must not load.
    env.add("impostor", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    let (status, body) = server.get("/plugins").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2);
    let plugins = body["plugins"].as_array().expect("list");
    assert_eq!(plugins[0]["name"], "echo");
    assert_eq!(plugins[0]["status"], "active");
    assert_eq!(plugins[1]["name"], "impostor");
    assert_eq!(plugins[1]["status"], "failed");
    assert!(
        plugins[1]["error"]
            .as_str()
            .expect("reason")
            .contains("calls itself \"hostile\"")
    );

    let (status, body) = server.get("/plugins/echo").await;
    assert_eq!(
        (status, body["tools"].clone()),
        (200, json!(["echo__echo", "echo__test"]))
    );
    let (status, body) = server.get("/plugins/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[tokio::test]
async fn execute_runs_a_tool_and_answers_in_the_spec_format() {
    let server = server().await;
    let (status, body) = server
        .post(
            "/mcp/execute",
            r#"{"action":"echo","params":{"message":"hello"}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["result"]["message"], "hello");
    assert!(body["command_id"].as_str().expect("id").starts_with("cmd_"));
    assert!(body["duration_ms"].is_u64() && body["timestamp"].is_string());

    // Two plugins offer `test`: the bare name is ambiguous, the qualified one is not.
    let (status, body) = server
        .post("/mcp/execute", r#"{"action":"test","params":{}}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"]["candidates"],
        json!(["echo__test", "hostile__test"])
    );
    let (status, body) = server
        .post("/mcp/execute", r#"{"action":"echo__test","params":{}}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["data"]["status"], "ok");

    let (status, body) = server
        .post("/mcp/execute", r#"{"action":"echo","timeout":301}"#)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST")),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_format() {
    let server = server().await;
    let response = server.send("DELETE", "/health", &[], None).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET"));
    assert_eq!(response.json()["error"]["code"], "METHOD_NOT_ALLOWED");
    let response = server.send("GET", "/no/such/route", &[], None).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], "NOT_FOUND");
    for header in [
        "x-request-id",
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
    ] {
        assert!(response.header(header).is_some(), "{header} missing");
    }
}

#[tokio::test]
async fn lists_are_paged_with_the_spec_headers() {
    let env = TestEnv::new();
    env.add_examples();
    let server = TestServer::start(env).await;
    let response = server
        .send("GET", "/plugins?page=2&limit=2", &[], None)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-total-count"), Some("6"));
    assert_eq!(response.header("x-page-count"), Some("3"));
    let link = response.header("link").expect("Link");
    assert!(link.contains("page=3&limit=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=1&limit=2>; rel=\"prev\""), "{link}");
    let body = response.json();
    assert_eq!(body["plugins"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["total"], 6);
    for bad in [
        "/plugins?limit=0",
        "/plugins?limit=101",
        "/plugins?page=0",
        "/plugins?page=x",
    ] {
        let (status, body) = server.get(bad).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("INVALID_REQUEST")),
            "{bad}"
        );
    }

    for n in 0..3 {
        let body = format!(r#"{{"action":"echo","params":{{"message":"{n}"}}}}"#);
        assert_eq!(server.post("/mcp/execute", &body).await.0, 200);
    }
    // History is written in batches off the request path: wait for the batch.
    let mut total = 0;
    for _ in 0..50 {
        let response = server
            .send("GET", "/mcp/commands/history?limit=2", &[], None)
            .await;
        total = response
            .header("x-total-count")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if total == 3 {
            let body = response.json();
            assert_eq!(
                body["commands"][0]["params"], r#"{"message":"2"}"#,
                "newest first"
            );
            assert_eq!(body["commands"][0]["source"], "rest");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(total, 3);
}

#[tokio::test]
async fn metrics_and_diagnostics_report_live_figures() {
    let server = server().await;
    server.get("/health").await;
    server.post("/mcp/execute", r#"{"action":"spin"}"#).await;
    let accept_open_metrics = [("accept", "application/openmetrics-text; version=1.0.0")];
    let open_metrics = server
        .send("GET", "/metrics", &accept_open_metrics, None)
        .await;
    let content_type = open_metrics.header("content-type").unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(open_metrics.body.ends_with("# EOF\n"));
    let metrics = server.send("GET", "/metrics", &[], None).await;
    let content_type = metrics.header("content-type").unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert!(
        metrics
            .body
            .contains(r#"waygate_requests_total{method="GET",endpoint="/health",status="200"} 1"#),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains(
        r#"waygate_plugin_execution_seconds_count{plugin="hostile",command="hostile__spin"} 1"#
    ));

    let (status, performance) = server.get("/diagnostics/performance").await;
    assert_eq!(status, 200);
    assert!(
        performance["memory"]["rss_mb"].as_f64().unwrap() > 1.0,
        "{performance}"
    );
    assert!(performance["threads"].as_u64().unwrap() >= 2);
    assert!(performance["open_files"].as_u64().unwrap() >= 3);
    assert!(performance["response_times"]["p50_ms"].as_f64().is_some());

    let (status, connection) = server.get("/diagnostics/connection").await;
    assert_eq!(status, 200);
    assert_eq!(connection["port"], server.addr.port());
    assert!(connection["connections"]["active"].as_i64().unwrap() >= 1);

    let (status, errors) = server.get("/diagnostics/errors?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(errors["errors"][0]["code"], "PLUGIN_LIMIT", "{errors}");
    assert!(
        errors["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("timeout_ms")
    );
    let (_, later) = server
        .get("/diagnostics/errors?since=2999-01-01T00:00:00%2B01:00")
        .await;
    assert_eq!(later["total"], 0);
    let (status, _) = server.get("/diagnostics/errors?since=yesterday").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn health_fails_when_the_cache_directory_goes_away() {
    let env = TestEnv::with_cache(None);
    let cache = env.dir.path().join("cache");
    let env = TestEnv {
        runtime: std::sync::Arc::new(
            waygate::runtime::Runtime::new(&env.limits, Some(cache.clone()), env.store.clone())
                .unwrap(),
        ),
        ..env
    };
    let server = TestServer::start(env).await;
    let (status, body) = server.get("/health").await;
    assert_eq!(
        (status, body["checks"]["cache"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    std::fs::remove_dir_all(&cache).unwrap();
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert!(
        body["checks"]["cache"]
            .as_str()
            .unwrap()
            .starts_with("failing")
    );
    assert!(body["latency_ms"]["database"].as_f64().is_some());
}

#[tokio::test]
async fn bad_commands_get_the_documented_errors() {
    let server = server().await;
    let (status, body) = server.post("/mcp/execute", "{not json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert!(
        body["error"]["request_id"]
            .as_str()
            .expect("id")
            .starts_with("req_")
    );

    let (status, body) = server.post("/mcp/execute", r#"{"action":"nope"}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );

    let (status, body) = server
        .post(
            "/mcp/execute",
            r#"{"action":"echo","params":{"message":7}}"#,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert!(
        body["error"]["details"]["problems"][0]
            .as_str()
            .expect("problem")
            .contains("/message")
    );

    let (status, body) = server.get("/mcp/execute").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED"))
    );
}

#[tokio::test]
async fn a_runaway_plugin_times_out_and_the_server_keeps_serving() {
    let server = server().await;
    let (status, body) = server.post("/mcp/execute", r#"{"action":"spin"}"#).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["status"], "timeout");
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("timeout_ms")
    );

    let (status, body) = server.post("/mcp/execute", r#"{"action":"panic"}"#).await;
    assert_eq!((status, body["status"].as_str()), (500, Some("failed")));
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("panicked on purpose")
    );

    let (status, _) = server
        .post(
            "/mcp/execute",
            r#"{"action":"echo","params":{"message":"still here"}}"#,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let server = server().await;
    let big = format!(
        r#"{{"action":"echo","params":{{"message":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    let (status, body) = server.post("/mcp/execute", &big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("INVALID_REQUEST"))
    );
}

#[tokio::test]
async fn calls_past_the_in_flight_cap_are_refused_at_once_with_retry_after() {
    let env = TestEnv::with_limits(waygate::config::Limits {
        max_inflight_calls: 1,
        ..crate::support::test_limits()
    });
    env.add(
        "hostile",
        &fixture("hostile"),
        "[limits]\ntimeout_ms = 3000",
    );
    let server = TestServer::start(env).await;
    let sleeping = server.post("/mcp/execute", r#"{"action":"sleep"}"#);
    let refused = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let r = server
            .send("POST", "/mcp/execute", &[], Some(r#"{"action":"ok"}"#))
            .await;
        (r, started.elapsed())
    };
    let ((status, _), (refused, waited)) = tokio::join!(sleeping, refused);
    assert_eq!(status, 408, "the sleeper runs out its own time");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        waited < std::time::Duration::from_secs(1),
        "refused, not queued: {waited:?}"
    );
}

#[tokio::test]
async fn oversized_and_overlong_request_heads_get_431() {
    let server = server().await;
    let many: Vec<(String, String)> = (0..150)
        .map(|n| (format!("x-h{n}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = server.send("GET", "/health", &many, None).await;
    assert_eq!(r.status, 431);
    let long = "v".repeat(100 * 1024);
    let r = server
        .send("GET", "/health", &[("x-long", &long)], None)
        .await;
    assert_eq!(r.status, 431);
    assert_eq!(server.get("/health").await.0, 200, "still serving");
}

#[test]
fn the_log_level_changes_at_run_time() {
    use crate::support::{ADMIN_KEY, blocking_request, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[]);
    let admin = [("x-api-key", ADMIN_KEY)];
    let reloads_logged = || {
        server
            .log
            .lock()
            .unwrap()
            .matches("plugins reloaded")
            .count()
    };
    let set = |level: &str| {
        blocking_request(
            &server.addr,
            "PUT",
            "/diagnostics/log-level",
            &admin,
            &format!(r#"{{"level":"{level}"}}"#),
        )
    };
    assert_eq!(set("warn").0, 200);
    let before = reloads_logged();
    blocking_request(&server.addr, "POST", "/plugins/reload", &admin, "");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(reloads_logged(), before, "info lines are off at warn");
    assert_eq!(set("info").0, 200);
    blocking_request(&server.addr, "POST", "/plugins/reload", &admin, "");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while reloads_logged() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "info lines are back at info"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status, body) = set("waygate=[");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn doctor_checks_a_running_server() {
    use crate::support::{ADMIN_KEY, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[]);
    let doctor = |key: Option<&str>, bind: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"));
        command
            .args(["doctor", "--bind", bind])
            .env_remove("WAYGATE_KEY");
        if let Some(key) = key {
            command.env("WAYGATE_KEY", key);
        }
        command.output().unwrap()
    };
    let healthy = doctor(Some(ADMIN_KEY), &server.addr);
    let out = String::from_utf8_lossy(&healthy.stdout);
    assert!(healthy.status.success(), "{out}");
    for line in [
        "ok    port",
        "ok    GET /health",
        "ok    latency (GET /health)",
        "ok    performance",
        "verdict: healthy",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(!out.contains(ADMIN_KEY));
    let unkeyed = String::from_utf8_lossy(&doctor(None, &server.addr).stdout).into_owned();
    assert!(unkeyed.contains("skip  plugins"), "{unkeyed}");
    drop(server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().to_string();
    drop(listener);
    let down = doctor(None, &closed);
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stdout).contains("FAIL  port"));
}

#[test]
fn each_request_and_tool_call_is_one_json_log_line_without_the_secret() {
    use crate::support::{ADMIN_KEY, blocking_request, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[]);
    let admin = [("x-api-key", ADMIN_KEY)];
    let (status, _) = blocking_request(
        &server.addr,
        "POST",
        "/mcp/execute",
        &admin,
        r#"{"action":"hostile__ok","params":{}}"#,
    );
    assert_eq!(status, 200);
    let find =
        |target: &str| server.wait_for_log(|l| l["target"] == target && l["route"] != "/health");
    let access = find("waygate::access");
    // The JSON formatter flattens the event's fields into the line.
    let fields = &access;
    assert_eq!(fields["route"], "/mcp/execute", "{access}");
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["status"], 200);
    assert!(fields["credential"].is_string(), "{access}");
    assert!(fields["request_id"].as_str().unwrap().starts_with("req_"));
    assert!(fields["duration_us"].is_u64());
    let call = find("waygate::call");
    assert_eq!(call["plugin"], "hostile", "{call}");
    assert_eq!(call["tool"], "hostile__ok");
    assert_eq!(call["outcome"], "ok");
    assert_eq!(call["request_id"], fields["request_id"]);
    assert!(
        !server.log.lock().unwrap().contains(ADMIN_KEY),
        "the key itself must never be logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_move_with_the_load() {
    let server = std::sync::Arc::new(server().await);
    let (_, idle) = server.get("/diagnostics/performance").await;
    let (_, idle_connections) = server.get("/diagnostics/connection").await;
    // 8 clients at once, each running plugin code that spins until its deadline.
    let calls = (0..8).map(|_| {
        let server = server.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                server
                    .post("/mcp/execute", r#"{"action":"hostile__spin"}"#)
                    .await;
            }
        })
    });
    for call in calls {
        call.await.unwrap();
    }
    let (_, loaded) = server.get("/diagnostics/performance").await;
    let requests = |v: &serde_json::Value| v["response_times"]["requests"].as_u64().unwrap();
    assert!(
        requests(&loaded) >= requests(&idle) + 16,
        "{idle} → {loaded}"
    );
    // The spins took CPU since the previous sample.
    assert!(loaded["cpu_percent"].as_f64().unwrap() > 1.0, "{loaded}");
    // Their time (each at the 300 ms limit) shows in the quantiles.
    assert!(
        loaded["response_times"]["p99_ms"].as_f64().unwrap() >= 100.0,
        "{loaded}"
    );
    let (_, connections) = server.get("/diagnostics/connection").await;
    let total = |v: &serde_json::Value| v["connections"]["total"].as_u64().unwrap();
    assert!(
        total(&connections) > total(&idle_connections),
        "{connections}"
    );
}

#[test]
fn plugin_log_lines_reach_the_host_log_tagged_with_plugin_and_request() {
    use crate::support::{ADMIN_KEY, blocking_request, install_example, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    install_example(data.path(), "notes");
    let server = spawn_binary(data.path(), &[]);
    let (status, body) = blocking_request(
        &server.addr,
        "POST",
        "/mcp/execute",
        &[("x-api-key", ADMIN_KEY)],
        r#"{"action":"notes__add_note","params":{"title":"logged","body":"b"}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let line = server.wait_for_log(|l| l["target"] == "plugin" && l["message"] == "note added");
    assert_eq!(line["plugin"], "notes", "{line}");
    assert!(
        line["request_id"].as_str().unwrap().starts_with("req_"),
        "{line}"
    );
}
