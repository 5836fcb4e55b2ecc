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

#[tokio::test]
async fn data_processor_validates_and_converts() {
    let (env, registry) = examples().await;
    let csv = "name,qty\n\"Widget, large\",3\nBolt,10\n";
    let result = call_json(
        &env,
        &registry,
        "process_data",
        json!({"input": csv, "format": "csv", "output_format": "json"}),
    )
    .await;
    assert_eq!(result["valid"], true, "{result}");
    assert_eq!(result["records"], 2);
    assert_eq!(result["fields"], json!(["name", "qty"]));
    let converted: Value =
        serde_json::from_str(result["output"].as_str().expect("output")).expect("JSON output");
    assert_eq!(converted[0]["name"], "Widget, large");

    let broken = call_json(
        &env,
        &registry,
        "process_data",
        json!({"input": "{\"a\": [1, 2", "format": "json"}),
    )
    .await;
    assert_eq!(broken["valid"], false, "{broken}");
    assert!(!broken["errors"].as_array().expect("errors").is_empty());
}

#[tokio::test]
async fn text_analyzer_counts_and_scores() {
    let (env, registry) = examples().await;
    let text = "The cat sat on the mat. The cat was happy!\n\nA second paragraph about the cat.";
    let result = call_json(
        &env,
        &registry,
        "analyze",
        json!({"text": text, "top_n": 2}),
    )
    .await;
    assert_eq!(result["words"], 16, "{result}");
    assert_eq!(result["sentences"], 3);
    assert_eq!(result["paragraphs"], 2);
    assert_eq!(result["top_terms"][0], json!({"term": "cat", "count": 3}));
    assert!(result["flesch_reading_ease"].is_number());
    let empty = call_json(&env, &registry, "analyze", json!({"text": ""})).await;
    assert_eq!(empty["words"], 0);
}

#[tokio::test]
async fn notes_keep_state_across_fresh_instances_and_serve_resources() {
    let (env, registry) = examples().await;
    let added = call_json(
        &env,
        &registry,
        "add_note",
        json!({"title": "Groceries", "body": "Buy oat milk", "tags": ["home"]}),
    )
    .await;
    let uri = added["uri"].as_str().expect("uri").to_owned();
    call_json(
        &env,
        &registry,
        "add_note",
        json!({"title": "Deploy", "body": "Ship v2", "tags": ["work"]}),
    )
    .await;

    // Each call ran in its own instance: only the key-value store carried the notes over.
    let listed = call_json(&env, &registry, "list_notes", json!({})).await;
    assert_eq!(listed["total"], 2, "{listed}");
    let found = call_json(&env, &registry, "search_notes", json!({"query": "OAT"})).await;
    assert_eq!(found["total"], 1, "{found}");

    let notes = registry.plugin("notes").expect("notes");
    let resources = env
        .runtime
        .list_resources(&notes.guest, options())
        .await
        .expect("resources");
    assert_eq!(resources.len(), 2);
    let contents = env
        .runtime
        .read_resource(&notes.guest, &uri, options())
        .await
        .expect("runs")
        .expect("found");
    assert!(
        matches!(&contents[0].body, waygate::runtime::ResourceBody::Text(t) if t.contains("Buy oat milk"))
    );
    let missing = env
        .runtime
        .read_resource(&notes.guest, "notes://note/999", options())
        .await
        .expect("runs");
    assert!(matches!(
        missing,
        Err(waygate::runtime::ResourceError::NotFound(_))
    ));

    let prompt = env
        .runtime
        .get_prompt(
            &notes.guest,
            "summarize_notes",
            vec![("tag".into(), "work".into())],
            options(),
        )
        .await
        .expect("runs")
        .expect("renders");
    assert!(
        matches!(&prompt.messages[0].content, Content::Text(t) if t.contains("Ship v2") && !t.contains("oat milk"))
    );

    let id = added["id"].clone();
    let deleted = call_json(&env, &registry, "delete_note", json!({"id": id})).await;
    assert_eq!(deleted["deleted"], id);
    assert_eq!(
        call_json(&env, &registry, "list_notes", json!({})).await["total"],
        1
    );
}

#[tokio::test]
async fn the_javascript_plugin_answers_and_refuses_bad_patterns() {
    let (env, registry) = examples().await;
    let result = call_json(
        &env,
        &registry,
        "regex_extract",
        json!({"pattern": "(?<n>\\d+)", "text": "a1 b22 c333"}),
    )
    .await;
    assert_eq!(result["count"], 3, "{result}");
    assert_eq!(result["matches"][2]["named_groups"]["n"], "333");
    let replaced = call_json(
        &env,
        &registry,
        "regex_replace",
        json!({"pattern": "o", "flags": "g", "text": "foo", "replacement": "0"}),
    )
    .await;
    assert_eq!(replaced, json!({"text": "f00", "count": 2}));
    let bad = registry
        .call_tool(
            &env.runtime,
            "regex_test",
            &json!({"pattern": "[", "text": "x"}),
            options(),
        )
        .await
        .expect("runs");
    assert!(
        matches!(bad, Err(waygate::runtime::CallError::InvalidArguments(ref m)) if m.contains("regular expression")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_config_that_breaks_the_plugins_schema_keeps_only_that_plugin_out() {
    let env = TestEnv::new();
    env.add("echo", &crate::support::example("echo"), "");
    env.add(
        "data-processor",
        &crate::support::example("data-processor"),
        "[config]\nmax_input_bytes = \"lots\"",
    );
    let registry = env.registry().await;
    assert!(registry.plugin("echo").is_some());
    assert!(registry.plugin("data-processor").is_none());
    let failure = &registry.failures()[0];
    assert_eq!(failure.plugin, "data-processor");
    assert!(
        failure.reason.contains("[config]") && failure.reason.contains("max_input_bytes"),
        "{}",
        failure.reason
    );
}
