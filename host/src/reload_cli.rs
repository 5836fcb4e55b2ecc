//! `waygate reload`: asks a running server to reload its plugins (`POST /plugins/reload`)
//! and prints what it reports. Plain HTTP to the server's own address; for HTTPS, send the
//! same request with any HTTP client, or send the process SIGHUP.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long the CLI waits for the server, reload included.
const TIMEOUT: Duration = Duration::from_secs(120);

/// POSTs `/plugins/reload` to `address` (`host:port`) with the admin `key`, prints the
/// answer, and fails unless the server reloaded.
///
/// # Errors
///
/// The server cannot be reached, or refuses (its error is in the message).
pub fn run(address: &str, key: &str) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(address)
        .with_context(|| format!("cannot reach a server at {address}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let request = format!(
        "POST /plugins/reload HTTP/1.1\r\nhost: {address}\r\nx-api-key: {key}\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        bail!("the server answered {status}: {body}");
    }
    let report: serde_json::Value =
        serde_json::from_str(body).context("the server's answer is not JSON")?;
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
