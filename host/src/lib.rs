//! Waygate: an MCP host that runs every tool provider as a sandboxed WebAssembly component.
//!
//! A request flows `http` → `registry` → `runtime`, with `store` beside; nothing reaches
//! back up. `docs/ARCHITECTURE.md` has the map; in one line each:
//!
//! - [`config`]: defaults → file → environment → flags, and every limit ([`config::Limits`]).
//! - [`http`]: the listener, routing, the REST endpoints, errors → statuses.
//! - [`registry`]: plugin packages on disk, manifests, argument validation, name lookups.
//! - [`runtime`]: the wasmtime engine; each call in a fresh, limited instance.
//! - [`store`]: the SQLite database and its migrations; the only module with SQL.

#![warn(missing_docs)]

pub mod config;
pub mod http;
pub mod registry;
pub mod runtime;
pub mod store;
