//! Every limit Waygate enforces, with its default, its scope and what a breach does.
//! Owns: [`Limits`], [`PluginLimits`] and the `DEFAULT_*` constants.
//! Never: reads files or the environment (that is `config`'s loader) or enforces anything.
//! Limits: this module is where they are declared; the enforcing code links back here.

use serde::Deserialize;
use std::time::Duration;

/// Default cap on one plugin instance's linear memory: 64 MiB.
pub const DEFAULT_PLUGIN_MEMORY_MIB: u64 = 64;
/// Largest memory cap a manifest may ask for: 512 MiB.
pub const MAX_PLUGIN_MEMORY_MIB: u64 = 512;
/// Default fuel per call: ten billion units, several seconds of pure compute.
pub const DEFAULT_PLUGIN_FUEL: u64 = 10_000_000_000;
/// Default wall-clock limit of one plugin call: 30 s (the API spec's default timeout).
pub const DEFAULT_PLUGIN_TIMEOUT_MS: u64 = 30_000;
/// Default number of calls one plugin may run at once.
pub const DEFAULT_PLUGIN_CONCURRENCY: u32 = 16;
/// Default cap on what one call may write to stdout and stderr together: 1 MiB.
pub const DEFAULT_PLUGIN_OUTPUT_BYTES: u64 = 1 << 20;
/// Default cap on the encoded size of one call's result: 8 MiB.
pub const DEFAULT_PLUGIN_RESULT_BYTES: u64 = 8 << 20;
/// Default quota of one plugin's key-value store (keys plus values): 1 MiB.
pub const DEFAULT_PLUGIN_KV_QUOTA_BYTES: u64 = 1 << 20;
/// Default cap on log lines one call may write through the `log` import.
pub const DEFAULT_PLUGIN_LOG_LINES: u32 = 1_000;
/// Default time an outbound HTTP request may take to connect and answer with its headers,
/// and the longest pause between two chunks of its body: 10 s.
pub const DEFAULT_PLUGIN_HTTP_TIMEOUT_MS: u64 = 10_000;
/// Default cap on the body of one outbound HTTP response: 4 MiB.
pub const DEFAULT_PLUGIN_HTTP_RESPONSE_BYTES: u64 = 4 << 20;
/// Default number of outbound HTTP requests one call may send.
pub const DEFAULT_PLUGIN_HTTP_REQUESTS: u32 = 16;
/// Tables, memories and core instances one component may create; generous for the
/// multi-module components that Python and JavaScript toolchains emit.
pub const MAX_TABLES_PER_INSTANCE: u32 = 32;
/// See [`MAX_TABLES_PER_INSTANCE`].
pub const MAX_MEMORIES_PER_INSTANCE: u32 = 8;
/// See [`MAX_TABLES_PER_INSTANCE`].
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Elements per table; Python components carry tables of tens of thousands of functions.
pub const MAX_TABLE_ELEMENTS: usize = 200_000;
/// Default number of plugin instances alive at once across all plugins.
pub const DEFAULT_INSTANCE_POOL: u32 = 256;
/// How often the epoch ticker advances; wall-clock limits are accurate to one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Default cap on a request body: 1 MiB, far above any JSON-RPC request a client sends.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// Default cap on open MCP sessions (the session-based protocol era).
pub const DEFAULT_MCP_SESSIONS: u32 = 10_000;
/// Default idle time after which an MCP session expires: 30 minutes.
pub const DEFAULT_MCP_SESSION_IDLE_MS: u64 = 30 * 60 * 1000;
/// Default cap on open MCP notification streams (`GET /mcp`, `subscriptions/listen`), well
/// under [`DEFAULT_MAX_CONNECTIONS`] so streams cannot take every connection.
pub const DEFAULT_MCP_STREAMS: u32 = 256;
/// Default cap on tool calls in progress at once across all plugins (running, or waiting
/// for a plugin's or the pool's slot); one more is refused with 503 and `Retry-After`.
pub const DEFAULT_MAX_INFLIGHT_CALLS: u32 = 512;
/// Largest request head (request line and headers) in bytes; larger gets 431. (More than
/// 100 header lines get 431 too: hyper's own limit, kept as it is.)
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Default number of rows `command_history` keeps; older rows are pruned.
pub const DEFAULT_COMMAND_HISTORY_ROWS: u64 = 100_000;
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1_024;
/// Default time the server waits for in-flight requests at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
/// Default time between the shutdown signal and closing the listener: none, for a single
/// process nothing routes around.
pub const DEFAULT_SHUTDOWN_DELAY_MS: u64 = 0;

