//! Shared test setup: where the built plugins are, a temporary plugin directory and
//! database, the runtime and registry over them, and a real server on 127.0.0.1.

#![allow(dead_code)] // Each test module uses a different part of the setup.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waygate::auth::{self, KeyRing, KeySpec, Role};
use waygate::config::Limits;
use waygate::config::{MetricsAccess, RateLimitConfig};

/// Rate limits off.
const RATE_LIMITS_OFF: RateLimitConfig = RateLimitConfig {
    enabled: false,
    execute: 100,
    health: 1000,
    metrics: 100,
    default: 500,
};
use waygate::http::{Admission, AppState};
use waygate::registry::{LoadPolicy, Registry};
use waygate::runtime::{CallOptions, Runtime};
use waygate::service::Service;
use waygate::store::Store;

/// Where cargo puts build output for this workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `cargo xtask plugins` (or run `cargo xtask test`)",
        path.display()
    );
    path
}

/// The packaged example plugins.
pub fn example_plugins_dir() -> PathBuf {
    built(target_dir().join("plugins"))
}

/// A test fixture's component.
pub fn fixture(name: &str) -> PathBuf {
    built(
        target_dir()
            .join("test-plugins")
            .join(format!("{name}.wasm")),
    )
}

/// An example plugin's component.
pub fn example(package: &str) -> PathBuf {
    let dir = example_plugins_dir().join(package);
    let manifest = waygate::registry::Manifest::read(&dir).expect("example manifest");
    built(dir.join(manifest.component))
}

/// Limits for tests: the defaults with a small instance pool, so many engines can exist at
/// once in one test process without reserving terabytes of address space.
pub fn test_limits() -> Limits {
    Limits {
        instance_pool: 16,
        ..Limits::default()
    }
}

/// A temporary plugins directory and database, with a runtime over them. Compiled
/// components go to one cache shared by every test, so each plugin compiles once per run.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub plugins: PathBuf,
    pub store: Arc<Store>,
    pub runtime: Arc<Runtime>,
    pub limits: Limits,
}

impl TestEnv {
    pub fn new() -> Self {
        Self::with_cache(Some(target_dir().join("test-cache")))
    }

    pub fn with_cache(cache: Option<PathBuf>) -> Self {
        Self::with(test_limits(), cache)
    }

    pub fn with_limits(limits: Limits) -> Self {
        Self::with(limits, Some(target_dir().join("test-cache")))
    }

    fn with(limits: Limits, cache: Option<PathBuf>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        let store = Arc::new(Store::open(&dir.path().join("waygate.db")).expect("database"));
        let runtime = Arc::new(Runtime::new(&limits, cache, store.clone()).expect("runtime"));
        Self {
            dir,
            plugins,
            store,
            runtime,
            limits,
        }
    }

    /// Installs a package: `wasm` copied beside a manifest of `name`, version 0.1.0 and the
    /// `extra` TOML (limits, config).
    pub fn add(&self, name: &str, wasm: &Path, extra: &str) -> &Self {
        let dir = self.plugins.join(name);
        std::fs::create_dir_all(&dir).expect("package dir");
        std::fs::copy(wasm, dir.join("plugin.wasm")).expect("copy component");
        std::fs::write(
            dir.join("plugin.toml"),
            format!("name = \"{name}\"\nversion = \"0.1.0\"\n{extra}\n"),
        )
        .expect("manifest");
        self
    }

    /// Installs every example plugin as packaged by the build.
    pub fn add_examples(&self) -> &Self {
        for entry in std::fs::read_dir(example_plugins_dir()).expect("plugins dir") {
            let entry = entry.expect("entry");
            let to = self.plugins.join(entry.file_name());
            std::fs::create_dir_all(&to).expect("package dir");
            for file in std::fs::read_dir(entry.path()).expect("package") {
                let file = file.expect("file");
                std::fs::copy(file.path(), to.join(file.file_name())).expect("copy");
            }
        }
        self
    }

