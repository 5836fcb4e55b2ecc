//! The host's own outbound HTTP(S) requests (JWKS fetches, OTLP export), and the TLS client
//! settings every outbound HTTPS connection uses, plugins' granted requests included:
//! Mozilla's root store (webpki-roots) and `ring`.
//! Never: reads the system's certificate store or the environment (no proxy variables).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use std::sync::{Arc, OnceLock};

/// The shared client configuration, built once.
pub fn config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // `ring` supports every safe default version; failing here is a build error.
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Sends `request` (its URI absolute: `http://` or `https://`) on a new HTTP/1.1 connection
/// and reads the whole response, refusing a body over `max_body` bytes. The caller bounds
/// the time.
///
/// # Errors
///
/// What failed: the URL, the connection, TLS, the exchange or the body.
pub async fn send(
    mut request: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Response<Bytes>, String> {
    let uri = request.uri().clone();
    let host = uri.host().ok_or("URL without a host")?.to_owned();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => return Err(format!("scheme {other:?} is not http or https")),
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    // On the wire the request line carries the path; the authority goes in `Host`.
    let authority = uri.authority().map_or("", |a| a.as_str()).to_owned();
    if let Ok(value) = hyper::header::HeaderValue::from_str(&authority) {
        request.headers_mut().insert(hyper::header::HOST, value);
    }
    *request.uri_mut() = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| format!("bad path: {e}"))?;
    if https {
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| format!("bad host name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(tls, request, max_body).await
    } else {
        exchange(tcp, request, max_body).await
    }
}

async fn exchange<I>(
    io: I,
    request: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Response<Bytes>, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(Response::from_parts(parts, body.to_bytes()))
}
