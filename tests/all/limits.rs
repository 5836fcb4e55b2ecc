//! Every limit, hit by the hostile fixture: each ends that call with an error naming the
//! limit and its value, and a normal call right after succeeds.

use crate::support::{TestEnv, fixture, options};
use serde_json::json;
use std::time::{Duration, Instant};
use waygate::registry::{Error, Registry};
use waygate::runtime::{self, CallError, CallOptions, Content, Limit};

async fn hostile(extra: &str) -> (TestEnv, Registry) {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), extra);
    let registry = env.registry().await;
    assert!(registry.failures().is_empty(), "{:?}", registry.failures());
    (env, registry)
}

async fn call(
    env: &TestEnv,
    registry: &Registry,
    tool: &str,
    args: serde_json::Value,
) -> Result<Result<runtime::ToolResult, CallError>, Error> {
    registry
        .call_tool(&env.runtime, tool, &args, options())
        .await
}

/// Asserts the call failed on `limit`, that the message names it, and that the plugin still
/// serves a normal call afterwards.
async fn assert_limit(
    env: &TestEnv,
    registry: &Registry,
    tool: &str,
    args: serde_json::Value,
    limit: Limit,
    value: &str,
) {
    match call(env, registry, tool, args).await {
        Err(Error::Runtime(error)) => {
            assert_eq!(error.limit(), Some(limit), "{tool}: {error}");
            let message = error.to_string();
            assert!(
                message.contains(limit.key()) && message.contains(value),
                "{tool}: {message}"
            );
        }
        other => panic!("{tool}: expected the {limit} error, got {other:?}"),
    }
    assert_ok_afterwards(env, registry).await;
}

/// A fresh hostile plugin with the manifest lines `extra`, then [`assert_limit`].
async fn check_limit(extra: &str, tool: &str, args: serde_json::Value, limit: Limit, value: &str) {
    let (env, registry) = hostile(extra).await;
    assert_limit(&env, &registry, tool, args, limit, value).await;
}

async fn assert_ok_afterwards(env: &TestEnv, registry: &Registry) {
    let result = call(env, registry, "ok", json!({}))
        .await
        .expect("ok runs")
        .expect("ok succeeds");
    assert!(matches!(&result.content[..], [Content::Text(t)] if t == "ok"));
}

#[tokio::test]
async fn an_endless_loop_runs_out_of_fuel() {
    check_limit(
        "[limits]\nfuel = 20000000",
        "spin",
        json!({}),
        Limit::Fuel,
        "20000000",
    )
    .await;
}

