//! `waygate migrate nexus`: turns the configuration of NEXUS MCP, Waygate's Python
//! predecessor, into a Waygate directory (`waygate.toml`, one plugin package per NEXUS
//! plugin, an empty `data/`), and reports everything that has no Waygate equivalent.
//! Owns: the NEXUS format this accepts and its mapping ([`plan`]), free of file access;
//! then the writing, the checks and the move into place.
//! Never: prints or writes a secret it does not map. NEXUS API keys are listed, never
//! copied; the report shows unmapped strings by their length only, and URLs without their
//! `user:password@`; a URL with credentials is not mapped. Plugin settings are the one
//! thing copied as they are (the plugin needs them), into files only the owner can read,
//! and a dry run hides those named like secrets.
//! Never: puts anything into DIR but a complete, checked result: everything is written
//! into a new directory beside DIR, checked with the server's own config loader, manifest
//! parser and plugin loader, and only then renamed onto DIR, which must be new or empty.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use waygate::config::{self, Limits, Overrides, PluginLimitOverrides, PluginLimitPolicy};
use waygate::registry::{LoadPolicy, MANIFEST_FILE, Manifest, Registry, SIGNATURE_SUFFIX};
use waygate::runtime::Runtime;
use waygate::store::Store;

/// What to migrate from.
#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Convert a NEXUS MCP configuration (JSON) into waygate.toml and plugin packages in a
    /// new directory, and report what could not be converted.
    Nexus(NexusArgs),
}

/// `waygate migrate nexus`.
#[derive(Args)]
pub struct NexusArgs {
    /// The NEXUS configuration file (JSON).
    #[arg(long, value_name = "NEXUS_CONFIG")]
    from: PathBuf,
    /// The directory to create (or an empty one to fill): waygate.toml, plugins/<name>/
    /// and data/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the files it would write and the report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// A directory of Waygate packages (such as target/plugins): each NEXUS plugin gets the
    /// component of the package with its name.
    #[arg(long, value_name = "DIR")]
    plugins_from: Option<PathBuf>,
}

/// The config file written in DIR.
const CONFIG_FILE: &str = "waygate.toml";
/// The version a NEXUS plugin without one gets, as the original migration plan did.
const DEFAULT_VERSION: &str = "1.0.0";
/// What a key nobody knows the meaning of is reported with.
const UNKNOWN_KEY: &str = "not a NEXUS setting Waygate knows; nothing was written for it";
/// Why a URL with a user name or password in it is not mapped.
const CREDENTIALS: &str = "credentials in the URL; put them in the collector's configuration";
/// Words that make a `[config]` key look secret, so a dry run does not print its value.
const SECRET_WORDS: &str = "token secret password passwd pass pwd key apikey api_key auth \
                            authorization bearer credential private cookie dsn session";

/// The NEXUS input, or what it asks of Waygate, cannot be migrated: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InputError(String);

fn input(message: impl Into<String>) -> InputError {
    InputError(message.into())
}

/// Why a migration stopped: its input (exit code 2) or the machine (exit code 1).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// Runs one `migrate` command; prints the report, or the error and that nothing was written.
pub fn run(command: MigrateCommand) -> ExitCode {
    let MigrateCommand::Nexus(args) = command;
    let code = match migrate_nexus(&args) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("waygate: {e}");
            ExitCode::from(crate::EXIT_CONFIG)
        }
        Err(Failure::Io(e)) => crate::finish(Err(e)),
    };
    eprintln!("waygate: nothing was written to {}", args.out.display());
    code
}

fn migrate_nexus(args: &NexusArgs) -> Result<(), Failure> {
    let from = std::path::absolute(&args.from).context("cannot resolve --from")?;
    // What the NEXUS file asks for is reported against the file.
    let in_file = |e: InputError| input(format!("{}: {e}", from.display()));
    let text = std::fs::read_to_string(&from)
        .map_err(|e| input(format!("cannot read {}: {e}", from.display())))?;
    let out = std::path::absolute(&args.out).context("cannot resolve --out")?;
    // A dry run checks DIR as the real run does, so that one does not fail where it passed.
    let (parent, name) = check_out(&out)?;
    let sources = args
        .plugins_from
        .as_deref()
        .map(Sources::read)
        .transpose()?;
    let plan = plan(&text, &from, &out, sources.as_ref()).map_err(in_file)?;
    // Beside DIR, on its filesystem, so the move into place is one rename; a dry run writes
    // nothing near DIR.
    let staging = if args.dry_run {
        Staging::create(&std::env::temp_dir(), "waygate-migrate-")?
    } else {
        Staging::create(parent, &format!(".{name}.migrating-"))?
    };
    write(&plan, &staging.path)?;
    // The compiled components go where the server will look for them, so its first start
    // does not compile them again; a dry run keeps nothing.
    let cache = (!args.dry_run).then(|| staging.path.join("data").join("cache"));
    check(&plan, &staging.path, cache).map_err(|failure| match failure {
        Failure::Input(e) => Failure::Input(in_file(e)),
        other => other,
    })?;
    if args.dry_run {
        print!("{}", plan.render_files(&out));
    } else {
        staging.rename_to(&out)?;
    }
    print!("{}", plan.render_report(&from, &out, args.dry_run));
    Ok(())
}

struct NexusPlugin {
    /// Where it is in the file: `plugins[2]`.
    path: String,
    name: String,
    enabled: bool,
    version: Option<String>,
    description: Option<String>,
    timeout_seconds: Option<f64>,
    max_memory_mb: Option<u64>,
    settings: Map<String, Value>,
}

/// One thing the migration could not carry over.
#[derive(Debug)]
struct NotMapped {
    /// Its key path in the NEXUS file, such as `plugins[1].settings.cache`.
    key: String,
    /// Its value as the report shows it: see [`summary`].
    value: String,
    reason: String,
}

fn note(
    list: &mut Vec<NotMapped>,
    key: impl Into<String>,
    value: impl Into<String>,
    reason: impl Into<String>,
) {
    list.push(NotMapped {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    });
}

/// `value` for the report and for messages: numbers, booleans and null as they are;
/// strings, lists and objects by their size only, since any of them may hold a secret.
fn summary(value: &Value) -> String {
    match value {
        Value::String(s) => format!("<string, {} chars>", s.chars().count()),
        Value::Array(items) => format!("<list, {} items>", items.len()),
        Value::Object(object) => format!("<object, {} keys>", object.len()),
        other => other.to_string(),
    }
}

/// `text` quoted for the report: control characters escaped, and a URL in it without its
/// `user:password@`.
fn quoted(text: &str) -> String {
    format!("{:?}", without_userinfo(text))
}

/// `text` without the `user:password@` of the URL in it, if it has one.
fn without_userinfo(text: &str) -> Cow<'_, str> {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(text);
    };
    let rest = &text[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &text[..start], &rest[at + 1..])),
        None => Cow::Borrowed(text),
    }
}

fn has_userinfo(text: &str) -> bool {
    matches!(without_userinfo(text), Cow::Owned(_))
}

/// `path.key`, the key quoted when it is not a plain word.
fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || "_-".contains(c));
    let key = if plain {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// The keys of one JSON object, taken one by one; the rest is reported as not mapped.
struct Fields<'a> {
    path: String,
    object: &'a Map<String, Value>,
    taken: BTreeSet<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(path: String, value: &'a Value) -> Result<Self, InputError> {
        match value {
            Value::Object(object) => Ok(Self {
                path,
                object,
                taken: BTreeSet::new(),
            }),
            other => Err(input(format!(
                "{}: expected an object, found {}",
                if path.is_empty() {
                    "the top level"
                } else {
                    path.as_str()
                },
                summary(other)
            ))),
        }
    }

    /// The value of `key` as a `T`; `None` when absent or null.
    fn take<T: DeserializeOwned>(
        &mut self,
        key: &'static str,
        expected: &str,
    ) -> Result<Option<T>, InputError> {
        self.taken.insert(key);
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|_| {
                    input(format!(
                        "{}: expected {expected}, found {}",
                        child(&self.path, key),
                        summary(value)
                    ))
                }),
        }
    }

    /// The object under `key`, to take keys from.
    fn section(&mut self, key: &'static str) -> Result<Option<Fields<'a>>, InputError> {
        self.taken.insert(key);
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => Fields::new(child(&self.path, key), value).map(Some),
        }
    }

    /// Reports every key not taken: with its reason from `reasons`, else as unknown.
    fn rest(self, reasons: &[(&str, &str)], out: &mut Vec<NotMapped>) {
        for (key, value) in self.object {
            if self.taken.contains(key.as_str()) {
                continue;
            }
            let reason = reasons
                .iter()
                .find(|(known, _)| known == key)
                .map_or(UNKNOWN_KEY, |(_, reason)| reason);
            note(out, child(&self.path, key), summary(value), reason);
        }
    }
}

