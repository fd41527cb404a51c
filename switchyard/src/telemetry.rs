//! Logs and traces. Logs go to stderr: `SWITCHYARD_LOG` sets the filter (default `info` for
//! servers and `warn` for operator commands), `SWITCHYARD_LOG_FORMAT=json` switches to JSON
//! lines. With `--otlp-endpoint`, a server role also exports spans over OTLP/gRPC in
//! batches (see `switchyard_common::trace`); a log line under a request's span carries its
//! trace id. Spans waiting for export are bounded ([`QUEUE`]); beyond it they are dropped,
//! never the request.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Spans held for export at most.
const QUEUE: usize = 8192;
/// How long an export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often held spans are sent.
const EXPORT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// OTLP/gRPC endpoint spans are exported to, e.g. http://otel-collector:4317
    /// [default: no traces].
    #[arg(long, global = true, env = "SWITCHYARD_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<url::Url>,
}

/// An OTLP/gRPC endpoint: an http:// or https:// URL. Anything else is refused before the
/// process starts, rather than running without the traces the operator asked for.
fn otlp_endpoint(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        // Both require a host to parse at all.
        "http" | "https" => Ok(url),
        other => Err(format!("must be an http:// or https:// URL, not {other}:")),
    }
}

/// What must be flushed before the process exits.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still held.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "exporting the last spans failed");
        }
    }
}

/// Sets up logging, and span export to `otlp` when given, for a process named `service`.
/// Must run inside the Tokio runtime.
pub fn init(default_filter: &str, service: &str, otlp: Option<&url::Url>) -> Telemetry {
    use switchyard_common::logfilter::with_libraries_capped;
    let spec = std::env::var("SWITCHYARD_LOG").unwrap_or_else(|_| default_filter.to_owned());
    let filter = EnvFilter::try_new(with_libraries_capped(&spec)).unwrap_or_else(|e| {
        eprintln!("SWITCHYARD_LOG {spec:?} is not a valid filter ({e}); using {default_filter:?}");
        EnvFilter::new(with_libraries_capped(default_filter))
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = if std::env::var("SWITCHYARD_LOG_FORMAT").as_deref() == Ok("json") {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let provider = otlp.and_then(|endpoint| match provider(endpoint, service) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("error: traces are not exported: {e}");
            None
        }
    });
    // Switchyard's own spans only: the exporter's own connections must not be traced.
    let ours = tracing_subscriber::filter::filter_fn(|meta| {
        meta.target().starts_with("switchyard") && *meta.level() <= tracing::Level::INFO
    });
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("switchyard"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(ours)
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    if provider.is_some() {
        switchyard_common::trace::enable();
        tracing::info!(endpoint = %otlp.map(url::Url::as_str).unwrap_or_default(), "exporting traces");
    }
    Telemetry { provider }
}

fn provider(endpoint: &url::Url, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(QUEUE)
        .with_scheduled_delay(EXPORT_EVERY)
        .build();
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_batch_config(config)
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}