    pub async fn registry(&self) -> Registry {
        Registry::load(
            &self.runtime,
            &self.plugins,
            &LoadPolicy::unsigned(self.limits.plugin_policy()),
        )
        .await
    }
}

/// Call options with a request id.
pub fn options() -> CallOptions {
    CallOptions {
        request_id: "test".to_owned(),
        ..CallOptions::default()
    }
}

/// How a [`TestServer`] admits requests.
pub struct ServerOptions {
    pub allowed_origins: Vec<String>,
    /// Authentication on, with an admin key the requests carry.
    pub auth: bool,
    pub rate_limits: RateLimitConfig,
    pub oauth: Option<waygate::config::OAuthConfig>,
    pub metrics_access: MetricsAccess,
    /// Required signatures: the trusted Ed25519 public keys.
    pub trusted_keys: Option<Arc<[[u8; 32]]>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            auth: true,
            rate_limits: RATE_LIMITS_OFF,
            oauth: None,
            metrics_access: MetricsAccess::Open,
            trusted_keys: None,
        }
    }
}

/// A real server on an ephemeral loopback port; stops when dropped. Authentication is on,
/// and requests carry an admin key unless a test gives its own credential.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub env: TestEnv,
    pub state: Arc<AppState>,
    /// The admin key requests carry by default; `None` when authentication is off.
    pub key: Option<String>,
    /// The server's key ring, reloaded after the test changes keys in-process.
    pub keys: Option<Arc<KeyRing>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
}

/// A whole HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; a JSON string of the text when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::String(self.body.clone()))
    }

    /// The JSON messages of an event-stream body.
    pub fn events(&self) -> Vec<Value> {
        sse_messages(&self.body)
    }
}

/// The `data:` payloads of server-sent events, parsed as JSON.
pub fn sse_messages(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).expect("event JSON"))
        })
        .collect()
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// An open event stream: the response head, then messages as they arrive.
pub struct EventStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: tokio::net::TcpStream,
    buffer: String,
}

impl EventStream {
    /// The next JSON message, or `None` when the stream ends or `timeout` passes first.
    pub async fn next_message(&mut self, timeout: std::time::Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Chunk framing is stripped by looking for the SSE data lines themselves.
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return Some(serde_json::from_str(&data.join("\n")).expect("event JSON"));
                }
                continue;
            }
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n])),
                _ => return None,
            }
        }
    }
}

impl TestServer {
    pub async fn start(env: TestEnv) -> Self {
        Self::start_with(env, ServerOptions::default()).await
    }

    pub async fn start_with_origins(env: TestEnv, allowed_origins: Vec<String>) -> Self {
        let options = ServerOptions {
            allowed_origins,
            ..ServerOptions::default()
        };
        Self::start_with(env, options).await
    }

    /// A server with authentication off (`auth.mode = none`).
    pub async fn start_without_auth(env: TestEnv) -> Self {
        let options = ServerOptions {
            auth: false,
            ..ServerOptions::default()
        };
        Self::start_with(env, options).await
    }

    /// A server with rate limits on. (The others run without, as a benchmark would: the
    /// suites send more requests per minute than the defaults allow one key.)
    pub async fn start_with_rate_limits(env: TestEnv, rate_limits: RateLimitConfig) -> Self {
        let options = ServerOptions {
            rate_limits,
            ..ServerOptions::default()
        };
        Self::start_with(env, options).await
    }

