//! Configuration: defaults, then the TOML file, then `WAYGATE_*` environment variables, then
//! command-line flags, merged into one typed [`Config`].
//! Owns: [`Config`], [`Overrides`], [`ConfigError`], and (in `limits`) every limit.
//! Never: is read by anything but `main`, which hands typed values to the other modules;
//! no other module reads the environment or a config file.

pub mod limits;

pub use limits::{Limits, PluginLimitOverrides, PluginLimitPolicy, PluginLimits};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default listen address: loopback only, so a fresh install is not reachable from outside.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Default plugins directory: where `cargo xtask plugins` writes the example plugins.
pub const DEFAULT_PLUGINS_DIR: &str = "target/plugins";
/// Default data directory (database, compiled-component cache).
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default log filter.
pub const DEFAULT_LOG: &str = "info";

/// A value that must never be printed: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// API keys (`X-API-Key` or `Authorization: Bearer`): the default.
    ApiKey,
    /// Nobody is asked for a credential: local development and protocol test suites only,
    /// refused at start-up unless the server listens on loopback.
    None,
}

/// OAuth 2.1 resource-server mode: bearer JWTs from an external authorization server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The authorization server: tokens must carry it as `iss`.
    pub issuer: String,
    /// This server's resource URI (`https://mcp.example.com/mcp`): tokens must carry it in
    /// `aud`.
    pub audience: String,
    /// Where the authorization server publishes its signing keys (a JWK Set). HTTPS, or
    /// HTTP on loopback (tests, sidecars).
    pub jwks_uri: String,
    /// The claim that carries roles: a space-separated string or an array.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// What role values start with: `waygate:reader`, `waygate:caller`, `waygate:admin`.
    #[serde(default = "default_scope_prefix")]
    pub scope_prefix: String,
}

fn default_role_claim() -> String {
    "scope".to_owned()
}

fn default_scope_prefix() -> String {
    "waygate:".to_owned()
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone who can reach the server (the default: what scrapers expect).
    Open,
    /// Any valid key.
    Keyed,
}

/// The files of a TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Per-client rate limits, requests per minute by endpoint group (API spec, section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Whether requests are limited at all; off behind a gateway that limits, and for
    /// benchmarks. Env `WAYGATE_RATE_LIMITS` (`on`/`off`).
    pub enabled: bool,
    /// `/mcp/execute` and MCP `tools/call`.
    pub execute: u32,
    /// `/health`.
    pub health: u32,
    /// `/metrics`.
    pub metrics: u32,
    /// Every other route and MCP method.
    pub default: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            execute: 100,
            health: 1000,
            metrics: 100,
            default: 500,
        }
    }
}

/// OpenTelemetry export of traces (`[telemetry]`), when an endpoint is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); spans go to
    /// `<endpoint>/v1/traces` as protobuf.
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// How often batches of spans are sent.
    pub export_interval: std::time::Duration,
}

/// Default time between two exports of spans: 5 s, OpenTelemetry's own default.
pub const DEFAULT_OTLP_EXPORT_INTERVAL_MS: u64 = 5_000;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default: what log pipelines ingest).
    Json,
    /// Human-readable lines.
    Text,
}

