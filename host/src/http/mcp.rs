//! The MCP Streamable HTTP transport at `/mcp`: picks the protocol era of each request,
//! checks the headers each era requires against the body, keeps session ids, and answers
//! as JSON or as server-sent events.
//! Owns: the `/mcp` handler, era selection, header checks, notification streams.
//! Never: decides what a method returns (that is `mcp`); the client's headers never reach
//! a response or a metric label.
//! Limits: [`crate::config::Limits::mcp_streams`], one stream per session, a bounded
//! progress queue per call ([`PROGRESS_BUFFER`]).

use super::rate::{Client, Group, Verdict};
use super::sse::{self, SseSender};
use super::{ApiError, AppState, Body, empty, json_response};
use crate::auth::{self, AuthError, Principal};
use crate::mcp::jsonrpc::{
    self, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, Id, METHOD_NOT_FOUND,
    Message, REQUEST_CANCELLED, RpcError, UNSUPPORTED_VERSION,
};
use crate::mcp::{
    BUSY_RETRY_AFTER_SECS, Era, InFlight, ListChange, MODERN_VERSION, RETRY_AFTER_KEY,
    RequestContext, SESSION_VERSIONS, Session, meta, supported_versions,
};
use http_body_util::Either;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tracing::Instrument;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// What the client's `Accept` header lets us answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Accepts {
    /// `application/json` (also when the header is absent, or says `*/*`).
    json: bool,
    /// `text/event-stream`.
    events: bool,
}

impl Accepts {
    fn neither(self) -> bool {
        !self.json && !self.events
    }

    fn events_only(self) -> bool {
        self.events && !self.json
    }
}

fn accepts(headers: &HeaderMap) -> Accepts {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()) else {
        return Accepts {
            json: true,
            events: false,
        };
    };
    let types: Vec<String> = accept
        .split(',')
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let has = |t: &str| types.iter().any(|x| x == t);
    Accepts {
        json: has("application/json") || has("application/*") || has("*/*"),
        events: has("text/event-stream") || has("text/*") || has("*/*"),
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// A JSON-RPC error as an HTTP response with `status`.
fn rpc_error(status: StatusCode, id: Option<&Id>, error: &RpcError) -> Response<Body> {
    json_response(status, &jsonrpc::error(id, error))
}

/// The 403 for a disallowed `Origin`, as a JSON-RPC error without an id.
pub(super) fn forbidden_origin(message: &str) -> Response<Body> {
    rpc_error(
        StatusCode::FORBIDDEN,
        None,
        &RpcError::new(INVALID_REQUEST, message),
    )
}

/// A body that could not be read (too large, too slow) as a JSON-RPC error.
pub(super) fn transport_error(error: &ApiError) -> Response<Body> {
    rpc_error(
        error.status,
        None,
        &RpcError::new(INVALID_REQUEST, error.message.clone()),
    )
}

/// A request over its rate limit, as a JSON-RPC error (429).
pub(super) fn rate_limited(verdict: &Verdict) -> Response<Body> {
    rpc_error(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        &RpcError::new(
            INVALID_REQUEST,
            format!(
                "rate limit of {} requests per minute reached; see Retry-After",
                verdict.limit
            ),
        ),
    )
}

/// A refused credential as a JSON-RPC error; 403 also names the missing scope, as MCP's
/// authorization spec asks.
pub(super) fn auth_error(status: StatusCode, error: &AuthError) -> Response<Body> {
    let mut response = rpc_error(
        status,
        None,
        &RpcError::new(INVALID_REQUEST, error.to_string()),
    );
    if status == StatusCode::FORBIDDEN {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="waygate", error="insufficient_scope""#),
        );
    }
    response
}

