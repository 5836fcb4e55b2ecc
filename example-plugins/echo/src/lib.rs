//! `echo`: returns what it is given; the API spec's `echo` and `test` commands.
//!
//! Build: `cargo xtask plugins`; run: `cargo xtask run`, then call the `echo` tool.
//! Grants: none. It touches nothing but its arguments.

use waygate_plugin_sdk::prelude::*;

/// Arguments of `echo`.
#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    /// The message to send back.
    message: String,
}

/// Arguments of `test`.
#[derive(Deserialize, JsonSchema)]
struct TestArgs {
    /// Test message.
    message: Option<String>,
}

struct Echo;

impl Plugin for Echo {
    fn metadata() -> Metadata {
        Metadata::new(
            "echo",
            env!("CARGO_PKG_VERSION"),
            "Echoes messages back; the API spec's test command",
        )
        .author("Waygate")
        .capabilities(&["echo", "test"])
    }

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new::<EchoArgs>("echo", "Return the message unchanged")
                .title("Echo")
                .read_only(),
            Tool::new::<TestArgs>(
                "test",
                "Test command for validation: answers with a status and the message",
            )
            .title("Test")
            .read_only(),
        ]
    }

    fn call(tool: &str, args: Arguments, context: &CallContext) -> CallResult {
        match tool {
            "echo" => Ok(ToolResult::text(args.parse::<EchoArgs>()?.message)),
            "test" => {
                let message = args.parse::<TestArgs>()?.message;
                Ok(ToolResult::json(json!({
                    "status": "ok",
                    "message": message.unwrap_or_else(|| "test successful".to_owned()),
                    "request_id": context.request_id,
                })))
            }
            _ => Err(CallError::unknown_tool(tool)),
        }
    }
}

export_plugin!(Echo);
