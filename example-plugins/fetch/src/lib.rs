//! `fetch`: fetches a URL over HTTP(S) and returns its text, or its JSON parsed.
//!
//! Build: `cargo xtask plugins`; run: `cargo xtask run`, then call `fetch__fetch`.
//! Grants: `[capabilities.http]` in its `plugin.toml`. Waygate checks every request against
//! that allow-list and refuses loopback, private and link-local addresses unless the
//! operator opens them, so the plugin needs no checks of its own; it explains refusals.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;
use waygate_plugin_sdk::prelude::*;

/// Bytes written to the request body per call: the most `blocking-write-and-flush` takes.
const WRITE_CHUNK: usize = 4096;
/// Bytes asked for per read of the response body.
const READ_CHUNK: u64 = 64 * 1024;

/// The plugin's `[config]`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The `User-Agent` header sent with every request.
    #[serde(default = "default_user_agent")]
    user_agent: String,
    /// Most characters of a text body returned; the rest is cut and marked.
    #[serde(default = "default_max_chars")]
    #[schemars(range(min = 1))]
    max_chars: usize,
}

fn default_user_agent() -> String {
    concat!("waygate-fetch/", env!("CARGO_PKG_VERSION")).to_owned()
}

fn default_max_chars() -> usize {
    100_000
}

/// Arguments of `fetch`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    /// The URL, `http://` or `https://`.
    url: String,
    /// The method; `GET` when not given. The operator's grant says which are allowed.
    #[serde(default)]
    method: FetchMethod,
    /// Request headers, by name.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// A request body (for POST, PUT, PATCH), sent as given.
    body: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum FetchMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl FetchMethod {
    fn wit(self) -> Method {
        match self {
            FetchMethod::Get => Method::Get,
            FetchMethod::Head => Method::Head,
            FetchMethod::Post => Method::Post,
            FetchMethod::Put => Method::Put,
            FetchMethod::Patch => Method::Patch,
            FetchMethod::Delete => Method::Delete,
        }
    }
}

struct Fetch;

impl Plugin for Fetch {
    fn metadata() -> Metadata {
        Metadata::new(
            "fetch",
            env!("CARGO_PKG_VERSION"),
            "Fetches web pages and APIs its operator allows, as text or JSON",
        )
        .author("Waygate")
        .capabilities(&["http", "fetch"])
        .config::<Config>()
    }

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new::<FetchArgs>(
                "fetch",
                "Fetch a URL and return its body: JSON parsed, text as text. Only hosts the \
                 operator allows can be reached; a refusal says so.",
            )
            .title("Fetch a URL")
            .open_world(),
        ]
    }

    fn call(tool: &str, args: Arguments, _context: &CallContext) -> CallResult {
        if tool != "fetch" {
            return Err(CallError::unknown_tool(tool));
        }
        let config: Config = config::get()?;
        let args: FetchArgs = args.parse()?;
        let target = Target::parse(&args.url).map_err(CallError::InvalidArguments)?;
        match fetch(&config, &args, &target) {
            Ok(answer) => Ok(answer.into_result(&args.url, config.max_chars)),
            Err(failure) => Ok(ToolResult::error(failure.explain(&args))),
        }
    }
}

/// The parts of a URL `wasi:http` wants apart.
struct Target {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} has no host, or carries a user name"));
        }
        let path_with_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Target {
            https,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

/// A response, read whole.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn into_result(self, url: &str, max_chars: usize) -> ToolResult {
        let text = String::from_utf8_lossy(&self.body);
        if !(200..300).contains(&self.status) {
            let excerpt: String = text.chars().take(500).collect();
            return ToolResult::error(format!("HTTP {} from {url}: {excerpt}", self.status));
        }
        let essence = self
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let json = essence == "application/json" || essence.ends_with("+json");
        if let Some(value) = json
            .then(|| waygate_plugin_sdk::serde_json::from_slice::<Value>(&self.body).ok())
            .flatten()
        {
            return ToolResult::json(value);
        }
        let textual = essence.is_empty()
            || essence.starts_with("text/")
            || essence.ends_with("xml")
            || essence.ends_with("json")
            || essence == "application/javascript";
        if !textual {
            return ToolResult::error(format!(
                "{url} answered {essence} ({} bytes); fetch returns text and JSON only",
                self.body.len()
            ));
        }
        let mut chars = text.chars();
        let mut cut: String = chars.by_ref().take(max_chars).collect();
        if chars.next().is_some() {
            cut.push_str("\n…[cut: the page is longer than max_chars]");
        }
        ToolResult::text(cut)
    }
}

/// Why a request failed.
enum Failure {
    /// `wasi:http` (or the host's policy behind it) said no.
    Http(ErrorCode),
    /// Something the guest side could not do.
    Other(String),
}

