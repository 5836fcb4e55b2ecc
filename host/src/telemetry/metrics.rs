//! The metric set and its OpenMetrics text encoding (`prometheus-client`). Histograms are
//! this module's own lock-free [`LatencyHistogram`], which also answers quantiles for
//! `/diagnostics/performance`.
//! Owns: [`Metrics`], [`PluginMetrics`] and its handles, [`LatencyHistogram`]. Never: takes a label from
//! unbounded input (raw paths, methods outside the standard set, client-chosen names).

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`Metrics::encode_prometheus`]'s output: Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds: 0.5 ms to 5 min.
const BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// A latency histogram of atomics: observing is a few relaxed adds, never a lock. Clones
/// share the same counts, so a caller can keep a handle instead of looking it up.
#[derive(Debug, Default, Clone)]
pub struct LatencyHistogram {
    buckets: std::sync::Arc<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    /// Per bucket, not cumulative; the last one is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.buckets.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The `q` quantile (0 to 1) in milliseconds, interpolated linearly inside its bucket as
    /// Prometheus's `histogram_quantile` does; `None` before the first observation.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (index, count) in counts.iter().enumerate() {
            if *count > 0 && (below + count) as f64 >= rank {
                let lower = if index == 0 { 0.0 } else { BUCKETS[index - 1] };
                // The +Inf bucket has no upper bound: report its lower one.
                let Some(upper) = BUCKETS.get(index) else {
                    return Some(lower * 1000.0);
                };
                let within = (rank - below as f64) / *count as f64;
                return Some((lower + (upper - lower) * within) * 1000.0);
            }
            below += count;
        }
        None
    }
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(
                self.buckets
                    .counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed)),
            )
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.buckets.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

/// Labels of `waygate_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method, one of a fixed set ([`method_label`]).
    pub method: &'static str,
    /// The route template (`/plugins/{name}`), never the raw path.
    pub endpoint: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// The method as a label: clients may send any token as a method, so anything outside the
/// standard set is `OTHER` and the label set stays bounded.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

/// Labels of the per-endpoint latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The route template.
    pub endpoint: &'static str,
}

/// Labels of `waygate_plugin_execution_seconds`: both come from loaded plugins, never from
/// the client, so the label set is bounded by what the operator installed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// The plugin.
    pub plugin: String,
    /// The qualified tool name.
    pub command: String,
}

/// Labels of the per-plugin sandbox metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginOnly {
    /// The plugin (a loaded one: bounded by what the operator installed).
    pub plugin: String,
}

/// Labels of `waygate_tool_calls_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolCallLabels {
    /// The plugin.
    pub plugin: String,
    /// The qualified tool name.
    pub tool: String,
    /// How the call ended: one of [`CALL_OUTCOMES`].
    pub outcome: &'static str,
}

/// Every value of the `outcome` label of `waygate_tool_calls_total`.
pub const CALL_OUTCOMES: [&str; 14] = [
    "ok",
    "tool_error",
    "invalid_arguments",
    "fuel_exhausted",
    "timeout",
    "memory_limit",
    "table_limit",
    "output_limit",
    "result_size_limit",
    "concurrency_limit",
    "instance_pool_exhausted",
    "trap",
    "host_error",
    "cancelled",
];

/// Labels of `waygate_compiled_cache_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit`, `miss` or `rebuilt` (a corrupt or stale entry replaced).
    pub outcome: &'static str,
}

/// Labels of `waygate_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: &'static str,
}

/// Labels of `waygate_reload_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `all` (`POST /plugins/reload`, SIGHUP, the watcher) or `one` (one plugin).
    pub scope: &'static str,
}

/// The per-plugin and per-tool series: the runtime and the registry take handles to them
/// when a plugin loads, so a call updates its series without a lookup or a lock; [`Metrics`]
/// exports the same families (shared, not copied).
#[derive(Debug, Clone, Default)]
pub struct PluginMetrics {
    /// Fuel units consumed, by plugin.
    fuel: Family<PluginOnly, Counter>,
    /// Time to instantiate a fresh instance, by plugin.
    instantiation: Family<PluginOnly, LatencyHistogram>,
    /// The largest linear memory (all of an instance's memories together) any call of the
    /// plugin reached since start, in bytes.
    memory_peak: Family<PluginOnly, Gauge>,
    /// Component loads by compiled-cache outcome.
    cache: Family<CacheLabels, Counter>,
    /// Tool call latency by plugin and tool.
    execution: Family<PluginLabels, LatencyHistogram>,
    /// Tool calls by plugin, tool and outcome.
    calls: Family<ToolCallLabels, Counter>,
}

