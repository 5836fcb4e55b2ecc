//! The Model Context Protocol over JSON-RPC: both protocol eras (stateless 2026-07-28 and the
//! session-based revisions before it), sessions, and the tools/resources/prompts methods.
//! Owns: [`McpServer`], [`Era`], [`Sessions`], [`jsonrpc`]. Never: speaks HTTP (that is
//! `http::mcp`, the Streamable HTTP transport) or runs guest code except through `registry`
//! and `runtime`.
//! Limits: [`crate::config::Limits::mcp_sessions`], [`crate::config::Limits::mcp_session_idle_ms`].

pub mod jsonrpc;
mod methods;
mod session;

pub use methods::{BUSY_RETRY_AFTER_SECS, RETRY_AFTER_KEY, content_json};
pub use session::{InFlight, Session, SessionError, Sessions, StreamSlot};

use crate::service::Service;
use jsonrpc::{METHOD_NOT_FOUND, RpcError};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tracing::Instrument;

/// The methods [`McpServer::handle`] answers, for bounded span names.
const KNOWN_METHODS: [&str; 9] = [
    "server/discover",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
];
/// The stateless revision: no sessions, `_meta` on every request.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The session-based revisions served, newest first; `initialize` offers the first when a
/// client asks for one not listed.
pub const SESSION_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// `_meta` keys of the stateless revision.
pub mod meta {
    /// The request's protocol version.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's capabilities.
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The server's identity, on every result.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The listen request a notification belongs to.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
}

/// Every protocol version served, newest first.
pub fn supported_versions() -> Vec<&'static str> {
    std::iter::once(MODERN_VERSION)
        .chain(SESSION_VERSIONS)
        .collect()
}

/// Which protocol era a request is served in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: every request stands alone.
    Stateless,
    /// A session that negotiated `version` at `initialize`.
    Session {
        /// The negotiated version.
        version: &'static str,
    },
}

/// Who is asking, for the sandbox and the history.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The host's request id.
    pub request_id: String,
    /// The authenticated caller, when there is one.
    pub caller_id: Option<String>,
    /// The plugins the caller may see and use, when its key is limited to some.
    pub plugins: Option<Arc<[String]>>,
    /// Where the plugin's progress reports go, when the client asked for progress.
    pub progress: Option<crate::runtime::ProgressSink>,
}

/// A change in one of the lists clients may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChange {
    /// The set of tools changed.
    Tools,
    /// The set of resources changed.
    Resources,
    /// The set of prompts changed.
    Prompts,
}

impl ListChange {
    /// The notification method that announces it.
    pub fn method(self) -> &'static str {
        match self {
            ListChange::Tools => "notifications/tools/list_changed",
            ListChange::Resources => "notifications/resources/list_changed",
            ListChange::Prompts => "notifications/prompts/list_changed",
        }
    }

    /// Its opt-in flag in a `subscriptions/listen` filter.
    pub fn filter_key(self) -> &'static str {
        match self {
            ListChange::Tools => "toolsListChanged",
            ListChange::Resources => "resourcesListChanged",
            ListChange::Prompts => "promptsListChanged",
        }
    }

    /// Every kind.
    pub const ALL: [ListChange; 3] = [
        ListChange::Tools,
        ListChange::Resources,
        ListChange::Prompts,
    ];
}

/// Changes buffered per listening stream; a stream that falls further behind skips ahead.
const CHANGE_BUFFER: usize = 64;

impl RequestContext {
    /// Whether the caller may see and use `plugin`.
    pub fn allows(&self, plugin: &str) -> bool {
        self.plugins
            .as_ref()
            .is_none_or(|plugins| plugins.iter().any(|p| p == plugin))
    }
}

/// The MCP server: method dispatch over the shared [`Service`].
pub struct McpServer {
    service: Arc<Service>,
    /// Sessions of the session-based era.
    pub sessions: Sessions,
    changes: tokio::sync::broadcast::Sender<ListChange>,
}

impl McpServer {
    /// A server over `service`, with session limits from its config.
    pub fn new(service: Arc<Service>) -> Self {
        let limits = &service.limits;
        let sessions = Sessions::new(
            limits.mcp_sessions as usize,
            std::time::Duration::from_millis(limits.mcp_session_idle_ms),
        );
        Self {
            service,
            sessions,
            changes: tokio::sync::broadcast::channel(CHANGE_BUFFER).0,
        }
    }

    /// Announces `change` to every open notification stream.
    pub fn list_changed(&self, change: ListChange) {
        // An error only means nobody is listening.
        let _ = self.changes.send(change);
    }

    /// A receiver of list changes, for one notification stream.
    pub fn watch_changes(&self) -> tokio::sync::broadcast::Receiver<ListChange> {
        self.changes.subscribe()
    }

    /// The server's identity.
    pub fn server_info() -> Value {
        json!({ "name": "waygate", "title": "Waygate", "version": env!("CARGO_PKG_VERSION") })
    }

