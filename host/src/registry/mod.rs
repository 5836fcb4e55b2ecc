//! Which plugins exist: discovery of plugin packages on disk, manifests, config and argument
//! validation, and the name → tool/resource/prompt lookups every request uses.
//! Owns: [`Registry`], [`LoadedPlugin`], [`LoadFailure`], [`Manifest`], [`Error`].
//! Never: runs guest code except through `runtime`, or speaks HTTP/JSON-RPC.
//! Limits: a manifest's `[limits]` override [`crate::config::PluginLimits`] up to the
//! operator's ceiling ([`crate::config::Limits::plugin_ceiling`]).

mod manifest;

pub use manifest::{MANIFEST_FILE, Manifest};

use crate::config::PluginLimitPolicy;

/// How packages are admitted: the limits they may have and, when signatures are required,
/// the public keys (Ed25519) one of which must have signed each component.
#[derive(Debug, Clone)]
pub struct LoadPolicy {
    /// Defaults and ceilings of plugin limits.
    pub limits: PluginLimitPolicy,
    /// The trusted keys, when every component must be signed by one of them.
    pub trusted_keys: Option<Arc<[[u8; 32]]>>,
    /// Special-purpose networks (loopback, private…) the operator opens to plugins' granted
    /// outbound HTTP: `[outbound_http] allow_networks`.
    pub allowed_networks: Arc<[ipnet::IpNet]>,
}

impl LoadPolicy {
    /// A policy that asks for no signature.
    pub fn unsigned(limits: PluginLimitPolicy) -> LoadPolicy {
        LoadPolicy {
            limits,
            trusted_keys: None,
            allowed_networks: Arc::from([]),
        }
    }
}

/// Suffix of a component's signature file: `plugin.wasm.sig` beside `plugin.wasm`, holding
/// the hex Ed25519 signature of the component's bytes.
pub const SIGNATURE_SUFFIX: &str = ".sig";

/// Checks that `wasm` carries a signature, in `signature_path`, by one of `trusted` keys.
///
/// # Errors
///
/// Why not: no signature, an unreadable one, or none of the keys made it.
pub fn verify_signature(
    wasm: &[u8],
    signature_path: &Path,
    trusted: &[[u8; 32]],
) -> Result<(), String> {
    let text = std::fs::read_to_string(signature_path).map_err(|e| {
        format!(
            "unsigned: cannot read {}: {e} (signatures are required)",
            signature_path.display()
        )
    })?;
    let Some(signature) = crate::hex::decode::<64>(text.trim()) else {
        return Err(format!(
            "{} is not a hex Ed25519 signature",
            signature_path.display()
        ));
    };
    let verified = trusted.iter().any(|key| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(wasm, &signature)
            .is_ok()
    });
    if verified {
        Ok(())
    } else {
        Err("the component's signature does not verify with any trusted key: tampered, or signed by an untrusted key".to_owned())
    }
}
use crate::runtime::{self, CallOptions, Guest, HttpGrant, PluginMetadata, Prompt, Runtime, Tool};
use crate::telemetry::{PluginMetrics, ToolHandles};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Why a request could not be served by a plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No loaded plugin offers a tool of that name.
    #[error("unknown tool {tool:?}")]
    UnknownTool {
        /// The tool's name.
        tool: String,
    },
    /// A bare tool name that more than one plugin offers.
    #[error("tool name {tool:?} is offered by several plugins; use one of {candidates:?}")]
    AmbiguousTool {
        /// The bare name asked for.
        tool: String,
        /// The qualified names that match it.
        candidates: Vec<String>,
    },
    /// The arguments do not match the tool's input schema; nothing ran.
    #[error("invalid arguments for tool {tool:?}: {}", problems.join("; "))]
    InvalidArguments {
        /// The tool's name.
        tool: String,
        /// Each mismatch, with where it is.
        problems: Vec<String>,
    },
    /// The sandbox stopped the call.
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

