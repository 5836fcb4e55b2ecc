//! The `plugin.toml` manifest an operator writes beside each component.

use crate::config::PluginLimitOverrides;
use crate::runtime::{HostPattern, HttpMethod};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// File name of the manifest in a plugin package directory.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// A plugin package's manifest.
///
/// ```toml
/// name = "notes"                 # must match the component's own metadata
/// version = "0.1.0"
/// description = "Notes kept in the key-value store"
/// component = "notes.wasm"       # default: plugin.wasm
///
/// [limits]                       # optional; see config::PluginLimits
/// timeout_ms = 5000
///
/// [config]                       # optional; validated against the plugin's schema
/// max_notes = 100
///
/// [capabilities.http]            # optional; the one grant there is
/// allow = ["api.example.com", "https://*.github.com"]
/// methods = ["GET"]              # default: GET and HEAD
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: lowercase letters, digits and `-`.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// What the plugin is for.
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the package directory.
    #[serde(default = "default_component")]
    pub component: String,
    /// Limit overrides.
    #[serde(default)]
    pub limits: PluginLimitOverrides,
    /// The plugin's configuration.
    #[serde(default)]
    pub config: toml::Table,
    /// What the operator grants the plugin beyond computing on its arguments.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// A manifest's `[capabilities]`: outbound HTTP, and nothing else. A filesystem, the
/// environment or raw sockets are never granted, whatever a manifest asks; asking for them
/// is an error, so an operator is not misled into thinking they were.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    /// Outbound HTTP through `wasi:http`.
    pub http: Option<HttpCapability>,
    /// Every other key, refused by [`Manifest::parse`].
    #[serde(flatten)]
    refused: toml::Table,
}

/// `[capabilities.http]`: which hosts and methods a plugin may use. Its limits (timeout,
/// response size, requests per call) are the `http_*` keys of `[limits]`; the addresses
/// it may reach are further bounded by the operator's `[outbound_http]` policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCapability {
    /// Host patterns (`[scheme://]host[:port]`); see [`HostPattern`].
    pub allow: Vec<HostPattern>,
    /// Methods allowed; GET and HEAD when not given.
    #[serde(default = "HttpMethod::read_only")]
    pub methods: Vec<HttpMethod>,
}
fn default_component() -> String {
    "plugin.wasm".to_owned()
}

impl Manifest {
    /// Reads and checks `dir/plugin.toml`.
    ///
    /// # Errors
    ///
    /// A message naming the file and the problem.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a manifest's text.
    ///
    /// # Errors
    ///
    /// A message naming the problem.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let valid_name = !manifest.name.is_empty()
            && manifest.name.len() <= 64
            && manifest
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(format!(
                "name {:?} must be 1 to 64 lowercase letters, digits or '-'",
                manifest.name
            ));
        }
        let component = Path::new(&manifest.component);
        if component.is_absolute()
            || component
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "component {:?} must be a file inside the package directory",
                manifest.component
            ));
        }
        if let Some(key) = manifest.capabilities.refused.keys().next() {
            return Err(format!(
                "capabilities.{key} cannot be granted: plugins never get a filesystem, environment variables or sockets; the one grant is [capabilities.http]"
            ));
        }
        if manifest
            .capabilities
            .http
            .as_ref()
            .is_some_and(|http| http.allow.is_empty() || http.methods.is_empty())
        {
            return Err(
                "[capabilities.http] needs at least one host in allow and one method".to_owned(),
            );
        }
        Ok(manifest)
    }

    /// The `[config]` table as JSON.
    pub fn config_json(&self) -> Value {
        // A TOML table always converts to a JSON object (datetimes become strings).
        serde_json::to_value(&self.config).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_manifest_takes_defaults() {
        let m = Manifest::parse("name = \"echo\"\nversion = \"0.1.0\"").unwrap();
        assert_eq!(m.component, "plugin.wasm");
        assert_eq!(m.config_json(), serde_json::json!({}));
    }

    #[test]
    fn an_http_grant_reads_hosts_and_defaults_to_read_only_methods() {
        let m = Manifest::parse(
            "name = \"f\"\nversion = \"1\"\n[capabilities.http]\nallow = [\"api.example.com\"]",
        )
        .unwrap();
        let http = m.capabilities.http.unwrap();
        assert_eq!(http.allow[0].as_str(), "api.example.com");
        let methods: Vec<&str> = http.methods.iter().map(HttpMethod::as_str).collect();
        assert_eq!(methods, ["GET", "HEAD"]);
    }

    #[test]
    fn config_table_becomes_json() {
        let m = Manifest::parse("name = \"n\"\nversion = \"1\"\n[config]\nmax = 3\ntags = [\"a\"]")
            .unwrap();
        assert_eq!(
            m.config_json(),
            serde_json::json!({"max": 3, "tags": ["a"]})
        );
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let cases = [
            ("name = \"Echo\"\nversion = \"1\"", "lowercase"),
            (
                "name = \"e\"\nversion = \"1\"\ncomponent = \"../x.wasm\"",
                "inside the package",
            ),
            (
                "name = \"e\"\nversion = \"1\"\n[limits]\nfuel = \"lots\"",
                "invalid type",
            ),
            (
                "name = \"e\"\nversion = \"1\"\nflavour = 1",
                "unknown field",
            ),
            ("version = \"1\"", "missing field `name`"),
            (
                "name = \"e\"\nversion = \"1\"\n[capabilities]\nfilesystem = [\"/\"]",
                "capabilities.filesystem cannot be granted",
            ),
            (
                "name = \"e\"\nversion = \"1\"\n[capabilities.env]\nHOME = true",
                "capabilities.env cannot be granted",
            ),
            (
                "name = \"e\"\nversion = \"1\"\n[capabilities.http]\nallow = [\"x.com/a\"]",
                "not a host pattern",
            ),
            (
                "name = \"e\"\nversion = \"1\"\n[capabilities.http]\nallow = [\"x.com\"]\nmethods = [\"CONNECT\"]",
                "cannot be allowed",
            ),
            (
                "name = \"e\"\nversion = \"1\"\n[capabilities.http]\nallow = []",
                "at least one host",
            ),
        ];
        for (text, expected) in cases {
            let err = Manifest::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }
}
