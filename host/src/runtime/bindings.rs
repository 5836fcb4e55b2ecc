//! The only host-side `bindgen!` of the WIT package in `wit/`.
//! Owns: the generated `Plugin` world bindings and the WIT types re-exported from them.
//! Never: holds logic; host import implementations live in `runtime::host`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Exports are called asynchronously so a call can be cancelled at its deadline even
    // while the guest waits in a host poll, and a busy guest yields its thread every epoch
    // tick. The key-value imports are async too: their SQLite work runs on the blocking pool,
    // so a plugin hammering its store holds no tokio worker and its deadline still fires.
    // `log` and `config` touch no IO and stay synchronous.
    imports: { "waygate:plugin/kv": async },
    exports: { default: async },
});

pub use self::waygate::plugin::types::{
    BinaryContent, CallContext, CallError, Content, PluginMetadata, Prompt, PromptArgument,
    PromptError, PromptMessage, PromptResult, Resource, ResourceBody, ResourceContents,
    ResourceError, ResourceLink, Role, Tool, ToolHints, ToolResult,
};
