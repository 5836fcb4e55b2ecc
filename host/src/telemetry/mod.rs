//! What the process tells operators about itself: Prometheus metrics ([`Metrics`]), the
//! bounded ring of recent errors behind `/diagnostics/errors` ([`ErrorLog`]), and the
//! OpenTelemetry trace export ([`otel`]).
//! Owns: [`Metrics`], [`PluginMetrics`], [`ErrorLog`]. Never: decides anything; every other module only
//! reports into it.

mod errors;
mod metrics;
pub mod otel;

pub use errors::{ErrorEntry, ErrorLog};

/// Sets the log filter of the running process (`info`, `waygate=debug,plugin=trace`);
/// `Err` names what is wrong with the filter. Built by `main` over the subscriber it
/// installs, used by `PUT /diagnostics/log-level`.
pub type SetLogLevel = std::sync::Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
pub use metrics::{
    CALL_OUTCOMES, LatencyHistogram, Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
    PluginHandles, PluginMetrics, ReloadLabels, ToolHandles, method_label,
};