/// `auth.api_keys[index]`, a key object or a bare key string, as a `waygate keys create`
/// command to run; the key itself is dropped.
fn api_key(
    index: usize,
    entry: &Value,
    config_arg: &str,
    report: &mut Report,
) -> Result<(), InputError> {
    let path = format!("auth.api_keys[{index}]");
    let mut name = format!("nexus-key-{}", index + 1);
    let mut known = BTreeSet::new();
    let mut plugins = String::new();
    if !entry.is_string() {
        let mut fields = Fields::new(path.clone(), entry)?;
        if let Some(given) = fields.take("name", "a string")? {
            name = given;
        }
        fields.take::<Value>("key", "a string")?;
        let permissions: Vec<String> = fields
            .take("permissions", "a list of permission names")?
            .unwrap_or_default();
        for (i, permission) in permissions.into_iter().enumerate() {
            let lower = permission.to_ascii_lowercase();
            if ["read", "write", "execute", "admin"].contains(&lower.as_str()) {
                known.insert(lower);
            } else {
                note(
                    &mut report.not_mapped,
                    format!("{path}.permissions[{i}]"),
                    summary(&permission.into()),
                    "not a NEXUS permission (read, write, execute, admin): the role comes \
                     from the others",
                );
            }
        }
        match fields.take::<Vec<String>>("allowed_plugins", "a list of plugin names")? {
            Some(names) if names.is_empty() => note(
                &mut report.not_mapped,
                format!("{path}.allowed_plugins"),
                "<list, 0 items>",
                "a Waygate key cannot be limited to no plugin: the command gives it every \
                 plugin; create it only if the client needs one",
            ),
            Some(names) => {
                let names: Vec<String> = names.iter().map(|n| waygate_name(n)).collect();
                plugins = format!(" --plugins {}", shell_word(&names.join(",")));
            }
            None => {}
        }
        let expiry = "Waygate gives a key a lifetime, not a date: add --expires-in (such as \
                      90d) to the command";
        let reasons = [("expires", expiry), ("expires_at", expiry)];
        fields.rest(&reasons, &mut report.not_mapped);
    }
    let role = if known.contains("admin") {
        "admin"
    } else if known.contains("execute") || known.contains("write") {
        "caller"
    } else {
        "reader"
    };
    let mut reason = "secrets are never copied: give this client a new key".to_owned();
    if known.is_empty() {
        reason.push_str(
            " (it lists no NEXUS permission, so the command gives the least role, reader; \
             change --role if the client calls tools)",
        );
    }
    let shown = format!("name {}, key [redacted]", quoted(&name));
    note(&mut report.not_mapped, path, shown, reason);
    report.to_do.push(format!(
        "waygate keys create --config {config_arg} --name {} --role {role}{plugins}",
        shell_word(&name)
    ));
    Ok(())
}

impl NexusPlugin {
    fn read(
        index: usize,
        entry: &Value,
        not_mapped: &mut Vec<NotMapped>,
    ) -> Result<Self, InputError> {
        let path = format!("plugins[{index}]");
        let mut fields = Fields::new(path.clone(), entry)?;
        let name = fields
            .take("name", "a string")?
            .ok_or_else(|| input(format!("{path}: a plugin needs a \"name\"")))?;
        let plugin = NexusPlugin {
            name,
            enabled: fields.take("enabled", "true or false")?.unwrap_or(true),
            version: fields.take("version", "a version string such as \"1.2.0\"")?,
            description: fields.take("description", "a string")?,
            timeout_seconds: fields.take("timeout", "a number of seconds")?,
            max_memory_mb: fields.take("max_memory_mb", "a whole number of megabytes")?,
            settings: fields
                .take("settings", "an object of settings")?
                .unwrap_or_default(),
            path,
        };
        let python = "NEXUS plugins are Python; Waygate runs a WebAssembly component \
                      (see --plugins-from)";
        let reasons = ["module", "class", "requirements"].map(|key| (key, python));
        fields.rest(&reasons, not_mapped);
        Ok(plugin)
    }
}

/// The Waygate packages under `--plugins-from`, by plugin name.
struct Sources {
    dir: PathBuf,
    packages: BTreeMap<String, SourcePackage>,
}

/// A Waygate package whose component a NEXUS plugin of the same name gets.
struct SourcePackage {
    dir: PathBuf,
    manifest: Manifest,
    /// The manifest as written, to copy its `[capabilities]` and `[limits]` from.
    table: toml::Table,
    /// `<component>.sig`, copied too so a signed package stays verifiable.
    signature: Option<String>,
}

impl Sources {
    /// Every package under `dir`: each directory that holds a plugin.toml.
    ///
    /// # Errors
    ///
    /// A manifest that does not parse, a component that is not there, or two packages of
    /// one name: which package a plugin would get must not be a guess.
    fn read(dir: &Path) -> Result<Sources, InputError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| input(format!("--plugins-from {}: {e}", dir.display())))?;
        let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        dirs.sort();
        let mut packages = BTreeMap::new();
        for package in dirs {
            let manifest_path = package.join(MANIFEST_FILE);
            if !manifest_path.is_file() {
                continue;
            }
            let broken = |e: String| input(format!("--plugins-from: {}: {e}", package.display()));
            let text =
                std::fs::read_to_string(&manifest_path).map_err(|e| broken(e.to_string()))?;
            let manifest = Manifest::parse(&text).map_err(broken)?;
            let table = toml::from_str(&text).map_err(|e| broken(e.to_string()))?;
            if !package.join(&manifest.component).is_file() {
                return Err(broken(format!(
                    "its component {:?} is not there",
                    manifest.component
                )));
            }
            let signature = format!("{}{SIGNATURE_SUFFIX}", manifest.component);
            let signature = package.join(&signature).is_file().then_some(signature);
            let name = manifest.name.clone();
            let source = SourcePackage {
                dir: package,
                manifest,
                table,
                signature,
            };
            if let Some(first) = packages.insert(name.clone(), source) {
                return Err(input(format!(
                    "--plugins-from: {} and {} are both package {name:?}",
                    first.dir.display(),
                    packages[&name].dir.display()
                )));
            }
        }
        Ok(Sources {
            dir: dir.to_owned(),
            packages,
        })
    }
}

/// What a migration writes under DIR, and its report.
struct Plan {
    files: Vec<PlannedFile>,
    packages: Vec<PlannedPackage>,
    report: Report,
}

struct PlannedFile {
    /// Relative to DIR.
    path: PathBuf,
    content: Content,
}

enum Content {
    Directory,
    /// The text written, and the text a dry run prints: secret-looking settings hidden.
    Text {
        text: String,
        shown: String,
    },
    Copy(PathBuf),
}

struct PlannedPackage {
    /// The NEXUS plugin it came from: `plugins[2] "text_analyzer"`.
    origin: String,
    name: String,
    has_component: bool,
}

#[derive(Default)]
struct Report {
    /// NEXUS key(s) → Waygate key and value.
    mapped: Vec<(String, String)>,
    not_mapped: Vec<NotMapped>,
    /// What the operator has to do before starting the server.
    to_do: Vec<String>,
}

/// The Waygate name of a NEXUS plugin: Python names are snake_case, Waygate's use `-`.
fn waygate_name(nexus: &str) -> String {
    nexus.to_lowercase().replace('_', "-")
}

