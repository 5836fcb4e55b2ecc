//! Outbound HTTP for plugins whose manifest grants it: each `wasi:http` request is checked
//! against the plugin's allow-list and methods, then, after name resolution, against the
//! operator's address policy, and sent on a connection to the very address that was checked.
//! Owns: [`HttpGrant`], [`HostPattern`], [`HttpMethod`], [`special_range`], the per-call
//! [`OutboundHttp`] hooks. Never: follows redirects, uses a proxy, or reads the environment.
//! Limits: [`PluginLimits::http_timeout_ms`], [`PluginLimits::http_response_bytes`],
//! [`PluginLimits::http_requests`].

use crate::config::PluginLimits;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::{Method, Request, Response};
use ipnet::IpNet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One entry of a manifest's `allow` list: `[scheme://]host[:port]`.
///
/// - `host` is a name (`api.example.com`), a wildcard for its subdomains (`*.example.com`,
///   which does not match `example.com` itself), an IP address (`10.0.0.5`, `[::1]`), or
///   `*` for any host.
/// - Without a port, only the scheme's default port (80, 443) matches; `:*` matches any.
/// - Without a scheme, both `http` and `https` match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct HostPattern {
    text: String,
    https: Option<bool>,
    host: HostMatch,
    port: PortMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Name(String),
    /// `.example.com`: any name ending in it.
    Subdomains(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    SchemeDefault,
    Any,
    Exactly(u16),
}

impl TryFrom<String> for HostPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = |why: &str| format!("{text:?} is not a host pattern: {why}");
        let (https, rest) = match text.split_once("://") {
            Some(("http", rest)) => (Some(false), rest),
            Some(("https", rest)) => (Some(true), rest),
            Some((other, _)) => return Err(bad(&format!("scheme {other:?} is not http or https"))),
            None => (None, text.as_str()),
        };
        if rest.is_empty() || rest.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad("write [scheme://]host[:port], without a path or user"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (ip, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (HostMatch::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let host = if host == "*" {
                HostMatch::Any
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                HostMatch::Ip(ip)
            } else {
                let (name, wildcard) = match host.strip_prefix("*.") {
                    Some(name) => (name, true),
                    None => (host.as_str(), false),
                };
                let valid = !name.is_empty()
                    && name.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid {
                    return Err(bad("the host must be a name, *.name, an IP address or *"));
                }
                if wildcard {
                    HostMatch::Subdomains(format!(".{name}"))
                } else {
                    HostMatch::Name(name.to_owned())
                }
            };
            (host, port)
        };
        let port = match port {
            None => PortMatch::SchemeDefault,
            Some("*") => PortMatch::Any,
            Some(digits) => PortMatch::Exactly(
                digits
                    .parse()
                    .map_err(|_| bad("the port must be a number or *"))?,
            ),
        };
        Ok(Self {
            text,
            https,
            host,
            port,
        })
    }
}

impl HostPattern {
    /// Whether a request to `host:port` over `https` (or not) matches. `host` is as in the
    /// URL (lowercase), IPv6 addresses without brackets.
    fn matches(&self, https: bool, host: &str, port: u16) -> bool {
        if self.https.is_some_and(|wanted| wanted != https) {
            return false;
        }
        let port_ok = match self.port {
            PortMatch::SchemeDefault => port == default_port(https),
            PortMatch::Any => true,
            PortMatch::Exactly(wanted) => port == wanted,
        };
        let ip = host.parse::<IpAddr>().ok();
        let host_ok = match (&self.host, ip) {
            (HostMatch::Any, _) => true,
            (HostMatch::Ip(wanted), Some(ip)) => wanted.to_canonical() == ip.to_canonical(),
            (HostMatch::Name(name), None) => host == name,
            (HostMatch::Subdomains(suffix), None) => host.ends_with(suffix.as_str()),
            _ => false,
        };
        port_ok && host_ok
    }

    /// The pattern as the manifest wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A method a manifest may allow. `CONNECT` and `TRACE` are never allowed: one opens a
/// tunnel past the allow-list, the other reflects the request's headers back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct HttpMethod(Method);

impl TryFrom<String> for HttpMethod {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let method = match text.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "OPTIONS" => Method::OPTIONS,
            _ => {
                return Err(format!(
                    "method {text:?} cannot be allowed: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"
                ));
            }
        };
        Ok(Self(method))
    }
}

