//! The REST endpoints of the API spec: the route table, service info, health, readiness,
//! metrics, plugins, commands and their history, and `/mcp/execute`.
//! Owns: [`ROUTES`], the REST handlers, `openapi.json`. Never: builds JSON-RPC.
//! Limits: `/mcp/execute` timeouts of 1 to [`MAX_EXECUTE_TIMEOUT_SECS`] seconds.

use super::query::{self, Page};
use super::{ApiError, AppState, Body, bytes_response, diagnostics, json_response, now_rfc3339};
use crate::auth::Principal;
use crate::mcp::content_json;
use crate::registry::LoadedPlugin;
use crate::runtime::{CallError, CallOptions, Content, HostPattern, HttpMethod, Limit, ToolResult};
use crate::service::{ReloadReport, Source};
use crate::telemetry::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use hyper::body::Bytes;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every route: its path template and methods. The OpenAPI document is checked against it.
pub const ROUTES: &[(&str, &[Method])] = &[
    ("/", &[Method::GET]),
    ("/health", &[Method::GET]),
    ("/ready", &[Method::GET]),
    ("/metrics", &[Method::GET]),
    ("/openapi.json", &[Method::GET]),
    ("/mcp", &[Method::POST, Method::GET, Method::DELETE]),
    ("/mcp/execute", &[Method::POST]),
    ("/mcp/status", &[Method::GET]),
    ("/mcp/commands", &[Method::GET]),
    ("/mcp/commands/history", &[Method::GET]),
    ("/plugins", &[Method::GET]),
    ("/plugins/reload", &[Method::POST]),
    ("/plugins/{name}", &[Method::GET]),
    ("/plugins/{name}/disable", &[Method::POST]),
    ("/plugins/{name}/enable", &[Method::POST]),
    ("/plugins/{name}/reload", &[Method::POST]),
    ("/diagnostics/connection", &[Method::GET]),
    ("/diagnostics/performance", &[Method::GET]),
    ("/diagnostics/errors", &[Method::GET]),
    ("/diagnostics/log-level", &[Method::PUT]),
    ("/.well-known/oauth-protected-resource", &[Method::GET]),
    ("/.well-known/oauth-protected-resource/mcp", &[Method::GET]),
];

/// The route template `path` matches: the metrics label, never the raw path.
pub(super) fn template(path: &str) -> Option<&'static str> {
    // Exact routes first, so a fixed route under /plugins/ is never taken for a plugin name
    // (and checked with a plugin page's role).
    if let Some(exact) = ROUTES
        .iter()
        .map(|(template, _)| *template)
        .find(|template| *template == path && !template.contains('{'))
    {
        return Some(exact);
    }
    let rest = path.strip_prefix("/plugins/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some("/plugins/{name}"),
        Some((name, "disable")) if !name.is_empty() => Some("/plugins/{name}/disable"),
        Some((name, "enable")) if !name.is_empty() => Some("/plugins/{name}/enable"),
        Some((name, "reload")) if !name.is_empty() => Some("/plugins/{name}/reload"),
        _ => None,
    }
}

/// The OpenAPI document of these routes.
const OPENAPI: &str = include_str!("openapi.json");

/// Longest timeout a `/mcp/execute` request may ask for, in seconds.
const MAX_EXECUTE_TIMEOUT_SECS: u64 = 300;

type Answer = Result<Response<Body>, ApiError>;

fn ok(json: &Value) -> Answer {
    Ok(json_response(StatusCode::OK, json))
}

