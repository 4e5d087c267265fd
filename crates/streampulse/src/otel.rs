//! OpenTelemetry traces: an OTLP/HTTP (protobuf) exporter behind `tracing-opentelemetry`, built only
//! when `tracing.otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set. Spans are exported in
//! batches from the SDK's own thread through a small blocking `ureq` client (no gRPC, no TLS, no
//! async HTTP client), and flushed when the [`TracingGuard`] is dropped.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

use crate::config::TracingSection;

/// The exporter's HTTP client: one blocking `ureq` agent. The SDK's batch processor calls it from
/// its own thread (`block_on`), so blocking here never stalls the API's tokio workers.
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.to_vec());
        let response = self.0.run(request)?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

/// Keeps the tracer provider alive; dropping it exports what is still buffered (on every exit
/// path of `run`, after the final checkpoint).
pub struct TracingGuard(Option<SdkTracerProvider>);

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(err) = provider.force_flush() {
                eprintln!("flushing traces failed: {err}");
            }
            if let Err(err) = provider.shutdown() {
                eprintln!("stopping the trace exporter failed: {err}");
            }
        }
    }
}

/// `<endpoint>/v1/traces`, unless the endpoint already names a path.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .contains('/');
    if has_path {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// The tracer provider for `section`, or `None` (no exporter at all) when no endpoint is set.
pub fn provider(section: &TracingSection) -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = section.endpoint() else {
        return Ok(None);
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let url = traces_url(&endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(UreqClient(agent))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
        .with_context(|| format!("tracing.otlp_endpoint: cannot export to {url}"))?;
    let mut batch = BatchConfigBuilder::default();
    if let Some(interval) = section.export_interval {
        batch = batch.with_scheduled_delay(interval);
    }
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            section.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(section.service_name.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(provider))
}

/// Installs the global subscriber: the log output (text or JSON, level from `RUST_LOG`, default
/// info) and, with a provider, the OpenTelemetry layer. The log level filters the log output only:
/// the exporter always gets the info-level spans, so `RUST_LOG=warn` does not switch traces off.
/// Installs the log subscriber: `json` lines or text on stderr, filtered by `RUST_LOG` when set,
/// else by `level` (a filter the config validated), plus the OTLP layer when `provider` is set.
pub fn init(json: bool, level: &str, provider: Option<SdkTracerProvider>) -> TracingGuard {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("streampulse"))
            .with_filter(LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(otel)
        .init();
    TracingGuard(provider)
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_to_a_bare_endpoint() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector/custom/v1/traces"),
            "http://collector/custom/v1/traces"
        );
    }
}