/// Process-wide limits, from the `[limits]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Plugin instances alive at once across all plugins (process scope). Sizes the pooling
    /// allocator; a call that finds every slot busy waits for one until its deadline, then
    /// fails with a limit error.
    /// Config `limits.instance_pool`, default [`DEFAULT_INSTANCE_POOL`].
    pub instance_pool: u32,
    /// Request body size (request scope); larger bodies get 413.
    /// Config `limits.max_body_bytes`, default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: u64,
    /// Open connections (process scope); the listener waits for a free slot before accepting.
    /// Config `limits.max_connections`, default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// Drain deadline at shutdown (process scope); requests still running then are dropped.
    /// Config `limits.shutdown_grace_ms`, default [`DEFAULT_SHUTDOWN_GRACE_MS`].
    pub shutdown_grace_ms: u64,
    /// Time from the shutdown signal to closing the listener (process scope): `/ready`
    /// answers 503 meanwhile and requests are still served, so a load balancer takes the
    /// replica out before it stops accepting. Behind Kubernetes: the readiness probe's
    /// period times its failure threshold, or more.
    /// Config `limits.shutdown_delay_ms`, default [`DEFAULT_SHUTDOWN_DELAY_MS`].
    pub shutdown_delay_ms: u64,
    /// Open MCP sessions (process scope); `initialize` beyond it gets 503.
    /// Config `limits.mcp_sessions`, default [`DEFAULT_MCP_SESSIONS`].
    pub mcp_sessions: u32,
    /// Tool calls in progress at once (process scope), running or waiting for a slot; one
    /// more is refused at once with 503 and `Retry-After`, never queued.
    /// Config `limits.max_inflight_calls`, default [`DEFAULT_MAX_INFLIGHT_CALLS`].
    pub max_inflight_calls: u32,
    /// Open MCP notification streams (process scope); one more gets 503.
    /// Config `limits.mcp_streams`, default [`DEFAULT_MCP_STREAMS`].
    pub mcp_streams: u32,
    /// Idle time of an MCP session (session scope); an expired session's id gets 404. A
    /// session running a request or holding its stream open is not idle.
    /// Config `limits.mcp_session_idle_ms`, default [`DEFAULT_MCP_SESSION_IDLE_MS`].
    pub mcp_session_idle_ms: u64,
    /// Rows of `command_history` kept (database scope); the oldest are pruned after writes.
    /// Config `limits.command_history_rows`, default [`DEFAULT_COMMAND_HISTORY_ROWS`].
    pub command_history_rows: u64,
    /// Defaults for every plugin; a manifest's `[limits]` may override each of them.
    pub plugin: PluginLimits,
    /// The most a manifest may ask for, key by key (`[limits.plugin_ceiling]`; keys not set
    /// keep [`PluginLimits::CEILING`]); a plugin whose manifest asks for more does not load.
    #[serde(deserialize_with = "ceiling")]
    pub plugin_ceiling: PluginLimits,
}

/// Reads `[limits.plugin_ceiling]`: the keys it sets, over the default ceiling.
fn ceiling<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PluginLimits, D::Error> {
    let set = PluginLimitOverrides::deserialize(deserializer)?;
    Ok(set.apply(PluginLimits::CEILING))
}

