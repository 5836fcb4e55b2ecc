//! Access control on a real server: which role reaches which route and MCP method, keys
//! that are missing, unknown, revoked, expired or rotated, plugin allow-lists, sessions
//! bound to their key, the keys CLI against a running server, and no key material in any
//! output.

use crate::support::{
    ADMIN_KEY, HttpResponse, TestEnv, TestServer, blocking_request, eventually, keys_cli,
    spawn_binary,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use waygate::auth::{self, KeySpec, Role};

async fn examples() -> TestServer {
    let env = TestEnv::new();
    env.add_examples();
    TestServer::start(env).await
}

fn stateless(id: u64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// A stateless MCP request with `key` as a bearer token.
async fn mcp(server: &TestServer, key: &str, method: &str, params: Value) -> HttpResponse {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_default();
    let bearer = format!("Bearer {key}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
        ("mcp-name", name.as_str()),
    ];
    server
        .send(
            "POST",
            "/mcp",
            &headers,
            Some(&stateless(1, method, params)),
        )
        .await
}

async fn rest(server: &TestServer, key: &str, method: &str, path: &str) -> u16 {
    let body = match method {
        "POST" => Some(r#"{"action":"echo__echo","params":{"message":"x"}}"#),
        "PUT" => Some(r#"{"level":"info"}"#),
        _ => None,
    };
    server
        .send(method, path, &[("x-api-key", key)], body)
        .await
        .status
}

#[tokio::test]
async fn each_role_reaches_exactly_its_routes_and_methods() {
    let server = examples().await;
    let reader = server.create_key(Role::Reader, None);
    let caller = server.create_key(Role::Caller, None);
    let admin = server.key.clone().unwrap();

    // (method, path, lowest role that may)
    let routes = [
        ("GET", "/plugins", Role::Reader),
        ("GET", "/plugins/echo", Role::Reader),
        ("GET", "/mcp/status", Role::Reader),
        ("GET", "/mcp/commands", Role::Reader),
        ("GET", "/diagnostics/performance", Role::Reader),
        ("GET", "/diagnostics/errors", Role::Reader),
        ("POST", "/mcp/execute", Role::Caller),
        ("GET", "/mcp/commands/history", Role::Admin),
        ("PUT", "/diagnostics/log-level", Role::Admin),
    ];
    for (method, path, lowest) in routes {
        for (role, key) in [
            (Role::Reader, &reader),
            (Role::Caller, &caller),
            (Role::Admin, &admin),
        ] {
            let status = rest(&server, key, method, path).await;
            let expected = if role >= lowest { 200 } else { 403 };
            assert_eq!(status, expected, "{role:?} {method} {path}");
        }
    }
    for path in ["/", "/health", "/ready", "/metrics", "/openapi.json"] {
        assert_eq!(rest(&server, "", "GET", path).await, 200, "{path} is open");
    }

    let methods = [
        ("tools/list", json!({}), Role::Reader),
        ("resources/list", json!({}), Role::Reader),
        ("prompts/list", json!({}), Role::Reader),
        ("server/discover", json!({}), Role::Reader),
        (
            "tools/call",
            json!({"name": "echo__echo", "arguments": {"message": "x"}}),
            Role::Caller,
        ),
        (
            "prompts/get",
            json!({"name": "notes__summarize_notes"}),
            Role::Caller,
        ),
    ];
    for (method, params, lowest) in methods {
        for (role, key) in [(Role::Reader, &reader), (Role::Caller, &caller)] {
            let response = mcp(&server, key, method, params.clone()).await;
            if role >= lowest {
                assert_eq!(response.status, 200, "{role:?} {method}: {}", response.body);
            } else {
                assert_eq!(response.status, 403, "{role:?} {method}");
                assert!(
                    response
                        .header("www-authenticate")
                        .unwrap()
                        .contains("insufficient_scope")
                );
            }
        }
    }
}

#[tokio::test]
async fn missing_unknown_revoked_and_expired_keys_get_the_same_401() {
    let server = examples().await;
    let revoked = server.create_key(Role::Admin, None);
    let expired = auth::create_key(
        &server.env.store,
        &KeySpec {
            name: "old",
            role: Role::Admin,
            plugins: None,
            expires_at: Some(std::time::SystemTime::now() - Duration::from_secs(1)),
        },
        None,
    )
    .unwrap()
    .key;
    let revoked_id = server
        .env
        .store
        .keys()
        .unwrap()
        .into_iter()
        .find(|k| revoked.starts_with(&k.prefix) && k.name == "test")
        .unwrap()
        .id;
    server.env.store.revoke_key(revoked_id).unwrap();
    server.reload_keys();

    let missing = server
        .send("GET", "/plugins", &[("x-api-key", "")], None)
        .await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["code"], "UNAUTHORIZED");
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"Bearer realm="waygate""#)
    );
    let mut messages = Vec::new();
    for key in [
        "wg_doesnotexist0000000000000000000000000000",
        revoked.as_str(),
        expired.as_str(),
    ] {
        let r = server
            .send("GET", "/plugins", &[("x-api-key", key)], None)
            .await;
        assert_eq!(r.status, 401, "{}", &key[..9]);
        messages.push(r.json()["error"]["message"].clone());
        let r = mcp(&server, key, "tools/list", json!({})).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], -32600);
        assert!(r.header("www-authenticate").is_some());
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "one answer for all: {messages:?}"
    );
    // Bearer works as well as X-API-Key.
    let admin = server.key.clone().unwrap();
    let bearer = format!("bearer {admin}");
    let ok = server
        .send("GET", "/plugins", &[("authorization", &bearer)], None)
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_key_limited_to_plugins_sees_and_uses_only_those() {
    let server = examples().await;
    let key = server.create_key(Role::Caller, Some(&["echo".to_owned()]));
    let listed = mcp(&server, &key, "tools/list", json!({})).await.json();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo__echo", "echo__test"]);
    assert_eq!(listed["result"]["cacheScope"], "private");
    let prompts = mcp(&server, &key, "prompts/list", json!({})).await.json();
    assert_eq!(prompts["result"]["prompts"], json!([]));
    let hidden = mcp(
        &server,
        &key,
        "tools/call",
        json!({"name": "notes__list_notes"}),
    )
    .await
    .json();
    assert_eq!(hidden["error"]["code"], -32602, "{hidden}");
    let r = server
        .send(
            "POST",
            "/mcp/execute",
            &[("x-api-key", &key)],
            Some(r#"{"action":"notes__list_notes"}"#),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = server
        .send(
            "POST",
            "/mcp/execute",
            &[("x-api-key", &key)],
            Some(r#"{"action":"echo","params":{"message":"hi"}}"#),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_session_belongs_to_the_key_that_opened_it() {
    let server = examples().await;
    let other = server.create_key(Role::Admin, None);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let opened = server
        .send("POST", "/mcp", &[], Some(&init.to_string()))
        .await;
    let session = opened.header("mcp-session-id").unwrap().to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let own = server
        .send("POST", "/mcp", &[("mcp-session-id", &session)], Some(&list))
        .await;
    assert_eq!(own.status, 200);
    let stolen = server
        .send(
            "POST",
            "/mcp",
            &[("mcp-session-id", &session), ("x-api-key", &other)],
            Some(&list),
        )
        .await;
    assert_eq!(stolen.status, 404, "another key cannot use the session");
    let deleted = server
        .send(
            "DELETE",
            "/mcp",
            &[("mcp-session-id", &session), ("x-api-key", &other)],
            None,
        )
        .await;
    assert_eq!(deleted.status, 404, "nor end it");
}

/// Polls until `check` holds, for at most two refresh intervals and then some.
#[test]
fn the_keys_cli_changes_a_running_server_at_once_and_no_key_leaks() {
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[]);
    let call = |key: &str| {
        blocking_request(
            &server.addr,
            "POST",
            "/mcp/execute",
            &[("x-api-key", key)],
            r#"{"action":"hostile__ok","params":{"secret":"none"}}"#,
        )
        .0
    };
    assert_eq!(call(ADMIN_KEY), 200, "the key from WAYGATE_ADMIN_KEY works");

    let created: Value = serde_json::from_str(&keys_cli(
        data.path(),
        &[
            "create",
            "--name",
            "ci",
            "--role",
            "caller",
            "--expires-in",
            "30d",
            "--json",
        ],
    ))
    .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wg_") && key.len() >= 35);
    let started = Instant::now();
    eventually("a created key working", || call(&key) == 200);
    eprintln!("created key worked after {:?}", started.elapsed());

    let twice = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args([
            "keys", "create", "--name", "ci", "--role", "reader", "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!twice.status.success(), "a second working key named ci");
    let numeric = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args([
            "keys", "create", "--name", "123", "--role", "reader", "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        !numeric.status.success(),
        "an all-digit name would read as an id"
    );

    let rotated: Value = serde_json::from_str(&keys_cli(
        data.path(),
        &["rotate", "ci", "--grace", "2s", "--json"],
    ))
    .unwrap();
    let listed: Value = serde_json::from_str(&keys_cli(data.path(), &["list", "--json"])).unwrap();
    let new_expiry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == rotated["id"])
        .and_then(|k| k["expires_at"].as_str())
        .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
        .expect("the rotated key expires");
    let in_29_days = std::time::SystemTime::now() + Duration::from_secs(29 * 86_400);
    assert!(
        new_expiry > in_29_days,
        "the new key gets the old one's lifetime from now"
    );
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    eventually("the rotated key working", || call(&new_key) == 200);
    assert_eq!(call(&key), 200, "the old key works during the grace period");
    eventually("the grace period ending", || call(&key) == 401);
    assert_eq!(call(&new_key), 200);

    keys_cli(data.path(), &["revoke", "ci"]);
    let started = Instant::now();
    eventually("a revoked key stopping", || call(&new_key) == 401);
    eprintln!("revoked key stopped after {:?}", started.elapsed());
    assert_eq!(call("wg_not_a_key"), 401);

    let listing = keys_cli(data.path(), &["list", "--json"]);
    let listed: Value = serde_json::from_str(&listing).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["status"] == "revoked")
    );
    let table = keys_cli(data.path(), &["list"]);

    // Let the batched writes (history, last use) land, then look everywhere.
    std::thread::sleep(Duration::from_millis(5500));
    let last_used =
        serde_json::from_str::<Value>(&keys_cli(data.path(), &["list", "--json"])).unwrap();
    assert!(
        last_used
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["last_used"].is_string()),
        "uses are recorded"
    );
    let (_, history) = blocking_request(
        &server.addr,
        "GET",
        "/mcp/commands/history?limit=100",
        &[("x-api-key", ADMIN_KEY)],
        "",
    );
    let (_, errors) = blocking_request(
        &server.addr,
        "GET",
        "/diagnostics/errors?limit=1000",
        &[("x-api-key", ADMIN_KEY)],
        "",
    );
    let (_, plugins) = blocking_request(
        &server.addr,
        "GET",
        "/plugins",
        &[("x-api-key", ADMIN_KEY)],
        "",
    );
    let log = server.log.lock().unwrap().clone();
    let hashes: Vec<String> = [ADMIN_KEY, key.as_str(), new_key.as_str()]
        .iter()
        .map(|k| auth::keys::digest_hex(k))
        .collect();
    let outputs = [
        ("log", &log),
        ("history", &history),
        ("errors", &errors),
        ("plugins", &plugins),
        ("keys list", &listing),
        ("keys table", &table),
    ];
    for (what, text) in outputs {
        for secret in [ADMIN_KEY, key.as_str(), new_key.as_str(), "wg_not_a_key"] {
            assert!(!text.contains(secret), "{what} shows a key");
            // The random part alone, in case something trims the prefix.
            assert!(
                !text.contains(&secret[3..]),
                "{what} shows a key's random part"
            );
        }
        for hash in &hashes {
            assert!(!text.contains(hash.as_str()), "{what} shows a key's hash");
        }
    }
    assert!(
        history.contains("\"client_id\":\"ci\""),
        "the history names the key: {history}"
    );
}

#[tokio::test]
async fn without_auth_everyone_is_let_in() {
    let env = TestEnv::new();
    env.add_examples();
    let server = TestServer::start_without_auth(env).await;
    let r = server
        .send(
            "POST",
            "/mcp/execute",
            &[],
            Some(r#"{"action":"echo","params":{"message":"x"}}"#),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = server.send("GET", "/mcp/commands/history", &[], None).await;
    assert_eq!(r.status, 200);
}

fn header_u64(response: &HttpResponse, name: &str) -> u64 {
    response
        .header(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn rate_limits_count_per_client_and_group_with_the_spec_headers() {
    let env = TestEnv::new();
    env.add_examples();
    let limits = waygate::config::RateLimitConfig {
        enabled: true,
        execute: 3,
        health: 2,
        metrics: 100,
        default: 50,
    };
    let server = TestServer::start_with_rate_limits(env, limits).await;
    let execute = r#"{"action":"echo","params":{"message":"x"}}"#;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    for expected_remaining in [2, 1, 0] {
        let r = server
            .send("POST", "/mcp/execute", &[], Some(execute))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(header_u64(&r, "x-ratelimit-limit"), 3);
        assert_eq!(header_u64(&r, "x-ratelimit-remaining"), expected_remaining);
        let reset = header_u64(&r, "x-ratelimit-reset");
        let full_in = (3 - expected_remaining) * 20;
        assert!(
            (now() + full_in - 2..=now() + full_in + 1).contains(&reset),
            "reset {reset} vs now {} + {full_in}",
            now()
        );
    }
    let refused = server
        .send("POST", "/mcp/execute", &[], Some(execute))
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"]["code"], "RATE_LIMITED");
    assert_eq!(header_u64(&refused, "x-ratelimit-remaining"), 0);
    let retry_after = header_u64(&refused, "retry-after");
    assert!((1..=20).contains(&retry_after), "{retry_after}");

    // MCP tools/call draws on the same bucket; other methods on the default one.
    let admin = server.key.clone().unwrap();
    let call = mcp(
        &server,
        &admin,
        "tools/call",
        json!({"name": "echo__echo", "arguments": {"message": "x"}}),
    )
    .await;
    assert_eq!(call.status, 429);
    assert_eq!(call.json()["error"]["code"], -32600);
    assert!(call.header("retry-after").is_some());
    let list = mcp(&server, &admin, "tools/list", json!({})).await;
    assert_eq!(list.status, 200);
    assert_eq!(header_u64(&list, "x-ratelimit-limit"), 50);

    // Failed credentials draw on the sender's address: guessing keys is limited too.
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let r = server
            .send(
                "GET",
                "/plugins",
                &[("x-api-key", "wg_guess0000000000000000000000000000000000")],
                None,
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // Another key has its own bucket.
    let other = server.create_key(Role::Caller, None);
    let r = server
        .send(
            "POST",
            "/mcp/execute",
            &[("x-api-key", &other)],
            Some(execute),
        )
        .await;
    assert_eq!(r.status, 200);

    // Open routes count by address.
    for expected in [200, 200, 429] {
        let r = server
            .send("GET", "/health", &[("x-api-key", "")], None)
            .await;
        assert_eq!(r.status, expected);
    }
}

#[test]
fn https_serves_with_the_configured_certificate() {
    use std::io::{Read, Write};
    let data = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = data.path().join("cert.pem");
    let key_path = data.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = spawn_binary(
        data.path(),
        &[
            ("WAYGATE_TLS_CERT", cert_path.to_str().unwrap()),
            ("WAYGATE_TLS_KEY", key_path.to_str().unwrap()),
        ],
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(&server.addr).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let request = format!(
        "GET /plugins HTTP/1.1\r\nhost: localhost\r\nx-api-key: {ADMIN_KEY}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("hostile"));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let (status, _) = blocking_request(&server.addr, "GET", "/health", &[], "");
    assert_eq!(status, 0);
}

#[tokio::test]
async fn metrics_can_be_keyed() {
    let options = crate::support::ServerOptions {
        metrics_access: waygate::config::MetricsAccess::Keyed,
        ..crate::support::ServerOptions::default()
    };
    let server = TestServer::start_with(TestEnv::new(), options).await;
    let open = server
        .send("GET", "/metrics", &[("x-api-key", "")], None)
        .await;
    assert_eq!(open.status, 401);
    let keyed = server.send("GET", "/metrics", &[], None).await;
    assert_eq!(keyed.status, 200);
}

#[tokio::test]
async fn unknown_routes_answer_before_any_body_is_read() {
    let server = examples().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A body announced and never sent: the answer must not wait for it.
    let head = format!(
        "POST /nope HTTP/1.1\r\nhost: {}\r\ncontent-length: 1000000\r\n\r\n",
        server.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await;
    let n = read.expect("answered at once").unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 404"));
}

#[test]
fn without_a_terminal_the_first_admin_key_goes_to_a_private_file() {
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[("WAYGATE_ADMIN_KEY", "")]);
    let path = data.path().join("initial-admin-key");
    let key = std::fs::read_to_string(&path)
        .expect("the key file")
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (status, _) = blocking_request(&server.addr, "GET", "/plugins", &[("x-api-key", &key)], "");
    assert_eq!(status, 200);
    assert!(
        !server.log.lock().unwrap().contains(&key),
        "the key is not in the log"
    );
}
