//! The sandbox: one wasmtime engine, compiled and pre-instantiated plugins, and every call
//! in a fresh store and instance under fuel, deadline, memory and concurrency limits.
//! Owns: [`Runtime`], [`Guest`], [`CallOptions`], [`Error`]. Never: sees HTTP or JSON-RPC
//! types, reads config files, or decides which plugins exist (that is `registry`).
//! Limits: [`Limits::instance_pool`], every field of [`PluginLimits`], [`EPOCH_TICK`].

mod bindings;
mod cache;
mod error;
mod host;
mod outbound;

pub use bindings::{
    BinaryContent, CallContext, CallError, Content, PluginMetadata, Prompt, PromptArgument,
    PromptError, PromptMessage, PromptResult, Resource, ResourceBody, ResourceContents,
    ResourceError, ResourceLink, Role, Tool, ToolHints, ToolResult,
};
pub use cache::{CacheOutcome, content_hash};
pub use error::{Error, Limit};
pub use host::{HostState, HostStateBuilder, Progress, ProgressSink, truncate};
pub use outbound::{HostPattern, HttpGrant, HttpMethod, special_range};

use crate::config::limits::{
    EPOCH_TICK, MAX_CORE_INSTANCES_PER_COMPONENT, MAX_MEMORIES_PER_INSTANCE, MAX_PLUGIN_MEMORY_MIB,
    MAX_TABLE_ELEMENTS, MAX_TABLES_PER_INSTANCE,
};
use crate::config::{Limits, PluginLimits};
use crate::store::Store;
use crate::telemetry::{PluginHandles, PluginMetrics};
use bindings::{Plugin, PluginPre};
use cache::ComponentCache;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, PoolingAllocationConfig, Trap, UpdateDeadline};

/// Most lines of captured stdout/stderr copied into the host log per call; the capture itself
/// is capped by [`PluginLimits::output_bytes`].
const MAX_OUTPUT_LOG_LINES: usize = 200;

/// Bytes of each linear memory, table and fiber stack reset with memset instead of madvise
/// when a pool slot is freed, so they stay resident and the next call does not fault them in
/// again. 128 KiB measured best for small calls (`benches/runtime.rs`): 1 MiB spent more on
/// memset than it saved in page faults.
const KEEP_RESIDENT_BYTES: usize = 128 << 10;

/// Bytes of each fiber stack kept resident. Smaller than for memories: every async call
/// takes two fibers (instantiate, then call), each reset on return, and a small call touches
/// only the top few pages of its stack.
const STACK_KEEP_RESIDENT_BYTES: usize = 16 << 10;

/// How long a call waits before trying again when the pool has no core instance, memory or
/// table left for it.
const POOL_RETRY: Duration = Duration::from_millis(5);

/// Freed pool slots decommitted together; see `engine_config`.
const DECOMMIT_BATCH: usize = 32;

/// How a caller wants one plugin call run.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// The host's request id, passed to the guest and tagged on its log lines.
    pub request_id: String,
    /// The authenticated caller's name.
    pub caller_id: Option<String>,
    /// The request's own timeout; the call gets the smaller of it and the plugin's limit.
    pub timeout: Option<Duration>,
    /// Where the plugin's progress reports go, when the caller wants them.
    pub progress: Option<ProgressSink>,
}

/// A plugin compiled, linked and pre-instantiated: ready for a fresh instance per call.
pub struct Guest {
    name: Arc<str>,
    pre: PluginPre<HostState>,
    limits: PluginLimits,
    config_json: Arc<str>,
    /// One permit per call allowed at once: [`PluginLimits::max_concurrency`].
    permits: Arc<Semaphore>,
    content_hash: String,
    cache_outcome: CacheOutcome,
    /// What it may reach over HTTP; `None`: nothing.
    http: Option<Arc<HttpGrant>>,
    /// Its fuel, instantiation and memory series.
    metrics: PluginHandles,
}

impl Guest {
    /// What the plugin may reach over HTTP, if anything.
    pub fn http_grant(&self) -> Option<&HttpGrant> {
        self.http.as_deref()
    }

