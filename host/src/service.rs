//! What every front end (REST and MCP) shares: the registry serving now, the runtime, the
//! store, command history and per-plugin statistics, and [`Service::call_tool`], the one
//! path a tool call takes whichever API it came in on.
//! Owns: [`Service`], [`PluginStats`], [`CallOutcome`]. Never: knows about HTTP or JSON-RPC.

use crate::config::Limits;
use crate::registry::{self, LoadPolicy, Registry};
use crate::runtime::{self, CallError, CallOptions, Limit, Runtime, ToolResult};
use crate::store::{CommandRecord, HistoryWriter, MAX_RECORDED_BYTES, PluginState, Store};
use crate::telemetry::{ErrorLog, Metrics, ReloadLabels, ToolHandles};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tracing::Instrument;

/// The shared services of one server process.
pub struct Service {
    /// The sandbox.
    pub runtime: Arc<Runtime>,
    /// The plugins serving now. Readers clone the `Arc` and drop the lock at once, so a
    /// reload can swap in a new registry while calls finish on the old one.
    registry: RwLock<Arc<Registry>>,
    /// The database.
    pub store: Arc<Store>,
    /// Batched writes to `command_history`.
    pub history: HistoryWriter,
    /// The process limits.
    pub limits: Limits,
    /// When the server started.
    pub started: Instant,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Recent errors for `/diagnostics/errors`.
    pub errors: ErrorLog,
    stats: RwLock<HashMap<String, Arc<PluginStats>>>,
    /// One permit per tool call in progress: [`Limits::max_inflight_calls`].
    inflight: Arc<tokio::sync::Semaphore>,
    /// Where plugin packages are, for reloads.
    plugins_dir: PathBuf,
    /// How they are admitted.
    load_policy: LoadPolicy,
    /// Held while a reload builds and swaps a registry: reloads never overlap.
    reloading: tokio::sync::Mutex<()>,
}

/// A reload refused: another one is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a reload is already in progress; try again when it finishes")]
pub struct ReloadInProgress;

/// What a reload did.
#[derive(Debug)]
pub struct ReloadReport {
    /// Plugins serving after the swap that loaded in this reload.
    pub loaded: Vec<String>,
    /// Packages that did not load, with the version still serving in their place if any.
    pub failed: Vec<registry::LoadFailure>,
    /// How long the reload took.
    pub duration: Duration,
    /// Whether the set of tools (names, schemas, descriptions) changed.
    pub tools_changed: bool,
    /// Whether the set of prompts changed.
    pub prompts_changed: bool,
    /// Whether any plugin was added, removed or replaced, which may change resources.
    pub plugins_changed: bool,
}

/// A tool call refused before it started: [`Limits::max_inflight_calls`] are in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server busy: {limit} tool calls in progress (limits.max_inflight_calls); retry shortly")]
pub struct Busy {
    /// The limit in force.
    pub limit: u32,
}

/// Calls of one plugin since the server started.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    errors: AtomicU64,
    total_micros: AtomicU64,
}

impl PluginStats {
    /// Calls, failed calls, and their mean duration in milliseconds.
    pub fn snapshot(&self) -> (u64, u64, f64) {
        let calls = self.calls.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let micros = self.total_micros.load(Ordering::Relaxed);
        let mean_ms = if calls == 0 {
            0.0
        } else {
            micros as f64 / calls as f64 / 1000.0
        };
        (calls, errors, mean_ms)
    }
}

/// Which API a call came in on, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /mcp/execute`.
    Rest,
    /// MCP `tools/call`.
    Mcp,
}

/// How a tool call ended.
pub struct CallOutcome {
    /// The result, the plugin's own refusal, or why no result came.
    pub result: Result<Result<ToolResult, CallError>, registry::Error>,
    /// The qualified name of the tool that ran, when the name resolved.
    pub tool: Option<String>,
    /// How long the call took, validation included.
    pub duration: Duration,
}