/// The merged configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the server listens on.
    pub bind: SocketAddr,
    /// HTTPS: a PEM certificate chain and its private key; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Browser origins allowed to call `/mcp` besides loopback ones (`http://localhost:3000`).
    /// A request whose `Origin` is neither gets 403: DNS-rebinding protection.
    pub allowed_origins: Vec<String>,
    /// Directory of plugin packages (one sub-directory with `plugin.toml` each).
    pub plugins_dir: PathBuf,
    /// Directory of the SQLite database and, by default, the compiled-component cache.
    pub data_dir: PathBuf,
    /// A PostgreSQL database shared by replicas (`postgres://user:password@host/db`),
    /// instead of the SQLite file in [`Config::data_dir`]. `Debug` hides the password.
    pub database_url: Option<Secret>,
    /// Directory of compiled components; belongs to the host alone.
    pub cache_dir: PathBuf,
    /// Whether a change in the plugins directory reloads the plugins by itself.
    pub watch_plugins: bool,
    /// The Ed25519 public keys one of which must sign every component, when signatures are
    /// required (`[signatures]`); `None` when they are not.
    pub trusted_keys: Option<Vec<[u8; 32]>>,
    /// Log filter, `tracing` `EnvFilter` syntax (`info`, `waygate=debug,plugin=trace`).
    pub log: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Authentication mode.
    pub auth: AuthMode,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// OAuth resource-server mode, when configured (`[auth.oauth]`).
    pub oauth: Option<OAuthConfig>,
    /// The first admin key, from `WAYGATE_ADMIN_KEY`, used only while no admin key exists.
    pub admin_key: Option<Secret>,
    /// Per-client rate limits.
    pub rate_limits: RateLimitConfig,
    /// Address ranges normally closed to plugins' outbound HTTP (loopback, private,
    /// link-local and the other special-purpose ranges) that the operator opens anyway
    /// (`[outbound_http] allow_networks`). Public addresses need no entry; a plugin still
    /// reaches only the hosts its manifest's `[capabilities.http]` lists.
    pub outbound_allow_networks: Vec<ipnet::IpNet>,
    /// OpenTelemetry trace export; `None` (the default) exports nothing.
    pub otlp: Option<OtlpConfig>,
    /// Every limit.
    pub limits: Limits,
}

impl Config {
    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("waygate.db")
    }
}

