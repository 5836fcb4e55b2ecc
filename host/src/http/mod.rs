//! The HTTP edge: the listener with its connection limit, body limits, CORS and security
//! headers, routing to the REST endpoints and the MCP transport, and the one place errors
//! become statuses.
//! Owns: [`serve`], [`AppState`], [`ApiError`]. Never: runs guest code except through
//! `service`/`mcp`, or touches the database except through `store`.
//! Limits: [`Limits::max_connections`], [`Limits::max_body_bytes`], [`Limits::shutdown_grace_ms`].

mod diagnostics;
mod error;
mod mcp;
mod query;
mod rate;
mod rest;
mod sse;
mod tls;

pub use tls::acceptor as tls_acceptor;

pub use error::ApiError;
pub use rest::ROUTES;

use crate::auth::{self, Access, AuthError, KeyRing, OAuth, Principal, Role};
use crate::config::limits::MAX_REQUEST_HEAD_BYTES;
use crate::config::{Limits, MetricsAccess, RateLimitConfig};
use crate::mcp::{ListChange, McpServer};
use crate::service::{ReloadInProgress, ReloadReport, Service};
use crate::telemetry::SetLogLevel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rate::{Client, Group, RateLimits};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

/// A response body: a whole buffer, or a server-sent event stream.
pub type Body = Either<Full<Bytes>, sse::SseBody>;

/// Time a client has to send a request's headers, on a new or a kept-alive connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client has to send a request's body once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request handler shares.
pub struct AppState {
    /// Registry, runtime, store, history.
    pub service: Arc<Service>,
    /// The MCP server and its sessions.
    pub mcp: McpServer,
    /// Browser origins allowed besides loopback ones.
    allowed_origins: Vec<String>,
    /// The address the listener is bound to, once serving.
    local_addr: OnceLock<SocketAddr>,
    /// Source of request and command ids.
    next_id: AtomicU64,
    /// Turns true when shutdown starts, so long-lived streams end and let connections drain.
    shutting_down: watch::Sender<bool>,
    /// One permit per open notification stream: [`Limits::mcp_streams`].
    streams: Arc<Semaphore>,
    /// The keys requests are checked against; `None` when authentication is off.
    keys: Option<Arc<KeyRing>>,
    /// Who may read `/metrics`.
    metrics_access: MetricsAccess,
    /// Per-client rate limits; `None` when off.
    rate: Option<RateLimits>,
    /// HTTPS; plain HTTP when `None`.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Bearer JWTs from an authorization server; `None` when off.
    oauth: Option<Arc<OAuth>>,
    /// Changes the log filter at run time.
    log_level: Option<SetLogLevel>,
}

/// How the HTTP edge admits requests.
#[derive(Clone)]
pub struct Admission {
    /// Browser origins allowed besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// The keys requests are checked against; `None` turns authentication off.
    pub keys: Option<Arc<KeyRing>>,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// Per-client rate limits.
    pub rate_limits: RateLimitConfig,
    /// HTTPS; plain HTTP when `None`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Bearer JWTs from an authorization server, besides API keys; `None` when off.
    pub oauth: Option<Arc<OAuth>>,
    /// What `PUT /diagnostics/log-level` calls; `None` where nothing can change the level.
    pub log_level: Option<SetLogLevel>,
}

impl AppState {
    /// State for a server over `service`, admitting requests as `admission` says.
    pub fn new(service: Arc<Service>, admission: Admission) -> Self {
        let streams = Arc::new(Semaphore::new(service.limits.mcp_streams as usize));
        Self {
            mcp: McpServer::new(service.clone()),
            service,
            allowed_origins: admission.allowed_origins,
            keys: admission.keys,
            metrics_access: admission.metrics_access,
            rate: RateLimits::new(&admission.rate_limits),
            tls: admission.tls,
            oauth: admission.oauth,
            log_level: admission.log_level,
            local_addr: OnceLock::new(),
            next_id: AtomicU64::new(1),
            shutting_down: watch::channel(false).0,
            streams,
        }
    }

