//! `waygate migrate nexus`, run as the real binary on the NEXUS configurations in
//! `tests/fixtures/nexus/`: what it writes loads with the server's own config loader and
//! manifest parser, a migrated directory serves its plugins, broken input writes nothing,
//! no NEXUS secret reaches the output, and DIR is only ever a new or empty directory.
//! `docs/migration.md` shows these commands.

use crate::support::{blocking_request, example_plugins_dir, spawn_waygate};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use waygate::config::{self, Overrides};
use waygate::registry::Manifest;

fn nexus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/nexus")
        .join(name)
}

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    pid: u32,
}

fn waygate(args: &[&OsStr], env: &[(&str, &str)]) -> Run {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run waygate");
    let pid = child.id();
    let output = child.wait_with_output().expect("waygate output");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        pid,
    }
}

/// `waygate migrate nexus --from FROM --out OUT EXTRA…`.
fn migrate(from: &Path, out: &Path, extra: &[&OsStr]) -> Run {
    let mut args: Vec<&OsStr> = ["migrate", "nexus", "--from"].map(OsStr::new).to_vec();
    args.extend([from.as_os_str(), OsStr::new("--out"), out.as_os_str()]);
    args.extend(extra);
    waygate(&args, &[])
}

fn succeeded(run: &Run) {
    assert_eq!(
        run.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every directory and file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths
}

/// Every file under `dir`, read as text where it is text.
fn all_text(dir: &Path) -> String {
    walk(dir)
        .iter()
        .filter(|p| p.is_file())
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect()
}

/// Only the owner may read what the migration wrote: plugin settings may hold tokens.
#[cfg(unix)]
fn assert_private(out: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for path in walk(out).iter().chain([&out.to_owned()]) {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{}: {mode:o}", path.display());
    }
}

/// The config the server would run with, loaded by its own loader from the file alone.
fn load_config(out: &Path) -> config::Config {
    let overrides = Overrides {
        config: Some(out.join("waygate.toml")),
        ..Overrides::default()
    };
    config::load(&overrides, |_| None).expect("the migrated config loads")
}

#[test]
fn a_small_nexus_config_becomes_a_directory_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("waygate");
    std::fs::create_dir(&out).unwrap();
    let run = migrate(&nexus("small.json"), &out, &[]);
    succeeded(&run);

    let config = load_config(&out);
    assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(config.log, "debug");
    assert_eq!(config.plugins_dir, out.join("plugins"));
    assert_eq!(config.data_dir, out.join("data"));
    let echo = Manifest::read(&out.join("plugins/echo")).unwrap();
    assert_eq!(
        (
            echo.name.as_str(),
            echo.version.as_str(),
            echo.component.as_str()
        ),
        ("echo", "1.0.0", "echo.wasm")
    );
    assert_eq!(echo.config_json(), serde_json::json!({"prefix": "> "}));
    assert_eq!(entries(&out), ["data", "plugins", "waygate.toml"]);
    assert_eq!(entries(&out.join("data")), Vec::<String>::new());
    assert_eq!(entries(dir.path()), ["waygate"], "nothing left beside it");
    #[cfg(unix)]
    assert_private(&out);

    for line in [
        "  waygate.toml\n",
        "  plugins/echo/plugin.toml\n",
        "host = \"127.0.0.1\", port = 8080 → server.bind = \"127.0.0.1:8080\"",
        "log_level = \"DEBUG\" → log.level = \"debug\"",
        "environment = <string, 11 chars>: Waygate has no environments",
        "component missing: build or copy echo.wasm into",
    ] {
        assert!(
            run.stdout.contains(line),
            "{line:?} missing from:\n{}",
            run.stdout
        );
    }
}

