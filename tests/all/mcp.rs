//! The MCP Streamable HTTP transport on a real server: both protocol eras, header and
//! session rules, errors, cancellation, notification streams, and the history it writes.

use crate::support::{HttpResponse, TestEnv, TestServer, fixture};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MODERN: &str = "2026-07-28";
const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");

/// A 2026-07-28 request body with the `_meta` every request carries.
fn modern_body(id: u64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "waygate-tests", "version": "0"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// Sends a well-formed stateless request, headers matching the body.
async fn modern(server: &TestServer, method: &str, params: Value) -> HttpResponse {
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut headers = vec![
        ACCEPT,
        ("mcp-protocol-version", MODERN),
        ("mcp-method", method),
    ];
    if let Some(name) = &name {
        headers.push(("mcp-name", name));
    }
    server
        .send(
            "POST",
            "/mcp",
            &headers,
            Some(&modern_body(1, method, params)),
        )
        .await
}

async fn examples() -> TestServer {
    let env = TestEnv::new();
    env.add_examples();
    TestServer::start(env).await
}

/// A session-era client: initialize, then requests carrying the session id.
struct SessionClient<'a> {
    server: &'a TestServer,
    session: String,
    next_id: u64,
}

impl<'a> SessionClient<'a> {
    async fn initialize(server: &'a TestServer, version: &str) -> (SessionClient<'a>, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "waygate-tests", "version": "0"}}});
        let response = server
            .send("POST", "/mcp", &[ACCEPT], Some(&body.to_string()))
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        let session = response
            .header("mcp-session-id")
            .expect("a session id")
            .to_owned();
        let client = SessionClient {
            server,
            session,
            next_id: 1,
        };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let accepted = client.post(&note.to_string()).await;
        assert_eq!(accepted.status, 202);
        (client, response.json()["result"].clone())
    }

    async fn post(&self, body: &str) -> HttpResponse {
        let headers = [
            ACCEPT,
            ("mcp-session-id", self.session.as_str()),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        self.server.send("POST", "/mcp", &headers, Some(body)).await
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        let response = self.post(&body.to_string()).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(
            response.header("mcp-session-id"),
            Some(self.session.as_str())
        );
        response.json()
    }
}

#[tokio::test]
async fn stateless_discover_list_and_call() {
    let server = examples().await;
    let discover = modern(&server, "server/discover", json!({})).await;
    assert_eq!(discover.status, 200, "{}", discover.body);
    let result = &discover.json()["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["supportedVersions"][0], MODERN);
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25"))
    );
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(result["cacheScope"], "public");
    assert!(result["ttlMs"].as_u64().is_some());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "waygate"
    );

    let list = modern(&server, "tools/list", json!({})).await.json();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "echo__echo",
        "data-processor__process_data",
        "notes__add_note",
        "regex-tools__regex_test",
        "text-analyzer__analyze",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let mut sorted_by_plugin = names.clone();
    sorted_by_plugin.sort_by_key(|n| n.split("__").next().unwrap().to_owned());
    assert_eq!(names, sorted_by_plugin, "tools come in plugin order");
    let again = modern(&server, "tools/list", json!({})).await.json();
    assert_eq!(
        list["result"]["tools"], again["result"]["tools"],
        "deterministic"
    );
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["cacheScope"], "public");

    let call = modern(
        &server,
        "tools/call",
        json!({"name": "echo__echo", "arguments": {"message": "hi ✓"}}),
    )
    .await;
    let result = &call.json()["result"];
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["resultType"], "complete");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi ✓")
    );

    // Invalid arguments are a tool error the model can read, not a protocol error.
    let invalid = modern(
        &server,
        "tools/call",
        json!({"name": "echo__echo", "arguments": {"message": 5}}),
    )
    .await
    .json();
    assert_eq!(invalid["result"]["isError"], true, "{invalid}");
    assert!(
        invalid["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("/message")
    );

    let unknown = modern(&server, "tools/call", json!({"name": "nope__nope"})).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.json()["error"]["code"], -32602);
}

