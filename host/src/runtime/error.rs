//! Errors of loading and running plugin components.
//! Owns: [`Error`], [`Limit`]. Never: knows HTTP statuses or JSON-RPC codes (see `http`).

use std::fmt;

/// Which limit a call ran into; each names its config key in `config::limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`crate::config::PluginLimits::fuel`].
    Fuel,
    /// [`crate::config::PluginLimits::timeout_ms`], or the request's own timeout.
    WallTime,
    /// [`crate::config::PluginLimits::memory_mib`].
    Memory,
    /// Table growth beyond [`crate::config::limits::MAX_TABLE_ELEMENTS`].
    TableElements,
    /// [`crate::config::PluginLimits::output_bytes`].
    Output,
    /// [`crate::config::PluginLimits::result_bytes`].
    ResultSize,
    /// [`crate::config::PluginLimits::max_concurrency`].
    Concurrency,
    /// [`crate::config::Limits::instance_pool`].
    InstancePool,
}

impl Limit {
    /// The config key of the limit, as operators write it.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Fuel => "fuel",
            Limit::WallTime => "timeout_ms",
            Limit::Memory => "memory_mib",
            Limit::TableElements => "table_elements",
            Limit::Output => "output_bytes",
            Limit::ResultSize => "result_bytes",
            Limit::Concurrency => "max_concurrency",
            Limit::InstancePool => "instance_pool",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Fuel => "fuel limit",
            Limit::WallTime => "time limit",
            Limit::Memory => "memory limit",
            Limit::TableElements => "table size limit",
            Limit::Output => "stdout/stderr limit",
            Limit::ResultSize => "result size limit",
            Limit::Concurrency => "concurrency limit",
            Limit::InstancePool => "instance pool limit",
        })
    }
}

/// Why the runtime could not load a component or finish a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a valid component for this engine.
    #[error("plugin {plugin}: cannot compile component: {reason}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// The component needs imports the host does not provide, or lacks the `provider` export.
    #[error("plugin {plugin}: component does not fit the waygate:plugin world: {reason}")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// The call hit a limit and was stopped.
    #[error("plugin {plugin}: {limit} exceeded ({key} = {value}) during {phase}", key = limit.key())]
    LimitExceeded {
        /// The plugin's name.
        plugin: String,
        /// The export that was running.
        phase: &'static str,
        /// Which limit.
        limit: Limit,
        /// The value in force, or the value given.
        value: String,
    },
    /// The guest trapped: a panic, an `unreachable`, a stack overflow, an out-of-bounds access.
    #[error("plugin {plugin}: crashed during {phase}: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The export that was running.
        phase: &'static str,
        /// What happened.
        message: String,
    },
    /// The host could not set up or run the call (engine set-up, cache directory); never the
    /// guest's doing.
    #[error("plugin {plugin}: host failure during {phase}: {message}")]
    Host {
        /// The plugin's name.
        plugin: String,
        /// The export that was running.
        phase: &'static str,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// The limit this error reports, if it is a limit error.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Error::LimitExceeded { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}