impl HttpMethod {
    /// The method's name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The methods allowed when a manifest names none: the ones that only read.
    pub fn read_only() -> Vec<HttpMethod> {
        vec![HttpMethod(Method::GET), HttpMethod(Method::HEAD)]
    }
}

/// What one plugin may reach over HTTP, fixed when it loads: the manifest's hosts and
/// methods, the plugin's HTTP limits, and the operator's exceptions to the address policy.
#[derive(Debug)]
pub struct HttpGrant {
    allow: Vec<HostPattern>,
    methods: Vec<HttpMethod>,
    allowed_networks: Arc<[IpNet]>,
    timeout: Duration,
    max_response_bytes: u64,
    max_requests: u32,
}

impl HttpGrant {
    /// A grant of `allow` × `methods`, under `limits`, with `allowed_networks` opened.
    pub fn new(
        allow: Vec<HostPattern>,
        methods: Vec<HttpMethod>,
        allowed_networks: Arc<[IpNet]>,
        limits: &PluginLimits,
    ) -> Self {
        Self {
            allow,
            methods,
            allowed_networks,
            timeout: limits.http_timeout(),
            max_response_bytes: limits.http_response_bytes,
            max_requests: limits.http_requests,
        }
    }

    /// The host patterns allowed.
    pub fn allow(&self) -> impl Iterator<Item = &HostPattern> {
        self.allow.iter()
    }

    /// The methods allowed.
    pub fn methods(&self) -> impl Iterator<Item = &HttpMethod> {
        self.methods.iter()
    }

