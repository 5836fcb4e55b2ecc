//! The load benchmark: a release `waygate serve` with the example plugins under concurrent
//! HTTP load, beside two baselines measured in the same run, each in its own process.
//!
//! Run: `cargo xtask bench load` (builds the plugins and the release binary, then this).
//! - Baseline (a), `transport`: a minimal hyper server answering every POST with a fixed
//!   JSON-RPC result of the size Waygate's echo answer has: the wire's limit.
//! - Baseline (b), `sandbox`: the same server running `echo` through `Runtime::call_tool` (a
//!   fresh instance per request, the runtime's engine settings) with no MCP, auth, metrics or
//!   store writes: the sandbox's limit.
//! - Waygate: start-up to `/ready` (cold, then warm compiled cache), idle RSS, the reload of
//!   every plugin, then each scenario for a fixed time over keep-alive connections, with an
//!   API key on every request and rate limits off.
//!
//! Prints a table, the ratios of Waygate's stateless `tools/call echo` to both baselines, and
//! one JSON line with every figure (also written to `target/bench/load.json`).
//! `WAYGATE_BENCH_SECONDS` (default 5) and `WAYGATE_BENCH_CONNECTIONS` (default 64) tune it.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The key every request to Waygate carries: the bootstrap admin key.
const ADMIN_KEY: &str = "wg_benchBENCHbench0123456789abcdefghijABCDEF";
/// Time each scenario warms up before it is measured.
const WARMUP: Duration = Duration::from_millis(500);
/// What Waygate's `echo` answers in the stateless form; baseline (a) sends the same bytes.
const ECHO_ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}],"isError":false,"resultType":"complete"}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--serve-baseline") {
        let kind = args.get(position + 1).cloned().unwrap_or_default();
        return serve_baseline(&kind);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(run());
}

fn seconds_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

