//! The tools, resources and prompts methods: listing with cursors, calls into the sandbox,
//! and the mapping of plugin results and failures to MCP results and JSON-RPC errors.
//! Owns: the `impl McpServer` list/call/read/get methods, [`content_json`].
//! Never: answers a plugin failure with a protocol error (it is `isError`), or a protocol
//! problem with a tool result.
//! Limits: [`PAGE_SIZE`] items per page.

use super::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError};
use super::{Era, McpServer, RequestContext};
use crate::registry::{self, LoadedPlugin};
use crate::runtime::{
    self, CallError, CallOptions, Content, PromptError, ResourceBody, ResourceError, Role,
};
use crate::service::Source;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Key of a JSON-RPC error's `data` telling the transport to answer 503 with this
/// `Retry-After`: the server is too busy to start the call.
pub const RETRY_AFTER_KEY: &str = "retryAfterSeconds";
/// Seconds a refused call is told to wait.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Items per page of a list result.
const PAGE_SIZE: usize = 100;

/// The offset a request's `cursor` stands for; no cursor is the first page.
///
/// # Errors
///
/// [`INVALID_PARAMS`] for a cursor this server did not hand out.
pub(super) fn cursor_offset(params: &Map<String, Value>) -> Result<usize, RpcError> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(cursor)) if cursor.is_empty() => Ok(0),
        Some(Value::String(cursor)) => cursor
            .strip_prefix("page:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor {cursor:?}"))),
        Some(_) => Err(RpcError::invalid_params("cursor must be a string")),
    }
}

/// One page of `items` from the request's cursor, as `{ <key>: [...], nextCursor? }`.
fn page(
    key: &str,
    items: impl Iterator<Item = Value>,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let offset = cursor_offset(params)?;
    let mut items = items.skip(offset);
    let page: Vec<Value> = items.by_ref().take(PAGE_SIZE).collect();
    let mut result = json!({ key: page });
    if items.next().is_some() {
        result["nextCursor"] = json!(format!("page:{}", offset + PAGE_SIZE));
    }
    Ok(result)
}

fn required_str<'a>(params: &'a Map<String, Value>, key: &str) -> Result<&'a str, RpcError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("params.{key} must be a string")))
}

fn options(context: &RequestContext) -> CallOptions {
    CallOptions {
        request_id: context.request_id.clone(),
        caller_id: context.caller_id.clone(),
        timeout: None,
        progress: context.progress.clone(),
    }
}