/// A plugin that is loaded and serving.
pub struct LoadedPlugin {
    /// The manifest as the operator wrote it.
    pub manifest: Manifest,
    /// What the component says about itself.
    pub metadata: PluginMetadata,
    /// Its tools, in the order the plugin lists them.
    pub tools: Vec<ToolEntry>,
    /// Its prompts, each with its qualified name.
    pub prompts: Vec<(String, Prompt)>,
    /// The compiled component.
    pub guest: Arc<Guest>,
    /// Path of the component file.
    pub module_path: PathBuf,
    /// Milliseconds the load took (compile or cache load, then the metadata calls).
    pub load_ms: u128,
    /// The plugin's config as shown to operators and readers: values whose property the
    /// plugin's config schema marks `"writeOnly": true` (passwords, tokens) are replaced by
    /// `"[redacted]"`, at any depth of nested objects.
    pub shown_config: Value,
}

/// Replaces, in `value`, every property `schema` marks write-only.
fn redact(value: &mut Value, schema: &Value) {
    let (Some(object), Some(properties)) = (
        value.as_object_mut(),
        schema.get("properties").and_then(Value::as_object),
    ) else {
        return;
    };
    for (key, property) in properties {
        let Some(field) = object.get_mut(key) else {
            continue;
        };
        if property.get("writeOnly") == Some(&Value::Bool(true)) {
            *field = Value::String("[redacted]".to_owned());
        } else {
            redact(field, property);
        }
    }
}

/// A tool and its compiled input-schema validator.
pub struct ToolEntry {
    /// The tool as the plugin declared it.
    pub tool: Tool,
    /// `<plugin>__<tool>`: the name clients see, unique across plugins.
    pub qualified_name: String,
    /// The parsed input schema.
    pub input_schema: Value,
    /// The parsed output schema, when the tool declares one.
    pub output_schema: Option<Value>,
    /// Arguments that 2026-07-28 clients also send as `Mcp-Param-{name}` headers (the
    /// schema's `x-mcp-header`): each header name with the property path it mirrors.
    pub param_headers: Vec<(String, Vec<String>)>,
    /// Its latency and per-outcome series.
    pub metrics: ToolHandles,
    validator: jsonschema::Validator,
}

/// A plugin package that did not load, and why.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The plugin's name, or its directory name when the manifest is unreadable.
    pub plugin: String,
    /// The package directory.
    pub path: PathBuf,
    /// What went wrong, for operators.
    pub reason: String,
    /// The version still serving in its place, when a reload kept the previous one.
    pub serving: Option<String>,
}

/// The set of loaded plugins at one moment; immutable once built.
pub struct Registry {
    plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Qualified tool name → owning plugin.
    tools: BTreeMap<String, String>,
    /// Bare tool name → the qualified names that share it, so a unique bare name resolves.
    bare_tools: BTreeMap<String, Vec<String>>,
    failures: Vec<LoadFailure>,
    /// Packages the operator took out of service, by name, with their directories.
    disabled: Vec<(String, PathBuf)>,
}

impl Registry {
    /// Loads every plugin package under `dir`: each sub-directory holding a `plugin.toml`.
    /// Packages load in parallel; one that fails is reported in [`Registry::failures`] and
    /// the others still load. Tool and prompt names are qualified by the plugin's name
    /// ([`qualify`]), so two plugins may offer a tool of the same name.
    pub async fn load(runtime: &Arc<Runtime>, dir: &Path, policy: &LoadPolicy) -> Registry {
        Self::load_except(runtime, dir, policy, &std::collections::HashSet::new()).await
    }