    /// Lets the plugin's calls send the HTTP requests `grant` allows.
    pub fn grant_http(mut self, grant: HttpGrant) -> Self {
        self.http = Some(Arc::new(grant));
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// SHA-256 of the component's bytes.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// Whether loading hit the compiled-component cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache_outcome
    }

    /// The plugin's configuration as JSON.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// Refuses a result larger than [`PluginLimits::result_bytes`].
    fn check_result_size(&self, phase: &'static str, size: usize) -> Result<(), Error> {
        if size as u64 <= self.limits.result_bytes {
            return Ok(());
        }
        let mut error = self.limit_exceeded(phase, Limit::ResultSize, Duration::ZERO);
        if let Error::LimitExceeded { value, .. } = &mut error {
            value.push_str(&format!(", result was {size} bytes"));
        }
        Err(error)
    }

    /// The error for `limit`, naming the value in force; `timeout` is the call's deadline.
    fn limit_exceeded(&self, phase: &'static str, limit: Limit, timeout: Duration) -> Error {
        let limits = &self.limits;
        let value = match limit {
            Limit::Fuel => limits.fuel.to_string(),
            Limit::WallTime => format!("{} ms", timeout.as_millis()),
            Limit::Memory => format!("{} MiB", limits.memory_mib),
            Limit::TableElements => MAX_TABLE_ELEMENTS.to_string(),
            Limit::Output => format!("{} bytes", limits.output_bytes),
            Limit::ResultSize => format!("{} bytes", limits.result_bytes),
            Limit::Concurrency => limits.max_concurrency.to_string(),
            Limit::InstancePool => "all instance slots busy".to_owned(),
        };
        Error::LimitExceeded {
            plugin: self.name.to_string(),
            phase,
            limit,
            value,
        }
    }
}

