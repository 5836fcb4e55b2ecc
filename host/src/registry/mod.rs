//! Which plugins exist: discovery of plugin packages on disk, manifests, config and argument
//! validation, and the name → tool/resource/prompt lookups every request uses.
//! Owns: [`Registry`], [`LoadedPlugin`], [`LoadFailure`], [`Manifest`], [`Error`].
//! Never: runs guest code except through `runtime`, or speaks HTTP/JSON-RPC.
//! Limits: a manifest's `[limits]` override [`crate::config::PluginLimits`] within its bounds.

mod manifest;

pub use manifest::{MANIFEST_FILE, Manifest};

use crate::config::PluginLimits;
use crate::runtime::{self, CallOptions, Guest, PluginMetadata, Prompt, Runtime, Tool};
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
    /// Its prompts.
    pub prompts: Vec<Prompt>,
    /// The compiled component.
    pub guest: Arc<Guest>,
    /// Path of the component file.
    pub module_path: PathBuf,
    /// Milliseconds the load took (compile or cache load, then the metadata calls).
    pub load_ms: u128,
}

/// A tool and its compiled input-schema validator.
pub struct ToolEntry {
    /// The tool as the plugin declared it.
    pub tool: Tool,
    /// The parsed input schema.
    pub input_schema: Value,
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
}

/// The set of loaded plugins at one moment; immutable once built.
pub struct Registry {
    plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Tool name → owning plugin. Tool names are unique across plugins, so a client can call
    /// a tool by its bare name.
    tools: BTreeMap<String, String>,
    failures: Vec<LoadFailure>,
}