/// Handles one request to `/mcp`.
pub(super) async fn handle(
    state: &Arc<AppState>,
    parts: &Parts,
    body: &Bytes,
    request_id: &str,
    principal: &Principal,
    client: Client,
) -> Response<Body> {
    match parts.method {
        Method::POST => post(state, parts, body, request_id, principal, client).await,
        Method::GET => open_session_stream(state, parts, principal),
        Method::DELETE => end_session(state, parts, principal),
        _ => {
            let mut response = rpc_error(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                &RpcError::new(
                    INVALID_REQUEST,
                    format!("{} is not allowed on /mcp", parts.method),
                ),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, GET, DELETE"));
            response
        }
    }
}

async fn post(
    state: &Arc<AppState>,
    parts: &Parts,
    body: &Bytes,
    request_id: &str,
    principal: &Principal,
    client: Client,
) -> Response<Body> {
    let accept = accepts(&parts.headers);
    if accept.neither() {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            &RpcError::new(
                INVALID_REQUEST,
                "Accept must include application/json or text/event-stream",
            ),
        );
    }
    if let Some(content_type) = header(parts, header::CONTENT_TYPE.as_str())
        && !content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            &RpcError::new(INVALID_REQUEST, "Content-Type must be application/json"),
        );
    }
    let message = match jsonrpc::parse(body) {
        Ok(message) => message,
        Err((id, error)) => return rpc_error(StatusCode::BAD_REQUEST, id.as_ref(), &error),
    };
    if let Message::Request { method, .. } = &message
        && let Err(error) = auth::require(principal, auth::mcp_method_role(method))
    {
        return auth_error(StatusCode::FORBIDDEN, &error);
    }
    // The edge took this request from the default bucket; a tool call also takes from the
    // execute one, as `/mcp/execute` does.
    let is_call = message.method().map(Group::of_mcp_method) == Some(Group::Execute);
    let verdict = if is_call {
        state.rate_check(Group::Execute, client)
    } else {
        None
    };
    if let Some(verdict) = verdict.as_ref().filter(|v| !v.allowed) {
        let mut response = rate_limited(verdict);
        verdict.headers(response.headers_mut());
        return response;
    }
    let mut response = answer_post(state, parts, message, accept, request_id, principal).await;
    if let Some(verdict) = verdict {
        verdict.headers(response.headers_mut());
    }
    response
}

/// Answers a parsed, authorized POST in its era.
async fn answer_post(
    state: &Arc<AppState>,
    parts: &Parts,
    message: Message,
    accept: Accepts,
    request_id: &str,
    principal: &Principal,
) -> Response<Body> {
    let context = RequestContext {
        request_id: request_id.to_owned(),
        caller_id: principal.caller_id(),
        plugins: principal.plugins.clone(),
        progress: None,
    };
    let meta_version = message
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let version_header = header(parts, VERSION_HEADER);
    let session_header = header(parts, SESSION_HEADER);
    let session_era_header = version_header.is_some_and(|v| SESSION_VERSIONS.contains(&v));

    // A request that carries its version in `_meta` is a 2026-07-28 one, whatever stale
    // session header it also sends; an `initialize` or a session id selects the session era.
    let stateless = meta_version.is_some()
        || (session_header.is_none() && version_header.is_some() && !session_era_header);
    if message.method() == Some("initialize") {
        initialize(state, &message, accept, principal)
    } else if stateless {
        stateless_request(state, parts, message, accept, &context).await
    } else if let Some(session_id) = session_header {
        session_request(
            state, parts, session_id, message, accept, &context, principal,
        )
        .await
    } else {
        let id = request_id_of(&message);
        rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            &RpcError::new(
                INVALID_REQUEST,
                format!(
                    "missing Mcp-Session-Id: call initialize first, or send a \
                     {MODERN_VERSION} request with MCP-Protocol-Version and _meta"
                ),
            ),
        )
    }
}

fn request_id_of(message: &Message) -> Option<&Id> {
    match message {
        Message::Request { id, .. } => Some(id),
        _ => None,
    }
}

/// The answer to a request: a JSON body, or one event on a stream when the client takes
/// only event streams.
fn answer(accept: Accepts, status: StatusCode, message: Value) -> Response<Body> {
    if !accept.events_only() {
        return json_response(status, &message);
    }
    let (sender, body) = sse::channel();
    tokio::spawn(async move {
        sender.message(&message).await;
    });
    event_stream_response(body)
}