/// How a plugin's limits are set: the operator's defaults, and the ceiling no manifest may
/// pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimitPolicy {
    /// What a plugin gets unless its manifest says otherwise.
    pub defaults: PluginLimits,
    /// The most its manifest may ask for.
    pub ceiling: PluginLimits,
}

impl Limits {
    /// The policy for plugins' limits.
    pub fn plugin_policy(&self) -> PluginLimitPolicy {
        PluginLimitPolicy {
            defaults: self.plugin,
            ceiling: self.plugin_ceiling,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            instance_pool: DEFAULT_INSTANCE_POOL,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            shutdown_delay_ms: DEFAULT_SHUTDOWN_DELAY_MS,
            mcp_sessions: DEFAULT_MCP_SESSIONS,
            mcp_streams: DEFAULT_MCP_STREAMS,
            max_inflight_calls: DEFAULT_MAX_INFLIGHT_CALLS,
            mcp_session_idle_ms: DEFAULT_MCP_SESSION_IDLE_MS,
            command_history_rows: DEFAULT_COMMAND_HISTORY_ROWS,
            plugin: PluginLimits::default(),
            plugin_ceiling: PluginLimits::CEILING,
        }
    }
}

/// Limits of one plugin's calls: defaults from `[limits.plugin]` in the config file,
/// overridden per plugin by the `[limits]` table of its `plugin.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Linear memory of one instance (instance scope). Growth past it fails and the call
    /// traps, reported as a memory limit error. Default [`DEFAULT_PLUGIN_MEMORY_MIB`], at most
    /// [`MAX_PLUGIN_MEMORY_MIB`].
    pub memory_mib: u64,
    /// Fuel of one call (call scope): a deterministic CPU budget, roughly one unit per wasm
    /// instruction. Running out traps, reported as a fuel limit error.
    /// Default [`DEFAULT_PLUGIN_FUEL`].
    pub fuel: u64,
    /// Wall-clock time of one call (call scope): a timeout around the call, which fires within
    /// one [`EPOCH_TICK`] even for a busy guest because it yields every tick; the request's
    /// own timeout applies when smaller.
    /// Default [`DEFAULT_PLUGIN_TIMEOUT_MS`].
    pub timeout_ms: u64,
    /// Calls of this plugin running at once (plugin scope). Further calls wait for a slot
    /// until their deadline, then fail with a concurrency limit error.
    /// Default [`DEFAULT_PLUGIN_CONCURRENCY`].
    pub max_concurrency: u32,
    /// Bytes one call may write to stdout and stderr together (call scope). Past it the
    /// streams close; a call that then fails is reported as an output limit error.
    /// Default [`DEFAULT_PLUGIN_OUTPUT_BYTES`].
    pub output_bytes: u64,
    /// Size of what one call returns to the client (call scope): a tool result, a resource
    /// read or a rendered prompt; a larger one is discarded and the call fails with a result
    /// size error. Default [`DEFAULT_PLUGIN_RESULT_BYTES`].
    pub result_bytes: u64,
    /// Bytes of keys and values in the plugin's key-value store (plugin scope, persistent).
    /// A write past it returns the WIT `quota-exceeded` error to the plugin.
    /// Default [`DEFAULT_PLUGIN_KV_QUOTA_BYTES`].
    pub kv_quota_bytes: u64,
    /// Lines one call may log through the `log` import (call scope); further lines are
    /// dropped and counted. Default [`DEFAULT_PLUGIN_LOG_LINES`].
    pub log_lines: u32,
    /// Time an outbound HTTP request (granted by `[capabilities.http]`) may take from
    /// sending to its response headers, and the longest pause between two body chunks
    /// (request scope); past it the plugin gets a timeout error code.
    /// Default [`DEFAULT_PLUGIN_HTTP_TIMEOUT_MS`].
    pub http_timeout_ms: u64,
    /// Body bytes of one outbound HTTP response (request scope); past it the body stream
    /// fails with `http-response-body-size`, and a larger `Content-Length` fails the request
    /// at once. Default [`DEFAULT_PLUGIN_HTTP_RESPONSE_BYTES`].
    pub http_response_bytes: u64,
    /// Outbound HTTP requests one call may send (call scope); one more fails with
    /// `connection-limit-reached`. Default [`DEFAULT_PLUGIN_HTTP_REQUESTS`].
    pub http_requests: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_PLUGIN_MEMORY_MIB,
            fuel: DEFAULT_PLUGIN_FUEL,
            timeout_ms: DEFAULT_PLUGIN_TIMEOUT_MS,
            max_concurrency: DEFAULT_PLUGIN_CONCURRENCY,
            output_bytes: DEFAULT_PLUGIN_OUTPUT_BYTES,
            result_bytes: DEFAULT_PLUGIN_RESULT_BYTES,
            kv_quota_bytes: DEFAULT_PLUGIN_KV_QUOTA_BYTES,
            log_lines: DEFAULT_PLUGIN_LOG_LINES,
            http_timeout_ms: DEFAULT_PLUGIN_HTTP_TIMEOUT_MS,
            http_response_bytes: DEFAULT_PLUGIN_HTTP_RESPONSE_BYTES,
            http_requests: DEFAULT_PLUGIN_HTTP_REQUESTS,
        }
    }
}