#[test]
fn unmappable_settings_are_reported_and_no_secret_is_written_or_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("waygate");
    let run = migrate(&nexus("unmappable.json"), &out, &[]);
    succeeded(&run);

    let config = load_config(&out);
    assert_eq!(config.log, "error", "CRITICAL has no level of its own");
    assert_eq!(config.allowed_origins, ["https://dashboard.example.com"]);
    assert_eq!(config.otlp, None, "a gRPC endpoint is not exported to");
    let search = Manifest::read(&out.join("plugins/legacy-search")).unwrap();
    assert_eq!(
        search.config_json(),
        serde_json::json!({
            "index_path": "/var/lib/nexus/index",
            "max_results": 50,
            "ranking": {"boost_title": 2.5}
        })
    );
    let limits = search
        .limits
        .apply(waygate::config::Limits::default().plugin);
    assert_eq!(limits, waygate::config::Limits::default().plugin);

    for (key, reason) in [
        ("environment = <string, 7 chars>", "no environments"),
        ("secret_key = <string, 25 chars>", "never copied"),
        ("cors.origins[0] = <string, 1 chars>", "no wildcard origin"),
        ("cors.origins[2] = <string, 15 chars>", "not an origin"),
        ("rate_limits.requests_per_minute = 0", "at least 1 request"),
        ("auth.enabled = false", "keeps API keys on"),
        (
            "auth.api_keys[0] = name \"nexus-key-1\", key [redacted]",
            "the least role, reader",
        ),
        (
            "tracing.otlp_endpoint = <string, 19 chars>",
            "OTLP over HTTP",
        ),
        ("feature_flags = <object, 2 keys>", "not a NEXUS setting"),
        ("smtp = <object, 3 keys>", "not a NEXUS setting"),
        ("plugins[0].module = <string, 20 chars>", "Python"),
        ("plugins[0].timeout = 900", "ceiling of 300000"),
        ("plugins[0].max_memory_mb = 2048", "maximum of 512"),
        ("plugins[0].settings.cache_ttl = null", "no TOML form"),
        (
            "plugins[0].settings.languages = <list, 2 items>",
            "no TOML form",
        ),
        ("plugins[0].settings.ranking.decay = null", "no TOML form"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("{key} not reported:\n{}", run.stdout));
        assert!(line.contains(reason), "{line}");
    }
    assert!(run.stdout.contains("Not mapped (16):"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "waygate keys create --config {}/waygate.toml --name nexus-key-1 --role reader\n"
                .replace("{}", &out.display().to_string())
                .as_str()
        )
    );
    let written = all_text(&out);
    for secret in [
        "nexus-signing-secret",
        "smtp-password-1234",
        "nx_test_9b1e4d7a2c5f8e3b",
    ] {
        assert!(!run.stdout.contains(secret), "{secret} printed");
        assert!(!run.stderr.contains(secret), "{secret} printed");
        assert!(!written.contains(secret), "{secret} written");
    }
}

/// Passwords in URLs, a bearer token and a plugin's token: the one written is the plugin
/// setting, into its plugin.toml; none is printed, by the real run or the dry run.
#[test]
fn secrets_are_printed_by_neither_run_and_written_only_as_plugin_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("waygate");
    let run = migrate(&nexus("secrets.json"), &out, &[]);
    succeeded(&run);
    let dry = migrate(
        &nexus("secrets.json"),
        &dir.path().join("planned"),
        &[OsStr::new("--dry-run")],
    );
    succeeded(&dry);
    let printed = [&run.stdout, &run.stderr, &dry.stdout, &dry.stderr];
    let config = std::fs::read_to_string(out.join("waygate.toml")).unwrap();
    let plugin = std::fs::read_to_string(out.join("plugins/echo/plugin.toml")).unwrap();
    for (secret, in_plugin) in [
        ("db-pass-5511", false),
        ("redis-pass-7734", false),
        ("otlp-pass-2288", false),
        ("otlp-token-9f41", false),
        ("echo-token-4c2e", true),
        ("upstream-pass-6607", true),
        ("store-pass-3390", true),
    ] {
        assert!(
            !printed.iter().any(|text| text.contains(secret)),
            "{secret} printed"
        );
        assert!(!config.contains(secret), "{secret} in waygate.toml");
        assert_eq!(plugin.contains(secret), in_plugin, "{secret}: {plugin}");
    }
    assert_eq!(load_config(&out).otlp, None, "an endpoint with credentials");
    for line in [
        "tracing.otlp_endpoint = <string, 53 chars>: credentials in the URL",
        "tracing.headers = <object, 1 keys>:",
        "api_token = \"[redacted]\"",
        "Password = \"[redacted]\"",
        "depth = 3",
        "upstream = \"https://api.internal/v1\"",
    ] {
        assert!(
            dry.stdout.contains(line),
            "{line} missing from {}",
            dry.stdout
        );
    }
    #[cfg(unix)]
    assert_private(&out);
}