fn event_stream_response(body: sse::SseBody) -> Response<Body> {
    let mut response = Response::new(Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn with_session(mut response: Response<Body>, session: &Session) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

fn initialize(
    state: &AppState,
    message: &Message,
    accept: Accepts,
    principal: &Principal,
) -> Response<Body> {
    let Message::Request { id, params, .. } = message else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            &RpcError::new(INVALID_REQUEST, "initialize must be a request with an id"),
        );
    };
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let (version, result) = state.mcp.initialize(requested);
    match state.mcp.sessions.create(version, principal.identity()) {
        Ok(session) => {
            tracing::debug!(session = %session.id, version, "MCP session opened");
            with_session(
                answer(accept, StatusCode::OK, jsonrpc::result(id, result)),
                &session,
            )
        }
        Err(error) => rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(id),
            &RpcError::new(INTERNAL_ERROR, error.to_string()),
        ),
    }
}

/// The session named by the request.
///
/// # Errors
///
/// The response that refuses it: 404 for an unknown or expired session.
fn find_session(
    state: &AppState,
    session_id: &str,
    id: Option<&Id>,
    principal: &Principal,
) -> Result<Arc<Session>, Box<Response<Body>>> {
    // A session belongs to the key that opened it: another key's request finds nothing,
    // so a leaked session id is no use without the key.
    let found = state
        .mcp
        .sessions
        .get(session_id)
        .filter(|session| session.owner == principal.identity());
    found.ok_or_else(|| {
        Box::new(rpc_error(
            StatusCode::NOT_FOUND,
            id,
            &RpcError::new(
                INVALID_REQUEST,
                "session not found: unknown, ended or expired; initialize again",
            ),
        ))
    })
}

async fn session_request(
    state: &Arc<AppState>,
    parts: &Parts,
    session_id: &str,
    message: Message,
    accept: Accepts,
    context: &RequestContext,
    principal: &Principal,
) -> Response<Body> {
    let session = match find_session(state, session_id, request_id_of(&message), principal) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    if let Some(version) = header(parts, VERSION_HEADER)
        && !SESSION_VERSIONS.contains(&version)
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            request_id_of(&message),
            &RpcError::new(
                INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version {version:?} for a session"),
            )
            .with_data(json!({ "supported": SESSION_VERSIONS })),
        );
    }
    let response = match message {
        Message::Response => empty(StatusCode::ACCEPTED),
        Message::Notification { method, params } => {
            if method == "notifications/cancelled"
                && let Some(request) = params.get("requestId").and_then(Id::from_json)
            {
                let cancelled = session.cancel(&request);
                tracing::debug!(session = %session.id, ?request, cancelled, "cancel requested");
            }
            empty(StatusCode::ACCEPTED)
        }
        Message::Request { id, method, params } => {
            let era = Era::Session {
                version: session.version,
            };
            let Some(in_flight) = session.start_request(&id) else {
                let error = RpcError::new(
                    INVALID_REQUEST,
                    format!("request id {} is already in flight", id.to_json()),
                );
                return with_session(rpc_error(StatusCode::BAD_REQUEST, None, &error), &session);
            };
            let request = Call {
                era,
                id,
                method,
                params,
                context: context.clone(),
            };
            respond(state, parts, request, accept, Some(in_flight)).await
        }
    };
    with_session(response, &session)
}