impl PluginLimits {
    /// The default ceiling of manifest overrides: generous, but bounded.
    pub const CEILING: PluginLimits = PluginLimits {
        memory_mib: MAX_PLUGIN_MEMORY_MIB,
        fuel: 10 * DEFAULT_PLUGIN_FUEL,
        timeout_ms: 300_000,
        max_concurrency: 64,
        output_bytes: 16 << 20,
        result_bytes: 64 << 20,
        kv_quota_bytes: 64 << 20,
        log_lines: 10_000,
        http_timeout_ms: 120_000,
        http_response_bytes: 64 << 20,
        http_requests: 256,
    };

    /// Checks that no value passes `ceiling`; the message names the key and both values.
    ///
    /// # Errors
    ///
    /// The first key above its ceiling.
    pub fn within(&self, ceiling: &PluginLimits) -> Result<(), String> {
        let pairs = [
            ("memory_mib", self.memory_mib, ceiling.memory_mib),
            ("fuel", self.fuel, ceiling.fuel),
            ("timeout_ms", self.timeout_ms, ceiling.timeout_ms),
            (
                "max_concurrency",
                u64::from(self.max_concurrency),
                u64::from(ceiling.max_concurrency),
            ),
            ("output_bytes", self.output_bytes, ceiling.output_bytes),
            ("result_bytes", self.result_bytes, ceiling.result_bytes),
            (
                "kv_quota_bytes",
                self.kv_quota_bytes,
                ceiling.kv_quota_bytes,
            ),
            (
                "log_lines",
                u64::from(self.log_lines),
                u64::from(ceiling.log_lines),
            ),
            (
                "http_timeout_ms",
                self.http_timeout_ms,
                ceiling.http_timeout_ms,
            ),
            (
                "http_response_bytes",
                self.http_response_bytes,
                ceiling.http_response_bytes,
            ),
            (
                "http_requests",
                u64::from(self.http_requests),
                u64::from(ceiling.http_requests),
            ),
        ];
        match pairs.iter().find(|(_, value, most)| value > most) {
            Some((key, value, most)) => Err(format!(
                "{key} = {value} is above the operator's ceiling of {most} (limits.plugin_ceiling.{key})"
            )),
            None => Ok(()),
        }
    }

