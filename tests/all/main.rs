//! Integration tests: one binary, one module per area. They need the plugins built first
//! (`cargo xtask test` does that; `cargo xtask plugins` on its own works too).

mod auth;
mod cache;
mod capabilities;
mod deploy;
mod http;
mod interop;
mod limits;
mod mcp;
mod metrics;
mod migrate;
mod oauth;
mod operations;
mod otel;
mod outbound;
mod plugins;
mod reload;
mod replicas;
mod shutdown;
mod signatures;
mod store;
mod support;
