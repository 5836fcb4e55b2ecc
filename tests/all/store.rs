//! The database under the real binary: a corrupt file stops start-up with a clear message,
//! and `kill -9` in the middle of writes leaves a database that opens and checks clean.

use crate::support::fixture;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin key the binary is started with.
const ADMIN_KEY: &str = "wg_StoreTestAdminKey0123456789abcdefghijklmn";

/// Starts `waygate serve` on an ephemeral port over `data` with the hostile fixture as
/// its only plugin; returns the process and its address once it listens.
fn start(data: &std::path::Path) -> (Child, String) {
    let plugins = data.join("plugins");
    let package = plugins.join("hostile");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::copy(fixture("hostile"), package.join("plugin.wasm")).unwrap();
    std::fs::write(
        package.join("plugin.toml"),
        "name = \"hostile\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(["serve", "--bind", "127.0.0.1:0", "--log", "info"])
        .env("WAYGATE_ADMIN_KEY", ADMIN_KEY)
        .arg("--plugins")
        .arg(&plugins)
        .arg("--data")
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start waygate");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("waygate exited before listening")
            .unwrap();
        if let Some(rest) = line.split("\"bind\":\"").nth(1)
            && line.contains("waygate listening")
        {
            break rest.split('"').next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[test]
fn a_corrupt_database_stops_start_up_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("waygate.db"), vec![0x5a; 8192]).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .arg("--data")
        .arg(data.path())
        .arg("--plugins")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open database"), "{stderr}");
    assert!(stderr.contains("waygate.db"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn kill_9_during_writes_leaves_a_sound_database() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(data.path());
    // Clients keep calling while the server is killed under them.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                for _ in 0..200 {
                    let Ok(mut stream) = std::net::TcpStream::connect(&addr) else {
                        return;
                    };
                    let body = r#"{"action":"hostile__ok","params":{}}"#;
                    let request = format!(
                        "POST /mcp/execute HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(request.as_bytes()).is_err() {
                        return;
                    }
                    let _ = stream.read_to_end(&mut Vec::new());
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for writer in writers {
        writer.join().unwrap();
    }
    let db = rusqlite::Connection::open(data.path().join("waygate.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: i64 = db
        .query_row("SELECT COUNT(*) FROM command_history", [], |r| r.get(0))
        .unwrap();
    assert!(rows > 0, "batches written before the kill survive");
    drop(db);
    // And the server starts again on it.
    let (mut again, _) = start(data.path());
    again.kill().unwrap();
    again.wait().unwrap();
}