#[tokio::test]
async fn stateless_header_and_version_rules() {
    let server = examples().await;
    let body = modern_body(7, "tools/list", json!({}));
    let send = |headers: Vec<(&'static str, &'static str)>, body: String| {
        let server = &server;
        async move { server.send("POST", "/mcp", &headers, Some(&body)).await }
    };
    let code = |r: &HttpResponse| (r.status, r.json()["error"]["code"].as_i64());

    // The method header must match the body.
    let r = send(
        vec![
            ACCEPT,
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(code(&r), (400, Some(-32020)));
    assert_eq!(r.json()["id"], 7);
    let r = send(vec![ACCEPT, ("mcp-protocol-version", MODERN)], body.clone()).await;
    assert_eq!(code(&r), (400, Some(-32020)), "Mcp-Method is required");
    // The version header must match _meta.
    let r = send(
        vec![
            ACCEPT,
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/list"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(code(&r), (400, Some(-32020)));
    // A version nobody serves.
    let old = body.replace(MODERN, "1900-01-01");
    let r = send(
        vec![
            ACCEPT,
            ("mcp-protocol-version", "1900-01-01"),
            ("mcp-method", "tools/list"),
        ],
        old,
    )
    .await;
    assert_eq!(code(&r), (400, Some(-32022)));
    assert_eq!(r.json()["error"]["data"]["requested"], "1900-01-01");
    assert_eq!(r.json()["error"]["data"]["supported"][0], MODERN);
    // Mcp-Name must name the tool, and may come base64-encoded.
    let call = modern_body(
        8,
        "tools/call",
        json!({"name": "echo__echo", "arguments": {"message": "x"}}),
    );
    let headers = |name: &'static str| {
        vec![
            ACCEPT,
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", name),
        ]
    };
    let r = send(headers("echo__other"), call.clone()).await;
    assert_eq!(code(&r), (400, Some(-32020)));
    let r = send(headers("=?base64?ZWNob19fZWNobw==?="), call.clone()).await;
    assert_eq!(
        (r.status, r.json()["result"]["isError"].clone()),
        (200, json!(false)),
        "{}",
        r.body
    );
    // An unknown method is a 404.
    let r = modern(&server, "nope/nope", json!({})).await;
    assert_eq!(code(&r), (404, Some(-32601)));
    // Notifications need no Mcp-Method (the TypeScript SDK sends none on cancel).
    let cancel =
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"listen:0"}}"#;
    let r = send(
        vec![ACCEPT, ("mcp-protocol-version", MODERN)],
        cancel.to_owned(),
    )
    .await;
    assert_eq!(r.status, 202);
    // ping and initialize-era methods are not part of the stateless revision.
    let r = modern(&server, "ping", json!({})).await;
    assert_eq!(code(&r), (404, Some(-32601)));
    // GET and DELETE without a session: 405.
    for method in ["GET", "DELETE"] {
        let r = server
            .send(
                method,
                "/mcp",
                &[
                    ("accept", "text/event-stream"),
                    ("mcp-protocol-version", MODERN),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, 405, "{method}");
    }
}

#[tokio::test]
async fn session_era_lifecycle() {
    let server = examples().await;
    let (mut client, result) = SessionClient::initialize(&server, "2025-06-18").await;
    assert_eq!(
        result["protocolVersion"], "2025-06-18",
        "a served version is echoed"
    );
    assert_eq!(result["serverInfo"]["name"], "waygate");
    assert_eq!(result["capabilities"]["prompts"]["listChanged"], true);
    assert!(result["instructions"].as_str().unwrap().contains("notes"));
    assert!(
        result.get("resultType").is_none(),
        "no resultType before 2026-07-28"
    );

    let (_, newest) = SessionClient::initialize(&server, "2031-01-01").await;
    assert_eq!(
        newest["protocolVersion"], "2025-11-25",
        "an unknown version gets our newest"
    );

    assert_eq!(client.request("ping", json!({})).await["result"], json!({}));
    let tools = client.request("tools/list", json!({})).await;
    assert!(tools["result"]["tools"].as_array().unwrap().len() >= 8);
    assert!(tools["result"].get("ttlMs").is_none());

    // notes: a tool writes, the resource and the prompt read it back.
    let added = client
        .request("tools/call", json!({"name": "notes__add_note", "arguments": {"title": "Groceries", "body": "eggs", "tags": ["home"]}}))
        .await;
    assert_eq!(added["result"]["isError"], false, "{added}");
    let resources = client.request("resources/list", json!({})).await;
    let uri = resources["result"]["resources"][0]["uri"]
        .as_str()
        .expect("a note")
        .to_owned();
    assert!(uri.starts_with("notes://note/"));
    let read = client.request("resources/read", json!({"uri": uri})).await;
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("eggs")
    );
    let missing = client
        .request("resources/read", json!({"uri": "notes://note/999999"}))
        .await;
    assert_eq!(
        missing["error"]["code"], -32002,
        "session era: resource not found"
    );
    let prompts = client.request("prompts/list", json!({})).await;
    assert_eq!(
        prompts["result"]["prompts"][0]["name"],
        "notes__summarize_notes"
    );
    let prompt = client
        .request(
            "prompts/get",
            json!({"name": "notes__summarize_notes", "arguments": {"tag": "home"}}),
        )
        .await;
    assert_eq!(prompt["result"]["messages"][0]["role"], "user", "{prompt}");
    let bad_cursor = client
        .request("tools/list", json!({"cursor": "garbage"}))
        .await;
    assert_eq!(bad_cursor["error"]["code"], -32602);
    let unknown = client.request("tools/nope", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601);

    // A client that takes only event streams gets its answer as one event.
    let body = json!({"jsonrpc": "2.0", "id": 99, "method": "ping"}).to_string();
    let sse = server
        .send(
            "POST",
            "/mcp",
            &[
                ("accept", "text/event-stream"),
                ("mcp-session-id", &client.session),
            ],
            Some(&body),
        )
        .await;
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        sse.events(),
        vec![json!({"jsonrpc": "2.0", "id": 99, "result": {}})]
    );

    // One notification stream per session.
    let accept_events = [
        ("accept", "text/event-stream"),
        ("mcp-session-id", client.session.as_str()),
    ];
    let stream = server
        .open_stream("GET", "/mcp", &accept_events, None)
        .await;
    assert_eq!(stream.status, 200);
    let second = server
        .open_stream("GET", "/mcp", &accept_events, None)
        .await;
    assert_eq!(second.status, 409);
    drop((stream, second));

    // A request that carries 2026-07-28 _meta is stateless, whatever session header it has.
    let modern_list = modern_body(77, "tools/list", json!({}));
    let r = server
        .send(
            "POST",
            "/mcp",
            &[
                ACCEPT,
                ("mcp-session-id", "stale"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
            Some(&modern_list),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["result"]["resultType"].clone()),
        (200, json!("complete")),
        "{}",
        r.body
    );

    // Session rules: none → 400, unknown → 404, ended → 404.
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}).to_string();
    let r = server.send("POST", "/mcp", &[ACCEPT], Some(&list)).await;
    assert_eq!(r.status, 400);
    let r = server
        .send(
            "POST",
            "/mcp",
            &[ACCEPT, ("mcp-session-id", "0123")],
            Some(&list),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = server
        .send(
            "DELETE",
            "/mcp",
            &[("mcp-session-id", &client.session)],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = client.post(&list).await;
    assert_eq!(r.status, 404, "an ended session is gone");
}

#[tokio::test]
async fn session_stream_opens_and_closes_with_the_session() {
    let server = examples().await;
    let (client, _) = SessionClient::initialize(&server, "2025-11-25").await;
    let mut stream = server
        .open_stream(
            "GET",
            "/mcp",
            &[
                ("accept", "text/event-stream"),
                ("mcp-session-id", &client.session),
            ],
            None,
        )
        .await;
    assert_eq!(stream.status, 200);
    server
        .state
        .mcp
        .list_changed(waygate::mcp::ListChange::Tools);
    let note = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("a notification");
    assert_eq!(note["method"], "notifications/tools/list_changed");
    server
        .send(
            "DELETE",
            "/mcp",
            &[("mcp-session-id", &client.session)],
            None,
        )
        .await;
    assert_eq!(
        stream.next_message(Duration::from_secs(5)).await,
        None,
        "the stream ends with its session"
    );
}

#[tokio::test]
async fn listen_acknowledges_then_delivers_what_was_asked() {
    let server = examples().await;
    let body = modern_body(
        42,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["x://y"]}}),
    );
    let mut stream = server
        .open_stream(
            "POST",
            "/mcp",
            &[
                ACCEPT,
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "subscriptions/listen"),
            ],
            Some(&body),
        )
        .await;
    assert_eq!(stream.status, 200);
    let ack = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        42
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true}),
        "only what is honoured"
    );
    server
        .state
        .mcp
        .list_changed(waygate::mcp::ListChange::Prompts);
    server
        .state
        .mcp
        .list_changed(waygate::mcp::ListChange::Tools);
    let note = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("a notification");
    assert_eq!(
        note["method"], "notifications/tools/list_changed",
        "prompts were not asked for"
    );
    assert_eq!(
        note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        42
    );
}

