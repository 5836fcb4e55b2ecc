//! The per-call host state: the WASI context, the limiter, and the host's imports
//! (`log`, `progress`, `config`, `kv`, and `wasi:http` through `outbound`) as the guest sees them.
//! Owns: [`HostState`], [`HostStateBuilder`]. Never: reaches the network or the filesystem
//! on the guest's behalf, except the store's namespaced key-value API and granted HTTP.
//! Limits: [`PluginLimits::memory_mib`], [`PluginLimits::output_bytes`],
//! [`PluginLimits::log_lines`], [`PluginLimits::kv_quota_bytes`].

use super::bindings::waygate::plugin::{config, kv, log, progress, types};
use super::error::Limit;
use super::outbound::{HttpGrant, OutboundHttp};
use crate::config::PluginLimits;
use crate::config::limits::{
    MAX_CORE_INSTANCES_PER_COMPONENT, MAX_MEMORIES_PER_INSTANCE, MAX_TABLE_ELEMENTS,
    MAX_TABLES_PER_INSTANCE,
};
use crate::store::{self, Store};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Longest log message kept from the guest; the rest is cut and marked.
const MAX_LOG_MESSAGE_BYTES: usize = 8 * 1024;
/// Longest key the key-value store accepts, in bytes.
const MAX_KV_KEY_BYTES: usize = 512;
/// Most bytes one `get-random-bytes` call may ask for (WASI's default is 64 MiB of host memory).
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// Most live WASI handles (streams, pollables) per call; each costs host memory outside the
/// guest's memory cap.
const MAX_RESOURCE_HANDLES: usize = 10_000;
/// Most fields per log line, and bytes per field key or value.
const MAX_LOG_FIELDS: usize = 32;
const MAX_LOG_FIELD_BYTES: usize = 1024;
/// Longest progress message kept, in bytes.
const MAX_PROGRESS_MESSAGE_BYTES: usize = 1024;
/// Field the SDK sets on the log line it writes from its panic hook.
const PANIC_FIELD: &str = "waygate.panic";

/// Everything one call's `Store` holds. Built fresh for every call and dropped after it,
/// so nothing a guest does survives except its key-value writes.
pub struct HostState {
    /// WASI with the deny-everything defaults of [`HostStateBuilder::new`].
    wasi: WasiCtx,
    /// Handles (streams, pollables) the WASI implementation hands to the guest.
    table: ResourceTable,
    /// `wasi:http`'s own state; every request it sends goes through `outbound`.
    http: WasiHttpCtx,
    /// The plugin's HTTP grant, enforced on each request; without one, all are refused.
    outbound: OutboundHttp,
    /// Enforces the memory and table caps, and remembers which one was hit.
    pub(super) limiter: CallLimiter,
    /// Captured stdout and stderr, capped; logged after the call.
    pub(super) output: MemoryOutputPipe,
    /// The plugin's name: the namespace of its keys and the tag on its log lines.
    plugin: Arc<str>,
    /// The request id of this call, for log lines.
    request_id: Arc<str>,
    /// The plugin's validated config as JSON, returned by `config.get-config-json`.
    config_json: Arc<str>,
    /// The database behind the `kv` import.
    store: Arc<Store>,
    /// Quota of the plugin's key-value store in bytes.
    kv_quota_bytes: u64,
    /// Log lines the guest may still write in this call.
    log_budget: u32,
    /// Log lines dropped because the budget ran out.
    pub(super) logs_dropped: u32,
    /// The message of a guest panic, reported by the SDK's panic hook before it traps.
    pub(super) panic_message: Option<String>,
    /// Where progress reports go, when the caller wants them.
    progress: Option<ProgressSink>,
    /// The last progress forwarded; reports must grow past it.
    last_progress: f64,
}

/// One progress report from a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Work done so far.
    pub progress: f64,
    /// Work in all, when known.
    pub total: Option<f64>,
    /// What is happening.
    pub message: Option<String>,
}

/// The receiving end's sender for a call's progress reports. Reports are offered without
/// waiting: when the channel is full, the report is dropped.
pub type ProgressSink = tokio::sync::mpsc::Sender<Progress>;