/// Decodes the `=?base64?…?=` form MCP uses for header values that are not plain ASCII.
fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64_decode(encoded)?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_owned()),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// The `Mcp-Param-*` headers a `tools/call` of a known tool must carry.
fn tool_param_headers(state: &AppState, message: &Message) -> Vec<(String, Vec<String>)> {
    let Message::Request { method, params, .. } = message else {
        return Vec::new();
    };
    let name = params.get("name").and_then(Value::as_str);
    match (method.as_str(), name) {
        ("tools/call", Some(name)) => state
            .service
            .registry()
            .resolve_tool(name, None)
            .map(|(_, entry)| entry.param_headers.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Checks that each `Mcp-Param-{name}` header carries the argument it mirrors, as the
/// 2026-07-28 transport requires: present exactly when the argument is, and equal to it
/// (integers compared as numbers).
fn check_param_headers(
    parts: &Parts,
    params: &Map<String, Value>,
    param_headers: &[(String, Vec<String>)],
) -> Result<(), String> {
    let arguments = params.get("arguments");
    for (name, path) in param_headers {
        let argument = path
            .iter()
            .try_fold(arguments, |value, key| value?.get(key).map(Some))
            .flatten()
            .filter(|v| !v.is_null());
        let header_name = format!("mcp-param-{}", name.to_ascii_lowercase());
        let header_value = header(parts, &header_name).map(decode_header_value);
        let matches = match (argument, header_value) {
            (None, None) => true,
            (Some(_), None) | (None, Some(_)) | (_, Some(None)) => false,
            (Some(argument), Some(Some(sent))) => match argument {
                Value::String(text) => *text == sent,
                Value::Bool(flag) => sent == flag.to_string(),
                Value::Number(number) => sent.parse::<f64>().ok() == number.as_f64(),
                _ => false,
            },
        };
        if !matches {
            return Err(format!(
                "Header mismatch: Mcp-Param-{name} does not match arguments.{}",
                path.join(".")
            ));
        }
    }
    Ok(())
}

/// Checks a 2026-07-28 request's headers and `_meta` against its body.
fn check_stateless(
    parts: &Parts,
    message: &Message,
    param_headers: &[(String, Vec<String>)],
) -> Result<(), (StatusCode, RpcError)> {
    let mismatch = |text: String| {
        (
            StatusCode::BAD_REQUEST,
            RpcError::new(HEADER_MISMATCH, text),
        )
    };
    let no_params = serde_json::Map::new();
    // Borrowed, never cloned: the params hold the tool's arguments, of any size.
    let params = message.params().unwrap_or(&no_params);
    let meta = params.get("_meta").and_then(Value::as_object);
    let meta_version = meta
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let Some(header_version) = header(parts, VERSION_HEADER) else {
        return Err(mismatch("missing MCP-Protocol-Version header".into()));
    };
    let Some(meta_version) = meta_version else {
        return Err((
            StatusCode::BAD_REQUEST,
            RpcError::invalid_params(format!(
                "params._meta[\"{}\"] is required",
                meta::PROTOCOL_VERSION
            )),
        ));
    };
    if header_version != meta_version {
        return Err(mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{header_version}' does not \
             match body value '{meta_version}'"
        )));
    }
    if meta_version != MODERN_VERSION {
        return Err((
            StatusCode::BAD_REQUEST,
            RpcError::new(UNSUPPORTED_VERSION, "Unsupported protocol version")
                .with_data(json!({ "supported": supported_versions(), "requested": meta_version })),
        ));
    }
    if meta.is_none_or(|m| {
        !m.get(meta::CLIENT_CAPABILITIES)
            .is_some_and(Value::is_object)
    }) {
        return Err((
            StatusCode::BAD_REQUEST,
            RpcError::invalid_params(format!(
                "params._meta[\"{}\"] is required",
                meta::CLIENT_CAPABILITIES
            )),
        ));
    }
    let Some(method) = message.method() else {
        return Ok(());
    };
    match header(parts, METHOD_HEADER) {
        Some(header_method) if header_method == method => {}
        Some(header_method) => {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Method header value '{header_method}' does not match \
                 body value '{method}'"
            )));
        }
        None => return Err(mismatch("missing Mcp-Method header".into())),
    }
    let named = match method {
        "tools/call" | "prompts/get" => Some(("name", params.get("name"))),
        "resources/read" => Some(("uri", params.get("uri"))),
        _ => None,
    };
    if let Some((key, body_value)) = named {
        let body_value = body_value.and_then(Value::as_str).unwrap_or_default();
        let header_value = header(parts, NAME_HEADER).and_then(decode_header_value);
        match header_value {
            Some(value) if value == body_value => {}
            Some(value) => {
                return Err(mismatch(format!(
                    "Header mismatch: Mcp-Name header value '{value}' does not match body \
                     params.{key} '{body_value}'"
                )));
            }
            None => {
                return Err(mismatch(format!(
                    "missing or malformed Mcp-Name header ({method})"
                )));
            }
        }
    }
    check_param_headers(parts, params, param_headers).map_err(mismatch)
}

