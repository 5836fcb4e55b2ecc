//! Hot reload on a real server: plugins added, updated, broken and removed while it
//! serves; calls in flight finish on the version they started with; listeners hear about
//! the change; reloads never overlap.

use crate::support::{TestEnv, TestServer, example, fixture};
use serde_json::{Value, json};
use std::time::Duration;

async fn reload(server: &TestServer) -> (u16, Value) {
    server.post("/plugins/reload", "").await
}

fn tool_names(server_response: &Value) -> Vec<String> {
    server_response["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn plugins_come_and_go_and_a_broken_update_keeps_the_old_version() {
    let env = TestEnv::new();
    env.add("echo", &example("echo"), "");
    let server = TestServer::start(env).await;
    let listen = json!({"jsonrpc": "2.0", "id": "l", "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("accept", "text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "subscriptions/listen"),
    ];
    let mut stream = server
        .open_stream("POST", "/mcp", &headers, Some(&listen.to_string()))
        .await;
    assert!(
        stream.next_message(Duration::from_secs(5)).await.is_some(),
        "ack"
    );

    // Added.
    server
        .env
        .add("text-analyzer", &example("text-analyzer"), "");
    let (status, body) = reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "plugins_reloaded");
    assert_eq!(body["count"], 2);
    assert!(body["duration_ms"].is_u64());
    let (_, commands) = server.get("/mcp/commands").await;
    assert!(tool_names(&commands).contains(&"text-analyzer__analyze".to_owned()));
    let note = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("a change");
    assert_eq!(note["method"], "notifications/tools/list_changed");

    // Broken: the old version keeps serving, and the answer says so.
    std::fs::write(
        server.env.plugins.join("echo/plugin.wasm"),
        b"not a component",
    )
    .unwrap();
    let (status, body) = reload(&server).await;
    assert_eq!(status, 200);
    let failed = &body["failed"][0];
    assert_eq!(failed["name"], "echo");
    assert_eq!(failed["serving_version"], "0.1.0");
    assert!(!failed["error"].as_str().unwrap().is_empty());
    let (status, _) = server
        .post(
            "/mcp/execute",
            r#"{"action":"echo__echo","params":{"message":"still"}}"#,
        )
        .await;
    assert_eq!(status, 200, "the previous echo still answers");

    // Removed.
    std::fs::remove_dir_all(server.env.plugins.join("text-analyzer")).unwrap();
    let (status, body) = reload(&server).await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(1)), "{body}");
    let (status, _) = server
        .post(
            "/mcp/execute",
            r#"{"action":"text-analyzer__analyze","params":{"text":"x"}}"#,
        )
        .await;
    assert_eq!(status, 404);
    let note = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("a change");
    assert_eq!(note["method"], "notifications/tools/list_changed");
}