/// Builds a [`HostState`]. The defaults deny everything:
/// no environment variables, no arguments, no preopened directories (so no filesystem),
/// no TCP, no UDP, no name lookup, no outbound HTTP, stdin closed, and stdout/stderr
/// captured into a capped buffer instead of the host's own streams. Clocks and randomness
/// work. Outbound HTTP is the one thing a grant can add ([`HostStateBuilder::http`]).
pub struct HostStateBuilder {
    plugin: Arc<str>,
    request_id: Arc<str>,
    config_json: Arc<str>,
    store: Arc<Store>,
    limits: PluginLimits,
    progress: Option<ProgressSink>,
    http: Option<Arc<HttpGrant>>,
}

impl HostStateBuilder {
    /// A builder for one call of `plugin` with the deny-everything defaults.
    pub fn new(
        plugin: Arc<str>,
        config_json: Arc<str>,
        store: Arc<Store>,
        limits: PluginLimits,
    ) -> Self {
        Self {
            plugin,
            request_id: Arc::from(""),
            config_json,
            store,
            limits,
            progress: None,
            http: None,
        }
    }

    /// Lets the call send the HTTP requests `grant` allows.
    pub fn http(mut self, grant: Option<Arc<HttpGrant>>) -> Self {
        self.http = grant;
        self
    }

    /// Sends the call's progress reports to `sink`.
    pub fn progress(mut self, sink: Option<ProgressSink>) -> Self {
        self.progress = sink;
        self
    }

    /// Tags the call's log lines with the request id.
    pub fn request_id(mut self, request_id: &str) -> Self {
        self.request_id = Arc::from(request_id);
        self
    }

    /// Builds the state.
    pub fn build(self) -> HostState {
        let output =
            MemoryOutputPipe::new(usize::try_from(self.limits.output_bytes).unwrap_or(usize::MAX));
        // `WasiCtxBuilder::new` already denies env, args, preopens, name lookup and every
        // socket address; TCP and UDP are switched off as well so a guest cannot even create
        // a socket. Stdout and stderr share one capped buffer.
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCE_HANDLES);
        HostState {
            wasi,
            table,
            http: WasiHttpCtx::new(),
            outbound: OutboundHttp::new(self.http, self.plugin.clone(), self.request_id.clone()),
            limiter: CallLimiter::new(self.limits.memory_bytes()),
            output,
            plugin: self.plugin,
            request_id: self.request_id,
            config_json: self.config_json,
            store: self.store,
            kv_quota_bytes: self.limits.kv_quota_bytes,
            log_budget: self.limits.log_lines,
            logs_dropped: 0,
            panic_message: None,
            progress: self.progress,
            last_progress: f64::NEG_INFINITY,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Caps memory and table growth for one call, and records which cap was hit so the error
/// names it (a bare failed `memory.grow` would surface as an anonymous `unreachable`).
pub(super) struct CallLimiter {
    memory_bytes: usize,
    /// Bytes of all the instance's linear memories together: a component may have several,
    /// and the cap is for the instance, not for each memory.
    memory_in_use: usize,
    pub(super) hit: Option<Limit>,
}

impl CallLimiter {
    fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            memory_in_use: 0,
            hit: None,
        }
    }

    /// Bytes of linear memory the instance holds: its peak, as memories never shrink.
    pub(super) fn memory_in_use(&self) -> usize {
        self.memory_in_use
    }
}

/// The error a denied growth traps with; `runtime` turns it into `Error::LimitExceeded`.
#[derive(Debug, thiserror::Error)]
#[error("{0} reached")]
pub(super) struct LimitReached(pub(super) Limit);

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let in_use = self
            .memory_in_use
            .saturating_add(desired.saturating_sub(current));
        if in_use > self.memory_bytes {
            self.hit = Some(Limit::Memory);
            return Err(wasmtime::Error::new(LimitReached(Limit::Memory)));
        }
        self.memory_in_use = in_use;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = Some(Limit::TableElements);
            return Err(wasmtime::Error::new(LimitReached(Limit::TableElements)));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_COMPONENT as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_INSTANCE as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_INSTANCE as usize
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        if fields.iter().any(|(k, _)| k == PANIC_FIELD) {
            self.panic_message = Some(truncate(message, MAX_LOG_MESSAGE_BYTES));
            return;
        }
        if self.log_budget == 0 {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return;
        }
        self.log_budget -= 1;
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        if !plugin_log_enabled(level) {
            return;
        }
        let message = truncate(message, MAX_LOG_MESSAGE_BYTES);
        let fields = fields
            .into_iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| {
                format!(
                    "{}={:?}",
                    truncate(k, MAX_LOG_FIELD_BYTES).escape_debug(),
                    truncate(v, MAX_LOG_FIELD_BYTES)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let (plugin, request_id) = (&*self.plugin, &*self.request_id);
        match level {
            tracing::Level::TRACE => {
                tracing::trace!(target: "plugin", plugin, request_id, fields, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: "plugin", plugin, request_id, fields, "{message}")
            }
            tracing::Level::INFO => {
                tracing::info!(target: "plugin", plugin, request_id, fields, "{message}")
            }
            tracing::Level::WARN => {
                tracing::warn!(target: "plugin", plugin, request_id, fields, "{message}")
            }
            tracing::Level::ERROR => {
                tracing::error!(target: "plugin", plugin, request_id, fields, "{message}")
            }
        }
    }
}

