//! The runtime benchmark: what one sandboxed call costs, and what loading costs.
//!
//! Run: `cargo xtask bench` (builds the plugins, then this in release mode).
//! Prints, for the `echo` tool: the per-call cost through `Runtime::call_tool` (fresh store,
//! fresh instance, async call: what the server pays), the same with sync wasmtime on the same
//! engine (the alternative we measured against), and a call on one reused instance (the
//! floor without per-call isolation); for each example plugin, the cold compile time and the
//! load time from the compiled-component cache. A JSON line with every figure follows the table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use waygate::config::Limits;
use waygate::runtime::{CallOptions, Runtime};
use waygate::store::Store;

/// Calls per measured series; enough for a stable p99.
const CALLS: usize = 20_000;
/// Calls before measuring, so pools and caches are warm.
const WARMUP: usize = 2_000;

mod sync_bindings {
    //! Sync bindings of the same WIT, only for the comparison.
    wasmtime::component::bindgen!({ path: "../wit", world: "plugin" });
}
use sync_bindings::waygate::plugin::{config, kv, log, progress, types};

/// Host state for the sync comparison; `echo` calls none of the imports.
struct BenchState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BenchState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
impl types::Host for BenchState {}
impl log::Host for BenchState {
    fn log(&mut self, _: log::Level, _: String, _: Vec<(String, String)>) {}
}
impl progress::Host for BenchState {
    fn report(&mut self, _: f64, _: Option<f64>, _: Option<String>) {}
}
impl config::Host for BenchState {
    fn get_config_json(&mut self) -> String {
        "{}".to_owned()
    }
}
impl kv::Host for BenchState {
    fn get(&mut self, _: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        Ok(None)
    }
    fn set(&mut self, _: String, _: Vec<u8>) -> Result<(), kv::KvError> {
        Ok(())
    }
    fn delete(&mut self, _: String) -> Result<bool, kv::KvError> {
        Ok(false)
    }
    fn list_keys(&mut self, _: String, _: u32) -> Result<Vec<String>, kv::KvError> {
        Ok(Vec::new())
    }
}

fn bench_state() -> BenchState {
    BenchState {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
    }
}

struct Series {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Series {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
    fn per_second(&self) -> f64 {
        let total: Duration = self.samples.iter().sum();
        self.samples.len() as f64 / total.as_secs_f64()
    }
}

fn measure(name: &'static str, mut call: impl FnMut()) -> Series {
    for _ in 0..WARMUP {
        call();
    }
    let samples = (0..CALLS)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    Series { name, samples }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn main() {
    let plugins = target_dir().join("plugins");
    let echo_wasm = std::fs::read(plugins.join("echo/echo.wasm"))
        .expect("target/plugins/echo/echo.wasm: run `cargo xtask bench`, which builds the plugins");
    let work = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(&work.path().join("bench.db")).expect("database"));
    let limits = Limits::default();
    let runtime =
        Runtime::new(&limits, Some(work.path().join("cache")), store.clone()).expect("runtime");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    // 1. What the server pays: Runtime::call_tool, a fresh store and instance per call.
    let guest = Arc::new(
        runtime
            .prepare("echo", &echo_wasm, limits.plugin, "{}".into())
            .expect("echo"),
    );
    let options = CallOptions {
        request_id: "bench".into(),
        ..CallOptions::default()
    };
    let fresh_async = measure("fresh instance, async (Runtime::call_tool)", || {
        let outcome = tokio.block_on(runtime.call_tool(
            &guest,
            "echo",
            r#"{"message":"hello"}"#.into(),
            options.clone(),
        ));
        assert!(matches!(outcome, Ok(Ok(_))));
    });

    // 2. The alternative: sync wasmtime, same engine and limits, fresh store and instance.
    let engine = runtime.engine().clone();
    let component = wasmtime::component::Component::new(&engine, &echo_wasm).expect("compile");
    let mut linker = Linker::<BenchState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    sync_bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).expect("imports");
    let pre = sync_bindings::PluginPre::new(linker.instantiate_pre(&component).expect("pre"))
        .expect("pre");
    let context = types::CallContext {
        request_id: "bench".into(),
        caller_id: None,
    };
    let fresh_sync = measure("fresh instance, sync", || {
        let mut store = wasmtime::Store::new(&engine, bench_state());
        store.set_fuel(limits.plugin.fuel).expect("fuel");
        store.set_epoch_deadline(u64::MAX / 2);
        let plugin = pre.instantiate(&mut store).expect("instantiate");
        let outcome = plugin.waygate_plugin_provider().call_call_tool(
            &mut store,
            "echo",
            r#"{"message":"hello"}"#,
            &context,
        );
        assert!(matches!(outcome, Ok(Ok(_))));
    });

