//! W3C trace context for outbox rows: taken from the message's envelope when
//! the caller set it, else from the current `tracing` span when that span is
//! part of an OpenTelemetry trace (through `tracing-opentelemetry`).

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `traceparent` and `tracestate` of the current span, if it belongs to a
/// sampled-or-not but *valid* OpenTelemetry trace.
pub(crate) fn current_span_context() -> Option<(String, Option<String>)> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let traceparent =
        format_traceparent(&sc.trace_id().to_string(), &sc.span_id().to_string(), sc.trace_flags().to_u8());
    let state = sc.trace_state().header();
    Some((traceparent, (!state.is_empty()).then_some(state)))
}

/// `00-<trace id>-<span id>-<flags>` (W3C Trace Context, version 00).
pub(crate) fn format_traceparent(trace_id: &str, span_id: &str, flags: u8) -> String {
    format!("00-{trace_id}-{span_id}-{flags:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_has_the_w3c_shape() {
        let t = format_traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1);
        assert_eq!(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    }

    #[test]
    fn captures_the_current_opentelemetry_span() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("place order");
            let _entered = span.enter();
            let (parent, state) = current_span_context().expect("inside a trace");
            let parts: Vec<&str> = parent.split('-').collect();
            assert_eq!(parts.len(), 4, "{parent}");
            assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
            assert_eq!(state, None);
        });
    }

    #[test]
    fn no_context_outside_a_trace() {
        assert_eq!(current_span_context(), None);
    }
}