/// Routes one request to the route `template` it matched; `body` is already read and
/// size-checked.
pub(super) async fn route(
    state: &Arc<AppState>,
    parts: &Parts,
    template: &'static str,
    body: &Bytes,
    request_id: &str,
    principal: &Principal,
) -> Answer {
    let path = parts.uri.path();
    let method = &parts.method;
    match (template, method) {
        ("/", &Method::GET) => ok(&service_info()),
        ("/health", &Method::GET) => Ok(health(state).await),
        ("/ready", &Method::GET) => Ok(ready(state)),
        ("/metrics", &Method::GET) => Ok(metrics(state, parts)),
        ("/openapi.json", &Method::GET) => Ok(bytes_response(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(OPENAPI.as_bytes()),
        )),
        ("/plugins", &Method::GET) => list_plugins(state, parts, principal),
        ("/plugins/reload", &Method::POST) => {
            let report = super::reload(state, super::ReloadOrigin::Here)
                .await
                .map_err(|busy| ApiError::conflict(busy.to_string()))?;
            ok(&reload_json(state, &report))
        }
        ("/plugins/{name}/reload", &Method::POST) => {
            let name = plugin_segment(path);
            let report = super::reload_plugin(state, name, super::ReloadOrigin::Here)
                .await
                .map_err(|busy| ApiError::conflict(busy.to_string()))?
                .ok_or_else(|| ApiError::not_found(format!("unknown plugin {name:?}")))?;
            ok(&reload_json(state, &report))
        }
        ("/plugins/{name}/disable", &Method::POST) => {
            switch_plugin(state, plugin_segment(path), true).await
        }
        ("/plugins/{name}/enable", &Method::POST) => {
            switch_plugin(state, plugin_segment(path), false).await
        }
        ("/plugins/{name}", &Method::GET) => plugin_info(state, plugin_segment(path), principal),
        ("/mcp/commands", &Method::GET) => ok(&commands(state, principal)),
        ("/mcp/commands/history", &Method::GET) => history(state, parts).await,
        ("/mcp/status", &Method::GET) => ok(&status(state, principal)),
        ("/mcp/execute", &Method::POST) => execute(state, body, request_id, principal).await,
        ("/diagnostics/connection", &Method::GET) => ok(&diagnostics::connection(state)),
        ("/diagnostics/performance", &Method::GET) => ok(&diagnostics::performance(state)),
        ("/diagnostics/log-level", &Method::PUT) => set_log_level(state, body),
        ("/diagnostics/errors", &Method::GET) => {
            diagnostics::errors(state, parts).map(|v| json_response(StatusCode::OK, &v))
        }
        (
            "/.well-known/oauth-protected-resource" | "/.well-known/oauth-protected-resource/mcp",
            &Method::GET,
        ) => match state.oauth_metadata() {
            Some(metadata) => ok(&metadata),
            None => Err(ApiError::not_found(
                "this server takes no OAuth tokens: [auth.oauth] is not configured",
            )),
        },
        (template, method) => {
            let allowed = ROUTES
                .iter()
                .find(|(t, _)| *t == template)
                .map_or(&[][..], |(_, methods)| *methods);
            Err(ApiError::method_not_allowed(method.as_str(), path, allowed))
        }
    }
}