async fn run() {
    let duration = Duration::from_secs(seconds_from_env("WAYGATE_BENCH_SECONDS", 5));
    let connections = seconds_from_env("WAYGATE_BENCH_CONNECTIONS", 64) as usize;
    let target = target_dir();
    let binary = target.join("release").join("waygate");
    let plugins = target.join("plugins");
    assert!(
        binary.is_file() && plugins.is_dir(),
        "run `cargo xtask bench load`: it builds {} and {}",
        binary.display(),
        plugins.display()
    );
    let work = tempfile::tempdir().expect("temp dir");
    let mut results = Vec::new();

    // Start-up, cold then warm, idle RSS and a reload of every plugin.
    let cold = Waygate::start(&binary, &plugins, work.path()).await;
    let cold_ready_ms = cold.ready_ms;
    drop(cold);
    let waygate = Waygate::start(&binary, &plugins, work.path()).await;
    let warm_ready_ms = waygate.ready_ms;
    let idle_rss_mib = rss_mib(waygate.child.id(), "VmRSS");
    let reload_started = Instant::now();
    let (status, reload) = waygate.post_json("/plugins/reload", "{}").await;
    assert_eq!(status, 200, "reload: {reload}");
    let reload_ms = reload_started.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "load: start-up {cold_ready_ms:.0} ms cold, {warm_ready_ms:.0} ms warm; idle RSS {idle_rss_mib:.1} MiB; reload {reload_ms:.0} ms"
    );

    let echo_call = mcp_call("echo__echo", json!({"message": "hello"}));
    let csv = csv_of_bytes(100 * 1024);
    let scenarios: Vec<(&str, Shot)> = vec![
        ("GET /health", Shot::get("/health")),
        (
            "tools/call echo, stateless",
            Shot::stateless(&echo_call, "echo__echo"),
        ),
        (
            "/mcp/execute echo",
            Shot::post(
                "/mcp/execute",
                json!({"action": "echo", "params": {"message": "hello"}}).to_string(),
            ),
        ),
        (
            "tools/call data-processor, 100 KiB CSV",
            Shot::stateless(
                &mcp_call(
                    "data-processor__process_data",
                    json!({"input": csv, "format": "csv"}),
                ),
                "data-processor__process_data",
            ),
        ),
        (
            "tools/call regex-tools (JavaScript)",
            Shot::stateless(
                &mcp_call(
                    "regex-tools__regex_test",
                    json!({"pattern": "w(or)ld", "text": "hello world"}),
                ),
                "regex-tools__regex_test",
            ),
        ),
    ];
    for (name, shot) in scenarios {
        let shots = vec![shot.with_key(); connections];
        results.push(measure(name, waygate.addr, waygate.child.id(), shots, duration).await);
    }
    // The session era: one session per connection, opened before the clock starts.
    let mut shots = Vec::new();
    for _ in 0..connections {
        shots.push(waygate.session_shot(&echo_call).await);
    }
    results.push(
        measure(
            "tools/call echo, session",
            waygate.addr,
            waygate.child.id(),
            shots,
            duration,
        )
        .await,
    );
    let after_load_rss_mib = rss_mib(waygate.child.id(), "VmRSS");
    let peak_rss_mib = rss_mib(waygate.child.id(), "VmHWM");
    drop(waygate);

    // The baselines, each in its own process, driven the same way.
    let echo_shot = Shot::stateless(&echo_call, "echo__echo");
    let mut baselines = Vec::new();
    for (kind, name) in [
        ("transport", "baseline (a): hyper, fixed answer"),
        ("sandbox", "baseline (b): hyper + echo in a fresh instance"),
    ] {
        let baseline = Baseline::start(kind).await;
        let shots = vec![echo_shot.clone(); connections];
        baselines.push(measure(name, baseline.addr, baseline.child.id(), shots, duration).await);
    }

    let stateless = results
        .iter()
        .find(|r| r.name == "tools/call echo, stateless")
        .expect("the stateless echo scenario ran");
    let ratio_transport = stateless.rps / baselines[0].rps;
    let ratio_sandbox = stateless.rps / baselines[1].rps;

    println!(
        "\n{connections} connections, {} s per scenario after {} ms warm-up\n",
        duration.as_secs(),
        WARMUP.as_millis()
    );
    println!(
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | server CPU µs/req | server peak RSS MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results.iter().chain(&baselines) {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {:.1} |",
            r.name,
            r.rps,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.max_ms,
            r.errors,
            r.cpu_us_per_request,
            r.peak_rss_mib
        );
    }
    println!();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| stateless `tools/call echo` / baseline (a), transport | {:.1} % |",
        ratio_transport * 100.0
    );
    println!(
        "| stateless `tools/call echo` / baseline (b), sandbox | {:.1} % |",
        ratio_sandbox * 100.0
    );
    println!("| start-up to `/ready`, cold compiled cache | {cold_ready_ms:.0} ms |");
    println!("| start-up to `/ready`, warm compiled cache | {warm_ready_ms:.0} ms |");
    println!("| idle RSS, all example plugins loaded | {idle_rss_mib:.1} MiB |");
    println!("| RSS after the load | {after_load_rss_mib:.1} MiB (peak {peak_rss_mib:.1}) |");
    println!("| reload of every plugin (`POST /plugins/reload`) | {reload_ms:.0} ms |");

    let report = json!({
        "connections": connections,
        "seconds": duration.as_secs(),
        "scenarios": results.iter().map(Measured::json).collect::<Vec<_>>(),
        "baselines": baselines.iter().map(Measured::json).collect::<Vec<_>>(),
        "ratio_to_transport": ratio_transport,
        "ratio_to_sandbox": ratio_sandbox,
        "startup_cold_ms": cold_ready_ms,
        "startup_warm_ms": warm_ready_ms,
        "idle_rss_mib": idle_rss_mib,
        "after_load_rss_mib": after_load_rss_mib,
        "peak_rss_mib": peak_rss_mib,
        "reload_ms": reload_ms,
        "reload": reload,
    });
    println!("\n{report}");
    let out = target.join("bench");
    std::fs::create_dir_all(&out).expect("bench dir");
    std::fs::write(out.join("load.json"), report.to_string()).expect("load.json");
}

/// A JSON-RPC `tools/call` in the stateless (2026-07-28) form.
fn mcp_call(tool: &str, arguments: Value) -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool, "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    })
    .to_string()
}

/// A CSV document of about `bytes` bytes: a header and rows of four fields.
fn csv_of_bytes(bytes: usize) -> String {
    let mut csv = String::from("id,name,city,score\n");
    let mut row = 0;
    while csv.len() < bytes {
        csv.push_str(&format!(
            "{row},name-{row},city-{},{}\n",
            row % 97,
            row * 7 % 1000
        ));
        row += 1;
    }
    csv
}

