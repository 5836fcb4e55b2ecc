//! OpenTelemetry: the real binary exports its spans over OTLP/HTTP to a receiver on
//! 127.0.0.1 that decodes them with the official OTLP protobuf definitions
//! (`opentelemetry-proto`). The spans arrive with their attributes, their parent links, the
//! caller's trace continued from `traceparent` (header or MCP `_meta`), and the plugin's log
//! lines as events of its call's span.

use crate::support::{
    ADMIN_KEY, Upstream, UpstreamReply, blocking_request, install_example, spawn_binary,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::time::{Duration, Instant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver: answers every export with an empty success.
async fn receiver() -> Upstream {
    Upstream::start(|_, _| UpstreamReply::ok("application/x-protobuf", Vec::new())).await
}

/// Every span received so far, with its resource's `service.name`.
fn received(receiver: &Upstream) -> Vec<(String, Span)> {
    let bodies = receiver.received.lock().unwrap().clone();
    let mut spans = Vec::new();
    for (path, body) in bodies {
        assert_eq!(path, "/v1/traces");
        let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| string(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }
    spans
}

fn string(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(n) => Some(n.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        AnyValue::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string(kv.value.as_ref()?.value.as_ref()?))
}

/// Waits until the spans of trace `trace_id` include every one of `names`.
fn wait_for(receiver: &Upstream, trace_id: &str, names: &[&str]) -> Vec<(String, Span)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<(String, Span)> = received(receiver)
            .into_iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace_id)
            .collect();
        if names
            .iter()
            .all(|n| spans.iter().any(|(_, s)| s.name == *n))
        {
            return spans;
        }
        let seen: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        assert!(
            Instant::now() < deadline,
            "spans of {trace_id}: {seen:?}, wanted {names:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn named<'a>(spans: &'a [(String, Span)], name: &str) -> &'a Span {
    &spans
        .iter()
        .find(|(_, s)| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
        .1
}

fn start(receiver: &Upstream, data: &std::path::Path) -> crate::support::Binary {
    let endpoint = format!("http://{}", receiver.addr);
    spawn_binary(
        data,
        &[
            ("WAYGATE_OTLP_ENDPOINT", endpoint.as_str()),
            ("WAYGATE_OTLP_EXPORT_INTERVAL_MS", "100"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_with_their_parents_attributes_and_the_callers_trace() {
    let receiver = receiver().await;
    let data = tempfile::tempdir().unwrap();
    let server = start(&receiver, data.path());
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let (status, body) = blocking_request(
        &server.addr,
        "POST",
        "/mcp/execute",
        &[("x-api-key", ADMIN_KEY), ("traceparent", &traceparent)],
        r#"{"action":"hostile__ok","params":{}}"#,
    );
    assert_eq!(status, 200, "{body}");

    let spans = wait_for(
        &receiver,
        TRACE_ID,
        &[
            "POST /mcp/execute",
            "auth",
            "tools/call hostile__ok",
            "validate_arguments",
            "hostile call-tool",
            "instantiate",
        ],
    );
    assert!(spans.iter().all(|(service, _)| service == "waygate"));
    let request = named(&spans, "POST /mcp/execute");
    let auth = named(&spans, "auth");
    let call = named(&spans, "tools/call hostile__ok");
    let validation = named(&spans, "validate_arguments");
    let plugin = named(&spans, "hostile call-tool");
    let instantiation = named(&spans, "instantiate");
    // The caller's span is the request's parent; each layer's span is its caller's child.
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(auth.parent_span_id, request.span_id);
    assert_eq!(call.parent_span_id, request.span_id);
    assert_eq!(validation.parent_span_id, call.span_id);
    assert_eq!(plugin.parent_span_id, call.span_id);
    assert_eq!(instantiation.parent_span_id, plugin.span_id);

    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/mcp/execute")
    );
    assert_eq!(
        attribute(request, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(request, "waygate.credential").as_deref(),
        Some("admin")
    );
    assert!(attribute(request, "waygate.request_id").is_some_and(|id| id.starts_with("req_")));
    assert_eq!(attribute(call, "outcome").as_deref(), Some("ok"));
    assert_eq!(attribute(plugin, "plugin").as_deref(), Some("hostile"));
    assert!(attribute(plugin, "fuel_used").is_some_and(|fuel| fuel.parse::<u64>().unwrap() > 0));
    // The history write of the call is a span of the store's own batch writer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received(&receiver).iter().any(|(_, s)| {
        s.name == "store.write" && attribute(s, "table").as_deref() == Some("command_history")
    }) {
        assert!(Instant::now() < deadline, "no store.write span");
        std::thread::sleep(Duration::from_millis(50));
    }
    let exported: Vec<u8> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, body)| body.clone())
        .collect();
    let exported = String::from_utf8_lossy(&exported).into_owned();
    assert!(
        !exported.contains(ADMIN_KEY),
        "the key must never be exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_meta_traceparent_continues_the_callers_trace_and_plugin_logs_become_events() {
    let receiver = receiver().await;
    let data = tempfile::tempdir().unwrap();
    // The notes plugin logs each note it adds.
    install_example(data.path(), "notes");
    let server = start(&receiver, data.path());
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "notes__add_note",
            "arguments": {"title": "traced", "body": "a note"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "traceparent": format!("00-{trace}-{caller}-01")
            }
        }
    });
    let (status, body) = blocking_request(
        &server.addr,
        "POST",
        "/mcp",
        &[
            ("x-api-key", ADMIN_KEY),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "notes__add_note"),
        ],
        &call.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let spans = wait_for(&receiver, trace, &["tools/call", "notes call-tool"]);
    let message = named(&spans, "tools/call");
    assert_eq!(hex(&message.parent_span_id), caller);
    assert_eq!(
        attribute(message, "mcp.method.name").as_deref(),
        Some("tools/call")
    );
    // The HTTP request that carried the message is its own trace, linked from the message.
    assert_eq!(message.links.len(), 1, "{:?}", message.links);
    let plugin = named(&spans, "notes call-tool");
    let added = plugin
        .events
        .iter()
        .find(|e| e.name == "note added")
        .unwrap_or_else(|| panic!("no plugin log event in {:?}", plugin.events));
    let plugin_tag = added
        .attributes
        .iter()
        .find(|kv| kv.key == "plugin")
        .and_then(|kv| string(kv.value.as_ref()?.value.as_ref()?));
    assert_eq!(plugin_tag.as_deref(), Some("notes"));
}
