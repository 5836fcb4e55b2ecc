//! `cargo xtask`: the one way to build plugins and to run or test Waygate.
//!
//! - `cargo xtask plugins`: builds every example plugin and test fixture (Rust crates for
//!   `wasm32-wasip2`, the JavaScript plugin with its local npm toolchain) and packages them
//!   into `target/plugins/<name>/` and `target/test-plugins/`.
//! - `cargo xtask run [-- serve flags]`: builds the plugins and runs the server in release mode.
//! - `cargo xtask test`: builds the plugins once, sets up the interop clients, `promtool`
//!   (Debian's `prometheus` package, with apt-get) and `kubernetes-validate` (a venv in
//!   `target/deploy/venv`), then runs every test of both workspaces.
//! - `cargo xtask interop`: sets up the interop clients only: the official MCP SDKs for
//!   Python (a venv in `target/interop/venv`) and TypeScript (`tests/interop/node`), and
//!   MCP Inspector (`tests/interop/inspector`).
//! - `cargo xtask sign KEY_FILE`: builds the plugins and signs every packaged one with the
//!   Ed25519 key `waygate plugins keygen` wrote (a development key, say).
//! - `cargo xtask bench [runtime|load]`: builds the plugins (and, for `load`, the release
//!   server), then runs the benchmarks in release mode: `runtime` (the per-call sandbox
//!   cost), `load` (the server under concurrent load beside two baselines); both by default.
//!
//! Installs what is missing (the `wasm32-wasip2` target, npm packages into each package's own
//! `node_modules`, PyPI packages into a venv under `target/`), so a fresh machine with the
//! Rust toolchain, Python 3 and Node is enough.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "plugins" => build_plugins().map(|_| ()),
        "run" => build_plugins().and_then(|plugins| run_server(&plugins, rest)),
        "test" => build_plugins()
            .and_then(|_| setup_interop())
            .and_then(|()| ensure_promtool())
            .and_then(|()| ensure_kubernetes_validate())
            .and_then(|()| run_tests(rest)),
        "interop" => setup_interop(),
        "sign" => match rest {
            [key] => build_plugins().and_then(|plugins| sign_plugins(&plugins, key)),
            _ => Err("usage: cargo xtask sign KEY_FILE (from `waygate plugins keygen`)".to_owned()),
        },
        "bench" => build_plugins().and_then(|_| run_benches(rest)),
        "tidy" => tidy::check(&root()).map_err(|problems| problems.join("\n")),
        _ => {
            eprintln!("usage: cargo xtask <plugins|run|test|interop|sign|bench|tidy> [args]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root, found from this crate's manifest directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET)
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Builds every plugin and fixture; returns the packaged plugins directory.
fn build_plugins() -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    let root = root();
    let target = target_dir();
    let wasm_target_dir = target.join("wasm");
    run(cargo()
        .current_dir(root.join("example-plugins"))
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&wasm_target_dir))?;
    let wasm_out = wasm_target_dir.join(WASM_TARGET).join("release");

    let plugins_out = target.join("plugins");
    for package in subdirectories(&root.join("example-plugins"))? {
        let manifest = package.join("plugin.toml");
        if !manifest.is_file() {
            continue;
        }
        let component = component_file(&manifest)?;
        let built = if package.join("package.json").is_file() {
            build_javascript(&package)?;
            package.join("dist").join(&component)
        } else {
            wasm_out.join(&component)
        };
        let name = package
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let destination = plugins_out.join(&name);
        std::fs::create_dir_all(&destination)
            .map_err(|e| format!("cannot create {}: {e}", destination.display()))?;
        copy(&manifest, &destination.join("plugin.toml"))?;
        copy(&built, &destination.join(&component))?;
    }

    let fixtures_out = target.join("test-plugins");
    std::fs::create_dir_all(&fixtures_out)
        .map_err(|e| format!("cannot create {}: {e}", fixtures_out.display()))?;
    for fixture in subdirectories(&root.join("tests").join("fixtures"))? {
        if fixture.join("Cargo.toml").is_file() {
            let name = fixture
                .file_name()
                .map(|n| n.to_string_lossy().replace('-', "_"))
                .unwrap_or_default();
            copy(
                &wasm_out.join(format!("{name}.wasm")),
                &fixtures_out.join(format!("{name}.wasm")),
            )?;
        }
    }
    eprintln!(
        "xtask: plugins in {}, fixtures in {}",
        plugins_out.display(),
        fixtures_out.display()
    );
    Ok(plugins_out)
}

/// `npm ci` into the plugin's own `node_modules` when missing, then its `build` script.
fn build_javascript(package: &Path) -> Result<(), String> {
    if !package.join("node_modules").is_dir() {
        run(Command::new("npm")
            .current_dir(package)
            .args(["ci", "--no-audit", "--no-fund"]))?;
    }
    run(Command::new("npm")
        .current_dir(package)
        .args(["run", "build", "--silent"]))
}

