//! The operator artefacts: the alert rules pass `promtool check rules` and their own unit
//! tests (`promtool test rules`), and every query of the rules and of the Grafana dashboard
//! is valid PromQL naming only metrics the server exports.

use crate::support::{TestEnv, TestServer, fixture};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Whether `promtool` runs; skips the test without it, or fails it when `cargo xtask test`
/// said the tools were installed (`WAYGATE_INTEROP=required`).
fn promtool_present() -> bool {
    let present = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let message =
            "promtool is missing: `cargo xtask test` installs Debian's prometheus package";
        assert!(
            std::env::var("WAYGATE_INTEROP").as_deref() != Ok("required"),
            "{message}"
        );
        eprintln!("skipped: {message}");
    }
    present
}

fn promtool(args: &[&str], dir: &Path) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    if !promtool_present() {
        return;
    }
    let dir = configs().join("prometheus");
    promtool(&["check", "rules", "alerts.yml"], &dir);
    promtool(&["test", "rules", "alerts.test.yml"], &dir);
}

/// Every `expr` of the dashboard, with Grafana's variables replaced by values PromQL takes.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(configs().join("grafana/waygate.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| {
            target["expr"]
                .as_str()
                .expect("every target has an expr")
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
        })
        .collect()
}

#[test]
fn the_dashboard_queries_are_valid_promql() {
    if !promtool_present() {
        return;
    }
    // promtool parses expressions in rule files: one recording rule per query.
    let rules: String = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(i, expr)| format!("      - record: dashboard:query{i}\n        expr: {expr:?}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashboard.yml"),
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .unwrap();
    promtool(&["check", "rules", "dashboard.yml"], dir.path());
}

/// The `waygate_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("waygate_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_query_names_a_metric_the_server_exports() {
    let env = TestEnv::new();
    env.add("hostile", &fixture("hostile"), "");
    let server = TestServer::start(env).await;
    // A family shows in the exposition once it has a series: a request, a call, a reload.
    server
        .post("/mcp/execute", r#"{"action":"hostile__ok","params":{}}"#)
        .await;
    server.post("/plugins/reload", "{}").await;
    let scraped = server.send("GET", "/metrics", &[], None).await;
    // Each `# TYPE` line names a family; histograms export three series of it.
    let mut exported = BTreeSet::new();
    for line in scraped.body.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = declaration.split_once(' ').expect("a TYPE line");
        match kind {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                exported.insert(name.to_owned());
            }
        }
    }
    let alerts = std::fs::read_to_string(configs().join("prometheus/alerts.yml")).unwrap();
    let mut used = metric_names(&alerts);
    used.extend(dashboard_queries().iter().flat_map(|q| metric_names(q)));
    assert!(used.len() >= 10, "too few metrics used: {used:?}");
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}; exported: {exported:?}"
    );
}
