//! The REST endpoints of the API spec that the runtime slice serves: service info, health,
//! readiness, plugins, and the command convenience endpoints under `/mcp/`.

use super::{ApiError, AppState, now_rfc3339};
use crate::registry::LoadedPlugin;
use crate::runtime::{CallError, CallOptions, Content, Limit, ToolResult};
use hyper::body::Bytes;
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Longest timeout a `/mcp/execute` request may ask for, in seconds.
const MAX_EXECUTE_TIMEOUT_SECS: u64 = 300;

type Answer = Result<(StatusCode, Value), ApiError>;

/// Routes one request; `body` is already read and size-checked.
pub(super) async fn route(
    state: &AppState,
    parts: &Parts,
    body: &Bytes,
    request_id: &str,
) -> Answer {
    let path = parts.uri.path();
    let method = &parts.method;
    match (path, method) {
        ("/", &Method::GET) => Ok((StatusCode::OK, service_info())),
        ("/health", &Method::GET) => Ok(health(state)),
        ("/ready", &Method::GET) => Ok(ready(state)),
        ("/plugins", &Method::GET) => Ok(list_plugins(state)),
        ("/mcp/commands", &Method::GET) => Ok(commands(state)),
        ("/mcp/status", &Method::GET) => Ok(status(state)),
        ("/mcp/execute", &Method::POST) => execute(state, body, request_id).await,
        (path, &Method::GET) if path.starts_with("/plugins/") => {
            plugin_info(state, &path["/plugins/".len()..])
        }
        (
            "/" | "/health" | "/ready" | "/plugins" | "/mcp/commands" | "/mcp/status"
            | "/mcp/execute",
            _,
        ) => Err(ApiError::method_not_allowed(method.as_str(), path)),
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}

fn service_info() -> Value {
    json!({
        "service": "Waygate MCP",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "operational",
        "mode": "sandboxed",
        "description": "MCP host running every tool provider as a sandboxed WebAssembly component",
        "documentation": "/docs",
    })
}

fn health(state: &AppState) -> (StatusCode, Value) {
    let database = match state.store.ping() {
        Ok(_) => "ok",
        Err(_) => "failing",
    };
    let registry = state.registry();
    let plugins = if registry.plugins().next().is_some() {
        "ok"
    } else {
        "none loaded"
    };
    let healthy = database == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "checks": { "database": database, "plugins": plugins },
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.started.elapsed().as_secs(),
            "timestamp": now_rfc3339(),
        }),
    )
}

fn ready(state: &AppState) -> (StatusCode, Value) {
    let registry = state.registry();
    let loaded = registry.plugins().count();
    (
        StatusCode::OK,
        json!({ "status": "ready", "plugins_loaded": loaded, "plugins_failed": registry.failures().len() }),
    )
}

fn plugin_json(plugin: &LoadedPlugin) -> Value {
    let limits = plugin.guest.limits();
    json!({
        "name": plugin.manifest.name,
        "version": plugin.metadata.version,
        "description": plugin.metadata.description,
        "author": plugin.metadata.author,
        "status": "active",
        "capabilities": plugin.metadata.capabilities,
        "config": plugin.manifest.config_json(),
        "tools": plugin.tools.iter().map(|t| t.tool.name.clone()).collect::<Vec<_>>(),
        "content_hash": plugin.guest.content_hash(),
        "limits": {
            "memory_mib": limits.memory_mib,
            "fuel": limits.fuel,
            "timeout_ms": limits.timeout_ms,
            "max_concurrency": limits.max_concurrency,
        },
    })
}

fn list_plugins(state: &AppState) -> (StatusCode, Value) {
    let registry = state.registry();
    let mut plugins: Vec<Value> = registry.plugins().map(|p| plugin_json(p)).collect();
    plugins.extend(registry.failures().iter().map(|f| {
        json!({ "name": f.plugin, "status": "failed", "error": f.reason, "path": f.path.display().to_string() })
    }));
    let total = plugins.len();
    (
        StatusCode::OK,
        json!({ "plugins": plugins, "total": total }),
    )
}

fn plugin_info(state: &AppState, name: &str) -> Answer {
    let registry = state.registry();
    match registry.plugin(name) {
        Some(plugin) => Ok((StatusCode::OK, plugin_json(plugin))),
        None => Err(ApiError::not_found(format!("unknown plugin {name:?}"))),
    }
}

fn commands(state: &AppState) -> (StatusCode, Value) {
    let registry = state.registry();
    let commands: Vec<Value> = registry
        .tools()
        .map(|(plugin, entry)| {
            json!({
                "name": entry.tool.name,
                "plugin": plugin.manifest.name,
                "description": entry.tool.description,
                "parameters": entry.input_schema,
            })
        })
        .collect();
    let total = commands.len();
    (
        StatusCode::OK,
        json!({ "commands": commands, "total": total }),
    )
}