impl CallOutcome {
    /// The `outcome` label of `waygate_tool_calls_total`: one of
    /// [`crate::telemetry::CALL_OUTCOMES`] (`cancelled` is counted by the dropped record).
    pub fn metric_outcome(&self) -> &'static str {
        match &self.result {
            Ok(Ok(result)) if !result.is_error => "ok",
            Ok(Ok(_)) | Ok(Err(CallError::Failed(_) | CallError::UnknownTool(_))) => "tool_error",
            Ok(Err(CallError::InvalidArguments(_)))
            | Err(registry::Error::InvalidArguments { .. }) => "invalid_arguments",
            Err(registry::Error::Runtime(runtime::Error::LimitExceeded { limit, .. })) => {
                match limit {
                    Limit::Fuel => "fuel_exhausted",
                    Limit::WallTime => "timeout",
                    Limit::Memory => "memory_limit",
                    Limit::TableElements => "table_limit",
                    Limit::Output => "output_limit",
                    Limit::ResultSize => "result_size_limit",
                    Limit::Concurrency => "concurrency_limit",
                    Limit::InstancePool => "instance_pool_exhausted",
                }
            }
            Err(registry::Error::Runtime(runtime::Error::Trap { .. })) => "trap",
            Err(_) => "host_error",
        }
    }

    /// The history's status: `success`, `failed` or `timeout`.
    pub fn status(&self) -> &'static str {
        match &self.result {
            Ok(Ok(result)) if !result.is_error => "success",
            Err(registry::Error::Runtime(error)) if error.limit() == Some(Limit::WallTime) => {
                "timeout"
            }
            _ => "failed",
        }
    }
}