#[test]
fn broken_nexus_configs_fail_with_a_clear_message_and_write_nothing() {
    for (fixture, message) in [
        ("missing.json", "cannot read"),
        ("invalid-json.json", "not valid JSON: expected"),
        (
            "wrong-type.json",
            "port: expected a port number, found <string, 6 chars>",
        ),
        (
            "duplicate-plugin.json",
            "plugins[0] and plugins[1] are both plugin \"text-analyzer\"",
        ),
        (
            "bad-name.json",
            "plugins[0] (\"Search Plugin!\") cannot become a Waygate plugin",
        ),
        ("port-out-of-range.json", "port: 80000 is out of range"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("waygate");
        let run = migrate(&nexus(fixture), &out, &[]);
        assert_eq!(run.code, Some(2), "{fixture}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{fixture}: {}", run.stderr);
        assert!(
            run.stderr.contains(fixture),
            "names the file: {}",
            run.stderr
        );
        assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
        assert_eq!(run.stdout, "", "{fixture}");
        assert_eq!(entries(dir.path()), Vec::<String>::new(), "{fixture}");
    }
}

#[test]
fn a_setting_the_plugins_schema_refuses_stops_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("waygate");
    let run = migrate(
        &nexus("schema-mismatch.json"),
        &out,
        &[
            OsStr::new("--plugins-from"),
            example_plugins_dir().as_os_str(),
        ],
    );
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("plugins[0] \"data_processor\" would not load in Waygate")
            && run.stderr.contains("[config]")
            && run.stderr.contains("max_input_bytes"),
        "{}",
        run.stderr
    );
    assert_eq!(
        entries(dir.path()),
        Vec::<String>::new(),
        "the staging directory is gone too"
    );
}

/// DIR must be new or an empty directory, for the dry run as for the real run: anything
/// else is refused and left as it was, and there is no flag to replace it.
#[cfg(unix)]
#[test]
fn a_non_empty_or_symlinked_out_is_refused_by_both_runs_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "mine").unwrap();
    for (out, message) in [
        (&full, "exists and is not empty"),
        (&file, "is not a directory"),
        (&link, "is a symbolic link"),
        (&dir.path().join("no/such"), "create the parent directory"),
    ] {
        for extra in [&[][..], &[OsStr::new("--dry-run")]] {
            let run = migrate(&nexus("small.json"), out, extra);
            assert_eq!(run.code, Some(2), "{}", run.stderr);
            assert!(run.stderr.contains(message), "{}", run.stderr);
            assert_eq!(run.stdout, "");
        }
    }
    let forced = migrate(&nexus("small.json"), &full, &[OsStr::new("--force")]);
    assert_eq!(forced.code, Some(2));
    assert!(forced.stderr.contains("--force"), "{}", forced.stderr);
    assert_eq!(entries(dir.path()), ["empty", "file", "full", "link"]);
    assert_eq!(entries(&full), ["notes.txt"]);
    assert_eq!(
        std::fs::read_to_string(full.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(entries(&empty).is_empty());
}

/// The path of the NEXUS file goes into a comment of waygate.toml; a line break in it
/// must not start TOML of its own.
#[test]
fn a_line_break_in_the_nexus_path_stays_inside_the_comment() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir
        .path()
        .join("nexus\n[server]\nbind = \"0.0.0.0:1\"\n.json");
    std::fs::copy(nexus("small.json"), &from).unwrap();
    let out = dir.path().join("waygate");
    succeeded(&migrate(&from, &out, &[]));
    assert_eq!(load_config(&out).bind.to_string(), "127.0.0.1:8080");
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("waygate");
    let plugins = example_plugins_dir();
    let run = migrate(
        &nexus("production.json"),
        &out,
        &[
            OsStr::new("--plugins-from"),
            plugins.as_os_str(),
            OsStr::new("--dry-run"),
        ],
    );
    succeeded(&run);
    let out_text = out.display().to_string();
    for expected in [
        format!("--- {out_text}/waygate.toml\n"),
        "bind = \"0.0.0.0:8000\"".to_owned(),
        format!("--- {out_text}/plugins/data-processor/plugin.toml\n"),
        "max_input_bytes = 4096".to_owned(),
        format!(
            "--- {out_text}/plugins/data-processor/data_processor.wasm (copy of {}",
            plugins.join("data-processor/data_processor.wasm").display()
        ),
        format!(
            "Dry run: nothing was written. Migrating {}",
            nexus("production.json").display()
        ),
        "Not mapped (14):".to_owned(),
    ] {
        assert!(
            run.stdout.contains(&expected),
            "{expected:?} missing from:\n{}",
            run.stdout
        );
    }
    assert!(!out.exists());
    assert_eq!(entries(dir.path()), Vec::<String>::new());
    let scratch_prefix = format!("waygate-migrate-{}-", run.pid);
    assert!(
        !entries(&std::env::temp_dir())
            .iter()
            .any(|name| name.starts_with(&scratch_prefix)),
        "the scratch directory is removed"
    );
}

