//! The plain-HTTP client the CLI's `reload` and `doctor` use to talk to a running server on
//! its own address: one request per connection, read to the end.

use anyhow::Context;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long the CLI waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `method path` to `address` with the API `key` if given; returns the status and
/// the body.
///
/// # Errors
///
/// The server cannot be reached or does not answer in HTTP.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)
        .with_context(|| format!("cannot reach a server at {address}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let credential = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\n{credential}content-length: 0\r\n\
         connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the answer is not HTTP")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the answer has no status")?;
    Ok((status, body.to_owned()))
}
