//! The compiled-component cache: a restart loads instead of compiling, and a corrupt entry
//! is rebuilt, never trusted.

use crate::support::{TestEnv, fixture, options};
use serde_json::json;
use waygate::runtime::{CacheOutcome, content_hash};

fn outcome(registry: &waygate::registry::Registry) -> CacheOutcome {
    registry
        .plugin("hostile")
        .expect("loaded")
        .guest
        .cache_outcome()
}

#[tokio::test]
async fn a_second_load_hits_the_cache_and_a_corrupt_entry_is_rebuilt() {
    let cache = tempfile::tempdir().expect("cache dir");
    let wasm = fixture("hostile");

    let env = TestEnv::with_cache(Some(cache.path().to_owned()));
    env.add("hostile", &wasm, "");
    assert_eq!(outcome(&env.registry().await), CacheOutcome::Miss);
    assert_eq!(outcome(&env.registry().await), CacheOutcome::Hit);

    // Flip one byte in the middle of the compiled code.
    let hash = content_hash(&std::fs::read(&wasm).expect("wasm"));
    let entry = env.runtime.cache_entry_path(&hash).expect("cache on");
    let mut bytes = std::fs::read(&entry).expect("entry");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).expect("corrupt");

    let registry = env.registry().await;
    assert_eq!(outcome(&registry), CacheOutcome::Rebuilt);
    let result = registry
        .call_tool(&env.runtime, "ok", &json!({}), options())
        .await;
    assert!(matches!(result, Ok(Ok(_))), "{result:?}");
    assert_eq!(outcome(&env.registry().await), CacheOutcome::Hit);

    // A truncated entry is rebuilt as well.
    std::fs::write(&entry, &bytes[..10]).expect("truncate");
    assert_eq!(outcome(&env.registry().await), CacheOutcome::Rebuilt);
}