    /// The principal a request acts as, if the route lets it in: open routes let anyone in,
    /// others need a key with the route's role (`/mcp`: any key; each method is checked in
    /// the transport).
    async fn authorize(
        &self,
        parts: &hyper::http::request::Parts,
        template: &'static str,
    ) -> Result<Principal, AuthError> {
        let Some(keys) = &self.keys else {
            return Ok(Principal::anonymous());
        };
        let access = auth::route_access(template, parts.method.as_str());
        let needed = match (access, self.metrics_access) {
            (Access::Open, _) | (Access::Metrics, MetricsAccess::Open) => {
                return Ok(Principal::nobody());
            }
            (Access::Metrics, MetricsAccess::Keyed) => Role::Reader,
            (Access::Role(role), _) => role,
        };
        let credential = credential(&parts.headers).ok_or(AuthError::Missing)?;
        // Waygate's own keys are recognisable by their prefix; anything else is a token
        // from the authorization server, when one is configured.
        let principal = match &self.oauth {
            Some(oauth) if !credential.starts_with(auth::keys::KEY_PREFIX) => {
                oauth.authenticate(credential).await?
            }
            _ => keys.authenticate(credential)?,
        };
        auth::require(&principal, needed)?;
        Ok(principal)
    }

    /// The challenge on every 401: a bearer credential, and where to learn how to get one
    /// when an authorization server is configured (RFC 9728).
    fn challenge(&self) -> HeaderValue {
        let value = match &self.oauth {
            Some(oauth) => format!(
                r#"Bearer realm="waygate", resource_metadata="{}""#,
                oauth.metadata_url()
            ),
            None => r#"Bearer realm="waygate""#.to_owned(),
        };
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
    }

    /// Sets the log filter, when this process lets it be set.
    fn set_log_level(&self, level: &str) -> Option<Result<(), String>> {
        self.log_level.as_ref().map(|set| set(level))
    }

    /// The protected-resource metadata, when OAuth is configured.
    fn oauth_metadata(&self) -> Option<serde_json::Value> {
        self.oauth.as_ref().map(|oauth| oauth.metadata())
    }

    /// Takes one request from `client`'s bucket in `group`; `None` when limiting is off.
    fn rate_check(&self, group: Group, client: Client) -> Option<rate::Verdict> {
        let verdict = self.rate.as_ref().map(|rate| rate.check(group, client));
        if verdict.as_ref().is_some_and(|v| !v.allowed) {
            self.service.metrics.rate_limited.inc();
        }
        verdict
    }

    /// A permit for one more long-lived notification stream, if any is left.
    fn stream_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    fn limits(&self) -> &Limits {
        &self.service.limits
    }

    fn next_request_id(&self) -> String {
        format!("req_{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether a browser page from `origin` may call this server: loopback origins always,
    /// others when the operator listed them. Anything else is a DNS-rebinding attempt or a
    /// page the operator did not approve.
    fn origin_allowed(&self, origin: &str) -> bool {
        let loopback = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(is_loopback_authority);
        loopback
            || self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }

    /// Whether a request's `Host` may reach this server. A browser sends no `Origin` on a
    /// same-origin GET, so a page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
    /// could read the GET endpoints; its `Host` still names the attacker's domain. On a
    /// loopback bind only loopback names and the hosts of `allowed_origins` pass. On any
    /// other bind the server is meant to be reached by names it cannot know, and
    /// authentication guards it instead.
    fn host_allowed(&self, host: Option<&str>) -> bool {
        let loopback_bind = self.local_addr.get().is_none_or(|a| a.ip().is_loopback());
        let Some(host) = host else {
            // HTTP/1.0 clients may send no Host; no browser does.
            return true;
        };
        !loopback_bind
            || is_loopback_authority(host)
            || self.allowed_origins.iter().any(|origin| {
                origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
            })
    }
}

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOrigin {
    /// This server: an operator, SIGHUP, the directory watcher. Replicas sharing its
    /// PostgreSQL database hear of it and reload too.
    Here,
    /// Another replica's announcement: repeated here, announced to no one (or replicas
    /// would echo each other's reloads forever).
    Peer,
}

/// Reloads the plugins and tells every open notification stream what changed, and, for a
/// reload asked for [`ReloadOrigin::Here`], the other replicas. Used by
/// `POST /plugins/reload`, SIGHUP, the watcher and the peers' announcements.
///
/// # Errors
///
/// [`ReloadInProgress`] while another reload runs.
pub async fn reload(
    state: &AppState,
    origin: ReloadOrigin,
) -> Result<ReloadReport, ReloadInProgress> {
    let report = state.service.reload().await?;
    announce(state, &report);
    if origin == ReloadOrigin::Here {
        tell_peers(state, None).await;
    }
    Ok(report)
}

/// [`reload`] for one plugin; `Ok(None)` when no package or plugin has that name.
///
/// # Errors
///
/// [`ReloadInProgress`] while another reload runs.
pub async fn reload_plugin(
    state: &AppState,
    name: &str,
    origin: ReloadOrigin,
) -> Result<Option<ReloadReport>, ReloadInProgress> {
    let report = state.service.reload_plugin(name).await?;
    if let Some(report) = &report {
        announce(state, report);
        if origin == ReloadOrigin::Here {
            tell_peers(state, Some(name)).await;
        }
    }
    Ok(report)
}

/// Announces a reload to the replicas on the same database. A failure is logged, not
/// returned: the reload here stands, and the others catch up at their next one.
async fn tell_peers(state: &AppState, plugin: Option<&str>) {
    let store = state.service.store.clone();
    let plugin = plugin.map(str::to_owned);
    match tokio::task::spawn_blocking(move || store.announce_reload(plugin.as_deref())).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot tell the other replicas of a reload"),
        Err(error) => tracing::warn!(%error, "cannot tell the other replicas of a reload"),
    }
}

/// Tells every open notification stream which lists a reload changed.
fn announce(state: &AppState, report: &ReloadReport) {
    let changes = [
        (report.tools_changed, ListChange::Tools),
        (report.prompts_changed, ListChange::Prompts),
        (report.plugins_changed, ListChange::Resources),
    ];
    for (changed, change) in changes {
        if changed {
            state.mcp.list_changed(change);
        }
    }
}

/// Whether `authority` (`host[:port]`) names this machine's loopback interface.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    let port = &authority[host.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        )
}