/// The series of one plugin's calls.
#[derive(Debug, Clone)]
pub struct PluginHandles {
    fuel: Counter,
    instantiation: LatencyHistogram,
    memory_peak: Gauge,
}

impl PluginHandles {
    /// Records one finished call.
    pub fn observe_call(&self, fuel: u64, instantiation: Option<Duration>, memory_bytes: usize) {
        self.fuel.inc_by(fuel);
        if let Some(elapsed) = instantiation {
            self.instantiation.observe(elapsed);
        }
        let bytes = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        // A high-water mark: only ever raised.
        self.memory_peak.inner().fetch_max(bytes, Ordering::Relaxed);
    }
}

/// The series of one tool's calls: its latency, and a counter per outcome.
#[derive(Debug, Clone)]
pub struct ToolHandles {
    execution: LatencyHistogram,
    outcomes: [Counter; CALL_OUTCOMES.len()],
}

impl ToolHandles {
    /// Counts one call that ended with `outcome` (one of [`CALL_OUTCOMES`]) after `elapsed`.
    pub fn observe(&self, outcome: &str, elapsed: Option<Duration>) {
        if let Some(index) = CALL_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[index].inc();
        }
        if let Some(elapsed) = elapsed {
            self.execution.observe(elapsed);
        }
    }
}

impl PluginMetrics {
    /// The handles of `plugin`'s series, created if new.
    pub fn plugin(&self, plugin: &str) -> PluginHandles {
        let labels = PluginOnly {
            plugin: plugin.to_owned(),
        };
        PluginHandles {
            fuel: self.fuel.get_or_create(&labels).clone(),
            instantiation: self.instantiation.get_or_create(&labels).clone(),
            memory_peak: self.memory_peak.get_or_create(&labels).clone(),
        }
    }

    /// The handles of `tool`'s series (its qualified name), created if new: every outcome
    /// is exported from the start, at zero.
    pub fn tool(&self, plugin: &str, tool: &str) -> ToolHandles {
        let execution = self
            .execution
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
                command: tool.to_owned(),
            })
            .clone();
        let outcomes = CALL_OUTCOMES.map(|outcome| {
            self.calls
                .get_or_create(&ToolCallLabels {
                    plugin: plugin.to_owned(),
                    tool: tool.to_owned(),
                    outcome,
                })
                .clone()
        });
        ToolHandles {
            execution,
            outcomes,
        }
    }

    /// Counts one component load by its compiled-cache outcome (`hit`, `miss`, `rebuilt`).
    pub fn count_load(&self, outcome: &'static str) {
        self.cache.get_or_create(&CacheLabels { outcome }).inc();
    }
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by method, route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route.
    pub request_duration: Family<EndpointLabels, LatencyHistogram>,
    /// Every request's latency, for the diagnostics quantiles.
    pub all_requests: std::sync::Arc<LatencyHistogram>,
    /// Connections open now.
    pub active_connections: Gauge,
    /// Connections accepted since start.
    pub connections_total: Counter,
    /// Reloads of the plugin set (all plugins or one).
    pub reloads: Counter,
    /// Packages that failed to load in a reload.
    pub reload_failures: Counter,
    /// How long reloads took, by scope.
    pub reload_duration: Family<ReloadLabels, LatencyHistogram>,
    /// Requests refused before any work by the rate limiter (429).
    pub rate_limited: Counter,
    /// Requests that would run plugin code (tool calls, resource lists and reads, prompts)
    /// refused because `limits.max_inflight_calls` were in progress (503).
    pub busy: Counter,
    /// MCP sessions open (session era), set when scraped.
    pub mcp_sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&PluginMetrics::default())
    }
}