/// Values given on the command line; each wins over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--bind`.
    pub bind: Option<String>,
    /// `--plugins`.
    pub plugins: Option<PathBuf>,
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--log`.
    pub log: Option<String>,
}

/// A configuration value Waygate cannot use; start-up stops with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid {key} = {value:?}: {allowed}")]
    Invalid {
        /// The key, with its environment variable and flag.
        key: String,
        /// The value in force, or the value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// The config file's layout; every section and key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    server: ServerSection,
    paths: PathsSection,
    database: DatabaseSection,
    log: LogSection,
    auth: AuthSection,
    rate_limits: RateLimitConfig,
    signatures: SignaturesSection,
    outbound_http: OutboundHttpSection,
    telemetry: TelemetrySection,
    limits: Limits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TelemetrySection {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
    export_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OutboundHttpSection {
    allow_networks: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SignaturesSection {
    required: Option<bool>,
    trusted_keys: Option<Vec<String>>,
}

/// `[telemetry]` and `WAYGATE_OTLP_*`: the trace export, when an endpoint is set.
fn otlp_config(
    section: &TelemetrySection,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<OtlpConfig>, ConfigError> {
    let endpoint = env("WAYGATE_OTLP_ENDPOINT")
        .or_else(|| section.otlp_endpoint.clone())
        .filter(|e| !e.trim().is_empty());
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            key: "telemetry.otlp_endpoint (WAYGATE_OTLP_ENDPOINT)".to_owned(),
            value: endpoint,
            allowed: "an http:// or https:// URL of an OTLP/HTTP collector, such as http://127.0.0.1:4318".to_owned(),
        });
    }
    let interval_text = env("WAYGATE_OTLP_EXPORT_INTERVAL_MS")
        .or_else(|| section.export_interval_ms.map(|ms| ms.to_string()))
        .unwrap_or_else(|| DEFAULT_OTLP_EXPORT_INTERVAL_MS.to_string());
    let interval = interval_text
        .parse::<u64>()
        .ok()
        .filter(|ms| (10..=600_000).contains(ms))
        .ok_or_else(|| ConfigError::Invalid {
            key: "telemetry.export_interval_ms (WAYGATE_OTLP_EXPORT_INTERVAL_MS)".to_owned(),
            value: interval_text.clone(),
            allowed: "milliseconds from 10 to 600000".to_owned(),
        })?;
    Ok(Some(OtlpConfig {
        endpoint,
        service_name: section
            .service_name
            .clone()
            .unwrap_or_else(|| "waygate".to_owned()),
        export_interval: std::time::Duration::from_millis(interval),
    }))
}

/// `::ffff:a.b.c.d/n` as `a.b.c.d/(n-96)`: addresses are checked in their IPv4 form, which
/// a mapped network would never contain.
fn ipv4_mapped_as_ipv4(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// A hex Ed25519 public key.
fn public_key(text: &str) -> Option<[u8; 32]> {
    crate::hex::decode(text.trim())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AuthSection {
    mode: Option<String>,
    metrics: Option<String>,
    oauth: Option<OAuthConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ServerSection {
    bind: Option<String>,
    allowed_origins: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PathsSection {
    plugins: Option<PathBuf>,
    data: Option<PathBuf>,
    cache: Option<PathBuf>,
    watch_plugins: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DatabaseSection {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    format: Option<String>,
}

/// Loads the configuration from the file (`--config`, else `WAYGATE_CONFIG`, else none),
/// the environment as `env` reports it, and the command-line `overrides`.
///
/// # Errors
///
/// [`ConfigError`] naming the key, the value and what is allowed.
pub fn load(
    overrides: &Overrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file_path = overrides
        .config
        .clone()
        .or_else(|| env("WAYGATE_CONFIG").map(PathBuf::from));
    let file = match &file_path {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };

    let pick = |cli: Option<String>, var: &str, file: Option<String>, default: &str| {
        cli.or_else(|| env(var))
            .or(file)
            .unwrap_or_else(|| default.to_owned())
    };
    let path_of = |p: Option<PathBuf>| p.map(|p| p.to_string_lossy().into_owned());

    let bind_text = pick(
        overrides.bind.clone(),
        "WAYGATE_BIND",
        file.server.bind,
        DEFAULT_BIND,
    );
    let bind: SocketAddr = bind_text.parse().map_err(|_| ConfigError::Invalid {
        key: "server.bind (WAYGATE_BIND, --bind)".to_owned(),
        value: bind_text.clone(),
        allowed: "an IP address and port, such as 127.0.0.1:8000".to_owned(),
    })?;
    let plugins_dir = PathBuf::from(pick(
        path_of(overrides.plugins.clone()),
        "WAYGATE_PLUGINS",
        path_of(file.paths.plugins),
        DEFAULT_PLUGINS_DIR,
    ));
    let data_dir = PathBuf::from(pick(
        path_of(overrides.data.clone()),
        "WAYGATE_DATA",
        path_of(file.paths.data),
        DEFAULT_DATA_DIR,
    ));
    let cache_dir = path_of(overrides.cache_dir.clone())
        .or_else(|| env("WAYGATE_CACHE_DIR"))
        .or(path_of(file.paths.cache))
        .map_or_else(|| data_dir.join("cache"), PathBuf::from);
    let database_url = overrides
        .database_url
        .clone()
        .or_else(|| env("WAYGATE_DATABASE_URL"))
        .or(file.database.url)
        .filter(|url| !url.trim().is_empty());
    if let Some(url) = &database_url
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err(ConfigError::Invalid {
            key: "database.url (WAYGATE_DATABASE_URL, --database-url)".to_owned(),
            // Only the scheme: the rest may hold a password.
            value: url.split("://").next().unwrap_or_default().to_owned(),
            allowed: "a postgres:// URL, or nothing for the SQLite file in the data directory"
                .to_owned(),
        });
    }
    let watch_plugins = match env("WAYGATE_WATCH_PLUGINS").as_deref() {
        Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: "paths.watch_plugins (WAYGATE_WATCH_PLUGINS)".to_owned(),
                value: other.to_owned(),
                allowed: "on or off".to_owned(),
            });
        }
        None => file.paths.watch_plugins.unwrap_or(false),
    };
    let required = match env("WAYGATE_REQUIRE_SIGNATURES").as_deref() {
        Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: "signatures.required (WAYGATE_REQUIRE_SIGNATURES)".to_owned(),
                value: other.to_owned(),
                allowed: "on or off".to_owned(),
            });
        }
        None => file.signatures.required.unwrap_or(false),
    };
    let key_texts: Vec<String> = match env("WAYGATE_TRUSTED_KEYS") {
        Some(list) => list
            .split(',')
            .map(str::to_owned)
            .filter(|k| !k.trim().is_empty())
            .collect(),
        None => file.signatures.trusted_keys.unwrap_or_default(),
    };
    let mut keys = Vec::new();
    for text in &key_texts {
        keys.push(public_key(text).ok_or_else(|| {
            ConfigError::Invalid {
                key: "signatures.trusted_keys (WAYGATE_TRUSTED_KEYS)".to_owned(),
                value: text.clone(),
                allowed:
                    "hex Ed25519 public keys of 64 characters, as `waygate plugins keygen` prints"
                        .to_owned(),
            }
        })?);
    }
    if required && keys.is_empty() {
        return Err(ConfigError::Invalid {
            key: "signatures.trusted_keys (WAYGATE_TRUSTED_KEYS)".to_owned(),
            value: "[]".to_owned(),
            allowed: "at least one key when signatures.required is on".to_owned(),
        });
    }
    let trusted_keys = required.then_some(keys);
    let outbound_allow_networks = file
        .outbound_http
        .allow_networks
        .iter()
        .map(|text| {
            text.trim()
                .parse::<ipnet::IpNet>()
                .or_else(|_| {
                    text.trim()
                        .parse::<std::net::IpAddr>()
                        .map(ipnet::IpNet::from)
                })
                .map(ipv4_mapped_as_ipv4)
                .map_err(|_| ConfigError::Invalid {
                    key: "outbound_http.allow_networks".to_owned(),
                    value: text.clone(),
                    allowed: "IP networks in CIDR form (127.0.0.0/8, fd00::/8) or single addresses"
                        .to_owned(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let otlp = otlp_config(&file.telemetry, &env)?;
    let log = pick(
        overrides.log.clone(),
        "WAYGATE_LOG",
        file.log.level,
        DEFAULT_LOG,
    );
    if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
        return Err(ConfigError::Invalid {
            key: "log.level (WAYGATE_LOG, --log)".to_owned(),
            value: log,
            allowed: "a level (trace, debug, info, warn, error) or a tracing filter such as waygate=debug".to_owned(),
        });
    }
    let format_text = pick(None, "WAYGATE_LOG_FORMAT", file.log.format, "json");
    let log_format = match format_text.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        _ => {
            return Err(ConfigError::Invalid {
                key: "log.format (WAYGATE_LOG_FORMAT)".to_owned(),
                value: format_text,
                allowed: "json or text".to_owned(),
            });
        }
    };
    validate_limits(&file.limits)?;
    let auth_text = pick(None, "WAYGATE_AUTH", file.auth.mode, "api_key");
    let auth = match auth_text.as_str() {
        "api_key" => AuthMode::ApiKey,
        "none" => AuthMode::None,
        _ => {
            return Err(ConfigError::Invalid {
                key: "auth.mode (WAYGATE_AUTH)".to_owned(),
                value: auth_text,
                allowed: "api_key or none".to_owned(),
            });
        }
    };
    if auth == AuthMode::None && !bind.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            key: "auth.mode (WAYGATE_AUTH)".to_owned(),
            value: "none".to_owned(),
            allowed: format!(
                "api_key: without authentication the server may only listen on loopback, not {bind}"
            ),
        });
    }
    if let Some(oauth) = &file.auth.oauth {
        let uri = oauth.jwks_uri.as_str();
        let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = if authority.starts_with('[') {
            authority.split_inclusive(']').next().unwrap_or(authority)
        } else {
            authority.split(':').next().unwrap_or(authority)
        };
        // No user-info: `http://127.0.0.1@evil.example/` names evil.example.
        let plain = !authority.is_empty() && !authority.contains('@');
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        if !(plain && (scheme == "https" || (scheme == "http" && loopback))) {
            return Err(ConfigError::Invalid {
                key: "auth.oauth.jwks_uri".to_owned(),
                value: oauth.jwks_uri.clone(),
                allowed: "an https:// URL (http:// only on loopback)".to_owned(),
            });
        }
        if auth == AuthMode::None {
            return Err(ConfigError::Invalid {
                key: "auth.oauth".to_owned(),
                value: "set with auth.mode = none".to_owned(),
                allowed: "auth.mode = api_key when [auth.oauth] is set".to_owned(),
            });
        }
    }
    let metrics_text = pick(None, "WAYGATE_METRICS_ACCESS", file.auth.metrics, "open");
    let metrics_access = match metrics_text.as_str() {
        "open" => MetricsAccess::Open,
        "keyed" => MetricsAccess::Keyed,
        _ => {
            return Err(ConfigError::Invalid {
                key: "auth.metrics (WAYGATE_METRICS_ACCESS)".to_owned(),
                value: metrics_text,
                allowed: "open or keyed".to_owned(),
            });
        }
    };
    let allowed_origins = match env("WAYGATE_ALLOWED_ORIGINS") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect(),
        None => file.server.allowed_origins.unwrap_or_default(),
    };
    if let Some(bad) = allowed_origins
        .iter()
        .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
    {
        return Err(ConfigError::Invalid {
            key: "server.allowed_origins (WAYGATE_ALLOWED_ORIGINS)".to_owned(),
            value: bad.clone(),
            allowed:
                "origins such as https://app.example.com (scheme, host, optional port, no path)"
                    .to_owned(),
        });
    }
    let mut rate_limits = file.rate_limits;
    if let Some(switch) = env("WAYGATE_RATE_LIMITS") {
        rate_limits.enabled = match switch.as_str() {
            "on" => true,
            "off" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "rate_limits.enabled (WAYGATE_RATE_LIMITS)".to_owned(),
                    value: switch,
                    allowed: "on or off".to_owned(),
                });
            }
        };
    }
    let per_minute = [
        ("execute", rate_limits.execute),
        ("health", rate_limits.health),
        ("metrics", rate_limits.metrics),
        ("default", rate_limits.default),
    ];
    if let Some((key, _)) = per_minute.iter().find(|(_, n)| *n == 0) {
        return Err(ConfigError::Invalid {
            key: format!("rate_limits.{key}"),
            value: "0".to_owned(),
            allowed:
                "at least 1 request per minute (turn limiting off with rate_limits.enabled = false)"
                    .to_owned(),
        });
    }
    let tls_cert = env("WAYGATE_TLS_CERT")
        .map(PathBuf::from)
        .or(file.server.tls_cert);
    let tls_key = env("WAYGATE_TLS_KEY")
        .map(PathBuf::from)
        .or(file.server.tls_key);
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (cert, _) => {
            return Err(ConfigError::Invalid {
                key: "server.tls_cert and server.tls_key (WAYGATE_TLS_CERT, WAYGATE_TLS_KEY)"
                    .to_owned(),
                value: if cert.is_some() {
                    "a certificate without a key"
                } else {
                    "a key without a certificate"
                }
                .to_owned(),
                allowed: "both, for HTTPS, or neither, for plain HTTP".to_owned(),
            });
        }
    };
    Ok(Config {
        bind,
        tls,
        allowed_origins,
        plugins_dir,
        data_dir,
        database_url: database_url.map(Secret),
        cache_dir,
        watch_plugins,
        trusted_keys,
        outbound_allow_networks,
        otlp,
        log,
        log_format,
        auth,
        metrics_access,
        oauth: file.auth.oauth,
        rate_limits,
        admin_key: env("WAYGATE_ADMIN_KEY")
            .filter(|k| !k.is_empty())
            .map(Secret),
        limits: file.limits,
    })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    toml::from_str(&text).map_err(|e| file_error(e.to_string()))
}