/// Whether the host's filter keeps plugin lines at `level`, checked before any formatting.
fn plugin_log_enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::TRACE => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
        tracing::Level::DEBUG => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
        tracing::Level::INFO => tracing::enabled!(target: "plugin", tracing::Level::INFO),
        tracing::Level::WARN => tracing::enabled!(target: "plugin", tracing::Level::WARN),
        tracing::Level::ERROR => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
    }
}

impl progress::Host for HostState {
    fn report(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        let Some(sink) = &self.progress else {
            return;
        };
        if !progress.is_finite() || progress <= self.last_progress {
            return;
        }
        self.last_progress = progress;
        let report = Progress {
            progress,
            total: total.filter(|t| t.is_finite()),
            message: message.map(|m| truncate(m, MAX_PROGRESS_MESSAGE_BYTES)),
        };
        // A full channel means the client reads slower than the plugin reports: drop.
        let _ = sink.try_send(report);
    }
}

impl config::Host for HostState {
    fn get_config_json(&mut self) -> String {
        self.config_json.to_string()
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        check_key(&key)?;
        let plugin = self.plugin.clone();
        on_blocking_pool(self.store.clone(), move |store| store.kv_get(&plugin, &key)).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), kv::KvError> {
        check_key(&key)?;
        let (plugin, quota) = (self.plugin.clone(), self.kv_quota_bytes);
        on_blocking_pool(self.store.clone(), move |store| {
            store.kv_set(&plugin, &key, &value, quota)
        })
        .await
    }

    async fn delete(&mut self, key: String) -> Result<bool, kv::KvError> {
        check_key(&key)?;
        let plugin = self.plugin.clone();
        on_blocking_pool(self.store.clone(), move |store| {
            store.kv_delete(&plugin, &key)
        })
        .await
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, kv::KvError> {
        let plugin = self.plugin.clone();
        on_blocking_pool(self.store.clone(), move |store| {
            store.kv_list(&plugin, &prefix, limit)
        })
        .await
    }
}

/// Runs a store operation on tokio's blocking pool. If the call's deadline fires while it
/// waits, the statement still finishes (SQLite keeps it atomic) but nobody waits for it.
async fn on_blocking_pool<T: Send + 'static>(
    store: Arc<Store>,
    operation: impl FnOnce(&Store) -> Result<T, store::Error> + Send + 'static,
) -> Result<T, kv::KvError> {
    match tokio::task::spawn_blocking(move || operation(&store)).await {
        Ok(result) => result.map_err(kv_error),
        Err(e) => Err(kv::KvError::StoreFailed(format!("store task failed: {e}"))),
    }
}

fn check_key(key: &str) -> Result<(), kv::KvError> {
    if key.is_empty() || key.len() > MAX_KV_KEY_BYTES {
        return Err(kv::KvError::InvalidKey(format!(
            "keys must be 1 to {MAX_KV_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn kv_error(error: store::Error) -> kv::KvError {
    match error {
        store::Error::QuotaExceeded {
            quota_bytes,
            needed_bytes,
        } => kv::KvError::QuotaExceeded(format!(
            "the write needs {needed_bytes} bytes of a {quota_bytes}-byte quota"
        )),
        other => kv::KvError::StoreFailed(other.to_string()),
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" …[truncated]");
    }
    text
}