/// Serves HTTP on `listener` until `shutdown` resolves; then answers `/ready` with 503 while
/// still accepting for [`Limits::shutdown_delay_ms`], closes the listener, waits up to
/// [`Limits::shutdown_grace_ms`] for requests in flight, and flushes the history queue.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    if let Ok(addr) = listener.local_addr() {
        let _ = state.local_addr.set(addr);
    }
    let limits = state.limits().clone();
    // A permit is taken before `accept` and moved into the connection's task, so at most
    // `max_connections` connections are open and the rest wait in the kernel's backlog.
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let not_ready = state.clone();
    let delay_ms = limits.shutdown_delay_ms;
    let shutdown = async move {
        shutdown.await;
        // Not ready from here on; event streams end too, so their connections can drain.
        not_ready.shutting_down.send_replace(true);
        tracing::info!(
            delay_ms,
            "shutting down: /ready answers 503; the listener closes after the delay"
        );
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    };
    let mut shutdown = std::pin::pin!(shutdown);
    // Clients whose buckets have refilled are forgotten, so idle clients cost nothing.
    let sweeper = state.rate.is_some().then(|| {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RATE_SWEEP_INTERVAL);
            loop {
                every.tick().await;
                if let Some(rate) = &state.rate {
                    rate.sweep();
                }
            }
        })
    });
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        state.service.metrics.connections_total.inc();
        state.service.metrics.active_connections.inc();
        let watcher = graceful.watcher();
        let connection_state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match &connection_state.tls {
                None => serve_connection(&connection_state, stream, peer.ip(), watcher).await,
                // The handshake runs here, on the connection's task, so a slow one holds
                // only its own permit, and only for HANDSHAKE_TIMEOUT.
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&connection_state, stream, peer.ip(), watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            connection_state.service.metrics.active_connections.dec();
        });
    }
    // New connections are refused from here on, not left waiting in the backlog.
    drop(listener);
    state.shutting_down.send_replace(true);
    state.mcp.sessions.end_all();
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = limits.shutdown_grace_ms,
            "shutdown grace period over; dropping open connections"
        );
    }
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    state.service.history.close().await;
    if let Some(keys) = state.keys.clone()
        && let Ok(Err(error)) = tokio::task::spawn_blocking(move || keys.flush_uses()).await
    {
        tracing::warn!(%error, "cannot write the last key uses");
    }
}

