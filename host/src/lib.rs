//! Waygate: an MCP host that runs every tool provider as a sandboxed WebAssembly component.
//!
//! A request flows `http` → `auth` → `mcp` (or the REST handlers) → `service` → `registry` →
//! `runtime`, with `store` and `telemetry` beside; nothing reaches back up.
//! `docs/ARCHITECTURE.md` has the map; in one line each:
//!
//! - [`auth`]: API keys, roles, and the role every route and MCP method needs.
//! - [`config`]: defaults → file → environment → flags, and every limit ([`config::Limits`]).
//! - [`hex`]: the one hex encoder and strict decoder (digests, keys, signatures).
//! - [`json`]: JSON text of a value without `Display`'s per-token formatting (hot paths).
//! - [`http`]: the listener, routing, the REST endpoints, the MCP transport, errors → statuses.
//! - [`mcp`]: JSON-RPC, the two protocol eras, sessions, the tools/resources/prompts methods.
//! - [`service`]: what REST and MCP share: the registry serving now, the one tool-call path.
//! - [`telemetry`]: metrics and the recent-error ring.
//! - [`registry`]: plugin packages on disk, manifests, argument validation, name lookups.
//! - [`runtime`]: the wasmtime engine; each call in a fresh, limited instance.
//! - [`store`]: the SQLite database and its migrations; the only module with SQL.
//! - [`http_client`]: the host's own outbound HTTP(S) requests and the TLS client settings.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod hex;
pub mod http;
pub mod http_client;
pub mod json;
pub mod mcp;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod store;
pub mod telemetry;
