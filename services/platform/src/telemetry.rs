//! Logs and traces: `tracing` with text or JSON output, OTLP export only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context carried in NATS headers so one
//! trace spans every service.

use crate::config::LogFormat;
use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the trace exporter alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("trace exporter shutdown: {error}");
        }
    }
}

/// Installs the global subscriber. Call once, from `main`.
///
/// The OpenTelemetry layer is always installed (so spans have real trace ids to propagate); it
/// exports only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(
    service: &'static str,
    format: LogFormat,
    filter: &str,
) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid configuration: RUST_LOG (--log-filter): {e}"))?;
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        crate::tls::install_crypto_provider();
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    // Logs go to stderr: a tool's stdout is its output (`reconciler report --json | jq`).
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(TelemetryGuard { provider })
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes `traceparent` (and `tracestate`) for the current span into `headers`.
///
/// When the current span has no trace (no subscriber, or a root with nothing recording), a new
/// trace is started here, so every message still carries a `traceparent` downstream can join.
pub fn inject_current(headers: &mut HeaderMap) {
    let mut cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        // A thread-local RNG: this runs once per published message, so no syscall per id.
        use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
        let ids = RandomIdGenerator::default();
        let sc = SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        cx = cx.with_remote_span_context(sc);
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// Reads the W3C trace context from message headers.
pub fn extract(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(h) => TraceContextPropagator::new().extract(&HeaderExtractor(h)),
        None => opentelemetry::Context::new(),
    }
}

/// Makes `span` a child of the trace in `headers`, so a consumer's work joins the producer's trace.
pub fn join_trace(span: &tracing::Span, headers: Option<&HeaderMap>) {
    let cx = extract(headers);
    if cx.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed (tests); the trace is then local.
        let _ = span.set_parent(cx);
    }
}

/// The trace id in `headers`, if any (hex), for logs and tests.
pub fn trace_id(headers: Option<&HeaderMap>) -> Option<String> {
    let cx = extract(headers);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The messages a batch works for, as span contexts: a call made for the whole batch (one Xero
/// request for many orders) cannot be a child of every message's span, so it links to them.
#[derive(Debug, Clone, Default)]
pub struct Links(std::sync::Arc<Vec<SpanContext>>);

impl Links {
    /// The contexts of `spans` that belong to a trace.
    pub fn of(spans: &[tracing::Span]) -> Self {
        let contexts = spans
            .iter()
            .map(|s| s.context().span().span_context().clone())
            .filter(SpanContext::is_valid)
            .collect();
        Self(std::sync::Arc::new(contexts))
    }

    /// The contexts of several batches together (one call made for all of them).
    pub fn merge<'a>(all: impl IntoIterator<Item = &'a Links>) -> Self {
        Self(std::sync::Arc::new(
            all.into_iter().flat_map(|l| l.0.iter().cloned()).collect(),
        ))
    }
}

tokio::task_local! {
    static LINKS: Links;
}

/// Runs `f` with `links` as the messages its calls work for (see [`link_to_batch`]).
pub async fn with_links<F: std::future::Future>(links: Links, f: F) -> F::Output {
    LINKS.scope(links, f).await
}

/// The links of the batch the current task works for (empty outside one), to hand to a task
/// that makes calls for it.
pub fn current_links() -> Links {
    LINKS.try_with(Links::clone).unwrap_or_default()
}

/// Links `span` to the messages of the batch the current task works for, if any.
pub fn link_to_batch(span: &tracing::Span) {
    let _ = LINKS.try_with(|links| {
        for cx in links.0.iter() {
            span.add_link(cx.clone());
        }
    });
}
