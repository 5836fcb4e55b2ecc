//! Signed plugins on the real binary: with signatures required, only components signed by a
//! trusted key load; unsigned, tampered and untrusted ones are refused with the reason, and
//! a tampered update leaves the previous version serving.

use crate::support::{ADMIN_KEY, blocking_request, example, spawn_binary};
use std::path::Path;
use std::process::Command;

fn waygate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(args)
        .output()
        .expect("run waygate")
}

/// Makes a key pair; returns the private key's path and the public key.
fn keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let out = waygate(&["plugins", "keygen", "--out", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(public.len(), 64);
    (path.to_str().unwrap().to_owned(), public)
}

fn package(plugins: &Path, name: &str) -> String {
    let dir = plugins.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(example(name), dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!("name = \"{name}\"\nversion = \"0.1.0\"\n"),
    )
    .unwrap();
    dir.to_str().unwrap().to_owned()
}

fn sign(dir: &str, key: &str) {
    let out = waygate(&["plugins", "sign", dir, "--key", key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn only_components_signed_by_a_trusted_key_load() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (trusted_key, trusted_public) = keygen(keys.path(), "trusted.key");
    let (stranger_key, _) = keygen(keys.path(), "stranger.key");
    let plugins = data.path().join("plugins");

    let echo = package(&plugins, "echo");
    sign(&echo, &trusted_key);
    package(&plugins, "text-analyzer"); // unsigned
    let notes = package(&plugins, "notes");
    sign(&notes, &stranger_key);
    let data_processor = package(&plugins, "data-processor");
    sign(&data_processor, &trusted_key);
    let mut wasm = std::fs::read(format!("{data_processor}/plugin.wasm")).unwrap();
    wasm.push(0);
    std::fs::write(format!("{data_processor}/plugin.wasm"), wasm).unwrap(); // tampered

    let verified = waygate(&["plugins", "verify", &echo, "--trusted-key", &trusted_public]);
    assert!(verified.status.success());
    let refused = waygate(&[
        "plugins",
        "verify",
        &data_processor,
        "--trusted-key",
        &trusted_public,
    ]);
    assert!(!refused.status.success());

    let server = spawn_binary(
        data.path(),
        &[
            ("WAYGATE_REQUIRE_SIGNATURES", "on"),
            ("WAYGATE_TRUSTED_KEYS", &trusted_public),
        ],
    );
    let admin = [("x-api-key", ADMIN_KEY)];
    let (_, plugins_json) = blocking_request(&server.addr, "GET", "/plugins", &admin, "");
    let listed: serde_json::Value = serde_json::from_str(&plugins_json).unwrap();
    let status = |name: &str| {
        listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| {
                (
                    p["status"].as_str().unwrap().to_owned(),
                    p["error"].as_str().unwrap_or("").to_owned(),
                )
            })
            .unwrap()
    };
    assert_eq!(status("echo").0, "active");
    let (state, reason) = status("text-analyzer");
    assert_eq!(state, "failed");
    assert!(reason.contains("unsigned"), "{reason}");
    for name in ["notes", "data-processor"] {
        let (state, reason) = status(name);
        assert_eq!(state, "failed", "{name}");
        assert!(reason.contains("does not verify"), "{name}: {reason}");
    }
    // The hostile fixture the test binary always gets is unsigned too.
    assert_eq!(status("hostile").0, "failed");

    // A tampered update: refused, and the signed version keeps serving.
    let mut wasm = std::fs::read(format!("{echo}/plugin.wasm")).unwrap();
    wasm.push(0);
    std::fs::write(format!("{echo}/plugin.wasm"), wasm).unwrap();
    let (status_code, body) =
        blocking_request(&server.addr, "POST", "/plugins/echo/reload", &admin, "");
    assert_eq!(status_code, 200, "{body}");
    assert!(
        body.contains("does not verify") && body.contains(r#""serving_version":"0.1.0""#),
        "{body}"
    );
    let (status_code, _) = blocking_request(
        &server.addr,
        "POST",
        "/mcp/execute",
        &admin,
        r#"{"action":"echo__echo","params":{"message":"signed"}}"#,
    );
    assert_eq!(status_code, 200);
}