async fn stateless_request(
    state: &Arc<AppState>,
    parts: &Parts,
    message: Message,
    accept: Accepts,
    context: &RequestContext,
) -> Response<Body> {
    // Nothing a client notifies matters without a session (closing a stream is how a
    // stateless client cancels), and the revision sets no header rules for notifications:
    // the TypeScript SDK posts `notifications/cancelled` without `Mcp-Method`.
    if !matches!(message, Message::Request { .. }) {
        return empty(StatusCode::ACCEPTED);
    }
    let param_headers = tool_param_headers(state, &message);
    if let Err((status, error)) = check_stateless(parts, &message, &param_headers) {
        return rpc_error(status, request_id_of(&message), &error);
    }
    match message {
        Message::Response | Message::Notification { .. } => empty(StatusCode::ACCEPTED),
        Message::Request { id, method, params } if method == "subscriptions/listen" => {
            listen(state, id, &params)
        }
        Message::Request { id, method, params } => {
            let request = Call {
                era: Era::Stateless,
                id,
                method,
                params,
                context: context.clone(),
            };
            respond(state, parts, request, accept, None).await
        }
    }
}

/// One request to answer.
struct Call {
    era: Era,
    id: Id,
    method: String,
    params: Map<String, Value>,
    context: RequestContext,
}

/// The `progressToken` a request asks progress under.
fn progress_token(params: &Map<String, Value>) -> Option<Value> {
    let token = params.get("_meta")?.get("progressToken")?;
    (token.is_string() || token.is_i64()).then(|| token.clone())
}

/// Runs a request and answers it. A client that goes away drops this future, and with it
/// the plugin call; a session's `notifications/cancelled` stops it through `in_flight`.
/// A `tools/call` that asks for progress, from a client that takes event streams, is
/// answered as a stream: `notifications/progress` as the plugin reports, then the result.
async fn respond(
    state: &Arc<AppState>,
    parts: &Parts,
    mut call: Call,
    accept: Accepts,
    in_flight: Option<InFlight>,
) -> Response<Body> {
    let takes_events =
        header(parts, header::ACCEPT.as_str()).is_some_and(|a| a.contains("text/event-stream"));
    let token =
        progress_token(&call.params).filter(|_| takes_events && call.method == "tools/call");
    if let Some(token) = token {
        let (sender, body) = sse::channel();
        let (progress, reports) = tokio::sync::mpsc::channel(PROGRESS_BUFFER);
        call.context.progress = Some(progress);
        // The call runs in its own task; it stays in the request's span (and trace).
        tokio::spawn(
            stream_with_progress(state.clone(), call, token, sender, reports, in_flight)
                .in_current_span(),
        );
        return event_stream_response(body);
    }
    let (id, era) = (call.id.clone(), call.era.clone());
    let outcome = run(state, &call, in_flight).await;
    match outcome {
        Ok(result) => answer(accept, StatusCode::OK, jsonrpc::result(&id, result)),
        // 2026-07-28 answers an unknown method with 404, so clients can tell eras apart.
        Err(error) if error.code == METHOD_NOT_FOUND && era == Era::Stateless => {
            rpc_error(StatusCode::NOT_FOUND, Some(&id), &error)
        }
        // Too busy to start the call: 503 and when to come back, as for REST.
        Err(error)
            if error
                .data
                .as_ref()
                .is_some_and(|d| d.get(RETRY_AFTER_KEY).is_some()) =>
        {
            let mut response = rpc_error(StatusCode::SERVICE_UNAVAILABLE, Some(&id), &error);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(BUSY_RETRY_AFTER_SECS),
            );
            response
        }
        Err(error) => answer(accept, StatusCode::OK, jsonrpc::error(Some(&id), &error)),
    }
}