/// The wasmtime engine and everything shared by all plugins.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    store: Arc<Store>,
    /// One permit per pooled instance slot, so calls wait for a slot instead of failing
    /// when the pool is momentarily full: [`Limits::instance_pool`].
    pool: Arc<Semaphore>,
    /// Fuel, instantiation time and peak memory per plugin, cache outcomes per load, and
    /// the tool series the registry takes handles to.
    metrics: PluginMetrics,
    /// Advances the engine's epoch every [`EPOCH_TICK`]; stopped when the runtime drops.
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine (pooling allocator, fuel, epochs), the linker with WASI and the
    /// host's imports, and the compiled-component cache in `cache_dir` (none when `None`).
    ///
    /// # Errors
    ///
    /// When the engine cannot be configured or the cache directory cannot be created.
    pub fn new(
        limits: &Limits,
        cache_dir: Option<PathBuf>,
        store: Arc<Store>,
    ) -> Result<Self, Error> {
        let engine = Engine::new(&engine_config(limits)).map_err(|e| host_error("start-up", e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| host_error("start-up", e))?;
        // Every component may import `wasi:http`; a request without a grant is refused
        // when it is sent (`outbound`), which tells the plugin why instead of failing its load.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| host_error("start-up", e))?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| host_error("start-up", e))?;
        let cache = ComponentCache::new(&engine, cache_dir).map_err(|e| Error::Host {
            plugin: String::new(),
            phase: "start-up",
            message: format!("cannot create the compiled-component cache directory: {e}"),
        })?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self {
            engine,
            linker,
            cache,
            store,
            pool: Arc::new(Semaphore::new(limits.instance_pool as usize)),
            metrics: PluginMetrics::default(),
            _ticker: ticker,
        })
    }

    /// Compiles (or loads from the cache) and links a component. CPU-heavy on a cache miss:
    /// call it from a blocking thread.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`] for bytes that are not a component, [`Error::Link`] for a component
    /// that imports what the host does not offer or does not export `provider`.
    pub fn prepare(
        &self,
        name: &str,
        wasm: &[u8],
        limits: PluginLimits,
        config_json: String,
    ) -> Result<Guest, Error> {
        let content_hash = content_hash(wasm);
        let (component, cache_outcome) = self
            .cache
            .load_or_compile(&self.engine, wasm, &content_hash)
            .map_err(|e| Error::Compile {
                plugin: name.to_owned(),
                reason: format!("{e:#}"),
            })?;
        let link_error = |e: wasmtime::Error| Error::Link {
            plugin: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = PluginPre::new(pre).map_err(link_error)?;
        let outcome = match cache_outcome {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Rebuilt => "rebuilt",
        };
        self.metrics.count_load(outcome);
        Ok(Guest {
            name: Arc::from(name),
            pre,
            limits,
            config_json: Arc::from(config_json),
            permits: Arc::new(Semaphore::new(limits.max_concurrency as usize)),
            content_hash,
            cache_outcome,
            http: None,
            metrics: self.metrics.plugin(name),
        })
    }

    /// The per-plugin and per-tool series; `telemetry::Metrics` exports them.
    pub fn plugin_metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// The engine, for tools (benchmarks) that compare other ways of calling components.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled-component cache entry for a content hash, if caching is on.
    pub fn cache_entry_path(&self, content_hash: &str) -> Option<PathBuf> {
        self.cache.entry_path(content_hash)
    }

    /// Checks the compiled-component cache directory; `Ok(None)` when caching is off.
    ///
    /// # Errors
    ///
    /// Why the directory is unusable.
    pub fn check_cache_dir(&self) -> Result<Option<&std::path::Path>, String> {
        self.cache.check()
    }

    /// Calls the guest's `metadata` export.
    ///
    /// # Errors
    ///
    /// When the call hits a limit or traps.
    pub async fn metadata(
        &self,
        guest: &Arc<Guest>,
        options: CallOptions,
    ) -> Result<PluginMetadata, Error> {
        self.run(guest, "metadata", options, |p, s| {
            Box::pin(p.waygate_plugin_provider().call_metadata(s))
        })
        .await
    }

    /// Calls the guest's `list-tools` export.
    ///
    /// # Errors
    ///
    /// When the call hits a limit or traps.
    pub async fn list_tools(
        &self,
        guest: &Arc<Guest>,
        options: CallOptions,
    ) -> Result<Vec<Tool>, Error> {
        self.run(guest, "list-tools", options, |p, s| {
            Box::pin(p.waygate_plugin_provider().call_list_tools(s))
        })
        .await
    }

    /// Calls the guest's `list-prompts` export.
    ///
    /// # Errors
    ///
    /// When the call hits a limit or traps.
    pub async fn list_prompts(
        &self,
        guest: &Arc<Guest>,
        options: CallOptions,
    ) -> Result<Vec<Prompt>, Error> {
        self.run(guest, "list-prompts", options, |p, s| {
            Box::pin(p.waygate_plugin_provider().call_list_prompts(s))
        })
        .await
    }

    /// Calls the guest's `list-resources` export.
    ///
    /// # Errors
    ///
    /// When the call hits a limit or traps.
    pub async fn list_resources(
        &self,
        guest: &Arc<Guest>,
        options: CallOptions,
    ) -> Result<Vec<Resource>, Error> {
        self.run(guest, "list-resources", options, |p, s| {
            Box::pin(p.waygate_plugin_provider().call_list_resources(s))
        })
        .await
    }

    /// Runs one tool in a fresh instance. `Ok(Err(_))` is the plugin's own typed refusal.
    ///
    /// # Errors
    ///
    /// When the call hits a limit (the result size included) or traps.
    pub async fn call_tool(
        &self,
        guest: &Arc<Guest>,
        tool: &str,
        arguments_json: String,
        options: CallOptions,
    ) -> Result<Result<ToolResult, CallError>, Error> {
        let context = CallContext {
            request_id: options.request_id.clone(),
            caller_id: options.caller_id.clone(),
        };
        let tool = tool.to_owned();
        let outcome = self
            .run(guest, "call-tool", options, move |p, s| {
                Box::pin(async move {
                    p.waygate_plugin_provider()
                        .call_call_tool(s, &tool, &arguments_json, &context)
                        .await
                })
            })
            .await?;
        if let Ok(result) = &outcome {
            guest.check_result_size("call-tool", result.content.iter().map(content_size).sum())?;
        }
        Ok(outcome)
    }

    /// Reads one resource in a fresh instance.
    ///
    /// # Errors
    ///
    /// When the call hits a limit or traps.
    pub async fn read_resource(
        &self,
        guest: &Arc<Guest>,
        uri: &str,
        options: CallOptions,
    ) -> Result<Result<Vec<ResourceContents>, ResourceError>, Error> {
        let uri = uri.to_owned();
        let outcome = self
            .run(guest, "read-resource", options, move |p, s| {
                Box::pin(async move {
                    p.waygate_plugin_provider()
                        .call_read_resource(s, &uri)
                        .await
                })
            })
            .await?;
        if let Ok(items) = &outcome {
            let size = items
                .iter()
                .map(|item| {
                    item.uri.len()
                        + match &item.body {
                            ResourceBody::Text(text) | ResourceBody::BlobBase64(text) => text.len(),
                        }
                })
                .sum();
            guest.check_result_size("read-resource", size)?;
        }
        Ok(outcome)
    }

    /// Renders one prompt in a fresh instance.
    ///
    /// # Errors
    ///
    /// When the call hits a limit or traps.
    pub async fn get_prompt(
        &self,
        guest: &Arc<Guest>,
        name: &str,
        arguments: Vec<(String, String)>,
        options: CallOptions,
    ) -> Result<Result<PromptResult, PromptError>, Error> {
        let name = name.to_owned();
        let outcome = self
            .run(guest, "get-prompt", options, move |p, s| {
                Box::pin(async move {
                    p.waygate_plugin_provider()
                        .call_get_prompt(s, &name, &arguments)
                        .await
                })
            })
            .await?;
        if let Ok(prompt) = &outcome {
            let size = prompt
                .messages
                .iter()
                .map(|m| content_size(&m.content))
                .sum();
            guest.check_result_size("get-prompt", size)?;
        }
        Ok(outcome)
    }

    /// A fresh store for one call of `guest`, with its host state, limiter, fuel and the
    /// epoch callback that makes the guest yield every tick.
    fn new_store(
        &self,
        guest: &Guest,
        options: &CallOptions,
        phase: &'static str,
    ) -> Result<wasmtime::Store<HostState>, Error> {
        let state = HostStateBuilder::new(
            guest.name.clone(),
            guest.config_json.clone(),
            self.store.clone(),
            guest.limits,
        )
        .request_id(&options.request_id)
        .progress(options.progress.clone())
        .http(guest.http.clone())
        .build();
        let mut store = wasmtime::Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(guest.limits.fuel)
            .map_err(|e| host_error(phase, e))?;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        Ok(store)
    }

    /// Runs `call` against a fresh store and instance of `guest`, under every limit.
    ///
    /// The call runs on the calling task with async wasmtime: every [`EPOCH_TICK`] the guest
    /// yields back to tokio, so a busy plugin holds a worker thread for one tick at most, and
    /// the deadline is a `tokio::time::timeout` that also cancels a guest blocked in a host
    /// poll (a sleep). `benches/runtime.rs` measures this against sync wasmtime.
    async fn run<R, F>(
        &self,
        guest: &Arc<Guest>,
        phase: &'static str,
        options: CallOptions,
        call: F,
    ) -> Result<R, Error>
    where
        R: Send,
        F: for<'a> FnOnce(&'a Plugin, &'a mut wasmtime::Store<HostState>) -> CallFuture<'a, R>
            + Send,
    {
        // The plugin's own log lines, logged inside it, become this span's events.
        let span = tracing::info_span!(
            "plugin_call",
            otel.name = %format_args!("{} {phase}", guest.name),
            plugin = &*guest.name,
            phase,
            fuel_used = tracing::field::Empty,
        );
        // Type-erased: the store and instance the call holds across awaits make a future type
        // too deep for the callers' `Send` proofs (each layer above nests it once more).
        let call: Pin<Box<dyn Future<Output = Result<R, Error>> + Send + '_>> =
            Box::pin(self.run_in_span(guest, phase, options, call, &span));
        call.instrument(span.clone()).await
    }

    async fn run_in_span<R, F>(
        &self,
        guest: &Arc<Guest>,
        phase: &'static str,
        options: CallOptions,
        call: F,
        span: &tracing::Span,
    ) -> Result<R, Error>
    where
        R: Send,
        F: for<'a> FnOnce(&'a Plugin, &'a mut wasmtime::Store<HostState>) -> CallFuture<'a, R>
            + Send,
    {
        let started = Instant::now();
        let timeout = options
            .timeout
            .map_or(guest.limits.timeout(), |t| t.min(guest.limits.timeout()));
        let _plugin_permit =
            acquire(&guest.permits, timeout, guest, phase, Limit::Concurrency).await?;
        let remaining = timeout.saturating_sub(started.elapsed());
        let _pool_permit =
            acquire(&self.pool, remaining, guest, phase, Limit::InstancePool).await?;

        // The permit guarantees a component-instance slot, but a component may need more
        // core instances, memories or tables than one slot's share of the pool; when those
        // run out, wait for other calls to return theirs, as for a slot, until the deadline.
        let mut call = Some(call);
        let mut instantiation = None;
        let (outcome, store) = loop {
            let remaining = timeout.saturating_sub(started.elapsed());
            let mut store = self.new_store(guest, &options, phase)?;
            let pre = &guest.pre;
            let attempt = tokio::time::timeout(remaining, async {
                let instantiating = Instant::now();
                let plugin = pre
                    .instantiate_async(&mut store)
                    .instrument(tracing::info_span!("instantiate"))
                    .await?;
                instantiation = Some(instantiating.elapsed());
                // The call runs at most once: an instantiation that succeeded never loops.
                let call = call
                    .take()
                    .expect("the call runs only after a successful instantiation");
                call(&plugin, &mut store).await
            })
            .await;
            match attempt {
                Ok(Err(error))
                    if call.is_some()
                        && error
                            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                            .is_some()
                        && started.elapsed() + POOL_RETRY < timeout =>
                {
                    drop(store);
                    tokio::time::sleep(POOL_RETRY).await;
                }
                attempt => break (attempt, store),
            }
        };
        let fuel_used = guest.limits.fuel - store.get_fuel().unwrap_or(0);
        span.record("fuel_used", fuel_used);
        let state = store.into_data();
        guest
            .metrics
            .observe_call(fuel_used, instantiation, state.limiter.memory_in_use());
        log_output(&guest.name, &options.request_id, &state);
        tracing::debug!(
            plugin = &*guest.name,
            request_id = options.request_id,
            phase,
            fuel_used,
            elapsed_us = started.elapsed().as_micros() as u64,
            ok = matches!(outcome, Ok(Ok(_))),
            "plugin call finished"
        );
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(classify(error, &state, guest, phase, timeout)),
            Err(_elapsed) => Err(guest.limit_exceeded(phase, Limit::WallTime, timeout)),
        }
    }
}

