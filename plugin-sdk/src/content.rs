//! The plugin-facing types: metadata, tools, arguments, results and errors, with the
//! conversions into the WIT types kept in one place.

use crate::bindings::waygate::plugin::types as wit;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// Who the plugin is; see the WIT `plugin-metadata` record.
#[derive(Debug, Clone)]
pub struct Metadata {
    name: String,
    version: String,
    description: String,
    author: String,
    capabilities: Vec<String>,
    config_schema: Option<serde_json::Value>,
}

impl Metadata {
    /// Metadata with a name (must match the manifest's), a version and a description.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            author: String::new(),
            capabilities: Vec::new(),
            config_schema: None,
        }
    }

    /// Sets the author.
    pub fn author(mut self, author: &str) -> Self {
        self.author = author.to_owned();
        self
    }

    /// Sets the descriptive capability labels shown to operators (they grant nothing).
    pub fn capabilities(mut self, labels: &[&str]) -> Self {
        self.capabilities = labels.iter().map(|l| (*l).to_owned()).collect();
        self
    }

    /// Declares the configuration type; the host validates the manifest's `[config]` against
    /// its JSON Schema before loading the plugin.
    pub fn config<T: JsonSchema>(mut self) -> Self {
        self.config_schema = Some(schema_of::<T>());
        self
    }

    pub(crate) fn into_wit(self) -> wit::PluginMetadata {
        wit::PluginMetadata {
            name: self.name,
            version: self.version,
            description: self.description,
            author: self.author,
            capabilities: self.capabilities,
            config_schema_json: self.config_schema.map(|s| s.to_string()),
        }
    }
}

/// A tool the plugin offers; its input schema is derived from the argument type.
#[derive(Debug, Clone)]
pub struct Tool {
    inner: wit::Tool,
}

impl Tool {
    /// A tool whose arguments deserialize into `A`; the JSON Schema comes from `A`'s
    /// `JsonSchema` derive, so doc comments on its fields become the descriptions clients see.
    pub fn new<A: JsonSchema>(name: &str, description: &str) -> Self {
        Self {
            inner: wit::Tool {
                name: name.to_owned(),
                title: None,
                description: description.to_owned(),
                input_schema_json: schema_of::<A>().to_string(),
                output_schema_json: None,
                hints: wit::ToolHints {
                    read_only: None,
                    destructive: None,
                    idempotent: None,
                    open_world: None,
                },
            },
        }
    }

    /// Sets a display title.
    pub fn title(mut self, title: &str) -> Self {
        self.inner.title = Some(title.to_owned());
        self
    }

    /// Declares the JSON Schema of the tool's structured (JSON) result.
    pub fn output<O: JsonSchema>(mut self) -> Self {
        self.inner.output_schema_json = Some(schema_of::<O>().to_string());
        self
    }

    /// Marks the tool as not changing its environment (also idempotent and not destructive).
    pub fn read_only(mut self) -> Self {
        self.inner.hints.read_only = Some(true);
        self.inner.hints.destructive = Some(false);
        self.inner.hints.idempotent = Some(true);
        self
    }

    /// Marks the tool as possibly destroying data.
    pub fn destructive(mut self) -> Self {
        self.inner.hints.read_only = Some(false);
        self.inner.hints.destructive = Some(true);
        self
    }

    /// Marks the tool as idempotent.
    pub fn idempotent(mut self) -> Self {
        self.inner.hints.idempotent = Some(true);
        self
    }

    /// Marks the tool as reaching an open world of external entities, such as the web.
    pub fn open_world(mut self) -> Self {
        self.inner.hints.open_world = Some(true);
        self
    }

    pub(crate) fn into_wit(self) -> wit::Tool {
        self.inner
    }
}

/// The JSON arguments of a call, already validated by the host against the input schema.
#[derive(Debug, Clone)]
pub struct Arguments {
    json: String,
}

impl Arguments {
    pub(crate) fn new(json: String) -> Self {
        Self { json }
    }

    /// Deserializes the arguments; a mismatch becomes [`CallError::InvalidArguments`].
    ///
    /// # Errors
    ///
    /// When the JSON does not fit `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_str(&self.json).map_err(|e| CallError::InvalidArguments(e.to_string()))
    }

    /// The raw JSON text.
    pub fn as_str(&self) -> &str {
        &self.json
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The host's request id, useful in log lines.
    pub request_id: String,
    /// The authenticated caller's name, if any.
    pub caller_id: Option<String>,
}