    /// The special-purpose networks the operator opened.
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed_networks
    }

    /// Why a request of `method` to `https?://host:port` is outside the grant, if it is.
    fn refuses(&self, method: &Method, https: bool, host: &str, port: u16) -> Option<String> {
        if !self.methods.iter().any(|m| m.0 == *method) {
            let allowed: Vec<&str> = self.methods.iter().map(HttpMethod::as_str).collect();
            return Some(format!(
                "method {method} is not allowed (the manifest allows {})",
                allowed.join(", ")
            ));
        }
        if !self.allow.iter().any(|p| p.matches(https, host, port)) {
            let scheme = if https { "https" } else { "http" };
            return Some(format!(
                "{scheme}://{host}:{port} is not in the manifest's allow-list"
            ));
        }
        None
    }

    /// Whether the address policy lets a plugin connect to `ip`.
    fn admits(&self, ip: IpAddr) -> Result<(), String> {
        let ip = ip.to_canonical();
        match special_range(ip) {
            Some(range) if !self.allowed_networks.iter().any(|net| net.contains(&ip)) => {
                Err(format!(
                    "{ip} is {range}, closed to plugins unless [outbound_http] allow_networks opens it"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The special-purpose range `ip` belongs to, if any. Plugins may not connect to these
/// unless the operator opens them: they are this machine, its private networks, cloud
/// metadata services (169.254.169.254), or not meant to be reached at all.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if a == 0 => "a \"this network\" address (0.0.0.0/8)",
        _ if ip.is_loopback() => "a loopback address (127.0.0.0/8)",
        _ if ip.is_private() => "a private address (RFC 1918)",
        _ if ip.is_link_local() => "a link-local address (169.254.0.0/16, cloud metadata)",
        _ if a == 100 && (64..128).contains(&b) => "a shared address (100.64.0.0/10)",
        _ if a == 192 && b == 0 && c == 0 => "an IETF protocol address (192.0.0.0/24)",
        _ if ip.is_documentation() => "a documentation address",
        _ if a == 198 && (18..20).contains(&b) => "a benchmarking address (198.18.0.0/15)",
        _ if a == 192 && b == 88 && c == 99 => "a 6to4 relay address (192.88.99.0/24)",
        _ if ip.is_multicast() => "a multicast address",
        _ if a >= 240 => "a reserved address (240.0.0.0/4)",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    Some(match () {
        _ if ip.is_unspecified() => "the unspecified address (::)",
        _ if ip.is_loopback() => "a loopback address (::1)",
        _ if s[..6] == [0; 6] => "an IPv4-compatible address (::/96)",
        // IPv4-translated (SIIT) addresses reach an IPv4 host: judge that one.
        _ if s[..6] == [0, 0, 0, 0, 0xffff, 0] => return special_v4(embedded_v4(s[6], s[7])),
        // NAT64 and 6to4 carry an IPv4 address: judge that one.
        _ if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => return special_v4(embedded_v4(s[6], s[7])),
        _ if s[0] == 0x2002 => return special_v4(embedded_v4(s[1], s[2])),
        _ if s[0] == 0x64 && s[1] == 0xff9b => "a local NAT64 address (64:ff9b:1::/48)",
        _ if s[..4] == [0x100, 0, 0, 0] => "a discard-only address (100::/64)",
        _ if s[0] == 0x2001 && s[1] < 0x200 => "an IETF protocol address (2001::/23)",
        _ if s[0] == 0x2001 && s[1] == 0xdb8 => "a documentation address (2001:db8::/32)",
        _ if s[0] & 0xf000 == 0x3000 && s[0] >> 4 == 0x3ff => "a documentation address (3fff::/20)",
        _ if s[0] == 0x5f00 => "a segment-routing address (5f00::/16)",
        _ if ip.is_unique_local() => "a unique local address (fc00::/7)",
        _ if ip.is_unicast_link_local() => "a link-local address (fe80::/10)",
        _ if s[0] & 0xffc0 == 0xfec0 => "a site-local address (fec0::/10)",
        _ if ip.is_multicast() => "a multicast address",
        _ => return None,
    })
}

fn default_port(https: bool) -> u16 {
    if https { 443 } else { 80 }
}

/// The boxed future `wasi:http` expects back from [`WasiHttpHooks::send_request`].
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// One call's outbound HTTP: its plugin's grant (none: every request is refused) and the
/// number of requests it has sent.
pub(super) struct OutboundHttp {
    grant: Option<Arc<HttpGrant>>,
    plugin: Arc<str>,
    request_id: Arc<str>,
    sent: u32,
    /// Failures logged so far in this call, shared with the requests' futures.
    failures_logged: Arc<AtomicU32>,
}

/// Failed or refused requests logged per call; a guest looping on refused requests would
/// otherwise write a line each time, around the `log_lines` cap.
const MAX_FAILURES_LOGGED: u32 = 8;

impl OutboundHttp {
    pub(super) fn new(
        grant: Option<Arc<HttpGrant>>,
        plugin: Arc<str>,
        request_id: Arc<str>,
    ) -> Self {
        Self {
            grant,
            plugin,
            request_id,
            sent: 0,
            failures_logged: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Checks everything that needs no network: the grant, the count, the allow-list.
    fn admit(&mut self, request: &Request<WasiBody>) -> Result<(Arc<HttpGrant>, Target), Refusal> {
        let Some(grant) = &self.grant else {
            return Err(Refusal::denied(
                "the plugin has no [capabilities.http] grant in its plugin.toml".to_owned(),
            ));
        };
        self.sent += 1;
        if self.sent > grant.max_requests {
            return Err(Refusal {
                code: HttpError::ConnectionLimitReached,
                reason: format!(
                    "the call already sent {} requests (limits.http_requests)",
                    grant.max_requests
                ),
            });
        }
        let uri = request.uri();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(Refusal {
                    code: HttpError::HttpRequestUriInvalid,
                    reason: format!("scheme {other:?} is not http or https"),
                });
            }
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // The Host header is built from the authority: credentials would go out in it.
            return Err(Refusal {
                code: HttpError::HttpRequestUriInvalid,
                reason: "credentials in the URL's authority are not sent".to_owned(),
            });
        }
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Refusal {
                code: HttpError::HttpRequestUriInvalid,
                reason: "the request has no host".to_owned(),
            })?;
        let port = uri.port_u16().unwrap_or(default_port(https));
        if let Some(reason) = grant.refuses(request.method(), https, &host, port) {
            return Err(Refusal::denied(reason));
        }
        Ok((grant.clone(), Target { https, host, port }))
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_body_result: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let admitted = self.admit(&request);
        let (plugin, request_id) = (self.plugin.clone(), self.request_id.clone());
        // Only the origin: a query string may carry a secret.
        let url = format!(
            "{}://{}{}",
            request.uri().scheme_str().unwrap_or("https"),
            request.uri().authority().map_or("", |a| a.as_str()),
            request.uri().path()
        );
        let method = request.method().clone();
        let failures_logged = self.failures_logged.clone();
        Box::new(async move {
            let outcome = match admitted {
                Ok((grant, target)) => send(&grant, target, request, options).await,
                Err(refusal) => Err(refusal),
            };
            match outcome {
                Ok((response, connection)) => {
                    tracing::debug!(
                        target: "plugin.http",
                        plugin = &*plugin, request_id = &*request_id, %method, url,
                        status = response.status().as_u16(),
                        "outbound request answered"
                    );
                    Ok((response, connection))
                }
                Err(Refusal { code, reason }) => {
                    let logged = failures_logged.fetch_add(1, Ordering::Relaxed);
                    if logged < MAX_FAILURES_LOGGED {
                        tracing::warn!(
                            target: "plugin.http",
                            plugin = &*plugin, request_id = &*request_id, %method, url, reason,
                            "outbound request failed"
                        );
                    } else if logged == MAX_FAILURES_LOGGED {
                        tracing::warn!(
                            target: "plugin.http",
                            plugin = &*plugin, request_id = &*request_id,
                            "further outbound failures of this call are not logged"
                        );
                    }
                    Err(code)
                }
            }
        })
    }
}

/// Why a request was not sent or not answered: the code the plugin sees, and the reason the
/// host logs.
struct Refusal {
    code: HttpError,
    reason: String,
}

impl Refusal {
    fn denied(reason: String) -> Self {
        Self {
            code: HttpError::HttpRequestDenied,
            reason,
        }
    }
}

/// Where an admitted request goes.
struct Target {
    https: bool,
    host: String,
    port: u16,
}

/// Resolves, checks every address, connects to a permitted one, and exchanges the request.
async fn send(
    grant: &HttpGrant,
    target: Target,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    Refusal,
> {
    let shorter = |option: Option<Duration>| option.map_or(grant.timeout, |t| t.min(grant.timeout));
    let options = options.unwrap_or_default();
    let deadline = Instant::now() + shorter(options.first_byte_timeout);
    let connect_deadline = Instant::now() + shorter(options.connect_timeout);
    let timed_out = |code: HttpError, what: &str| Refusal {
        code,
        reason: format!("{what} took longer than {} ms", grant.timeout.as_millis()),
    };

    let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::time::timeout_at(
            connect_deadline,
            tokio::net::lookup_host((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| timed_out(HttpError::DnsTimeout, "name resolution"))?
        .map_err(|e| Refusal {
            code: HttpError::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            },
            reason: format!("cannot resolve {}: {e}", target.host),
        })?
        .collect(),
    };
    let mut closed = Vec::new();
    let permitted: Vec<SocketAddr> = addresses
        .into_iter()
        .filter(|address| match grant.admits(address.ip()) {
            Ok(()) => true,
            Err(reason) => {
                closed.push(reason);
                false
            }
        })
        .collect();
    if permitted.is_empty() {
        return Err(Refusal {
            code: HttpError::DestinationIpProhibited,
            reason: match closed.is_empty() {
                true => format!("{} has no address", target.host),
                false => format!("{}: {}", target.host, closed.join("; ")),
            },
        });
    }

    let mut last_error = None;
    let mut stream = None;
    for address in permitted {
        match tokio::time::timeout_at(connect_deadline, tokio::net::TcpStream::connect(address))
            .await
        {
            Ok(Ok(tcp)) => {
                stream = Some(tcp);
                break;
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => return Err(timed_out(HttpError::ConnectionTimeout, "connecting")),
        }
    }
    let Some(tcp) = stream else {
        let error = last_error.map_or_else(|| "no address".to_owned(), |e| e.to_string());
        return Err(Refusal {
            code: HttpError::ConnectionRefused,
            reason: format!("cannot connect to {}: {error}", target.host),
        });
    };
    // Requests are small and latency-bound: do not wait to fill a segment.
    let _ = tcp.set_nodelay(true);
    let between_bytes = shorter(options.between_bytes_timeout);
    let limits = BodyLimits {
        max_bytes: grant.max_response_bytes,
        between_bytes,
    };
    if !target.https {
        return exchange(tcp, request, deadline, limits).await;
    }
    let name =
        rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| Refusal {
            code: HttpError::HttpRequestUriInvalid,
            reason: format!("{} is not a TLS server name: {e}", target.host),
        })?;
    let tls = tokio::time::timeout_at(
        deadline,
        tokio_rustls::TlsConnector::from(crate::http_client::config()).connect(name, tcp),
    )
    .await
    .map_err(|_| timed_out(HttpError::ConnectionTimeout, "the TLS handshake"))?
    .map_err(|e| Refusal {
        code: tls_error_code(&e),
        reason: format!("TLS with {}: {e}", target.host),
    })?;
    exchange(tls, request, deadline, limits).await
}

/// The guest-visible code of a failed TLS handshake.
fn tls_error_code(error: &std::io::Error) -> HttpError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => HttpError::TlsProtocolError,
    }
}

/// Caps on a response body.
#[derive(Clone, Copy)]
struct BodyLimits {
    max_bytes: u64,
    between_bytes: Duration,
}

/// Sends `request` over `stream` with HTTP/1.1 and waits for the response headers until
/// `deadline`, driving the connection meanwhile. Returns the response, its body capped,
/// and the connection's future, which `wasi:http` runs for as long as the body is read.
async fn exchange<S>(
    stream: S,
    mut request: Request<WasiBody>,
    deadline: Instant,
    limits: BodyLimits,
) -> Result<
    (
        Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    Refusal,
>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let failed = |e: hyper::Error| Refusal {
        reason: e.to_string(),
        code: HttpError::from(e),
    };
    let (mut sender, connection) = tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Refusal {
        code: HttpError::ConnectionTimeout,
        reason: "the HTTP handshake timed out".to_owned(),
    })?
    .map_err(failed)?;
    // On the wire the request line carries the path alone; `Host` is already set.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| Refusal {
            code: HttpError::HttpRequestUriInvalid,
            reason: "the path is not valid in a request line".to_owned(),
        })?;
    *request.uri_mut() = path;

    let mut connection = Some(Box::pin(connection));
    let answer = sender.send_request(request);
    tokio::pin!(answer);
    let response = tokio::time::timeout_at(deadline, async {
        loop {
            match connection.as_mut() {
                Some(running) => tokio::select! {
                    biased;
                    response = &mut answer => break response,
                    finished = running => {
                        // The connection ended first: the answer is ready or never comes.
                        connection = None;
                        finished?;
                    }
                },
                None => break (&mut answer).await,
            }
        }
    })
    .await
    .map_err(|_| Refusal {
        code: HttpError::HttpResponseTimeout,
        reason: "no response headers in time".to_owned(),
    })?
    .map_err(failed)?;

    // hyper's size hint is the declared length, and zero where no body may come (HEAD, 204,
    // 304) whatever the header says.
    let declared = response.body().size_hint().lower();
    if declared > limits.max_bytes {
        let length = declared;
        return Err(Refusal {
            code: HttpError::HttpResponseBodySize(Some(limits.max_bytes)),
            reason: format!(
                "the response declares {length} bytes, over limits.http_response_bytes = {}",
                limits.max_bytes
            ),
        });
    }
    let response = response.map(|incoming| CappedBody::new(incoming, limits).boxed_unsync());
    let connection: Box<dyn Future<Output = Result<(), HttpError>> + Send> = match connection {
        Some(running) => Box::new(async move { running.await.map_err(HttpError::from) }),
        None => Box::new(async { Ok(()) }),
    };
    Ok((response, connection))
}