/// The future of one export call, borrowing the instance and its store.
type CallFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// Turns a failed call into the most specific error: a limit the limiter or the engine
/// reports first, then a full output buffer, then the panic message, then the trap itself.
fn classify(
    error: wasmtime::Error,
    state: &HostState,
    guest: &Guest,
    phase: &'static str,
    timeout: Duration,
) -> Error {
    let limits = &guest.limits;
    let limit = state
        .limiter
        .hit
        .or_else(|| match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Some(Limit::Fuel),
            _ if error
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some() =>
            {
                Some(Limit::InstancePool)
            }
            // A full buffer closes the streams; a single write past the space left traps
            // inside the pipe instead, which names itself in the message.
            _ if state.output.contents().len() as u64 >= limits.output_bytes
                || error.root_cause().to_string().contains("MemoryOutputPipe") =>
            {
                Some(Limit::Output)
            }
            _ => None,
        });
    if let Some(limit) = limit {
        return guest.limit_exceeded(phase, limit, timeout);
    }
    let message = match &state.panic_message {
        Some(panic) => format!("plugin panicked: {panic}"),
        None => error.root_cause().to_string(),
    };
    Error::Trap {
        plugin: guest.name.to_string(),
        phase,
        message,
    }
}

/// Copies the call's captured stdout/stderr into the host log, line by line, tagged.
fn log_output(plugin: &str, request_id: &str, state: &HostState) {
    let output = state.output.contents();
    if output.is_empty() && state.logs_dropped == 0 {
        return;
    }
    let text = String::from_utf8_lossy(&output);
    let mut lines = text.lines();
    for line in lines.by_ref().take(MAX_OUTPUT_LOG_LINES) {
        tracing::info!(target: "plugin.output", plugin, request_id, "{line}");
    }
    let skipped = lines.count();
    if skipped > 0 || state.logs_dropped > 0 {
        tracing::warn!(
            target: "plugin.output",
            plugin,
            request_id,
            output_lines_skipped = skipped,
            log_lines_dropped = state.logs_dropped,
            "plugin output cut"
        );
    }
}