    /// [`Registry::load`], leaving out the packages whose plugins are named in `disabled`;
    /// they are listed in [`Registry::disabled`].
    pub async fn load_except(
        runtime: &Arc<Runtime>,
        dir: &Path,
        policy: &LoadPolicy,
        disabled: &std::collections::HashSet<String>,
    ) -> Registry {
        let mut failures = Vec::new();
        let mut left_out = Vec::new();
        let packages = match discover(dir) {
            Ok(packages) => packages,
            Err(reason) => {
                failures.push(LoadFailure {
                    plugin: String::new(),
                    path: dir.to_owned(),
                    reason,
                    serving: None,
                });
                Vec::new()
            }
        };
        // A package whose manifest does not read is loaded, so its failure is reported.
        let packages: Vec<PathBuf> = packages
            .into_iter()
            .filter(|path| match Manifest::read(path) {
                Ok(manifest) if disabled.contains(&manifest.name) => {
                    left_out.push((manifest.name, path.clone()));
                    false
                }
                _ => true,
            })
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        let mut paths = std::collections::HashMap::new();
        for (index, path) in packages.into_iter().enumerate() {
            let runtime = runtime.clone();
            let task_path = path.clone();
            let policy = policy.clone();
            let handle = tasks.spawn(async move {
                let result = load_plugin(&runtime, &task_path, &policy).await;
                (index, task_path, result)
            });
            paths.insert(handle.id(), (index, path));
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next_with_id().await {
            match joined {
                Ok((_, result)) => results.push(result),
                // A load task panics only on a host bug; report it like any failed load.
                Err(error) => {
                    if let Some((index, path)) = paths.remove(&error.id()) {
                        let name = path
                            .file_name()
                            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                        results.push((
                            index,
                            path,
                            Err((name, format!("loading failed inside the host: {error}"))),
                        ));
                    }
                }
            }
        }
        results.sort_by_key(|(index, _, _)| *index);

        let mut registry = Registry {
            plugins: BTreeMap::new(),
            tools: BTreeMap::new(),
            bare_tools: BTreeMap::new(),
            failures,
            disabled: left_out,
        };
        for (_, path, result) in results {
            match result.and_then(|plugin| registry.check_unique(plugin)) {
                Ok(plugin) => registry.insert(plugin),
                Err((plugin, reason)) => {
                    tracing::warn!(plugin, path = %path.display(), reason, "plugin not loaded");
                    registry.failures.push(LoadFailure {
                        plugin,
                        path,
                        reason,
                        serving: None,
                    });
                }
            }
        }
        registry
    }

    fn check_unique(&self, plugin: LoadedPlugin) -> Result<LoadedPlugin, (String, String)> {
        let name = plugin.manifest.name.clone();
        if self.plugins.contains_key(&name) {
            return Err((
                name.clone(),
                format!("another package already provides plugin {name:?}"),
            ));
        }
        Ok(plugin)
    }

    fn insert(&mut self, plugin: LoadedPlugin) {
        tracing::info!(
            plugin = %plugin.manifest.name,
            version = %plugin.metadata.version,
            tools = plugin.tools.len(),
            load_ms = plugin.load_ms as u64,
            cache = ?plugin.guest.cache_outcome(),
            "plugin loaded"
        );
        self.insert_loaded(Arc::new(plugin));
    }

    /// This registry with plugin `name` loaded again from its package under `dir` (found by
    /// its manifest's name) and every other plugin as it is. If the load fails, the current
    /// version keeps serving and the failure is reported; if the package is gone, the plugin
    /// is dropped. `None` when no package or plugin has that name.
    pub async fn reload_one(
        &self,
        runtime: &Arc<Runtime>,
        dir: &Path,
        policy: &LoadPolicy,
        name: &str,
    ) -> Option<Registry> {
        let package = discover(dir)
            .unwrap_or_default()
            .into_iter()
            .find(|path| Manifest::read(path).is_ok_and(|m| m.name == name));
        let mut next = self.without(name);
        match package {
            None if self.plugins.contains_key(name) => {}
            None => return None,
            Some(path) => match load_plugin(runtime, &path, policy).await {
                Ok(plugin) => next.insert(plugin),
                Err((_, reason)) => {
                    tracing::warn!(plugin = name, reason, "plugin not reloaded");
                    let current = self.plugins.get(name).cloned();
                    next.failures.push(LoadFailure {
                        plugin: name.to_owned(),
                        path,
                        reason,
                        serving: current.as_ref().map(|p| p.metadata.version.clone()),
                    });
                    if let Some(current) = current {
                        next.insert_loaded(current);
                    }
                }
            },
        }
        Some(next)
    }

    /// A copy without plugin `name`, its failures or its disabled entry.
    fn without(&self, name: &str) -> Registry {
        let mut copy = Registry {
            plugins: BTreeMap::new(),
            tools: BTreeMap::new(),
            bare_tools: BTreeMap::new(),
            failures: self
                .failures
                .iter()
                .filter(|f| f.plugin != name)
                .cloned()
                .collect(),
            disabled: self
                .disabled
                .iter()
                .filter(|(n, _)| n != name)
                .cloned()
                .collect(),
        };
        for (plugin_name, plugin) in &self.plugins {
            if plugin_name != name {
                copy.insert_loaded(plugin.clone());
            }
        }
        copy
    }

    /// Adds an already loaded plugin and its tools to the indexes.
    fn insert_loaded(&mut self, plugin: Arc<LoadedPlugin>) {
        let name = plugin.manifest.name.clone();
        for entry in &plugin.tools {
            self.tools
                .insert(entry.qualified_name.clone(), name.clone());
            self.bare_tools
                .entry(entry.tool.name.clone())
                .or_default()
                .push(entry.qualified_name.clone());
        }
        self.plugins.insert(name, plugin);
    }

    /// Keeps serving, from `previous`, every plugin that failed to load here but was
    /// loaded there: a broken update never takes a working plugin out of service.
    pub fn keep_serving(&mut self, previous: &Registry) {
        let mut kept_plugins = Vec::new();
        for failure in &mut self.failures {
            if self.plugins.contains_key(&failure.plugin) {
                continue;
            }
            let Some(old) = previous.plugins.get(&failure.plugin) else {
                continue;
            };
            failure.serving = Some(old.metadata.version.clone());
            kept_plugins.push(old.clone());
        }
        for plugin in kept_plugins {
            self.insert_loaded(plugin);
        }
    }

    /// The loaded plugins, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values()
    }