    /// What the server offers. `listChanged` is true: a plugin reload changes the sets.
    pub fn capabilities() -> Value {
        json!({
            "tools": { "listChanged": true },
            "resources": { "listChanged": true },
            "prompts": { "listChanged": true },
        })
    }

    /// How to use this server, for the model: the naming scheme and the plugins loaded.
    pub fn instructions(&self) -> String {
        let registry = self.service.registry();
        let mut text = format!(
            "Waygate serves the tools, resources and prompts of sandboxed WebAssembly plugins. \
             Tool and prompt names are <plugin>{}<name>. Plugins loaded:",
            crate::registry::NAMESPACE_SEPARATOR
        );
        for plugin in registry.plugins() {
            text.push_str(&format!(
                "\n- {}: {}",
                plugin.manifest.name, plugin.metadata.description
            ));
        }
        text
    }

    /// The `initialize` result for a client asking for `requested`, and the version agreed:
    /// the requested one when served, else the newest session-era version.
    pub fn initialize(&self, requested: Option<&str>) -> (&'static str, Value) {
        let version = SESSION_VERSIONS
            .iter()
            .find(|v| Some(**v) == requested)
            .copied()
            .unwrap_or(SESSION_VERSIONS[0]);
        let result = json!({
            "protocolVersion": version,
            "capabilities": Self::capabilities(),
            "serverInfo": Self::server_info(),
            "instructions": self.instructions(),
        });
        (version, result)
    }

    /// Answers one request in `era`. `initialize` is the transport's (it creates the session).
    ///
    /// # Errors
    ///
    /// The JSON-RPC error to send back.
    pub async fn handle(
        &self,
        era: &Era,
        method: &str,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        // The method is the client's text: an unknown one gets a fixed name.
        let known = KNOWN_METHODS.iter().find(|m| **m == method).copied();
        let name = known.unwrap_or("unknown method");
        let span = tracing::info_span!("mcp", otel.name = name, mcp.method.name = name);
        // A trace context in `_meta` continues the caller's trace from this message on.
        let meta = params.get("_meta").and_then(Value::as_object);
        let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_str);
        crate::telemetry::otel::continue_trace(
            &span,
            field("traceparent"),
            field("tracestate"),
            true,
        );
        self.answer(era, method, params, context)
            .instrument(span)
            .await
    }

    async fn answer(
        &self,
        era: &Era,
        method: &str,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        let stateless = *era == Era::Stateless;
        let (result, cache_ttl_ms) = match method {
            "server/discover" if stateless => (self.discover(), Some(DISCOVER_TTL_MS)),
            "ping" if !stateless => (json!({}), None),
            "tools/list" => (self.list_tools(params, context)?, Some(LIST_TTL_MS)),
            "tools/call" => (self.call_tool(era, params, context).await?, None),
            "resources/list" => (self.list_resources(params, context).await?, Some(0)),
            "resources/templates/list" => {
                methods::cursor_offset(params)?;
                (json!({ "resourceTemplates": [] }), Some(LIST_TTL_MS))
            }
            "resources/read" => (self.read_resource(era, params, context).await?, Some(0)),
            "prompts/list" => (self.list_prompts(params, context)?, Some(LIST_TTL_MS)),
            "prompts/get" => (self.get_prompt(params, context).await?, None),
            _ => {
                return Err(RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("method not found: {method}"),
                ));
            }
        };
        // A key limited to some plugins sees lists made for it alone.
        let scope = if context.plugins.is_some() {
            "private"
        } else {
            "public"
        };
        Ok(if stateless {
            complete(result, cache_ttl_ms, scope)
        } else {
            result
        })
    }

    fn discover(&self) -> Value {
        json!({
            "supportedVersions": supported_versions(),
            "capabilities": Self::capabilities(),
            "instructions": self.instructions(),
        })
    }
}

/// How long a client may cache `server/discover`, in milliseconds.
const DISCOVER_TTL_MS: u64 = 300_000;
/// How long a client may cache a tool or prompt list: they change only on a reload, which
/// also sends `list_changed` to listening clients.
const LIST_TTL_MS: u64 = 60_000;

/// A 2026-07-28 result: `resultType`, the server's identity, and the caching hints of list
/// and read results.
fn complete(mut result: Value, cache_ttl_ms: Option<u64>, cache_scope: &str) -> Value {
    if let Value::Object(fields) = &mut result {
        fields.insert("resultType".into(), json!("complete"));
        let mut server = serde_json::Map::with_capacity(1);
        server.insert(meta::SERVER_INFO.into(), McpServer::server_info());
        fields.insert("_meta".into(), Value::Object(server));
        if let Some(ttl) = cache_ttl_ms {
            fields.insert("ttlMs".into(), json!(ttl));
            fields.insert("cacheScope".into(), json!(cache_scope));
        }
    }
    result
}