/// Progress reports buffered for one call before further ones are dropped.
const PROGRESS_BUFFER: usize = 16;

async fn run(
    state: &AppState,
    call: &Call,
    in_flight: Option<InFlight>,
) -> Result<Value, RpcError> {
    let handled = state
        .mcp
        .handle(&call.era, &call.method, &call.params, &call.context);
    match in_flight {
        None => handled.await,
        Some(mut in_flight) => tokio::select! {
            outcome = handled => outcome,
            _ = &mut in_flight.cancelled => {
                Err(RpcError::new(REQUEST_CANCELLED, "request cancelled"))
            }
        },
    }
}

async fn stream_with_progress(
    state: Arc<AppState>,
    call: Call,
    token: Value,
    sender: SseSender,
    mut reports: tokio::sync::mpsc::Receiver<crate::runtime::Progress>,
    in_flight: Option<InFlight>,
) {
    let running = run(&state, &call, in_flight);
    tokio::pin!(running);
    let outcome = loop {
        tokio::select! {
            outcome = &mut running => break outcome,
            // The client closed the stream: that cancels the call (dropping `running`).
            () = sender.closed() => return,
            Some(report) = reports.recv() => {
                if !sender.message(&progress_notification(&token, report)).await {
                    return;
                }
            }
        }
    };
    // Reports the plugin sent just before it returned still go out, before the result.
    while let Ok(report) = reports.try_recv() {
        if !sender.message(&progress_notification(&token, report)).await {
            return;
        }
    }
    let message = match outcome {
        Ok(result) => jsonrpc::result(&call.id, result),
        Err(error) => jsonrpc::error(Some(&call.id), &error),
    };
    sender.message(&message).await;
}

fn progress_notification(token: &Value, report: crate::runtime::Progress) -> Value {
    let mut params = json!({ "progressToken": token, "progress": report.progress });
    if let Some(total) = report.total {
        params["total"] = json!(total);
    }
    if let Some(message) = report.message {
        params["message"] = json!(message);
    }
    jsonrpc::notification("notifications/progress", params)
}

/// `subscriptions/listen`: an event stream that acknowledges the filter, then carries the
/// list changes the client opted into until it closes the stream or the server stops.
fn listen(state: &Arc<AppState>, id: Id, params: &Map<String, Value>) -> Response<Body> {
    let Some(filter) = params.get("notifications").and_then(Value::as_object) else {
        return rpc_error(
            StatusCode::OK,
            Some(&id),
            &RpcError::new(INVALID_PARAMS, "params.notifications must be an object"),
        );
    };
    let wanted: Vec<ListChange> = ListChange::ALL
        .into_iter()
        .filter(|change| filter.get(change.filter_key()) == Some(&Value::Bool(true)))
        .collect();
    let subscription_meta = json!({ (meta::SUBSCRIPTION_ID): id.to_json() });
    let acknowledged: Map<String, Value> = wanted
        .iter()
        .map(|change| (change.filter_key().to_owned(), Value::Bool(true)))
        .collect();
    let Some(permit) = state.stream_permit() else {
        return too_many_streams(state);
    };
    let (sender, body) = sse::channel();
    let changes = state.mcp.watch_changes();
    let shutting_down = state.shutting_down.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        let ack = jsonrpc::notification(
            "notifications/subscriptions/acknowledged",
            json!({ "_meta": subscription_meta, "notifications": acknowledged }),
        );
        if !sender.message(&ack).await {
            return;
        }
        let stop = forward_changes(
            &sender,
            changes,
            shutting_down,
            None,
            || {},
            |change| {
                wanted.contains(&change).then(|| {
                    jsonrpc::notification(change.method(), json!({ "_meta": subscription_meta }))
                })
            },
        )
        .await;
        if stop == StreamEnd::ServerStopping {
            let result = json!({ "resultType": "complete", "_meta": subscription_meta });
            sender.message(&jsonrpc::result(&id, result)).await;
        }
    });
    event_stream_response(body)
}

