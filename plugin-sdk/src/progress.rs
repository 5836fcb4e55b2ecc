//! Progress of the current call, relayed to the client as MCP `notifications/progress`
//! when it asked for progress; otherwise the host drops the reports.

use crate::bindings::waygate::plugin::progress;

/// Reports `done` units of work so far, out of `total` when known. Each report must be
/// larger than the last; the host drops the others.
pub fn report(done: f64, total: Option<f64>, message: Option<&str>) {
    progress::report(done, total, message);
}
