//! Write Waygate plugins in Rust: implement [`Plugin`] on a type and export it with
//! [`export_plugin!`]; build with `cargo build --release --target wasm32-wasip2`.
//!
//! A complete plugin with one tool:
//!
//! ```no_run
//! use waygate_plugin_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Args {
//!     /// The text to shout.
//!     text: String,
//! }
//!
//! struct Shout;
//! impl Plugin for Shout {
//!     fn metadata() -> Metadata { Metadata::new("shout", "0.1.0", "Upper-cases text") }
//!     fn tools() -> Vec<Tool> { vec![Tool::new::<Args>("shout", "Upper-case the text")] }
//!     fn call(tool: &str, args: Arguments, _: &CallContext) -> CallResult {
//!         match tool {
//!             "shout" => Ok(ToolResult::text(args.parse::<Args>()?.text.to_uppercase())),
//!             _ => Err(CallError::unknown_tool(tool)),
//!         }
//!     }
//! }
//! export_plugin!(Shout);
//! # fn main() {}
//! ```
//!
//! The host runs every call in a fresh instance: keep state in [`kv`], read settings with
//! [`config::get`], and log with [`log`]. Return every failure as a [`CallError`]; a panic
//! also fails the call, but the caller only learns that the plugin crashed.

#![deny(missing_docs)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        // Plugin crates expand the export macro in their own crate, so it must be public and
        // find these bindings through this module's path.
        pub_export_macro: true,
        default_bindings_module: "waygate_plugin_sdk::bindings",
    });
}

mod content;
mod plugin;

pub mod config;
pub mod kv;
pub mod log;
pub mod progress;

pub use content::{
    Arguments, CallContext, CallError, CallResult, Content, Metadata, Prompt, PromptArgument,
    PromptError, PromptMessage, PromptResult, Resource, ResourceContents, ResourceError, Role,
    Tool, ToolResult,
};
pub use plugin::{Adapter, Plugin};

// Re-exported so plugin crates need no direct dependency on them and always use the versions
// the SDK was built with.
pub use schemars;
pub use serde;
pub use serde_json;

/// Everything a plugin usually needs, for `use waygate_plugin_sdk::prelude::*`.
pub mod prelude {
    pub use crate::{
        Arguments, CallContext, CallError, CallResult, Content, Metadata, Plugin, Prompt,
        PromptArgument, PromptError, PromptMessage, PromptResult, Resource, ResourceContents,
        ResourceError, Role, Tool, ToolResult, config, export_plugin, kv, log, progress,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{Value, json};
}

/// Exports a type implementing [`Plugin`] as the component's `provider` interface.
///
/// Use it once per plugin crate, at the crate root: `export_plugin!(MyPlugin);`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        type __WaygateExportedPlugin = $crate::Adapter<$plugin>;
        $crate::bindings::export!(__WaygateExportedPlugin with_types_in $crate::bindings);
    };
}