fn validate_limits(limits: &Limits) -> Result<(), ConfigError> {
    let invalid = |key: &str, value: String, allowed: &str| ConfigError::Invalid {
        key: format!("limits.{key}"),
        value,
        allowed: allowed.to_owned(),
    };
    if limits.instance_pool == 0 {
        return Err(invalid("instance_pool", "0".to_owned(), "at least 1"));
    }
    let positive = [
        ("max_connections", u64::from(limits.max_connections)),
        ("max_body_bytes", limits.max_body_bytes),
        ("mcp_sessions", u64::from(limits.mcp_sessions)),
        ("mcp_streams", u64::from(limits.mcp_streams)),
        ("max_inflight_calls", u64::from(limits.max_inflight_calls)),
        ("mcp_session_idle_ms", limits.mcp_session_idle_ms),
        ("command_history_rows", limits.command_history_rows),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(invalid(key, "0".to_owned(), "at least 1"));
    }
    limits
        .plugin
        .validate()
        .map_err(|reason| invalid("plugin", format!("{:?}", limits.plugin), &reason))?;
    limits
        .plugin
        .within(&limits.plugin_ceiling)
        .map_err(|reason| invalid("plugin", format!("{:?}", limits.plugin), &reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn defaults_apply_without_file_env_or_flags() {
        let config = load(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(config.bind, DEFAULT_BIND.parse().unwrap());
        assert_eq!(config.plugins_dir, PathBuf::from("target/plugins"));
        assert_eq!(config.cache_dir, PathBuf::from("data/cache"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn flags_beat_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("waygate.toml");
        std::fs::write(
            &file,
            "[server]\nbind = \"127.0.0.1:1\"\n[paths]\ndata = \"/file\"\nplugins = \"/file-plugins\"\n[limits.plugin]\nfuel = 42\n",
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(file),
            bind: Some("127.0.0.1:3".into()),
            ..Overrides::default()
        };
        let config = load(
            &overrides,
            env(&[("WAYGATE_BIND", "127.0.0.1:2"), ("WAYGATE_DATA", "/env")]),
        )
        .unwrap();
        assert_eq!(config.bind.port(), 3);
        assert_eq!(config.data_dir, PathBuf::from("/env"));
        assert_eq!(config.plugins_dir, PathBuf::from("/file-plugins"));
        assert_eq!(config.limits.plugin.fuel, 42);
    }

    #[test]
    fn a_database_url_selects_postgres_and_never_shows_its_password() {
        assert_eq!(
            load(&Overrides::default(), env(&[])).unwrap().database_url,
            None
        );
        let url = "postgres://waygate:s3cret@db:5432/waygate";
        let config = load(&Overrides::default(), env(&[("WAYGATE_DATABASE_URL", url)])).unwrap();
        assert_eq!(config.database_url.as_ref().map(Secret::expose), Some(url));
        assert!(!format!("{config:?}").contains("s3cret"));
        let flag = Overrides {
            database_url: Some("postgresql://other/db".into()),
            ..Overrides::default()
        };
        let config = load(&flag, env(&[("WAYGATE_DATABASE_URL", url)])).unwrap();
        assert_eq!(
            config.database_url.as_ref().map(Secret::expose),
            Some("postgresql://other/db")
        );
        let err = load(
            &Overrides::default(),
            env(&[("WAYGATE_DATABASE_URL", "mysql://root:hunter2@db/w")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("WAYGATE_DATABASE_URL") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_key_value_and_what_is_allowed() {
        let err = load(&Overrides::default(), env(&[("WAYGATE_BIND", "localhost")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("server.bind")
                && text.contains("\"localhost\"")
                && text.contains("IP address"),
            "{text}"
        );
        let err = load(&Overrides::default(), env(&[("WAYGATE_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("json or text"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("waygate.toml");
        std::fs::write(&file, "[server]\nbnd = \"x\"\n").unwrap();
        let err = load(
            &Overrides {
                config: Some(file),
                ..Overrides::default()
            },
            env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bnd"), "{err}");
    }

    /// `configs/waygate.toml` documents every key with its default; loading it must give
    /// exactly the defaults, or the documentation has drifted.
    #[test]
    fn the_admin_key_never_shows_in_debug_output() {
        let config = load(
            &Overrides::default(),
            env(&[(
                "WAYGATE_ADMIN_KEY",
                "wg_0123456789abcdefghijklmnopqrstuvwxyz",
            )]),
        )
        .unwrap();
        assert_eq!(
            config.admin_key.as_ref().map(Secret::expose),
            Some("wg_0123456789abcdefghijklmnopqrstuvwxyz")
        );
        assert!(!format!("{config:?}").contains("wg_0123"));
    }

    #[test]
    fn oauth_keys_come_over_https_or_loopback_only() {
        let dir = tempfile::tempdir().unwrap();
        let with = |uri: &str| {
            let path = dir.path().join("c.toml");
            std::fs::write(
                &path,
                format!("[auth.oauth]\nissuer = \"https://a\"\naudience = \"https://b/mcp\"\njwks_uri = \"{uri}\"\n"),
            )
            .unwrap();
            load(
                &Overrides {
                    config: Some(path),
                    ..Overrides::default()
                },
                env(&[]),
            )
        };
        assert!(with("https://a/jwks").unwrap().oauth.is_some());
        assert!(with("http://127.0.0.1:9/jwks").is_ok());
        for bad in [
            "http://auth.example.com/jwks",
            "http://127.0.0.1:1@evil.example/jwks",
            "ftp://a/j",
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("jwks_uri"), "{bad}: {err}");
        }
    }

    #[test]
    fn outbound_networks_parse_and_mapped_ones_become_ipv4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waygate.toml");
        std::fs::write(
            &path,
            "[outbound_http]\nallow_networks = [\"10.1.0.0/16\", \"::1\", \"::ffff:192.168.0.0/112\"]",
        )
        .unwrap();
        let overrides = Overrides {
            config: Some(path.clone()),
            ..Overrides::default()
        };
        let config = load(&overrides, |_| None).unwrap();
        let shown: Vec<String> = config
            .outbound_allow_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.1.0.0/16", "::1/128", "192.168.0.0/16"]);
        std::fs::write(&path, "[outbound_http]\nallow_networks = [\"10.1.0.0/33\"]").unwrap();
        let error = load(&overrides, |_| None).unwrap_err().to_string();
        assert!(error.contains("outbound_http.allow_networks"), "{error}");
    }

    #[test]
    fn required_signatures_need_well_formed_trusted_keys() {
        let key = "ab".repeat(32);
        let config = load(
            &Overrides::default(),
            env(&[
                ("WAYGATE_REQUIRE_SIGNATURES", "on"),
                ("WAYGATE_TRUSTED_KEYS", &key),
            ]),
        )
        .unwrap();
        assert_eq!(config.trusted_keys, Some(vec![[0xab; 32]]));
        let none = load(
            &Overrides::default(),
            env(&[("WAYGATE_REQUIRE_SIGNATURES", "on")]),
        );
        assert!(none.unwrap_err().to_string().contains("at least one key"));
        let bad = load(
            &Overrides::default(),
            env(&[
                ("WAYGATE_REQUIRE_SIGNATURES", "on"),
                ("WAYGATE_TRUSTED_KEYS", "xyz"),
            ]),
        );
        assert!(bad.unwrap_err().to_string().contains("trusted_keys"));
        assert_eq!(
            load(&Overrides::default(), env(&[])).unwrap().trusted_keys,
            None
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let err = load(
            &Overrides::default(),
            env(&[("WAYGATE_TLS_CERT", "/c.pem")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tls_key"), "{err}");
        let config = load(
            &Overrides::default(),
            env(&[
                ("WAYGATE_TLS_CERT", "/c.pem"),
                ("WAYGATE_TLS_KEY", "/k.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(config.tls.unwrap().key, PathBuf::from("/k.pem"));
    }

    #[test]
    fn auth_can_be_off_only_on_loopback() {
        let config = load(&Overrides::default(), env(&[("WAYGATE_AUTH", "none")])).unwrap();
        assert_eq!(config.auth, AuthMode::None);
        let err = load(
            &Overrides::default(),
            env(&[("WAYGATE_AUTH", "none"), ("WAYGATE_BIND", "0.0.0.0:8000")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loopback"), "{err}");
        assert_eq!(
            load(&Overrides::default(), env(&[])).unwrap().auth,
            AuthMode::ApiKey,
            "on by default"
        );
    }

    #[test]
    fn shipped_config_file_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/waygate.toml");
        let config = load(
            &Overrides {
                config: Some(path),
                ..Overrides::default()
            },
            env(&[]),
        )
        .unwrap();
        assert_eq!(config, load(&Overrides::default(), env(&[])).unwrap());
    }
}