    pub async fn start_with(env: TestEnv, options: ServerOptions) -> Self {
        let ServerOptions {
            allowed_origins,
            auth: auth_on,
            rate_limits,
            oauth,
            metrics_access,
            trusted_keys,
        } = options;
        let load_policy = LoadPolicy {
            trusted_keys,
            ..LoadPolicy::unsigned(env.limits.plugin_policy())
        };
        let oauth = oauth.map(|config| Arc::new(waygate::auth::OAuth::new(config)));
        let (keys, key) = if auth_on {
            let admin = KeySpec {
                name: "test-admin",
                role: Role::Admin,
                plugins: None,
                expires_at: None,
            };
            let created = auth::create_key(&env.store, &admin, None).expect("admin key");
            let ring = Arc::new(KeyRing::load(env.store.clone()).expect("key ring"));
            ring.start();
            (Some(ring), Some(created.key))
        } else {
            (None, None)
        };
        let registry = Registry::load(&env.runtime, &env.plugins, &load_policy).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let service = Arc::new(Service::new(
            env.runtime.clone(),
            registry,
            env.store.clone(),
            env.limits.clone(),
            env.plugins.clone(),
            load_policy,
        ));
        let admission = Admission {
            allowed_origins,
            keys: keys.clone(),
            metrics_access,
            rate_limits,
            tls: None,
            // Checks the filter as the binary's setter does; the test process keeps its own.
            log_level: Some(Arc::new(|level: &str| {
                tracing_subscriber::EnvFilter::try_new(level)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })),
            oauth,
        };
        let state = Arc::new(AppState::new(service, admission));
        let (stop, stop_signal) = tokio::sync::oneshot::channel::<()>();
        let stopped = tokio::spawn(waygate::http::serve(listener, state.clone(), async {
            let _ = stop_signal.await;
        }));
        Self {
            addr,
            env,
            state,
            key,
            keys,
            stop: Some(stop),
            stopped: Some(stopped),
        }
    }

    /// Makes a key in the server's database, as `waygate keys create` would.
    pub fn create_key(&self, role: Role, plugins: Option<&[String]>) -> String {
        let spec = KeySpec {
            name: "test",
            role,
            plugins,
            expires_at: None,
        };
        let key = auth::create_key(&self.env.store, &spec, None)
            .expect("key")
            .key;
        self.reload_keys();
        key
    }

    /// Makes the server see key changes the test made through its own connection.
    pub fn reload_keys(&self) {
        if let Some(keys) = &self.keys {
            keys.reload().expect("reload keys");
        }
    }

