//! The only host-side `bindgen!` of the WIT package in `wit/`.
//! Owns: the generated `Plugin` world bindings and the WIT types re-exported from them.
//! Never: holds logic; host import implementations live in `runtime::host`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Host imports are plain synchronous functions: every call already runs on a blocking
    // thread (see `runtime::Runtime::run`), and none of the imports waits on the network.
});

pub use waygate::plugin::types::{
    BinaryContent, CallContext, CallError, Content, PluginMetadata, Prompt, PromptArgument,
    PromptError, PromptMessage, PromptResult, Resource, ResourceBody, ResourceContents,
    ResourceError, ResourceLink, Role, Tool, ToolHints, ToolResult,
};