#[tokio::test]
async fn malformed_messages_get_json_rpc_errors_and_the_server_keeps_serving() {
    let server = examples().await;
    let cases = [
        ("{not json", 400, -32700),
        ("[]", 400, -32600),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, 400, -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, 400, -32600),
        (r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, 400, -32600),
    ];
    for (body, status, code) in cases {
        let r = server.send("POST", "/mcp", &[ACCEPT], Some(body)).await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_i64()),
            (status, Some(code)),
            "{body}"
        );
    }
    let r = server
        .send("POST", "/mcp", &[("accept", "text/html")], Some("{}"))
        .await;
    assert_eq!(r.status, 406);
    let r = server
        .send(
            "POST",
            "/mcp",
            &[ACCEPT, ("content-type", "text/plain")],
            Some("{}"),
        )
        .await;
    assert_eq!(r.status, 415);
    let r = server.send("PUT", "/mcp", &[], None).await;
    assert_eq!(r.status, 405);
    let big = "x".repeat(2 << 20);
    let r = server.send("POST", "/mcp", &[ACCEPT], Some(&big)).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_i64()),
        (413, Some(-32600))
    );
    let r = server
        .send(
            "POST",
            "/mcp",
            &[ACCEPT, ("origin", "http://evil.example")],
            Some("{}"),
        )
        .await;
    assert_eq!(r.status, 403);
    let ok = modern(&server, "tools/list", json!({})).await;
    assert_eq!(ok.status, 200, "still serving");
    let local = server
        .send(
            "POST",
            "/mcp",
            &[
                ACCEPT,
                ("origin", "http://localhost:6274"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
            Some(&modern_body(1, "tools/list", json!({}))),
        )
        .await;
    assert_eq!(local.status, 200);
    assert_eq!(
        local.header("access-control-allow-origin"),
        Some("http://localhost:6274")
    );
}

#[tokio::test]
async fn configured_origins_are_allowed() {
    let env = TestEnv::new();
    env.add_examples();
    let server = TestServer::start_with_origins(env, vec!["https://app.example".into()]).await;
    let preflight = server
        .send(
            "OPTIONS",
            "/mcp",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("Mcp-Session-Id")
    );
    let refused = server
        .send(
            "OPTIONS",
            "/mcp",
            &[("origin", "https://other.example")],
            None,
        )
        .await;
    assert_eq!(refused.status, 403);
}

/// A server with the hostile fixture, one call at a time, so a call still running blocks
/// the next one until its 30 s limit unless it was cancelled.
async fn one_at_a_time() -> TestServer {
    let env = TestEnv::new();
    env.add(
        "hostile",
        &fixture("hostile"),
        "[limits]\nmax_concurrency = 1\ntimeout_ms = 30000",
    );
    TestServer::start(env).await
}

async fn assert_ok_quickly(server: &TestServer) {
    let started = Instant::now();
    let r = modern(server, "tools/call", json!({"name": "hostile__ok"})).await;
    assert_eq!(r.json()["result"]["isError"], false, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the slot was freed at once"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_call() {
    let server = one_at_a_time().await;
    let body = modern_body(1, "tools/call", json!({"name": "hostile__sleep"}));
    let headers = [
        ACCEPT,
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "hostile__sleep"),
    ];
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        server.send("POST", "/mcp", &headers, Some(&body)),
    )
    .await;
    assert!(abandoned.is_err(), "the sleeping call does not answer");
    assert_ok_quickly(&server).await;
    let store = server.env.store.clone();
    server.shutdown().await;
    let (rows, _) = store.command_history(0, 10).unwrap();
    let sleep = rows
        .iter()
        .find(|r| r.record.command == "hostile__sleep")
        .expect("a record");
    assert_eq!(sleep.record.status, "cancelled");
}