/// The `component` key of a manifest (default `plugin.wasm`), read without a TOML parser
/// to keep this crate dependency-free: the manifests are ours and keep it on one line.
fn component_file(manifest: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    Ok(text
        .lines()
        .find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("component")?
                .trim_start()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "plugin.wasm".to_owned()))
}

fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Runs the server on the plugins just built, unless the arguments name other plugins.
fn run_server(plugins: &Path, args: &[String]) -> Result<(), String> {
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let mut command = cargo();
    command
        .current_dir(root())
        .args(["run", "--release", "-p", "waygate", "--", "serve"]);
    let plugins_given = args
        .iter()
        .any(|a| a == "--plugins" || a.starts_with("--plugins="))
        || std::env::var_os("WAYGATE_PLUGINS").is_some();
    if !plugins_given {
        command.arg("--plugins").arg(plugins);
    }
    run(command.args(args))
}

/// Signs every package under `plugins` with `key`, through `waygate plugins sign`.
fn sign_plugins(plugins: &Path, key: &str) -> Result<(), String> {
    for package in subdirectories(plugins)? {
        run(cargo()
            .current_dir(root())
            .args(["run", "--quiet", "-p", "waygate", "--", "plugins", "sign"])
            .arg(&package)
            .args(["--key", key]))?;
    }
    Ok(())
}

/// A Python venv at `venv` holding `requirements` (pip's format), made again from scratch
/// when they change: the venv keeps them as `requirements.txt` once pip has succeeded.
fn python_venv(venv: &Path, requirements: &str) -> Result<(), String> {
    let stamp = venv.join("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements) {
        return Ok(());
    }
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .map_err(|e| format!("cannot remove {}: {e}", venv.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    let wanted = venv.join("requirements.wanted.txt");
    std::fs::write(&wanted, requirements)
        .map_err(|e| format!("cannot write {}: {e}", wanted.display()))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&wanted))?;
    std::fs::rename(&wanted, &stamp).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            wanted.display(),
            stamp.display()
        )
    })
}

/// The interop clients: the pinned PyPI packages of `tests/interop/requirements.txt` in a
/// venv, and the pinned npm packages.
fn setup_interop() -> Result<(), String> {
    let root = root();
    let requirements = root.join("tests/interop/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    python_venv(&target_dir().join("interop/venv"), &wanted)?;
    // The SDK clients, and MCP Inspector with the Node 22 it needs.
    for folder in ["tests/interop/node", "tests/interop/inspector"] {
        let folder = root.join(folder);
        if !folder.join("node_modules").is_dir() {
            run(Command::new("npm")
                .current_dir(&folder)
                .args(["ci", "--no-audit", "--no-fund"]))?;
        }
    }
    Ok(())
}

/// `promtool`, which checks and unit-tests the alert rules (`tests/all/operations.rs`), from
/// Debian's `prometheus` package when it is missing. Needs root (CI runs as root); the
/// package lists are refreshed only if the first attempt fails.
fn ensure_promtool() -> Result<(), String> {
    let present = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let install = || {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends", "prometheus"]))
    };
    install().or_else(|_| {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        install()
    })
}

/// `kubernetes-validate`, which checks `deploy/kubernetes/` against the Kubernetes JSON
/// schemas (`tests/all/deploy.rs`). The schemas ship inside the package, so the check
/// itself needs no network.
fn ensure_kubernetes_validate() -> Result<(), String> {
    python_venv(
        &target_dir().join("deploy/venv"),
        "kubernetes-validate==1.37.0\n",
    )
}

fn run_tests(args: &[String]) -> Result<(), String> {
    let root = root();
    // The example plugins' own unit tests run on the host target.
    run(cargo()
        .current_dir(root.join("example-plugins"))
        .args(["test", "--target-dir"])
        .arg(target_dir().join("wasm-host-tests"))
        .args(["--workspace", "--exclude", "hostile"]))?;
    // The interop tests skip themselves when their clients are missing, unless told that
    // the clients were set up, as here.
    run(cargo()
        .current_dir(&root)
        .env("WAYGATE_INTEROP", "required")
        .args(["test", "--workspace"])
        .args(args))
}

fn run_benches(args: &[String]) -> Result<(), String> {
    let (benches, rest): (Vec<&str>, &[String]) = match args.split_first() {
        Some((which, rest)) if which == "runtime" || which == "load" => {
            (vec![which.as_str()], rest)
        }
        _ => (vec!["runtime", "load"], args),
    };
    for bench in benches {
        if bench == "load" {
            // The load benchmark drives the real binary as a separate process.
            run(cargo().current_dir(root()).args([
                "build",
                "--release",
                "-p",
                "waygate",
                "--bin",
                "waygate",
            ]))?;
        }
        run(cargo()
            .current_dir(root())
            .args(["bench", "-p", "waygate", "--bench", bench])
            .args(rest))?;
    }
    Ok(())
}