/// Serves HTTP/1.1 on one connection until it closes or the server drains it.
async fn serve_connection<I>(
    state: &Arc<AppState>,
    io: I,
    peer: std::net::IpAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |request| {
        let state = service_state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&state, request, peer).await) }
    });
    // A client gets HEADER_READ_TIMEOUT to send each request's headers; a silent or
    // trickling connection is closed instead of holding one of the connection permits.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // More than 100 header lines (hyper's default, kept: raising it moves the
        // header array to the heap) or a head over this size get 431.
        .max_header_size(MAX_REQUEST_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// How often the rate limiters forget clients whose buckets are full again.
const RATE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Answers one request inside its span: the trace's root, or the child of the caller's
/// span when the request carries a W3C `traceparent`.
async fn handle(
    state: &Arc<AppState>,
    request: Request<Incoming>,
    peer: std::net::IpAddr,
) -> Response<Body> {
    let route = rest::template(request.uri().path()).unwrap_or("unmatched");
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", crate::telemetry::method_label(request.method().as_str())),
        otel.kind = "server",
        http.request.method = crate::telemetry::method_label(request.method().as_str()),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        waygate.request_id = tracing::field::Empty,
        waygate.credential = tracing::field::Empty,
    );
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    crate::telemetry::otel::continue_trace(
        &span,
        header("traceparent"),
        header("tracestate"),
        false,
    );
    answer(state, request, peer, &span)
        .instrument(span.clone())
        .await
}

async fn answer(
    state: &Arc<AppState>,
    request: Request<Incoming>,
    peer: std::net::IpAddr,
    span: &tracing::Span,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = state.next_request_id();
    let (parts, body) = request.into_parts();
    let endpoint = rest::template(parts.uri.path());
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("\u{0}").to_owned());
    let origin_ok = origin.as_deref().is_none_or(|o| state.origin_allowed(o));
    let host = parts
        .headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{0}"));
    let host_ok = state.host_allowed(host);

    let mut response = if parts.method == Method::OPTIONS && origin.is_some() {
        preflight(origin_ok && host_ok)
    } else if !origin_ok || !host_ok {
        let message = if host_ok {
            format!(
                "origin {:?} is not allowed",
                origin.as_deref().unwrap_or_default()
            )
        } else {
            format!("host {:?} is not allowed", host.unwrap_or_default())
        };
        if endpoint == Some("/mcp") {
            mcp::forbidden_origin(&message)
        } else {
            error_response(state, &ApiError::forbidden(message), &request_id)
        }
    } else {
        dispatch(state, &parts, body, endpoint, &request_id, peer).await
    };

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    security_headers(headers);
    if let Some(origin) = origin.filter(|_| origin_ok && host_ok)
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let elapsed = started.elapsed();
    let route = endpoint.unwrap_or("unmatched");
    let status = response.status().as_u16();
    let credential = response.extensions_mut().remove::<CredentialName>();
    span.record("http.response.status_code", status);
    span.record("waygate.request_id", request_id.as_str());
    if let Some(name) = &credential {
        span.record("waygate.credential", name.0.as_str());
    }
    tracing::info!(
        target: "waygate::access",
        request_id,
        method = %parts.method,
        route,
        status,
        credential = credential.as_ref().map(|c| c.0.as_str()),
        duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    state
        .service
        .metrics
        .observe_request(parts.method.as_str(), route, status, elapsed);
    response
}