/// One request, sent over and over by one connection.
#[derive(Clone)]
struct Shot {
    method: hyper::Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

impl Shot {
    fn get(path: &'static str) -> Self {
        Self {
            method: hyper::Method::GET,
            path,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn post(path: &'static str, body: String) -> Self {
        Self {
            method: hyper::Method::POST,
            path,
            headers: vec![("content-type", "application/json".to_owned())],
            body: Bytes::from(body),
        }
    }

    fn stateless(body: &str, tool: &str) -> Self {
        let mut shot = Self::post("/mcp", body.to_owned());
        shot.headers.extend([
            ("accept", "application/json, text/event-stream".to_owned()),
            ("mcp-protocol-version", "2026-07-28".to_owned()),
            ("mcp-method", "tools/call".to_owned()),
            ("mcp-name", tool.to_owned()),
        ]);
        shot
    }

    fn with_key(&self) -> Self {
        let mut shot = self.clone();
        shot.headers.push(("x-api-key", ADMIN_KEY.to_owned()));
        shot
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header("host", "127.0.0.1");
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        builder.body(Full::new(self.body.clone())).expect("request")
    }
}

/// One scenario's figures.
struct Measured {
    name: String,
    requests: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_us_per_request: f64,
    peak_rss_mib: f64,
}

impl Measured {
    fn json(&self) -> Value {
        json!({
            "name": self.name, "requests": self.requests, "errors": self.errors,
            "requests_per_second": self.rps, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms, "max_ms": self.max_ms,
            "server_cpu_us_per_request": self.cpu_us_per_request,
            "server_peak_rss_mib": self.peak_rss_mib,
        })
    }
}

/// Sends each shot over its own keep-alive connection for `duration` after a warm-up, and
/// measures latency per request and the server's CPU time over the measured window.
async fn measure(
    name: &str,
    addr: SocketAddr,
    server_pid: u32,
    shots: Vec<Shot>,
    duration: Duration,
) -> Measured {
    let warm_until = Instant::now() + WARMUP;
    let end = warm_until + duration;
    let cpu_before = Arc::new(std::sync::Mutex::new(None));
    let tasks: Vec<_> = shots
        .into_iter()
        .map(|shot| {
            let cpu_before = cpu_before.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("handshake");
                tokio::spawn(connection);
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if now >= warm_until {
                        let mut before = cpu_before.lock().expect("cpu lock");
                        if before.is_none() {
                            *before = Some(cpu_ticks(server_pid));
                        }
                    }
                    let started = Instant::now();
                    let ok = match sender.send_request(shot.request()).await {
                        Ok(response) => {
                            let status = response.status();
                            match response.into_body().collect().await {
                                Ok(body) => status == StatusCode::OK && answered(&body.to_bytes()),
                                Err(_) => false,
                            }
                        }
                        Err(_) => false,
                    };
                    if started >= warm_until {
                        latencies.push(started.elapsed().as_micros() as u32);
                        if !ok {
                            errors += 1;
                        }
                    }
                    if !ok && sender.ready().await.is_err() {
                        break;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.expect("connection task");
        latencies.append(&mut l);
        errors += e;
    }
    let cpu_after = cpu_ticks(server_pid);
    let cpu_before = cpu_before.lock().expect("cpu lock").unwrap_or(cpu_after);
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
    };
    let requests = latencies.len();
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let cpu_us = (cpu_after - cpu_before) as f64 / ticks_per_second * 1e6;
    let measured = Measured {
        name: name.to_owned(),
        requests,
        errors,
        rps: requests as f64 / duration.as_secs_f64(),
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        max_ms: latencies
            .last()
            .map_or(f64::NAN, |&us| f64::from(us) / 1000.0),
        cpu_us_per_request: cpu_us / requests.max(1) as f64,
        peak_rss_mib: rss_mib(server_pid, "VmHWM"),
    };
    eprintln!(
        "load: {name}: {:.0} req/s, p99 {:.2} ms, {errors} errors",
        measured.rps, measured.p99_ms
    );
    measured
}

/// Whether a 200 answer is a success: no JSON-RPC error, no tool error.
fn answered(body: &[u8]) -> bool {
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    !contains(b"\"isError\":true") && !contains(b"\"jsonrpc\":\"2.0\",\"id\":1,\"error\"")
}

/// User plus system CPU time of a process, in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    field(11) + field(12)
}

/// A `/proc/<pid>/status` memory figure (`VmRSS`, `VmHWM`) in MiB.
fn rss_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(key)?
                .trim_start_matches(':')
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A `waygate serve` child process on a free loopback port.
struct Waygate {
    child: Child,
    addr: SocketAddr,
    ready_ms: f64,
}

impl Waygate {
    /// Starts the server with the data and compiled cache in `work`, and waits for `/ready`.
    async fn start(binary: &Path, plugins: &Path, work: &Path) -> Self {
        let addr = free_port();
        let started = Instant::now();
        let child = Command::new(binary)
            .args(["serve", "--bind", &addr.to_string()])
            .arg("--plugins")
            .arg(plugins)
            .arg("--data")
            .arg(work.join("data"))
            .arg("--cache-dir")
            .arg(work.join("cache"))
            .env("WAYGATE_ADMIN_KEY", ADMIN_KEY)
            .env("WAYGATE_RATE_LIMITS", "off")
            .env("WAYGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start waygate");
        let mut waygate = Self {
            child,
            addr,
            ready_ms: 0.0,
        };
        loop {
            if let Ok((200, _)) = waygate.get_json("/ready").await {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "waygate did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        waygate.ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        waygate
    }

    async fn get_json(&self, path: &str) -> std::io::Result<(u16, Value)> {
        exchange(self.addr, &format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {ADMIN_KEY}\r\nconnection: close\r\n\r\n")).await
    }

    async fn post_json(&self, path: &str, body: &str) -> (u16, Value) {
        exchange(
            self.addr,
            &format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await
        .expect("request")
    }

    /// A session-era `tools/call` shot with a fresh, initialized session.
    async fn session_shot(&self, call: &str) -> Shot {
        let initialize = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}}
        })
        .to_string();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {ADMIN_KEY}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{initialize}",
            initialize.len()
        );
        let response = raw_exchange(self.addr, &head).await.expect("initialize");
        let session = response
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("mcp-session-id")
                    .then(|| value.trim().to_owned())
            })
            .expect("a session id");
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {ADMIN_KEY}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\nmcp-protocol-version: 2025-11-25\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{initialized}",
            initialized.len()
        );
        raw_exchange(self.addr, &head).await.expect("initialized");
        let call: Value = serde_json::from_str(call).expect("call");
        let mut params = call["params"].clone();
        params.as_object_mut().expect("params").remove("_meta");
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
            .to_string();
        let mut shot = Shot::post("/mcp", body).with_key();
        shot.headers.extend([
            ("accept", "application/json, text/event-stream".to_owned()),
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-11-25".to_owned()),
        ]);
        shot
    }
}