impl Service {
    /// The services over a registry loaded from `plugins_dir` under `load_policy`; starts
    /// the history writer.
    pub fn new(
        runtime: Arc<Runtime>,
        registry: Registry,
        store: Arc<Store>,
        limits: Limits,
        plugins_dir: PathBuf,
        load_policy: LoadPolicy,
    ) -> Self {
        record_states(&store, &registry);
        let history = HistoryWriter::start(store.clone(), limits.command_history_rows);
        let inflight = Arc::new(tokio::sync::Semaphore::new(
            limits.max_inflight_calls as usize,
        ));
        let metrics = Metrics::new(runtime.plugin_metrics());
        Self {
            runtime,
            registry: RwLock::new(Arc::new(registry)),
            store,
            history,
            limits,
            started: Instant::now(),
            metrics,
            errors: ErrorLog::default(),
            stats: RwLock::new(HashMap::new()),
            inflight,
            plugins_dir,
            load_policy,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The registry serving now.
    pub fn registry(&self) -> Arc<Registry> {
        // The lock only guards an `Arc` swap, which cannot panic half-way.
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Loads the plugins directory again and swaps the new registry in at once: calls in
    /// flight finish on the registry they started with, later calls see the new one. A
    /// package that fails keeps its previous version serving, if it had one.
    ///
    /// # Errors
    ///
    /// [`ReloadInProgress`] while another reload runs.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadInProgress> {
        let _reloading = self.reloading.try_lock().map_err(|_| ReloadInProgress)?;
        let started = Instant::now();
        let previous = self.registry();
        let store = self.store.clone();
        let disabled = tokio::task::spawn_blocking(move || store.disabled_plugins())
            .await
            .ok()
            .and_then(Result::ok)
            // Without the stored list, whatever was disabled stays so.
            .unwrap_or_else(|| {
                previous
                    .disabled()
                    .iter()
                    .map(|(name, _)| name.clone())
                    .collect()
            });
        let mut next = Registry::load_except(
            &self.runtime,
            &self.plugins_dir,
            &self.load_policy,
            &disabled,
        )
        .await;
        next.keep_serving(&previous);
        Ok(self.swap_in(&previous, next, started, None).await)
    }

    /// Loads plugin `name` again, every other plugin staying as it is; as [`Service::reload`]
    /// otherwise. `Ok(None)` when no package or plugin has that name.
    ///
    /// # Errors
    ///
    /// [`ReloadInProgress`] while another reload runs.
    pub async fn reload_plugin(
        &self,
        name: &str,
    ) -> Result<Option<ReloadReport>, ReloadInProgress> {
        let _reloading = self.reloading.try_lock().map_err(|_| ReloadInProgress)?;
        let started = Instant::now();
        let previous = self.registry();
        let next = previous
            .reload_one(&self.runtime, &self.plugins_dir, &self.load_policy, name)
            .await;
        Ok(match next {
            Some(next) => Some(self.swap_in(&previous, next, started, Some(name)).await),
            None => None,
        })
    }

    /// Puts `next` in service in place of `previous`, records the plugins' states, and
    /// reports what changed.
    async fn swap_in(
        &self,
        previous: &Registry,
        next: Registry,
        started: Instant,
        only: Option<&str>,
    ) -> ReloadReport {
        let loaded: Vec<String> = next
            .plugins()
            .filter(|p| next.failures().iter().all(|f| f.plugin != p.manifest.name))
            .map(|p| p.manifest.name.clone())
            .collect();
        let report = ReloadReport {
            loaded,
            failed: next.failures().to_vec(),
            duration: started.elapsed(),
            tools_changed: tool_signature(previous) != tool_signature(&next),
            prompts_changed: prompt_signature(previous) != prompt_signature(&next),
            plugins_changed: plugin_signature(previous) != plugin_signature(&next),
        };
        let next = Arc::new(next);
        *self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next.clone();
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || record_states(&store, &next)).await;
        // A one-plugin reload carries the other packages' earlier failures along: count only
        // what this reload tried to load.
        let failed_now = report
            .failed
            .iter()
            .filter(|f| only.is_none_or(|name| f.plugin == name))
            .count();
        self.metrics.reloads.inc();
        self.metrics.reload_failures.inc_by(failed_now as u64);
        let scope = if only.is_some() { "one" } else { "all" };
        self.metrics
            .reload_duration
            .get_or_create(&ReloadLabels { scope })
            .observe(report.duration);
        tracing::info!(
            loaded = report.loaded.len(),
            failed = report.failed.len(),
            duration_ms = report.duration.as_millis() as u64,
            "plugins reloaded"
        );
        report
    }

    /// A slot for one request that runs guest code (a tool call, a resource listing or
    /// read, a prompt), held until dropped. Refused at once rather than queued: waiting is
    /// bounded by this many requests.
    ///
    /// # Errors
    ///
    /// [`Busy`] when [`Limits::max_inflight_calls`] are in progress.
    pub fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Busy> {
        self.inflight.clone().try_acquire_owned().map_err(|_| {
            self.metrics.busy.inc();
            Busy {
                limit: self.limits.max_inflight_calls,
            }
        })
    }

    /// Statistics of `plugin`, if it has been called.
    pub fn plugin_stats(&self, plugin: &str) -> Option<Arc<PluginStats>> {
        self.stats
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(plugin)
            .cloned()
    }

    fn stats_entry(&self, plugin: &str) -> Arc<PluginStats> {
        if let Some(stats) = self.plugin_stats(plugin) {
            return stats;
        }
        self.stats
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(plugin.to_owned())
            .or_default()
            .clone()
    }

    /// Runs tool `name` (qualified, or bare when unique) with `arguments`, then counts it in
    /// the plugin's statistics and queues its history record. With `allowed`, a tool of any
    /// other plugin is unknown to this caller.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: &Value,
        options: CallOptions,
        source: Source,
        allowed: Option<&[String]>,
    ) -> Result<CallOutcome, Busy> {
        let _permit = self.enter()?;
        let started = Instant::now();
        let registry = self.registry();
        let resolved = registry.resolve_tool(name, allowed);
        let names = resolved
            .as_ref()
            .ok()
            .map(|(plugin, entry)| (plugin.manifest.name.clone(), entry.qualified_name.clone()));
        // Every attempt is history, an unknown or ambiguous name included; a call whose
        // client goes away is recorded by the guard as `cancelled`.
        let (plugin, command) = match &names {
            Some((plugin, tool)) => (Some(plugin.clone()), tool.clone()),
            None => (None, runtime::truncate(name.to_owned(), MAX_RECORDED_BYTES)),
        };
        let mut pending = PendingRecord {
            history: &self.history,
            metrics: resolved.as_ref().ok().map(|(_, entry)| &entry.metrics),
            started,
            record: Some(CommandRecord {
                command,
                plugin,
                params: runtime::truncate(crate::json::to_text(arguments), MAX_RECORDED_BYTES),
                result: None,
                status: "cancelled",
                duration_ms: 0,
                client_id: options.caller_id.clone(),
                request_id: options.request_id.clone(),
                source: match source {
                    Source::Rest => "rest",
                    Source::Mcp => "mcp",
                },
                created_at: String::new(),
            }),
        };
        let request_id = options.request_id.clone();
        // Only a resolved name (a loaded tool's) names the span; the client's text does not.
        let tool = names
            .as_ref()
            .map_or("unknown tool", |(_, tool)| tool.as_str());
        let span = tracing::info_span!(
            "tool_call",
            otel.name = %format_args!("tools/call {tool}"),
            plugin = names.as_ref().map(|(plugin, _)| plugin.as_str()),
            tool,
            outcome = tracing::field::Empty,
        );
        let result = match resolved {
            Ok((plugin, entry)) => {
                entry
                    .call(&self.runtime, plugin, arguments, options)
                    .instrument(span.clone())
                    .await
            }
            Err(error) => Err(error),
        };
        let outcome = CallOutcome {
            result,
            tool: names.as_ref().map(|(_, tool)| tool.clone()),
            duration: started.elapsed(),
        };
        let span_outcome = match &outcome.result {
            Err(registry::Error::UnknownTool { .. } | registry::Error::AmbiguousTool { .. }) => {
                "unknown_tool"
            }
            _ => outcome.metric_outcome(),
        };
        span.record("outcome", span_outcome);
        if let (Some((plugin, tool)), Some(metrics)) = (&names, pending.metrics) {
            self.count((plugin, tool), metrics, &outcome, &request_id);
        }
        pending.finish(
            outcome.status(),
            runtime::truncate(result_summary(&outcome), MAX_RECORDED_BYTES),
        );
        Ok(outcome)
    }
}

