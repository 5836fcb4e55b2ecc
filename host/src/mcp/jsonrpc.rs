//! JSON-RPC 2.0 as MCP uses it: one message per body (no batches), ids that are strings or
//! integers, and the error codes of both protocol eras.
//! Owns: [`Message`], [`Id`], [`RpcError`], the error codes. Never: panics on any body.

use serde_json::{Map, Value, json};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Valid JSON but not a JSON-RPC message (or a batch, which MCP no longer allows).
pub const INVALID_REQUEST: i64 = -32600;
/// No such method, or one behind a capability the server does not offer.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The params are wrong: unknown tool or prompt, bad cursor, missing `_meta`.
pub const INVALID_PARAMS: i64 = -32602;
/// The server failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// Resource not found, session era (2026-07-28 uses [`INVALID_PARAMS`]).
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// A header disagrees with the body, or a required header is missing (2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;
/// The protocol version is not supported (2026-07-28).
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// The client cancelled the request; the answer nobody reads. LSP's code, which MCP SDKs
/// also recognise.
pub const REQUEST_CANCELLED: i64 = -32800;

/// A request id: a string or an integer, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// `"id": "abc"`.
    Str(String),
    /// `"id": 7`.
    Num(i64),
}

impl Id {
    /// The id as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Id::Str(s) => Value::String(s.clone()),
            Id::Num(n) => Value::from(*n),
        }
    }

    /// The id a JSON value stands for, if it is a string or an integer.
    pub fn from_json(value: &Value) -> Option<Id> {
        match value {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => n.as_i64().map(Id::Num),
            _ => None,
        }
    }
}

/// One incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request, which gets a response.
    Request {
        /// Its id.
        id: Id,
        /// The method.
        method: String,
        /// The params object (empty when absent).
        params: Map<String, Value>,
    },
    /// A notification, which gets none.
    Notification {
        /// The method.
        method: String,
        /// The params object (empty when absent).
        params: Map<String, Value>,
    },
    /// A response to a request the server sent; Waygate sends none, so these are ignored.
    Response,
}

impl Message {
    /// The method, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response => None,
        }
    }

    /// The params, for requests and notifications.
    pub fn params(&self) -> Option<&Map<String, Value>> {
        match self {
            Message::Request { params, .. } | Message::Notification { params, .. } => Some(params),
            Message::Response => None,
        }
    }
}

/// A JSON-RPC error object, with the id it answers when known.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// Structured details.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// [`INVALID_PARAMS`].
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// Adds `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error object.
    pub fn to_json(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// Parses one message from a body.
///
/// # Errors
///
/// [`PARSE_ERROR`] for bad JSON, [`INVALID_REQUEST`] for anything that is not a single
/// JSON-RPC 2.0 message; the id is returned with the error when it could be read.
pub fn parse(body: &[u8]) -> Result<Message, (Option<Id>, RpcError)> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            None,
            RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    let invalid = |id: Option<Id>, why: &str| {
        Err((
            id,
            RpcError::new(INVALID_REQUEST, format!("invalid request: {why}")),
        ))
    };
    let Value::Object(mut object) = value else {
        return if value.is_array() {
            invalid(
                None,
                "batches are not supported; send one message per request",
            )
        } else {
            invalid(None, "a message must be a JSON object")
        };
    };
    let id = match object.get("id") {
        None => None,
        Some(raw) => match Id::from_json(raw) {
            Some(id) => Some(id),
            None => return invalid(None, "id must be a string or an integer"),
        },
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(id, "\"jsonrpc\" must be \"2.0\"");
    }
    let params = match object.remove("params") {
        None => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return invalid(id, "params must be an object"),
    };
    match (object.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => Ok(Message::Request { id, method, params }),
        (Some(Value::String(method)), None) => Ok(Message::Notification { method, params }),
        (Some(_), id) => invalid(id, "method must be a string"),
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => {
            Ok(Message::Response)
        }
        (None, id) => invalid(id, "a request needs a method"),
    }
}

/// A success response.
pub fn result(id: &Id, result: Value) -> Value {
    // Built by hand: `json!` would serialize `result` into a deep copy of itself.
    let mut response = Map::with_capacity(3);
    response.insert("jsonrpc".into(), Value::from("2.0"));
    response.insert("id".into(), id.to_json());
    response.insert("result".into(), result);
    Value::Object(response)
}

/// An error response; `id` is omitted when the request's could not be read.
pub fn error(id: Option<&Id>, error: &RpcError) -> Value {
    let mut response = json!({ "jsonrpc": "2.0", "error": error.to_json() });
    if let Some(id) = id {
        response["id"] = id.to_json();
    }
    response
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> i64 {
        parse(body.as_bytes()).unwrap_err().1.code
    }

    #[test]
    fn requests_notifications_and_responses() {
        let request = parse(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#).unwrap();
        assert_eq!(request.method(), Some("tools/list"));
        assert!(matches!(request, Message::Request { id: Id::Str(ref s), .. } if s == "a"));
        let note = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(note, Message::Notification { .. }));
        let response = parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert_eq!(response, Message::Response);
    }

    #[test]
    fn malformed_messages_get_the_right_code() {
        assert_eq!(code("{"), PARSE_ERROR);
        assert_eq!(code("[]"), INVALID_REQUEST);
        assert_eq!(code("3"), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":5}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            INVALID_REQUEST
        );
        let (id, _) = parse(br#"{"jsonrpc":"1.0","id":9,"method":"x"}"#).unwrap_err();
        assert_eq!(
            id,
            Some(Id::Num(9)),
            "the id is kept for the error response"
        );
    }
}