#[derive(Debug, PartialEq, Eq)]
enum StreamEnd {
    ClientGone,
    ServerStopping,
    SessionEnded,
}

/// Sends each change `render` turns into a message, with keep-alives between, until the
/// client goes or falls [`sse`]'s buffer behind, the server stops, or `session_ended` turns
/// true. `on_keep_alive` runs at each keep-alive: a session's stream marks it as in use.
async fn forward_changes(
    sender: &SseSender,
    mut changes: tokio::sync::broadcast::Receiver<ListChange>,
    mut shutting_down: tokio::sync::watch::Receiver<bool>,
    mut session_ended: Option<tokio::sync::watch::Receiver<bool>>,
    on_keep_alive: impl Fn(),
    render: impl Fn(ListChange) -> Option<Value>,
) -> StreamEnd {
    let mut keep_alive = tokio::time::interval(sse::KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        let session_end = async {
            match session_ended.as_mut() {
                Some(ended) => turns_true(ended).await,
                None => std::future::pending().await,
            }
        };
        let changed: Vec<ListChange> = tokio::select! {
            () = sender.closed() => return StreamEnd::ClientGone,
            () = turns_true(&mut shutting_down) => return StreamEnd::ServerStopping,
            () = session_end => return StreamEnd::SessionEnded,
            _ = keep_alive.tick() => {
                if !sender.offer_keep_alive() {
                    return StreamEnd::ClientGone;
                }
                on_keep_alive();
                continue;
            }
            change = changes.recv() => match change {
                Ok(change) => vec![change],
                // Missed some: any kind may have changed.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => ListChange::ALL.to_vec(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return StreamEnd::ServerStopping;
                }
            },
        };
        for message in changed.into_iter().filter_map(&render) {
            if !sender.offer(&message) {
                return StreamEnd::ClientGone;
            }
        }
    }
}

/// Resolves once `flag` is true; never if its sender is gone while it is false.
async fn turns_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = *flag.borrow_and_update();
        if now {
            return;
        }
        if flag.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `GET /mcp` in the session era: the session's stream of server notifications.
fn open_session_stream(
    state: &Arc<AppState>,
    parts: &Parts,
    principal: &Principal,
) -> Response<Body> {
    let takes_events = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"));
    if !takes_events {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            &RpcError::new(INVALID_REQUEST, "GET /mcp needs Accept: text/event-stream"),
        );
    }
    let Some(session_id) = header(parts, SESSION_HEADER) else {
        return without_session(parts);
    };
    let session = match find_session(state, session_id, None, principal) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    let Some(slot) = session.open_stream() else {
        return with_session(
            rpc_error(
                StatusCode::CONFLICT,
                None,
                &RpcError::new(INVALID_REQUEST, "this session's stream is already open"),
            ),
            &session,
        );
    };
    let Some(permit) = state.stream_permit() else {
        return with_session(too_many_streams(state), &session);
    };
    let (sender, body) = sse::channel();
    let changes = state.mcp.watch_changes();
    let shutting_down = state.shutting_down.subscribe();
    let ended = session.ended();
    let keep_alive_session = session.clone();
    tokio::spawn(async move {
        let _held = (slot, permit);
        forward_changes(
            &sender,
            changes,
            shutting_down,
            Some(ended),
            || keep_alive_session.touch(),
            |change| Some(jsonrpc::notification(change.method(), json!({}))),
        )
        .await;
    });
    with_session(event_stream_response(body), &session)
}

