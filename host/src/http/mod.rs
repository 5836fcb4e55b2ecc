//! The HTTP edge: the listener with its connection limit, routing, body limits, the REST
//! endpoints, and the one place errors become statuses.
//! Owns: [`serve`], [`AppState`], [`ApiError`]. Never: runs guest code except through
//! `registry`, or touches the database except through `store`.
//! Limits: [`Limits::max_connections`], [`Limits::max_body_bytes`], [`Limits::shutdown_grace_ms`].

mod error;
mod rest;

pub use error::ApiError;

use crate::config::Limits;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::store::Store;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Response bodies are whole buffers: every answer here is a small JSON document.
type Body = http_body_util::Full<hyper::body::Bytes>;

/// Time a client has to send a request's headers, on a new or a kept-alive connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client has to send a request's body once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request handler shares.
pub struct AppState {
    /// The sandbox.
    pub runtime: Arc<Runtime>,
    /// The plugins serving now. Readers clone the `Arc` and drop the lock at once, so a
    /// reload can swap in a new registry while calls finish on the old one.
    registry: RwLock<Arc<Registry>>,
    /// The database.
    pub store: Arc<Store>,
    /// The process limits.
    pub limits: Limits,
    /// When the server started, for `uptime_seconds`.
    pub started: Instant,
    /// Source of request and command ids.
    next_id: AtomicU64,
}

impl AppState {
    /// State for a server over a loaded registry.
    pub fn new(
        runtime: Arc<Runtime>,
        registry: Registry,
        store: Arc<Store>,
        limits: Limits,
    ) -> Self {
        Self {
            runtime,
            registry: RwLock::new(Arc::new(registry)),
            store,
            limits,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The registry serving now.
    pub fn registry(&self) -> Arc<Registry> {
        // The lock only guards an `Arc` swap, which cannot panic half-way.
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn next_request_id(&self) -> String {
        format!("req_{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// Serves HTTP on `listener` until `shutdown` resolves, then waits up to
/// [`Limits::shutdown_grace_ms`] for requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = state.limits.clone();
    // A permit is taken before `accept` and moved into the connection's task, so at most
    // `max_connections` connections are open and the rest wait in the kernel's backlog.
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
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
        let state = state.clone();
        let service = hyper::service::service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&state, request).await) }
        });
        // A client gets HEADER_READ_TIMEOUT to send each request's headers; a silent or
        // trickling connection is closed instead of holding one of the connection permits.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
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
}

async fn handle(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    let request_id = state.next_request_id();
    let (parts, body) = request.into_parts();
    let limit = state.limits.max_body_bytes;
    let read =
        http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect();
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return error_response(&ApiError::too_large(limit), &request_id);
        }
        Ok(Err(e)) => {
            return error_response(
                &ApiError::invalid_request(format!("cannot read body: {e}")),
                &request_id,
            );
        }
        Err(_) => {
            let message = format!(
                "request body not received within {} s",
                BODY_READ_TIMEOUT.as_secs()
            );
            return error_response(&ApiError::timeout(message), &request_id);
        }
    };
    let response = rest::route(state, &parts, &body, &request_id).await;
    let mut response = match response {
        Ok((status, json)) => json_response(status, &json),
        Err(error) => error_response(&error, &request_id),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn json_response(status: StatusCode, json: &serde_json::Value) -> Response<Body> {
    json_bytes_response(status, json.to_string().into_bytes())
}

fn error_response(error: &ApiError, request_id: &str) -> Response<Body> {
    json_bytes_response(error.status, error.body(request_id))
}

fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Now as RFC 3339 UTC with milliseconds, the API's timestamp format.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