/// `text` quoted for a POSIX shell when it needs to be.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn path_text(path: &Path) -> Result<&str, InputError> {
    path.to_str()
        .ok_or_else(|| input(format!("{} is not a UTF-8 path", path.display())))
}

/// The mapping: what DIR (the absolute `out`) will hold for the NEXUS configuration `json`
/// read from `from`, with the components of `sources` where they have a package of a
/// plugin's name. Touches no file.
///
/// NEXUS's configuration is the JSON file it loaded at start-up (`load_nexus_config`);
/// only JSON, since Waygate carries no YAML parser. Every key is optional; keys not listed
/// here are reported as not mapped, never dropped silently.
///
/// ```json
/// {
///   "environment": "production",        // reported: Waygate has no environments
///   "debug": false,                     // reported
///   "host": "0.0.0.0", "port": 8000,    // server.bind ("localhost" becomes 127.0.0.1)
///   "log_level": "INFO",                // log.level: DEBUG, INFO, WARNING, ERROR, CRITICAL
///   "cors": {"origins": ["https://app.example.com"]},     // server.allowed_origins
///   "rate_limits": {
///     "enabled": true,                  // rate_limits.enabled
///     "requests_per_minute": 300,       // rate_limits.default
///     "execute_requests_per_minute": 60 // rate_limits.execute
///   },
///   "auth": {
///     "enabled": true,                  // reported when false: Waygate keeps keys on
///     "api_keys": [{"name": "ci", "key": "nx_…", "permissions": ["execute"],
///                   "allowed_plugins": ["echo"]}]
///                                       // or plain key strings; each becomes a printed
///                                       // `waygate keys create`, the key is never copied
///   },
///   "tracing": {"enabled": true, "otlp_endpoint": "http://collector:4318",
///               "service_name": "nexus"},              // [telemetry]
///   "database": {"path": "/var/lib/nexus/nexus.db"},   // reported: not carried over
///   "plugins": [{
///     "name": "text_analyzer",          // lowercased, '_' → '-': the package's name
///     "enabled": true,                  // false: not migrated, reported
///     "version": "1.2.0",               // default "1.0.0"
///     "description": "…",
///     "timeout": 5,                     // seconds → [limits] timeout_ms
///     "max_memory_mb": 128,             // → [limits] memory_mib
///     "settings": {"max_terms": 20}     // → [config]; nulls are reported
///   }]
/// }
/// ```
///
/// # Errors
///
/// Text that is not JSON, a known key whose value has the wrong type or range (the message
/// names the key), or what NEXUS asks for that Waygate cannot take: a host that is not an
/// IP address, an unknown log level, duplicate plugin names, a name that stays invalid.
fn plan(
    json: &str,
    from: &Path,
    out: &Path,
    sources: Option<&Sources>,
) -> Result<Plan, InputError> {
    let root: Value =
        serde_json::from_str(json).map_err(|e| input(format!("not valid JSON: {e}")))?;
    let mut top = Fields::new(String::new(), &root)?;
    let mut report = Report::default();
    let config = server_config(&mut top, from, out, &mut report)?;
    let mut files = vec![
        PlannedFile {
            path: CONFIG_FILE.into(),
            content: Content::Text {
                shown: config.clone(),
                text: config,
            },
        },
        PlannedFile {
            path: "plugins".into(),
            content: Content::Directory,
        },
        PlannedFile {
            path: "data".into(),
            content: Content::Directory,
        },
    ];
    if let Some(mut auth) = top.section("auth")? {
        if auth.take::<bool>("enabled", "true or false")? == Some(false) {
            note(
                &mut report.not_mapped,
                "auth.enabled",
                "false",
                "Waygate keeps API keys on (auth.mode = \"none\" is for loopback-only \
                 development)",
            );
        }
        let keys: Vec<Value> = auth.take("api_keys", "a list of keys")?.unwrap_or_default();
        let config_arg = shell_word(path_text(&out.join(CONFIG_FILE))?);
        for (index, entry) in keys.iter().enumerate() {
            api_key(index, entry, &config_arg, &mut report)?;
        }
        let header = "Waygate reads keys from X-API-Key or Authorization: Bearer";
        auth.rest(&[("api_key_header", header)], &mut report.not_mapped);
    }
    let mut packages = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let policy = Limits::default().plugin_policy();
    let plugins: Vec<Value> = top
        .take("plugins", "a list of plugin objects")?
        .unwrap_or_default();
    for (index, entry) in plugins.iter().enumerate() {
        let plugin = NexusPlugin::read(index, entry, &mut report.not_mapped)?;
        let name = waygate_name(&plugin.name);
        if let Some(first) = names.insert(name.clone(), plugin.path.clone()) {
            return Err(input(format!(
                "{first} and {} are both plugin {} (Waygate names are lowercase, '-' for '_')",
                plugin.path,
                quoted(&name)
            )));
        }
        let origin = format!("{} {}", plugin.path, quoted(&plugin.name));
        if !plugin.enabled {
            note(
                &mut report.not_mapped,
                &plugin.path,
                format!("{}, \"enabled\": false", quoted(&plugin.name)),
                "disabled in NEXUS: not migrated; enable it there and migrate again to bring \
                 it over",
            );
            continue;
        }
        let source = sources.and_then(|s| s.packages.get(&name));
        let mut target = format!("plugins/{name}");
        if name != plugin.name {
            target.push_str(" (renamed: Waygate names are lowercase, '-' for '_')");
        }
        report.mapped.push((origin.clone(), target));
        let (text, shown, component) =
            package_manifest(&plugin, &name, source, &policy, &mut report)?;
        let package_dir = Path::new("plugins").join(&name);
        files.push(PlannedFile {
            path: package_dir.join(MANIFEST_FILE),
            content: Content::Text { text, shown },
        });
        match source {
            Some(source) => {
                let copied = std::iter::once(&source.manifest.component).chain(&source.signature);
                for file in copied {
                    files.push(PlannedFile {
                        path: package_dir.join(file),
                        content: Content::Copy(source.dir.join(file)),
                    });
                }
            }
            None => {
                let mut to_do = format!(
                    "component missing: build or copy {component} into {}/ (NEXUS's Python \
                     code cannot run in Waygate)",
                    out.join(&package_dir).display()
                );
                if let Some(sources) = sources {
                    to_do.push_str(&format!(
                        "; {} has no package named {name:?}",
                        sources.dir.display()
                    ));
                }
                report.to_do.push(to_do);
            }
        }
        packages.push(PlannedPackage {
            origin,
            name,
            has_component: source.is_some(),
        });
    }
    top.rest(
        &[
            (
                "environment",
                "Waygate has no environments: every setting is explicit in waygate.toml",
            ),
            (
                "debug",
                "Waygate has no debug mode; log.level = \"debug\" is the nearest",
            ),
            ("workers", "Waygate is one process that uses every core"),
            (
                "database",
                "NEXUS's database (keys, history, metrics) is not carried over; Waygate \
                 keeps its own in paths.data",
            ),
            (
                "plugins_dir",
                "NEXUS plugins are Python modules; Waygate's packages are in paths.plugins",
            ),
            ("secret_key", "secrets are never copied; Waygate needs none"),
            (
                "metrics",
                "Waygate always serves /metrics; who may read it is auth.metrics",
            ),
        ],
        &mut report.not_mapped,
    );
    Ok(Plan {
        files,
        packages,
        report,
    })
}

