//! The database under the real binary: a corrupt file stops start-up with a clear message,
//! and `kill -9` in the middle of writes leaves a database that opens and checks clean.

use crate::support::{ADMIN_KEY, spawn_binary};
use std::process::Command;
use std::time::Duration;

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
    // A write flood: the rate limits would turn most of it away.
    let mut server = spawn_binary(data.path(), &[("WAYGATE_RATE_LIMITS", "off")]);
    let addr = server.addr.clone();
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
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
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
    drop(spawn_binary(data.path(), &[]));
}