#[tokio::test]
async fn notifications_cancelled_stops_a_session_call() {
    let server = one_at_a_time().await;
    let (client, _) = SessionClient::initialize(&server, "2025-11-25").await;
    let call = json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "hostile__sleep"}})
    .to_string();
    let duplicate = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let again = client.post(&call).await;
        assert_eq!(
            again.status, 400,
            "an id in flight is not reused: {}",
            again.body
        );
    };
    let (answer, (), ()) = tokio::join!(client.post(&call), duplicate, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow", "reason": "test"}});
        assert_eq!(client.post(&cancel.to_string()).await.status, 202);
    });
    assert_eq!(answer.json()["error"]["code"], -32800, "{}", answer.body);
    assert_ok_quickly(&server).await;
}

#[tokio::test]
async fn tool_calls_land_in_the_command_history() {
    let server = examples().await;
    modern(
        &server,
        "tools/call",
        json!({"name": "echo__echo", "arguments": {"message": "remember me"}}),
    )
    .await;
    server
        .post(
            "/mcp/execute",
            r#"{"action":"echo","params":{"message":"me too"}}"#,
        )
        .await;
    let store = server.env.store.clone();
    server.shutdown().await;
    let (rows, total) = store.command_history(0, 10).unwrap();
    assert_eq!(total, 2);
    assert_eq!(rows[0].record.source.as_deref(), Some("rest"));
    assert_eq!(rows[0].record.command, "echo__echo");
    assert_eq!(rows[1].record.source.as_deref(), Some("mcp"));
    assert!(
        rows[1]
            .record
            .params
            .as_deref()
            .unwrap()
            .contains("remember me")
    );
    assert_eq!(rows[1].record.status, "success");
}