/// The text of DIR/waygate.toml, from the server keys of `top`.
fn server_config(
    top: &mut Fields,
    from: &Path,
    out: &Path,
    report: &mut Report,
) -> Result<String, InputError> {
    let mut server = toml::Table::new();
    let host: Option<String> = top.take("host", "an IP address as a string")?;
    let port = match top.take::<i64>("port", "a port number")? {
        Some(port) => Some(
            u16::try_from(port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| input(format!("port: {port} is out of range 1 to 65535")))?,
        ),
        None => None,
    };
    if host.is_some() || port.is_some() {
        let host = host.as_deref().unwrap_or("127.0.0.1");
        let ip: std::net::IpAddr = if host.eq_ignore_ascii_case("localhost") {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            host.parse().map_err(|_| {
                input(format!(
                    "host {}: Waygate listens on an IP address, such as 0.0.0.0 (every \
                     interface) or 127.0.0.1 (this machine only)",
                    quoted(host)
                ))
            })?
        };
        let bind = std::net::SocketAddr::new(ip, port.unwrap_or(8000)).to_string();
        let port = port.map_or("(default 8000)".to_owned(), |p| p.to_string());
        report.mapped.push((
            format!("host = {host:?}, port = {port}"),
            format!("server.bind = {bind:?}"),
        ));
        server.insert("bind".into(), bind.into());
    }
    if let Some(mut cors) = top.section("cors")? {
        let mut origins = Vec::new();
        let listed: Vec<String> = cors
            .take("origins", "a list of origins")?
            .unwrap_or_default();
        for (index, origin) in listed.iter().enumerate() {
            let trimmed = origin.trim_end_matches('/');
            let rest = trimmed
                .strip_prefix("https://")
                .or_else(|| trimmed.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '@']) => {
                    origins.push(toml::Value::from(trimmed));
                }
                _ => note(
                    &mut report.not_mapped,
                    format!("cors.origins[{index}]"),
                    summary(&origin.as_str().into()),
                    if origin == "*" {
                        "Waygate has no wildcard origin: list each browser origin (loopback \
                         origins are always allowed)"
                    } else {
                        "not an origin: scheme http:// or https://, host, optional port, no \
                         path"
                    },
                ),
            }
        }
        if !origins.is_empty() {
            let list = toml::Value::from(origins);
            report.mapped.push((
                "cors.origins".to_owned(),
                format!("server.allowed_origins = {list}"),
            ));
            server.insert("allowed_origins".into(), list);
        }
        let set_by_waygate = "Waygate sets the CORS methods, headers and credentials itself";
        let reasons = ["allow_credentials", "allow_methods", "allow_headers"]
            .map(|key| (key, set_by_waygate));
        cors.rest(&reasons, &mut report.not_mapped);
    }

    let mut log = toml::Table::new();
    if let Some(level) = top.take::<String>("log_level", "a level name such as \"INFO\"")? {
        let waygate = match level.to_ascii_uppercase().as_str() {
            "DEBUG" => "debug",
            "INFO" => "info",
            "WARNING" | "WARN" => "warn",
            "ERROR" | "CRITICAL" | "FATAL" => "error",
            _ => {
                return Err(input(format!(
                    "log_level {}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL",
                    quoted(&level)
                )));
            }
        };
        let mut to = format!("log.level = {waygate:?}");
        if waygate == "error" && !level.eq_ignore_ascii_case("ERROR") {
            to.push_str(" (Waygate's most severe level)");
        }
        report.mapped.push((format!("log_level = {level:?}"), to));
        log.insert("level".into(), waygate.into());
    }

    let mut rate_limits = toml::Table::new();
    if let Some(mut limits) = top.section("rate_limits")? {
        if let Some(enabled) = limits.take::<bool>("enabled", "true or false")? {
            let line = format!("rate_limits.enabled = {enabled}");
            report.mapped.push((line.clone(), line));
            rate_limits.insert("enabled".into(), enabled.into());
        }
        let per_minute = "a whole number of requests per minute";
        for (nexus_key, waygate_key) in [
            ("requests_per_minute", "default"),
            ("execute_requests_per_minute", "execute"),
        ] {
            match limits.take::<u32>(nexus_key, per_minute)? {
                None => {}
                Some(0) => note(
                    &mut report.not_mapped,
                    format!("rate_limits.{nexus_key}"),
                    "0",
                    "Waygate needs at least 1 request per minute (rate_limits.enabled = false \
                     turns limiting off)",
                ),
                Some(n) => {
                    report.mapped.push((
                        format!("rate_limits.{nexus_key} = {n}"),
                        format!("rate_limits.{waygate_key} = {n}"),
                    ));
                    rate_limits.insert(waygate_key.into(), i64::from(n).into());
                }
            }
        }
        let burst = "Waygate has no separate burst: a client may spend a minute's requests at once";
        limits.rest(&[("burst", burst)], &mut report.not_mapped);
    }

    let mut telemetry = toml::Table::new();
    if let Some(mut tracing) = top.section("tracing")? {
        let enabled: Option<bool> = tracing.take("enabled", "true or false")?;
        let endpoint: Option<String> = tracing.take("otlp_endpoint", "a URL")?;
        let service_name: Option<String> = tracing.take("service_name", "a string")?;
        for (key, value) in [("otlp_endpoint", endpoint), ("service_name", service_name)] {
            let Some(value) = value else { continue };
            let is_endpoint = key == "otlp_endpoint";
            let reason = if is_endpoint && enabled == Some(false) {
                "tracing is off in NEXUS, so Waygate's export stays off (set \
                 telemetry.otlp_endpoint to turn it on)"
            } else if is_endpoint && !value.starts_with("http://") && !value.starts_with("https://")
            {
                "Waygate exports OTLP over HTTP: an http:// or https:// URL, such as \
                 http://collector:4318"
            } else if has_userinfo(&value) {
                CREDENTIALS
            } else {
                let to = format!("telemetry.{key} = {value:?}");
                report.mapped.push((format!("tracing.{key}"), to));
                telemetry.insert(key.into(), value.into());
                continue;
            };
            let shown = summary(&value.into());
            note(
                &mut report.not_mapped,
                format!("tracing.{key}"),
                shown,
                reason,
            );
        }
        let headers = "Waygate sends no extra OTLP headers; put them in the collector's \
                       configuration";
        tracing.rest(&[("headers", headers)], &mut report.not_mapped);
    }

    // Absolute: the server resolves relative paths against its working directory, not
    // against the config file.
    let mut paths = toml::Table::new();
    paths.insert("plugins".into(), path_text(&out.join("plugins"))?.into());
    paths.insert("data".into(), path_text(&out.join("data"))?.into());

    let sections = [
        ("server", server),
        ("paths", paths),
        ("log", log),
        ("rate_limits", rate_limits),
        ("telemetry", telemetry),
    ]
    .into_iter()
    .filter(|(_, table)| !table.is_empty())
    .map(|(name, table)| (name, toml::Value::Table(table)));
    // `{:?}`: a path may hold a line break, which must not end the comment.
    Ok(format!(
        "# Written by `waygate migrate nexus` from {from:?}.\n\
         # Keys not set here keep their defaults; configs/waygate.toml lists every key.\n\
         # [paths] are absolute because the server resolves relative paths against its\n\
         # working directory: edit them if you move this directory.\n\n{}",
        toml_text(sections)?
    ))
}

/// `entries` as TOML in their order (`toml::Table` would sort them): the plain values,
/// then each table as a section.
fn toml_text<'a>(
    entries: impl IntoIterator<Item = (&'a str, toml::Value)>,
) -> Result<String, InputError> {
    let (tables, values): (Vec<_>, Vec<_>) =
        entries.into_iter().partition(|(_, value)| value.is_table());
    let mut text = String::new();
    for (key, value) in values {
        text.push_str(&format!("{key} = {value}\n"));
    }
    for (key, table) in tables {
        if !text.is_empty() {
            text.push('\n');
        }
        let section = toml::Table::from_iter([(key.to_owned(), table)]);
        let rendered =
            toml::to_string(&section).map_err(|e| input(format!("cannot write TOML: {e}")))?;
        text.push_str(&rendered);
    }
    Ok(text)
}