impl Metrics {
    /// Registers every metric, the sandbox's among them.
    pub fn new(plugins: &PluginMetrics) -> Self {
        let mut registry = Registry::with_prefix("waygate");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running version (always 1)", build_info);
        registry.register(
            "plugin_fuel_consumed",
            "Fuel units plugin calls consumed",
            plugins.fuel.clone(),
        );
        registry.register(
            "plugin_instantiation_seconds",
            "Time to create a fresh plugin instance for a call",
            plugins.instantiation.clone(),
        );
        registry.register(
            "plugin_memory_peak_bytes",
            "Largest linear memory a call of the plugin reached since start",
            plugins.memory_peak.clone(),
        );
        registry.register(
            "compiled_cache",
            "Component loads by compiled-cache outcome",
            plugins.cache.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls by plugin, tool and outcome",
            plugins.calls.clone(),
        );
        let reloads = Counter::default();
        registry.register("reloads", "Reloads of the plugin set", reloads.clone());
        let reload_failures = Counter::default();
        registry.register(
            "reload_failures",
            "Packages that failed to load in a reload",
            reload_failures.clone(),
        );
        let reload_duration = Family::<ReloadLabels, LatencyHistogram>::default();
        registry.register(
            "reload_duration_seconds",
            "How long reloads took",
            reload_duration.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_requests",
            "Requests refused by the rate limiter (429)",
            rate_limited.clone(),
        );
        let busy = Counter::default();
        registry.register(
            "busy_rejections",
            "Requests that would run plugin code refused because limits.max_inflight_calls were in progress (503)",
            busy.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "HTTP requests answered", requests.clone());
        let request_duration = Family::<EndpointLabels, LatencyHistogram>::default();
        registry.register(
            "request_duration_seconds",
            "Time from a request's headers to its response",
            request_duration.clone(),
        );
        let all_requests = std::sync::Arc::new(LatencyHistogram::default());
        let active_connections = Gauge::default();
        registry.register(
            "active_connections",
            "HTTP connections open now",
            active_connections.clone(),
        );
        let connections_total = Counter::default();
        registry.register(
            "connections",
            "HTTP connections accepted",
            connections_total.clone(),
        );
        registry.register(
            "plugin_execution_seconds",
            "Tool call latency, argument validation and sandbox included",
            plugins.execution.clone(),
        );
        let mcp_sessions = Gauge::default();
        registry.register(
            "mcp_sessions",
            "MCP sessions open (the session-based protocol era)",
            mcp_sessions.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            all_requests,
            active_connections,
            connections_total,
            reloads,
            reload_failures,
            reload_duration,
            rate_limited,
            busy,
            mcp_sessions,
        }
    }

    /// Counts one answered request.
    pub fn observe_request(
        &self,
        method: &str,
        endpoint: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                endpoint,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(elapsed);
        self.all_requests.observe(elapsed);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The Prometheus text format 0.0.4, which the API spec names and every scraper reads:
    /// the OpenMetrics exposition without its `# EOF`, and with each counter's `HELP` and
    /// `TYPE` naming the `_total` series, as that format expects.
    pub fn encode_prometheus(&self) -> String {
        let open_metrics = self.encode();
        let counters: std::collections::HashSet<&str> = open_metrics
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut text = String::with_capacity(open_metrics.len());
        for line in open_metrics.lines() {
            if line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            text.push_str(renamed.as_deref().unwrap_or(line));
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile_ms(0.5), None);
        for _ in 0..100 {
            histogram.observe(Duration::from_micros(800)); // 0.5..1 ms bucket
        }
        let p50 = histogram.quantile_ms(0.5).unwrap();
        assert!((0.5..=1.0).contains(&p50), "{p50}");
        histogram.observe(Duration::from_secs(1000)); // +Inf
        assert_eq!(histogram.count(), 101);
        assert_eq!(histogram.quantile_ms(1.0), Some(300_000.0));
    }

    #[test]
    fn encodes_spec_metric_names() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/health", 200, Duration::from_millis(2));
        metrics.observe_request("X1", "unmatched", 405, Duration::from_millis(1));
        metrics.observe_request("X2", "unmatched", 405, Duration::from_millis(1));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"waygate_requests_total{method="GET",endpoint="/health",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "waygate_request_duration_seconds_bucket{le=\"0.0025\",endpoint=\"/health\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"waygate_requests_total{method="OTHER",endpoint="unmatched",status="405"} 2"#
            ),
            "made-up methods share one label: {text}"
        );
        assert!(text.ends_with("# EOF\n"));

        let prometheus = metrics.encode_prometheus();
        assert!(
            prometheus.contains("# TYPE waygate_requests_total counter\n"),
            "{prometheus}"
        );
        assert!(prometheus.contains("# HELP waygate_requests_total HTTP requests answered."));
        assert!(prometheus.contains("# TYPE waygate_request_duration_seconds histogram\n"));
        assert!(!prometheus.contains("# EOF"));
    }
}