    /// Checks each value against what the host can honour; the message names the key.
    ///
    /// # Errors
    ///
    /// The first key whose value is out of range, with the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("memory_mib", self.memory_mib),
            ("fuel", self.fuel),
            ("timeout_ms", self.timeout_ms),
            ("max_concurrency", u64::from(self.max_concurrency)),
            ("result_bytes", self.result_bytes),
            ("output_bytes", self.output_bytes),
            ("http_timeout_ms", self.http_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be greater than 0"));
        }
        if self.memory_mib > MAX_PLUGIN_MEMORY_MIB {
            return Err(format!(
                "memory_mib = {} is above the maximum of {MAX_PLUGIN_MEMORY_MIB}",
                self.memory_mib
            ));
        }
        Ok(())
    }

    /// The wall-clock limit as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The outbound HTTP timeout as a duration.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib << 20).unwrap_or(usize::MAX)
    }
}

/// A manifest's `[limits]`: every key optional, unset keys keep the operator's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitOverrides {
    memory_mib: Option<u64>,
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    max_concurrency: Option<u32>,
    output_bytes: Option<u64>,
    result_bytes: Option<u64>,
    kv_quota_bytes: Option<u64>,
    log_lines: Option<u32>,
    http_timeout_ms: Option<u64>,
    http_response_bytes: Option<u64>,
    http_requests: Option<u32>,
}