impl Registry {
    /// Loads every plugin package under `dir`: each sub-directory holding a `plugin.toml`.
    /// Packages load in parallel; one that fails is reported in [`Registry::failures`] and
    /// the others still load. Packages are taken in name order, so when two plugins offer a
    /// tool of the same name, the one whose name sorts first keeps it and the other fails.
    pub async fn load(runtime: &Arc<Runtime>, dir: &Path, defaults: PluginLimits) -> Registry {
        let mut failures = Vec::new();
        let packages = match discover(dir) {
            Ok(packages) => packages,
            Err(reason) => {
                failures.push(LoadFailure {
                    plugin: String::new(),
                    path: dir.to_owned(),
                    reason,
                });
                Vec::new()
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let mut paths = std::collections::HashMap::new();
        for (index, path) in packages.into_iter().enumerate() {
            let runtime = runtime.clone();
            let task_path = path.clone();
            let handle = tasks.spawn(async move {
                let result = load_plugin(&runtime, &task_path, defaults).await;
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
            failures,
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
        for entry in &plugin.tools {
            if let Some(owner) = self.tools.get(&entry.tool.name) {
                return Err((
                    name,
                    format!(
                        "tool {:?} is already provided by plugin {owner:?}",
                        entry.tool.name
                    ),
                ));
            }
        }
        Ok(plugin)
    }

    fn insert(&mut self, plugin: LoadedPlugin) {
        let name = plugin.manifest.name.clone();
        for entry in &plugin.tools {
            self.tools.insert(entry.tool.name.clone(), name.clone());
        }
        tracing::info!(
            plugin = %name,
            version = %plugin.metadata.version,
            tools = plugin.tools.len(),
            load_ms = plugin.load_ms as u64,
            cache = ?plugin.guest.cache_outcome(),
            "plugin loaded"
        );
        self.plugins.insert(name, Arc::new(plugin));
    }

    /// The loaded plugins, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values()
    }

    /// One loaded plugin.
    pub fn plugin(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.get(name)
    }

    /// The packages that did not load.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// Every tool with its plugin, ordered by plugin name then the plugin's own order.
    pub fn tools(&self) -> impl Iterator<Item = (&Arc<LoadedPlugin>, &ToolEntry)> {
        self.plugins
            .values()
            .flat_map(|plugin| plugin.tools.iter().map(move |tool| (plugin, tool)))
    }

    /// The plugin and entry of a tool.
    pub fn tool(&self, name: &str) -> Option<(&Arc<LoadedPlugin>, &ToolEntry)> {
        let plugin = self.plugins.get(self.tools.get(name)?)?;
        let entry = plugin.tools.iter().find(|t| t.tool.name == name)?;
        Some((plugin, entry))
    }

    /// Validates `arguments` against the tool's input schema, then runs the tool in the
    /// sandbox. `Ok(Err(_))` is the plugin's own typed refusal.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTool`], [`Error::InvalidArguments`] (the guest never ran), or
    /// [`Error::Runtime`] when the sandbox stopped the call.
    pub async fn call_tool(
        &self,
        runtime: &Runtime,
        tool: &str,
        arguments: &Value,
        options: CallOptions,
    ) -> Result<Result<runtime::ToolResult, runtime::CallError>, Error> {
        let (plugin, entry) = self.tool(tool).ok_or_else(|| Error::UnknownTool {
            tool: tool.to_owned(),
        })?;
        // Each message quotes the offending value, so both their number and their length
        // are capped: a hostile body must not turn into a larger error body.
        let problems: Vec<String> = entry
            .validator
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
            .collect();
        if !problems.is_empty() {
            return Err(Error::InvalidArguments {
                tool: tool.to_owned(),
                problems,
            });
        }
        Ok(runtime
            .call_tool(&plugin.guest, tool, arguments.to_string(), options)
            .await?)
    }
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
    defaults: PluginLimits,
) -> Result<LoadedPlugin, (String, String)> {
    let started = Instant::now();
    let fallback_name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let manifest = Manifest::read(dir).map_err(|reason| (fallback_name, reason))?;
    let name = manifest.name.clone();
    let fail = |reason: String| (name.clone(), reason);

    let limits = manifest.limits.apply(defaults);
    limits
        .validate()
        .map_err(|reason| fail(format!("{MANIFEST_FILE} [limits]: {reason}")))?;
    let module_path = dir.join(&manifest.component);
    let wasm = std::fs::read(&module_path)
        .map_err(|e| fail(format!("cannot read {}: {e}", module_path.display())))?;
    let config_json = manifest.config_json().to_string();

    let prepare_runtime = runtime.clone();
    let prepare_name = name.clone();
    let guest = tokio::task::spawn_blocking(move || {
        prepare_runtime.prepare(&prepare_name, &wasm, limits, config_json)
    })
    .await
    .map_err(|e| fail(format!("compile task failed: {e}")))?
    .map_err(|e| fail(e.to_string()))?;
    let guest = Arc::new(guest);

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
    if let Some(schema) = &metadata.config_schema_json {
        validate_config(schema, &manifest.config_json()).map_err(fail)?;
    }
    let tools = runtime
        .list_tools(&guest, options())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let tools = tools
        .into_iter()
        .map(compile_tool)
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

    Ok(LoadedPlugin {
        manifest,
        metadata,
        tools,
        prompts,
        guest,
        module_path,
        load_ms: started.elapsed().as_millis(),
    })
}

fn validate_config(schema_json: &str, config: &Value) -> Result<(), String> {
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
        Ok(())
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

/// Longest tool name accepted, in bytes (MCP's guidance for tool names).
const MAX_TOOL_NAME_BYTES: usize = 128;

fn compile_tool(tool: Tool) -> Result<ToolEntry, String> {
    let valid_name = !tool.name.is_empty()
        && tool.name.len() <= MAX_TOOL_NAME_BYTES
        && tool
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_name {
        return Err(format!(
            "tool name {:?} must be 1 to {MAX_TOOL_NAME_BYTES} letters, digits, '_', '-' or '.'",
            tool.name
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
    Ok(ToolEntry {
        tool,
        input_schema,
        validator,
    })
}