async fn acquire(
    semaphore: &Arc<Semaphore>,
    wait: Duration,
    guest: &Guest,
    phase: &'static str,
    limit: Limit,
) -> Result<OwnedSemaphorePermit, Error> {
    // The uncontended case takes no timer.
    if let Ok(permit) = semaphore.clone().try_acquire_owned() {
        return Ok(permit);
    }
    match tokio::time::timeout(wait, semaphore.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        // The semaphores are never closed; a closed one can only mean shutdown.
        Ok(Err(_)) | Err(_) => Err(guest.limit_exceeded(phase, limit, wait)),
    }
}

fn content_size(content: &Content) -> usize {
    match content {
        Content::Text(text) | Content::Json(text) => text.len(),
        Content::Image(binary) | Content::Audio(binary) => {
            binary.data_base64.len() + binary.mime_type.len()
        }
        Content::ResourceLink(link) => {
            link.uri.len()
                + link.name.len()
                + link.description.as_ref().map_or(0, String::len)
                + link.mime_type.as_ref().map_or(0, String::len)
        }
    }
}

fn host_error(phase: &'static str, error: wasmtime::Error) -> Error {
    Error::Host {
        plugin: String::new(),
        phase,
        message: format!("{error:#}"),
    }
}

/// The engine settings every plugin runs under. Each number is a documented limit in
/// `config::limits`; the pool is sized for [`Limits::instance_pool`] instances at once.
fn engine_config(limits: &Limits) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Fuel gives a deterministic CPU budget per call; epochs make a busy guest yield to
    // tokio every tick, so the deadline (a timeout around the call) can fire.
    config.consume_fuel(true);
    config.epoch_interruption(true);

    let instances = limits.instance_pool;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        // Each async call runs on a fiber whose stack also comes from the pool.
        .total_stacks(instances)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_INSTANCE)
        .max_tables_per_component(MAX_TABLES_PER_INSTANCE)
        .table_elements(MAX_TABLE_ELEMENTS)
        // The pool's ceiling; each plugin's own cap is enforced by the store's limiter.
        .max_memory_size(usize::try_from(MAX_PLUGIN_MEMORY_MIB << 20).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        // Freed slots are returned to the OS in batches: one madvise round (and one TLB
        // shootdown across cores) per batch instead of per call.
        .decommit_batch_size(DECOMMIT_BATCH)
        .async_stack_keep_resident(STACK_KEEP_RESIDENT_BYTES)
        // Where the kernel supports PAGEMAP_SCAN (Linux 6.7+), reset only the pages a call
        // dirtied, keeping them resident; elsewhere this quietly falls back to madvise.
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(pool);
    config
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`], which is what makes a
/// busy guest yield so its deadline can fire. It stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("waygate-epoch".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            // Spawning fails only when the OS is out of threads at start-up; without the
            // ticker no deadline would ever fire, so refusing to start is the safe choice.
            .expect("cannot start the epoch ticker thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
