//! The example plugins, each exercised through the host.

use crate::support::{TestEnv, options};
use serde_json::{Value, json};
use waygate::registry::Registry;
use waygate::runtime::Content;

async fn examples() -> (TestEnv, Registry) {
    let env = TestEnv::new();
    env.add_examples();
    let registry = env.registry().await;
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    (env, registry)
}

/// Calls a tool that answers with one JSON item and returns it parsed.
async fn call_json(env: &TestEnv, registry: &Registry, tool: &str, args: Value) -> Value {
    let result = registry
        .call_tool(&env.runtime, tool, &args, options())
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
        .unwrap_or_else(|e| panic!("{tool}: {e:?}"));
    match &result.content[..] {
        [Content::Json(text)] => serde_json::from_str(text).expect("valid JSON"),
        other => panic!("{tool}: expected one JSON item, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_and_test_answer() {
    let (env, registry) = examples().await;
    let result = registry
        .call_tool(&env.runtime, "echo", &json!({"message": "hi ✓"}), options())
        .await
        .expect("runs")
        .expect("succeeds");
    assert!(matches!(&result.content[..], [Content::Text(t)] if t == "hi ✓"));
    let test = call_json(&env, &registry, "test", json!({})).await;
    assert_eq!(test["message"], "test successful");
    assert_eq!(test["request_id"], "test");
}