/// One item of a tool result or prompt message.
#[derive(Debug, Clone)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// A JSON document.
    Json(serde_json::Value),
    /// An image: base64 data and its MIME type.
    Image {
        /// Base64-encoded bytes.
        data_base64: String,
        /// MIME type such as `image/png`.
        mime_type: String,
    },
    /// Audio: base64 data and its MIME type.
    Audio {
        /// Base64-encoded bytes.
        data_base64: String,
        /// MIME type such as `audio/wav`.
        mime_type: String,
    },
    /// A link to a resource.
    ResourceLink {
        /// The resource's URI.
        uri: String,
        /// Its short name.
        name: String,
        /// What it holds.
        description: Option<String>,
        /// MIME type of its contents.
        mime_type: Option<String>,
    },
}

impl Content {
    fn into_wit(self) -> wit::Content {
        match self {
            Content::Text(text) => wit::Content::Text(text),
            Content::Json(value) => wit::Content::Json(value.to_string()),
            Content::Image {
                data_base64,
                mime_type,
            } => wit::Content::Image(wit::BinaryContent {
                data_base64,
                mime_type,
            }),
            Content::Audio {
                data_base64,
                mime_type,
            } => wit::Content::Audio(wit::BinaryContent {
                data_base64,
                mime_type,
            }),
            Content::ResourceLink {
                uri,
                name,
                description,
                mime_type,
            } => wit::Content::ResourceLink(wit::ResourceLink {
                uri,
                name,
                description,
                mime_type,
            }),
        }
    }
}

/// The result of a tool call.
#[derive(Debug, Clone)]
pub struct ToolResult {
    /// The content items, in order.
    pub content: Vec<Content>,
    /// True when the tool failed in a way the model should see.
    pub is_error: bool,
}

impl ToolResult {
    /// A successful result of one text item.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![Content::Text(text.into())],
            is_error: false,
        }
    }

    /// A successful result of one JSON item; a value that cannot be serialized becomes a
    /// tool error saying so.
    pub fn json(value: impl serde::Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(value) => Self {
                content: vec![Content::Json(value)],
                is_error: false,
            },
            Err(e) => Self::error(format!("the tool's result cannot be serialized: {e}")),
        }
    }

    /// A tool-level failure the model should see, as one text item.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            content: vec![Content::Text(message.into())],
            is_error: true,
        }
    }

    pub(crate) fn into_wit(self) -> wit::ToolResult {
        wit::ToolResult {
            content: self.content.into_iter().map(Content::into_wit).collect(),
            is_error: self.is_error,
        }
    }
}

/// Why a call produced no result; see the WIT `call-error` variant.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The arguments make no sense to the tool.
    InvalidArguments(String),
    /// No tool of that name.
    UnknownTool(String),
    /// The tool failed.
    Failed(String),
}

impl CallError {
    /// The error for a tool name the plugin does not know.
    pub fn unknown_tool(tool: &str) -> Self {
        CallError::UnknownTool(tool.to_owned())
    }

    /// A failure with a message shown to the caller.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        CallError::Failed(message.to_string())
    }

    pub(crate) fn into_wit(self) -> wit::CallError {
        match self {
            CallError::InvalidArguments(m) => wit::CallError::InvalidArguments(m),
            CallError::UnknownTool(m) => wit::CallError::UnknownTool(m),
            CallError::Failed(m) => wit::CallError::Failed(m),
        }
    }
}

impl From<crate::kv::Error> for CallError {
    fn from(error: crate::kv::Error) -> Self {
        CallError::Failed(error.to_string())
    }
}

/// What a tool call returns.
pub type CallResult = Result<ToolResult, CallError>;

/// A resource the plugin serves.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its URI.
    pub uri: String,
    /// Short name.
    pub name: String,
    /// What it holds.
    pub description: Option<String>,
    /// MIME type of its contents.
    pub mime_type: Option<String>,
}

impl Resource {
    pub(crate) fn into_wit(self) -> wit::Resource {
        wit::Resource {
            uri: self.uri,
            name: self.name,
            title: None,
            description: self.description,
            mime_type: self.mime_type,
        }
    }
}

/// One item of a resource read.
#[derive(Debug, Clone)]
pub struct ResourceContents {
    /// The item's URI.
    pub uri: String,
    /// MIME type of the body.
    pub mime_type: Option<String>,
    /// The text body (binary bodies: see [`ResourceContents::blob`]).
    body: wit::ResourceBody,
}

impl ResourceContents {
    /// A text item.
    pub fn text(uri: &str, mime_type: &str, text: impl Into<String>) -> Self {
        Self {
            uri: uri.to_owned(),
            mime_type: Some(mime_type.to_owned()),
            body: wit::ResourceBody::Text(text.into()),
        }
    }

    /// A binary item, base64-encoded.
    pub fn blob(uri: &str, mime_type: &str, data_base64: String) -> Self {
        Self {
            uri: uri.to_owned(),
            mime_type: Some(mime_type.to_owned()),
            body: wit::ResourceBody::BlobBase64(data_base64),
        }
    }