    /// One loaded plugin.
    pub fn plugin(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.get(name)
    }

    /// The packages left out because their plugins are disabled: name and directory.
    pub fn disabled(&self) -> &[(String, PathBuf)] {
        &self.disabled
    }

    /// The packages that did not load.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// Every tool with its plugin, ordered by plugin name then the plugin's own order: the
    /// order clients see, the same on every call.
    pub fn tools(&self) -> impl Iterator<Item = (&Arc<LoadedPlugin>, &ToolEntry)> {
        self.plugins
            .values()
            .flat_map(|plugin| plugin.tools.iter().map(move |tool| (plugin, tool)))
    }

    /// The plugin and entry of a tool, by its qualified name.
    pub fn tool(&self, qualified_name: &str) -> Option<(&Arc<LoadedPlugin>, &ToolEntry)> {
        let plugin = self.plugins.get(self.tools.get(qualified_name)?)?;
        let entry = plugin
            .tools
            .iter()
            .find(|t| t.qualified_name == qualified_name)?;
        Some((plugin, entry))
    }

    /// The tool `name` means to a caller limited to the `allowed` plugins (all without):
    /// a qualified name, or a bare name only one of those plugins offers. Tools of other
    /// plugins do not exist for that caller, not even in an ambiguity's candidates.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTool`], or [`Error::AmbiguousTool`] with the candidates.
    pub fn resolve_tool(
        &self,
        name: &str,
        allowed: Option<&[String]>,
    ) -> Result<(&Arc<LoadedPlugin>, &ToolEntry), Error> {
        let visible = |plugin: &LoadedPlugin| {
            allowed.is_none_or(|allowed| allowed.contains(&plugin.manifest.name))
        };
        let unknown = || Error::UnknownTool {
            tool: name.to_owned(),
        };
        if let Some(found) = self.tool(name) {
            return if visible(found.0) {
                Ok(found)
            } else {
                Err(unknown())
            };
        }
        let candidates: Vec<(&Arc<LoadedPlugin>, &ToolEntry)> = self
            .bare_tools
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|qualified| self.tool(qualified))
            .filter(|(plugin, _)| visible(plugin))
            .collect();
        match candidates.as_slice() {
            [only] => Ok(*only),
            [] => Err(unknown()),
            many => Err(Error::AmbiguousTool {
                tool: name.to_owned(),
                candidates: many.iter().map(|(_, e)| e.qualified_name.clone()).collect(),
            }),
        }
    }

    /// Every prompt with its plugin and qualified name, in the same order as [`Self::tools`].
    pub fn prompts(&self) -> impl Iterator<Item = (&Arc<LoadedPlugin>, &str, &Prompt)> {
        self.plugins.values().flat_map(|plugin| {
            plugin
                .prompts
                .iter()
                .map(move |(name, prompt)| (plugin, name.as_str(), prompt))
        })
    }

    /// The plugin and prompt of a qualified prompt name.
    pub fn prompt(&self, qualified_name: &str) -> Option<(&Arc<LoadedPlugin>, &Prompt)> {
        let (plugin_name, _) = qualified_name.split_once(NAMESPACE_SEPARATOR)?;
        let plugin = self.plugins.get(plugin_name)?;
        let (_, prompt) = plugin.prompts.iter().find(|(q, _)| q == qualified_name)?;
        Some((plugin, prompt))
    }

    /// Resolves `tool` ([`Self::resolve_tool`]) and runs it ([`ToolEntry::call`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTool`], [`Error::AmbiguousTool`], or as [`ToolEntry::call`].
    pub async fn call_tool(
        &self,
        runtime: &Runtime,
        tool: &str,
        arguments: &Value,
        options: CallOptions,
    ) -> Result<Result<runtime::ToolResult, runtime::CallError>, Error> {
        let (plugin, entry) = self.resolve_tool(tool, None)?;
        entry.call(runtime, plugin, arguments, options).await
    }
}