#[tokio::test]
async fn a_call_in_flight_finishes_on_the_version_it_started_with() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    let call = server.post("/mcp/execute", r#"{"action":"hostile__progress"}"#);
    let remove = async {
        tokio::time::sleep(Duration::from_millis(15)).await;
        std::fs::remove_dir_all(server.env.plugins.join("hostile")).unwrap();
        reload(&server).await
    };
    let ((call_status, call_body), (reload_status, reload_body)) = tokio::join!(call, remove);
    assert_eq!(reload_status, 200, "{reload_body}");
    assert_eq!(reload_body["count"], 0);
    assert_eq!(call_status, 200, "{call_body}");
    assert_eq!(call_body["result"]["message"], "done");
    let (status, _) = server
        .post("/mcp/execute", r#"{"action":"hostile__ok"}"#)
        .await;
    assert_eq!(status, 404, "gone after the swap");
}

#[tokio::test]
async fn reloads_never_overlap_and_need_an_admin() {
    let env = TestEnv::new();
    env.add_examples();
    let server = TestServer::start(env).await;
    let (first, second) = tokio::join!(reload(&server), reload(&server));
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let caller = server.create_key(waygate::auth::Role::Caller, None);
    let r = server
        .send("POST", "/plugins/reload", &[("x-api-key", &caller)], None)
        .await;
    assert_eq!(r.status, 403);
}

/// Clients keep calling while plugins are reloaded again and again (an update, an added
/// plugin, a removed one, a broken one): no call to a plugin that stays fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_call_fails_while_plugins_are_reloaded() {
    let env = TestEnv::new();
    env.add("echo", &example("echo"), "");
    let server = std::sync::Arc::new(TestServer::start(env).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let server = server.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = format!(r#"{{"action":"echo__echo","params":{{"message":"{n}"}}}}"#);
                    let (status, answer) = server.post("/mcp/execute", &body).await;
                    if status == 200
                        && answer["result"]["message"].as_str() == Some(n.to_string().as_str())
                    {
                        ok += 1;
                    } else {
                        failed.push((status, answer));
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let plugins = server.env.plugins.clone();
    let echo_wasm = example("echo");
    for round in 0..6 {
        match round % 3 {
            // An update: the same plugin, written anew (its manifest version moves on).
            0 => {
                std::fs::copy(&echo_wasm, plugins.join("echo/plugin.wasm")).unwrap();
                std::fs::write(
                    plugins.join("echo/plugin.toml"),
                    format!("name = \"echo\"\nversion = \"0.1.{round}\"\n"),
                )
                .unwrap();
            }
            // Another plugin comes and a broken one appears.
            1 => {
                server
                    .env
                    .add("text-analyzer", &example("text-analyzer"), "");
                let broken = plugins.join("broken");
                std::fs::create_dir_all(&broken).unwrap();
                std::fs::write(
                    broken.join("plugin.toml"),
                    "name = \"broken\"\nversion = \"1\"\n",
                )
                .unwrap();
                std::fs::write(broken.join("plugin.wasm"), b"\0asm garbage").unwrap();
            }
            // They go again.
            _ => {
                std::fs::remove_dir_all(plugins.join("text-analyzer")).unwrap();
                std::fs::remove_dir_all(plugins.join("broken")).unwrap();
            }
        }
        let (status, body) = reload(&server).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (ok, failed) = client.await.unwrap();
        assert!(failed.is_empty(), "failed calls: {failed:?}");
        total += ok;
    }
    assert!(total > 20, "the clients kept calling: {total} calls");
    eprintln!("{total} calls, none failed, across 6 reloads");
}

#[test]
fn a_disabled_plugin_stays_out_of_service_across_restarts() {
    use crate::support::{ADMIN_KEY, blocking_request, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    let admin = [("x-api-key", ADMIN_KEY)];
    let call = |addr: &str| {
        blocking_request(
            addr,
            "POST",
            "/mcp/execute",
            &admin,
            r#"{"action":"hostile__ok"}"#,
        )
        .0
    };
    let server = spawn_binary(data.path(), &[("WAYGATE_RATE_LIMITS", "off")]);
    assert_eq!(call(&server.addr), 200);
    let (status, body) =
        blocking_request(&server.addr, "POST", "/plugins/hostile/disable", &admin, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"disabled""#), "{body}");
    assert_eq!(call(&server.addr), 404, "out of service at once");
    drop(server);

    let server = spawn_binary(data.path(), &[("WAYGATE_RATE_LIMITS", "off")]);
    assert_eq!(call(&server.addr), 404, "still out after a restart");
    let (_, plugins) = blocking_request(&server.addr, "GET", "/plugins", &admin, "");
    assert!(plugins.contains(r#""status":"disabled""#), "{plugins}");
    let (status, body) =
        blocking_request(&server.addr, "POST", "/plugins/hostile/enable", &admin, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"active""#), "{body}");
    assert_eq!(call(&server.addr), 200);
    let (status, _) = blocking_request(&server.addr, "POST", "/plugins/nope/disable", &admin, "");
    assert_eq!(status, 404);

    // The store keeps every package's state.
    drop(server);
    let db = rusqlite::Connection::open(data.path().join("waygate.db")).unwrap();
    let (state, hash): (String, Option<String>) = db
        .query_row(
            "SELECT status, content_hash FROM plugins WHERE name = 'hostile'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "active");
    assert_eq!(hash.map(|h| h.len()), Some(64));
}

#[test]
fn the_reload_command_asks_the_running_server() {
    use crate::support::{ADMIN_KEY, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[]);
    let reload = |key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
            .args(["reload", "--bind", &server.addr])
            .env("WAYGATE_KEY", key)
            .output()
            .unwrap()
    };
    let done = reload(ADMIN_KEY);
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(out.contains("1 serving"), "{out}");
    let refused = reload("wg_wrong00000000000000000000000000000000000");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
}

#[tokio::test]
async fn one_plugin_reloads_alone() {
    let env = TestEnv::new();
    env.add("echo", &example("echo"), "");
    env.add("hostile", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    // Both packages change on disk; only echo is reloaded.
    std::fs::write(server.env.plugins.join("hostile/plugin.wasm"), b"broken").unwrap();
    let (status, body) = server.post("/plugins/echo/reload", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loaded"], json!(["echo", "hostile"]), "{body}");
    assert_eq!(body["failed"], json!([]), "hostile was not touched");
    let (status, _) = server
        .post("/mcp/execute", r#"{"action":"hostile__ok"}"#)
        .await;
    assert_eq!(status, 200);

    let (status, body) = server.post("/plugins/hostile/reload", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failed"][0]["name"], "hostile");
    assert_eq!(body["failed"][0]["serving_version"], "0.1.0");
    let (status, _) = server
        .post("/mcp/execute", r#"{"action":"hostile__ok"}"#)
        .await;
    assert_eq!(status, 200, "the old version still serves");

    let (status, _) = server.post("/plugins/nope/reload", "").await;
    assert_eq!(status, 404);
}

#[test]
fn a_watched_plugins_directory_reloads_by_itself() {
    use crate::support::{ADMIN_KEY, blocking_request, spawn_binary};
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(data.path(), &[("WAYGATE_WATCH_PLUGINS", "on")]);
    let echo = data.path().join("plugins/echo");
    std::fs::create_dir_all(&echo).unwrap();
    std::fs::copy(example("echo"), echo.join("plugin.wasm")).unwrap();
    std::fs::write(
        echo.join("plugin.toml"),
        "name = \"echo\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, commands) = blocking_request(
            &server.addr,
            "GET",
            "/mcp/commands",
            &[("x-api-key", ADMIN_KEY)],
            "",
        );
        if commands.contains("echo__echo") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload; log:\n{}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each swap changes which build answers: clients never see an older build after a newer
/// one, and a call made after a reload returns gets the new build.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_right_build_answers_before_and_after_each_swap() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "[config]\nbuild = 0");
    let server = std::sync::Arc::new(TestServer::start(env).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let call = |server: std::sync::Arc<TestServer>| async move {
        let (status, answer) = server
            .post("/mcp/execute", r#"{"action":"hostile__build"}"#)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["result"]["message"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seen.push(call(server.clone()).await);
                }
                seen
            })
        })
        .collect();
    let manifest = server.env.plugins.join("hostile/plugin.toml");
    for build in 1..=5u32 {
        std::fs::write(
            &manifest,
            format!("name = \"hostile\"\nversion = \"0.1.{build}\"\n[config]\nbuild = {build}\n"),
        )
        .unwrap();
        let (status, body) = reload(&server).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            call(server.clone()).await,
            build,
            "the new build answers after the swap"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        let seen = client.await.unwrap();
        assert!(!seen.is_empty());
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "went back: {seen:?}");
    }
}

/// With signatures required, clients keep calling while signed updates and tampered ones
/// are reloaded: the tampered ones are refused, the signed build keeps answering, and no
/// call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_and_tampered_updates_under_load_fail_no_call() {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let random = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let wasm = std::fs::read(example("echo")).unwrap();

    let env = TestEnv::new();
    env.add("echo", &example("echo"), "");
    let package = env.plugins.join("echo");
    std::fs::write(
        package.join("plugin.wasm.sig"),
        hex(pair.sign(&wasm).as_ref()),
    )
    .unwrap();
    let options = crate::support::ServerOptions {
        trusted_keys: Some(std::sync::Arc::from(vec![public])),
        ..crate::support::ServerOptions::default()
    };
    let server = std::sync::Arc::new(TestServer::start_with(env, options).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (server, stop) = (server.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                let mut calls = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) = server
                        .post(
                            "/mcp/execute",
                            r#"{"action":"echo__echo","params":{"message":"x"}}"#,
                        )
                        .await;
                    calls += 1;
                    if status != 200 {
                        failed.push((status, body));
                    }
                }
                (calls, failed)
            })
        })
        .collect();
    for round in 0..6 {
        let tampered = round % 2 == 1;
        let mut bytes = wasm.clone();
        if tampered {
            bytes.push(0);
        }
        std::fs::write(package.join("plugin.wasm"), &bytes).unwrap();
        let (status, body) = reload(&server).await;
        assert_eq!(status, 200, "{body}");
        if tampered {
            assert_eq!(body["failed"][0]["serving_version"], "0.1.0", "{body}");
        } else {
            assert_eq!(body["failed"], json!([]), "{body}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        let (calls, failed) = client.await.unwrap();
        assert!(calls > 0);
        assert!(failed.is_empty(), "{failed:?}");
    }
}