impl Service {
    /// Counts a call of `plugin`'s `tool` in its statistics and the metrics, and a sandbox
    /// failure in the error ring.
    fn count(
        &self,
        (plugin, tool): (&str, &str),
        metrics: &ToolHandles,
        outcome: &CallOutcome,
        request_id: &str,
    ) {
        let stats = self.stats_entry(plugin);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        if outcome.status() != "success" {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX);
        stats.total_micros.fetch_add(micros, Ordering::Relaxed);
        let outcome_label = outcome.metric_outcome();
        metrics.observe(outcome_label, Some(outcome.duration));
        tracing::info!(
            target: "waygate::call",
            request_id,
            plugin,
            tool,
            outcome = outcome_label,
            duration_us = micros,
            "tool call"
        );
        if let Err(registry::Error::Runtime(error)) = &outcome.result {
            // A limit is the plugin's doing; a trap or host failure needs a look.
            let (level, code) = match error {
                runtime::Error::LimitExceeded { .. } => ("WARNING", "PLUGIN_LIMIT"),
                _ => ("ERROR", "PLUGIN_FAILED"),
            };
            self.errors.record(
                level,
                code,
                error.to_string(),
                serde_json::json!({ "request_id": request_id, "plugin": plugin, "tool": tool }),
            );
        }
    }
}

