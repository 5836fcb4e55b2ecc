//! Graceful shutdown of the real binary: on SIGTERM `/ready` turns 503 while requests are
//! still served for `shutdown_delay_ms`, then the listener closes, the call in flight
//! finishes, its history and the key's last use reach the database, and the exit code is 0.

use crate::support::{ADMIN_KEY, blocking_request, spawn_binary};
use std::time::{Duration, Instant};
use waygate::store::Store;

/// The nap outlasts the delay, so it is in flight when the listener closes.
const DELAY_MS: u64 = 1500;
const NAP_MS: u64 = 3000;

fn execute(addr: &str, action: &str, params: &str) -> (u16, String) {
    blocking_request(
        addr,
        "POST",
        "/mcp/execute",
        &[("x-api-key", ADMIN_KEY)],
        &format!(r#"{{"action":"{action}","params":{params}}}"#),
    )
}

#[test]
fn sigterm_drains_the_call_in_flight_flushes_the_store_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("waygate.toml");
    std::fs::write(
        &config,
        format!("[limits]\nshutdown_delay_ms = {DELAY_MS}\nshutdown_grace_ms = 10000\n"),
    )
    .unwrap();
    let mut server = spawn_binary(data.path(), &[("WAYGATE_CONFIG", config.to_str().unwrap())]);
    let addr = server.addr.clone();
    let (status, _) = blocking_request(&addr, "GET", "/ready", &[], "");
    assert_eq!(status, 200);

    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || execute(&addr, "hostile__nap", &format!(r#"{{"ms":{NAP_MS}}}"#)))
    };
    // The nap has started once its instance is up; half a second is ample on a loaded machine.
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    server.wait_for_log(|line| {
        line["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))
    });

    // During the delay: not ready, but new connections are still accepted and served.
    let (status, body) = blocking_request(&addr, "GET", "/ready", &[], "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""ready":false"#), "{body}");
    let (status, body) = execute(&addr, "hostile__ok", "{}");
    assert_eq!(status, 200, "a request during the delay is served: {body}");
    assert!(
        signalled.elapsed() < Duration::from_millis(DELAY_MS),
        "the checks above took longer than the delay; the test proves nothing"
    );

    // After the delay the listener is gone: connecting fails at once, no backlog wait.
    let closed = loop {
        if std::net::TcpStream::connect(&addr).is_err() {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(DELAY_MS + 3000),
            "still accepting long after the delay"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        closed >= Duration::from_millis(DELAY_MS),
        "closed after {closed:?}, before the delay"
    );

    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "the call in flight finishes: {body}");
    assert!(body.contains(&format!("slept {NAP_MS} ms")), "{body}");

    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "the server did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0), "{}", server.log.lock().unwrap());

    // Both writes are batched off the request path (history every 200 ms, key uses every
    // 5 s); the nap ended just before the exit, so they are there because shutdown flushed.
    let store = Store::open(&data.path().join("waygate.db")).unwrap();
    let (rows, _) = store.command_history(0, 10).unwrap();
    let commands: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| (row.record.command.as_str(), row.record.status.as_str()))
        .collect();
    assert!(
        commands.contains(&("hostile__nap", "success")),
        "{commands:?}"
    );
    let keys = store.keys().unwrap();
    assert!(
        keys.iter().any(|key| key.last_used.is_some()),
        "the admin key's use was not written"
    );
}

/// SIGTERM while the plugins compile (the JavaScript plugin takes seconds from a cold cache)
/// stops the start with exit code 0 instead of killing the process (or, as PID 1 in a
/// container, being ignored): the handler is installed before the load.
#[test]
fn sigterm_while_the_plugins_load_stops_the_start_cleanly() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().unwrap();
    crate::support::install_example(data.path(), "regex-tools");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(["serve", "--bind", "127.0.0.1:0", "--log", "info"])
        .env("WAYGATE_ADMIN_KEY", ADMIN_KEY)
        .arg("--plugins")
        .arg(data.path().join("plugins"))
        .arg("--data")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The admin key is made just before the plugins load.
    for line in lines.by_ref() {
        if line.unwrap().contains("created the first admin key") {
            break;
        }
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter().all(|line| !line.contains("waygate listening")),
        "the load finished before the signal; the test proves nothing: {rest:?}"
    );
    assert!(
        rest.iter()
            .any(|line| line.contains("shutdown signal while the plugins load")),
        "{rest:?}"
    );
}