/// The whole path of `docs/migration.md`: migrate with the built components, create the
/// keys the report lists, start the server on the directory, and use it.
#[test]
fn a_migrated_production_config_is_served_by_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("waygate");
    let run = migrate(
        &nexus("production.json"),
        &out,
        &[
            OsStr::new("--plugins-from"),
            example_plugins_dir().as_os_str(),
        ],
    );
    succeeded(&run);
    for expected in [
        "plugins[1] \"data_processor\" → plugins/data-processor (renamed",
        "plugins[2].max_memory_mb = 96 → plugins/text-analyzer [limits] memory_mib = 96",
        "auth.api_keys[0] = name \"claude-desktop\", key [redacted]",
        "plugins[5] = \"regex_tools\", \"enabled\": false: disabled in NEXUS",
        "database = <object, 1 keys>: NEXUS's database",
        "auth.api_keys[1].expires = <string, 20 chars>: Waygate gives a key a lifetime",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing from:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("component missing"), "{}", run.stdout);
    assert!(!out.join("plugins/regex-tools").exists());
    assert!(
        !all_text(&out).contains("nx_live_"),
        "a NEXUS key was written"
    );

    // The keys the report says to create, created with its commands as printed.
    let mut keys = std::collections::HashMap::new();
    for command in run
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("waygate keys create"))
    {
        let words: Vec<&OsStr> = command.split(' ').skip(1).map(OsStr::new).collect();
        let created = waygate(&words, &[]);
        succeeded(&created);
        let key = created
            .stdout
            .lines()
            .find(|l| l.starts_with("wg_"))
            .expect("the new key")
            .to_owned();
        let name = command
            .split("--name ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        keys.insert(name.to_owned(), key);
    }
    let (admin, caller) = (&keys["ops"], &keys["claude-desktop"]);

    let config = out.join("waygate.toml");
    let server = spawn_waygate(
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        // The fixture's 0.0.0.0:8000 may be taken on a test machine.
        &[("WAYGATE_BIND", "127.0.0.1:0")],
    );
    let loaded: Vec<Value> = server
        .log
        .lock()
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "plugin loaded")
        .collect();
    assert_eq!(loaded.len(), 5, "{loaded:?}");
    assert!(
        loaded.iter().all(|l| l["cache"] == "Hit"),
        "the migration's compiled components are reused: {loaded:?}"
    );

    let (status, body) =
        blocking_request(&server.addr, "GET", "/plugins", &[("x-api-key", admin)], "");
    assert_eq!(status, 200, "{body}");
    let plugins: Value = serde_json::from_str(&body).unwrap();
    let by_name = |name: &str| -> Value {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {plugins}"))
    };
    for name in ["echo", "data-processor", "text-analyzer", "notes", "fetch"] {
        assert_eq!(by_name(name)["status"], "active", "{plugins}");
    }
    assert_eq!(plugins["total"], 5, "{plugins}");
    let processor = by_name("data-processor");
    assert_eq!(processor["config"]["max_input_bytes"], 4096);
    assert_eq!(processor["limits"]["memory_mib"], 128);
    assert_eq!(by_name("text-analyzer")["limits"]["timeout_ms"], 5000);
    assert_eq!(
        by_name("fetch")["grants"]["http"]["allow"],
        serde_json::json!(["https://*"])
    );

    let call = |body: &str| {
        let (status, answer) = blocking_request(
            &server.addr,
            "POST",
            "/mcp/execute",
            &[("x-api-key", caller)],
            body,
        );
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str::<Value>(&answer).unwrap()
    };
    let echoed = call(r#"{"action":"echo__echo","params":{"message":"migrated"}}"#);
    assert_eq!(echoed["result"]["message"], "migrated", "{echoed}");
    let large = serde_json::json!({
        "action": "data-processor__process_data",
        "params": {"input": "a".repeat(5000), "format": "csv"},
    });
    let refused = call(&large.to_string());
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("limit of 4096 bytes"),
        "the NEXUS setting is the plugin's config: {refused}"
    );

    let doctor = waygate(
        &[
            OsStr::new("doctor"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[("WAYGATE_KEY", admin), ("WAYGATE_BIND", &server.addr)],
    );
    assert!(
        doctor.stdout.contains("verdict: healthy"),
        "{}",
        doctor.stdout
    );
    succeeded(&doctor);
}
