//! `cargo xtask`: the one way to build plugins and to run or test Waygate.
//!
//! - `cargo xtask plugins`: builds every example plugin and test fixture (Rust crates for
//!   `wasm32-wasip2`, the JavaScript plugin with its local npm toolchain) and packages them
//!   into `target/plugins/<name>/` and `target/test-plugins/`.
//! - `cargo xtask run [-- serve flags]`: builds the plugins and runs the server in release mode.
//! - `cargo xtask test`: builds the plugins once, sets up the interop clients, `promtool`
//!   (Debian's `prometheus` package, with apt-get), `kubernetes-validate` (a venv in
//!   `target/deploy/venv`) and PostgreSQL (Debian's `postgresql` package), starts a private
//!   throwaway PostgreSQL cluster on 127.0.0.1 (`WAYGATE_TEST_POSTGRES_URL` tells the tests
//!   where), then runs every test of both workspaces and stops and removes the cluster.
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
use std::time::Instant;

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
            .and_then(|()| ensure_postgres())
            .and_then(|bin| {
                // Stopped and removed when dropped: after the tests, pass or fail.
                let postgres = TestPostgres::start(&bin)?;
                run_tests(rest, &[("WAYGATE_TEST_POSTGRES_URL", postgres.url())])
            }),
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

/// The directory of a PostgreSQL server's binaries where Debian's packages put them,
/// `/usr/lib/postgresql/<major>/bin`: the newest major version whose `postgres` is there.
fn postgres_bin_dir() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

/// A PostgreSQL server for the store's PostgreSQL tests, from Debian's `postgresql` package
/// when none is installed (root, apt-get, lists refreshed only on failure, as for
/// `promtool`); returns the directory of its binaries. The package's postinst may create
/// and start a default cluster on port 5432: the tests neither use nor touch it, they get a
/// private one from [`TestPostgres`].
fn ensure_postgres() -> Result<PathBuf, String> {
    if let Some(bin) = postgres_bin_dir() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: no PostgreSQL server in /usr/lib/postgresql/*/bin: installing Debian's postgresql package"
    );
    let install = || {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends", "postgresql"]))
    };
    install().or_else(|_| {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        install()
    })?;
    postgres_bin_dir().ok_or_else(|| {
        "the postgresql package is installed, yet no /usr/lib/postgresql/*/bin/postgres".to_owned()
    })
}