/// One package's plugin.toml: the text, the text a dry run shows, and the component file
/// it names.
fn package_manifest(
    plugin: &NexusPlugin,
    name: &str,
    source: Option<&SourcePackage>,
    policy: &PluginLimitPolicy,
    report: &mut Report,
) -> Result<(String, String, String), InputError> {
    let mut manifest: Vec<(&str, toml::Value)> = vec![("name", name.into())];
    let version = plugin.version.as_deref().unwrap_or(DEFAULT_VERSION);
    manifest.push(("version", version.into()));
    let description = plugin
        .description
        .clone()
        .or_else(|| source.map(|s| s.manifest.description.clone()))
        .filter(|d| !d.is_empty());
    if let Some(description) = description {
        manifest.push(("description", description.into()));
    }
    let component = source.map_or_else(|| format!("{name}.wasm"), |s| s.manifest.component.clone());
    manifest.push(("component", component.as_str().into()));
    // What the component needs to work (its grants, its limits) comes with it.
    let mut limits = toml::Table::new();
    if let Some(source) = source {
        if let Some(capabilities) = source.table.get("capabilities") {
            manifest.push(("capabilities", capabilities.clone()));
        }
        if let Some(toml::Value::Table(own)) = source.table.get("limits") {
            limits = own.clone();
        }
    }
    let nexus_limits = [
        (
            "timeout",
            plugin.timeout_seconds.map(|s| s.to_string()),
            "timeout_ms",
            // Saturating: a negative or huge number of seconds fails the range check below.
            plugin.timeout_seconds.map(|s| (s * 1000.0).round() as u64),
        ),
        (
            "max_memory_mb",
            plugin.max_memory_mb.map(|m| m.to_string()),
            "memory_mib",
            plugin.max_memory_mb,
        ),
    ];
    for (nexus_key, shown, key, value) in nexus_limits {
        let (Some(shown), Some(value)) = (shown, value) else {
            continue;
        };
        let path = format!("{}.{nexus_key}", plugin.path);
        match with_limit(&limits, key, value, policy) {
            Ok(tried) => {
                limits = tried;
                report.mapped.push((
                    format!("{path} = {shown}"),
                    format!("plugins/{name} [limits] {key} = {value}"),
                ));
            }
            Err(reason) => note(
                &mut report.not_mapped,
                path,
                shown,
                format!("{reason}; the package keeps its default"),
            ),
        }
    }
    if !limits.is_empty() {
        manifest.push(("limits", limits.into()));
    }
    let settings_path = format!("{}.settings", plugin.path);
    let config = toml_table(&settings_path, &plugin.settings, &mut report.not_mapped);
    if !config.is_empty() {
        let keys: Vec<String> = config.keys().map(|k| child("", k)).collect();
        report.mapped.push((
            settings_path,
            format!("plugins/{name} [config] {}", keys.join(", ")),
        ));
        manifest.push(("config", config.into()));
    }
    let header = format!(
        "# Migrated by `waygate migrate nexus` from NEXUS plugin {:?} ({}).\n\n",
        plugin.name, plugin.path
    );
    let text = header.clone() + &toml_text(manifest.clone())?;
    Manifest::parse(&text).map_err(|e| {
        input(format!(
            "{} ({}) cannot become a Waygate plugin: {e}",
            plugin.path,
            quoted(&plugin.name)
        ))
    })?;
    let hidden = manifest.into_iter().map(|(key, value)| match key {
        "config" => (key, hide_secrets(value)),
        _ => (key, value),
    });
    Ok((text, header + &toml_text(hidden)?, component))
}

/// `value` with the values of secret-looking keys replaced, and URLs without their
/// `user:password@`: a `[config]` as a dry run prints it.
fn hide_secrets(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(table) => toml::Value::Table(
            table
                .into_iter()
                .map(|(key, value)| {
                    let lower = key.to_lowercase();
                    let value = if SECRET_WORDS.split_whitespace().any(|w| lower.contains(w)) {
                        "[redacted]".into()
                    } else {
                        hide_secrets(value)
                    };
                    (key, value)
                })
                .collect(),
        ),
        toml::Value::Array(items) => {
            toml::Value::Array(items.into_iter().map(hide_secrets).collect())
        }
        toml::Value::String(text) => without_userinfo(&text).into_owned().into(),
        other => other,
    }
}

/// `limits` with `key = value`, when the server would accept the result under `policy`.
fn with_limit(
    limits: &toml::Table,
    key: &str,
    value: u64,
    policy: &PluginLimitPolicy,
) -> Result<toml::Table, String> {
    let mut tried = limits.clone();
    tried.insert(key.into(), i64::try_from(value).unwrap_or(i64::MAX).into());
    let overrides: PluginLimitOverrides = toml::Value::Table(tried.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())?;
    let effective = overrides.apply(policy.defaults);
    effective.validate()?;
    effective.within(&policy.ceiling)?;
    Ok(tried)
}

/// JSON settings as a TOML table; what TOML cannot hold (null, integers past i64) is left
/// out and reported.
fn toml_table(
    path: &str,
    object: &Map<String, Value>,
    not_mapped: &mut Vec<NotMapped>,
) -> toml::Table {
    object
        .iter()
        .filter_map(|(key, value)| {
            toml_value(&child(path, key), value, not_mapped).map(|v| (key.clone(), v))
        })
        .collect()
}

fn toml_value(path: &str, value: &Value, not_mapped: &mut Vec<NotMapped>) -> Option<toml::Value> {
    let mut left_out = |reason: &str| {
        note(not_mapped, path, summary(value), reason);
        None
    };
    match value {
        Value::Null => left_out("JSON null has no TOML form; the plugin's default applies"),
        Value::Bool(b) => Some((*b).into()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i.into()),
            // serde_json reads an integer below i64's range as a float: one that large with
            // no fraction is taken for such an integer, never written as a float.
            (None, Some(f)) if !n.is_u64() && (f.fract() != 0.0 || f.abs() < 2f64.powi(63)) => {
                Some(f.into())
            }
            _ => left_out("an integer out of TOML's range (-2^63 to 2^63 - 1)"),
        },
        Value::String(s) => Some(s.as_str().into()),
        Value::Array(items) if items.iter().any(Value::is_null) => {
            left_out("a list holding null has no TOML form; the plugin's default applies")
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| toml_value(&format!("{path}[{index}]"), item, not_mapped))
            .collect::<Option<Vec<_>>>()
            .map(toml::Value::Array),
        Value::Object(object) => Some(toml_table(path, object, not_mapped).into()),
    }
}

/// `text` with each run of digits zero-padded, so `plugins[2]` sorts before `plugins[10]`.
fn natural_order(text: &str) -> String {
    let mut key = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let end = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len(), |n| start + n);
        key.push_str(&format!("{}{:0>20}", &rest[..start], &rest[start..end]));
        rest = &rest[end..];
    }
    key + rest
}

impl Plan {
    /// Every file with its contents, for `--dry-run`: secret-looking settings hidden.
    fn render_files(&self, out: &Path) -> String {
        let mut text = String::new();
        for file in &self.files {
            let path = out.join(&file.path);
            match &file.content {
                Content::Directory => {
                    text.push_str(&format!("--- {}/ (directory)\n\n", path.display()));
                }
                Content::Text { shown, .. } => {
                    text.push_str(&format!("--- {}\n{shown}\n", path.display()));
                }
                Content::Copy(source) => {
                    let size = std::fs::metadata(source).map_or(0, |m| m.len());
                    text.push_str(&format!(
                        "--- {} (copy of {}, {size} bytes)\n\n",
                        path.display(),
                        source.display()
                    ));
                }
            }
        }
        text
    }

    /// What was written (or would be), what was mapped to what, what was not and why, and
    /// what is left to do.
    fn render_report(&self, from: &Path, out: &Path, dry_run: bool) -> String {
        let report = &self.report;
        let (from, out) = (from.display(), out.display());
        let mut text = if dry_run {
            format!("Dry run: nothing was written. Migrating {from} would write, in {out}:\n")
        } else {
            format!("Migrated {from}. Written, in {out}:\n")
        };
        for file in &self.files {
            let path = file.path.display();
            match &file.content {
                Content::Directory => text.push_str(&format!("  {path}/\n")),
                Content::Text { .. } => text.push_str(&format!("  {path}\n")),
                Content::Copy(source) => {
                    text.push_str(&format!("  {path} (from {})\n", source.display()));
                }
            }
        }
        text.push_str("\nMapped:\n");
        for (from, to) in &report.mapped {
            text.push_str(&format!("  {from} → {to}\n"));
        }
        text.push_str(&format!("\nNot mapped ({}):\n", report.not_mapped.len()));
        let mut not_mapped: Vec<&NotMapped> = report.not_mapped.iter().collect();
        not_mapped.sort_by_cached_key(|n| natural_order(&n.key));
        for item in not_mapped {
            text.push_str(&format!(
                "  {} = {}: {}\n",
                item.key, item.value, item.reason
            ));
        }
        if !report.to_do.is_empty() {
            text.push_str("\nTo do before starting:\n");
            for step in &report.to_do {
                text.push_str(&format!("  {step}\n"));
            }
        }
        text.push_str(&format!(
            "\nStart: waygate serve --config {}\n",
            shell_word(&format!("{out}/{CONFIG_FILE}"))
        ));
        text
    }
}

