//! The deployment artefacts: `deploy/kubernetes/` passes the Kubernetes JSON schemas and
//! agrees with the server (its config loader, variables, routes and drain deadline);
//! `deploy/systemd/waygate.service` passes `systemd-analyze verify` and `security` and
//! sandboxes the server; the `Dockerfile`'s image runs it unprivileged with a health check.

use crate::support::target_dir;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use waygate::config::{self, AuthMode, Config, LogFormat, Overrides};

/// Kubernetes releases the manifests are checked against: an older one still widely run,
/// and the newest the pinned kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `WAYGATE_*` variable the server's sources read: the config module, and `main.rs`
/// (the CLI's `WAYGATE_KEY`).
fn server_variables() -> BTreeSet<String> {
    let config_dir = repo().join("host/src/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&config_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.push(repo().join("host/src/main.rs"));
    let mut names = BTreeSet::new();
    for file in files {
        let text = read(&file);
        for (start, _) in text.match_indices("\"WAYGATE_") {
            let tail = &text[start + 1..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            if tail[end..].starts_with('"') {
                names.insert(tail[..end].to_owned());
            }
        }
    }
    assert!(names.contains("WAYGATE_BIND"), "the scan found {names:?}");
    names
}

fn assert_server_reads(names: &[&str], artefact: &str) {
    let known = server_variables();
    let unknown: Vec<&&str> = names
        .iter()
        .filter(|name| !known.contains(**name))
        .collect();
    assert!(
        unknown.is_empty(),
        "{artefact} sets variables the server never reads: {unknown:?}"
    );
}

/// The configuration the server would run with, given these variables and config file.
fn load_config(file: &Path, env: &BTreeMap<String, String>) -> Config {
    let overrides = Overrides {
        config: Some(file.to_owned()),
        ..Overrides::default()
    };
    config::load(&overrides, |key| env.get(key).cloned())
        .unwrap_or_else(|e| panic!("the server refuses this configuration: {e}"))
}

fn is_route(path: &str) -> bool {
    waygate::http::ROUTES
        .iter()
        .any(|(route, methods)| *route == path && methods.contains(&hyper::Method::GET))
}

// Kubernetes.

fn kubernetes_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&read(path))
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// The files `kustomization.yaml` lists.
fn manifest_files() -> Vec<PathBuf> {
    let kustomization = yaml_documents(&kubernetes_dir().join("kustomization.yaml"));
    kustomization[0]["resources"]
        .as_array()
        .expect("the kustomization lists resources")
        .iter()
        .map(|name| kubernetes_dir().join(name.as_str().unwrap()))
        .collect()
}

/// Every resource of the kustomization, by kind: there is one of each.
fn resources() -> BTreeMap<String, Value> {
    let mut by_kind = BTreeMap::new();
    for file in manifest_files() {
        for resource in yaml_documents(&file) {
            let kind = text(&resource["kind"], "a resource's kind").to_owned();
            assert!(
                by_kind.insert(kind.clone(), resource).is_none(),
                "two resources of kind {kind}"
            );
        }
    }
    by_kind
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn container(resources: &BTreeMap<String, Value>) -> &Value {
    resources["Deployment"]["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "waygate")
        .expect("a container named waygate")
}

/// The volume mounted deepest above `path`, with its mount.
fn volume_at<'a>(resources: &'a BTreeMap<String, Value>, path: &Path) -> (&'a Value, &'a Value) {
    let mount = container(resources)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| path.starts_with(text(&m["mountPath"], "mountPath")))
        .max_by_key(|m| text(&m["mountPath"], "mountPath").len())
        .unwrap_or_else(|| panic!("nothing is mounted at {}", path.display()));
    let volume = resources["Deployment"]["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    (mount, volume)
}

fn writable_scratch(resources: &BTreeMap<String, Value>, path: &Path) {
    let (mount, volume) = volume_at(resources, path);
    assert!(
        volume["emptyDir"].is_object() && mount["readOnly"] != true,
        "{} must be on a writable emptyDir (the root filesystem is read-only): {volume}",
        path.display()
    );
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let listed: BTreeSet<PathBuf> = manifest_files().into_iter().collect();
    let present: BTreeSet<PathBuf> = std::fs::read_dir(kubernetes_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    assert_eq!(listed, present);
    let kinds: BTreeSet<String> = resources().into_keys().collect();
    let wanted = [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ];
    assert_eq!(kinds, wanted.iter().map(|k| (*k).to_owned()).collect());
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let tool = target_dir().join("deploy/venv/bin/kubernetes-validate");
    assert!(
        tool.is_file(),
        "{} is missing: run `cargo xtask test`, which installs it",
        tool.display()
    );
    for version in KUBERNETES_VERSIONS {
        let output = Command::new(&tool)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .args(manifest_files())
            .output()
            .expect("kubernetes-validate runs");
        // A kind it has no schema for (a misspelt apiVersion) is only a warning, exit 0.
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && report.trim().is_empty(),
            "against Kubernetes {version}:\n{report}"
        );
    }
}

#[test]
fn the_deployment_configures_the_server_as_its_loader_reads_it() {
    let resources = resources();
    let container = container(&resources);
    let secret = &resources["Secret"];
    let mut env = BTreeMap::new();
    for variable in container["env"].as_array().unwrap() {
        let name = text(&variable["name"], "env name").to_owned();
        let value = match &variable["valueFrom"]["secretKeyRef"] {
            Value::Null => text(&variable["value"], &name).to_owned(),
            reference => {
                assert_eq!(reference["name"], secret["metadata"]["name"], "{name}");
                let key = text(&reference["key"], "secret key");
                match &secret["stringData"][key] {
                    Value::String(value) => value.clone(),
                    _ => {
                        assert_eq!(
                            reference["optional"], true,
                            "{name}: no {key} in the Secret"
                        );
                        continue;
                    }
                }
            }
        };
        env.insert(name, value);
    }
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_server_reads(&names, "the Deployment");

    // The config file is the ConfigMap's, where the Deployment mounts it.
    let config_path = PathBuf::from(&env["WAYGATE_CONFIG"]);
    let (mount, volume) = volume_at(&resources, &config_path);
    let config_map = &resources["ConfigMap"];
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    let key = config_path
        .strip_prefix(text(&mount["mountPath"], "mountPath"))
        .unwrap();
    let toml = text(
        &config_map["data"][key.to_str().unwrap()],
        "the config file",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("waygate.toml");
    std::fs::write(&file, toml).unwrap();
    env.insert("WAYGATE_CONFIG".to_owned(), file.display().to_string());
    let config = load_config(&file, &env);

    let http = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert!(config.bind.ip().is_unspecified(), "{}", config.bind);
    assert_eq!(
        Some(u64::from(config.bind.port())),
        http["containerPort"].as_u64()
    );
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.auth, AuthMode::ApiKey);
    assert!(
        config.admin_key.is_some(),
        "every replica needs the same admin key"
    );

    let (mount, volume) = volume_at(&resources, &config.plugins_dir);
    let claim = &resources["PersistentVolumeClaim"];
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );
    assert_eq!(
        mount["readOnly"], true,
        "the server must not change its plugins"
    );
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"]),
        "something must be able to write the packages; the pods' mount is read-only"
    );
    writable_scratch(&resources, &config.data_dir);
    writable_scratch(&resources, &config.cache_dir);
    writable_scratch(&resources, Path::new("/tmp"));

    // After SIGTERM the server stays in the Service until the readiness probe has failed
    // (or new connections would be refused), then drains; the kubelet's SIGKILL comes after
    // terminationGracePeriodSeconds.
    let readiness = &container["readinessProbe"];
    let unready_ms = readiness["periodSeconds"].as_u64().unwrap()
        * readiness["failureThreshold"].as_u64().unwrap()
        * 1000;
    let limits = &config.limits;
    assert!(
        limits.shutdown_delay_ms > unready_ms,
        "limits.shutdown_delay_ms ({} ms) must cover the readiness probe ({unready_ms} ms)",
        limits.shutdown_delay_ms
    );
    // Every instance full at once, plus the server's own peak under load (BENCHMARKS.md:
    // about 220 MiB), fits the container's memory limit: no OOM kill ends every call.
    let memory_limit = text(&container["resources"]["limits"]["memory"], "memory limit");
    let limit_mib: u64 = memory_limit
        .strip_suffix("Mi")
        .and_then(|mib| mib.parse().ok())
        .unwrap_or_else(|| panic!("memory limit {memory_limit} is not in Mi"));
    let instances_mib = u64::from(limits.instance_pool) * limits.plugin.memory_mib;
    assert!(
        instances_mib + 220 <= limit_mib,
        "instance_pool x memory_mib = {instances_mib} MiB does not fit {limit_mib} MiB with the server"
    );
    let pod = &resources["Deployment"]["spec"]["template"]["spec"];
    let grace_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    assert!(
        grace_ms > limits.shutdown_delay_ms + limits.shutdown_grace_ms,
        "terminationGracePeriodSeconds ({grace_ms} ms) must exceed limits.shutdown_delay_ms \
         plus limits.shutdown_grace_ms ({limits:?})"
    );
}

