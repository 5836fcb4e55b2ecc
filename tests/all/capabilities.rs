//! Denied capabilities: with no grants a plugin sees no files, no environment, no sockets
//! and no name lookup; and every call gets a fresh instance.

use crate::support::{TestEnv, fixture, options};
use serde_json::json;
use std::sync::Arc;
use waygate::registry::Registry;
use waygate::runtime::{CallError, Content};

/// The hostile fixture; `grant` is TOML added to its manifest.
async fn hostile_with(grant: &str) -> (TestEnv, Registry) {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), grant);
    let registry = env.registry().await;
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    (env, registry)
}

async fn hostile() -> (TestEnv, Registry) {
    hostile_with("").await
}

/// Even a plugin granted outbound HTTP to any host gets nothing else.
const HTTP_TO_ANYWHERE: &str = "[capabilities.http]\nallow = [\"*:*\"]\n";

/// The fixture reports success with a `LEAK:` prefix, failure as a typed error starting
/// with `denied:`. Checked without grants and with the widest HTTP grant.
async fn assert_denied(tool: &str, expected: &str) {
    for grant in ["", HTTP_TO_ANYWHERE] {
        assert_denied_with(grant, tool, expected).await;
    }
}

async fn assert_denied_with(grant: &str, tool: &str, expected: &str) {
    let (env, registry) = hostile_with(grant).await;
    match registry
        .call_tool(&env.runtime, tool, &json!({}), options())
        .await
    {
        Ok(Err(CallError::Failed(message))) => {
            assert!(
                message.starts_with("denied:") && message.contains(expected),
                "{tool}: {message}"
            );
        }
        other => panic!("{tool}: expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn the_filesystem_is_not_there() {
    assert_denied("read-passwd", "denied").await;
}

#[tokio::test]
async fn the_environment_is_empty() {
    // The test process has PATH, HOME and more; none of it may reach the guest.
    assert!(std::env::vars().next().is_some());
    assert_denied("read-env", "no environment variables").await;
}

#[tokio::test]
async fn sockets_are_refused() {
    assert_denied("open-socket", "denied").await;
}

#[tokio::test]
async fn name_lookup_is_refused() {
    assert_denied("resolve-name", "denied").await;
}

#[tokio::test]
async fn a_manifest_asking_for_files_environment_or_sockets_does_not_load() {
    for (asked, key) in [
        ("[capabilities]\nfilesystem = [\"/etc\"]", "filesystem"),
        ("[capabilities.environment]\nHOME = true", "environment"),
        ("[capabilities]\nsockets = true", "sockets"),
    ] {
        let env = TestEnv::new();
        env.add("hostile", &fixture("hostile"), asked);
        let registry = env.registry().await;
        assert_eq!(registry.plugins().count(), 0, "{asked}");
        let reason = &registry.failures()[0].reason;
        assert!(
            reason.contains(&format!("capabilities.{key} cannot be granted")),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    let (env, registry) = hostile().await;
    for _ in 0..3 {
        let result = registry
            .call_tool(&env.runtime, "counter", &json!({}), options())
            .await
            .expect("runs")
            .expect("succeeds");
        assert!(
            matches!(&result.content[..], [Content::Text(t)] if t == "1"),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_plugin_do_not_see_each_other() {
    let env = TestEnv::new();
    env.add("echo", &crate::support::example("echo"), "");
    let registry = Arc::new(env.registry().await);
    let env = Arc::new(env);
    let calls = (0..64).map(|i| {
        let (env, registry) = (env.clone(), registry.clone());
        tokio::spawn(async move {
            let message = format!("message {i}");
            let result = registry
                .call_tool(
                    &env.runtime,
                    "echo",
                    &json!({ "message": message }),
                    options(),
                )
                .await
                .expect("runs")
                .expect("succeeds");
            (message, result)
        })
    });
    for call in calls {
        let (message, result) = call.await.expect("task");
        assert!(
            matches!(&result.content[..], [Content::Text(t)] if *t == message),
            "{result:?}"
        );
    }
}