/// Refuses an `out` the result cannot be renamed onto: one that exists and is not an
/// empty directory, a symbolic link, or one whose parent does not exist. Returns the parent
/// and the name.
fn check_out(out: &Path) -> Result<(&Path, String), InputError> {
    let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
        return Err(input(format!(
            "--out {}: name a new directory",
            out.display()
        )));
    };
    if !parent.is_dir() {
        return Err(input(format!(
            "{} does not exist: create the parent directory of --out first",
            parent.display()
        )));
    }
    let refused = |why: &str| Err(input(format!("{} {why}", out.display())));
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return refused(&format!("cannot be read: {e}")),
        Ok(meta) if meta.is_symlink() => {
            return refused("is a symbolic link: give the directory it points to, or a new one");
        }
        Ok(meta) if !meta.is_dir() => return refused("exists and is not a directory"),
        Ok(_) => match std::fs::read_dir(out).map(|mut entries| entries.next().is_none()) {
            Ok(true) => {}
            Ok(false) => return refused("exists and is not empty: choose a new directory"),
            Err(e) => return refused(&format!("cannot be read: {e}")),
        },
    }
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// A new directory (mode 0700) the result is written into, removed when dropped unless it
/// was renamed into place. A killed process leaves it behind.
struct Staging {
    path: PathBuf,
    renamed: bool,
}