/// The 503 for a stream past [`crate::config::Limits::mcp_streams`].
fn too_many_streams(state: &AppState) -> Response<Body> {
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        &RpcError::new(
            INTERNAL_ERROR,
            format!(
                "too many open notification streams ({}, limits.mcp_streams)",
                state.service.limits.mcp_streams
            ),
        ),
    )
}

/// GET or DELETE without a session: a stateless (2026-07-28) client, which has neither
/// session streams nor sessions to end, so 405 as that revision asks.
fn without_session(parts: &Parts) -> Response<Body> {
    let mut response = rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        &RpcError::new(
            INVALID_REQUEST,
            format!(
                "{} /mcp needs an Mcp-Session-Id (session-based protocol); \
                 {MODERN_VERSION} clients POST, and listen with subscriptions/listen",
                parts.method
            ),
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// `DELETE /mcp`: ends the session.
fn end_session(state: &AppState, parts: &Parts, principal: &Principal) -> Response<Body> {
    let Some(session_id) = header(parts, SESSION_HEADER) else {
        return without_session(parts);
    };
    let owned = state
        .mcp
        .sessions
        .get(session_id)
        .is_some_and(|session| session.owner == principal.identity());
    if owned && state.mcp.sessions.end(session_id) {
        tracing::debug!(session = session_id, "MCP session ended by the client");
        empty(StatusCode::OK)
    } else {
        rpc_error(
            StatusCode::NOT_FOUND,
            None,
            &RpcError::new(
                INVALID_REQUEST,
                "session not found: unknown, ended or expired",
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_header_values_decode() {
        assert_eq!(decode_header_value("plain").as_deref(), Some("plain"));
        // "héllo" in UTF-8.
        assert_eq!(
            decode_header_value("=?base64?aMOpbGxv?=").as_deref(),
            Some("héllo")
        );
        assert_eq!(decode_header_value("=?base64?!!?="), None);
    }

    #[test]
    fn accept_header_decides_the_answer_format() {
        let mut headers = HeaderMap::new();
        let (json, events, both, neither) = (
            Accepts {
                json: true,
                events: false,
            },
            Accepts {
                json: false,
                events: true,
            },
            Accepts {
                json: true,
                events: true,
            },
            Accepts {
                json: false,
                events: false,
            },
        );
        assert_eq!(accepts(&headers), json);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert_eq!(accepts(&headers), both);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("Text/Event-Stream"),
        );
        assert_eq!(accepts(&headers), events);
        assert!(accepts(&headers).events_only());
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(accepts(&headers), neither);
        assert!(neither.neither());
    }

    #[test]
    fn stateless_requests_must_match_their_headers() {
        let request = |headers: &[(&str, &str)], body: &str| {
            let mut builder = hyper::Request::post("/mcp");
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let (parts, ()) = builder.body(()).unwrap().into_parts();
            let message = jsonrpc::parse(body.as_bytes()).unwrap();
            check_stateless(&parts, &message, &[])
                .err()
                .map(|(s, e)| (s.as_u16(), e.code))
        };
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo__echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        let good = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo__echo"),
        ];
        assert_eq!(request(&good, body), None);
        assert_eq!(request(&good[..2], body), Some((400, HEADER_MISMATCH)));
        let wrong_name = [good[0], good[1], ("mcp-name", "other")];
        assert_eq!(request(&wrong_name, body), Some((400, HEADER_MISMATCH)));
        let wrong_method = [good[0], ("mcp-method", "tools/list"), good[2]];
        assert_eq!(request(&wrong_method, body), Some((400, HEADER_MISMATCH)));
        let old = body.replace("2026-07-28", "1900-01-01");
        let old_headers = [("mcp-protocol-version", "1900-01-01"), good[1], good[2]];
        assert_eq!(
            request(&old_headers, &old),
            Some((400, UNSUPPORTED_VERSION))
        );
        let no_caps = body.replace(r#","io.modelcontextprotocol/clientCapabilities":{}"#, "");
        assert_eq!(request(&good, &no_caps), Some((400, INVALID_PARAMS)));
    }
}
