//! Shared test setup: where the built plugins are, a temporary plugin directory and
//! database, the runtime and registry over them, and a real server on 127.0.0.1.

#![allow(dead_code)] // Each test module uses a different part of the setup.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waygate::config::Limits;
use waygate::http::AppState;
use waygate::registry::Registry;
use waygate::runtime::{CallOptions, Runtime};
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
        Registry::load(&self.runtime, &self.plugins, self.limits.plugin).await
    }
}

/// Call options with a request id.
pub fn options() -> CallOptions {
    CallOptions {
        request_id: "test".to_owned(),
        ..CallOptions::default()
    }
}

/// A real server on an ephemeral loopback port; stops when dropped.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub env: TestEnv,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(env: TestEnv) -> Self {
        let registry = env.registry().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(AppState::new(
            env.runtime.clone(),
            registry,
            env.store.clone(),
            env.limits.clone(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(waygate::http::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            env,
            stop: Some(stop),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.request("POST", path, Some(body)).await
    }

    /// One HTTP/1.1 request on a fresh connection; returns the status and the JSON body.
    pub async fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .expect("a complete HTTP response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
        (status, json)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
