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

    let (status, body) = server
        .post("/mcp/execute", r#"{"action":"test","params":{}}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["data"]["status"], "ok");
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
