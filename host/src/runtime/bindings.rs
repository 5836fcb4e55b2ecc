//! The only host-side `bindgen!` of the WIT package in `wit/`.
//! Owns: the generated `Plugin` world bindings and the WIT types re-exported from them.
//! Never: holds logic; host import implementations live in `runtime::host`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Exports are called asynchronously so a call can be cancelled at its deadline even
    // while the guest waits in a host poll, and a busy guest yields its thread every epoch
    // tick. The host's own imports stay synchronous: none of them waits on the network, and
    // the key-value statements are short SQLite transactions.
    exports: { default: async },
});

pub use self::waygate::plugin::types::{
    BinaryContent, CallContext, CallError, Content, PluginMetadata, Prompt, PromptArgument,
    PromptError, PromptMessage, PromptResult, Resource, ResourceBody, ResourceContents,
    ResourceError, ResourceLink, Role, Tool, ToolHints, ToolResult,
};
