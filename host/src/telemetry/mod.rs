//! What the process tells operators about itself: Prometheus metrics ([`Metrics`]) and the
//! bounded ring of recent errors behind `/diagnostics/errors` ([`ErrorLog`]).
//! Owns: [`Metrics`], [`ErrorLog`]. Never: decides anything; every other module only
//! reports into it.

mod errors;
mod metrics;

pub use errors::{ErrorEntry, ErrorLog};
pub use metrics::{
    LatencyHistogram, Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, PluginLabels,
};
