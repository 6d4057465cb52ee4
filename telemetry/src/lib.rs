//! # telemetry — tracing and OpenTelemetry for the binaries
//!
//! One call at the top of `main` ([`init`]) installs:
//! * a `tracing` subscriber that logs to stderr, filtered by `RUST_LOG`
//!   (default `info`);
//! * an OpenTelemetry tracer provider behind `tracing-opentelemetry`, so every
//!   span belongs to a W3C trace with real trace and span ids;
//! * the W3C Trace Context propagator.
//!
//! With that in place, `outbox::enqueue` captures the current span's
//! `traceparent` into the outbox row, the relay sends it as a Kafka header, and
//! a consumer continues the trace with [`continue_trace`]. Exporting spans
//! (OTLP, Jaeger…) is a matter of adding an exporter to the provider built in
//! [`init`]; without one, trace context still flows end to end.
//!
//! ```no_run
//! let _telemetry = telemetry::init("order-service").expect("telemetry");
//! let span = tracing::info_span!("handle");
//! telemetry::continue_trace(&span, [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
//! ```
//!
//! ## Layout
//! Everything is in this file: [`init`], [`Telemetry`], [`continue_trace`],
//! [`continue_trace_from`], [`current_traceparent`].

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Why telemetry could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A global subscriber was already installed.
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the tracer provider alive; flushes it on drop.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Nothing useful to do with a flush error at exit.
        let _ = self.provider.shutdown();
    }
}

/// Installs logging, the OpenTelemetry tracer and the W3C propagator for
/// `service`. Call once, at the start of `main`, and keep the guard.
pub fn init(service: &'static str) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer(service);
    opentelemetry::global::set_tracer_provider(provider.clone());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;
    Ok(Telemetry { provider })
}

struct Pairs(HashMap<String, String>);

impl Extractor for Pairs {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Makes `span` a child of the remote trace described by `headers`
/// (`traceparent`, `tracestate`; names case-insensitive). Headers without a
/// valid `traceparent` leave the span as it is.
pub fn continue_trace<'a, I>(span: &tracing::Span, headers: I)
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let pairs = Pairs(headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect());
    let cx = TraceContextPropagator::new().extract(&pairs);
    use opentelemetry::trace::TraceContextExt;
    if cx.span().span_context().is_valid() {
        // Only fails when the span is disabled; then there is nothing to link.
        let _ = span.set_parent(cx);
    }
}

/// [`continue_trace`] for a message envelope's optional `traceparent` /
/// `tracestate` fields.
pub fn continue_trace_from(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let parent = traceparent.map(|v| ("traceparent", v));
    continue_trace(span, parent.into_iter().chain(tracestate.map(|v| ("tracestate", v))));
}

/// `traceparent` and `tracestate` of the current span, when it is part of a
/// valid trace.
pub fn current_traceparent() -> Option<(String, Option<String>)> {
    let mut pairs = Pairs(HashMap::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut pairs);
    let parent = pairs.0.remove("traceparent")?;
    Some((parent, pairs.0.remove("tracestate").filter(|s| !s.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_continues_the_remote_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("consume");
            continue_trace(
                &span,
                [("TraceParent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
            );
            let _g = span.enter();
            let (parent, _) = current_traceparent().expect("inside a trace");
            assert!(parent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{parent}");
            assert!(!parent.contains("00f067aa0ba902b7"), "a child span has its own span id: {parent}");
        });
    }

    #[test]
    fn no_trace_without_valid_headers() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("consume");
            continue_trace(&span, [("traceparent", "garbage")]);
            let _g = span.enter();
            // A fresh root trace: valid, but not the garbage one.
            if let Some((parent, _)) = current_traceparent() {
                assert!(!parent.contains("garbage"));
            }
        });
        assert_eq!(current_traceparent(), None, "outside any subscriber there is no trace");
    }
}