fn status(state: &AppState) -> (StatusCode, Value) {
    let registry = state.registry();
    let commands: Vec<&str> = registry
        .tools()
        .map(|(_, e)| e.tool.name.as_str())
        .collect();
    (
        StatusCode::OK,
        json!({
            "engine": "operational",
            "plugins_loaded": registry.plugins().count(),
            "commands_available": commands,
            "protocol_version": "1.0",
            "capabilities": { "async": true, "batch": false, "streaming": false },
        }),
    )
}

/// The body of `POST /mcp/execute` (API spec 2.2).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteRequest {
    action: String,
    #[serde(default = "empty_object")]
    params: Value,
    /// The spec's execution context. Accepted but not passed on: `user_id` in it is the
    /// client's own claim, and plugins are promised an authenticated caller id.
    #[serde(default, rename = "context")]
    _context: Option<Value>,
    #[serde(default)]
    timeout: Option<u64>,
}

fn empty_object() -> Value {
    json!({})
}

async fn execute(state: &AppState, body: &Bytes, request_id: &str) -> Answer {
    let request: ExecuteRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid command: {e}")))?;
    if let Some(timeout) = request.timeout
        && (timeout == 0 || timeout > MAX_EXECUTE_TIMEOUT_SECS)
    {
        return Err(ApiError::invalid_request(format!(
            "timeout must be 1 to {MAX_EXECUTE_TIMEOUT_SECS} seconds, got {timeout}"
        )));
    }
    let options = CallOptions {
        request_id: request_id.to_owned(),
        caller_id: None,
        timeout: request.timeout.map(Duration::from_secs),
    };
    let started = Instant::now();
    let registry = state.registry();
    let outcome = registry
        .call_tool(&state.runtime, &request.action, &request.params, options)
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let answer = |status: StatusCode, label: &str, result: Value, error: Value| {
        (
            status,
            json!({
                "status": label,
                "result": result,
                "error": error,
                "duration_ms": duration_ms,
                "command_id": format!("cmd_{}", request_id.trim_start_matches("req_")),
                "timestamp": now_rfc3339(),
            }),
        )
    };
    match outcome {
        Ok(Ok(result)) if !result.is_error => Ok(answer(
            StatusCode::OK,
            "success",
            result_json(&result),
            Value::Null,
        )),
        Ok(Ok(result)) => {
            let message = first_text(&result)
                .unwrap_or("the tool reported an error")
                .to_owned();
            Ok(answer(
                StatusCode::OK,
                "failed",
                result_json(&result),
                Value::String(message),
            ))
        }
        Ok(Err(CallError::InvalidArguments(message))) => Err(ApiError::invalid_request(format!(
            "invalid arguments for {:?}: {message}",
            request.action
        ))),
        Ok(Err(CallError::UnknownTool(tool))) => {
            Err(ApiError::not_found(format!("unknown tool {tool:?}")))
        }
        Ok(Err(CallError::Failed(message))) => Ok(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            Value::Null,
            Value::String(message),
        )),
        Err(crate::registry::Error::Runtime(error)) if error.limit() == Some(Limit::WallTime) => {
            Ok(answer(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                Value::Null,
                Value::String(error.to_string()),
            ))
        }
        Err(crate::registry::Error::Runtime(error))
            if matches!(
                error.limit(),
                Some(Limit::Concurrency | Limit::InstancePool)
            ) =>
        {
            Ok(answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "failed",
                Value::Null,
                Value::String(error.to_string()),
            ))
        }
        Err(crate::registry::Error::Runtime(
            error @ crate::runtime::Error::LimitExceeded { .. },
        ))
        | Err(crate::registry::Error::Runtime(error @ crate::runtime::Error::Trap { .. })) => {
            Ok(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed",
                Value::Null,
                Value::String(error.to_string()),
            ))
        }
        Err(error) => Err(error.into()),
    }
}

fn first_text(result: &ToolResult) -> Option<&str> {
    result.content.iter().find_map(|c| match c {
        Content::Text(text) => Some(text.as_str()),
        _ => None,
    })
}

/// The command result: `message` from the first text item, `data` from the first JSON
/// item, and every item in MCP's content shape.
fn result_json(result: &ToolResult) -> Value {
    let data = result.content.iter().find_map(|c| match c {
        Content::Json(text) => serde_json::from_str::<Value>(text).ok(),
        _ => None,
    });
    json!({
        "message": first_text(result),
        "data": data,
        "content": result.content.iter().map(content_json).collect::<Vec<_>>(),
    })
}

/// One content item in MCP's wire shape.
pub(crate) fn content_json(content: &Content) -> Value {
    match content {
        Content::Text(text) | Content::Json(text) => json!({ "type": "text", "text": text }),
        Content::Image(b) => {
            json!({ "type": "image", "data": b.data_base64, "mimeType": b.mime_type })
        }
        Content::Audio(b) => {
            json!({ "type": "audio", "data": b.data_base64, "mimeType": b.mime_type })
        }
        Content::ResourceLink(link) => {
            let mut item = json!({ "type": "resource_link", "uri": link.uri, "name": link.name });
            if let Some(d) = &link.description {
                item["description"] = json!(d);
            }
            if let Some(m) = &link.mime_type {
                item["mimeType"] = json!(m);
            }
            item
        }
    }
}