/// `/metrics` in the format the scraper asks for: OpenMetrics when its `Accept` names it,
/// else the Prometheus text format of the API spec.
fn metrics(state: &AppState, parts: &Parts) -> Response<Body> {
    let open_metrics = parts
        .headers
        .get(hyper::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let metrics = &state.service.metrics;
    // A gauge the session table answers cheaply, read when scraped instead of kept in step.
    let sessions = i64::try_from(state.mcp.sessions.len()).unwrap_or(i64::MAX);
    metrics.mcp_sessions.set(sessions);
    let (content_type, text) = if open_metrics {
        (OPENMETRICS_CONTENT_TYPE, metrics.encode())
    } else {
        (PROMETHEUS_CONTENT_TYPE, metrics.encode_prometheus())
    };
    bytes_response(StatusCode::OK, content_type, text.into_bytes())
}

fn service_info() -> Value {
    json!({
        "service": "Waygate MCP",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "operational",
        "mode": "sandboxed",
        "description": "MCP host running every tool provider as a sandboxed WebAssembly component",
        "documentation": "/openapi.json",
        "mcp_endpoint": "/mcp",
    })
}

/// One health check's verdict and how long it took.
struct Check {
    name: &'static str,
    ok: bool,
    status: String,
    latency_ms: f64,
}

async fn timed(name: &'static str, check: impl Future<Output = Result<String, String>>) -> Check {
    let started = Instant::now();
    let outcome = check.await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (ok, status) = match outcome {
        Ok(status) => (true, status),
        Err(status) => (false, status),
    };
    Check {
        name,
        ok,
        status,
        latency_ms,
    }
}

async fn health(state: &AppState) -> Response<Body> {
    let service = &state.service;
    let database = timed("database", async {
        let store = service.store.clone();
        let ping = tokio::task::spawn_blocking(move || store.ping()).await;
        match ping {
            Ok(Ok(())) if service.history.failing() => {
                Err("failing: command history writes fail".to_owned())
            }
            Ok(Ok(())) => Ok("ok".to_owned()),
            Ok(Err(error)) => Err(format!("failing: {error}")),
            Err(error) => Err(format!("failing: {error}")),
        }
    })
    .await;
    let registry = service.registry();
    let plugins = timed("plugins", async {
        let unreadable = registry.failures().iter().find(|f| f.plugin.is_empty());
        match unreadable {
            Some(failure) => Err(format!("failing: {}", failure.reason)),
            None => Ok("ok".to_owned()),
        }
    })
    .await;
    let cache = timed("cache", async {
        let runtime = service.runtime.clone();
        let checked =
            tokio::task::spawn_blocking(move || runtime.check_cache_dir().map(|dir| dir.is_some()))
                .await;
        match checked {
            Ok(Ok(true)) => Ok("ok".to_owned()),
            Ok(Ok(false)) => Ok("disabled".to_owned()),
            Ok(Err(reason)) => Err(format!("failing: {reason}")),
            Err(error) => Err(format!("failing: {error}")),
        }
    })
    .await;
    let checks = [database, plugins, cache];
    let healthy = checks.iter().all(|c| c.ok);
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "checks": checks.iter().map(|c| (c.name.to_owned(), json!(c.status))).collect::<serde_json::Map<_, _>>(),
        "latency_ms": checks.iter().map(|c| (c.name.to_owned(), json!(c.latency_ms))).collect::<serde_json::Map<_, _>>(),
        "plugins": { "loaded": registry.plugins().count(), "failed": registry.failures().len() },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": service.started.elapsed().as_secs(),
        "timestamp": now_rfc3339(),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

fn ready(state: &AppState) -> Response<Body> {
    let registry = state.service.registry();
    let ready = !*state.shutting_down.borrow();
    json_response(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({
            "ready": ready,
            "plugins_loaded": registry.plugins().count(),
            "plugins_failed": registry.failures().len(),
        }),
    )
}

fn plugin_json(state: &AppState, plugin: &LoadedPlugin, statistics: bool) -> Value {
    let limits = plugin.guest.limits();
    let mut value = json!({
        "name": plugin.manifest.name,
        "version": plugin.metadata.version,
        "description": plugin.metadata.description,
        "author": plugin.metadata.author,
        "status": "active",
        "capabilities": plugin.metadata.capabilities,
        "config": plugin.shown_config,
        "tools": plugin.tools.iter().map(|t| t.qualified_name.clone()).collect::<Vec<_>>(),
        "prompts": plugin.prompts.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
        "content_hash": plugin.guest.content_hash(),
        "limits": {
            "memory_mib": limits.memory_mib,
            "fuel": limits.fuel,
            "timeout_ms": limits.timeout_ms,
            "max_concurrency": limits.max_concurrency,
            "output_bytes": limits.output_bytes,
            "result_bytes": limits.result_bytes,
            "kv_quota_bytes": limits.kv_quota_bytes,
            "log_lines": limits.log_lines,
            "http_timeout_ms": limits.http_timeout_ms,
            "http_response_bytes": limits.http_response_bytes,
            "http_requests": limits.http_requests,
        },
        "grants": {
            "http": plugin.guest.http_grant().map(|http| json!({
                "allow": http.allow().map(HostPattern::as_str).collect::<Vec<_>>(),
                "methods": http.methods().map(HttpMethod::as_str).collect::<Vec<_>>(),
                "allowed_networks": http.allowed_networks().iter().map(ToString::to_string).collect::<Vec<_>>(),
            })),
            "filesystem": false,
            "environment": false,
            "sockets": false,
        },
    });
    if statistics {
        let (calls, errors, mean_ms) = state
            .service
            .plugin_stats(&plugin.manifest.name)
            .map_or((0, 0, 0.0), |s| s.snapshot());
        value["statistics"] = json!({
            "calls_total": calls,
            "errors_total": errors,
            "avg_duration_ms": mean_ms,
        });
    }
    value
}

fn list_plugins(state: &AppState, parts: &Parts, principal: &Principal) -> Answer {
    let page = Page::from_query(&query::pairs(parts))?;
    let registry = state.service.registry();
    // A key limited to some plugins sees only those (and no load failures).
    let loaded = registry
        .plugins()
        .filter(|p| principal.may_use(&p.manifest.name))
        .map(|p| plugin_json(state, p, false));
    let failures = registry
        .failures()
        .iter()
        .filter(|_| principal.plugins.is_none());
    let failed = failures.map(|f| {
        json!({ "name": f.plugin, "status": "failed", "error": f.reason, "path": f.path.display().to_string() })
    });
    let disabled = registry
        .disabled()
        .iter()
        .filter(|(name, _)| principal.may_use(name))
        .map(|(name, path)| json!({ "name": name, "status": "disabled", "path": path.display().to_string() }));
    let all: Vec<Value> = loaded.chain(failed).chain(disabled).collect();
    let total = all.len() as u64;
    let plugins: Vec<Value> = all
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .collect();
    Ok(page.respond("plugins", Value::Array(plugins), total, parts))
}

/// `PUT /diagnostics/log-level` with `{"level": "debug"}` or any tracing filter.
fn set_log_level(state: &AppState, body: &Bytes) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LogLevel {
        level: String,
    }
    let request: LogLevel = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("expected {{\"level\": \"…\"}}: {e}")))?;
    match state.set_log_level(&request.level) {
        Some(Ok(())) => {
            tracing::warn!(level = %request.level, "log level changed");
            ok(&json!({ "level": request.level }))
        }
        Some(Err(reason)) => Err(ApiError::invalid_request(reason)),
        None => Err(ApiError::unavailable(
            "this process's log level cannot be changed",
        )),
    }
}