#[test]
fn the_deployment_runs_unprivileged_on_a_read_only_root() {
    let resources = resources();
    let pod = &resources["Deployment"]["spec"]["template"]["spec"]["securityContext"];
    let container = container(&resources);
    let own = &container["securityContext"];
    for context in [pod, own] {
        assert_eq!(context["runAsNonRoot"], true);
        assert_eq!(context["runAsUser"], 10001);
        assert_eq!(context["runAsGroup"], 10001);
        assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
    }
    assert_eq!(own["readOnlyRootFilesystem"], true);
    assert_eq!(own["allowPrivilegeEscalation"], false);
    assert_eq!(own["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(own["capabilities"]["add"].is_null());
    let (requests, limits) = (
        &container["resources"]["requests"],
        &container["resources"]["limits"],
    );
    assert_eq!(
        (&requests["cpu"], &requests["memory"]),
        (&"250m".into(), &"256Mi".into())
    );
    assert_eq!(
        (&limits["cpu"], &limits["memory"]),
        (&"500m".into(), &"512Mi".into())
    );
    assert_eq!(
        container["command"],
        serde_json::json!(["waygate", "serve"])
    );
}

#[test]
fn the_probes_service_autoscaler_and_budget_point_at_the_server() {
    let resources = resources();
    let deployment = &resources["Deployment"];
    let container = container(&resources);
    let port = &container["ports"][0];
    let by_name_or_number =
        |target: &Value| *target == port["name"] || *target == port["containerPort"];
    for (probe, path) in [
        ("livenessProbe", "/"),
        ("readinessProbe", "/ready"),
        ("startupProbe", "/ready"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(is_route(path));
        assert!(
            by_name_or_number(&get["port"]),
            "{probe} port {}",
            get["port"]
        );
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"],
        port["containerPort"].to_string()
    );
    assert!(is_route(text(
        &annotations["prometheus.io/path"],
        "metrics path"
    )));

    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let selects_the_pods = |selector: &Value, what: &str| {
        let selector = selector.as_object().expect(what);
        assert!(!selector.is_empty(), "{what} selects every pod");
        for (key, value) in selector {
            assert_eq!(pod_labels.get(key), Some(value), "{what}: {key}");
        }
    };
    selects_the_pods(&deployment["spec"]["selector"]["matchLabels"], "Deployment");
    let service = &resources["Service"]["spec"];
    selects_the_pods(&service["selector"], "Service");
    assert_eq!(service["type"], "ClusterIP");
    assert_eq!(service["ports"][0]["port"], 80);
    assert_eq!(service["ports"][0]["name"], "http");
    assert_eq!(service["ports"][0]["targetPort"], port["name"]);
    let budget = &resources["PodDisruptionBudget"]["spec"];
    selects_the_pods(&budget["selector"]["matchLabels"], "PodDisruptionBudget");

    let autoscaler = &resources["HorizontalPodAutoscaler"]["spec"];
    assert_eq!(autoscaler["scaleTargetRef"]["kind"], deployment["kind"]);
    assert_eq!(
        autoscaler["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "the autoscaler owns the replica count; `replicas` would reset it on every apply"
    );
    assert_eq!(autoscaler["minReplicas"], 3);
    assert_eq!(autoscaler["maxReplicas"], 10);
    let cpu = &autoscaler["metrics"][0]["resource"];
    assert_eq!(cpu["name"], "cpu");
    assert_eq!(cpu["target"]["averageUtilization"], 70);
    let min_available = budget["minAvailable"].as_u64().unwrap();
    assert_eq!(min_available, 2);
    assert!(
        min_available < autoscaler["minReplicas"].as_u64().unwrap(),
        "a node drain could never evict a pod"
    );
}

#[test]
fn the_secret_placeholders_cannot_start_a_server() {
    let resources = resources();
    let placeholder = text(
        &resources["Secret"]["stringData"]["admin-key"],
        "the admin key",
    );
    // Forgotten, it makes start-up fail rather than become a known admin key.
    assert!(waygate::auth::keys::check_format(placeholder).is_err());
    assert!(placeholder.contains("REPLACE"));
}

// systemd.

fn unit_path() -> PathBuf {
    repo().join("deploy/systemd/waygate.service")
}

/// The unit's `Key=value` lines, in order.
fn unit_directives() -> Vec<(String, String)> {
    read(&unit_path())
        .lines()
        .map(str::trim)
        .filter(|line| !(line.is_empty() || line.starts_with('#') || line.starts_with('[')))
        .map(|line| {
            let (key, value) = line.split_once('=').expect("Key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn directive(directives: &[(String, String)], key: &str) -> String {
    let values: Vec<&String> = directives
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key}= must appear once");
    values[0].clone()
}

/// `systemd-analyze`, or `None` (the test is skipped) where it is not installed.
fn systemd_analyze() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/systemd-analyze");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipped: systemd-analyze is not installed");
        None
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    // `verify` checks that the commands exist: point them at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("waygate.service");
    let text = read(&unit_path()).replace("/usr/local/bin/waygate", env!("CARGO_BIN_EXE_waygate"));
    std::fs::write(&unit, text).unwrap();

    let verify = Command::new(&analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let report = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    // Most problems (an unknown or misspelt directive, a value that does not parse) are
    // warnings with exit status 0; they all name the unit. Anything else is the host's.
    let about_the_unit: Vec<&str> = report
        .lines()
        .filter(|line| line.contains("waygate.service"))
        .collect();
    assert!(
        verify.status.success() && about_the_unit.is_empty(),
        "systemd-analyze verify:\n{report}"
    );
    if !report.trim().is_empty() {
        eprintln!("systemd-analyze verify, about the host:\n{report}");
    }

    // The exposure score, in tenths: 2.0 is well inside "OK".
    let security = Command::new(&analyze)
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let report = String::from_utf8_lossy(&security.stdout);
    let overall = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_default();
    eprintln!("systemd-analyze security: {overall}");
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
}

#[test]
fn the_systemd_unit_sandboxes_the_server_and_outlasts_its_drain() {
    let directives = unit_directives();
    for (key, value) in [
        ("Type", "exec"),
        ("User", "waygate"),
        ("Group", "waygate"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
        ("StateDirectory", "waygate"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "true"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "true"),
        ("PrivateTmp", "true"),
        ("PrivateDevices", "true"),
        ("ProtectKernelTunables", "true"),
        ("ProtectKernelModules", "true"),
        ("ProtectKernelLogs", "true"),
        ("ProtectControlGroups", "true"),
        ("ProtectClock", "true"),
        ("ProtectHostname", "true"),
        ("RestrictNamespaces", "true"),
        ("RestrictRealtime", "true"),
        ("RestrictSUIDSGID", "true"),
        ("LockPersonality", "true"),
        // wasmtime makes the code it compiles executable: with `true` no plugin loads.
        ("MemoryDenyWriteExecute", "false"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("EnvironmentFile", "-/etc/waygate/waygate.env"),
    ] {
        assert_eq!(directive(&directives, key), value, "{key}");
    }
    assert_eq!(
        directive(&directives, "ExecStart"),
        "/usr/local/bin/waygate serve --config /etc/waygate/waygate.toml"
    );
    assert_eq!(
        directive(&directives, "ExecReload"),
        "/bin/kill -HUP $MAINPID"
    );

    // The server as the unit starts it, with the repository's config file in /etc/waygate.
    let env: BTreeMap<String, String> = directives
        .iter()
        .filter(|(key, _)| key == "Environment")
        .map(|(_, assignment)| {
            let (name, value) = assignment.split_once('=').expect("NAME=value");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_server_reads(&names, "the systemd unit");
    let config = load_config(&repo().join("configs/waygate.toml"), &env);
    let state = Path::new("/var/lib").join(directive(&directives, "StateDirectory"));
    assert_eq!(config.data_dir, state);
    assert!(
        config.cache_dir.starts_with(&state),
        "{:?}",
        config.cache_dir
    );
    assert_eq!(
        config.plugins_dir,
        PathBuf::from(directive(&directives, "ReadOnlyPaths"))
    );

    let stop = humantime::parse_duration(&directive(&directives, "TimeoutStopSec")).unwrap();
    let limits = &config.limits;
    assert!(
        stop > Duration::from_millis(limits.shutdown_delay_ms + limits.shutdown_grace_ms),
        "TimeoutStopSec ({stop:?}) must exceed the shutdown delay and drain ({limits:?})"
    );
    let files: u32 = directive(&directives, "LimitNOFILE").parse().unwrap();
    assert!(
        files > 2 * config.limits.max_connections,
        "LimitNOFILE={files}"
    );
}

// The container image.

/// The `Dockerfile`'s instructions from its last `FROM` on, continuation lines joined.
fn final_stage() -> Vec<(String, String)> {
    let text = read(&repo().join("Dockerfile"));
    let mut instructions: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (pending.is_empty() && line.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let (keyword, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
        instructions.push((keyword.to_uppercase(), rest.trim().to_owned()));
        pending.clear();
    }
    let last_from = instructions
        .iter()
        .rposition(|(keyword, _)| keyword == "FROM")
        .expect("a FROM");
    instructions.split_off(last_from)
}

#[test]
fn the_image_runs_the_server_unprivileged_with_a_health_check() {
    let stage = final_stage();
    let all = |keyword: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.clone())
            .collect()
    };
    let user = all("USER").pop().expect("a USER in the final stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid >= 1000),
        "USER {user}"
    );
    // The Deployment's runAsUser is this same user.
    let deployment = &resources()["Deployment"];
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"].to_string(),
        uid
    );

    let health = all("HEALTHCHECK").pop().expect("a HEALTHCHECK");
    assert!(health.contains(r#"CMD ["waygate", "doctor""#), "{health}");
    let doctor = Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(["doctor", "--help"])
        .output()
        .unwrap();
    assert!(doctor.status.success());

    let copied: BTreeSet<String> = all("COPY")
        .iter()
        .map(|copy| copy.rsplit(' ').next().unwrap().to_owned())
        .collect();
    let wanted = [
        "/usr/local/bin/waygate",
        "/plugins",
        "/etc/waygate/waygate.toml",
    ];
    assert_eq!(copied, wanted.iter().map(|p| (*p).to_owned()).collect());

    let mut env = BTreeMap::new();
    for line in all("ENV") {
        for assignment in line.split_whitespace() {
            let (name, value) = assignment.split_once('=').expect("ENV NAME=value");
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_server_reads(&names, "the Dockerfile");
    assert_eq!(env["WAYGATE_CONFIG"], "/etc/waygate/waygate.toml");
    let config = load_config(&repo().join("configs/waygate.toml"), &env);
    assert_eq!(all("EXPOSE"), [config.bind.port().to_string()]);
    assert!(config.bind.ip().is_unspecified(), "{}", config.bind);
    assert_eq!(config.plugins_dir, Path::new("/plugins"));
    let volume = PathBuf::from(all("VOLUME").pop().expect("a VOLUME"));
    assert_eq!(config.data_dir, volume);
    assert!(
        config.cache_dir.starts_with(&volume),
        "{:?}",
        config.cache_dir
    );
}