impl Drop for Waygate {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Stops a child with SIGTERM (a graceful stop flushes the store), then waits.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("address")
}

/// One request on a fresh connection; the whole response as text.
async fn raw_exchange(addr: SocketAddr, request: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// One request on a fresh connection; the status and the JSON body.
async fn exchange(addr: SocketAddr, request: &str) -> std::io::Result<(u16, Value)> {
    let response = raw_exchange(addr, request).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// A baseline server: this same executable, re-run with `--serve-baseline KIND`.
struct Baseline {
    child: Child,
    addr: SocketAddr,
}

impl Baseline {
    async fn start(kind: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--serve-baseline", kind])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a baseline");
        let stdout = child.stdout.take().expect("stdout");
        // One short line, written as soon as the baseline listens.
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("the baseline's address");
        let addr = line.trim().parse().expect("an address");
        Self { child, addr }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a baseline server until killed; prints its address on stdout first.
fn serve_baseline(kind: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        let answer: Arc<
            dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>>
                + Send
                + Sync,
        > = match kind {
            "transport" => {
                Arc::new(|| Box::pin(async { Bytes::from_static(ECHO_ANSWER.as_bytes()) }))
            }
            "sandbox" => sandbox_answer(),
            other => panic!("unknown baseline {other:?}"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("address"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let answer = answer.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let answer = answer.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            let body = answer().await;
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                                    .expect("response"),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Baseline (b)'s answer: `echo` in a fresh instance through the runtime, wrapped in the
/// same JSON-RPC envelope with no parsing or validation.
fn sandbox_answer()
-> Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>> + Send + Sync>
{
    use waygate::config::Limits;
    use waygate::runtime::{CallOptions, Content, Runtime};
    let work = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(waygate::store::Store::open(&work.path().join("db")).expect("store"));
    let limits = Limits::default();
    let runtime =
        Arc::new(Runtime::new(&limits, Some(work.path().join("cache")), store).expect("runtime"));
    let wasm = std::fs::read(target_dir().join("plugins/echo/echo.wasm")).expect("echo.wasm");
    let guest = Arc::new(
        runtime
            .prepare("echo", &wasm, limits.plugin, "{}".into())
            .expect("echo"),
    );
    std::mem::forget(work);
    Arc::new(move || {
        let (runtime, guest) = (runtime.clone(), guest.clone());
        Box::pin(async move {
            let result = runtime
                .call_tool(
                    &guest,
                    "echo",
                    r#"{"message":"hello"}"#.to_owned(),
                    CallOptions::default(),
                )
                .await;
            let text = match result {
                Ok(Ok(result)) => match result.content.first() {
                    Some(Content::Text(text)) => text.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            Bytes::from(
                json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}], "isError": false, "resultType": "complete"}})
                    .to_string(),
            )
        })
    })
}