/// The `{name}` of a `/plugins/{name}…` path.
fn plugin_segment(path: &str) -> &str {
    let rest = path.strip_prefix("/plugins/").unwrap_or_default();
    rest.split('/').next().unwrap_or_default()
}

/// Takes plugin `name` out of service, or back in: the wish is stored (it outlasts reloads
/// and restarts), then the plugins are reloaded so it holds at once.
async fn switch_plugin(state: &AppState, name: &str, disable: bool) -> Answer {
    let registry = state.service.registry();
    let known = registry.plugin(name).is_some()
        || registry.failures().iter().any(|f| f.plugin == name)
        || registry.disabled().iter().any(|(n, _)| n == name);
    if !known {
        return Err(ApiError::not_found(format!("unknown plugin {name:?}")));
    }
    let store = state.service.store.clone();
    let owned = name.to_owned();
    tokio::task::spawn_blocking(move || store.set_plugin_disabled(&owned, disable))
        .await
        .map_err(|e| ApiError::internal("", &e))?
        .map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    let report = super::reload(state, super::ReloadOrigin::Here)
        .await
        .map_err(|busy| {
            ApiError::conflict(format!("{busy}; the change applies at the next reload"))
        })?;
    let registry = state.service.registry();
    let status = if registry.disabled().iter().any(|(n, _)| n == name) {
        "disabled"
    } else if report.failed.iter().any(|f| f.plugin == name) {
        "failed"
    } else {
        "active"
    };
    ok(
        &json!({ "name": name, "status": status, "duration_ms": report.duration.as_millis() as u64 }),
    )
}

/// A reload's answer, in the API spec's shape.
fn reload_json(state: &AppState, report: &ReloadReport) -> Value {
    let serving = state.service.registry().plugins().count();
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|f| {
            json!({
                "name": f.plugin,
                "error": f.reason,
                "path": f.path.display().to_string(),
                "serving_version": f.serving,
            })
        })
        .collect();
    json!({
        "status": "plugins_reloaded",
        "count": serving,
        "loaded": report.loaded,
        "failed": failed,
        "duration_ms": report.duration.as_millis() as u64,
    })
}

fn plugin_info(state: &AppState, name: &str, principal: &Principal) -> Answer {
    let registry = state.service.registry();
    match registry.plugin(name).filter(|_| principal.may_use(name)) {
        Some(plugin) => ok(&plugin_json(state, plugin, true)),
        None => Err(ApiError::not_found(format!("unknown plugin {name:?}"))),
    }
}

fn commands(state: &AppState, principal: &Principal) -> Value {
    let registry = state.service.registry();
    let commands: Vec<Value> = registry
        .tools()
        .filter(|(plugin, _)| principal.may_use(&plugin.manifest.name))
        .map(|(plugin, entry)| {
            json!({
                "name": entry.qualified_name,
                "tool": entry.tool.name,
                "plugin": plugin.manifest.name,
                "description": entry.tool.description,
                "parameters": entry.input_schema,
            })
        })
        .collect();
    let total = commands.len();
    json!({ "commands": commands, "total": total })
}

async fn history(state: &AppState, parts: &Parts) -> Answer {
    let page = Page::from_query(&query::pairs(parts))?;
    let store = state.service.store.clone();
    let (offset, limit) = (page.offset(), page.limit);
    let read = tokio::task::spawn_blocking(move || store.command_history(offset, limit)).await;
    let (rows, total) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => return Err(ApiError::unavailable(format!("database: {error}"))),
        Err(error) => return Err(ApiError::internal("", &error)),
    };
    Ok(page.respond("commands", json!(rows), total, parts))
}

fn status(state: &AppState, principal: &Principal) -> Value {
    let registry = state.service.registry();
    let commands: Vec<&str> = registry
        .tools()
        .filter(|(plugin, _)| principal.may_use(&plugin.manifest.name))
        .map(|(_, e)| e.qualified_name.as_str())
        .collect();
    json!({
        "engine": "operational",
        "plugins_loaded": registry.plugins().count(),
        "commands_available": commands,
        "protocol_version": crate::mcp::MODERN_VERSION,
        "protocol_versions": crate::mcp::supported_versions(),
        "capabilities": { "async": true, "batch": false, "streaming": true },
    })
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
    _context: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    timeout: Option<u64>,
}