impl Failure {
    fn explain(&self, args: &FetchArgs) -> String {
        let url = &args.url;
        match self {
            Failure::Http(ErrorCode::HttpRequestDenied) => format!(
                "Waygate refused the request to {url}: the operator's grant for this plugin \
                 ([capabilities.http] in its plugin.toml) does not allow this host or method"
            ),
            Failure::Http(ErrorCode::DestinationIpProhibited) => format!(
                "Waygate refused the request to {url}: the host resolves to a loopback, \
                 private or link-local address, which plugins may not reach"
            ),
            Failure::Http(ErrorCode::ConnectionLimitReached) => {
                "Waygate refused the request: this call has sent as many requests as it may"
                    .to_owned()
            }
            Failure::Http(ErrorCode::HttpResponseBodySize(_)) => format!(
                "the response from {url} is larger than the host allows (limits.http_response_bytes)"
            ),
            Failure::Http(
                ErrorCode::ConnectionTimeout
                | ErrorCode::ConnectionReadTimeout
                | ErrorCode::HttpResponseTimeout
                | ErrorCode::DnsTimeout,
            ) => format!("{url} did not answer in time"),
            Failure::Http(ErrorCode::DnsError(_)) => {
                format!("the host of {url} cannot be resolved")
            }
            Failure::Http(code) => format!("the request to {url} failed: {code:?}"),
            Failure::Other(message) => format!("the request to {url} failed: {message}"),
        }
    }
}

fn fetch(config: &Config, args: &FetchArgs, target: &Target) -> Result<Answer, Failure> {
    let other = |what: &str| Failure::Other(what.to_owned());
    let mut headers = vec![(
        "user-agent".to_owned(),
        config.user_agent.clone().into_bytes(),
    )];
    headers.extend(
        args.headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone().into_bytes())),
    );
    let headers = Fields::from_list(&headers)
        .map_err(|e| Failure::Other(format!("bad request headers: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&args.method.wit())
        .map_err(|()| other("bad method"))?;
    let scheme = if target.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| other("bad scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| other("bad host"))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| other("bad path"))?;
    let body = match &args.body {
        Some(text) => Some((request.body().map_err(|()| other("no request body"))?, text)),
        None => None,
    };

    let pending = outgoing_handler::handle(request, None).map_err(Failure::Http)?;
    if let Some((body, text)) = body {
        write_body(body, text.as_bytes())?;
    }
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| other("no response after waiting for it"))?
        .map_err(|()| other("the response was already taken"))?
        .map_err(Failure::Http)?;

    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let incoming = response.consume().map_err(|()| other("no response body"))?;
    let body = read_body(&incoming)?;
    drop(IncomingBody::finish(incoming));
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Failure> {
    {
        let stream = body
            .write()
            .map_err(|()| Failure::Other("no request body stream".to_owned()))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(stream_failure)?;
        }
    }
    OutgoingBody::finish(body, None).map_err(Failure::Http)
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, Failure> {
    let stream = incoming
        .stream()
        .map_err(|()| Failure::Other("no response body stream".to_owned()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(error) => return Err(stream_failure(error)),
        }
    }
}

fn stream_failure(error: StreamError) -> Failure {
    match error {
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
            Some(code) => Failure::Http(code),
            None => Failure::Other(e.to_debug_string()),
        },
        StreamError::Closed => Failure::Other("the stream closed early".to_owned()),
    }
}

export_plugin!(Fetch);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_what_wasi_http_wants() {
        let t = Target::parse("https://api.example.com:8443/v1/x?q=1#frag").unwrap();
        assert!(t.https);
        assert_eq!(t.authority, "api.example.com:8443");
        assert_eq!(t.path_with_query, "/v1/x?q=1");
        let t = Target::parse("http://example.com").unwrap();
        assert_eq!(t.path_with_query, "/");
        let t = Target::parse("http://example.com?a=b").unwrap();
        assert_eq!(t.path_with_query, "/?a=b");
        assert!(Target::parse("ftp://example.com").is_err());
        assert!(Target::parse("https://user@example.com/").is_err());
        assert!(Target::parse("https:///x").is_err());
    }

    #[test]
    fn bodies_become_json_text_or_a_clear_error() {
        let answer = |status, content_type: &str, body: &str| Answer {
            status,
            content_type: content_type.to_owned(),
            body: body.as_bytes().to_vec(),
        };
        let json = answer(200, "application/json; charset=utf-8", "{\"a\":1}").into_result("u", 10);
        assert!(matches!(&json.content[0], Content::Json(v) if v["a"] == 1));
        let text = answer(200, "text/plain", "hello world").into_result("u", 5);
        assert!(matches!(&text.content[0], Content::Text(t) if t.starts_with("hello\n…[cut")));
        let missing = answer(404, "text/plain", "gone").into_result("u", 10);
        assert!(missing.is_error);
        let image = answer(200, "image/png", "\u{89}PNG").into_result("u", 10);
        assert!(image.is_error);
    }
}