impl ToolEntry {
    /// Validates `arguments` against the input schema, then runs the tool in `plugin`'s
    /// sandbox. `Ok(Err(_))` is the plugin's own typed refusal.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArguments`] (the guest never ran), or [`Error::Runtime`] when the
    /// sandbox stopped the call.
    pub async fn call(
        &self,
        runtime: &Runtime,
        plugin: &LoadedPlugin,
        arguments: &Value,
        options: CallOptions,
    ) -> Result<Result<runtime::ToolResult, runtime::CallError>, Error> {
        // Each message quotes the offending value, so both their number and their length
        // are capped: a hostile body must not turn into a larger error body.
        let validating = tracing::info_span!("validate_arguments", tool = %self.qualified_name);
        let problems: Vec<String> = validating.in_scope(|| {
            self.validator
                .iter_errors(arguments)
                .take(MAX_REPORTED_PROBLEMS)
                .map(|e| {
                    let at = e.instance_path.to_string();
                    let message = if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("{at}: {e}")
                    };
                    crate::runtime::truncate(message, MAX_PROBLEM_BYTES)
                })
                .collect()
        });
        if !problems.is_empty() {
            return Err(Error::InvalidArguments {
                tool: self.qualified_name.clone(),
                problems,
            });
        }
        Ok(runtime
            .call_tool(
                &plugin.guest,
                &self.tool.name,
                crate::json::to_text(arguments),
                options,
            )
            .await?)
    }
}

