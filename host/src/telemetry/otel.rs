//! OpenTelemetry: the `tracing` spans of requests, tool calls and store writes exported over
//! OTLP/HTTP (protobuf) when an endpoint is configured, and the W3C trace context read from
//! incoming HTTP headers and MCP `_meta`.
//! Owns: [`tracer_provider`], [`continue_trace`]. Never: exports anything without an endpoint.

use crate::config::OtlpConfig;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use std::time::Duration;

/// Longest one export may take, connection included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the provider's shutdown waits for the last export: one export and a margin.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(11);
/// Most bytes read of a collector's answer to an export.
const MAX_EXPORT_ANSWER_BYTES: usize = 64 * 1024;

/// The tracer provider exporting to `config.endpoint`. Exports run on `runtime` (the batch
/// processor's own thread hands each one to it), so the server's tokio runtime must outlive
/// the provider's shutdown.
///
/// # Errors
///
/// When the exporter cannot be built from the configuration.
pub fn tracer_provider(
    config: &OtlpConfig,
    runtime: tokio::runtime::Handle,
) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!(
            "{}/v1/traces",
            config.endpoint.trim_end_matches('/')
        ))
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(ExportClient { runtime })
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let batches = BatchConfigBuilder::default()
        .with_scheduled_delay(config.export_interval)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batches)
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// Makes `span` a child of the remote span a W3C `traceparent` (with its `tracestate`)
/// names, when it is valid; with `link_current`, the span also links to the span current
/// now (an MCP message's span keeps its tie to the HTTP request that carried it). A span
/// that has started children already keeps its parent. Without the OpenTelemetry layer this
/// does nothing.
pub fn continue_trace(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    link_current: bool,
) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Some(parent) = remote_parent(traceparent, tracestate) else {
        return;
    };
    if span.set_parent(parent).is_ok() && link_current {
        let current = tracing::Span::current().context();
        let current = current.span().span_context().clone();
        if current.is_valid() {
            span.add_link(current);
        }
    }
}

/// The remote parent a W3C `traceparent` (with its `tracestate`) names, if it is valid.
fn remote_parent(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Context> {
    struct Carrier<'a> {
        traceparent: Option<&'a str>,
        tracestate: Option<&'a str>,
    }
    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.traceparent,
                "tracestate" => self.tracestate,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    traceparent?;
    let carrier = Carrier {
        traceparent,
        tracestate,
    };
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// The OTLP exporter's HTTP client: each export is sent on the server's tokio runtime with
/// the host's own client (`http_client::send`), whatever thread asks for it.
#[derive(Debug)]
struct ExportClient {
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let request = request.map(http_body_util::Full::new);
        let sent = self.runtime.spawn(async move {
            tokio::time::timeout(
                EXPORT_TIMEOUT,
                crate::http_client::send(request, MAX_EXPORT_ANSWER_BYTES),
            )
            .await
            .map_err(|_| "the collector did not answer in time".to_owned())?
        });
        match sent.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(message)) => Err(message.into()),
            Err(joined) => Err(format!("export task failed: {joined}").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_becomes_the_remote_parent() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = remote_parent(Some(header), None).unwrap();
        let span = parent.span();
        let context = span.span_context();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_remote());
        for bad in [
            "",
            "00-zz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert!(remote_parent(Some(bad), None).is_none(), "{bad}");
        }
    }
}