/// Authenticates, reads the body, and routes to `/mcp` or the REST handlers. The credential
/// is checked before the body is read, so an unauthenticated client costs no body reading.
async fn dispatch(
    state: &Arc<AppState>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    endpoint: Option<&'static str>,
    request_id: &str,
    peer: std::net::IpAddr,
) -> Response<Body> {
    let is_mcp = endpoint == Some("/mcp");
    // No such route: answered before any credential check or body read.
    let Some(template) = endpoint else {
        let path = parts.uri.path();
        return error_response(
            state,
            &ApiError::not_found(format!("no route for {path}")),
            request_id,
        );
    };
    let principal = match state
        .authorize(parts, template)
        .instrument(tracing::info_span!("auth"))
        .await
    {
        Ok(principal) => principal,
        Err(error) => {
            let status = match error {
                AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
                AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
            };
            // Failed credentials count against the sender's address, so guessing keys or
            // tokens (each one a signature check with OAuth) is rate limited too.
            if status == StatusCode::UNAUTHORIZED
                && let Some(verdict) = state
                    .rate_check(Group::Default, Client::of(None, peer))
                    .filter(|v| !v.allowed)
            {
                let mut response =
                    error_response(state, &ApiError::rate_limited(verdict.limit), request_id);
                verdict.headers(response.headers_mut());
                return response;
            }
            let mut response = if is_mcp {
                mcp::auth_error(status, &error)
            } else {
                error_response(state, &ApiError::from(error), request_id)
            };
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, state.challenge());
            }
            return response;
        }
    };
    let client = Client::of(principal.identity(), peer);
    // Every request takes from its group's bucket before its body is read; a POST to /mcp
    // takes from the default one here and, once it is known to be a tools/call, from the
    // execute one in the transport.
    let verdict = state.rate_check(Group::of_route(template), client.clone());
    if let Some(verdict) = verdict.as_ref().filter(|v| !v.allowed) {
        let mut response = if is_mcp {
            mcp::rate_limited(verdict)
        } else {
            error_response(state, &ApiError::rate_limited(verdict.limit), request_id)
        };
        verdict.headers(response.headers_mut());
        // The access line names who was refused: what a 429 storm's playbook looks for.
        response
            .extensions_mut()
            .insert(CredentialName(principal.name.clone()));
        return response;
    }
    // Only the two routes that take a body read one; the others never wait for it.
    let takes_body = matches!(
        (&parts.method, template),
        (&Method::POST, "/mcp" | "/mcp/execute") | (&Method::PUT, "/diagnostics/log-level")
    );
    let body = if takes_body {
        read_body(state, body).await
    } else {
        Ok(Bytes::new())
    };
    let mut response = match body {
        Ok(body) if is_mcp => {
            mcp::handle(state, parts, &body, request_id, &principal, client).await
        }
        Ok(body) => {
            match rest::route(state, parts, template, &body, request_id, &principal).await {
                Ok(response) => response,
                Err(error) => error_response(state, &error, request_id),
            }
        }
        Err(error) if is_mcp => mcp::transport_error(&error),
        Err(error) => error_response(state, &error, request_id),
    };
    // A tool call's execute-bucket headers, set by the transport, are the ones that bind.
    if let Some(verdict) = verdict
        && !response.headers().contains_key("x-ratelimit-limit")
    {
        verdict.headers(response.headers_mut());
    }
    response
        .extensions_mut()
        .insert(CredentialName(principal.name.clone()));
    response
}

/// The name of the credential that made a request, handed from `dispatch` to the access log
/// line `handle` writes; the credential itself is never logged.
#[derive(Clone)]
struct CredentialName(String);

/// The credential a request presents: `X-API-Key`, else `Authorization: Bearer`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key") {
        return key.to_str().ok();
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Reads the whole body within [`BODY_READ_TIMEOUT`] and [`Limits::max_body_bytes`].
async fn read_body(state: &AppState, body: Incoming) -> Result<Bytes, ApiError> {
    let limit = state.limits().max_body_bytes;
    let read =
        http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Ok(Err(e)) => Err(ApiError::invalid_request(format!("cannot read body: {e}"))),
        Err(_) => Err(ApiError::timeout(format!(
            "request body not received within {} s",
            BODY_READ_TIMEOUT.as_secs()
        ))),
    }
}

/// Request headers a browser page may send (CORS).
const ALLOWED_HEADERS: &str = "Content-Type, Accept, Authorization, X-API-Key, Mcp-Session-Id, \
     MCP-Protocol-Version, Mcp-Method, Mcp-Name";
/// Response headers a browser page may read (CORS).
const EXPOSED_HEADERS: &str = "Mcp-Session-Id, X-Request-Id, X-Total-Count, X-Page-Count, Link";

fn preflight(origin_ok: bool) -> Response<Body> {
    let mut response = empty(if origin_ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::FORBIDDEN
    });
    if origin_ok {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

/// The API spec's security headers (section 8.3), on every response.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-xss-protection",
        HeaderValue::from_static("1; mode=block"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'"),
    );
}

/// A response with a JSON body.
fn json_response(status: StatusCode, json: &serde_json::Value) -> Response<Body> {
    bytes_response(status, "application/json", crate::json::to_bytes(json))
}

fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

/// An API error response; server faults and limits also go to the error ring.
fn error_response(state: &AppState, error: &ApiError, request_id: &str) -> Response<Body> {
    if error.status.is_server_error() || error.status == StatusCode::REQUEST_TIMEOUT {
        state.service.errors.record(
            if error.status.is_server_error() {
                "ERROR"
            } else {
                "WARNING"
            },
            error.code,
            error.message.clone(),
            serde_json::json!({ "request_id": request_id, "details": error.details }),
        );
    }
    let mut response = bytes_response(error.status, "application/json", error.body(request_id));
    if let Some(allow) = &error.allow
        && let Ok(value) = HeaderValue::from_str(allow)
    {
        response.headers_mut().insert(header::ALLOW, value);
    }
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Now as RFC 3339 UTC with milliseconds, the API's timestamp format.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