impl Staging {
    /// `dir/<prefix><unique>`.
    fn create(dir: &Path, prefix: &str) -> anyhow::Result<Staging> {
        let mut attempt = 0u32;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!("{prefix}{}-{nanos:x}{attempt}", std::process::id()));
            match private_dir(false).create(&path) {
                Ok(()) => {
                    return Ok(Staging {
                        path,
                        renamed: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
    }

    /// Renames the result onto `out`, which must not exist or be empty: rename(2) replaces
    /// an empty directory in one step and refuses any other, so nothing written into `out`
    /// since [`check_out`] is lost.
    fn rename_to(mut self, out: &Path) -> Result<(), Failure> {
        match std::fs::rename(&self.path, out) {
            Ok(()) => {
                self.renamed = true;
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::DirectoryNotEmpty | ErrorKind::AlreadyExists
                ) =>
            {
                Err(input(format!(
                    "{} was filled during the migration ({e}): choose a new directory",
                    out.display()
                ))
                .into())
            }
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!(
                    "cannot move {} to {}",
                    self.path.display(),
                    out.display()
                ))
                .into()),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Directories the migration makes: only the owner may enter them (they hold plugin
/// settings, and later the database).
fn private_dir(recursive: bool) -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

/// A new file only the owner may read: plugin settings may hold tokens.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes the planned files under `root`.
fn write(plan: &Plan, root: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    for file in &plan.files {
        let path = root.join(&file.path);
        let dir = match file.content {
            Content::Directory => path.as_path(),
            _ => path.parent().unwrap_or(root),
        };
        match &file.content {
            Content::Directory => private_dir(true).create(dir),
            Content::Text { text, .. } => private_dir(true)
                .create(dir)
                .and_then(|()| private_file(&path)?.write_all(text.as_bytes())),
            Content::Copy(source) => private_dir(true).create(dir).and_then(|()| {
                std::io::copy(&mut std::fs::File::open(source)?, &mut private_file(&path)?)
                    .map(drop)
            }),
        }
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Checks the result written under `root` with the server's own code: the config loads,
/// and every package whose component is there loads, its `[config]` checked against the
/// component's schema. Components compile into `cache` (none: compiled and dropped).
fn check(plan: &Plan, root: &Path, cache: Option<PathBuf>) -> Result<(), Failure> {
    let overrides = Overrides {
        config: Some(root.join(CONFIG_FILE)),
        ..Overrides::default()
    };
    let config = config::load(&overrides, |_| None)
        .map_err(|e| input(format!("the migrated {CONFIG_FILE} does not load: {e}")))?;
    if !plan.packages.iter().any(|p| p.has_component) {
        return Ok(());
    }
    // Loading runs each component's metadata calls, as the server's start does; nothing
    // they could write is kept.
    let store =
        Arc::new(Store::open(Path::new(":memory:")).context("cannot open a scratch database")?);
    let runtime = Arc::new(
        Runtime::new(&config.limits, cache, store).context("cannot start the plugin runtime")?,
    );
    let policy = LoadPolicy {
        limits: config.limits.plugin_policy(),
        trusted_keys: config.trusted_keys.clone().map(Arc::from),
        allowed_networks: Arc::from(config.outbound_allow_networks.as_slice()),
    };
    let registry = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(Registry::load(&runtime, &root.join("plugins"), &policy));
    let problems = not_loaded(plan, &registry);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(input(problems.join("\n")).into())
    }
}

/// Every package with a component that is not among the plugins `registry` loaded, with
/// the registry's reasons.
fn not_loaded(plan: &Plan, registry: &Registry) -> Vec<String> {
    let loaded: BTreeSet<&str> = registry
        .plugins()
        .map(|p| p.manifest.name.as_str())
        .collect();
    plan.packages
        .iter()
        .filter(|p| p.has_component && !loaded.contains(p.name.as_str()))
        .map(|package| {
            let reasons: Vec<&str> = registry
                .failures()
                .iter()
                .filter(|f| f.plugin == package.name || f.plugin.is_empty())
                .map(|f| f.reason.as_str())
                .collect();
            let reasons = if reasons.is_empty() {
                "the plugin loader did not load it and gave no reason".to_owned()
            } else {
                reasons.join("; ")
            };
            format!(
                "{} would not load in Waygate: {reasons} (its settings become [config]: fix \
                 them in the NEXUS file and migrate again)",
                package.origin
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(json: &str) -> Result<Plan, InputError> {
        plan(json, Path::new("/n.json"), Path::new("/srv/waygate"), None)
    }

    fn file<'a>(plan: &'a Plan, path: &str) -> &'a str {
        let found = plan.files.iter().find(|f| f.path == Path::new(path));
        match found.map(|f| &f.content) {
            Some(Content::Text { text, .. }) => text,
            _ => panic!("{path} is not planned"),
        }
    }

    fn not_mapped<'a>(plan: &'a Plan, key: &str) -> &'a NotMapped {
        plan.report
            .not_mapped
            .iter()
            .find(|n| n.key == key)
            .unwrap_or_else(|| panic!("{key} is not reported: {:?}", plan.report.not_mapped))
    }

    fn error(json: &str) -> String {
        match planned(json) {
            Ok(_) => panic!("{json} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn server_settings_map_to_the_keys_the_loader_reads() {
        let plan = planned(
            r#"{"host": "0.0.0.0", "port": 9000, "log_level": "WARNING",
                "cors": {"origins": ["https://app.example.com/", "*",
                                     "https://user:pw@evil.example.com"]},
                "rate_limits": {"enabled": true, "requests_per_minute": 300,
                                "execute_requests_per_minute": 0}}"#,
        )
        .unwrap();
        let config: toml::Table = toml::from_str(file(&plan, "waygate.toml")).unwrap();
        assert_eq!(config["server"]["bind"].as_str(), Some("0.0.0.0:9000"));
        assert_eq!(
            config["server"]["allowed_origins"].as_array().unwrap(),
            &vec![toml::Value::from("https://app.example.com")]
        );
        assert_eq!(config["log"]["level"].as_str(), Some("warn"));
        assert_eq!(config["rate_limits"]["default"].as_integer(), Some(300));
        assert!(config["rate_limits"].get("execute").is_none());
        assert_eq!(
            config["paths"]["plugins"].as_str(),
            Some("/srv/waygate/plugins")
        );
        assert_eq!(config["paths"]["data"].as_str(), Some("/srv/waygate/data"));
        let wildcard = not_mapped(&plan, "cors.origins[1]");
        assert!(wildcard.reason.contains("wildcard"));
        assert_eq!(wildcard.value, "<string, 1 chars>");
        assert!(
            not_mapped(&plan, "cors.origins[2]")
                .reason
                .contains("not an origin")
        );
        assert!(
            not_mapped(&plan, "rate_limits.execute_requests_per_minute")
                .reason
                .contains("at least 1")
        );
    }

    #[test]
    fn python_log_levels_become_tracing_levels() {
        for (python, waygate) in [
            ("DEBUG", "debug"),
            ("info", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("CRITICAL", "error"),
        ] {
            let plan = planned(&format!(r#"{{"log_level": "{python}"}}"#)).unwrap();
            let config: toml::Table = toml::from_str(file(&plan, "waygate.toml")).unwrap();
            assert_eq!(config["log"]["level"].as_str(), Some(waygate), "{python}");
        }
        assert!(error(r#"{"log_level": "VERBOSE"}"#).contains("expected DEBUG, INFO"));
    }

    #[test]
    fn localhost_is_loopback_and_other_host_names_are_refused() {
        let plan = planned(r#"{"host": "localhost"}"#).unwrap();
        assert!(file(&plan, "waygate.toml").contains("bind = \"127.0.0.1:8000\""));
        let plan = planned(r#"{"host": "::", "port": 8443}"#).unwrap();
        assert!(file(&plan, "waygate.toml").contains("bind = \"[::]:8443\""));
        assert!(error(r#"{"host": "nexus.internal"}"#).contains("IP address"));
    }

    #[test]
    fn wrong_types_and_ranges_name_the_key_and_show_no_string() {
        for (json, expected) in [
            ("[1, 2]", "the top level: expected an object"),
            (
                "{\"port\": \"eighty\"}",
                "port: expected a port number, found <string, 6 chars>",
            ),
            ("{\"port\": 70000}", "port: 70000 is out of range"),
            ("{\"port\": 0}", "port: 0 is out of range"),
            ("{\"plugins\": {\"echo\": {}}}", "plugins: expected a list"),
            (
                "{\"plugins\": [{\"enabled\": true}]}",
                "plugins[0]: a plugin needs a \"name\"",
            ),
            (
                "{\"plugins\": [{\"name\": \"e\", \"settings\": [1]}]}",
                "plugins[0].settings: expected an object",
            ),
            (
                "{\"rate_limits\": {\"requests_per_minute\": -5}}",
                "whole number",
            ),
            (
                "{\"auth\": {\"api_keys\": \"nx_SECRET\"}}",
                "auth.api_keys: expected a list of keys, found <string, 9 chars>",
            ),
            ("{\"port\": 80", "not valid JSON"),
        ] {
            let text = error(json);
            assert!(text.contains(expected), "{json}: {text}");
        }
    }

    #[test]
    fn api_keys_become_commands_with_their_role_and_plugins_and_are_never_written() {
        let plan = planned(
            r#"{"auth": {"api_keys": [
                {"name": "ci", "key": "nx_SECRET_ONE", "permissions": ["read", "execute"],
                 "allowed_plugins": ["text_analyzer", "echo"], "expires": "2030-01-01"},
                {"name": "ops team", "key": "nx_SECRET_TWO", "permissions": ["admin", "*"]},
                "nx_SECRET_THREE",
                {"name": "wild", "key": "nx_SECRET_FOUR", "permissions": ["*"],
                 "allowed_plugins": [], "owner": "alice"}]}}"#,
        )
        .unwrap();
        let report = plan.render_report(Path::new("/n.json"), Path::new("/srv/waygate"), false);
        let everything = format!("{report}{}", plan.render_files(Path::new("/srv/waygate")));
        assert!(!everything.contains("SECRET"), "{everything}");
        let create = "waygate keys create --config /srv/waygate/waygate.toml";
        for command in [
            format!("{create} --name ci --role caller --plugins text-analyzer,echo\n"),
            format!("{create} --name 'ops team' --role admin\n"),
            format!("{create} --name nexus-key-3 --role reader\n"),
            format!("{create} --name wild --role reader\n"),
        ] {
            assert!(report.contains(&command), "{command} missing from {report}");
        }
        assert!(
            not_mapped(&plan, "auth.api_keys[0]")
                .reason
                .contains("never copied")
        );
        assert!(
            not_mapped(&plan, "auth.api_keys[0].expires")
                .reason
                .contains("--expires-in")
        );
        for unknown in [
            "auth.api_keys[1].permissions[1]",
            "auth.api_keys[3].permissions[0]",
        ] {
            assert!(
                not_mapped(&plan, unknown)
                    .reason
                    .contains("not a NEXUS permission")
            );
        }
        for (key, why) in [
            ("auth.api_keys[2]", "least role, reader"),
            ("auth.api_keys[3]", "least role, reader"),
            ("auth.api_keys[3].allowed_plugins", "no plugin"),
            ("auth.api_keys[3].owner", UNKNOWN_KEY),
        ] {
            assert!(not_mapped(&plan, key).reason.contains(why), "{key}");
        }
        assert!(
            !not_mapped(&plan, "auth.api_keys[1]")
                .reason
                .contains("least")
        );
    }

    #[test]
    fn unknown_keys_are_reported_by_type_and_size_only() {
        let plan = planned(
            r#"{"environment": "production", "feature_flags": {"beta": true},
                "smtp": {"host": "mail", "password": "hunter2"}, "secret_key": "s3",
                "workers": 4, "redis_url": "redis://:hunter3@cache:6379/0",
                "odd\nkey": [1, 2]}"#,
        )
        .unwrap();
        assert!(
            not_mapped(&plan, "environment")
                .reason
                .contains("no environments")
        );
        assert_eq!(not_mapped(&plan, "environment").value, "<string, 10 chars>");
        assert_eq!(not_mapped(&plan, "feature_flags").reason, UNKNOWN_KEY);
        assert_eq!(not_mapped(&plan, "smtp").value, "<object, 2 keys>");
        assert_eq!(not_mapped(&plan, "secret_key").value, "<string, 2 chars>");
        assert_eq!(not_mapped(&plan, "workers").value, "4");
        assert_eq!(not_mapped(&plan, "\"odd\\nkey\"").value, "<list, 2 items>");
        let report = plan.render_report(Path::new("/n.json"), Path::new("/srv/w"), false);
        assert!(!report.contains("hunter"), "{report}");
    }

    #[test]
    fn userinfo_is_taken_out_of_the_authority_only() {
        assert_eq!(
            without_userinfo("https://u:p@host:4318/v1?q=a@b"),
            "https://host:4318/v1?q=a@b"
        );
        assert_eq!(without_userinfo("http://host/a@b"), "http://host/a@b");
    }

    #[test]
    fn plugins_become_packages_with_limits_config_and_a_default_version() {
        let plan = planned(
            r#"{"plugins": [
                {"name": "text_analyzer", "timeout": 2.5, "max_memory_mb": 128,
                 "settings": {"max_terms": 20, "languages": ["en", "de"], "cache": null,
                              "nested": {"on": true, "off": null}, "ratio": 0.5,
                              "huge": 18446744073709551615, "tiny": -9223372036854775809,
                              "list": [1, 9223372036854775808]},
                 "module": "nexus.plugins.text"},
                {"name": "echo", "version": "2.1.0", "timeout": 900, "max_memory_mb": 4096},
                {"name": "legacy", "enabled": false}]}"#,
        )
        .unwrap();
        let manifest = Manifest::parse(file(&plan, "plugins/text-analyzer/plugin.toml")).unwrap();
        assert_eq!(manifest.name, "text-analyzer");
        assert_eq!(manifest.version, DEFAULT_VERSION);
        assert_eq!(manifest.component, "text-analyzer.wasm");
        let limits = manifest.limits.apply(Limits::default().plugin);
        assert_eq!((limits.timeout_ms, limits.memory_mib), (2500, 128));
        assert_eq!(
            manifest.config_json(),
            serde_json::json!({"max_terms": 20, "languages": ["en", "de"],
                               "nested": {"on": true}, "ratio": 0.5})
        );
        for key in [
            "plugins[0].settings.cache",
            "plugins[0].settings.nested.off",
        ] {
            assert!(not_mapped(&plan, key).reason.contains("null"), "{key}");
        }
        for key in [
            "plugins[0].settings.huge",
            "plugins[0].settings.tiny",
            "plugins[0].settings.list[1]",
        ] {
            assert!(
                not_mapped(&plan, key).reason.contains("integer out of"),
                "{key}"
            );
        }
        assert!(
            not_mapped(&plan, "plugins[0].module")
                .reason
                .contains("Python")
        );

        let echo = Manifest::parse(file(&plan, "plugins/echo/plugin.toml")).unwrap();
        assert_eq!(echo.version, "2.1.0");
        assert_eq!(
            echo.limits.apply(Limits::default().plugin),
            Limits::default().plugin
        );
        assert!(
            not_mapped(&plan, "plugins[1].timeout")
                .reason
                .contains("ceiling")
        );
        assert!(
            not_mapped(&plan, "plugins[1].max_memory_mb")
                .reason
                .contains("512")
        );

        assert!(
            !plan
                .files
                .iter()
                .any(|f| f.path.starts_with("plugins/legacy"))
        );
        assert!(not_mapped(&plan, "plugins[2]").reason.contains("disabled"));
        let missing: Vec<&String> = plan
            .report
            .to_do
            .iter()
            .filter(|t| t.contains("component missing"))
            .collect();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].contains("text-analyzer.wasm into /srv/waygate/plugins/text-analyzer/"));
    }

    #[test]
    fn the_report_sorts_paths_by_number() {
        let plugins: Vec<String> = (0..12)
            .map(|i| format!(r#"{{"name": "p{i}", "enabled": false}}"#))
            .collect();
        let plan = planned(&format!(r#"{{"plugins": [{}]}}"#, plugins.join(","))).unwrap();
        let report = plan.render_report(Path::new("/n.json"), Path::new("/srv/w"), false);
        let at = |key: &str| report.find(&format!("  {key} = ")).unwrap();
        assert!(at("plugins[2]") < at("plugins[10]"), "{report}");
    }

    #[test]
    fn the_comment_naming_the_nexus_file_stays_one_line() {
        let from = Path::new("/tmp/evil\n[server]\nbind = \"0.0.0.0:1\"\n.json");
        let plan = plan("{}", from, Path::new("/srv/w"), None).unwrap();
        let config: toml::Table = toml::from_str(file(&plan, "waygate.toml")).unwrap();
        assert!(config.get("server").is_none(), "{config:?}");
        assert!(file(&plan, "waygate.toml").contains(r"evil\n[server]"));
    }

    #[test]
    fn plugin_names_must_be_unique_and_valid_after_renaming() {
        let duplicate = error(
            r#"{"plugins": [{"name": "text_analyzer"},
                            {"name": "Text-Analyzer", "enabled": false}]}"#,
        );
        assert!(
            duplicate.contains("plugins[0] and plugins[1] are both plugin \"text-analyzer\""),
            "{duplicate}"
        );
        let invalid = error(r#"{"plugins": [{"name": "Search Plugin!"}]}"#);
        assert!(
            invalid.contains("plugins[0] (\"Search Plugin!\")")
                && invalid.contains("lowercase letters"),
            "{invalid}"
        );
    }

    fn package(root: &Path, dir: &str, manifest: &str) -> PathBuf {
        let package = root.join(dir);
        std::fs::create_dir(&package).unwrap();
        std::fs::write(package.join(MANIFEST_FILE), manifest).unwrap();
        package
    }

    #[test]
    fn a_source_package_gives_its_component_grants_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let package = package(
            dir.path(),
            "fetch-pkg",
            "name = \"fetch\"\nversion = \"0.1.0\"\ndescription = \"Fetches\"\n\
             component = \"fetch.wasm\"\n[capabilities.http]\nallow = [\"https://*\"]\n\
             [limits]\nhttp_requests = 4\ntimeout_ms = 15000\n",
        );
        std::fs::write(package.join("fetch.wasm"), b"\0asm").unwrap();
        std::fs::write(package.join("fetch.wasm.sig"), b"ab").unwrap();
        std::fs::create_dir(dir.path().join("not-a-package")).unwrap();
        let sources = Sources::read(dir.path()).unwrap();
        let plan = plan(
            r#"{"plugins": [{"name": "fetch", "timeout": 20}, {"name": "other"}]}"#,
            Path::new("/n.json"),
            Path::new("/srv/w"),
            Some(&sources),
        )
        .unwrap();
        let manifest = Manifest::parse(file(&plan, "plugins/fetch/plugin.toml")).unwrap();
        assert_eq!(manifest.component, "fetch.wasm");
        assert_eq!(manifest.description, "Fetches");
        assert_eq!(
            manifest.capabilities.http.unwrap().allow[0].as_str(),
            "https://*"
        );
        let limits = manifest.limits.apply(Limits::default().plugin);
        assert_eq!((limits.timeout_ms, limits.http_requests), (20_000, 4));
        for copied in ["plugins/fetch/fetch.wasm", "plugins/fetch/fetch.wasm.sig"] {
            let planned = plan.files.iter().find(|f| f.path == Path::new(copied));
            assert!(
                matches!(planned.map(|f| &f.content), Some(Content::Copy(_))),
                "{copied}"
            );
        }
        assert!(
            plan.packages
                .iter()
                .any(|p| p.name == "fetch" && p.has_component)
        );
        let missing = plan
            .report
            .to_do
            .iter()
            .find(|t| t.contains("other.wasm"))
            .unwrap();
        assert!(
            missing.contains("has no package named \"other\""),
            "{missing}"
        );
    }

    #[test]
    fn broken_or_duplicate_source_packages_are_refused() {
        let error = |dir: &Path| match Sources::read(dir) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        let dir = tempfile::tempdir().unwrap();
        package(dir.path(), "broken", "name = ");
        assert!(
            error(dir.path()).contains("broken"),
            "{}",
            error(dir.path())
        );

        let dir = tempfile::tempdir().unwrap();
        package(
            dir.path(),
            "no-component",
            "name = \"a\"\nversion = \"1.0.0\"\n",
        );
        assert!(error(dir.path()).contains("is not there"));

        let dir = tempfile::tempdir().unwrap();
        for copy in ["echo-1", "echo-2"] {
            let manifest = "name = \"echo\"\nversion = \"1.0.0\"\ncomponent = \"e.wasm\"\n";
            std::fs::write(package(dir.path(), copy, manifest).join("e.wasm"), "").unwrap();
        }
        let duplicate = error(dir.path());
        assert!(
            duplicate.contains("echo-1") && duplicate.contains("are both package \"echo\""),
            "{duplicate}"
        );
    }

    #[test]
    fn a_package_the_registry_did_not_load_is_a_problem_even_without_its_failure() {
        let store = Arc::new(Store::open(Path::new(":memory:")).unwrap());
        let runtime = Arc::new(Runtime::new(&Limits::default(), None, store).unwrap());
        let missing = tempfile::tempdir().unwrap().path().join("gone");
        let policy = LoadPolicy::unsigned(Limits::default().plugin_policy());
        let registry = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(Registry::load(&runtime, &missing, &policy));
        let mut plan = planned("{}").unwrap();
        plan.packages.push(PlannedPackage {
            origin: "plugins[0] \"echo\"".to_owned(),
            name: "echo".to_owned(),
            has_component: true,
        });
        let problems = not_loaded(&plan, &registry);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("plugins[0] \"echo\" would not load")
                && problems[0].contains("cannot read plugins directory"),
            "{problems:?}"
        );
    }
}
