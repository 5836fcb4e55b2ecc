//! The `waygate` binary: parses the command line, loads the configuration, and runs the
//! server until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use waygate::auth::{self, KeyRing, KeySpec, Role};
use waygate::config::AuthMode;
use waygate::config::{self, Config, LogFormat, Overrides};
use waygate::http::{self, Admission, AppState};
use waygate::registry::{LoadPolicy, Registry};

/// mimalloc instead of glibc's allocator: a tool call allocates and frees many small
/// buffers across tokio's worker threads, where glibc's arenas spent ~18 % of the server's
/// CPU under load (`perf`, `BENCHMARKS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use waygate::runtime::Runtime;
use waygate::service::Service;
use waygate::store::Store;
use waygate::telemetry::SetLogLevel;

/// Exit code for an unusable configuration, as `sysexits`' EX_USAGE family expects.
const EXIT_CONFIG: u8 = 2;

mod cli_http;
mod doctor_cli;
mod keys_cli;
mod migrate_cli;
mod plugins_cli;
mod reload_cli;

#[derive(Parser)]
#[command(
    name = "waygate",
    version,
    about = "MCP host for sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a running server: port, endpoints, health, latency, plugins, performance.
    Doctor {
        /// The server's address [env: WAYGATE_BIND] [default: 127.0.0.1:8000].
        #[arg(long)]
        bind: Option<String>,
        /// Config file [env: WAYGATE_CONFIG].
        #[arg(long)]
        config: Option<PathBuf>,
        /// An API key (reader or above) for the keyed checks.
        #[arg(long, env = "WAYGATE_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Convert another product's configuration into a Waygate directory.
    Migrate {
        #[command(subcommand)]
        command: migrate_cli::MigrateCommand,
    },
    /// Sign plugin packages and check their signatures (Ed25519).
    Plugins {
        #[command(subcommand)]
        command: plugins_cli::PluginsCommand,
    },
    /// Ask a running server to reload its plugins (as POST /plugins/reload or SIGHUP).
    Reload {
        /// The server's address [env: WAYGATE_BIND] [default: 127.0.0.1:8000].
        #[arg(long)]
        bind: Option<String>,
        /// Config file [env: WAYGATE_CONFIG].
        #[arg(long)]
        config: Option<PathBuf>,
        /// An admin key.
        #[arg(long, env = "WAYGATE_KEY", hide_env_values = true)]
        key: String,
    },
    /// Manage API keys in the database of --data or --database-url (a running server
    /// follows at once).
    Keys {
        /// Data directory holding the database [env: WAYGATE_DATA] [default: data].
        #[arg(long, global = true)]
        data: Option<PathBuf>,
        /// PostgreSQL database shared by replicas, instead of --data's SQLite file
        /// [env: WAYGATE_DATABASE_URL].
        #[arg(long, global = true)]
        database_url: Option<String>,
        /// Config file [env: WAYGATE_CONFIG].
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: keys_cli::KeysCommand,
    },
    /// Run the server.
    Serve {
        /// Address to listen on [env: WAYGATE_BIND] [default: 127.0.0.1:8000].
        #[arg(long)]
        bind: Option<String>,
        /// Directory of plugin packages [env: WAYGATE_PLUGINS] [default: target/plugins].
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Data directory: database and compiled cache [env: WAYGATE_DATA] [default: data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// PostgreSQL database shared by replicas, instead of the SQLite file in --data
        /// [env: WAYGATE_DATABASE_URL].
        #[arg(long)]
        database_url: Option<String>,
        /// Config file [env: WAYGATE_CONFIG].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Compiled-component cache directory [env: WAYGATE_CACHE_DIR] [default: DATA/cache].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Log filter [env: WAYGATE_LOG] [default: info].
        #[arg(long)]
        log: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor { bind, config, key } => with_config(
            Overrides {
                config,
                bind,
                ..Overrides::default()
            },
            |config| {
                if doctor_cli::run(&config.bind.to_string(), key.as_deref()) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            },
        ),
        Command::Migrate { command } => migrate_cli::run(command),
        Command::Plugins { command } => finish(plugins_cli::run(command)),
        Command::Reload { bind, config, key } => with_config(
            Overrides {
                config,
                bind,
                ..Overrides::default()
            },
            |config| finish(reload_cli::run(&config.bind.to_string(), &key)),
        ),
        Command::Keys {
            data,
            database_url,
            config,
            command,
        } => with_config(
            Overrides {
                config,
                data,
                database_url,
                ..Overrides::default()
            },
            |config| finish(open_store(&config).and_then(|store| keys_cli::run(&store, command))),
        ),
        Command::Serve {
            bind,
            plugins,
            data,
            database_url,
            config,
            cache_dir,
            log,
        } => with_config(
            Overrides {
                config,
                bind,
                plugins,
                data,
                database_url,
                cache_dir,
                log,
            },
            run_server,
        ),
    }
}

/// The database `config` names: PostgreSQL when a URL is set, else the SQLite file in the
/// data directory.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(match &config.database_url {
        Some(url) => Store::connect(url.expose())?,
        None => Store::open(&config.database_path())?,
    })
}