#[tokio::test]
async fn progress_reports_stream_before_the_result() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    let mut params = json!({"name": "hostile__progress"});
    let body = modern_body(3, "tools/call", params.take());
    let body = body.replace(r#""_meta":{"#, r#""_meta":{"progressToken":"tok-1","#);
    let headers = [
        ACCEPT,
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "hostile__progress"),
    ];
    let response = server.send("POST", "/mcp", &headers, Some(&body)).await;
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let events = response.events();
    let progress: Vec<(f64, &str)> = events
        .iter()
        .filter(|e| e["method"] == "notifications/progress")
        .map(|e| {
            assert_eq!(e["params"]["progressToken"], "tok-1");
            assert_eq!(e["params"]["total"], 3.0);
            (
                e["params"]["progress"].as_f64().unwrap(),
                e["params"]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        progress,
        [(1.0, "one"), (2.0, "two"), (3.0, "three")],
        "a report that does not grow is dropped"
    );
    let last = events.last().expect("the result");
    assert_eq!(last["id"], 3);
    assert_eq!(last["result"]["content"][0]["text"], "done");

    // Without a token the same call is a plain JSON answer.
    let plain = modern(&server, "tools/call", json!({"name": "hostile__progress"})).await;
    assert_eq!(plain.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn notification_streams_are_capped() {
    let env = TestEnv::with_limits(waygate::config::Limits {
        mcp_streams: 1,
        ..crate::support::test_limits()
    });
    env.add_examples();
    let server = TestServer::start(env).await;
    let body = modern_body(
        1,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let headers = [
        ACCEPT,
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "subscriptions/listen"),
    ];
    let mut first = server
        .open_stream("POST", "/mcp", &headers, Some(&body))
        .await;
    assert_eq!(first.status, 200);
    assert!(
        first.next_message(Duration::from_secs(5)).await.is_some(),
        "ack"
    );
    let second = server.send("POST", "/mcp", &headers, Some(&body)).await;
    assert_eq!(second.status, 503, "{}", second.body);
    assert!(second.body.contains("limits.mcp_streams"));
    drop(first);
    // The slot comes back once the first client has gone.
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut again = server
            .open_stream("POST", "/mcp", &headers, Some(&body))
            .await;
        if again.status == 200 {
            assert!(again.next_message(Duration::from_secs(5)).await.is_some());
            freed = true;
            break;
        }
    }
    assert!(freed, "a closed stream frees its slot");
}

#[tokio::test]
async fn arguments_marked_as_headers_must_match_them() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    let call = |arguments: Value, extra: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move {
            let body = modern_body(
                1,
                "tools/call",
                json!({"name": "hostile__routed", "arguments": arguments}),
            );
            let mut headers = vec![
                ACCEPT,
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", "hostile__routed"),
            ];
            headers.extend(extra);
            let r = server.send("POST", "/mcp", &headers, Some(&body)).await;
            (r.status, r.json())
        }
    };
    let listed = modern(&server, "tools/list", json!({})).await.json();
    let routed = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "hostile__routed")
        .expect("listed")
        .clone();
    assert_eq!(
        routed["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );

    let (status, body) = call(
        json!({"region": "eu-west", "count": 42}),
        vec![("mcp-param-region", "eu-west"), ("mcp-param-count", "42")],
    )
    .await;
    assert_eq!(
        (status, body["result"]["content"][0]["text"].clone()),
        (200, json!("eu-west Some(42)")),
        "{body}"
    );
    let (status, body) = call(
        json!({"region": "eu-west"}),
        vec![("Mcp-Param-Region", "=?base64?ZXUtd2VzdA==?=")],
    )
    .await;
    assert_eq!(status, 200, "base64 form and any header case: {body}");
    for (arguments, headers) in [
        (json!({"region": "eu-west"}), vec![]),
        (
            json!({"region": "eu-west"}),
            vec![("mcp-param-region", "us-east")],
        ),
        (
            json!({"region": "eu-west", "count": 42}),
            vec![("mcp-param-region", "eu-west"), ("mcp-param-count", "41")],
        ),
        (
            json!({"region": "eu-west"}),
            vec![("mcp-param-region", "eu-west"), ("mcp-param-count", "1")],
        ),
    ] {
        let (status, body) = call(arguments.clone(), headers).await;
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (400, Some(-32020)),
            "{arguments} {body}"
        );
    }
}