/// Writes every package's state after a load to the store; a failure is logged, and the
/// next load writes again.
fn record_states(store: &Store, registry: &Registry) {
    let failed: std::collections::HashMap<&str, &registry::LoadFailure> = registry
        .failures()
        .iter()
        .map(|f| (f.plugin.as_str(), f))
        .collect();
    let mut states: Vec<PluginState> = registry
        .plugins()
        .map(|p| PluginState {
            name: p.manifest.name.clone(),
            // A package whose update failed is failed, though its old version serves.
            status: if failed.contains_key(p.manifest.name.as_str()) {
                "failed"
            } else {
                "active"
            },
            version: Some(p.metadata.version.clone()),
            module_path: p.module_path.display().to_string(),
            content_hash: Some(p.guest.content_hash().to_owned()),
            config: Some(p.shown_config.to_string()),
            error: failed
                .get(p.manifest.name.as_str())
                .map(|f| f.reason.clone()),
        })
        .collect();
    states.extend(
        registry
            .failures()
            .iter()
            .filter(|f| !f.plugin.is_empty() && registry.plugin(&f.plugin).is_none())
            .map(|f| PluginState {
                name: f.plugin.clone(),
                status: "failed",
                version: None,
                module_path: f.path.display().to_string(),
                content_hash: None,
                config: None,
                error: Some(f.reason.clone()),
            }),
    );
    states.extend(registry.disabled().iter().map(|(name, path)| PluginState {
        name: name.clone(),
        status: "disabled",
        version: None,
        module_path: path.display().to_string(),
        content_hash: None,
        config: None,
        error: None,
    }));
    if let Err(error) = store.record_plugin_states(&states) {
        tracing::error!(%error, "cannot record plugin states");
    }
}

/// What clients see of the tools: names, descriptions and schemas.
fn tool_signature(registry: &Registry) -> Vec<String> {
    registry
        .tools()
        .map(|(_, e)| {
            format!(
                "{}\u{0}{}\u{0}{}\u{0}{:?}",
                e.qualified_name, e.tool.description, e.input_schema, e.output_schema
            )
        })
        .collect()
}

/// What clients see of the prompts.
fn prompt_signature(registry: &Registry) -> Vec<String> {
    registry
        .prompts()
        .map(|(_, name, p)| format!("{name}\u{0}{:?}\u{0}{:?}", p.description, p.arguments.len()))
        .collect()
}

/// Which plugin builds serve: names and content hashes.
fn plugin_signature(registry: &Registry) -> Vec<(String, String)> {
    registry
        .plugins()
        .map(|p| (p.manifest.name.clone(), p.guest.content_hash().to_owned()))
        .collect()
}

/// A history record that is written when dropped: as `cancelled` unless
/// [`PendingRecord::finish`] gave it its outcome first.
struct PendingRecord<'a> {
    history: &'a HistoryWriter,
    /// Where a cancelled call of a known tool is counted.
    metrics: Option<&'a ToolHandles>,
    started: Instant,
    record: Option<CommandRecord>,
}

impl PendingRecord<'_> {
    fn finish(&mut self, status: &'static str, result: String) {
        if let Some(record) = &mut self.record {
            record.status = status;
            record.result = Some(result);
        }
    }
}

impl Drop for PendingRecord<'_> {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            if record.result.is_none()
                && let Some(metrics) = self.metrics
            {
                // Never finished: the caller went away and the call's future was dropped.
                metrics.observe("cancelled", None);
            }
            record.duration_ms =
                u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            record.created_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            self.history.record(record);
        }
    }
}

/// What the history keeps of a result: the text of its content, or the error.
fn result_summary(outcome: &CallOutcome) -> String {
    match &outcome.result {
        Ok(Ok(result)) => {
            let texts: Vec<&str> = result
                .content
                .iter()
                .filter_map(|c| match c {
                    runtime::Content::Text(t) | runtime::Content::Json(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            crate::json::to_text(&serde_json::json!({ "is_error": result.is_error, "text": texts }))
        }
        Ok(Err(error)) => serde_json::json!({ "error": format!("{error:?}") }).to_string(),
        Err(error) => serde_json::json!({ "error": error.to_string() }).to_string(),
    }
}
