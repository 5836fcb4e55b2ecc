//! `waygate reload`: asks a running server to reload its plugins (`POST /plugins/reload`)
//! and prints what it reports. Plain HTTP to the server's own address; for HTTPS, send the
//! same request with any HTTP client, or send the process SIGHUP.

use anyhow::{Context, bail};

/// POSTs `/plugins/reload` to `address` (`host:port`) with the admin `key`, prints the
/// answer, and fails unless the server reloaded.
///
/// # Errors
///
/// The server cannot be reached, or refuses (its error is in the message).
pub fn run(address: &str, key: &str) -> anyhow::Result<()> {
    let (status, body) = crate::cli_http::request(address, "POST", "/plugins/reload", Some(key))?;
    if status != 200 {
        bail!("the server answered {status}: {body}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&body).context("the server's answer is not JSON")?;
    println!(
        "reloaded in {} ms: {} serving, loaded {}",
        report["duration_ms"], report["count"], report["loaded"]
    );
    for failed in report["failed"].as_array().into_iter().flatten() {
        let serving = failed["serving_version"]
            .as_str()
            .map_or("not serving".to_owned(), |v| format!("still serving {v}"));
        println!(
            "failed: {} ({serving}): {}",
            failed["name"], failed["error"]
        );
    }
    Ok(())
}