/// A digest of what the plugin packages under `dir` hold now (names, sizes and modification
/// times of every file, one level of sub-directories deep): it changes when a package is
/// added, removed or rewritten. Blocking: call it off the async runtime.
pub fn packages_fingerprint(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut files = Vec::new();
    for package in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let entries = std::fs::read_dir(package.path())
            .into_iter()
            .flatten()
            .flatten();
        for entry in std::iter::once(package).chain(entries) {
            if let Ok(meta) = entry.metadata() {
                files.push((entry.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut hasher);
    hasher.finish()
}

/// The package directories under `dir`, in name order.
fn discover(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read plugins directory {}: {e}", dir.display()))?;
    let mut packages: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(MANIFEST_FILE).is_file())
        .collect();
    packages.sort();
    Ok(packages)
}

/// Loads one package; on failure returns the plugin's name (or directory name) and why.
async fn load_plugin(
    runtime: &Arc<Runtime>,
    dir: &Path,
    policy: &LoadPolicy,
) -> Result<LoadedPlugin, (String, String)> {
    let started = Instant::now();
    let fallback_name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let manifest = Manifest::read(dir).map_err(|reason| (fallback_name, reason))?;
    let name = manifest.name.clone();
    let fail = |reason: String| (name.clone(), reason);

    let limits = manifest.limits.apply(policy.limits.defaults);
    limits
        .validate()
        .and_then(|()| limits.within(&policy.limits.ceiling))
        .map_err(|reason| fail(format!("{MANIFEST_FILE} [limits]: {reason}")))?;
    let module_path = dir.join(&manifest.component);
    let wasm = std::fs::read(&module_path)
        .map_err(|e| fail(format!("cannot read {}: {e}", module_path.display())))?;
    if let Some(trusted) = &policy.trusted_keys {
        let signature = dir.join(format!("{}{SIGNATURE_SUFFIX}", manifest.component));
        verify_signature(&wasm, &signature, trusted).map_err(fail)?;
    }
    let config = manifest.config_json();
    let config_json = config.to_string();

    let prepare_runtime = runtime.clone();
    let prepare_name = name.clone();
    let guest = tokio::task::spawn_blocking(move || {
        prepare_runtime.prepare(&prepare_name, &wasm, limits, config_json)
    })
    .await
    .map_err(|e| fail(format!("compile task failed: {e}")))?
    .map_err(|e| fail(e.to_string()))?;
    let guest = Arc::new(match &manifest.capabilities.http {
        Some(http) => guest.grant_http(HttpGrant::new(
            http.allow.clone(),
            http.methods.clone(),
            policy.allowed_networks.clone(),
            &limits,
        )),
        None => guest,
    });

    let options = || CallOptions {
        request_id: format!("load:{name}"),
        ..CallOptions::default()
    };
    let metadata = runtime
        .metadata(&guest, options())
        .await
        .map_err(|e| fail(e.to_string()))?;
    if metadata.name != manifest.name {
        return Err(fail(format!(
            "the component calls itself {:?} but {MANIFEST_FILE} says {:?}",
            metadata.name, manifest.name
        )));
    }
    let mut shown_config = config.clone();
    if let Some(schema_json) = &metadata.config_schema_json {
        let schema = validate_config(schema_json, &config).map_err(fail)?;
        redact(&mut shown_config, &schema);
    }
    let tools = runtime
        .list_tools(&guest, options())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let tools = tools
        .into_iter()
        .map(|tool| compile_tool(&name, tool, runtime.plugin_metrics()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let mut names = std::collections::BTreeSet::new();
    if let Some(twice) = tools.iter().find(|t| !names.insert(t.tool.name.as_str())) {
        return Err(fail(format!(
            "the component lists tool {:?} twice",
            twice.tool.name
        )));
    }
    let prompts = runtime
        .list_prompts(&guest, options())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut prompt_names = std::collections::BTreeSet::new();
    let prompts = prompts
        .into_iter()
        .map(|prompt| {
            check_name("prompt", &prompt.name)?;
            if !prompt_names.insert(prompt.name.clone()) {
                return Err(format!(
                    "the component lists prompt {:?} twice",
                    prompt.name
                ));
            }
            Ok((qualify(&name, &prompt.name), prompt))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(fail)?;

    Ok(LoadedPlugin {
        manifest,
        metadata,
        tools,
        prompts,
        guest,
        module_path,
        load_ms: started.elapsed().as_millis(),
        shown_config,
    })
}

/// Checks `config` against the plugin's config schema, and returns the parsed schema.
fn validate_config(schema_json: &str, config: &Value) -> Result<Value, String> {
    let schema: Value = serde_json::from_str(schema_json)
        .map_err(|e| format!("the plugin's config schema is not JSON: {e}"))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| format!("the plugin's config schema is invalid: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("config{}: {e}", at.replace('/', "."))
        })
        .collect();
    if problems.is_empty() {
        Ok(schema)
    } else {
        Err(format!(
            "{MANIFEST_FILE} [config] does not match the plugin's schema: {}",
            problems.join("; ")
        ))
    }
}

/// Schema problems reported for one call's arguments, and bytes kept of each message.
const MAX_REPORTED_PROBLEMS: usize = 20;
const MAX_PROBLEM_BYTES: usize = 300;

/// Between a plugin's name and one of its tool or prompt names in the name clients see.
/// Plugin names have no `_`, so the first `__` always ends the plugin's name. The
/// separator keeps to `[A-Za-z0-9_-]`, the tool-name alphabet of the large model APIs (a
/// `.` would not); those APIs also cap names at 64 bytes, which is the plugin author's
/// to keep to: Waygate refuses only names past MCP's 128.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// Longest qualified tool or prompt name, in bytes (MCP's limit for tool names).
const MAX_QUALIFIED_NAME_BYTES: usize = 128;

/// The name clients see for `plugin`'s tool or prompt `name`.
pub fn qualify(plugin: &str, name: &str) -> String {
    format!("{plugin}{NAMESPACE_SEPARATOR}{name}")
}

fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{kind} name {name:?} must be letters, digits, '_', '-' or '.'"
        ))
    }
}

fn compile_tool(plugin: &str, tool: Tool, metrics: &PluginMetrics) -> Result<ToolEntry, String> {
    check_name("tool", &tool.name)?;
    let qualified_name = qualify(plugin, &tool.name);
    if qualified_name.len() > MAX_QUALIFIED_NAME_BYTES {
        return Err(format!(
            "tool name {qualified_name:?} is longer than {MAX_QUALIFIED_NAME_BYTES} bytes"
        ));
    }
    let input_schema: Value = serde_json::from_str(&tool.input_schema_json)
        .map_err(|e| format!("tool {:?}: input schema is not JSON: {e}", tool.name))?;
    if input_schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "tool {:?}: input schema must have \"type\": \"object\"",
            tool.name
        ));
    }
    let validator = jsonschema::validator_for(&input_schema)
        .map_err(|e| format!("tool {:?}: input schema is invalid: {e}", tool.name))?;
    let output_schema = tool
        .output_schema_json
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(|e| format!("tool {:?}: output schema is not JSON: {e}", tool.name))?;
    let param_headers =
        param_headers(&input_schema).map_err(|e| format!("tool {:?}: {e}", tool.name))?;
    Ok(ToolEntry {
        metrics: metrics.tool(plugin, &qualified_name),
        tool,
        qualified_name,
        input_schema,
        output_schema,
        param_headers,
        validator,
    })
}