/// A private, throwaway PostgreSQL cluster for one test run: a fresh `initdb`, superuser
/// `waygate` without a password, a server on 127.0.0.1 and a free port. Stopped, and its
/// directory removed, when dropped.
///
/// Where: `target/postgres/<xtask's pid>`, with the rest of the build's state (and gone
/// with `cargo clean`); but `/tmp/waygate-postgres-<pid>` when the `postgres` user cannot
/// reach the target directory (a checkout in a home directory with mode 0700, say) or the
/// Unix socket's path would not fit its 107 bytes there. A directory of either kind whose
/// xtask no longer runs is left from an interrupted run (Ctrl-C does not reach the server,
/// which `pg_ctl` starts in its own session): its server is stopped and it is removed
/// first.
///
/// Root: `initdb` and `postgres` refuse to run as root, so as root (CI) every PostgreSQL
/// command runs as the `postgres` system user the Debian package creates (`runuser -u
/// postgres --`) and the cluster's directory is given to that user; `initdb` makes the data
/// directory inside it, owned by `postgres` with mode 0700.
struct TestPostgres {
    bin: PathBuf,
    /// Holds `data/`, `server.log` and the server's Unix socket.
    dir: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl TestPostgres {
    fn start(bin: &Path) -> Result<Self, String> {
        let as_postgres = id(&["-u"]) == Some(0);
        remove_stale_clusters(bin, as_postgres);
        // From here on, dropping `cluster` (a failure below) removes the directory.
        let mut cluster = Self {
            bin: bin.to_owned(),
            dir: cluster_dir(as_postgres)?,
            as_postgres,
            port: 0,
        };
        let data = cluster.dir.join("data");
        eprintln!(
            "xtask: creating a throwaway PostgreSQL cluster in {}",
            data.display()
        );
        let started = Instant::now();
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args([
            // No password: pg_hba.conf then trusts the Unix socket and TCP from the loopback
            // addresses only, and the server listens on 127.0.0.1 only.
            "--auth=trust",
            "--username=waygate",
            "--encoding=UTF8",
            "--locale=C",
            // Throwaway: no need to flush the new files to disk.
            "--no-sync",
        ]);
        let output = initdb
            .output()
            .map_err(|e| format!("cannot start {initdb:?}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{initdb:?} failed with {}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let initdb_time = started.elapsed();

        cluster.port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .map_err(|e| format!("cannot find a free port: {e}"))?;
        // pg_ctl hands `-o` to the server through `sh -c`, hence the quoted socket directory.
        // fsync, synchronous commits and full-page writes off: the cluster lives for one
        // test run and is never recovered after a crash, so durability only costs time.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{}' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            cluster.port,
            cluster.dir.to_string_lossy().replace('\'', r"'\''")
        );
        let started = Instant::now();
        let result = run(cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.log())
            .args(["-w", "-t", "60", "-o", &options, "start"]));
        if let Err(message) = result {
            return Err(format!(
                "{message}\nxtask: the server log, {}:\n{}",
                cluster.log().display(),
                std::fs::read_to_string(cluster.log()).unwrap_or_default()
            ));
        }
        eprintln!(
            "xtask: PostgreSQL ready at {} (initdb {:.1} s, start {:.1} s)",
            cluster.url(),
            initdb_time.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        Ok(cluster)
    }

    /// Superuser `waygate` on the `postgres` database; the tests make their own databases.
    fn url(&self) -> String {
        format!("postgres://waygate@127.0.0.1:{}/postgres", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        postgres_command(&self.bin, program, self.as_postgres, &self.dir)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            eprintln!("xtask: stopping the PostgreSQL test cluster");
            let stop = |mode| {
                run(self
                    .command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", mode, "-w", "stop"]))
            };
            if let Err(message) = stop("fast").or_else(|_| stop("immediate")) {
                eprintln!(
                    "xtask: {message}\nxtask: the server log:\n{}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => eprintln!("xtask: removed {}", self.dir.display()),
            Err(e) => eprintln!("xtask: cannot remove {}: {e}", self.dir.display()),
        }
    }
}

/// A PostgreSQL binary of `bin`, run as the `postgres` user if `as_postgres`, in `dir` (the
/// `postgres` user may not be allowed into the current directory).
fn postgres_command(bin: &Path, program: &str, as_postgres: bool, dir: &Path) -> Command {
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    };
    command.current_dir(dir);
    command
}

/// A fresh, empty directory for [`TestPostgres`] (see there for where and why), owned by
/// the `postgres` user if `as_postgres`.
fn cluster_dir(as_postgres: bool) -> Result<PathBuf, String> {
    let pid = std::process::id();
    let candidates = [
        target_dir().join("postgres").join(pid.to_string()),
        PathBuf::from(format!("/tmp/waygate-postgres-{pid}")),
    ];
    for dir in candidates {
        if dir.join(".s.PGSQL.65535").as_os_str().len() > 107 {
            eprintln!(
                "xtask: {} is too long a path for PostgreSQL's Unix socket",
                dir.display()
            );
            continue;
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // Not create_dir_all: fails rather than reuse what is there, a symlink included.
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if !as_postgres {
            return Ok(dir);
        }
        let (Some(uid), Some(gid)) = (id(&["-u", "postgres"]), id(&["-g", "postgres"])) else {
            let _ = std::fs::remove_dir(&dir);
            return Err("no `postgres` user, which the postgresql package creates".to_owned());
        };
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot give {} to the postgres user: {e}", dir.display()))?;
        let reachable = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(&dir)
            .status()
            .is_ok_and(|status| status.success());
        if reachable {
            return Ok(dir);
        }
        eprintln!(
            "xtask: the postgres user cannot reach {}; trying elsewhere",
            dir.display()
        );
        let _ = std::fs::remove_dir(&dir);
    }
    Err("found no directory the PostgreSQL test cluster can live in".to_owned())
}

/// Stops the servers of, and removes, the cluster directories of earlier runs whose xtask
/// process is gone (or whose pid is ours again).
fn remove_stale_clusters(bin: &Path, as_postgres: bool) {
    let mut stale = Vec::new();
    for (parent, prefix) in [
        (target_dir().join("postgres"), ""),
        (PathBuf::from("/tmp"), "waygate-postgres-"),
    ] {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_prefix(prefix)?.parse::<u32>().ok());
            let Some(pid) = pid else {
                continue;
            };
            let running = Path::new("/proc").join(pid.to_string()).exists();
            if pid == std::process::id() || !running {
                stale.push(entry.path());
            }
        }
    }
    for dir in stale {
        eprintln!(
            "xtask: removing the PostgreSQL test cluster of an earlier run, {}",
            dir.display()
        );
        let data = dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = postgres_command(bin, "pg_ctl", as_postgres, &dir)
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("xtask: cannot remove {}: {e}", dir.display());
        }
    }
}

/// What `id ARGS` prints, as a number: `id -u` is the current user's id, `id -u postgres`
/// that user's.
fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// `env` is added to the environment of the workspace's tests.
fn run_tests(args: &[String], env: &[(&str, String)]) -> Result<(), String> {
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
        .envs(env.iter().map(|(k, v)| (k, v)))
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
