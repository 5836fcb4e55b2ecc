//! Outbound HTTP: the `fetch` example plugin against a local server on 127.0.0.1. A grant
//! opens exactly its hosts and methods; everything else, and any loopback or private
//! address the operator has not opened, is refused before a connection is made.

use crate::support::{TestEnv, TestServer, Upstream, UpstreamReply, example, options};
use serde_json::{Value, json};
use std::time::Duration;
use waygate::registry::{LoadPolicy, Registry};
use waygate::runtime::{Content, ToolResult};

/// A local site: JSON, text, a large body (declared or chunked) and a slow page.
async fn site() -> Upstream {
    Upstream::start(|_, path| match path {
        "/json" => UpstreamReply::ok("application/json", r#"{"hello":"world","n":[1,2]}"#),
        "/text" => UpstreamReply::ok("text/plain; charset=utf-8", "plain words"),
        "/missing" => UpstreamReply {
            status: 404,
            ..UpstreamReply::ok("text/plain", "no such page")
        },
        "/big" => UpstreamReply::ok("text/plain", vec![b'x'; 256 * 1024]),
        "/big-chunked" => UpstreamReply {
            chunked: true,
            ..UpstreamReply::ok("text/plain", vec![b'x'; 256 * 1024])
        },
        "/slow" => UpstreamReply {
            delay: Duration::from_secs(5),
            ..UpstreamReply::ok("text/plain", "late")
        },
        _ => UpstreamReply {
            status: 500,
            ..UpstreamReply::ok("text/plain", "unexpected path")
        },
    })
    .await
}

/// The fetch plugin with `manifest` (capabilities, limits), under an address policy that
/// opens `networks`.
async fn fetch_plugin(manifest: &str, networks: &[&str]) -> (TestEnv, Registry) {
    let env = TestEnv::new();
    env.add("fetch", &example("fetch"), manifest);
    let policy = LoadPolicy {
        allowed_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
        ..LoadPolicy::unsigned(env.limits.plugin_policy())
    };
    let registry = Registry::load(&env.runtime, &env.plugins, &policy).await;
    assert!(
        registry.failures().is_empty(),
        "fetch did not load: {:?}",
        registry.failures()
    );
    (env, registry)
}

fn grant(site: &Upstream) -> String {
    format!(
        "[capabilities.http]\nallow = [\"http://127.0.0.1:{}\"]\n",
        site.addr.port()
    )
}

async fn fetch(registry: &Registry, env: &TestEnv, arguments: Value) -> ToolResult {
    match registry
        .call_tool(&env.runtime, "fetch__fetch", &arguments, options())
        .await
    {
        Ok(Ok(result)) => result,
        other => panic!("fetch did not answer with a result: {other:?}"),
    }
}

fn text(result: &ToolResult) -> &str {
    match &result.content[0] {
        Content::Text(text) => text,
        other => panic!("expected text, got {other:?}"),
    }
}

/// Asserts a refusal whose message contains `expected`.
fn assert_refused(result: &ToolResult, expected: &str) {
    assert!(result.is_error, "expected a refusal, got {result:?}");
    assert!(text(result).contains(expected), "{}", text(result));
}

#[tokio::test]
async fn an_allowed_host_answers_with_json_or_text() {
    let site = site().await;
    let (env, registry) = fetch_plugin(&grant(&site), &["127.0.0.0/8"]).await;
    let base = format!("http://127.0.0.1:{}", site.addr.port());

    let json = fetch(&registry, &env, json!({"url": format!("{base}/json")})).await;
    assert!(!json.is_error, "{json:?}");
    match &json.content[0] {
        Content::Json(body) => {
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(body, json!({"hello": "world", "n": [1, 2]}));
        }
        other => panic!("expected JSON, got {other:?}"),
    }
    let plain = fetch(&registry, &env, json!({"url": format!("{base}/text")})).await;
    assert_eq!(text(&plain), "plain words");
    let missing = fetch(&registry, &env, json!({"url": format!("{base}/missing")})).await;
    assert_refused(&missing, "HTTP 404");
    assert_eq!(site.requests(), 3);
}

#[tokio::test]
async fn hosts_and_ports_outside_the_allow_list_are_refused_unsent() {
    let site = site().await;
    let (env, registry) = fetch_plugin(&grant(&site), &["127.0.0.0/8", "::1/128"]).await;
    let port = site.addr.port();
    for url in [
        // The same server by another name, on another port, and over another scheme.
        format!("http://localhost:{port}/json"),
        format!("http://127.0.0.1:{}/json", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}/json"),
        "http://example.com/".to_owned(),
    ] {
        let result = fetch(&registry, &env, json!({ "url": url })).await;
        assert_refused(&result, "does not allow this host or method");
    }
    assert_eq!(site.requests(), 0);
}

#[tokio::test]
async fn methods_outside_the_grant_are_refused_unsent() {
    let site = site().await;
    let (env, registry) = fetch_plugin(&grant(&site), &["127.0.0.0/8"]).await;
    let url = format!("http://127.0.0.1:{}/json", site.addr.port());
    // The grant names no methods: GET and HEAD only.
    let result = fetch(
        &registry,
        &env,
        json!({"url": url, "method": "POST", "body": "{}"}),
    )
    .await;
    assert_refused(&result, "does not allow this host or method");
    assert_eq!(site.requests(), 0);
}

#[tokio::test]
async fn loopback_and_private_addresses_stay_closed_unless_the_operator_opens_them() {
    let site = site().await;
    let port = site.addr.port();
    // The manifest allows the site by address and by name, but the operator's policy opens
    // no network: neither may be reached, and `localhost` is refused after resolution.
    let manifest = format!(
        "[capabilities.http]\nallow = [\"http://127.0.0.1:{port}\", \"http://localhost:{port}\", \"http://10.0.0.1\", \"http://169.254.169.254\"]\n"
    );
    let (env, registry) = fetch_plugin(&manifest, &[]).await;
    for url in [
        format!("http://127.0.0.1:{port}/json"),
        format!("http://localhost:{port}/json"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let result = fetch(&registry, &env, json!({ "url": url })).await;
        assert_refused(&result, "loopback, private or link-local");
    }
    assert_eq!(site.requests(), 0);
}

#[tokio::test]
async fn a_plugin_without_a_grant_reaches_nothing() {
    let site = site().await;
    let (env, registry) = fetch_plugin("", &["127.0.0.0/8"]).await;
    let url = format!("http://127.0.0.1:{}/json", site.addr.port());
    let result = fetch(&registry, &env, json!({ "url": url })).await;
    assert_refused(&result, "does not allow");
    assert_eq!(site.requests(), 0);
}

#[tokio::test]
async fn responses_past_the_size_cap_fail_declared_or_streamed() {
    let site = site().await;
    let manifest = format!("{}[limits]\nhttp_response_bytes = 65536\n", grant(&site));
    let (env, registry) = fetch_plugin(&manifest, &["127.0.0.0/8"]).await;
    for path in ["/big", "/big-chunked"] {
        let url = format!("http://127.0.0.1:{}{path}", site.addr.port());
        let result = fetch(&registry, &env, json!({ "url": url })).await;
        // Declared: refused before the body; streamed: the body fails at the cap.
        assert_refused(&result, "limit");
    }
}

#[tokio::test]
async fn a_slow_server_times_out_at_the_http_limit_not_the_call_limit() {
    let site = site().await;
    let manifest = format!("{}[limits]\nhttp_timeout_ms = 200\n", grant(&site));
    let (env, registry) = fetch_plugin(&manifest, &["127.0.0.0/8"]).await;
    let url = format!("http://127.0.0.1:{}/slow", site.addr.port());
    let result = fetch(&registry, &env, json!({ "url": url })).await;
    assert_refused(&result, "did not answer in time");
}

#[tokio::test]
async fn plugin_details_show_the_grant_and_what_is_never_granted() {
    let env = TestEnv::new();
    env.add(
        "fetch",
        &example("fetch"),
        "[capabilities.http]\nallow = [\"api.example.com\", \"https://*.example.org:*\"]\nmethods = [\"GET\", \"POST\"]\n",
    );
    let server = TestServer::start(env).await;
    let (status, fetch) = server.get("/plugins/fetch").await;
    assert_eq!(status, 200, "{fetch}");
    let grants = &fetch["grants"];
    assert_eq!(
        grants["http"],
        json!({"allow": ["api.example.com", "https://*.example.org:*"], "methods": ["GET", "POST"], "allowed_networks": []})
    );
    assert_eq!(grants["filesystem"], false);
    assert_eq!(grants["environment"], false);
    assert_eq!(grants["sockets"], false);
    assert_eq!(fetch["limits"]["http_requests"], 16);
}