    // 3. The floor: one instance reused for every call (no isolation between calls).
    let mut reused_store = wasmtime::Store::new(&engine, bench_state());
    reused_store.set_epoch_deadline(u64::MAX / 2);
    reused_store.set_fuel(limits.plugin.fuel).expect("fuel");
    let plugin = pre.instantiate(&mut reused_store).expect("instantiate");
    let reused = measure("reused instance, sync", || {
        reused_store.set_fuel(limits.plugin.fuel).expect("fuel");
        let outcome = plugin.waygate_plugin_provider().call_call_tool(
            &mut reused_store,
            "echo",
            r#"{"message":"hello"}"#,
            &context,
        );
        assert!(matches!(outcome, Ok(Ok(_))));
    });

    println!("echo: one tool call, {CALLS} calls after {WARMUP} warm-up, one core");
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>12}",
        "series", "median µs", "p99 µs", "max µs", "calls/s"
    );
    let series = [&fresh_async, &fresh_sync, &reused];
    for s in series {
        println!(
            "{:<44} {:>10.1} {:>10.1} {:>10.1} {:>12.0}",
            s.name,
            s.percentile(0.5).as_secs_f64() * 1e6,
            s.percentile(0.99).as_secs_f64() * 1e6,
            s.percentile(1.0).as_secs_f64() * 1e6,
            s.per_second()
        );
    }

    // 4. Loading: cold compile (empty cache) and cached load, per example plugin.
    println!();
    println!(
        "{:<20} {:>12} {:>16} {:>12}",
        "plugin", "size KiB", "cold compile ms", "cached ms"
    );
    let mut loads = Vec::new();
    let mut packages: Vec<PathBuf> = std::fs::read_dir(&plugins)
        .expect("plugins")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    packages.sort();
    for package in packages {
        let manifest = waygate::registry::Manifest::read(&package).expect("manifest");
        let wasm = std::fs::read(package.join(&manifest.component)).expect("component");
        let cache = tempfile::tempdir().expect("cache dir");
        let cold_runtime =
            Runtime::new(&limits, Some(cache.path().to_owned()), store.clone()).expect("runtime");
        let started = Instant::now();
        cold_runtime
            .prepare(&manifest.name, &wasm, limits.plugin, "{}".into())
            .expect("compile");
        let cold = started.elapsed();
        let started = Instant::now();
        cold_runtime
            .prepare(&manifest.name, &wasm, limits.plugin, "{}".into())
            .expect("cached load");
        let cached = started.elapsed();
        println!(
            "{:<20} {:>12} {:>16.1} {:>12.2}",
            manifest.name,
            wasm.len() / 1024,
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3
        );
        loads.push(serde_json::json!({
            "plugin": manifest.name, "bytes": wasm.len(),
            "cold_compile_ms": cold.as_secs_f64() * 1e3, "cached_load_ms": cached.as_secs_f64() * 1e3,
        }));
    }

    let json = serde_json::json!({
        "echo": series.iter().map(|s| serde_json::json!({
            "series": s.name,
            "median_us": s.percentile(0.5).as_secs_f64() * 1e6,
            "p99_us": s.percentile(0.99).as_secs_f64() * 1e6,
            "calls_per_second": s.per_second(),
        })).collect::<Vec<_>>(),
        "loads": loads,
    });
    println!();
    println!("{json}");
}