/// A response body that fails past `max_bytes`, or when no chunk comes for `between_bytes`.
struct CappedBody {
    incoming: hyper::body::Incoming,
    left: u64,
    limits: BodyLimits,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl CappedBody {
    fn new(incoming: hyper::body::Incoming, limits: BodyLimits) -> Self {
        Self {
            incoming,
            left: limits.max_bytes,
            limits,
            idle: Box::pin(tokio::time::sleep(limits.between_bytes)),
        }
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                if size > this.left {
                    this.left = 0;
                    return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                        this.limits.max_bytes,
                    )))));
                }
                this.left -= size;
                let next = Instant::now() + this.limits.between_bytes;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        HostPattern::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let exact = pattern("api.example.com");
        assert!(exact.matches(true, "api.example.com", 443));
        assert!(exact.matches(false, "api.example.com", 80));
        assert!(!exact.matches(true, "api.example.com", 8443));
        assert!(!exact.matches(true, "example.com", 443));
        assert!(!exact.matches(true, "api.example.com.evil.net", 443));

        let wildcard = pattern("https://*.example.com:*");
        assert!(wildcard.matches(true, "a.b.example.com", 8443));
        assert!(!wildcard.matches(true, "example.com", 443));
        assert!(!wildcard.matches(true, "badexample.com", 443));
        assert!(!wildcard.matches(false, "a.example.com", 80));

        let loopback = pattern("http://127.0.0.1:8080");
        assert!(loopback.matches(false, "127.0.0.1", 8080));
        assert!(!loopback.matches(false, "localhost", 8080));
        assert!(pattern("[::1]:*").matches(true, "::1", 1));
        assert!(pattern("*").matches(false, "anything.example", 80));
        assert!(pattern("API.Example.COM.").matches(true, "api.example.com", 443));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, why) in [
            ("ftp://x.com", "scheme"),
            ("x.com/path", "without a path"),
            ("user@x.com", "without a path or user"),
            ("x.com:http", "port"),
            ("*x.com", "host must be"),
            ("a..b", "host must be"),
            ("[::1", "closing"),
            ("", "without a path"),
        ] {
            let error = HostPattern::try_from(text.to_owned()).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
    }

    #[test]
    fn methods_exclude_tunnels_and_reflection() {
        assert!(HttpMethod::try_from("get".to_owned()).is_ok());
        assert!(HttpMethod::try_from("CONNECT".to_owned()).is_err());
        assert!(HttpMethod::try_from("TRACE".to_owned()).is_err());
    }

    #[test]
    fn special_ranges_cover_the_host_and_its_networks() {
        let special = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:0:7f00:1",
            "3fff::1",
            "5f00::1",
            "192.88.99.1",
        ];
        for ip in special {
            assert!(special_range(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(special_range(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_operator_can_open_a_special_network() {
        let limits = PluginLimits::default();
        let closed = HttpGrant::new(vec![], HttpMethod::read_only(), Arc::from([]), &limits);
        assert!(
            closed
                .admits("127.0.0.1".parse().unwrap())
                .unwrap_err()
                .contains("loopback")
        );
        assert!(closed.admits("::ffff:127.0.0.1".parse().unwrap()).is_err());
        let open = HttpGrant::new(
            vec![],
            HttpMethod::read_only(),
            Arc::from(["127.0.0.0/8".parse::<IpNet>().unwrap()]),
            &limits,
        );
        assert!(open.admits("127.0.0.1".parse().unwrap()).is_ok());
        assert!(open.admits("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(open.admits("10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn a_call_may_send_only_so_many_requests() {
        let limits = PluginLimits {
            http_requests: 2,
            ..PluginLimits::default()
        };
        let grant = HttpGrant::new(
            vec![pattern("api.example.com")],
            HttpMethod::read_only(),
            Arc::from([]),
            &limits,
        );
        let mut outbound = OutboundHttp::new(Some(Arc::new(grant)), Arc::from("p"), Arc::from("r"));
        let request = || {
            let empty = http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync();
            Request::get("https://api.example.com/")
                .body(empty)
                .unwrap()
        };
        assert!(outbound.admit(&request()).is_ok());
        assert!(outbound.admit(&request()).is_ok());
        let third = outbound.admit(&request()).err().unwrap();
        assert!(matches!(third.code, HttpError::ConnectionLimitReached));
        assert!(third.reason.contains("limits.http_requests"));

        let mut fresh = OutboundHttp::new(
            Some(Arc::new(HttpGrant::new(
                vec![pattern("*")],
                HttpMethod::read_only(),
                Arc::from([]),
                &PluginLimits::default(),
            ))),
            Arc::from("p"),
            Arc::from("r"),
        );
        let with_credentials = Request::get("https://user:pw@api.example.com/")
            .body(request().into_body())
            .unwrap();
        let refused = fresh.admit(&with_credentials).err().unwrap();
        assert!(matches!(refused.code, HttpError::HttpRequestUriInvalid));

        let mut ungranted = OutboundHttp::new(None, Arc::from("p"), Arc::from("r"));
        let refused = ungranted.admit(&request()).err().unwrap();
        assert!(matches!(refused.code, HttpError::HttpRequestDenied));
    }

    #[test]
    fn the_grant_checks_method_then_host() {
        let grant = HttpGrant::new(
            vec![pattern("api.example.com")],
            HttpMethod::read_only(),
            Arc::from([]),
            &PluginLimits::default(),
        );
        assert_eq!(
            grant.refuses(&Method::GET, true, "api.example.com", 443),
            None
        );
        assert!(
            grant
                .refuses(&Method::POST, true, "api.example.com", 443)
                .unwrap()
                .contains("method POST")
        );
        assert!(
            grant
                .refuses(&Method::GET, true, "other.example.com", 443)
                .unwrap()
                .contains("allow-list")
        );
    }
}