/// The `x-mcp-header` annotations of an input schema, checked as MCP 2026-07-28 requires:
/// reachable through `properties` only, on string, integer or boolean properties, each
/// name an HTTP token and unique regardless of case.
fn param_headers(schema: &Value) -> Result<Vec<(String, Vec<String>)>, String> {
    fn walk(
        schema: &Value,
        path: &mut Vec<String>,
        found: &mut Vec<(String, Vec<String>)>,
    ) -> Result<(), String> {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return Ok(());
        };
        for (name, property) in properties {
            path.push(name.clone());
            if let Some(header) = property.get("x-mcp-header") {
                let header = header
                    .as_str()
                    .filter(|h| !h.is_empty() && h.bytes().all(is_token_byte))
                    .ok_or_else(|| {
                        format!("x-mcp-header of {} must be an HTTP token", path.join("."))
                    })?;
                // A type, or a type and "null" (an optional argument).
                let kind = match property.get("type") {
                    Some(Value::String(kind)) => Some(kind.as_str()),
                    Some(Value::Array(kinds)) => {
                        let mut named = kinds
                            .iter()
                            .filter_map(Value::as_str)
                            .filter(|k| *k != "null");
                        named.next().filter(|_| named.next().is_none())
                    }
                    _ => None,
                };
                if !matches!(kind, Some("string" | "integer" | "boolean")) {
                    return Err(format!(
                        "x-mcp-header {header:?} is on {}, which is not a string, integer or boolean",
                        path.join(".")
                    ));
                }
                if found.iter().any(|(h, _)| h.eq_ignore_ascii_case(header)) {
                    return Err(format!("x-mcp-header {header:?} is used twice"));
                }
                found.push((header.to_owned(), path.clone()));
            }
            walk(property, path, found)?;
            path.pop();
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(schema, &mut Vec::new(), &mut found)?;
    Ok(found)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_only_config_values_are_redacted() {
        let schema = json!({"properties": {
            "token": {"type": "string", "writeOnly": true},
            "region": {"type": "string"},
            "db": {"type": "object", "properties": {"password": {"writeOnly": true}, "host": {}}}}});
        let mut config =
            json!({"token": "s3cret", "region": "eu", "db": {"password": "pw", "host": "h"}});
        redact(&mut config, &schema);
        assert_eq!(
            config,
            json!({"token": "[redacted]", "region": "eu", "db": {"password": "[redacted]", "host": "h"}})
        );
    }

    #[test]
    fn header_annotations_are_found_and_checked() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": ["integer", "null"], "x-mcp-header": "Limit"},
            "filter": {"type": "object", "properties": {
                "tag": {"type": "string", "x-mcp-header": "Tag"}}}}});
        let found = param_headers(&schema).unwrap();
        assert!(found.contains(&(
            "Tag".to_owned(),
            vec!["filter".to_owned(), "tag".to_owned()]
        )));
        assert_eq!(found.len(), 3);
        let bad = [
            json!({"properties": {"a": {"type": "array", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "bad name"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A"},
                                  "b": {"type": "string", "x-mcp-header": "a"}}}),
        ];
        for schema in bad {
            assert!(param_headers(&schema).is_err(), "{schema}");
        }
    }
}