impl PluginLimitOverrides {
    /// Applies the overrides on top of `defaults`.
    pub fn apply(&self, defaults: PluginLimits) -> PluginLimits {
        PluginLimits {
            memory_mib: self.memory_mib.unwrap_or(defaults.memory_mib),
            fuel: self.fuel.unwrap_or(defaults.fuel),
            timeout_ms: self.timeout_ms.unwrap_or(defaults.timeout_ms),
            max_concurrency: self.max_concurrency.unwrap_or(defaults.max_concurrency),
            output_bytes: self.output_bytes.unwrap_or(defaults.output_bytes),
            result_bytes: self.result_bytes.unwrap_or(defaults.result_bytes),
            kv_quota_bytes: self.kv_quota_bytes.unwrap_or(defaults.kv_quota_bytes),
            log_lines: self.log_lines.unwrap_or(defaults.log_lines),
            http_timeout_ms: self.http_timeout_ms.unwrap_or(defaults.http_timeout_ms),
            http_response_bytes: self
                .http_response_bytes
                .unwrap_or(defaults.http_response_bytes),
            http_requests: self.http_requests.unwrap_or(defaults.http_requests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented defaults are the ones in force; `docs/limits.md` and
    /// `configs/waygate.toml` quote these numbers.
    #[test]
    fn defaults_are_pinned() {
        let limits = Limits::default();
        assert_eq!(limits.instance_pool, 256);
        assert_eq!(limits.max_body_bytes, 1024 * 1024);
        assert_eq!(limits.mcp_sessions, 10_000);
        assert_eq!(limits.mcp_session_idle_ms, 1_800_000);
        assert_eq!(limits.mcp_streams, 256);
        assert_eq!(limits.max_inflight_calls, 512);
        assert_eq!(limits.command_history_rows, 100_000);
        assert_eq!(limits.plugin.memory_mib, 64);
        assert_eq!(limits.plugin.fuel, 10_000_000_000);
        assert_eq!(limits.plugin.timeout_ms, 30_000);
        assert_eq!(limits.plugin.max_concurrency, 16);
        assert_eq!(limits.plugin.output_bytes, 1024 * 1024);
        assert_eq!(limits.plugin.result_bytes, 8 * 1024 * 1024);
        assert_eq!(limits.plugin.kv_quota_bytes, 1024 * 1024);
        assert_eq!(EPOCH_TICK, Duration::from_millis(10));
    }

    #[test]
    fn a_partial_ceiling_keeps_the_other_defaults() {
        let limits: Limits = toml::from_str("[plugin_ceiling]\ntimeout_ms = 60000").unwrap();
        assert_eq!(limits.plugin_ceiling.timeout_ms, 60_000);
        assert_eq!(
            limits.plugin_ceiling.memory_mib,
            PluginLimits::CEILING.memory_mib
        );
    }

    /// `docs/limits.md` has a row per limit naming its key and default.
    #[test]
    fn limits_doc_matches_the_defaults() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/limits.md"))
                .unwrap();
        let limits = Limits::default();
        let p = limits.plugin;
        let rows = [
            ("instance_pool", limits.instance_pool.to_string()),
            ("max_body_bytes", limits.max_body_bytes.to_string()),
            ("max_connections", limits.max_connections.to_string()),
            ("shutdown_grace_ms", limits.shutdown_grace_ms.to_string()),
            ("shutdown_delay_ms", limits.shutdown_delay_ms.to_string()),
            ("mcp_sessions", limits.mcp_sessions.to_string()),
            (
                "mcp_session_idle_ms",
                limits.mcp_session_idle_ms.to_string(),
            ),
            (
                "command_history_rows",
                limits.command_history_rows.to_string(),
            ),
            ("memory_mib", p.memory_mib.to_string()),
            ("fuel", p.fuel.to_string()),
            ("timeout_ms", p.timeout_ms.to_string()),
            ("max_concurrency", p.max_concurrency.to_string()),
            ("output_bytes", p.output_bytes.to_string()),
            ("result_bytes", p.result_bytes.to_string()),
            ("kv_quota_bytes", p.kv_quota_bytes.to_string()),
            ("log_lines", p.log_lines.to_string()),
            ("http_timeout_ms", p.http_timeout_ms.to_string()),
            ("http_response_bytes", p.http_response_bytes.to_string()),
            ("http_requests", p.http_requests.to_string()),
        ];
        for (key, default) in rows {
            let row = format!("| `{key}` | {default} |");
            assert!(doc.contains(&row), "docs/limits.md lacks the row {row}");
        }
        let c = PluginLimits::CEILING;
        let ceilings = [
            ("memory_mib", c.memory_mib.to_string()),
            ("fuel", c.fuel.to_string()),
            ("timeout_ms", c.timeout_ms.to_string()),
            ("max_concurrency", c.max_concurrency.to_string()),
            ("output_bytes", c.output_bytes.to_string()),
            ("result_bytes", c.result_bytes.to_string()),
            ("kv_quota_bytes", c.kv_quota_bytes.to_string()),
            ("log_lines", c.log_lines.to_string()),
            ("http_timeout_ms", c.http_timeout_ms.to_string()),
            ("http_response_bytes", c.http_response_bytes.to_string()),
            ("http_requests", c.http_requests.to_string()),
        ];
        for (key, ceiling) in ceilings {
            let row = format!("| `plugin_ceiling.{key}` | {ceiling} |");
            assert!(doc.contains(&row), "docs/limits.md lacks the row {row}");
        }
    }

    #[test]
    fn manifests_stay_under_the_ceiling() {
        let asked: PluginLimitOverrides = toml::from_str("timeout_ms = 600000").unwrap();
        let limits = asked.apply(PluginLimits::default());
        let err = limits.within(&PluginLimits::CEILING).unwrap_err();
        assert!(
            err.contains("timeout_ms = 600000") && err.contains("300000"),
            "{err}"
        );
        assert!(
            PluginLimits::default()
                .within(&PluginLimits::CEILING)
                .is_ok()
        );
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let overrides: PluginLimitOverrides = toml::from_str("fuel = 5\ntimeout_ms = 7").unwrap();
        let applied = overrides.apply(PluginLimits::default());
        assert_eq!(applied.fuel, 5);
        assert_eq!(applied.timeout_ms, 7);
        assert_eq!(applied.memory_mib, DEFAULT_PLUGIN_MEMORY_MIB);
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let mut limits = PluginLimits {
            memory_mib: 4096,
            ..PluginLimits::default()
        };
        assert!(limits.validate().unwrap_err().contains("memory_mib"));
        limits.memory_mib = 64;
        limits.fuel = 0;
        assert_eq!(
            limits.validate().unwrap_err(),
            "fuel must be greater than 0"
        );
    }
}