/// One content item in MCP's wire shape. JSON content goes out as text, its serialized
/// form, as the spec asks alongside `structuredContent`.
pub fn content_json(content: &Content) -> Value {
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

/// The error for a request refused because too many are in progress: the transport answers
/// it with 503 and `Retry-After`.
fn busy_error(busy: &crate::service::Busy) -> RpcError {
    RpcError::new(INTERNAL_ERROR, busy.to_string())
        .with_data(json!({ (RETRY_AFTER_KEY): BUSY_RETRY_AFTER_SECS }))
}

/// A tool-level failure: an `isError` result the model can read and act on.
fn tool_error(message: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": message.into() }], "isError": true })
}

/// A host fault: logged here with its cause, answered with a generic message.
fn internal(context: &RequestContext, cause: &dyn std::fmt::Display) -> RpcError {
    tracing::error!(request_id = %context.request_id, error = %cause, "internal error");
    RpcError::new(INTERNAL_ERROR, "internal error")
}

impl McpServer {
    pub(super) fn list_tools(
        &self,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        let registry = self.service.registry();
        let visible = registry
            .tools()
            .filter(|(plugin, _)| context.allows(&plugin.manifest.name));
        let tools = visible.map(|(_, entry)| {
            let tool = &entry.tool;
            let mut item = json!({
                "name": entry.qualified_name,
                "description": tool.description,
                "inputSchema": entry.input_schema,
            });
            if let Some(title) = &tool.title {
                item["title"] = json!(title);
            }
            if let Some(schema) = &entry.output_schema {
                item["outputSchema"] = schema.clone();
            }
            let hints = &tool.hints;
            let mut annotations = Map::new();
            if let Some(title) = &tool.title {
                annotations.insert("title".into(), json!(title));
            }
            for (key, value) in [
                ("readOnlyHint", hints.read_only),
                ("destructiveHint", hints.destructive),
                ("idempotentHint", hints.idempotent),
                ("openWorldHint", hints.open_world),
            ] {
                if let Some(value) = value {
                    annotations.insert(key.into(), json!(value));
                }
            }
            if !annotations.is_empty() {
                item["annotations"] = Value::Object(annotations);
            }
            item
        });
        page("tools", tools, params)
    }

    pub(super) async fn call_tool(
        &self,
        era: &Era,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        let name = required_str(params, "name")?;
        let empty = json!({});
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(arguments @ Value::Object(_)) => arguments,
            Some(_) => {
                return Err(RpcError::invalid_params(
                    "params.arguments must be an object",
                ));
            }
        };
        let outcome = self
            .service
            .call_tool(
                name,
                arguments,
                options(context),
                Source::Mcp,
                context.plugins.as_deref(),
            )
            .await
            .map_err(|busy| busy_error(&busy))?;
        match outcome.result {
            Ok(Ok(result)) => {
                // Not `json!`: it would serialize the content array into a copy of itself.
                let mut answer = serde_json::Map::with_capacity(3);
                answer.insert(
                    "content".into(),
                    Value::Array(result.content.iter().map(content_json).collect()),
                );
                answer.insert("isError".into(), Value::Bool(result.is_error));
                // The first JSON item is the structured result; the session era allows only
                // an object there.
                let structured = result.content.iter().find_map(|c| match c {
                    Content::Json(text) => serde_json::from_str::<Value>(text).ok(),
                    _ => None,
                });
                if let Some(structured) = structured
                    && (*era == Era::Stateless || structured.is_object())
                {
                    answer.insert("structuredContent".into(), structured);
                }
                Ok(Value::Object(answer))
            }
            Ok(Err(CallError::InvalidArguments(message))) => {
                Ok(tool_error(format!("invalid arguments: {message}")))
            }
            Ok(Err(CallError::Failed(message))) => Ok(tool_error(message)),
            Ok(Err(CallError::UnknownTool(tool))) => {
                Err(RpcError::invalid_params(format!("unknown tool: {tool}")))
            }
            Err(
                error @ (registry::Error::UnknownTool { .. }
                | registry::Error::AmbiguousTool { .. }),
            ) => Err(RpcError::invalid_params(error.to_string())),
            Err(registry::Error::InvalidArguments { tool, problems }) => Ok(tool_error(format!(
                "invalid arguments for {tool}: {}",
                problems.join("; ")
            ))),
            Err(registry::Error::Runtime(
                error @ (runtime::Error::LimitExceeded { .. } | runtime::Error::Trap { .. }),
            )) => Ok(tool_error(error.to_string())),
            Err(registry::Error::Runtime(error)) => Err(internal(context, &error)),
        }
    }

    /// Every plugin's resources with the plugin that serves each, plugins in name order.
    /// A plugin whose listing fails is left out and logged; the others still answer.
    async fn all_resources(
        &self,
        context: &RequestContext,
    ) -> Vec<(Arc<LoadedPlugin>, runtime::Resource)> {
        let registry = self.service.registry();
        let mut tasks = tokio::task::JoinSet::new();
        let visible = registry
            .plugins()
            .filter(|plugin| context.allows(&plugin.manifest.name));
        for (index, plugin) in visible.enumerate() {
            let plugin = plugin.clone();
            let runtime = self.service.runtime.clone();
            let options = options(context);
            tasks.spawn(async move {
                let listed = runtime.list_resources(&plugin.guest, options).await;
                (index, plugin, listed)
            });
        }
        let mut listed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, plugin, Ok(resources))) => listed.push((index, plugin, resources)),
                Ok((_, plugin, Err(error))) => tracing::warn!(
                    plugin = %plugin.manifest.name, %error, "listing resources failed"
                ),
                Err(error) => tracing::error!(%error, "resource listing task failed"),
            }
        }
        listed.sort_by_key(|(index, _, _)| *index);
        listed
            .into_iter()
            .flat_map(|(_, plugin, resources)| {
                resources.into_iter().map(move |r| (plugin.clone(), r))
            })
            .collect()
    }

    pub(super) async fn list_resources(
        &self,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        cursor_offset(params)?;
        let _slot = self.service.enter().map_err(|busy| busy_error(&busy))?;
        let resources = self.all_resources(context).await;
        let items = resources.into_iter().map(|(_, resource)| {
            let mut item = json!({ "uri": resource.uri, "name": resource.name });
            for (key, value) in [
                ("title", resource.title),
                ("description", resource.description),
                ("mimeType", resource.mime_type),
            ] {
                if let Some(value) = value {
                    item[key] = json!(value);
                }
            }
            item
        });
        page("resources", items, params)
    }

    /// The plugin serving `uri`: the one named by its scheme (`notes://…` → `notes`), else
    /// the one that lists it.
    async fn resource_owner(
        &self,
        uri: &str,
        context: &RequestContext,
    ) -> Option<Arc<LoadedPlugin>> {
        let registry = self.service.registry();
        if let Some((scheme, _)) = uri.split_once("://")
            && let Some(plugin) = registry.plugin(scheme)
            && context.allows(scheme)
        {
            return Some(plugin.clone());
        }
        self.all_resources(context)
            .await
            .into_iter()
            .find(|(_, resource)| resource.uri == uri)
            .map(|(plugin, _)| plugin)
    }

    pub(super) async fn read_resource(
        &self,
        era: &Era,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        let uri = required_str(params, "uri")?;
        let _slot = self.service.enter().map_err(|busy| busy_error(&busy))?;
        // 2026-07-28 moved "resource not found" to invalid params.
        let not_found_code = if *era == Era::Stateless {
            INVALID_PARAMS
        } else {
            RESOURCE_NOT_FOUND
        };
        let not_found = |message: String| {
            RpcError::new(not_found_code, message).with_data(json!({ "uri": uri }))
        };
        let Some(plugin) = self.resource_owner(uri, context).await else {
            return Err(not_found(format!("resource not found: {uri}")));
        };
        let read = self
            .service
            .runtime
            .read_resource(&plugin.guest, uri, options(context))
            .await;
        match read {
            Ok(Ok(contents)) if contents.is_empty() => {
                Err(not_found(format!("resource not found: {uri}")))
            }
            Ok(Ok(contents)) => {
                let contents: Vec<Value> = contents
                    .into_iter()
                    .map(|item| {
                        let mut value = json!({ "uri": item.uri });
                        if let Some(mime) = item.mime_type {
                            value["mimeType"] = json!(mime);
                        }
                        match item.body {
                            ResourceBody::Text(text) => value["text"] = json!(text),
                            ResourceBody::BlobBase64(blob) => value["blob"] = json!(blob),
                        }
                        value
                    })
                    .collect();
                Ok(json!({ "contents": contents }))
            }
            Ok(Err(ResourceError::NotFound(message))) => Err(not_found(message)),
            Ok(Err(ResourceError::Failed(message))) => Err(RpcError::new(INTERNAL_ERROR, message)),
            Err(error @ (runtime::Error::LimitExceeded { .. } | runtime::Error::Trap { .. })) => {
                Err(RpcError::new(INTERNAL_ERROR, error.to_string()))
            }
            Err(error) => Err(internal(context, &error)),
        }
    }

    pub(super) fn list_prompts(
        &self,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        let registry = self.service.registry();
        let visible = registry
            .prompts()
            .filter(|(plugin, _, _)| context.allows(&plugin.manifest.name));
        let prompts = visible.map(|(_, name, prompt)| {
            let mut item = json!({ "name": name });
            if let Some(title) = &prompt.title {
                item["title"] = json!(title);
            }
            if let Some(description) = &prompt.description {
                item["description"] = json!(description);
            }
            let arguments: Vec<Value> = prompt
                .arguments
                .iter()
                .map(|a| {
                    let mut arg = json!({ "name": a.name, "required": a.required });
                    if let Some(d) = &a.description {
                        arg["description"] = json!(d);
                    }
                    arg
                })
                .collect();
            item["arguments"] = json!(arguments);
            item
        });
        page("prompts", prompts, params)
    }

    pub(super) async fn get_prompt(
        &self,
        params: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<Value, RpcError> {
        let name = required_str(params, "name")?;
        let registry = self.service.registry();
        let (plugin, prompt) = registry
            .prompt(name)
            .filter(|(plugin, _)| context.allows(&plugin.manifest.name))
            .ok_or_else(|| RpcError::invalid_params(format!("unknown prompt: {name}")))?;
        let mut arguments = Vec::new();
        match params.get("arguments") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (key, value) in given {
                    let Value::String(value) = value else {
                        return Err(RpcError::invalid_params(format!(
                            "prompt argument {key:?} must be a string"
                        )));
                    };
                    arguments.push((key.clone(), value.clone()));
                }
            }
            Some(_) => {
                return Err(RpcError::invalid_params(
                    "params.arguments must be an object",
                ));
            }
        }
        if let Some(missing) = prompt
            .arguments
            .iter()
            .find(|a| a.required && !arguments.iter().any(|(k, _)| *k == a.name))
        {
            return Err(RpcError::invalid_params(format!(
                "prompt {name} needs argument {:?}",
                missing.name
            )));
        }
        let _slot = self.service.enter().map_err(|busy| busy_error(&busy))?;
        let rendered = self
            .service
            .runtime
            .get_prompt(&plugin.guest, &prompt.name, arguments, options(context))
            .await;
        match rendered {
            Ok(Ok(result)) => {
                let messages: Vec<Value> = result
                    .messages
                    .iter()
                    .map(|m| {
                        let role = match m.role {
                            Role::User => "user",
                            Role::Assistant => "assistant",
                        };
                        json!({ "role": role, "content": content_json(&m.content) })
                    })
                    .collect();
                let mut answer = json!({ "messages": messages });
                if let Some(description) = result.description {
                    answer["description"] = json!(description);
                }
                Ok(answer)
            }
            Ok(Err(PromptError::NotFound(message) | PromptError::InvalidArguments(message))) => {
                Err(RpcError::invalid_params(message))
            }
            Ok(Err(PromptError::Failed(message))) => Err(RpcError::new(INTERNAL_ERROR, message)),
            Err(error @ (runtime::Error::LimitExceeded { .. } | runtime::Error::Trap { .. })) => {
                Err(RpcError::new(INTERNAL_ERROR, error.to_string()))
            }
            Err(error) => Err(internal(context, &error)),
        }
    }
}