/// The exit code of a CLI command, its error reported on standard error.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waygate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` with the configuration from the file, the environment and `overrides`;
/// an unusable one is reported and exits with [`EXIT_CONFIG`].
fn with_config(overrides: Overrides, command: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match config::load(&overrides, |key| std::env::var(key).ok()) {
        Ok(config) => command(config),
        Err(e) => {
            eprintln!("waygate: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn run_server(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("waygate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (set_log_level, tracer_provider) = match init_logging(&config, runtime.handle()) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("waygate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let outcome = runtime.block_on(serve(config, set_log_level));
    // Flushes the spans still batched; exports run on the runtime, which is still up.
    if let Some(provider) = tracer_provider
        && let Err(e) = provider.shutdown_with_timeout(waygate::telemetry::otel::SHUTDOWN_TIMEOUT)
    {
        eprintln!("waygate: the last spans were not exported: {e}");
    }
    // Everything that must reach the database did so inside `serve`; what is left on the
    // blocking pool (a plugin still compiling when a signal stopped the start) is dropped
    // rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "waygate stopped");
            eprintln!("waygate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Shows a newly made first admin key once: on the terminal when there is one; otherwise
/// (a service, a container, whose output goes to a log store) in a file only the server's
/// user can read, whose path the log names.
fn show_first_admin_key(config: &Config, created: &auth::CreatedKey) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    if std::io::stdout().is_terminal() {
        println!("No admin key existed, so one was created. It is shown this once:");
        println!("{}", created.key);
        println!("Manage keys with `waygate keys --help`.");
        tracing::info!(key_id = created.id, "created the first admin key");
        return Ok(());
    }
    let path = config.data_dir.join("initial-admin-key");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write the first admin key to {}", path.display()))?;
    writeln!(file, "{}", created.key)?;
    tracing::warn!(
        key_id = created.id,
        path = %path.display(),
        "created the first admin key and wrote it to this file (mode 0600): read it, store it, delete the file"
    );
    Ok(())
}

/// Makes sure an admin key exists: from `WAYGATE_ADMIN_KEY` when given, else a new one shown
/// once ([`show_first_admin_key`]), never written into the log.
fn ensure_admin_key(config: &Config, store: &Store) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now();
    let usable_admin = |k: &waygate::store::StoredKey| {
        k.active
            && k.role == Role::Admin.as_str()
            && k.expires_at
                .as_deref()
                .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
                .is_none_or(|at| at > now)
    };
    if store.keys()?.iter().any(usable_admin) {
        return Ok(());
    }
    let spec = KeySpec {
        name: "admin",
        role: Role::Admin,
        plugins: None,
        expires_at: None,
    };
    match &config.admin_key {
        Some(key) => {
            if let Err(e) = auth::create_key(store, &spec, Some(key.expose())) {
                // The same key may be stored already: another replica on the same
                // database made it a moment ago (fine), or it was revoked or expired.
                let digest = auth::keys::digest_hex(key.expose());
                return match store.keys()?.iter().find(|k| k.key_hash == digest) {
                    Some(stored) if usable_admin(stored) => Ok(()),
                    Some(_) => Err(anyhow::anyhow!(
                        "WAYGATE_ADMIN_KEY names a key that was revoked or has expired: \
                         set it to a new key, or unset it to have one created"
                    )),
                    None => Err(anyhow::anyhow!("WAYGATE_ADMIN_KEY: {e}")),
                };
            }
            tracing::info!("created the first admin key from WAYGATE_ADMIN_KEY");
        }
        None => {
            let created = auth::create_key(store, &spec, None).map_err(anyhow::Error::msg)?;
            show_first_admin_key(config, &created)?;
        }
    }
    Ok(())
}

/// Installs the log subscriber; returns what changes its filter while the server runs.
/// Installs the log subscriber: JSON or text lines on stderr under the configured filter
/// (changeable at run time), and, when an OTLP endpoint is configured, the OpenTelemetry
/// layer, whose own filter keeps Waygate's spans and the plugins' log lines (as span events)
/// whatever the log level.
fn init_logging(
    config: &Config,
    runtime: &tokio::runtime::Handle,
) -> Result<
    (
        SetLogLevel,
        Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    ),
    String,
> {
    use tracing_subscriber::filter::{self, FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt, reload};

    let env_filter = EnvFilter::new(&config.log);
    let gate = log_gate(env_filter.max_level_hint());
    let (filter, handle) = reload::Layer::new(env_filter);
    // Log lines need no spans; spans exist only for the trace export, so without it a
    // request opens none (each would cost an allocation and the formatting of its fields).
    // Not `is_event`: `tracing::enabled!` checks (the plugin log gate) are hints, not events.
    let filter = filter.and(filter::filter_fn(|metadata| !metadata.is_span()));
    let lines = fmt::layer().with_writer(std::io::stderr);
    let lines = match config.log_format {
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => lines.with_filter(filter).boxed(),
    };
    let provider = match &config.otlp {
        Some(otlp) => Some(waygate::telemetry::otel::tracer_provider(
            otlp,
            runtime.clone(),
        )?),
        None => None,
    };
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("waygate"))
            .with_filter(
                Targets::new()
                    .with_target("waygate", LevelFilter::INFO)
                    .with_target("plugin", LevelFilter::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(lines)
        .with(traces)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    // `try_init` opens `log`'s gate to every level; close it to what the filter can show.
    log::set_max_level(gate);
    let set_log_level: SetLogLevel = Arc::new(move |level: &str| {
        let parsed = EnvFilter::try_new(level).map_err(|e| format!("invalid filter: {e}"))?;
        let gate = log_gate(parsed.max_level_hint());
        handle.reload(parsed).map_err(|e| e.to_string())?;
        log::set_max_level(gate);
        Ok(())
    });
    Ok((set_log_level, provider))
}

/// The `log` crate's level gate matching a tracing filter's most verbose level. Records
/// from crates that log through `log` (wasmtime logs ~30 per tool call at debug and trace)
/// are then dropped by one atomic load instead of a trip through the dispatcher.
fn log_gate(hint: Option<tracing_subscriber::filter::LevelFilter>) -> log::LevelFilter {
    use tracing_subscriber::filter::LevelFilter;
    match hint {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        Some(_) | None => log::LevelFilter::Trace,
    }
}

async fn serve(config: Config, set_log_level: SetLogLevel) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let hangups = hangup_signals();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store = Arc::new(open_store(&config)?);
    // Heard from now on: a reload another replica announces while this one loads is
    // repeated once it serves.
    let peer_reloads = store.reload_notices();
    let runtime = Arc::new(Runtime::new(
        &config.limits,
        Some(config.cache_dir.clone()),
        store.clone(),
    )?);
    // Checked before the plugins load, so a bad certificate fails at once.
    let tls = match &config.tls {
        Some(files) => {
            Some(http::tls_acceptor(&files.cert, &files.key).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let keys = match config.auth {
        AuthMode::ApiKey => {
            ensure_admin_key(&config, &store)?;
            let ring = Arc::new(KeyRing::load(store.clone())?);
            ring.start();
            Some(ring)
        }
        AuthMode::None => {
            tracing::warn!(
                bind = %config.bind,
                "authentication is off (auth.mode = none): anyone who can reach this address may call every tool"
            );
            None
        }
    };
    // Taken before the load, so a change made while the plugins load is seen by the watcher.
    let packages_before_load = config
        .watch_plugins
        .then(|| waygate::registry::packages_fingerprint(&config.plugins_dir));
    let disabled = store.disabled_plugins()?;
    let load_policy = LoadPolicy {
        limits: config.limits.plugin_policy(),
        trusted_keys: config.trusted_keys.clone().map(Arc::from),
        allowed_networks: Arc::from(config.outbound_allow_networks.as_slice()),
    };
    let load = Registry::load_except(&runtime, &config.plugins_dir, &load_policy, &disabled);
    let registry = tokio::select! {
        registry = load => registry,
        () = &mut shutdown => {
            tracing::info!("shutdown signal while the plugins load; waygate stopped");
            return Ok(());
        }
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    tracing::info!(
        bind = %listener.local_addr()?,
        https = tls.is_some(),
        plugins = registry.plugins().count(),
        failed = registry.failures().len(),
        plugins_dir = %config.plugins_dir.display(),
        "waygate listening"
    );
    let service = Arc::new(Service::new(
        runtime,
        registry,
        store,
        config.limits.clone(),
        config.plugins_dir.clone(),
        load_policy,
    ));
    let admission = Admission {
        allowed_origins: config.allowed_origins.clone(),
        keys,
        metrics_access: config.metrics_access,
        rate_limits: config.rate_limits,
        tls,
        log_level: Some(set_log_level),
        oauth: config
            .oauth
            .clone()
            .map(|oauth| Arc::new(auth::OAuth::new(oauth))),
    };
    let state = Arc::new(AppState::new(service, admission));
    reload_on_sighup(state.clone(), hangups);
    follow_peer_reloads(state.clone(), peer_reloads);
    if let Some(loaded) = packages_before_load {
        watch_plugins(state.clone(), config.plugins_dir.clone(), loaded);
    }
    http::serve(listener, state, shutdown).await;
    tracing::info!("waygate stopped");
    Ok(())
}

/// SIGHUPs from now on. Installed before the plugins load, so one sent meanwhile (such as
/// `systemctl reload`) waits for the server instead of ending it: SIGHUP's default action.
#[cfg(unix)]
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    if hangups.is_err() {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /plugins/reload");
    }
    hangups.ok()
}

#[cfg(not(unix))]
fn hangup_signals() -> Option<()> {
    None
}

/// Reloads the plugins on every SIGHUP in `hangups`, as `POST /plugins/reload` does.
#[cfg(unix)]
fn reload_on_sighup(state: Arc<AppState>, hangups: Option<tokio::signal::unix::Signal>) {
    let Some(mut hangups) = hangups else {
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match http::reload(&state, http::ReloadOrigin::Here).await {
                Ok(report) => tracing::info!(
                    loaded = report.loaded.len(),
                    failed = report.failed.len(),
                    "reloaded on SIGHUP"
                ),
                Err(error) => tracing::warn!(%error, "SIGHUP ignored"),
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_: Arc<AppState>, _: Option<()>) {}

/// Repeats the reloads other replicas on the same PostgreSQL database announce, so every
/// replica serves what the plugins directory holds; nothing to follow with SQLite. Notices
/// that queue up meanwhile are merged into one reload, and a reload that finds another
/// running (this server's own) is tried again until it runs: the peer's change may be newer.
fn follow_peer_reloads(
    state: Arc<AppState>,
    notices: Option<tokio::sync::mpsc::Receiver<waygate::store::ReloadNotice>>,
) {
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
    let Some(mut notices) = notices else {
        return;
    };
    tokio::spawn(async move {
        while let Some(first) = notices.recv().await {
            let mut plugins = std::collections::BTreeSet::new();
            let mut everything = false;
            let mut next = Some(first);
            while let Some(notice) = next {
                match notice.plugin {
                    Some(name) => {
                        plugins.insert(name);
                    }
                    None => everything = true,
                }
                next = notices.try_recv().ok();
            }
            let scopes: Vec<Option<String>> = if everything {
                vec![None]
            } else {
                plugins.into_iter().map(Some).collect()
            };
            for plugin in scopes {
                loop {
                    let result = match &plugin {
                        Some(name) => http::reload_plugin(&state, name, http::ReloadOrigin::Peer)
                            .await
                            .map(|_| ()),
                        None => http::reload(&state, http::ReloadOrigin::Peer)
                            .await
                            .map(|_| ()),
                    };
                    if result.is_ok() {
                        tracing::info!(?plugin, "reloaded as another replica did");
                        break;
                    }
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
    });
}

/// How often the plugins directory is looked at, when watched.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reloads the plugins when the directory no longer matches `loaded` (its fingerprint when
/// the plugins serving were loaded), once the change has held still for one
/// [`WATCH_INTERVAL`] (a package half copied is not loaded). Polling keeps this to the
/// standard library and works on every filesystem, network mounts included.
fn watch_plugins(state: Arc<AppState>, dir: std::path::PathBuf, loaded: u64) {
    tokio::spawn(async move {
        let fingerprint = |dir: std::path::PathBuf| async move {
            tokio::task::spawn_blocking(move || waygate::registry::packages_fingerprint(&dir))
                .await
                .unwrap_or_default()
        };
        let mut loaded = loaded;
        let mut settling = None;
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let now = fingerprint(dir.clone()).await;
            if now == loaded {
                settling = None;
            } else if settling == Some(now) {
                match http::reload(&state, http::ReloadOrigin::Here).await {
                    Ok(report) => {
                        loaded = now;
                        tracing::info!(
                            loaded = report.loaded.len(),
                            failed = report.failed.len(),
                            "reloaded on a change in the plugins directory"
                        );
                    }
                    Err(error) => tracing::debug!(%error, "watch reload deferred"),
                }
                settling = None;
            } else {
                settling = Some(now);
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled:
/// a signal that arrives while the plugins load is then seen, not lost or (as PID 1 in a
/// container, where an unhandled SIGTERM is ignored) left to the orchestrator's SIGKILL.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let received = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