#[tokio::test]
async fn an_endless_loop_with_fuel_to_spare_hits_the_deadline() {
    let started = Instant::now();
    check_limit(
        "[limits]\ntimeout_ms = 300",
        "spin",
        json!({}),
        Limit::WallTime,
        "300 ms",
    )
    .await;
    // Bounded, not timed: the call must stop, whatever the machine's speed.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_sleeping_guest_is_cancelled_at_the_deadline() {
    let started = Instant::now();
    check_limit(
        "[limits]\ntimeout_ms = 200",
        "sleep",
        json!({}),
        Limit::WallTime,
        "200 ms",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_request_timeout_applies_when_smaller_than_the_plugins() {
    let (env, registry) = hostile("").await;
    let options = CallOptions {
        timeout: Some(Duration::from_millis(150)),
        ..options()
    };
    match registry
        .call_tool(&env.runtime, "spin", &json!({}), options)
        .await
    {
        Err(Error::Runtime(error)) => {
            assert_eq!(error.limit(), Some(Limit::WallTime));
            assert!(error.to_string().contains("150 ms"), "{error}");
        }
        other => panic!("expected a time limit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    check_limit("", "memory-bomb", json!({}), Limit::Memory, "64 MiB").await;
}

#[tokio::test]
async fn the_memory_cap_follows_the_manifest() {
    check_limit(
        "[limits]\nmemory_mib = 16",
        "memory-bomb",
        json!({}),
        Limit::Memory,
        "16 MiB",
    )
    .await;
}

#[tokio::test]
async fn a_result_of_hundreds_of_megabytes_cannot_be_built() {
    check_limit(
        "",
        "big-result",
        json!({"mib": 300}),
        Limit::Memory,
        "64 MiB",
    )
    .await;
}

#[tokio::test]
async fn a_result_above_the_result_cap_is_refused() {
    check_limit(
        "[limits]\nresult_bytes = 1048576",
        "big-result",
        json!({"mib": 4}),
        Limit::ResultSize,
        "1048576 bytes",
    )
    .await;
}

#[tokio::test]
async fn flooding_stdout_hits_the_output_cap() {
    check_limit(
        "",
        "flood-stdout",
        json!({"mib": 4}),
        Limit::Output,
        "1048576 bytes",
    )
    .await;
}

#[tokio::test]
async fn endless_recursion_is_a_stack_overflow_trap() {
    let (env, registry) = hostile("").await;
    match call(&env, &registry, "recurse", json!({})).await {
        Err(Error::Runtime(runtime::Error::Trap { message, .. })) => {
            assert!(message.contains("call stack exhausted"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_ok_afterwards(&env, &registry).await;
}

#[tokio::test]
async fn a_panic_reports_its_message() {
    let (env, registry) = hostile("").await;
    match call(&env, &registry, "panic", json!({})).await {
        Err(Error::Runtime(runtime::Error::Trap { message, .. })) => {
            assert!(
                message.contains("plugin panicked") && message.contains("panicked on purpose"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_ok_afterwards(&env, &registry).await;
}

#[tokio::test]
async fn an_abort_is_reported_as_a_trap() {
    let (env, registry) = hostile("").await;
    match call(&env, &registry, "trap", json!({})).await {
        Err(Error::Runtime(runtime::Error::Trap { message, .. })) => {
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_ok_afterwards(&env, &registry).await;
}

#[tokio::test]
async fn the_key_value_quota_is_a_typed_error_for_the_plugin() {
    let (env, registry) = hostile("[limits]\nkv_quota_bytes = 200000").await;
    match call(&env, &registry, "kv-hog", json!({})).await {
        Ok(Err(CallError::Failed(message))) => {
            assert!(
                message.contains("quota") && message.contains("200000"),
                "{message}"
            );
        }
        other => panic!("expected the plugin to see a quota error, got {other:?}"),
    }
    assert_ok_afterwards(&env, &registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_cap_wait_then_fail() {
    let (env, registry) = hostile(SPIN_FOR_A_SECOND_MANIFEST_WITH_CONCURRENCY_1).await;
    assert_waits_then_fails(env, registry, Limit::Concurrency, "max_concurrency = 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_makes_calls_wait_then_fail() {
    let env = TestEnv::with_limits(waygate::config::Limits {
        instance_pool: 1,
        ..crate::support::test_limits()
    });
    env.add("hostile", &fixture("hostile"), SPIN_FOR_A_SECOND_MANIFEST);
    let registry = env.registry().await;
    assert_waits_then_fails(env, registry, Limit::InstancePool, "instance_pool").await;
}

/// The spinning call's limits: a one-second deadline, and fuel for far longer (the
/// ceiling), so that on a machine loaded by the rest of the suite the spin still ends on
/// its deadline and never on fuel first.
const SPIN_FOR_A_SECOND_MANIFEST: &str = "[limits]\ntimeout_ms = 1000\nfuel = 100000000000";
const SPIN_FOR_A_SECOND_MANIFEST_WITH_CONCURRENCY_1: &str =
    "[limits]\ntimeout_ms = 1000\nfuel = 100000000000\nmax_concurrency = 1";

/// Keeps the only slot busy with a spinning call (one-second deadline), then shows that a
/// call with a 100 ms timeout waits in vain and fails on `limit`, and that the plugin serves
/// again once the spin has ended.
async fn assert_waits_then_fails(env: TestEnv, registry: Registry, limit: Limit, message: &str) {
    let env = std::sync::Arc::new(env);
    let registry = std::sync::Arc::new(registry);
    let (busy_env, busy_registry) = (env.clone(), registry.clone());
    let busy =
        tokio::spawn(async move { call(&busy_env, &busy_registry, "spin", json!({})).await });
    let waiting = CallOptions {
        timeout: Some(Duration::from_millis(100)),
        ..options()
    };
    // Until the spinning call has taken the only slot, `ok` still gets through; retry until
    // it waits in vain, which the spin's one-second deadline leaves ample time for.
    loop {
        match registry
            .call_tool(&env.runtime, "ok", &json!({}), waiting.clone())
            .await
        {
            Ok(Ok(_)) if !busy.is_finished() => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(Error::Runtime(error)) => {
                assert_eq!(error.limit(), Some(limit), "{error}");
                assert!(error.to_string().contains(message), "{error}");
                break;
            }
            other => panic!("expected the {limit}, got {other:?}"),
        }
    }
    let busy = busy.await.expect("task");
    assert!(
        matches!(busy, Err(Error::Runtime(ref e)) if e.limit() == Some(Limit::WallTime)),
        "{busy:?}"
    );
    assert_ok_afterwards(&env, &registry).await;
}

#[tokio::test]
async fn arguments_that_break_the_schema_never_reach_the_plugin() {
    let (env, registry) = hostile("").await;
    match call(&env, &registry, "big-result", json!({"mib": "lots"})).await {
        Err(Error::InvalidArguments { tool, problems }) => {
            assert_eq!(tool, "hostile__big-result");
            assert!(problems.iter().any(|p| p.contains("/mib")), "{problems:?}");
        }
        other => panic!("expected invalid arguments, got {other:?}"),
    }
}

#[tokio::test]
async fn a_manifest_cannot_raise_a_limit_past_the_operators_ceiling() {
    let env = TestEnv::new();
    env.add(
        "hostile",
        &fixture("hostile"),
        "[limits]\ntimeout_ms = 600000",
    );
    let registry = env.registry().await;
    assert!(registry.plugin("hostile").is_none());
    let reason = &registry.failures()[0].reason;
    assert!(
        reason.contains("timeout_ms = 600000")
            && reason.contains("limits.plugin_ceiling.timeout_ms"),
        "{reason}"
    );
}