    /// Stops the server and waits until it has drained and flushed its history.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            stopped.await.expect("server task");
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.send("GET", path, &[], None).await;
        (response.status, response.json())
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self.send("POST", path, &[], Some(body)).await;
        (response.status, response.json())
    }

    fn request_text(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> String {
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("host") {
            request.push_str(&format!("host: {}\r\n", self.addr));
        }
        // The admin key, unless the test brings its own credential (an empty one: none).
        if let Some(key) = &self.key
            && !has("x-api-key")
            && !has("authorization")
        {
            request.push_str(&format!("x-api-key: {key}\r\n"));
        }
        if !has("content-type") && body.is_some() {
            request.push_str("content-type: application/json\r\n");
        }
        for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or("");
        request.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        request
    }

    /// One HTTP/1.1 request on a fresh connection, read to its end.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let request = self.request_text(method, path, headers, body);
        // A server may answer and close before a large body is all written (413): keep
        // whatever response arrived.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .expect("a complete HTTP response");
        let (status, headers) = parse_head(head);
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    /// Sends a request whose answer is a long-lived event stream, and returns the stream
    /// once its head is in.
    pub async fn open_stream(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> EventStream {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let request = self.request_text(method, path, headers, body);
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buffer = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before the response head");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
        };
        let text = String::from_utf8_lossy(&buffer).into_owned();
        let (status, headers) = parse_head(&text[..head_end]);
        EventStream {
            status,
            headers,
            stream,
            buffer: text[head_end + 4..].to_owned(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The admin key [`spawn_binary`] starts the binary with (`WAYGATE_ADMIN_KEY`).
pub const ADMIN_KEY: &str = "wg_TestAdminKeyFromTheEnvironment0123456789";

/// The real `waygate` binary, serving; killed when dropped.
pub struct Binary {
    pub child: std::process::Child,
    pub addr: String,
    /// Every log line it wrote so far.
    pub log: Arc<std::sync::Mutex<String>>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `waygate serve` on an ephemeral port over `data`, with the hostile fixture as its
/// only plugin, debug logs, the admin key [`ADMIN_KEY`], and `env` added; returns once it
/// listens.
pub fn spawn_binary(data: &Path, env: &[(&str, &str)]) -> Binary {
    let plugins = data.join("plugins");
    let package = plugins.join("hostile");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::copy(fixture("hostile"), package.join("plugin.wasm")).unwrap();
    std::fs::write(
        package.join("plugin.toml"),
        "name = \"hostile\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let mut all_env = vec![("WAYGATE_ADMIN_KEY", ADMIN_KEY)];
    all_env.extend_from_slice(env);
    let args: [&std::ffi::OsStr; 9] = [
        "serve".as_ref(),
        "--bind".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--log".as_ref(),
        "debug".as_ref(),
        "--plugins".as_ref(),
        plugins.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
    ];
    spawn_waygate(&args, &all_env)
}

/// Installs example plugin `package` in `data/plugins`, where [`spawn_binary`] serves it
/// beside the hostile fixture.
pub fn install_example(data: &Path, package: &str) {
    let dir = data.join("plugins").join(package);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(example(package), dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!("name = \"{package}\"\nversion = \"0.1.0\"\n"),
    )
    .unwrap();
}

impl Binary {
    /// The first JSON log line `matches` accepts, waiting up to 5 s for it.
    pub fn wait_for_log(&self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = self.log.lock().unwrap().clone();
            let found = log
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| matches(l));
            if let Some(line) = found {
                return line;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no such line in {log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Runs `waygate keys ARGS --data DATA` and returns its standard output; fails unless it
/// succeeds.
pub fn keys_cli(data: &Path, args: &[&str]) -> String {
    keys_cli_on(&["--data".as_ref(), data.as_os_str()], args)
}

/// Runs `waygate keys ARGS DATABASE` (`--data DIR` or `--database-url URL`) and returns its
/// standard output; fails unless it succeeds.
pub fn keys_cli_on(database: &[&std::ffi::OsStr], args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
        .arg("keys")
        .args(args)
        .args(database)
        .output()
        .expect("run waygate keys");
    assert!(
        output.status.success(),
        "waygate keys {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One blocking HTTP/1.1 request to `addr` with `headers`; returns the status and body.
pub fn blocking_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// What a [`Upstream`] server answers to one request.
pub struct UpstreamReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// How long to wait before answering.
    pub delay: std::time::Duration,
    /// Send the body chunked, without a `Content-Length`.
    pub chunked: bool,
}

impl UpstreamReply {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            content_type,
            body: body.into(),
            delay: std::time::Duration::ZERO,
            chunked: false,
        }
    }
}

/// A plain HTTP/1.1 server on 127.0.0.1 standing for a service outside Waygate (an OAuth
/// server's JWKS, a site a plugin fetches, an OpenTelemetry collector). It answers each
/// request by `reply(method, path)`, counts the requests and keeps their bodies.
pub struct Upstream {
    pub addr: std::net::SocketAddr,
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
    /// Each request's path and body, in arrival order.
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
}

/// A request an [`Upstream`] received: its path and body.
pub type Received = (String, Vec<u8>);

impl Upstream {
    pub async fn start(
        reply: impl Fn(&str, &str) -> UpstreamReply + Send + Sync + 'static,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, bodies) = (requests.clone(), received.clone());
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (counter, bodies, reply) = (counter.clone(), bodies.clone(), reply.clone());
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buffer = [0u8; 16 * 1024];
                    let end = loop {
                        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buffer[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&data[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while data.len() < end + length {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut line = head.lines().next().unwrap_or_default().split(' ');
                    let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
                    bodies
                        .lock()
                        .unwrap()
                        .push((path.to_owned(), data[end..end + length].to_vec()));
                    let answer = reply(method, path);
                    tokio::time::sleep(answer.delay).await;
                    let framing = if answer.chunked {
                        "transfer-encoding: chunked".to_owned()
                    } else {
                        format!("content-length: {}", answer.body.len())
                    };
                    let head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\n{framing}\r\nconnection: close\r\n\r\n",
                        answer.status, answer.content_type
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    if answer.chunked {
                        for chunk in answer.body.chunks(16 * 1024) {
                            let size = format!("{:x}\r\n", chunk.len());
                            let _ = stream.write_all(size.as_bytes()).await;
                            let _ = stream.write_all(chunk).await;
                            let _ = stream.write_all(b"\r\n").await;
                        }
                        let _ = stream.write_all(b"0\r\n\r\n").await;
                    } else {
                        let _ = stream.write_all(&answer.body).await;
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            received,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts the real `waygate` binary with `args` (such as `serve --config FILE`) and `env`
/// added, and returns once it listens. Its configuration must keep JSON log lines at level
/// info or below: the line that says where it listens is one.
pub fn spawn_waygate(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Binary {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start waygate");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    // Killed when dropped, a failed start included.
    let mut binary = Binary {
        child,
        addr: String::new(),
        log,
    };
    // Up to a minute: a start that compiles its plugins takes seconds on a busy machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut scanned = 0;
    loop {
        // Only the lines added since the last look: a debug log runs to megabytes.
        let listening = {
            let log = binary.log.lock().unwrap();
            let fresh = &log[scanned..];
            let complete = fresh.rfind('\n').map_or(0, |end| end + 1);
            scanned += complete;
            fresh[..complete]
                .lines()
                .filter(|l| l.contains("waygate listening"))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["message"] == "waygate listening")
        };
        if let Some(line) = listening {
            binary.addr = line["bind"].as_str().expect("bind").to_owned();
            return binary;
        }
        let exited = binary.child.try_wait().expect("child status");
        assert!(
            exited.is_none() && std::time::Instant::now() < deadline,
            "waygate did not start ({exited:?}):\n{}",
            binary.log.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The PostgreSQL server of this test run (`WAYGATE_TEST_POSTGRES_URL`): superuser
/// `waygate` on its `postgres` database. `cargo xtask test` installs PostgreSQL and starts a
/// throwaway server for the run; without one, a test that needs it fails rather than skip.
pub fn postgres_url() -> String {
    std::env::var("WAYGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "WAYGATE_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server; run the \
             tests with `cargo xtask test`, which installs PostgreSQL and starts one"
        )
    })
}

/// A new, empty database on [`postgres_url`]'s server, unique to this call; returns its
/// URL. Created with the `psql` client (which comes with the server's package), so it blocks
/// for a moment; the databases go with the throwaway server at the end of the run.
pub fn fresh_postgres_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = postgres_url();
    // The pid and counter are unique within a run; the clock's nanoseconds guard against a
    // server that outlived an earlier process with the same pid.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let name = format!(
        "waygate_test_{}_{}_{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos & 0xf_ffff
    );
    let output = std::process::Command::new(psql_binary())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(format!("--dbname={url}"))
        .arg("-c")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql (the postgresql-client package)");
    assert!(
        output.status.success(),
        "psql could not create database {name} on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same scheme, user, host and port (and query, if any), with the new database as
    // the path.
    let authority_at = url.find("://").map_or(0, |at| at + 3);
    let path_at = url[authority_at..]
        .find(['/', '?'])
        .map_or(url.len(), |at| authority_at + at);
    let query = url[path_at..]
        .find('?')
        .map_or("", |at| &url[path_at + at..]);
    format!("{}/{name}{query}", &url[..path_at])
}

/// `psql` of the newest PostgreSQL in Debian's layout (`/usr/lib/postgresql/<major>/bin`),
/// where `cargo xtask test` found the server; else whichever `psql` is on `PATH`.
fn psql_binary() -> PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let psql = entry.path().join("bin/psql");
            psql.is_file().then_some((major, psql))
        })
        .max_by_key(|(major, _)| *major)
        .map_or_else(|| PathBuf::from("psql"), |(_, psql)| psql)
}

/// Waits up to 15 s (a plugin compiling on a busy CI machine included) for `check` to
/// hold, looking every 50 ms; fails naming `what` if it never does.
pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within 15 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