fn empty_object() -> Value {
    json!({})
}

async fn execute(
    state: &AppState,
    body: &Bytes,
    request_id: &str,
    principal: &Principal,
) -> Answer {
    let request: ExecuteRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid command: {e}")))?;
    if !request.params.is_object() {
        return Err(ApiError::invalid_request("params must be an object"));
    }
    if let Some(timeout) = request.timeout
        && (timeout == 0 || timeout > MAX_EXECUTE_TIMEOUT_SECS)
    {
        return Err(ApiError::invalid_request(format!(
            "timeout must be 1 to {MAX_EXECUTE_TIMEOUT_SECS} seconds, got {timeout}"
        )));
    }
    let options = CallOptions {
        request_id: request_id.to_owned(),
        caller_id: principal.caller_id(),
        timeout: Some(Duration::from_secs(
            request.timeout.unwrap_or(DEFAULT_EXECUTE_TIMEOUT_SECS),
        )),
        ..CallOptions::default()
    };
    let outcome = state
        .service
        .call_tool(
            &request.action,
            &request.params,
            options,
            Source::Rest,
            principal.plugins.as_deref(),
        )
        .await
        .map_err(|busy| ApiError::busy(busy.to_string(), crate::mcp::BUSY_RETRY_AFTER_SECS))?;
    let duration_ms = outcome.duration.as_millis() as u64;
    let answer = |status: StatusCode, label: &str, result: Value, error: Value| {
        Ok(json_response(
            status,
            &json!({
                "status": label,
                "result": result,
                "error": error,
                "duration_ms": duration_ms,
                "command_id": format!("cmd_{}", request_id.trim_start_matches("req_")),
                "timestamp": now_rfc3339(),
            }),
        ))
    };
    let failed = |status: StatusCode, error: &dyn std::fmt::Display| {
        answer(status, "failed", Value::Null, json!(error.to_string()))
    };
    match outcome.result {
        Ok(Ok(result)) if !result.is_error => {
            answer(StatusCode::OK, "success", result_json(&result), Value::Null)
        }
        Ok(Ok(result)) => {
            let message = first_text(&result)
                .unwrap_or("the tool reported an error")
                .to_owned();
            answer(
                StatusCode::OK,
                "failed",
                result_json(&result),
                json!(message),
            )
        }
        Ok(Err(CallError::InvalidArguments(message))) => Err(ApiError::invalid_request(format!(
            "invalid arguments for {:?}: {message}",
            request.action
        ))),
        Ok(Err(CallError::UnknownTool(tool))) => {
            Err(ApiError::not_found(format!("unknown tool {tool:?}")))
        }
        Ok(Err(CallError::Failed(message))) => failed(StatusCode::INTERNAL_SERVER_ERROR, &message),
        Err(crate::registry::Error::Runtime(error)) => match error.limit() {
            Some(Limit::WallTime) => answer(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                Value::Null,
                json!(error.to_string()),
            ),
            Some(Limit::Concurrency | Limit::InstancePool) => {
                failed(StatusCode::SERVICE_UNAVAILABLE, &error)
            }
            Some(_) => failed(StatusCode::INTERNAL_SERVER_ERROR, &error),
            None if matches!(error, crate::runtime::Error::Trap { .. }) => {
                failed(StatusCode::INTERNAL_SERVER_ERROR, &error)
            }
            None => Err(error.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// The spec's default `/mcp/execute` timeout, in seconds.
const DEFAULT_EXECUTE_TIMEOUT_SECS: u64 = 30;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The OpenAPI document names exactly the routes and methods the router serves.
    #[test]
    fn openapi_document_matches_the_routes() {
        let document: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                    .map(move |method| (path.clone(), method.to_uppercase()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(move |m| ((*path).to_owned(), m.as_str().to_owned()))
            })
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn every_fixed_route_is_its_own_template() {
        for (route, _) in ROUTES.iter().filter(|(r, _)| !r.contains('{')) {
            assert_eq!(template(route), Some(*route));
        }
    }

    #[test]
    fn templates_never_carry_raw_paths() {
        assert_eq!(template("/plugins/echo"), Some("/plugins/{name}"));
        assert_eq!(template("/plugins/a/b"), None);
        assert_eq!(template("/plugins/"), None);
        assert_eq!(template("/mcp"), Some("/mcp"));
        assert_eq!(template("/nope"), None);
    }
}