    pub(crate) fn into_wit(self) -> wit::ResourceContents {
        wit::ResourceContents {
            uri: self.uri,
            mime_type: self.mime_type,
            body: self.body,
        }
    }
}

/// Why a resource read failed.
#[derive(Debug, Clone)]
pub enum ResourceError {
    /// No resource has that URI.
    NotFound(String),
    /// The read failed.
    Failed(String),
}

impl From<crate::kv::Error> for ResourceError {
    fn from(error: crate::kv::Error) -> Self {
        ResourceError::Failed(error.to_string())
    }
}

impl ResourceError {
    pub(crate) fn into_wit(self) -> wit::ResourceError {
        match self {
            ResourceError::NotFound(m) => wit::ResourceError::NotFound(m),
            ResourceError::Failed(m) => wit::ResourceError::Failed(m),
        }
    }
}

/// A prompt template.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The arguments it takes.
    pub arguments: Vec<PromptArgument>,
}

/// A prompt's argument.
#[derive(Debug, Clone)]
pub struct PromptArgument {
    /// Its name.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// Whether it must be given.
    pub required: bool,
}

impl Prompt {
    pub(crate) fn into_wit(self) -> wit::Prompt {
        wit::Prompt {
            name: self.name,
            title: None,
            description: self.description,
            arguments: self
                .arguments
                .into_iter()
                .map(|a| wit::PromptArgument {
                    name: a.name,
                    description: a.description,
                    required: a.required,
                })
                .collect(),
        }
    }
}

/// Who speaks a prompt message.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

/// One message of a rendered prompt.
#[derive(Debug, Clone)]
pub struct PromptMessage {
    /// The speaker.
    pub role: Role,
    /// What is said.
    pub content: Content,
}

/// A rendered prompt.
#[derive(Debug, Clone)]
pub struct PromptResult {
    /// A description of the rendering.
    pub description: Option<String>,
    /// The messages.
    pub messages: Vec<PromptMessage>,
}

impl PromptResult {
    pub(crate) fn into_wit(self) -> wit::PromptResult {
        wit::PromptResult {
            description: self.description,
            messages: self
                .messages
                .into_iter()
                .map(|m| wit::PromptMessage {
                    role: match m.role {
                        Role::User => wit::Role::User,
                        Role::Assistant => wit::Role::Assistant,
                    },
                    content: m.content.into_wit(),
                })
                .collect(),
        }
    }
}

/// Why a prompt could not be rendered.
#[derive(Debug, Clone)]
pub enum PromptError {
    /// No prompt has that name.
    NotFound(String),
    /// An argument is missing or invalid.
    InvalidArguments(String),
    /// Rendering failed.
    Failed(String),
}

impl PromptError {
    pub(crate) fn into_wit(self) -> wit::PromptError {
        match self {
            PromptError::NotFound(m) => wit::PromptError::NotFound(m),
            PromptError::InvalidArguments(m) => wit::PromptError::InvalidArguments(m),
            PromptError::Failed(m) => wit::PromptError::Failed(m),
        }
    }
}

/// The JSON Schema (draft 2020-12) of `T`, with only the standard `format` values: schemars
/// marks integers `"format": "uint64"` and the like, which strict validators in MCP clients
/// reject or warn about. The ranges stay as `minimum`/`maximum`.
fn schema_of<T: JsonSchema>() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(schemars::transform::RestrictFormats::default())
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Args {
        /// The text.
        text: String,
        times: Option<u32>,
    }

    #[test]
    fn tool_schema_is_derived_from_the_argument_type() {
        let tool = Tool::new::<Args>("repeat", "Repeat text")
            .read_only()
            .into_wit();
        let schema: serde_json::Value = serde_json::from_str(&tool.input_schema_json).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], serde_json::json!(["text"]));
        assert_eq!(schema["properties"]["text"]["description"], "The text.");
        assert_eq!(tool.hints.read_only, Some(true));
        assert_eq!(tool.hints.destructive, Some(false));
    }

    #[test]
    fn arguments_that_do_not_fit_become_invalid_arguments() {
        let args = Arguments::new(r#"{"times": 2}"#.to_owned());
        match args.parse::<Args>() {
            Err(CallError::InvalidArguments(m)) => assert!(m.contains("text"), "{m}"),
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)] // Only its schema is used.
    struct Counts {
        words: u64,
        ratio: f32,
    }

    #[test]
    fn schemas_keep_ranges_but_drop_nonstandard_formats() {
        let schema = schema_of::<Counts>();
        let words = &schema["properties"]["words"];
        assert_eq!(words["type"], "integer");
        assert_eq!(words["minimum"], 0);
        assert!(words.get("format").is_none(), "{schema}");
        assert!(
            schema["properties"]["ratio"].get("format").is_none(),
            "{schema}"
        );
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}
